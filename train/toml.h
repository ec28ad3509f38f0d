// The one way this project includes toml++ (header-only). toml++ 3.3 asserts, aborting the
// process, on malformed table headers such as "[=train]" (upstream PR #301); with its assertions
// compiled out the parser reports them as parse errors (found by fuzz/config_fuzz.cpp). Every
// translation unit must see the same definition — the parser's inline functions would otherwise
// differ between them and the linker keeps either — so include toml++ only through this header.
// Slow to compile, and not for nvcc.
#pragma once

#define TOML_HEADER_ONLY 1
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>
