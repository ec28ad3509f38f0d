// Launchers of the project's own CUDA kernels, callable from host code compiled by g++.
// Each launcher asserts its preconditions, launches on the given stream and checks the launch.
// Sizes and indices are 64-bit (size_t) throughout. `accumulate` selects GradMode::accumulate
// (out += result) over overwrite (out = result).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_types.h"

namespace sp::kernels {

// ---- elementwise (kernels/elementwise.cu); y may alias an input
void fill(float* data, size_t n, float value, cudaStream_t stream);
void relu_forward(const float* x, float* y, size_t n, cudaStream_t stream);
// dx (+)= dy where y > 0
void relu_backward(const float* y, const float* dy, float* dx, size_t n, bool accumulate, cudaStream_t stream);
void add(const float* a, const float* b, float* y, size_t n, cudaStream_t stream);
void axpy(float alpha, const float* x, float* y, size_t n, cudaStream_t stream);
void multiply(const float* a, const float* b, float* y, size_t n, cudaStream_t stream);
// x, y (outer, channels, inner), mask (members, channels), outer divisible by members:
// y[o, c, s] = x[o, c, s] * mask[o / (outer / members), c]  (members = 1: one mask for all rows)
void scale_channels(const float* x, const float* mask, float* y, size_t outer, size_t channels,
                    size_t inner, size_t members, cudaStream_t stream);
// dst (rows, cols)[r, j] = src (rows, src_cols)[r, begin + j]
void slice_columns(const float* src, size_t rows, size_t src_cols, size_t begin, float* dst, size_t cols,
                   cudaStream_t stream);
// dst (n·k)[i] = src (n)[i / k]
void repeat_elements(const float* src, size_t n, size_t k, float* dst, cudaStream_t stream);
// dst (b, a, inner)[j, i, r] = src (a, b, inner)[i, j, r]
void swap_leading_axes(const float* src, size_t a, size_t b, size_t inner, float* dst, cudaStream_t stream);
// y (rows, cols) = b broadcast over rows (the bias term written before a GEMM with beta = 1)
void broadcast_rows(const float* b, float* y, size_t rows, size_t cols, cudaStream_t stream);
// Copies a channel block between (outer, src_channels, inner) and (outer, dst_channels, inner):
// dst[n, dst_offset + c, s] (+)= src[n, src_offset + c, s] for c < channels.
void copy_channels(const float* src, size_t src_channels, size_t src_offset, float* dst,
                   size_t dst_channels, size_t dst_offset, size_t outer, size_t channels, size_t inner,
                   bool accumulate, cudaStream_t stream);
// Option-A shortcut. x (N, C, H, W), y (N, K, P, Q), P = ceil(H / stride), Q = ceil(W / stride).
void shortcut_forward(const float* x, float* y, size_t n, size_t c, size_t h, size_t w, size_t k,
                      size_t stride, size_t channel_offset, cudaStream_t stream);
void shortcut_backward(const float* dy, float* dx, size_t n, size_t c, size_t h, size_t w, size_t k,
                       size_t stride, size_t channel_offset, bool accumulate, cudaStream_t stream);

// ---- reductions without atomics, fixed order (kernels/reduce.cu)
// x (outer, channels, inner): out[c] (+)= Σ_{n, s} x[n, c, s]
void channel_sum(const float* x, float* out, size_t outer, size_t channels, size_t inner, bool accumulate,
                 cudaStream_t stream);
// x (planes, inner): y[p] = mean of plane p
void plane_mean(const float* x, float* y, size_t planes, size_t inner, cudaStream_t stream);
// dx (planes, inner) (+)= dy[p] / inner
void plane_mean_backward(const float* dy, float* dx, size_t planes, size_t inner, bool accumulate,
                         cudaStream_t stream);

// ---- max-pool backward (kernels/pool.cu): x (planes, h, w), dy (planes, p, q); each input
//      receives dy of the windows whose first maximum (row-major scan) it is. No atomics.
void max_pool_backward(const float* x, const float* dy, float* dx, size_t planes, size_t h, size_t w, size_t p,
                       size_t q, int64_t window_h, int64_t window_w, int64_t stride_h, int64_t stride_w,
                       int64_t pad_h, int64_t pad_w, bool accumulate, cudaStream_t stream);

// ---- dropout (kernels/dropout.cu): u_i = cuRAND Philox uniform i of stream `key`;
//      keep_scale[i] = u_i >= p ? scale : 0, y = x * keep_scale
void dropout_forward(const float* x, float* y, float* keep_scale, size_t n, float p, float scale,
                     uint64_t key, cudaStream_t stream);

// ---- loss and metrics (kernels/reduce.cu). logits (rows, classes), labels (rows).
// Result of a per-row loss/metric: a sum over rows and the first row with an invalid label
// (-1 when every label is an integer in [0, classes)).
struct RowReduction {
    double sum;
    long long bad_row;
    float bad_label;
};
// Writes into `result` (device memory). `scratch` must hold rows_scratch_bytes(rows) bytes.
size_t rows_scratch_bytes(size_t rows);
void softmax_cross_entropy(const float* logits, const float* labels, size_t rows, size_t classes,
                           float label_smoothing, float* dlogits, void* scratch, RowReduction* result,
                           cudaStream_t stream);
void topk_correct(const float* logits, const float* labels, size_t rows, size_t classes, int k,
                  void* scratch, RowReduction* result, cudaStream_t stream);

// ---- population energies (kernels/reduce.cu). logits (members·rows_per_member, classes),
//      labels likewise; kind: 0 cross-entropy, 1 margin (-10 · margin), 2 error (ties count
//      against the label). energies[p] = the mean over member p's rows, each row evaluated in
//      double and the member's rows summed in row order (as the CPU backend does), no atomics.
//      bad_rows[p] = member p's first row with an invalid label, or -1.
size_t member_energies_scratch_bytes(size_t rows);
void member_energies(const float* logits, const float* labels, size_t members, size_t rows_per_member,
                     size_t classes, int kind, float* energies, long long* bad_rows, void* scratch,
                     cudaStream_t stream);

// ---- optimizer updates (kernels/optim.cu), PyTorch's rules; see nn/ops.h for the hyper-parameters
void sgd_update(float* params, const float* grads, float* velocity, size_t n, float lr, float momentum,
                float weight_decay, bool nesterov, bool first_step, cudaStream_t stream);
// step_size = lr / (1 - beta1^t), bias2_sqrt = sqrt(1 - beta2^t), computed by the caller
void adam_update(float* params, const float* grads, float* exp_avg, float* exp_avg_sq, size_t n,
                 float step_size, float bias2_sqrt, float beta1, float beta2, float eps,
                 float weight_decay, cudaStream_t stream);
void adadelta_update(float* params, const float* grads, float* square_avg, float* acc_delta, size_t n,
                     float lr, float rho, float eps, float weight_decay, cudaStream_t stream);

}  // namespace sp::kernels
