// Reductions without atomics (so results do not depend on scheduling): per-channel sums for
// bias gradients, per-plane means for global average pooling, and the per-row softmax
// cross-entropy and top-k kernels with their fixed-order reduction over rows.
#include <cfloat>

#include "kernels/kernels.h"
#include "kernels/launch.h"

namespace sp::kernels {

namespace {

// Sum over the block in a fixed order (warp shuffles, then one warp over the warp sums).
// blockDim.x must be a multiple of 32 (at most 1024). Every thread receives the total.
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T partial[32];
    __shared__ T total;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? partial[lane] : T(0);
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
        if (lane == 0) total = v;
    }
    __syncthreads();
    T result = total;
    __syncthreads();  // `partial`/`total` may be reused by the next call
    return result;
}

__device__ float block_max(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? partial[lane] : -FLT_MAX;
        for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
        if (lane == 0) total = v;
    }
    __syncthreads();
    float result = total;
    __syncthreads();
    return result;
}

// Threads per block for a reduction of `length` values: a multiple of 32, at most 256.
unsigned int reduce_threads(size_t length) {
    if (length <= 32) return 32;
    if (length <= 128) return 128;
    return 256;
}

__global__ void channel_sum_kernel(const float* x, float* out, size_t outer, size_t channels, size_t inner,
                                   bool accumulate) {
    const size_t m = outer * inner;
    for (size_t c = blockIdx.x; c < channels; c += gridDim.x) {
        float s = 0.0f;
        for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
            size_t o = j / inner, r = j % inner;
            s += x[(o * channels + c) * inner + r];
        }
        s = block_sum(s);
        if (threadIdx.x == 0) out[c] = accumulate ? out[c] + s : s;
    }
}

__global__ void plane_mean_kernel(const float* x, float* y, size_t planes, size_t inner) {
    for (size_t p = blockIdx.x; p < planes; p += gridDim.x) {
        float s = 0.0f;
        for (size_t j = threadIdx.x; j < inner; j += blockDim.x) s += x[p * inner + j];
        s = block_sum(s);
        if (threadIdx.x == 0) y[p] = s / static_cast<float>(inner);
    }
}

__global__ void plane_mean_backward_kernel(const float* dy, float* dx, size_t n, size_t inner, bool accumulate) {
    SP_GRID_STRIDE_LOOP(i, n) {
        float g = dy[i / inner] / static_cast<float>(inner);
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

// A label is valid when it is an integer in [0, classes) (NaN fails every comparison).
__device__ bool valid_label(float label, size_t classes) {
    return label >= 0.0f && label < static_cast<float>(classes) && floorf(label) == label;
}

// One block per row: row_value[r] = the row's loss; row_bad[r] = 1 for an invalid label.
__global__ void softmax_cross_entropy_kernel(const float* logits, const float* labels, size_t rows,
                                             size_t classes, float smoothing, float* dlogits,
                                             double* row_value, int* row_bad) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* z = logits + r * classes;
        const float label = labels[r];
        const bool valid = valid_label(label, classes);
        const size_t y = valid ? static_cast<size_t>(label) : 0;

        float m = -FLT_MAX;
        for (size_t j = threadIdx.x; j < classes; j += blockDim.x) m = fmaxf(m, z[j]);
        m = block_max(m);
        float sum_exp = 0.0f, sum_shifted = 0.0f;
        for (size_t j = threadIdx.x; j < classes; j += blockDim.x) {
            sum_exp += expf(z[j] - m);
            sum_shifted += z[j] - m;
        }
        sum_exp = block_sum(sum_exp);
        sum_shifted = block_sum(sum_shifted);
        const float off_target = smoothing / static_cast<float>(classes);
        const float on_target = 1.0f - smoothing;
        if (threadIdx.x == 0) {
            // -Σ t_j log softmax_j = log S - Σ t_j (z_j - m), as Σ t_j = 1.
            float loss = logf(sum_exp) - (on_target * (z[y] - m) + off_target * sum_shifted);
            row_value[r] = valid ? static_cast<double>(loss) : 0.0;
            row_bad[r] = valid ? 0 : 1;
        }
        if (dlogits) {
            const float inv_rows = 1.0f / static_cast<float>(rows);
            for (size_t j = threadIdx.x; j < classes; j += blockDim.x) {
                float target = off_target + (j == y ? on_target : 0.0f);
                dlogits[r * classes + j] = (expf(z[j] - m) / sum_exp - target) * inv_rows;
            }
        }
    }
}

