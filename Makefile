# spinprune build: host code (.cpp) with g++, device code (.cu) with nvcc, linked together.
# `make help` lists the targets. Variables (override on the command line):
#   CUDA_HOME   CUDA toolkit root                          (default /usr/local/cuda)
#   CUDNN_HOME  cuDNN root with include/ and lib/           (default: the toolkit's, else the
#               nvidia-cudnn Python package of python3, as on the GPU machine's PyTorch install)
#   ARCHS       GPU architectures for machine code          (default "80 90"; PTX for the last)
#   BLAS        openblas | none: BLAS for the CPU backend   (default openblas when its header exists)
#   DEBUG=1     -O0 -g, and synchronise the device after every checked call
#   SAN=1       AddressSanitizer + UndefinedBehaviorSanitizer on host code
#   JOBS        parallel compile jobs for the convenience targets (default: number of cores)

CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CXX       ?= g++
ARCHS     ?= 80 90
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)

ifeq ($(origin CUDNN_HOME),undefined)
  ifneq ($(wildcard $(CUDA_HOME)/include/cudnn.h),)
    CUDNN_HOME := $(CUDA_HOME)
  else
    CUDNN_HOME := $(shell python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null)
  endif
endif
CUDNN_LIBDIR := $(firstword $(wildcard $(CUDNN_HOME)/lib64/libcudnn.so* $(CUDNN_HOME)/lib/libcudnn.so*))
CUDNN_LIBDIR := $(if $(CUDNN_LIBDIR),$(dir $(CUDNN_LIBDIR)),$(CUDA_HOME)/lib64)
CUDNN_LINK   := $(if $(wildcard $(CUDNN_LIBDIR)libcudnn.so),-lcudnn,-l:libcudnn.so.9)

ifeq ($(origin BLAS),undefined)
  BLAS := $(if $(wildcard /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h),openblas,none)
endif

# One build directory per configuration, so switching DEBUG/SAN never mixes objects.
CONFIG := release
ifeq ($(DEBUG),1)
  CONFIG := debug
endif
ifeq ($(SAN),1)
  CONFIG := $(CONFIG)-san
endif
BUILD := build/$(CONFIG)
# Device code does not depend on the host sanitizers: SAN=1 reuses the plain build's objects.
CU_BUILD := build/$(if $(filter 1,$(DEBUG)),debug,release)

# Header-only dependencies gathered by `make third-party` come first, then the system's.
INCLUDES := -I. -Ithird_party/include -I$(CUDA_HOME)/include -I$(CUDNN_HOME)/include
DEFS     := -DTOML_HEADER_ONLY=1
OPT      := -O3
ifeq ($(DEBUG),1)
  OPT  := -O0 -g
  DEFS += -DSP_DEBUG_SYNC
endif
SANFLAGS :=
ifeq ($(SAN),1)
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
BLAS_LIBS :=
ifeq ($(BLAS),openblas)
  DEFS      += -DSP_USE_CBLAS
  INCLUDES  += $(if $(wildcard /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h),-I/usr/include/x86_64-linux-gnu/openblas-pthread)
  BLAS_LIBS := -lopenblas
endif

SHELL := /bin/bash
CXXFLAGS  := -std=c++17 $(OPT) -Wall -Wextra -Wno-unused-parameter -fopenmp -MMD -MP $(INCLUDES) $(DEFS) $(SANFLAGS)
LAST_ARCH := $(lastword $(ARCHS))
GENCODE   := $(foreach a,$(ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) -gencode arch=compute_$(LAST_ARCH),code=compute_$(LAST_ARCH)
NVCCFLAGS := -std=c++17 $(OPT) $(GENCODE) -MMD -MP $(INCLUDES) $(DEFS) -Xcompiler -Wall,-Wno-unused-parameter --expt-relaxed-constexpr
NVCCFLAGS += -lineinfo
LDFLAGS := -fopenmp $(SANFLAGS) -L$(CUDA_HOME)/lib64 -L$(CUDNN_LIBDIR) -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDNN_LIBDIR)
LDLIBS  := $(CUDNN_LINK) -lcublas -lcurand -lcusolver -lcudart $(BLAS_LIBS) -lz -ldl -lpthread

