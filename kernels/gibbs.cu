// CUDA kernels of the Gibbs pruning samplers. Random draw i of stream `key` is output i % 4 of
// Philox block i / 4 (kernels/philox.h, cuRAND's Philox4x32-10, computed once per block of four
// draws), as on the CPU; every decision goes through the shared arithmetic of kernels/gibbs.h,
// so the masks equal the CPU reference's bit for bit.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/gibbs.h"
#include "kernels/launch.h"
#include "kernels/philox.h"

namespace sp::kernels {

namespace {

// kind 0: w² per weight; 1: mean w² per kernel; 2: mean w² per filter (sums in index order, as the CPU).
__global__ void statistic_kernel(const float* w, size_t filters, size_t channels, size_t area, int kind, float* out) {
    const size_t per = kind == 0 ? 1 : kind == 1 ? area : channels * area;
    const size_t n = filters * channels * area / per;
    SP_GRID_STRIDE_LOOP(j, n) {
        float s = 0.0f;
        for (size_t i = 0; i < per; ++i) s += gibbs_mul(w[j * per + i], w[j * per + i]);
        out[j] = kind == 0 ? s : s / static_cast<float>(per);
    }
}

__global__ void pick_percentile_kernel(const float* sorted, size_t n, size_t lo, float frac, float* q) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const size_t hi = lo + 1 < n ? lo + 1 : lo;
    *q = gibbs_percentile_value(sorted[lo], sorted[hi], frac);
}

// Weights 4b..4b+3 of Philox blocks b in [first_block, blocks): one block per thread.
__global__ void unstructured_kernel(const float* w, const float* q, size_t n, size_t first_block, float beta,
                                    unsigned long long key, float* mask, float* masked_weight) {
    const float threshold = *q;
    SP_GRID_STRIDE_LOOP(j, (n + 3) / 4 - first_block) {
        const size_t b = first_block + j;
        const PhiloxBlock raw = philox_block(key, b);
#pragma unroll
        for (size_t k = 0; k < 4 && 4 * b + k < n; ++k) {
            const size_t i = 4 * b + k;
            const float wi = w[i];
            const float m = gibbs_keep_weight(wi, threshold, beta, raw.v[k]) ? 1.0f : 0.0f;
            mask[i] = m;
            if (masked_weight) masked_weight[i] = __fmul_rn(wi, m);  // what multiply() would write
        }
    }
}

// The same draw for the n4 whole blocks with 16-byte loads and stores (every pointer aligned).
__global__ void unstructured_vec4_kernel(const float4* w, const float* q, size_t n4, float beta, unsigned long long key,
                                         float4* mask, float4* masked_weight) {
    const float threshold = *q;
    SP_GRID_STRIDE_LOOP(b, n4) {
        const PhiloxBlock r = philox_block(key, b);
        const float4 x = w[b];
        const float4 m = make_float4(gibbs_keep_weight(x.x, threshold, beta, r.v[0]) ? 1.0f : 0.0f,
                                     gibbs_keep_weight(x.y, threshold, beta, r.v[1]) ? 1.0f : 0.0f,
                                     gibbs_keep_weight(x.z, threshold, beta, r.v[2]) ? 1.0f : 0.0f,
                                     gibbs_keep_weight(x.w, threshold, beta, r.v[3]) ? 1.0f : 0.0f);
        mask[b] = m;
        if (masked_weight)
            masked_weight[b] = make_float4(__fmul_rn(x.x, m.x), __fmul_rn(x.y, m.y), __fmul_rn(x.z, m.z), __fmul_rn(x.w, m.w));
    }
}

constexpr int kKernelThreads = 128;

__global__ void kernels_kernel(const float* w, const float* q, size_t filters, size_t channels, size_t area,
                               size_t channel_begin, size_t channel_end, const float* other_sums, float coupling,
                               float beta, unsigned long long key, unsigned long long counter_base, float* mask) {
    __shared__ float h[kGibbsMaxArea];
    __shared__ float best_value[kKernelThreads];
    __shared__ uint32_t best_config[kKernelThreads];
    const size_t half = channel_end - channel_begin;
    const uint32_t configs = 1u << area;
    for (size_t job = blockIdx.x; job < filters * half; job += gridDim.x) {
        const size_t f = job / half, c = channel_begin + job % half;
        const size_t kernel = f * channels + c;
        const float* wk = w + kernel * area;
        if (threadIdx.x < area) {
            const float shift = other_sums ? gibbs_mul(coupling, other_sums[f]) : 0.0f;
            h[threadIdx.x] = (*q - gibbs_mul(wk[threadIdx.x], wk[threadIdx.x])) - shift;
        }
        __syncthreads();
        float bv = -INFINITY;
        uint32_t bi = configs;
        // Configuration m takes draw base + m. Each thread takes whole Philox blocks of the range
        // [base, base + configs), computing each block once for its (up to) four configurations;
        // the winner does not depend on which thread saw which (gibbs_better breaks ties by index).
        const size_t base = (counter_base + kernel) * configs;
        for (size_t b = base / 4 + threadIdx.x; 4 * b < base + configs; b += blockDim.x) {
            const PhiloxBlock raw = philox_block(key, b);
#pragma unroll
            for (uint32_t k = 0; k < 4; ++k) {
                const size_t draw = 4 * b + k;
                if (draw < base || draw >= base + configs) continue;
                const uint32_t m = static_cast<uint32_t>(draw - base);
                const float v = gibbs_config_logit(h, static_cast<int>(area), m, coupling, beta) + gibbs_gumbel(raw.v[k]);
                if (gibbs_better(v, m, bv, bi)) bv = v, bi = m;
            }
        }
        best_value[threadIdx.x] = bv;
        best_config[threadIdx.x] = bi;
        __syncthreads();
        for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
            if (static_cast<int>(threadIdx.x) < stride &&
                gibbs_better(best_value[threadIdx.x + stride], best_config[threadIdx.x + stride],
                             best_value[threadIdx.x], best_config[threadIdx.x])) {
                best_value[threadIdx.x] = best_value[threadIdx.x + stride];
                best_config[threadIdx.x] = best_config[threadIdx.x + stride];
            }
            __syncthreads();
        }
        if (threadIdx.x < area) mask[kernel * area + threadIdx.x] = (best_config[0] >> threadIdx.x) & 1u ? 1.0f : 0.0f;
        __syncthreads();  // h and the reduction arrays are reused by the next job
    }
}

