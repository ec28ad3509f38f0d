// CPU convolution (dilation 1, groups): im2col + GEMM forward, GEMM + col2im backward data,
// GEMM backward weight, and the bias gradient channel_sum. Samples are processed in chunks
// whose columns are laid side by side, so each group needs one large GEMM per chunk.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/error.h"
#include "nn/backends.h"
#include "nn/cpu/common.h"
#include "nn/cpu/gemm.h"

namespace sp::cpu {

namespace {

// Sizes of one convolution problem.
struct ConvDims {
    int64_t n, c, h, w, k, r, s, p, q, groups, cg, kg;
    int64_t crs() const { return c * r * s; }      // rows of the column matrix
    int64_t cgrs() const { return cg * r * s; }    // rows of one group's slice
    int64_t pq() const { return p * q; }
};

ConvDims dims_of(const Shape& x, const Shape& w, const ConvGeometry& g) {
    ConvDims d;
    d.n = x[0]; d.c = x[1]; d.h = x[2]; d.w = x[3];
    d.k = w[0]; d.r = w[2]; d.s = w[3];
    d.p = window_output_size(d.h, d.r, g.stride_h, g.pad_h);
    d.q = window_output_size(d.w, d.s, g.stride_w, g.pad_w);
    d.groups = g.groups;
    d.cg = d.c / g.groups;
    d.kg = d.k / g.groups;
    return d;
}

// Samples per chunk: the column matrix (CRS, nb PQ) plus the output block (K, nb PQ) stay
// within `budget` floats of workspace (at least one sample).
int64_t chunk_samples(const ConvDims& d, int64_t budget) {
    const int64_t per_sample = (d.crs() + d.k) * d.pq();
    return std::max<int64_t>(1, std::min<int64_t>(d.n, budget / std::max<int64_t>(per_sample, 1)));
}

// Budgets. The weight gradient sums over every column of a chunk, so its chunking sets the
// order of that sum: it keeps large chunks (about 64 MiB). The forward pass and the data gradient
// sum over CRS or K only (per output element), so their chunk size changes no sum; a chunk
// small enough to stay in a core's cache (about 1 MiB) is read back by the GEMM from there.
constexpr int64_t kWeightGradChunkFloats = int64_t{16} << 20;
constexpr int64_t kCachedChunkFloats = int64_t{1} << 18;

// The output columns q whose input column q·stride − pad + s lies inside [0, width): [first, last).
struct ColumnRange {
    int64_t first, last;
};
ColumnRange valid_columns(int64_t q_count, int64_t stride, int64_t pad, int64_t s, int64_t width) {
    // q·stride − pad + s >= 0  <=>  q >= ceil((pad − s) / stride); < width <=> q < ceil((width + pad − s) / stride)
    auto ceil_div = [](int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; };
    const int64_t first = std::min(q_count, ceil_div(pad - s, stride));
    const int64_t last = std::max(first, std::min(q_count, ceil_div(width + pad - s, stride)));
    return {first, last};
}

// col (CRS, nb PQ): col[(c, r, s), (j, p, q)] = x[n0 + j, c, p sh - ph + r, q sw - pw + s] or 0.
void im2col(const float* x, const ConvDims& d, const ConvGeometry& g, int64_t n0, int64_t nb, float* col) {
    const int64_t rows = d.crs(), pq = d.pq(), width = nb * pq;
#pragma omp parallel for collapse(2) schedule(static) if (rows * width > kParallelGrain)
    for (int64_t row = 0; row < rows; ++row) {
        for (int64_t j = 0; j < nb; ++j) {
            const int64_t c = row / (d.r * d.s), r = (row / d.s) % d.r, s = row % d.s;
            const float* plane = x + ((n0 + j) * d.c + c) * d.h * d.w;
            float* out = col + row * width + j * pq;
            const ColumnRange cols = valid_columns(d.q, g.stride_w, g.pad_w, s, d.w);
            for (int64_t p = 0; p < d.p; ++p) {
                const int64_t hi = p * g.stride_h - g.pad_h + r;
                float* orow = out + p * d.q;
                if (hi < 0 || hi >= d.h) {
                    std::fill(orow, orow + d.q, 0.0f);
                    continue;
                }
                // Padding columns are zero; the rest copy (stride 1: one contiguous run).
                const float* xrow = plane + hi * d.w;
                const int64_t shift = s - g.pad_w;  // input column of q = q·stride + shift
                std::fill(orow, orow + cols.first, 0.0f);
                if (g.stride_w == 1) {
                    std::copy(xrow + cols.first + shift, xrow + cols.last + shift, orow + cols.first);
                } else {
                    for (int64_t q = cols.first; q < cols.last; ++q) orow[q] = xrow[q * g.stride_w + shift];
                }
                std::fill(orow + cols.last, orow + d.q, 0.0f);
            }
        }
    }
}

// dx[n0 + j, c] (+)= the sum of col entries that im2col copied from each pixel. One (sample,
// channel) plane per iteration, so there are no write races.
void col2im(const float* col, const ConvDims& d, const ConvGeometry& g, int64_t n0, int64_t nb, float* dx,
            GradMode mode) {
    const int64_t pq = d.pq(), width = nb * pq, hw = d.h * d.w;
#pragma omp parallel for collapse(2) schedule(static) if (nb * d.c * hw > kParallelGrain)
    for (int64_t j = 0; j < nb; ++j) {
        for (int64_t c = 0; c < d.c; ++c) {
            float* plane = dx + ((n0 + j) * d.c + c) * hw;
            if (mode == GradMode::overwrite) std::fill(plane, plane + hw, 0.0f);
            for (int64_t r = 0; r < d.r; ++r) {
                for (int64_t s = 0; s < d.s; ++s) {
                    const float* in = col + ((c * d.r + r) * d.s + s) * width + j * pq;
                    const ColumnRange cols = valid_columns(d.q, g.stride_w, g.pad_w, s, d.w);
                    for (int64_t p = 0; p < d.p; ++p) {
                        const int64_t hi = p * g.stride_h - g.pad_h + r;
                        if (hi < 0 || hi >= d.h) continue;
                        float* xrow = plane + hi * d.w;
                        const int64_t shift = s - g.pad_w;  // column q lands at q·stride + shift
                        const float* irow = in + p * d.q;
                        if (g.stride_w == 1) {
                            for (int64_t q = cols.first; q < cols.last; ++q) xrow[q + shift] += irow[q];
                        } else {
                            for (int64_t q = cols.first; q < cols.last; ++q) xrow[q * g.stride_w + shift] += irow[q];
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

void conv2d_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeometry& geom,
                    Tensor& y) {
    const ConvDims d = dims_of(x.shape(), w.shape(), geom);
    const int64_t nb_max = chunk_samples(d, kCachedChunkFloats), pq = d.pq();
    float* col = static_cast<float*>(ctx.workspace(static_cast<size_t>((d.crs() + d.k) * nb_max * pq) * sizeof(float)));
    float* out = col + d.crs() * nb_max * pq;  // (K, nb PQ)
    const float* bias = b ? b->data() : nullptr;
    for (int64_t n0 = 0; n0 < d.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, d.n - n0), width = nb * pq;
        im2col(x.data(), d, geom, n0, nb, col);
        for (int64_t g = 0; g < d.groups; ++g) {
            // out_g (Kg, nb PQ) = w_g (Kg, CgRS) col_g (CgRS, nb PQ)
            sgemm(false, false, d.kg, width, d.cgrs(), 1.0f, w.data() + g * d.kg * d.cgrs(), d.cgrs(),
                  col + g * d.cgrs() * width, width, 0.0f, out + g * d.kg * width, width);
        }
        // Scatter (K, nb, PQ) into y (N, K, PQ), adding the bias.
        float* yd = y.data();
#pragma omp parallel for collapse(2) schedule(static) if (nb * d.k * pq > kParallelGrain)
        for (int64_t j = 0; j < nb; ++j) {
            for (int64_t k = 0; k < d.k; ++k) {
                const float* src = out + k * width + j * pq;
                float* dst = yd + ((n0 + j) * d.k + k) * pq;
                const float bk = bias ? bias[k] : 0.0f;
                for (int64_t i = 0; i < pq; ++i) dst[i] = src[i] + bk;
            }
        }
    }
}

void conv2d_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, const ConvGeometry& geom, Tensor& dx,
                          GradMode mode) {
    const ConvDims d = dims_of(dx.shape(), w.shape(), geom);
    const int64_t nb_max = chunk_samples(d, kCachedChunkFloats), pq = d.pq();
    float* col = static_cast<float*>(ctx.workspace(static_cast<size_t>((d.crs() + d.k) * nb_max * pq) * sizeof(float)));
    float* dyc = col + d.crs() * nb_max * pq;  // (K, nb PQ)
    for (int64_t n0 = 0; n0 < d.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, d.n - n0), width = nb * pq;
        const float* dyd = dy.data();
#pragma omp parallel for collapse(2) schedule(static) if (nb * d.k * pq > kParallelGrain)
        for (int64_t j = 0; j < nb; ++j)
            for (int64_t k = 0; k < d.k; ++k)
                std::memcpy(dyc + k * width + j * pq, dyd + ((n0 + j) * d.k + k) * pq, sizeof(float) * pq);
        for (int64_t g = 0; g < d.groups; ++g) {
            // col_g (CgRS, nb PQ) = w_gᵀ (CgRS, Kg) dy_g (Kg, nb PQ)
            sgemm(true, false, d.cgrs(), width, d.kg, 1.0f, w.data() + g * d.kg * d.cgrs(), d.cgrs(),
                  dyc + g * d.kg * width, width, 0.0f, col + g * d.cgrs() * width, width);
        }
        col2im(col, d, geom, n0, nb, dx.data(), mode);
    }
}

void conv2d_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, const ConvGeometry& geom, Tensor& dw,
                            GradMode mode) {
    const ConvDims d = dims_of(x.shape(), dw.shape(), geom);
    const int64_t nb_max = chunk_samples(d, kWeightGradChunkFloats), pq = d.pq();
    float* col = static_cast<float*>(ctx.workspace(static_cast<size_t>((d.crs() + d.k) * nb_max * pq) * sizeof(float)));
    float* dyc = col + d.crs() * nb_max * pq;  // (K, nb PQ)
    if (d.n == 0 && mode == GradMode::overwrite) dw.zero();
    for (int64_t n0 = 0; n0 < d.n; n0 += nb_max) {
        const int64_t nb = std::min(nb_max, d.n - n0), width = nb * pq;
        im2col(x.data(), d, geom, n0, nb, col);
        const float* dyd = dy.data();
#pragma omp parallel for collapse(2) schedule(static) if (nb * d.k * pq > kParallelGrain)
        for (int64_t j = 0; j < nb; ++j)
            for (int64_t k = 0; k < d.k; ++k)
                std::memcpy(dyc + k * width + j * pq, dyd + ((n0 + j) * d.k + k) * pq, sizeof(float) * pq);
        const float beta = (n0 == 0 && mode == GradMode::overwrite) ? 0.0f : 1.0f;
        for (int64_t g = 0; g < d.groups; ++g) {
            // dw_g (Kg, CgRS) (+)= dy_g (Kg, nb PQ) col_gᵀ (nb PQ, CgRS)
            sgemm(false, true, d.kg, d.cgrs(), width, 1.0f, dyc + g * d.kg * width, width,
                  col + g * d.cgrs() * width, width, beta, dw.data() + g * d.kg * d.cgrs(), d.cgrs());
        }
    }
}

void channel_sum(Context& ctx, const Tensor& dy, Tensor& db, GradMode mode) {
    const int64_t n = dy.dim(0), c = dy.dim(1);
    const int64_t inner = c > 0 && n > 0 ? dy.numel() / (n * c) : 0;
    const float* src = dy.data();
    float* dst = db.data();
#pragma omp parallel for schedule(static) if (dy.numel() > kParallelGrain)
    for (int64_t ch = 0; ch < c; ++ch) {
        double sum = 0.0;  // double: the reference's own rounding stays negligible
        for (int64_t i = 0; i < n; ++i) {
            const float* p = src + (i * c + ch) * inner;
            for (int64_t j = 0; j < inner; ++j) sum += p[j];
        }
        store_grad(dst[ch], static_cast<float>(sum), mode);
    }
}

}  // namespace sp::cpu
