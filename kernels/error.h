// The project's error type and precondition checks, with no CUDA in them: every floor can
// include this header (the CUDA status checks live in kernels/check.h).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace sp {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A device (or host) allocation failed, or would exceed Buffer's memory limit. Callers that can
// do with less memory (the population evaluator halves its chunk) catch this type.
struct OutOfMemory : Error {
    using Error::Error;
};

[[noreturn]] void fail(const std::string& what, const char* file, int line);
[[noreturn]] void fail_out_of_memory(const std::string& what, const char* file, int line);

}  // namespace sp

// Precondition on arguments: SP_REQUIRE(x.dim(1) == w.dim(1), "conv2d: input channels " << ...)
#define SP_REQUIRE(cond, message)                                         \
    do {                                                                  \
        if (!(cond)) {                                                    \
            std::ostringstream sp_require_stream_;                        \
            sp_require_stream_ << message;                                \
            ::sp::fail(sp_require_stream_.str(), __FILE__, __LINE__);     \
        }                                                                 \
    } while (0)
