// Elementwise kernels over flat float arrays, and the channel-block copies behind concat and
// the option-A shortcut. Grid-stride loops with 64-bit indices.
#include "kernels/kernels.h"
#include "kernels/launch.h"

namespace sp::kernels {

namespace {

__global__ void fill_kernel(float* data, size_t n, float value) {
    SP_GRID_STRIDE_LOOP(i, n) data[i] = value;
}

__global__ void relu_forward_kernel(const float* x, float* y, size_t n) {
    SP_GRID_STRIDE_LOOP(i, n) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, size_t n, bool accumulate) {
    SP_GRID_STRIDE_LOOP(i, n) {
        float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

__global__ void add_kernel(const float* a, const float* b, float* y, size_t n) {
    SP_GRID_STRIDE_LOOP(i, n) y[i] = a[i] + b[i];
}

__global__ void axpy_kernel(float alpha, const float* x, float* y, size_t n) {
    // fmaf would round once instead of twice and differ from the CPU's y + alpha * x.
    SP_GRID_STRIDE_LOOP(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

__global__ void multiply_kernel(const float* a, const float* b, float* y, size_t n) {
    SP_GRID_STRIDE_LOOP(i, n) y[i] = a[i] * b[i];
}

// mask (members, channels); rows_per_member rows of x share one mask row.
__global__ void scale_channels_kernel(const float* x, const float* mask, float* y, size_t n,
                                      size_t channels, size_t inner, size_t rows_per_member) {
    SP_GRID_STRIDE_LOOP(i, n) {
        const size_t plane = i / inner;  // (row, channel)
        const size_t member = plane / channels / rows_per_member;
        y[i] = x[i] * mask[member * channels + plane % channels];
    }
}

__global__ void slice_columns_kernel(const float* src, size_t src_cols, size_t begin, float* dst, size_t n,
                                     size_t cols) {
    SP_GRID_STRIDE_LOOP(i, n) dst[i] = src[(i / cols) * src_cols + begin + i % cols];
}

__global__ void repeat_elements_kernel(const float* src, size_t k, float* dst, size_t n) {
    SP_GRID_STRIDE_LOOP(i, n) dst[i] = src[i / k];
}

// One thread per dst element: consecutive threads write consecutive dst floats and read runs
// of `inner` consecutive src floats, so both sides stay coalesced for inner ≥ 32.
__global__ void swap_leading_axes_kernel(const float* src, size_t a, size_t b, size_t inner, float* dst, size_t n) {
    SP_GRID_STRIDE_LOOP(k, n) {
        const size_t r = k % inner, ji = k / inner, i = ji % a, j = ji / a;
        dst[k] = src[(i * b + j) * inner + r];
    }
}

__global__ void broadcast_rows_kernel(const float* b, float* y, size_t n, size_t cols) {
    SP_GRID_STRIDE_LOOP(i, n) y[i] = b[i % cols];
}

// i runs over the (outer, channels, inner) block being copied.
__global__ void copy_channels_kernel(const float* src, size_t src_channels, size_t src_offset, float* dst,
                                     size_t dst_channels, size_t dst_offset, size_t n, size_t channels,
                                     size_t inner, bool accumulate) {
    SP_GRID_STRIDE_LOOP(i, n) {
        size_t s = i % inner;
        size_t c = (i / inner) % channels;
        size_t o = i / (inner * channels);
        float v = src[(o * src_channels + src_offset + c) * inner + s];
        float& d = dst[(o * dst_channels + dst_offset + c) * inner + s];
        d = accumulate ? d + v : v;
    }
}

// i runs over y (N, K, P, Q).
__global__ void shortcut_forward_kernel(const float* x, float* y, size_t total, size_t c, size_t h,
                                        size_t w, size_t k, size_t p, size_t q, size_t stride,
                                        size_t channel_offset) {
    SP_GRID_STRIDE_LOOP(i, total) {
        size_t qi = i % q;
        size_t pi = (i / q) % p;
        size_t ki = (i / (q * p)) % k;
        size_t ni = i / (q * p * k);
        float v = 0.0f;
        if (ki >= channel_offset && ki < channel_offset + c) {
            size_t ci = ki - channel_offset;
            v = x[((ni * c + ci) * h + pi * stride) * w + qi * stride];
        }
        y[i] = v;
    }
}

// i runs over dx (N, C, H, W).
__global__ void shortcut_backward_kernel(const float* dy, float* dx, size_t total, size_t c, size_t h,
                                         size_t w, size_t k, size_t p, size_t q, size_t stride,
                                         size_t channel_offset, bool accumulate) {
    SP_GRID_STRIDE_LOOP(i, total) {
        size_t wi = i % w;
        size_t hi = (i / w) % h;
        size_t ci = (i / (w * h)) % c;
        size_t ni = i / (w * h * c);
        float g = 0.0f;
        if (hi % stride == 0 && wi % stride == 0)
            g = dy[((ni * k + channel_offset + ci) * p + hi / stride) * q + wi / stride];
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

}  // namespace

void fill(float* data, size_t n, float value, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(data != nullptr, "fill: null data for " << n << " elements");
    fill_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(data, n, value);
    SP_CHECK_LAUNCH("fill_kernel");
}

void relu_forward(const float* x, float* y, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(x && y, "relu_forward: null pointer for " << n << " elements");
    relu_forward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, y, n);
    SP_CHECK_LAUNCH("relu_forward_kernel");
}

void relu_backward(const float* y, const float* dy, float* dx, size_t n, bool accumulate, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(y && dy && dx, "relu_backward: null pointer for " << n << " elements");
    relu_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(y, dy, dx, n, accumulate);
    SP_CHECK_LAUNCH("relu_backward_kernel");
}

void add(const float* a, const float* b, float* y, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(a && b && y, "add: null pointer for " << n << " elements");
    add_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(a, b, y, n);
    SP_CHECK_LAUNCH("add_kernel");
}

void axpy(float alpha, const float* x, float* y, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(x && y, "axpy: null pointer for " << n << " elements");
    axpy_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(alpha, x, y, n);
    SP_CHECK_LAUNCH("axpy_kernel");
}

void multiply(const float* a, const float* b, float* y, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(a && b && y, "multiply: null pointer for " << n << " elements");
    multiply_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(a, b, y, n);
    SP_CHECK_LAUNCH("multiply_kernel");
}

void scale_channels(const float* x, const float* mask, float* y, size_t outer, size_t channels,
                    size_t inner, size_t members, cudaStream_t stream) {
    size_t n = outer * channels * inner;
    if (n == 0) return;
    SP_REQUIRE(x && mask && y, "scale_channels: null pointer");
    SP_REQUIRE(members >= 1 && outer % members == 0,
               "scale_channels: " << outer << " rows do not split into " << members << " members");
    scale_channels_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(x, mask, y, n, channels, inner,
                                                                        outer / members);
    SP_CHECK_LAUNCH("scale_channels_kernel");
}

void slice_columns(const float* src, size_t rows, size_t src_cols, size_t begin, float* dst, size_t cols,
                   cudaStream_t stream) {
    size_t n = rows * cols;
    if (n == 0) return;
    SP_REQUIRE(src && dst, "slice_columns: null pointer");
    SP_REQUIRE(begin + cols <= src_cols, "slice_columns: columns [" << begin << ", " << begin + cols
                                                                    << ") outside " << src_cols);
    slice_columns_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(src, src_cols, begin, dst, n, cols);
    SP_CHECK_LAUNCH("slice_columns_kernel");
}

void repeat_elements(const float* src, size_t n, size_t k, float* dst, cudaStream_t stream) {
    size_t total = n * k;
    if (total == 0) return;
    SP_REQUIRE(src && dst && k >= 1, "repeat_elements: null pointer or k = 0");
    repeat_elements_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(src, k, dst, total);
    SP_CHECK_LAUNCH("repeat_elements_kernel");
}

void swap_leading_axes(const float* src, size_t a, size_t b, size_t inner, float* dst, cudaStream_t stream) {
    const size_t n = a * b * inner;
    if (n == 0) return;
    SP_REQUIRE(src && dst, "swap_leading_axes: null pointer");
    swap_leading_axes_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(src, a, b, inner, dst, n);
    SP_CHECK_LAUNCH("swap_leading_axes_kernel");
}

void broadcast_rows(const float* b, float* y, size_t rows, size_t cols, cudaStream_t stream) {
    size_t n = rows * cols;
    if (n == 0) return;
    SP_REQUIRE(b && y, "broadcast_rows: null pointer");
    broadcast_rows_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(b, y, n, cols);
    SP_CHECK_LAUNCH("broadcast_rows_kernel");
}

void copy_channels(const float* src, size_t src_channels, size_t src_offset, float* dst,
                   size_t dst_channels, size_t dst_offset, size_t outer, size_t channels, size_t inner,
                   bool accumulate, cudaStream_t stream) {
    size_t n = outer * channels * inner;
    if (n == 0) return;
    SP_REQUIRE(src && dst, "copy_channels: null pointer");
    SP_REQUIRE(src_offset + channels <= src_channels && dst_offset + channels <= dst_channels,
               "copy_channels: block of " << channels << " channels at " << src_offset << " -> " << dst_offset
               << " does not fit " << src_channels << " -> " << dst_channels);
    copy_channels_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(
        src, src_channels, src_offset, dst, dst_channels, dst_offset, n, channels, inner, accumulate);
    SP_CHECK_LAUNCH("copy_channels_kernel");
}

void shortcut_forward(const float* x, float* y, size_t n, size_t c, size_t h, size_t w, size_t k,
                      size_t stride, size_t channel_offset, cudaStream_t stream) {
    SP_REQUIRE(stride >= 1, "shortcut_forward: stride " << stride);
    SP_REQUIRE(channel_offset + c <= k, "shortcut_forward: channels [" << channel_offset << ", "
               << channel_offset + c << ") do not fit in " << k);
    size_t p = (h + stride - 1) / stride, q = (w + stride - 1) / stride;
    size_t total = n * k * p * q;
    if (total == 0) return;
    SP_REQUIRE(x && y, "shortcut_forward: null pointer");
    shortcut_forward_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(x, y, total, c, h, w, k, p, q,
                                                                              stride, channel_offset);
    SP_CHECK_LAUNCH("shortcut_forward_kernel");
}

void shortcut_backward(const float* dy, float* dx, size_t n, size_t c, size_t h, size_t w, size_t k,
                       size_t stride, size_t channel_offset, bool accumulate, cudaStream_t stream) {
    SP_REQUIRE(stride >= 1, "shortcut_backward: stride " << stride);
    SP_REQUIRE(channel_offset + c <= k, "shortcut_backward: channels [" << channel_offset << ", "
               << channel_offset + c << ") do not fit in " << k);
    size_t p = (h + stride - 1) / stride, q = (w + stride - 1) / stride;
    size_t total = n * c * h * w;
    if (total == 0) return;
    SP_REQUIRE(dy && dx, "shortcut_backward: null pointer");
    shortcut_backward_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(
        dy, dx, total, c, h, w, k, p, q, stride, channel_offset, accumulate);
    SP_CHECK_LAUNCH("shortcut_backward_kernel");
}

}  // namespace sp::kernels
