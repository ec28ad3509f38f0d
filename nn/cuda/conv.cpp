// Convolution on the CUDA backend: cuDNN's legacy convolution API, in exact FP32 (FMA math) or
// with TF32 tensor cores as the context's MathMode says, never FFT or Winograd, with the
// algorithms for each shape picked once by cuDNN's heuristics and cached in the context per mode
// (deterministic algorithms only in deterministic mode).
#include <string>

#include "nn/backends.h"
#include "nn/cuda/cudnn_util.h"

namespace sp::cuda {

namespace {

// The descriptors of one convolution problem.
struct ConvProblem {
    TensorDesc x, y;
    FilterDesc w;
    ConvDesc conv;
    ConvKey key;

    // x (N, C, H, W), w (K, C/g, R, S); y's shape follows from the geometry.
    ConvProblem(const Shape& xs, const Shape& ws, const ConvGeometry& g, MathMode math) {
        const int64_t p = window_output_size(xs[2], ws[2], g.stride_h, g.pad_h);
        const int64_t q = window_output_size(xs[3], ws[3], g.stride_w, g.pad_w);
        set_nchw(x, xs[0], xs[1], xs[2], xs[3]);
        set_nchw(y, xs[0], ws[0], p, q);
        SP_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(ws[0], "K"),
                                            to_int(ws[1], "C/groups"), to_int(ws[2], "R"), to_int(ws[3], "S")));
        SP_CHECK(cudnnSetConvolution2dDescriptor(conv, to_int(g.pad_h, "pad_h"), to_int(g.pad_w, "pad_w"),
                                                 to_int(g.stride_h, "stride_h"), to_int(g.stride_w, "stride_w"),
                                                 /*dilation=*/1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        SP_CHECK(cudnnSetConvolutionGroupCount(conv, to_int(g.groups, "groups")));
        // fp32: plain FMAs, no TF32 conversion of the inputs; tf32: cuDNN's default, which lets FP32
        // convolutions use TF32 tensor cores (what PyTorch does with allow_tf32).
        SP_CHECK(cudnnSetConvolutionMathType(conv, math == MathMode::tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
        key = ConvKey{xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3],
                      g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.groups};
    }
};

// FFT and Winograd algorithms round in a transformed domain: their error is not bounded by that
// of a float32 sum over the kernel window (gamma(n) Σ|terms|), so "exact FP32" leaves them out.
bool transform_based(cudnnConvolutionFwdAlgo_t a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool transform_based(cudnnConvolutionBwdDataAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool transform_based(cudnnConvolutionBwdFilterAlgo_t a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// First usable entry of cuDNN's ranked list: successful, not transform-based (in TF32 too, so
// the error stays that of rounded inputs and a float32 sum), and deterministic when asked.
template <typename Perf>
int pick(const Perf* perf, int count, bool deterministic, const char* direction) {
    for (int i = 0; i < count; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || transform_based(perf[i].algo)) continue;
        if (deterministic && perf[i].determinism == CUDNN_NON_DETERMINISTIC) continue;
        return static_cast<int>(perf[i].algo);
    }
    SP_REQUIRE(false, "conv2d: cuDNN offers no " << (deterministic ? "deterministic " : "") << direction
                      << " algorithm for this shape");
    return 0;
}

// The cached algorithms of this problem, chosen on first sight of its shape.
const ConvAlgos& algorithms(Context& ctx, const ConvProblem& pb) {
    auto& cache = ctx.conv_algo_cache();
    auto found = cache.find(pb.key);
    if (found != cache.end()) return found->second;

    cudnnHandle_t h = ctx.cudnn();
    const bool det = ctx.deterministic();
    ConvAlgos a;
    int count = 0;
    {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        SP_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, pb.x, pb.w, pb.conv, pb.y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
        a.forward = pick(perf, count, det, "forward");
        SP_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, pb.x, pb.w, pb.conv, pb.y,
                                                         static_cast<cudnnConvolutionFwdAlgo_t>(a.forward),
                                                         &a.forward_bytes));
    }
    {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        SP_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, pb.w, pb.y, pb.conv, pb.x,
                                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
        a.backward_data = pick(perf, count, det, "backward-data");
        SP_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
            h, pb.w, pb.y, pb.conv, pb.x, static_cast<cudnnConvolutionBwdDataAlgo_t>(a.backward_data),
            &a.backward_data_bytes));
    }
    {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        SP_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, pb.x, pb.y, pb.conv, pb.w,
                                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
        a.backward_filter = pick(perf, count, det, "backward-filter");
        SP_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
            h, pb.x, pb.y, pb.conv, pb.w, static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.backward_filter),
            &a.backward_filter_bytes));
    }
    return cache.emplace(pb.key, a).first->second;
}

}  // namespace

void conv2d_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeometry& geom,
                    Tensor& y) {
    ConvProblem pb(x.shape(), w.shape(), geom, ctx.math());
    const ConvAlgos& a = algorithms(ctx, pb);
    const size_t bytes = a.forward_bytes;  // read before workspace() may synchronise
    void* ws = bytes ? ctx.workspace(bytes) : nullptr;
    const float one = 1.0f, zero = 0.0f;
    SP_CHECK(cudnnConvolutionForward(ctx.cudnn(), &one, pb.x, x.data(), pb.w, w.data(), pb.conv,
                                     static_cast<cudnnConvolutionFwdAlgo_t>(a.forward), ws, bytes, &zero,
                                     pb.y, y.data()));
    if (b) {
        TensorDesc bias;
        set_nchw(bias, 1, w.dim(0), 1, 1);
        // y += b broadcast over (N, P, Q)
        SP_CHECK(cudnnAddTensor(ctx.cudnn(), &one, bias, b->data(), &one, pb.y, y.data()));
    }
}

void conv2d_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, const ConvGeometry& geom, Tensor& dx,
                          GradMode mode) {
    ConvProblem pb(dx.shape(), w.shape(), geom, ctx.math());
    const ConvAlgos& a = algorithms(ctx, pb);
    const size_t bytes = a.backward_data_bytes;
    void* ws = bytes ? ctx.workspace(bytes) : nullptr;
    const Blend s = blend(mode == GradMode::accumulate);
    SP_CHECK(cudnnConvolutionBackwardData(ctx.cudnn(), &s.alpha, pb.w, w.data(), pb.y, dy.data(), pb.conv,
                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(a.backward_data), ws, bytes,
                                          &s.beta, pb.x, dx.data()));
}

void conv2d_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, const ConvGeometry& geom, Tensor& dw,
                            GradMode mode) {
    ConvProblem pb(x.shape(), dw.shape(), geom, ctx.math());
    const ConvAlgos& a = algorithms(ctx, pb);
    const size_t bytes = a.backward_filter_bytes;
    void* ws = bytes ? ctx.workspace(bytes) : nullptr;
    const Blend s = blend(mode == GradMode::accumulate);
    SP_CHECK(cudnnConvolutionBackwardFilter(ctx.cudnn(), &s.alpha, pb.x, x.data(), pb.y, dy.data(), pb.conv,
                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(a.backward_filter), ws,
                                            bytes, &s.beta, pb.w, dw.data()));
}

}  // namespace sp::cuda
