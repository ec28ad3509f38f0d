// CUDA implementation of the Gibbs pruning kernels (pruning/kernel_list.inc): the launchers of
// kernels/gibbs.cu on the context's stream, scratch from ctx.workspace(). The masks equal the
// CPU reference's bit for bit (kernels/gibbs.h).
#include "kernels/gibbs.h"
#include "nn/ops.h"
#include "pruning/backends.h"
#include "pruning/gibbs.h"

namespace sp::cuda {

void gibbs_draw(Context& ctx, const Tensor& weight, GibbsLayerShape s, const GibbsParams& p, uint64_t key, Tensor& mask,
                Tensor* masked_weight) {
    float* masked = masked_weight ? masked_weight->data() : nullptr;
    const int kind = gibbs_statistic_kind(p.hamiltonian);
    const int64_t n_stat = kind == 0 ? s.numel() : kind == 1 ? s.filters * s.channels : s.filters;
    // Workspace: statistic (n_stat), Q (1), the two half sums (2 K), the percentile's scratch.
    auto aligned = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
    const size_t stat_bytes = aligned(static_cast<size_t>(n_stat) * sizeof(float));
    const size_t q_bytes = 256, sums_bytes = aligned(2 * static_cast<size_t>(s.filters) * sizeof(float));
    const size_t pct_bytes = kernels::gibbs_percentile_scratch_bytes(static_cast<size_t>(n_stat));
    char* ws = static_cast<char*>(ctx.workspace(stat_bytes + q_bytes + sums_bytes + pct_bytes));
    float* stat = reinterpret_cast<float*>(ws);
    float* q = reinterpret_cast<float*>(ws + stat_bytes);
    float* sums = reinterpret_cast<float*>(ws + stat_bytes + q_bytes);
    void* pct = ws + stat_bytes + q_bytes + sums_bytes;
    cudaStream_t stream = ctx.stream();
    kernels::gibbs_statistic(weight.data(), s.filters, s.channels, s.area, kind, stat, stream);
    const PercentilePosition pos = percentile_position(n_stat, p.p);
    kernels::gibbs_percentile(stat, static_cast<size_t>(n_stat), pos.lo, pos.frac, q, pct, pct_bytes, stream);
    switch (p.hamiltonian) {
        case GibbsHamiltonian::unstructured:
            kernels::gibbs_draw_unstructured(weight.data(), q, static_cast<size_t>(s.numel()), p.beta, key, mask.data(),
                                             masked, stream);
            return;
        case GibbsHamiltonian::kernel:
            kernels::gibbs_draw_kernels(weight.data(), q, s.filters, s.channels, s.area, 0, s.channels, nullptr, p.coupling,
                                        p.beta, key, 0, mask.data(), stream);
            break;
        case GibbsHamiltonian::filter: {
            kernels::gibbs_filter_start(stat, q, s.filters, s.channels * s.area, mask.data(), stream);
            const int64_t split = s.channels / 2;
            float* sums_b = sums;
            float* sums_a = sums + s.filters;
            for (int64_t sweep = 0; sweep < p.sweeps; ++sweep) {
                const uint64_t base = static_cast<uint64_t>(sweep) * static_cast<uint64_t>(s.filters * s.channels);
                kernels::gibbs_spin_sums(mask.data(), s.filters, s.channels, s.area, split, s.channels, sums_b, stream);
                kernels::gibbs_draw_kernels(weight.data(), q, s.filters, s.channels, s.area, 0, split, sums_b, p.coupling,
                                            p.beta, key, base, mask.data(), stream);
                kernels::gibbs_spin_sums(mask.data(), s.filters, s.channels, s.area, 0, split, sums_a, stream);
                kernels::gibbs_draw_kernels(weight.data(), q, s.filters, s.channels, s.area, split, s.channels, sums_a,
                                            p.coupling, p.beta, key, base, mask.data(), stream);
            }
            break;
        }
    }
    // kernel / filter: the enumeration dominates; the product is a separate pass
    if (masked_weight) sp::multiply(ctx, weight.reshaped(mask.shape()), mask, *masked_weight);
}

void gibbs_count_changes(Context& ctx, const Tensor& prev, const Tensor& cur, Buffer& counters) {
    kernels::gibbs_count(prev.data(), cur.data(), static_cast<size_t>(cur.numel()),
                         static_cast<unsigned long long*>(counters.data()), ctx.stream());
}

}  // namespace sp::cuda