// One block per row: row_value[r] = 1 when the label is among the k largest logits, where
// every other logit greater than or equal to the label's counts against it.
__global__ void topk_kernel(const float* logits, const float* labels, size_t rows, size_t classes, int k,
                            double* row_value, int* row_bad) {
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* z = logits + r * classes;
        const float label = labels[r];
        const bool valid = valid_label(label, classes);
        const size_t y = valid ? static_cast<size_t>(label) : 0;
        const float zy = z[y];
        long long ahead = 0;
        for (size_t j = threadIdx.x; j < classes; j += blockDim.x)
            ahead += (z[j] > zy || (j != y && z[j] == zy)) ? 1 : 0;
        ahead = block_sum(ahead);
        if (threadIdx.x == 0) {
            row_value[r] = (valid && ahead < k) ? 1.0 : 0.0;
            row_bad[r] = valid ? 0 : 1;
        }
    }
}

// One block: the sum of row_value in a fixed order and the first invalid row.
__global__ void finish_rows_kernel(const double* row_value, const int* row_bad, const float* labels,
                                   size_t rows, RowReduction* result) {
    double s = 0.0;
    long long first_bad = -1;
    for (size_t r = threadIdx.x; r < rows; r += blockDim.x) {
        s += row_value[r];
        if (row_bad[r] && first_bad < 0) first_bad = static_cast<long long>(r);
    }
    s = block_sum(s);
    // Smallest bad row: encode "none" as rows so that a sum-free min works with block_max on negatives.
    __shared__ long long firsts[1024];
    firsts[threadIdx.x] = first_bad < 0 ? static_cast<long long>(rows) : first_bad;
    __syncthreads();
    if (threadIdx.x == 0) {
        long long best = static_cast<long long>(rows);
        for (unsigned t = 0; t < blockDim.x; ++t) best = firsts[t] < best ? firsts[t] : best;
        result->sum = s;
        result->bad_row = best < static_cast<long long>(rows) ? best : -1;
        result->bad_label = best < static_cast<long long>(rows) ? labels[best] : 0.0f;
    }
}

// One thread per row: row_value[r] = the row's energy term in double, row_bad[r] = 1 for an
// invalid label. kind: 0 cross-entropy, 1 -10 · margin, 2 error.
__global__ void member_rows_kernel(const float* logits, const float* labels, size_t rows, size_t classes, int kind,
                                   double* row_value, int* row_bad) {
    SP_GRID_STRIDE_LOOP(r, rows) {
        const float* z = logits + r * classes;
        const float label = labels[r];
        const bool valid = valid_label(label, classes);
        const size_t y = valid ? static_cast<size_t>(label) : 0;
        const double zy = z[y];
        double v = 0.0;
        if (kind == 0) {
            double m = z[0];
            for (size_t j = 1; j < classes; ++j) m = fmax(m, static_cast<double>(z[j]));
            double sum = 0.0;
            for (size_t j = 0; j < classes; ++j) sum += exp(static_cast<double>(z[j]) - m);
            v = m + log(sum) - zy;
        } else if (kind == 1) {
            double other = -DBL_MAX;
            for (size_t j = 0; j < classes; ++j)
                if (j != y) other = fmax(other, static_cast<double>(z[j]));
            v = -10.0 * (zy - other);
        } else {
            bool beaten = false;  // another logit >= the label's: top-1 wrong
            for (size_t j = 0; j < classes; ++j) beaten = beaten || (j != y && static_cast<double>(z[j]) >= zy);
            v = beaten ? 1.0 : 0.0;
        }
        row_value[r] = valid ? v : 0.0;
        row_bad[r] = valid ? 0 : 1;
    }
}

// One thread per member: the mean of its rows, summed in row order (the CPU's order).
__global__ void member_means_kernel(const double* row_value, const int* row_bad, size_t members,
                                    size_t rows_per_member, float* energies, long long* bad_rows) {
    SP_GRID_STRIDE_LOOP(p, members) {
        double s = 0.0;
        long long bad = -1;
        for (size_t j = 0; j < rows_per_member; ++j) {
            const size_t r = p * rows_per_member + j;
            s += row_value[r];
            if (row_bad[r] && bad < 0) bad = static_cast<long long>(r);
        }
        energies[p] = static_cast<float>(s / static_cast<double>(rows_per_member));
        bad_rows[p] = bad;
    }
}

}  // namespace

size_t member_energies_scratch_bytes(size_t rows) { return rows * (sizeof(double) + sizeof(int)); }

