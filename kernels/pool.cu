// Max-pool backward as a gather without atomics: every input element sums dy over the windows
// whose first maximum it is (the CPU reference's tie rule), so the result is deterministic.
#include "kernels/kernels.h"
#include "kernels/launch.h"

namespace sp::kernels {

namespace {

struct PoolDims {
    size_t h, w, p, q;
    long long window_h, window_w, stride_h, stride_w, pad_h, pad_w;
};

// Flat index (within the plane) of the first maximum of window (pi, qi), -1 if it is empty.
__device__ long long first_max(const float* plane, const PoolDims& d, long long pi, long long qi) {
    const long long h0 = pi * d.stride_h - d.pad_h, w0 = qi * d.stride_w - d.pad_w;
    long long best_at = -1;
    float best = 0.0f;
    for (long long r = 0; r < d.window_h; ++r) {
        const long long hh = h0 + r;
        if (hh < 0 || hh >= static_cast<long long>(d.h)) continue;
        for (long long s = 0; s < d.window_w; ++s) {
            const long long ww = w0 + s;
            if (ww < 0 || ww >= static_cast<long long>(d.w)) continue;
            const long long at = hh * static_cast<long long>(d.w) + ww;
            const float v = plane[at];
            if (best_at < 0 || v > best) {
                best = v;
                best_at = at;
            }
        }
    }
    return best_at;
}

__global__ void max_pool_backward_kernel(const float* x, const float* dy, float* dx, size_t total, PoolDims d,
                                         bool accumulate) {
    SP_GRID_STRIDE_LOOP(i, total) {
        const size_t plane = i / (d.h * d.w);
        const long long at = static_cast<long long>(i % (d.h * d.w));
        const long long hi = at / static_cast<long long>(d.w), wi = at % static_cast<long long>(d.w);
        const float* xp = x + plane * d.h * d.w;
        const float* dyp = dy + plane * d.p * d.q;
        // Windows covering (hi, wi): p * stride - pad <= hi < p * stride - pad + window.
        const long long hp = hi + d.pad_h, wp = wi + d.pad_w;
        const long long p_lo = hp < d.window_h ? 0 : (hp - d.window_h) / d.stride_h + 1;
        const long long q_lo = wp < d.window_w ? 0 : (wp - d.window_w) / d.stride_w + 1;
        const long long p_hi = min(hp / d.stride_h, static_cast<long long>(d.p) - 1);
        const long long q_hi = min(wp / d.stride_w, static_cast<long long>(d.q) - 1);
        float g = 0.0f;
        for (long long pi = p_lo; pi <= p_hi; ++pi)
            for (long long qi = q_lo; qi <= q_hi; ++qi)
                if (first_max(xp, d, pi, qi) == at) g += dyp[pi * static_cast<long long>(d.q) + qi];
        dx[i] = accumulate ? dx[i] + g : g;
    }
}

}  // namespace

void max_pool_backward(const float* x, const float* dy, float* dx, size_t planes, size_t h, size_t w, size_t p,
                       size_t q, int64_t window_h, int64_t window_w, int64_t stride_h, int64_t stride_w,
                       int64_t pad_h, int64_t pad_w, bool accumulate, cudaStream_t stream) {
    const size_t total = planes * h * w;
    if (total == 0) return;
    SP_REQUIRE(x && dy && dx, "max_pool_backward: null pointer");
    SP_REQUIRE(window_h > 0 && window_w > 0 && stride_h > 0 && stride_w > 0 && pad_h >= 0 && pad_w >= 0,
               "max_pool_backward: invalid window geometry");
    const PoolDims d{h, w, p, q, window_h, window_w, stride_h, stride_w, pad_h, pad_w};
    max_pool_backward_kernel<<<grid_for(total), kThreadsPerBlock, 0, stream>>>(x, dy, dx, total, d, accumulate);
    SP_CHECK_LAUNCH("max_pool_backward_kernel");
}

}  // namespace sp::kernels
