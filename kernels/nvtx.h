// A scoped NVTX range (header-only NVTX3), usable from g++-compiled host code:
//   { sp::NvtxRange range("conv1.forward"); ... }  shows as one named span on an Nsight timeline.
#pragma once

#include <nvtx3/nvToolsExt.h>

namespace sp {

class NvtxRange {
public:
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace sp

// SP_NVTX_RANGE("name") opens a range until the end of the enclosing scope.
#define SP_NVTX_CONCAT_INNER_(a, b) a##b
#define SP_NVTX_CONCAT_(a, b) SP_NVTX_CONCAT_INNER_(a, b)
#define SP_NVTX_RANGE(name) ::sp::NvtxRange SP_NVTX_CONCAT_(sp_nvtx_range_, __LINE__)(name)
