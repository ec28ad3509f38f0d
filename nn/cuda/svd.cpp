// Singular values of a layer's feature maps with cusolverDnSgesvdjBatched (values only), on the
// context's cuSOLVER handle and stream.
#include "nn/cuda/svd.h"

#include <cusolverDn.h>

#include <algorithm>
#include <vector>

#include "kernels/check.h"
#include "nn/backends.h"

namespace sp::cuda {

namespace {

// Owns a gesvdj parameter object for the duration of one call.
struct GesvdjParams {
    gesvdjInfo_t params = nullptr;
    GesvdjParams() { SP_CHECK(cusolverDnCreateGesvdjInfo(&params)); }
    ~GesvdjParams() {
        if (params) cusolverDnDestroyGesvdjInfo(params);  // destructors must not throw
    }
    GesvdjParams(const GesvdjParams&) = delete;
    GesvdjParams& operator=(const GesvdjParams&) = delete;
};

}  // namespace

void map_singular_values(Context& ctx, const Tensor& maps, bool relu, Tensor& sigma, int64_t max_chunk) {
    const int64_t h = maps.dim(2), w = maps.dim(3), k = std::min(h, w);
    const int64_t count = maps.dim(0) * maps.dim(1);
    SP_REQUIRE(h <= kMaxBatchedSvdSide && w <= kMaxBatchedSvdSide,
               "map_singular_values (cuda): maps of " << h << "x" << w << " exceed cuSOLVER's batched limit of "
                                                      << kMaxBatchedSvdSide << "x" << kMaxBatchedSvdSide);
    if (count == 0 || k == 0) return;

    // gesvdj overwrites its input, so it works on a copy (rectified when asked). A row-major
    // H×W map is the column-major W×H matrix Aᵀ, which has the same singular values.
    Tensor a(maps.shape(), Device::cuda);  // (N, C, H, W)
    if (relu) {
        sp::relu_forward(ctx, maps, a);  // the public op, on ctx.stream()
    } else {
        SP_CHECK(cudaMemcpyAsync(a.data(), maps.data(), static_cast<size_t>(maps.numel()) * sizeof(float),
                                 cudaMemcpyDeviceToDevice, ctx.stream()));
    }
    const int m = static_cast<int>(w), n = static_cast<int>(h);

    cusolverDnHandle_t handle = ctx.cusolver();
    GesvdjParams solver;
    // Tolerance: float32 machine epsilon (the default); the sweep cap bounds the error the
    // CPU comparison allows.
    SP_CHECK(cusolverDnXgesvdjSetTolerance(solver.params, 0x1p-23));
    SP_CHECK(cusolverDnXgesvdjSetMaxSweeps(solver.params, 100));
    SP_CHECK(cusolverDnXgesvdjSetSortEig(solver.params, 1));

    // U and V are allocated although jobz asks for no vectors: cheap for <= 32×32 matrices.
    const int64_t per_matrix = int64_t{m} * m + int64_t{n} * n;
    if (max_chunk <= 0) max_chunk = std::max<int64_t>(1, (int64_t{64} << 20) / per_matrix);  // ~256 MiB of floats
    const int64_t chunk = std::min(count, max_chunk);
    Tensor u(Shape{chunk, m, m}, Device::cuda), v(Shape{chunk, n, n}, Device::cuda);
    Tensor info(Shape{chunk}, Device::cuda);  // int per matrix (same size as float)
    std::vector<int> host_info(static_cast<size_t>(chunk));

    int lwork = 0;
    SP_CHECK(cusolverDnSgesvdjBatched_bufferSize(handle, CUSOLVER_EIG_MODE_NOVECTOR, m, n, a.data(), m,
                                                 sigma.data(), u.data(), m, v.data(), n, &lwork, solver.params,
                                                 static_cast<int>(chunk)));
    Tensor work(Shape{std::max(lwork, 1)}, Device::cuda);

    for (int64_t first = 0; first < count; first += chunk) {
        const int batch = static_cast<int>(std::min(chunk, count - first));
        int* d_info = reinterpret_cast<int*>(info.data());
        SP_CHECK(cusolverDnSgesvdjBatched(handle, CUSOLVER_EIG_MODE_NOVECTOR, m, n,
                                          a.data() + first * int64_t{m} * n, m, sigma.data() + first * k, u.data(),
                                          m, v.data(), n, work.data(), lwork, d_info, solver.params, batch));
        copy_bytes(host_info.data(), Device::cpu, d_info, Device::cuda, static_cast<size_t>(batch) * sizeof(int));
        for (int i = 0; i < batch; ++i)
            SP_REQUIRE(host_info[static_cast<size_t>(i)] == 0,
                       "map_singular_values (cuda): gesvdjBatched info " << host_info[static_cast<size_t>(i)]
                                                                         << " for map " << first + i
                                                                         << " (not converged or bad argument)");
    }
}

void map_singular_values(Context& ctx, const Tensor& maps, bool relu, Tensor& sigma) {
    map_singular_values(ctx, maps, relu, sigma, 0);
}

}  // namespace sp::cuda
