// Convolution on the CUDA backend: cuDNN's legacy convolution API, in exact FP32 (FMA math) or
// with TF32 tensor cores as the context's MathMode says, never FFT or Winograd. For each shape
// and mode the candidates of cuDNN's heuristics are tried in order, each with its own math type
// set before its workspace query and its call, and the first that runs is cached in the context
// (deterministic algorithms only in deterministic mode). See conv_algos.h.
#include <string>

#include "nn/backends.h"
#include "nn/cuda/conv_algos.h"
#include "nn/cuda/cudnn_util.h"

namespace sp::cuda {

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
        // The heuristics rank under the mode's math type: fp32 plain FMAs, tf32 cuDNN's default,
        // which lets FP32 convolutions use TF32 tensor cores (what PyTorch does with allow_tf32).
        SP_CHECK(cudnnSetConvolutionMathType(conv, math == MathMode::tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
        key = ConvKey{xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3],
                      g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.groups};
    }
};

// The cached candidates of this problem, ranked on first sight of its shape.
ConvAlgos& algorithms(Context& ctx, const ConvProblem& pb) {
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
        a.forward.candidates = conv_candidates(perf, count, det, ctx.math());
    }
    {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        SP_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, pb.w, pb.y, pb.conv, pb.x,
                                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
        a.backward_data.candidates = conv_candidates(perf, count, det, ctx.math());
    }
    {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        SP_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, pb.x, pb.y, pb.conv, pb.w,
                                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
        a.backward_filter.candidates = conv_candidates(perf, count, det, ctx.math());
    }
    return cache.emplace(pb.key, std::move(a)).first->second;
}

// Sets the candidate's math type on the descriptor and queries its workspace once (a failed
// query counts as the candidate failing). Returns the query's status.
template <typename Query>
cudnnStatus_t prepare(const ConvProblem& pb, ConvChoice& c, Query&& workspace_query) {
    cudnnStatus_t s = cudnnSetConvolutionMathType(pb.conv, static_cast<cudnnMathType_t>(c.math));
    if (s != CUDNN_STATUS_SUCCESS || c.bytes_known) return s;
    s = workspace_query(&c.bytes);
    c.bytes_known = s == CUDNN_STATUS_SUCCESS;
    return s;
}

}  // namespace

void conv2d_forward(Context& ctx, const Tensor& x, const Tensor& w, const Tensor* b, const ConvGeometry& geom,
                    Tensor& y) {
    ConvProblem pb(x.shape(), w.shape(), geom, ctx.math());
    cudnnHandle_t h = ctx.cudnn();
    const float one = 1.0f, zero = 0.0f;
    run_first_working(algorithms(ctx, pb).forward, "forward", [&](ConvChoice& c) {
        const auto algo = static_cast<cudnnConvolutionFwdAlgo_t>(c.algo);
        cudnnStatus_t s = prepare(pb, c, [&](size_t* bytes) {
            return cudnnGetConvolutionForwardWorkspaceSize(h, pb.x, pb.w, pb.conv, pb.y, algo, bytes);
        });
        if (s != CUDNN_STATUS_SUCCESS) return s;
        void* ws = c.bytes ? ctx.workspace(c.bytes) : nullptr;
        return cudnnConvolutionForward(h, &one, pb.x, x.data(), pb.w, w.data(), pb.conv, algo, ws, c.bytes, &zero,
                                       pb.y, y.data());
    });
    if (b) {
        TensorDesc bias;
        set_nchw(bias, 1, w.dim(0), 1, 1);
        // y += b broadcast over (N, P, Q)
        SP_CHECK(cudnnAddTensor(h, &one, bias, b->data(), &one, pb.y, y.data()));
    }
}

void conv2d_backward_data(Context& ctx, const Tensor& dy, const Tensor& w, const ConvGeometry& geom, Tensor& dx,
                          GradMode mode) {
    ConvProblem pb(dx.shape(), w.shape(), geom, ctx.math());
    cudnnHandle_t h = ctx.cudnn();
    const Blend s = blend(mode == GradMode::accumulate);
    run_first_working(algorithms(ctx, pb).backward_data, "backward-data", [&](ConvChoice& c) {
        const auto algo = static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo);
        cudnnStatus_t st = prepare(pb, c, [&](size_t* bytes) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(h, pb.w, pb.y, pb.conv, pb.x, algo, bytes);
        });
        if (st != CUDNN_STATUS_SUCCESS) return st;
        void* ws = c.bytes ? ctx.workspace(c.bytes) : nullptr;
        return cudnnConvolutionBackwardData(h, &s.alpha, pb.w, w.data(), pb.y, dy.data(), pb.conv, algo, ws, c.bytes,
                                            &s.beta, pb.x, dx.data());
    });
}

void conv2d_backward_weight(Context& ctx, const Tensor& x, const Tensor& dy, const ConvGeometry& geom, Tensor& dw,
                            GradMode mode) {
    ConvProblem pb(x.shape(), dw.shape(), geom, ctx.math());
    cudnnHandle_t h = ctx.cudnn();
    const Blend s = blend(mode == GradMode::accumulate);
    run_first_working(algorithms(ctx, pb).backward_filter, "backward-filter", [&](ConvChoice& c) {
        const auto algo = static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo);
        cudnnStatus_t st = prepare(pb, c, [&](size_t* bytes) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, pb.x, pb.y, pb.conv, pb.w, algo, bytes);
        });
        if (st != CUDNN_STATUS_SUCCESS) return st;
        void* ws = c.bytes ? ctx.workspace(c.bytes) : nullptr;
        return cudnnConvolutionBackwardFilter(h, &s.alpha, pb.x, x.data(), pb.y, dy.data(), pb.conv, algo, ws,
                                              c.bytes, &s.beta, pb.w, dw.data());
    });
}

}  // namespace sp::cuda