LIB_DIRS := kernels nn data pruning train
LIB_CPP  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cpp $(d)/*/*.cpp)))
LIB_CU   := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cu $(d)/*/*.cu)))
LIB_OBJ  := $(LIB_CPP:%.cpp=$(BUILD)/%.o) $(LIB_CU:%.cu=$(CU_BUILD)/%.cu.o)
TEST_OBJ := $(patsubst %.cpp,$(BUILD)/%.o,$(wildcard tests/*.cpp))
APP_OBJ  := $(BUILD)/tools/spinprune.o
LIB      := $(BUILD)/libspinprune.a
# The release program goes to bin/; DEBUG/SAN builds keep theirs in their build directory.
APP      := $(if $(filter release,$(CONFIG)),bin/spinprune,$(BUILD)/bin/spinprune)
TESTS    := $(BUILD)/spinprune_tests

DEB_PACKAGES := doctest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev dataset-fashion-mnist zlib1g-dev libopenblas-dev

.PHONY: all help deps third-party build test run train exp bench-population bench-scoring bench-train clean data-cifar10 data-cifar100 data-fashion-mnist
.DEFAULT_GOAL := all

all: $(APP) $(TESTS)  ## build the library, bin/spinprune and the test binary

help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/:.*## /\t/' | expand -t 20

# Packages whose content third_party/ already carries (an offline GPU machine) are not needed.
HEADER_PACKAGES := doctest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
NEEDED_PACKAGES := $(filter-out $(if $(wildcard third_party/include/doctest),$(HEADER_PACKAGES)) \
                     $(if $(wildcard third_party/data/fashion-mnist),dataset-fashion-mnist),$(DEB_PACKAGES))

deps:  ## install the Debian packages the project needs, when missing (apt-get)
	@missing=$$(for p in $(NEEDED_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; } || \
	    echo "make deps: could not install $$missing (offline? see README: make third-party); going on"; \
	fi

third-party: deps  ## gather the header-only dependencies into third_party/ for an offline GPU machine
	rm -rf third_party && mkdir -p third_party/include third_party/data
	cp -r /usr/include/doctest /usr/include/toml++ /usr/include/CLI /usr/include/nlohmann third_party/include/
	cp -r /usr/share/datasets/fashion-mnist third_party/data/

build: $(APP) $(TESTS)  ## same as all

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(APP): $(APP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(TESTS): $(TEST_OBJ) $(LIB)
	$(CXX) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(CU_BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The suite prints doctest's report, then one line "N passed, N failed, N skipped" counting
# test cases (GPU cases are skipped, and counted, where no GPU is usable).
test: deps  ## install deps, build, run the test suite
	@$(MAKE) --no-print-directory -j$(JOBS) $(TESTS) $(APP)
	@mkdir -p $(BUILD) && set -o pipefail; \
	SPINPRUNE_BIN=$(APP) ./$(TESTS) $(TEST_ARGS) 2>&1 | tee $(BUILD)/test.log; status=$$?; \
	grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$$' $(BUILD)/test.log | tail -n 1; \
	exit $$status

run: deps  ## install deps, build, train + prune (EDropout) the default small CNN on Fashion-MNIST
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	./$(APP) run --config experiments/fashion_mnist_lenet.toml $(RUN_ARGS)

train: deps  ## train experiments/$(EXP).toml (make train EXP=fashion_mnist_lenet)
	@test -n "$(EXP)" || { echo "make train: name an experiment, e.g. make train EXP=fashion_mnist_lenet"; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	./$(APP) train --config experiments/$(EXP).toml $(RUN_ARGS)

exp: deps  ## run experiments/$(EXP).toml end to end: baseline, prune, fine-tune, evaluate (make exp EXP=name)
	@test -n "$(EXP)" || { echo "make exp: name an experiment, e.g. make exp EXP=fashion_mnist_lenet_l1"; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	./$(APP) run --config experiments/$(EXP).toml $(RUN_ARGS)

data-cifar10:  ## download CIFAR-10 (binary) into data/cifar-10, md5-checked
	scripts/fetch_cifar.sh cifar10 data/cifar-10

data-cifar100:  ## download CIFAR-100 (binary) into data/cifar-100, md5-checked
	scripts/fetch_cifar.sh cifar100 data/cifar-100

data-fashion-mnist: deps  ## Fashion-MNIST from the Debian package dataset-fashion-mnist
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { echo "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"; exit 1; }
	@echo "Fashion-MNIST in /usr/share/datasets/fashion-mnist"

# Every bench/NAME.cpp is one program, $(BUILD)/bin/NAME_bench, linked against the library.
BENCH_OBJ := $(patsubst %.cpp,$(BUILD)/%.o,$(wildcard bench/*.cpp))
$(BUILD)/bin/%_bench: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) -o $@ $^ $(LDFLAGS) $(LDLIBS)

BENCH_POP := $(BUILD)/bin/population_bench

bench-population: deps  ## batched vs one-by-one population evaluation (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BENCH_POP)
	./$(BENCH_POP) --device $(or $(DEVICE),cpu) $(BENCH_ARGS)

bench-train: deps  ## a training step of ResNet-20/56 and VGG-16, ours beside PyTorch eager and torch.compile (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) build/release/bin/train_step_bench
	bench/train_vs_torch.sh $(DEVICE)

bench-scoring: deps  ## time to score every filter of ResNet-56 from 640 images, and the SVD's share (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/bin/scoring_cost_bench
	./$(BUILD)/bin/scoring_cost_bench --device $(or $(DEVICE),cpu) $(BENCH_ARGS)

clean:  ## remove build outputs
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(BENCH_OBJ:.o=.d)
