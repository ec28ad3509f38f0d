// The error type's throwing helpers (kernels/error.h).
#include "kernels/error.h"

namespace sp {

namespace {
std::string located(const std::string& what, const char* file, int line) {
    std::ostringstream out;
    out << what << " (" << file << ":" << line << ")";
    return out.str();
}
}  // namespace

[[noreturn]] void fail(const std::string& what, const char* file, int line) { throw Error(located(what, file, line)); }

[[noreturn]] void fail_out_of_memory(const std::string& what, const char* file, int line) {
    throw OutOfMemory(located(what, file, line));
}

}  // namespace sp
