#!/usr/bin/env python3
"""Finds the build's native dependencies and writes them as a Makefile fragment.

The CUDA libraries (cuDNN, cuBLAS, cuRAND, cuSOLVER, the runtime) come from the toolkit
(CUDA_HOME) or, where the toolkit lacks one, from the NVIDIA wheels of a PyTorch install:
  nvidia/cudnn/{include,lib}  (nvidia-cudnn-cu13: a namespace package, no __init__.py)
  nvidia/cu13/{include,lib}   (nvidia-cublas, -curand, -cusolver, -cuda-runtime for CUDA 13)
Wheels ship versioned library names only (libcudnn.so.9): those are linked by file name
(-l:libcudnn.so.9) and their folder goes into the rpath. zlib is linked by soname when only the
runtime library is installed; its header and the header-only libraries (doctest, toml++, CLI11,
nlohmann-json) come from third_party/include (make third-party) or the system.

  find_deps.py --cuda-home DIR [--cudnn-home DIR] [--third-party DIR] [--no-cuda] --makefile OUT
      writes the fragment the Makefile includes (DEP_* variables)
  find_deps.py --cuda-home DIR ... --report
      prints what was found where, and what is missing (make print-deps)
"""
import argparse
import glob
import importlib.util
import os
import sys

# name: (a header that must be found, the library's base name)
CUDA_LIBRARIES = {
    "cudnn": ("cudnn.h", "cudnn"),
    "cublas": ("cublas_v2.h", "cublas"),
    "curand": ("curand.h", "curand"),
    "cusolver": ("cusolverDn.h", "cusolver"),
    "cudart": ("cuda_runtime.h", "cudart"),
}
HEADER_ONLY = {"doctest": "doctest/doctest.h", "toml++": "toml++/toml.h", "CLI11": "CLI/CLI.hpp",
               "nlohmann-json": "nlohmann/json.hpp"}
SYSTEM_INCLUDE = ["/usr/include", "/usr/local/include"]
SYSTEM_LIB = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu", "/lib64"]


