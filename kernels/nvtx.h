// A scoped NVTX range (header-only NVTX3), usable from g++-compiled host code:
//   { sp::NvtxRange range("conv1.forward"); ... }  shows as one named span on an Nsight timeline.
// A build without CUDA (SP_WITH_CUDA=0) has no NVTX: the range does nothing.
#pragma once

#if SP_WITH_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace sp {

class NvtxRange {
public:
#if SP_WITH_CUDA
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
#else
    explicit NvtxRange(const char*) {}
#endif
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace sp

// SP_NVTX_RANGE("name") opens a range until the end of the enclosing scope.
#define SP_NVTX_CONCAT_INNER_(a, b) a##b
#define SP_NVTX_CONCAT_(a, b) SP_NVTX_CONCAT_INNER_(a, b)
#define SP_NVTX_RANGE(name) ::sp::NvtxRange SP_NVTX_CONCAT_(sp_nvtx_range_, __LINE__)(name)
