// Loss, metrics and optimizer updates of the CUDA backend. The loss and the top-k count come
// back to the host with one small copy, together with the first row whose label is invalid.
#include <cmath>
#include <vector>

#include "kernels/check.h"
#include "kernels/kernels.h"
#include "nn/backends.h"

namespace sp::cuda {

namespace {

// Runs a per-row kernel writing a RowReduction into the workspace and reads it back.
template <typename Launch>
kernels::RowReduction reduce_rows(Context& ctx, size_t rows, size_t classes, const char* op, Launch launch) {
    const size_t scratch_bytes = kernels::rows_scratch_bytes(rows);
    const size_t result_offset = (scratch_bytes + 15) / 16 * 16;
    char* ws = static_cast<char*>(ctx.workspace(result_offset + sizeof(kernels::RowReduction)));
    auto* result = reinterpret_cast<kernels::RowReduction*>(ws + result_offset);
    launch(static_cast<void*>(ws), result);
    kernels::RowReduction host{};
    SP_CHECK(cudaMemcpyAsync(&host, result, sizeof(host), cudaMemcpyDeviceToHost, ctx.stream()));
    SP_CHECK(cudaStreamSynchronize(ctx.stream()));
    SP_REQUIRE(host.bad_row < 0, op << ": row " << host.bad_row << " has label " << host.bad_label
               << ", not a class index in [0, " << classes << ")");
    return host;
}

}  // namespace

float softmax_cross_entropy(Context& ctx, const Tensor& logits, const Tensor& labels, float label_smoothing,
                            Tensor* dlogits) {
    // logits (N, K), labels (N)
    const size_t rows = static_cast<size_t>(logits.dim(0)), classes = static_cast<size_t>(logits.dim(1));
    auto r = reduce_rows(ctx, rows, classes, "softmax_cross_entropy", [&](void* scratch, kernels::RowReduction* result) {
        kernels::softmax_cross_entropy(logits.data(), labels.data(), rows, classes, label_smoothing,
                                       dlogits ? dlogits->data() : nullptr, scratch, result, ctx.stream());
    });
    return static_cast<float>(r.sum / static_cast<double>(rows));
}

int64_t topk_correct(Context& ctx, const Tensor& logits, const Tensor& labels, int k) {
    const size_t rows = static_cast<size_t>(logits.dim(0)), classes = static_cast<size_t>(logits.dim(1));
    auto r = reduce_rows(ctx, rows, classes, "topk_correct", [&](void* scratch, kernels::RowReduction* result) {
        kernels::topk_correct(logits.data(), labels.data(), rows, classes, k, scratch, result, ctx.stream());
    });
    return static_cast<int64_t>(std::llround(r.sum));
}

void member_energies(Context& ctx, const Tensor& logits, const Tensor& labels, EnergyKind kind, Tensor& energies) {
    // logits (P·B, K), labels (P·B), energies (P)
    const size_t members = static_cast<size_t>(energies.dim(0));
    const size_t rows = static_cast<size_t>(logits.dim(0)), classes = static_cast<size_t>(logits.dim(1));
    const size_t scratch_bytes = (kernels::member_energies_scratch_bytes(rows) + 15) / 16 * 16;
    char* ws = static_cast<char*>(ctx.workspace(scratch_bytes + members * sizeof(long long)));
    auto* bad_rows = reinterpret_cast<long long*>(ws + scratch_bytes);
    const int k = kind == EnergyKind::cross_entropy ? 0 : kind == EnergyKind::margin ? 1 : 2;
    kernels::member_energies(logits.data(), labels.data(), members, rows / members, classes, k, energies.data(),
                             bad_rows, ws, ctx.stream());
    // The label check needs the flags on the host (one small copy; the caller reads the energies anyway).
    std::vector<long long> bad(members);
    SP_CHECK(cudaMemcpyAsync(bad.data(), bad_rows, members * sizeof(long long), cudaMemcpyDeviceToHost, ctx.stream()));
    SP_CHECK(cudaStreamSynchronize(ctx.stream()));
    for (long long r : bad) {
        if (r < 0) continue;
        float label = 0.0f;
        copy_bytes(&label, Device::cpu, labels.data() + r, Device::cuda, sizeof(float));
        SP_REQUIRE(false, "member_energies: row " << r << " has label " << label << ", not a class index in [0, "
                                                   << classes << ")");
    }
}

void sgd_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& velocity, const SgdHyper& hyper) {
    kernels::sgd_update(params.data(), grads.data(), velocity.data(), static_cast<size_t>(params.numel()), hyper.lr,
                        hyper.momentum, hyper.weight_decay, hyper.nesterov, hyper.first_step, ctx.stream());
}

void adam_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& exp_avg, Tensor& exp_avg_sq,
                 const AdamHyper& hyper, int64_t step) {
    SP_REQUIRE(step >= 1, "adam_update: step " << step << " (the first step is 1)");
    // Bias corrections in double, as PyTorch computes them in Python floats.
    const double bias1 = 1.0 - std::pow(static_cast<double>(hyper.beta1), static_cast<double>(step));
    const double bias2 = 1.0 - std::pow(static_cast<double>(hyper.beta2), static_cast<double>(step));
    const float step_size = static_cast<float>(hyper.lr / bias1);
    const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
    kernels::adam_update(params.data(), grads.data(), exp_avg.data(), exp_avg_sq.data(),
                         static_cast<size_t>(params.numel()), step_size, bias2_sqrt, hyper.beta1, hyper.beta2,
                         hyper.eps, hyper.weight_decay, ctx.stream());
}

void adadelta_update(Context& ctx, Tensor& params, const Tensor& grads, Tensor& square_avg, Tensor& acc_delta,
                     const AdadeltaHyper& hyper) {
    kernels::adadelta_update(params.data(), grads.data(), square_avg.data(), acc_delta.data(),
                             static_cast<size_t>(params.numel()), hyper.lr, hyper.rho, hyper.eps,
                             hyper.weight_decay, ctx.stream());
}

}  // namespace sp::cuda