def package_dirs(name):
    """The folders of an importable package, namespace packages included (their __file__ is None)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [d for d in spec.submodule_search_locations if os.path.isdir(d)]


def library_in(folder, base):
    """(link flag, file) for lib<base>.so in `folder`: -l<base> when the unversioned name exists,
    else -l:<versioned name> (the highest version present); None when absent."""
    if os.path.exists(os.path.join(folder, f"lib{base}.so")):
        return f"-l{base}", os.path.join(folder, f"lib{base}.so")
    versioned = sorted(glob.glob(os.path.join(folder, f"lib{base}.so.[0-9]*")), key=len)
    if versioned:
        return f"-l:{os.path.basename(versioned[0])}", versioned[0]
    return None


class Found:
    def __init__(self):
        self.include_dirs, self.lib_dirs, self.libs = [], [], []
        self.report, self.missing = [], []

    def add(self, include_dir, lib_dir, flag, what, where):
        # The compiler and linker search the system's folders anyway (and -I/usr/include would
        # reorder the system headers).
        if include_dir and include_dir not in self.include_dirs + SYSTEM_INCLUDE:
            self.include_dirs.append(include_dir)
        if lib_dir and lib_dir not in self.lib_dirs + SYSTEM_LIB:
            self.lib_dirs.append(lib_dir)
        if flag:
            self.libs.append(flag)
        self.report.append(f"{what:14s} {where}")


def cuda_candidates(name, cuda_home, cudnn_home):
    """(include dir, lib dir, origin) places to look for one CUDA library, in order."""
    places = []
    if name == "cudnn" and cudnn_home:
        places += [(os.path.join(cudnn_home, "include"), os.path.join(cudnn_home, d), "CUDNN_HOME")
                   for d in ("lib64", "lib")]
    places += [(os.path.join(cuda_home, "include"), os.path.join(cuda_home, d), "the toolkit")
               for d in ("lib64", "lib", "targets/x86_64-linux/lib")]
    wheel = "cudnn" if name == "cudnn" else "cu13"
    for d in package_dirs(f"nvidia.{wheel}"):
        places.append((os.path.join(d, "include"), os.path.join(d, "lib"), f"the nvidia-{wheel} wheel"))
    if name == "cudnn":
        places += [(inc, lib, "the system") for inc in SYSTEM_INCLUDE for lib in SYSTEM_LIB]
    return places


def find(cuda_home, cudnn_home, third_party, cuda=True):
    found = Found()
    for name, (header, base) in (CUDA_LIBRARIES.items() if cuda else []):
        for include_dir, lib_dir, origin in cuda_candidates(name, cuda_home, cudnn_home):
            library = library_in(lib_dir, base) if os.path.isdir(lib_dir) else None
            if library and os.path.exists(os.path.join(include_dir, header)):
                flag, path = library
                found.add(include_dir, lib_dir, flag, name, f"{path} ({origin}; header in {include_dir})")
                break
        else:
            found.missing.append(f"{name} ({header} and lib{base}.so* side by side, in CUDA_HOME={cuda_home}, "
                                 f"CUDNN_HOME, or an nvidia-* wheel of {sys.executable})")
    third_include = os.path.join(third_party, "include")
    for name, header in HEADER_ONLY.items():
        for d in [third_include] + SYSTEM_INCLUDE:
            if os.path.exists(os.path.join(d, header)):
                found.report.append(f"{name:14s} {os.path.join(d, header)}")
                break
        else:
            found.missing.append(f"{name} ({header}: apt-get install the Debian package, or run `make third-party` "
                                 "where it is installed and carry third_party/)")
    zlib_header = next((d for d in [third_include] + SYSTEM_INCLUDE if os.path.exists(os.path.join(d, "zlib.h"))), None)
    zlib = next((library_in(d, "z") for d in SYSTEM_LIB if os.path.isdir(d) and library_in(d, "z")), None)
    if zlib_header and zlib:
        found.add(None, None, zlib[0], "zlib", f"{zlib[1]} (header in {zlib_header})")
    else:
        found.missing.append("zlib (" + ("zlib.h: zlib1g-dev, or third_party/include from `make third-party`"
                                         if not zlib_header else "libz.so.1: the zlib1g runtime") + ")")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuda-home", required=True)
    parser.add_argument("--no-cuda", action="store_true", help="a build without CUDA: no CUDA library is looked for")
    parser.add_argument("--cudnn-home", default="")
    parser.add_argument("--third-party", default="third_party")
    parser.add_argument("--makefile", help="write the Makefile fragment here")
    parser.add_argument("--report", action="store_true", help="print what was found where")
    args = parser.parse_args()
    found = find(args.cuda_home, args.cudnn_home, args.third_party, cuda=not args.no_cuda)
    if args.makefile:
        os.makedirs(os.path.dirname(args.makefile) or ".", exist_ok=True)
        with open(args.makefile + ".tmp", "w") as out:
            out.write("# written by scripts/find_deps.py: the native dependencies found for this build\n")
            out.write("DEP_INCLUDES := " + " ".join(f"-I{d}" for d in found.include_dirs) + "\n")
            out.write("DEP_LDFLAGS := " + " ".join(f"-L{d} -Wl,-rpath,{d}" for d in found.lib_dirs) + "\n")
            out.write("DEP_LIBS := " + " ".join(found.libs) + "\n")
            out.write("DEP_MISSING := " + " ".join(m.split(" ")[0] for m in found.missing) + "\n")
        os.replace(args.makefile + ".tmp", args.makefile)
    if args.report:
        print(f"python: {sys.executable}")
        for line in found.report:
            print(line)
        for m in found.missing:
            print(f"MISSING        {m}")
    return 1 if args.report and found.missing else 0


if __name__ == "__main__":
    sys.exit(main())
