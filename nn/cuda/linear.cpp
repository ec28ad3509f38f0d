// Fully connected layers on the CUDA backend with cuBLAS SGEMM, and the bias gradient
// (channel_sum) with our deterministic reduction kernel.
//
// cuBLAS is column-major: a row-major (R, C) matrix is the column-major (C, R) matrix, its
// transpose. So every row-major product A·B below is computed as the column-major Bᵀ·Aᵀ.
#include <climits>

#include "kernels/check.h"
#include "kernels/kernels.h"
#include "nn/backends.h"

namespace sp::cuda {

namespace {

int blas_int(int64_t v, const char* what) {
    SP_REQUIRE(v >= 0 && v <= INT_MAX, "linear: " << what << " = " << v << " does not fit cuBLAS's int");
    return static_cast<int>(v);
}

}  // namespace

void linear_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) {
    // x (N, IN), w (OUT, IN), y (N, OUT) = x wᵀ (+ b).  Column-major: yᵀ (OUT, N) = w (OUT, IN) · xᵀ (IN, N),
    // where w is the column-major (IN, OUT) buffer transposed (OP_T, lda = IN) and xᵀ is x's buffer (ldb = IN).
    const int n = blas_int(x.dim(0), "N"), in = blas_int(x.dim(1), "IN"), out = blas_int(w.dim(0), "OUT");
    float beta = 0.0f;
    if (b) {
        kernels::broadcast_rows(b->data(), y.data(), static_cast<size_t>(n), static_cast<size_t>(out), ctx.stream());
        beta = 1.0f;
    }
    if (static_cast<int64_t>(n) * out == 0) return;
    const float one = 1.0f;
    if (in == 0) {  // empty product: y = b or 0
        if (!b) kernels::fill(y.data(), static_cast<size_t>(y.numel()), 0.0f, ctx.stream());
        return;
    }
    SP_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w.data(), in, x.data(), in,
                         &beta, y.data(), out));
}

void linear_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, Tensor& dx, GradMode mode) {
    // dx (N, IN) = dy (N, OUT) · w (OUT, IN).  Column-major: dxᵀ (IN, N) = wᵀ (IN, OUT) · dyᵀ (OUT, N),
    // both operands as stored (OP_N), lda = IN, ldb = OUT, ldc = IN.
    const int n = blas_int(dy.dim(0), "N"), out = blas_int(dy.dim(1), "OUT"), in = blas_int(w.dim(1), "IN");
    if (static_cast<int64_t>(n) * in == 0) return;
    const float one = 1.0f, beta = mode == GradMode::accumulate ? 1.0f : 0.0f;
    if (out == 0) {
        if (mode == GradMode::overwrite) kernels::fill(dx.data(), static_cast<size_t>(dx.numel()), 0.0f, ctx.stream());
        return;
    }
    SP_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w.data(), in, dy.data(), out,
                         &beta, dx.data(), in));
}

void linear_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, Tensor& dw, GradMode mode) {
    // dw (OUT, IN) = dyᵀ (OUT, N) · x (N, IN).  Column-major: dwᵀ (IN, OUT) = xᵀ (IN, N) · dy (N, OUT),
    // where xᵀ is x's buffer (OP_N, lda = IN) and dy is dy's buffer (column-major (OUT, N)) transposed
    // (OP_T, ldb = OUT); ldc = IN.
    const int n = blas_int(x.dim(0), "N"), in = blas_int(x.dim(1), "IN"), out = blas_int(dy.dim(1), "OUT");
    if (static_cast<int64_t>(out) * in == 0) return;
    const float one = 1.0f, beta = mode == GradMode::accumulate ? 1.0f : 0.0f;
    if (n == 0) {
        if (mode == GradMode::overwrite) kernels::fill(dw.data(), static_cast<size_t>(dw.numel()), 0.0f, ctx.stream());
        return;
    }
    SP_CHECK(cublasSgemm(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x.data(), in, dy.data(), out,
                         &beta, dw.data(), in));
}

void channel_sum(Context& ctx, const Tensor& dy, Tensor& db, GradMode mode) {
    // dy (N, C, ...) -> db (C)
    const size_t n = static_cast<size_t>(dy.dim(0)), c = static_cast<size_t>(dy.dim(1));
    const size_t inner = n * c == 0 ? 0 : static_cast<size_t>(dy.numel()) / (n * c);
    kernels::channel_sum(dy.data(), db.data(), n, c, inner, mode == GradMode::accumulate, ctx.stream());
}

}  // namespace sp::cuda