void member_energies(const float* logits, const float* labels, size_t members, size_t rows_per_member,
                     size_t classes, int kind, float* energies, long long* bad_rows, void* scratch,
                     cudaStream_t stream) {
    const size_t rows = members * rows_per_member;
    SP_REQUIRE(rows > 0 && classes > 0, "member_energies: empty logits (" << rows << ", " << classes << ")");
    SP_REQUIRE(kind >= 0 && kind <= 2, "member_energies: unknown energy kind " << kind);
    SP_REQUIRE(logits && labels && energies && bad_rows && scratch, "member_energies: null pointer");
    double* row_value = static_cast<double*>(scratch);
    int* row_bad = reinterpret_cast<int*>(row_value + rows);
    member_rows_kernel<<<grid_for(rows), kThreadsPerBlock, 0, stream>>>(logits, labels, rows, classes, kind,
                                                                        row_value, row_bad);
    SP_CHECK_LAUNCH("member_rows_kernel");
    member_means_kernel<<<grid_for(members, 128), 128, 0, stream>>>(row_value, row_bad, members, rows_per_member,
                                                                   energies, bad_rows);
    SP_CHECK_LAUNCH("member_means_kernel");
}

void channel_sum(const float* x, float* out, size_t outer, size_t channels, size_t inner, bool accumulate,
                 cudaStream_t stream) {
    if (channels == 0) return;
    SP_REQUIRE(x && out, "channel_sum: null pointer");
    channel_sum_kernel<<<grid_for(channels, 1), reduce_threads(outer * inner), 0, stream>>>(
        x, out, outer, channels, inner, accumulate);
    SP_CHECK_LAUNCH("channel_sum_kernel");
}

void plane_mean(const float* x, float* y, size_t planes, size_t inner, cudaStream_t stream) {
    if (planes == 0) return;
    SP_REQUIRE(inner > 0, "plane_mean: empty planes");
    SP_REQUIRE(x && y, "plane_mean: null pointer");
    plane_mean_kernel<<<grid_for(planes, 1), reduce_threads(inner), 0, stream>>>(x, y, planes, inner);
    SP_CHECK_LAUNCH("plane_mean_kernel");
}

void plane_mean_backward(const float* dy, float* dx, size_t planes, size_t inner, bool accumulate,
                         cudaStream_t stream) {
    size_t n = planes * inner;
    if (n == 0) return;
    SP_REQUIRE(dy && dx, "plane_mean_backward: null pointer");
    plane_mean_backward_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(dy, dx, n, inner, accumulate);
    SP_CHECK_LAUNCH("plane_mean_backward_kernel");
}

size_t rows_scratch_bytes(size_t rows) { return rows * (sizeof(double) + sizeof(int)); }

void softmax_cross_entropy(const float* logits, const float* labels, size_t rows, size_t classes,
                           float label_smoothing, float* dlogits, void* scratch, RowReduction* result,
                           cudaStream_t stream) {
    SP_REQUIRE(rows > 0 && classes > 0, "softmax_cross_entropy: empty logits (" << rows << ", " << classes << ")");
    SP_REQUIRE(logits && labels && scratch && result, "softmax_cross_entropy: null pointer");
    double* row_value = static_cast<double*>(scratch);
    int* row_bad = reinterpret_cast<int*>(row_value + rows);
    softmax_cross_entropy_kernel<<<grid_for(rows, 1), reduce_threads(classes), 0, stream>>>(
        logits, labels, rows, classes, label_smoothing, dlogits, row_value, row_bad);
    SP_CHECK_LAUNCH("softmax_cross_entropy_kernel");
    finish_rows_kernel<<<1, reduce_threads(rows), 0, stream>>>(row_value, row_bad, labels, rows, result);
    SP_CHECK_LAUNCH("finish_rows_kernel");
}

void topk_correct(const float* logits, const float* labels, size_t rows, size_t classes, int k,
                  void* scratch, RowReduction* result, cudaStream_t stream) {
    SP_REQUIRE(rows > 0 && classes > 0, "topk_correct: empty logits (" << rows << ", " << classes << ")");
    SP_REQUIRE(k >= 1, "topk_correct: k = " << k);
    SP_REQUIRE(logits && labels && scratch && result, "topk_correct: null pointer");
    double* row_value = static_cast<double*>(scratch);
    int* row_bad = reinterpret_cast<int*>(row_value + rows);
    topk_kernel<<<grid_for(rows, 1), reduce_threads(classes), 0, stream>>>(logits, labels, rows, classes, k,
                                                                          row_value, row_bad);
    SP_CHECK_LAUNCH("topk_kernel");
    finish_rows_kernel<<<1, reduce_threads(rows), 0, stream>>>(row_value, row_bad, labels, rows, result);
    SP_CHECK_LAUNCH("finish_rows_kernel");
}

}  // namespace sp::kernels
