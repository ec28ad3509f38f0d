// CPU reference of the Gibbs pruning kernels (pruning/kernel_list.inc): the draws are the host
// samplers of pruning/gibbs.cpp; the flip and kept counts are plain loops.
#include "pruning/backends.h"
#include "pruning/gibbs.h"

namespace sp::cpu {

void gibbs_draw(Context&, const Tensor& weight, GibbsLayerShape s, const GibbsParams& p, uint64_t key, Tensor& mask,
                Tensor* masked_weight) {
    gibbs_draw_host(weight.data(), s, p, key, mask.data(), masked_weight ? masked_weight->data() : nullptr);
}

void gibbs_count_changes(Context&, const Tensor& prev, const Tensor& cur, Buffer& counters) {
    const float *p = prev.data(), *c = cur.data();
    const int64_t n = cur.numel();
    unsigned long long flips = 0, kept = 0;
#pragma omp parallel for reduction(+ : flips, kept) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
        flips += p[i] != c[i] ? 1 : 0;
        kept += c[i] != 0.0f ? 1 : 0;
    }
    auto* counts = static_cast<unsigned long long*>(counters.data());
    counts[0] += flips;
    counts[1] += kept;
}

}  // namespace sp::cpu