// One thread per filter; integer counts, so the order does not matter.
__global__ void spin_sums_kernel(const float* mask, size_t filters, size_t channels, size_t area,
                                 size_t channel_begin, size_t channel_end, float* sums) {
    SP_GRID_STRIDE_LOOP(f, filters) {
        long long s = 0;
        for (size_t i = (f * channels + channel_begin) * area; i < (f * channels + channel_end) * area; ++i)
            s += mask[i] != 0.0f ? 1 : -1;
        sums[f] = static_cast<float>(s);
    }
}

__global__ void filter_start_kernel(const float* means, const float* q, size_t filters, size_t per_filter,
                                    float* mask) {
    const float threshold = *q;
    SP_GRID_STRIDE_LOOP(i, filters * per_filter) mask[i] = means[i / per_filter] > threshold ? 1.0f : 0.0f;
}

__global__ void count_kernel(const float* prev, const float* cur, size_t n, unsigned long long* counters) {
    unsigned long long flips = 0, kept = 0;
    SP_GRID_STRIDE_LOOP(i, n) {
        flips += prev[i] != cur[i] ? 1 : 0;
        kept += cur[i] != 0.0f ? 1 : 0;
    }
    if (flips) atomicAdd(counters, flips);
    if (kept) atomicAdd(counters + 1, kept);
}

}  // namespace

void gibbs_statistic(const float* w, int64_t filters, int64_t channels, int64_t area, int kind, float* out,
                     cudaStream_t stream) {
    SP_REQUIRE(w && out && kind >= 0 && kind <= 2, "gibbs_statistic: null pointer or kind " << kind);
    const size_t n = static_cast<size_t>(kind == 0 ? filters * channels * area : kind == 1 ? filters * channels : filters);
    if (n == 0) return;
    statistic_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(w, filters, channels, area, kind, out);
    SP_CHECK_LAUNCH("gibbs_statistic_kernel");
}

size_t gibbs_percentile_scratch_bytes(size_t n) {
    // Checked here: callers size the scratch before gibbs_percentile runs.
    SP_REQUIRE(n < (size_t{1} << 31), "gibbs_percentile: " << n << " values exceed CUB's int count");
    size_t temp = 0;
    SP_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, temp, static_cast<const float*>(nullptr),
                                            static_cast<float*>(nullptr), static_cast<int>(n)));
    return n * sizeof(float) + temp + 256;
}

void gibbs_percentile(const float* values, size_t n, int64_t lo, float frac, float* q, void* scratch,
                      size_t scratch_bytes, cudaStream_t stream) {
    SP_REQUIRE(values && q && scratch && n > 0 && lo >= 0 && static_cast<size_t>(lo) < n,
               "gibbs_percentile: null pointer or position " << lo << " of " << n);
    SP_REQUIRE(scratch_bytes >= gibbs_percentile_scratch_bytes(n), "gibbs_percentile: scratch too small");
    float* sorted = static_cast<float*>(scratch);
    const size_t sorted_bytes = (n * sizeof(float) + 255) / 256 * 256;
    size_t temp = scratch_bytes - sorted_bytes;
    SP_CHECK(cub::DeviceRadixSort::SortKeys(static_cast<char*>(scratch) + sorted_bytes, temp, values, sorted,
                                            static_cast<int>(n), 0, 32, stream));
    pick_percentile_kernel<<<1, 1, 0, stream>>>(sorted, n, static_cast<size_t>(lo), frac, q);
    SP_CHECK_LAUNCH("gibbs_pick_percentile_kernel");
}

void gibbs_draw_unstructured(const float* w, const float* q, size_t n, float beta, uint64_t key, float* mask,
                             float* masked_weight, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(w && q && mask, "gibbs_draw_unstructured: null pointer");
    auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    size_t first_scalar_block = 0;
    if (aligned(w) && aligned(mask) && (!masked_weight || aligned(masked_weight)) && n >= 4) {
        first_scalar_block = n / 4;
        unstructured_vec4_kernel<<<grid_for(n / 4), kThreadsPerBlock, 0, stream>>>(
            reinterpret_cast<const float4*>(w), q, n / 4, beta, static_cast<unsigned long long>(key),
            reinterpret_cast<float4*>(mask), reinterpret_cast<float4*>(masked_weight));
        SP_CHECK_LAUNCH("gibbs_unstructured_vec4_kernel");
    }
    if (first_scalar_block < (n + 3) / 4) {  // unaligned views, or the last partial block
        unstructured_kernel<<<grid_for((n + 3) / 4 - first_scalar_block), kThreadsPerBlock, 0, stream>>>(
            w, q, n, first_scalar_block, beta, static_cast<unsigned long long>(key), mask, masked_weight);
        SP_CHECK_LAUNCH("gibbs_unstructured_kernel");
    }
}

void gibbs_draw_kernels(const float* w, const float* q, int64_t filters, int64_t channels, int64_t area,
                        int64_t channel_begin, int64_t channel_end, const float* other_sums, float coupling,
                        float beta, uint64_t key, uint64_t counter_base, float* mask, cudaStream_t stream) {
    SP_REQUIRE(w && q && mask, "gibbs_draw_kernels: null pointer");
    SP_REQUIRE(area >= 1 && area <= kGibbsMaxArea, "gibbs_draw_kernels: kernel area " << area << " outside [1, "
                                                                                       << kGibbsMaxArea << "]");
    SP_REQUIRE(0 <= channel_begin && channel_begin <= channel_end && channel_end <= channels,
               "gibbs_draw_kernels: channels [" << channel_begin << ", " << channel_end << ") of " << channels);
    const size_t jobs = static_cast<size_t>(filters * (channel_end - channel_begin));
    if (jobs == 0) return;
    const unsigned int blocks = static_cast<unsigned int>(jobs < 65535u * 32u ? jobs : 65535u * 32u);
    kernels_kernel<<<blocks, kKernelThreads, 0, stream>>>(w, q, filters, channels, area, channel_begin, channel_end,
                                                          other_sums, coupling, beta,
                                                          static_cast<unsigned long long>(key),
                                                          static_cast<unsigned long long>(counter_base), mask);
    SP_CHECK_LAUNCH("gibbs_kernels_kernel");
}

void gibbs_spin_sums(const float* mask, int64_t filters, int64_t channels, int64_t area, int64_t channel_begin,
                     int64_t channel_end, float* sums, cudaStream_t stream) {
    if (filters == 0) return;
    SP_REQUIRE(mask && sums, "gibbs_spin_sums: null pointer");
    spin_sums_kernel<<<grid_for(filters), kThreadsPerBlock, 0, stream>>>(mask, filters, channels, area, channel_begin,
                                                                         channel_end, sums);
    SP_CHECK_LAUNCH("gibbs_spin_sums_kernel");
}

void gibbs_filter_start(const float* filter_means, const float* q, int64_t filters, int64_t per_filter, float* mask,
                        cudaStream_t stream) {
    const size_t n = static_cast<size_t>(filters * per_filter);
    if (n == 0) return;
    SP_REQUIRE(filter_means && q && mask, "gibbs_filter_start: null pointer");
    filter_start_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(filter_means, q, filters, per_filter, mask);
    SP_CHECK_LAUNCH("gibbs_filter_start_kernel");
}

void gibbs_count(const float* prev, const float* cur, size_t n, unsigned long long* counters, cudaStream_t stream) {
    if (n == 0) return;
    SP_REQUIRE(prev && cur && counters, "gibbs_count: null pointer");
    count_kernel<<<grid_for(n), kThreadsPerBlock, 0, stream>>>(prev, cur, n, counters);
    SP_CHECK_LAUNCH("gibbs_count_kernel");
}

}  // namespace sp::kernels
