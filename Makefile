# spinprune build: host code (.cpp) with g++, device code (.cu) with nvcc, linked together.
# `make help` lists the targets. Variables (override on the command line):
#   CUDA_HOME   CUDA toolkit root                          (default /usr/local/cuda)
#   CUDNN_HOME  cuDNN root with include/ and lib/           (default: the toolkit's, else the
#               nvidia-cudnn wheel of python3, as on the GPU machine's PyTorch install; CUDA
#               libraries the toolkit lacks come from the nvidia-* cu13 wheels: make print-deps)
#   CUDA        1 | 0: the CUDA backend, or a CPU-only build with g++ alone (default 1 where a
#               CUDA toolkit is found, else 0; a CPU-only program refuses --device cuda)
#   ARCHS       GPU architectures for machine code          (default "80 90"; PTX for the last)
#   BLAS        openblas | none: BLAS for the CPU backend   (default openblas when its header exists)
#   DEBUG=1     -O0 -g, and synchronise the device after every checked call
#   SAN=1       AddressSanitizer + UndefinedBehaviorSanitizer on host code
#   JOBS        parallel compile jobs for the convenience targets (default: number of cores)
#   BUILD_ROOT  where the per-configuration build folders go (default build)
#   V=1         print the full compile and link commands (default: one short line per file)

# The toolkit: /usr/local/cuda, else the one whose nvcc is on PATH.
ifeq ($(origin CUDA_HOME),undefined)
  CUDA_HOME := $(if $(wildcard /usr/local/cuda/bin/nvcc),/usr/local/cuda,$(patsubst %/bin/nvcc,%,$(realpath $(shell command -v nvcc 2>/dev/null))))
endif
ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(CUDA_HOME),1,0)
  ifeq ($(CUDA),0)
    $(info no CUDA toolkit found (no /usr/local/cuda/bin/nvcc, no nvcc on PATH): building without CUDA, as CUDA=0)
  endif
endif
ifneq ($(filter-out 0 1,$(CUDA)),)
  $(error CUDA=$(CUDA): expected 1 (the CUDA backend) or 0 (a CPU-only build))
endif
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CXX       ?= g++
ARCHS     ?= 80 90
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)

CUDNN_HOME ?=
BUILD_ROOT ?= build

# The native dependencies (CUDA libraries from the toolkit or the NVIDIA wheels, zlib, the
# header-only libraries), found afresh on every run: DEP_INCLUDES, DEP_LDFLAGS, DEP_LIBS and
# DEP_MISSING, in a fragment written by scripts/find_deps.py.
DEPS_PYTHON ?= python3
DEPS_MK   := $(BUILD_ROOT)/deps.mk
FIND_DEPS := $(DEPS_PYTHON) scripts/find_deps.py --cuda-home '$(CUDA_HOME)' --cudnn-home '$(CUDNN_HOME)' --third-party third_party \
             $(if $(filter 0,$(CUDA)),--no-cuda)
$(shell mkdir -p $(BUILD_ROOT) && rm -f $(DEPS_MK) && $(FIND_DEPS) --makefile $(DEPS_MK))
ifeq ($(wildcard $(DEPS_MK)),)
  $(error could not run scripts/find_deps.py with '$(DEPS_PYTHON)' (set DEPS_PYTHON): it finds the CUDA libraries and headers the build needs)
endif
include $(DEPS_MK)

ifeq ($(origin BLAS),undefined)
  BLAS := $(if $(wildcard /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h),openblas,none)
endif

# One build directory per configuration, so switching DEBUG/SAN/CUDA never mixes objects.
CONFIG := release
ifeq ($(DEBUG),1)
  CONFIG := debug
endif
ifeq ($(CUDA),0)
  CONFIG := $(CONFIG)-cpu
endif
ifeq ($(SAN),1)
  CONFIG := $(CONFIG)-san
endif
BUILD := $(BUILD_ROOT)/$(CONFIG)
# Device code does not depend on the host sanitizers: SAN=1 reuses the plain build's objects.
CU_BUILD := $(BUILD_ROOT)/$(if $(filter 1,$(DEBUG)),debug,release)

# Header-only dependencies gathered by `make third-party` come first, then the system's.
INCLUDES := -I. -Ithird_party/include $(DEP_INCLUDES)
DEFS     := -DTOML_HEADER_ONLY=1 -DSP_WITH_CUDA=$(CUDA)
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

# Quiet by default: one short line per compiled or linked file ($(call say,WHAT,FILE)); V=1 prints
# the full commands. Compiler errors and warnings are printed in full either way.
ifeq ($(V),1)
  Q :=
  say :=
else
  Q := @
  say = @printf '  %-6s %s\n' '$(1)' '$(2)';
endif
# -ffp-contract=off: a*b+c stays two roundings wherever FMA instructions exist (aarch64, the FMA
# clones of pruning/gibbs.cpp), so CPU results do not depend on the host and match the CUDA
# samplers' explicit arithmetic.
CXXFLAGS  := -std=c++17 $(OPT) -Wall -Wextra -Wno-unused-parameter -ffp-contract=off -fopenmp -MMD -MP $(INCLUDES) $(DEFS) $(SANFLAGS)
LAST_ARCH := $(lastword $(ARCHS))
GENCODE   := $(foreach a,$(ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) -gencode arch=compute_$(LAST_ARCH),code=compute_$(LAST_ARCH)
NVCCFLAGS := -std=c++17 $(OPT) $(GENCODE) -MMD -MP $(INCLUDES) $(DEFS) -Xcompiler -Wall,-Wno-unused-parameter --expt-relaxed-constexpr
NVCCFLAGS += -lineinfo
LDFLAGS := -fopenmp $(SANFLAGS) $(DEP_LDFLAGS)
LDLIBS  := $(DEP_LIBS) $(BLAS_LIBS) -ldl -lpthread

LIB_DIRS := kernels nn data pruning train
LIB_CPP  := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cpp $(d)/*/*.cpp)))
LIB_CU   := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cu $(d)/*/*.cu)))
# The host files that call CUDA, and the one that stands in for them in a CPU-only build.
CUDA_CPP   := $(wildcard nn/cuda/*.cpp pruning/cuda/*.cpp) kernels/check.cpp
CUDA_TESTS := tests/test_cuda_ops.cpp tests/test_cuda_checks.cpp
ifeq ($(CUDA),1)
  LIB_CPP := $(filter-out nn/cuda_absent.cpp,$(LIB_CPP))
else
  LIB_CPP := $(filter-out $(CUDA_CPP),$(LIB_CPP))
  LIB_CU  :=
endif
LIB_OBJ  := $(LIB_CPP:%.cpp=$(BUILD)/%.o) $(LIB_CU:%.cu=$(CU_BUILD)/%.cu.o)
TEST_OBJ := $(patsubst %.cpp,$(BUILD)/%.o,$(filter-out $(if $(filter 0,$(CUDA)),$(CUDA_TESTS)),$(wildcard tests/*.cpp)))
APP_OBJ  := $(BUILD)/tools/spinprune.o
LIB      := $(BUILD)/libspinprune.a
# The release program goes to bin/ (the CPU-only one too where it is the machine's default);
# DEBUG/SAN builds and a CUDA=0 asked for on the command line keep theirs in their build directory.
APP      := $(if $(or $(filter release,$(CONFIG)),$(and $(filter release-cpu,$(CONFIG)),$(filter-out command line,$(origin CUDA)))),bin/spinprune,$(BUILD)/bin/spinprune)
TESTS    := $(BUILD)/spinprune_tests

DEB_PACKAGES := doctest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev dataset-fashion-mnist zlib1g-dev libopenblas-dev python3-matplotlib \
                python3-torch python3-onnx python3-pip slurmctld slurmd slurm-client munge
# The PyTorch oracle's Python (tests/test_torch_oracle.cpp): Debian's, where python3-torch lives.
# onnxruntime is not in Debian: pip installs the pinned wheel into it (no dependencies: the
# runtime needs only NumPy, which Debian's python3-torch brings).
TORCH_PYTHON ?= /usr/bin/python3
ONNXRUNTIME  := onnxruntime==1.20.1

.PHONY: all help deps third-party build test run train exp gpu-check bench-population bench-gibbs bench-scoring bench-train clean data-cifar10 data-cifar100 data-fashion-mnist
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
	@$(TORCH_PYTHON) -c 'import onnxruntime' 2>/dev/null || { echo "installing: $(ONNXRUNTIME) (pip, for $(TORCH_PYTHON))"; \
	  $(TORCH_PYTHON) -m pip install -q --break-system-packages --no-deps $(ONNXRUNTIME) || \
	    echo "make deps: could not install $(ONNXRUNTIME); the ONNX checks of the suite will fail"; }

third-party: deps  ## gather the header-only dependencies, zlib's headers and Fashion-MNIST into third_party/ for an offline GPU machine
	rm -rf third_party && mkdir -p third_party/include third_party/data
	cp -r /usr/include/doctest /usr/include/toml++ /usr/include/CLI /usr/include/nlohmann /usr/include/zlib.h /usr/include/zconf.h third_party/include/
	cp -r /usr/share/datasets/fashion-mnist third_party/data/

build: $(APP) $(TESTS)  ## same as all

.PHONY: check-deps print-deps
check-deps:
	@if [ -n "$(strip $(DEP_MISSING))" ]; then \
	  $(FIND_DEPS) --report | grep MISSING; \
	  echo "the build needs these first (make deps installs the Debian packages; make print-deps shows what was found)"; exit 1; fi

print-deps:  ## where the build finds the CUDA libraries, cuDNN, zlib and the headers; then loads each library
	@$(FIND_DEPS) --report; status=$$?; \
	$(if $(filter 1,$(CUDA)),$(MAKE) --no-print-directory $(BUILD)/bin/deps_check >/dev/null && $(BUILD)/bin/deps_check || status=1;) \
	exit $$status

$(BUILD)/bin/deps_check: tools/deps_check.cpp | check-deps
	@mkdir -p $(dir $@)
	$(call say,LINK,$@) $(CXX) $(CXXFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,AR,$@) rm -f $@ && ar rcs $@ $^

$(APP): $(APP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@) $(CXX) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(TESTS): $(TEST_OBJ) $(LIB)
	$(call say,LINK,$@) $(CXX) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Objects wait for the dependency check, which names whatever is missing.
$(BUILD)/%.o: %.cpp | check-deps
	@mkdir -p $(dir $@)
	$(call say,CXX,$<) $(CXX) $(CXXFLAGS) -c $< -o $@

$(CU_BUILD)/%.cu.o: %.cu | check-deps
	@mkdir -p $(dir $@)
	$(call say,NVCC,$<) $(NVCC) $(NVCCFLAGS) -c $< -o $@

# The suite prints doctest's report, then one line "N passed, N failed, N skipped" counting
# test cases (GPU cases are skipped, and counted, where no GPU is usable).
test: deps  ## install deps, build, run the test suite
	@$(MAKE) --no-print-directory -j$(JOBS) $(TESTS) $(APP)
	@mkdir -p $(BUILD) && set -o pipefail; \
	SPINPRUNE_BIN=$(APP) SPINPRUNE_TORCH_PYTHON=$(TORCH_PYTHON) ./$(TESTS) $(TEST_ARGS) 2>&1 | tee $(BUILD)/test.log; status=$$?; \
	grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$$' $(BUILD)/test.log | tail -n 1; \
	exit $$status

run: deps  ## install deps, build, train + prune (EDropout) the default small CNN on Fashion-MNIST
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	./$(APP) run --config experiments/fashion_mnist_lenet.toml $(RUN_ARGS)

train: deps  ## train experiments/$(EXP).toml (make train EXP=fashion_mnist_lenet)
	@test -n "$(EXP)" || { echo "make train: name an experiment, e.g. make train EXP=fashion_mnist_lenet"; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	./$(APP) train --config experiments/$(EXP).toml $(RUN_ARGS)

exp: deps  ## run experiments/$(EXP).toml end to end: baseline, prune, fine-tune, evaluate (make exp EXP=name; SCHED=local|slurm: a sweep)
	@test -n "$(EXP)" || { echo "make exp: name an experiment, e.g. make exp EXP=fashion_mnist_lenet_l1"; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	$(if $(filter serial,$(SCHED)),./$(APP) run --config experiments/$(EXP).toml $(RUN_ARGS),$(REPRO) $(EXP:%=experiments/%.toml) \
	  --seeds $(EXP_SEEDS) --out $(RUNS_ROOT)/exp --title exp $(SCHED_ARGS) $(REPRO_ARGS))

gpu-check:  ## the whole GPU verdict in one command (<= 8 min, build included) into OUT (default runs/gpu_check); a dry run without a GPU
	scripts/gpu_check.sh $(OUT)

data-cifar10:  ## download CIFAR-10 (binary) into data/cifar-10, md5-checked
	scripts/fetch_cifar.sh cifar10 data/cifar-10

data-cifar100:  ## download CIFAR-100 (binary) into data/cifar-100, md5-checked
	scripts/fetch_cifar.sh cifar100 data/cifar-100

data-fashion-mnist: deps  ## Fashion-MNIST from the Debian package dataset-fashion-mnist
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { echo "Fashion-MNIST missing: apt-get install dataset-fashion-mnist"; exit 1; }
	@echo "Fashion-MNIST in /usr/share/datasets/fashion-mnist"

# Every bench/NAME.cpp is one program, $(BUILD)/bin/NAME_bench, linked against the library.
BENCH_OBJ := $(patsubst %.cpp,$(BUILD)/%.o,$(wildcard bench/*.cpp))
.SECONDARY: $(BENCH_OBJ)  # objects made by the pattern chain above are kept, not rebuilt every time
$(BUILD)/bin/%_bench: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LINK,$@) $(CXX) -o $@ $^ $(LDFLAGS) $(LDLIBS)

BENCH_POP := $(BUILD)/bin/population_bench

bench-population: deps  ## batched vs one-by-one population evaluation (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BENCH_POP)
	./$(BENCH_POP) --device $(or $(DEVICE),cpu) $(BENCH_ARGS)

bench-gibbs: deps  ## Gibbs samplers (spins/s, the unstructured draw's bytes/s) and a training step with masks off/on/fused (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/bin/gibbs_sampler_bench $(BUILD)/bin/train_step_bench
	./$(BUILD)/bin/gibbs_sampler_bench --device $(or $(DEVICE),cpu) $(BENCH_ARGS)
	./$(BUILD)/bin/train_step_bench --device $(or $(DEVICE),cpu) --models lenet,resnet20 --masks dense,gibbs,gibbs-fused

bench-train: deps  ## a training step of ResNet-20/56 and VGG-16, ours beside PyTorch eager and torch.compile (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/bin/train_step_bench
	BENCH_BIN=$(BUILD)/bin/train_step_bench bench/train_vs_torch.sh $(DEVICE)

bench-scoring: deps  ## time to score every filter of ResNet-56 from 640 images, and the SVD's share (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/bin/scoring_cost_bench
	./$(BUILD)/bin/scoring_cost_bench --device $(or $(DEVICE),cpu) $(BENCH_ARGS)

# Reproduction, comparison, report and profiling (scripts/repro.py, scripts/report.py). A repro
# target runs the configs its list in experiments/repro/ names over seeds 1..SEEDS into
# RUNS_ROOT/<target>/<experiment>/seed<i>, then writes the table beside the papers' numbers.
# PYTHON: the first python3 that has matplotlib (Debian's when pyenv's lacks it), else python3.
SEEDS     ?= 3
RUNS_ROOT ?= runs
# Where the runs go (scripts/sweep.py), for the repro targets and `make exp`:
#   SCHED=serial   one after another on this machine (the default)
#   SCHED=local    JOBS runs at once on this machine, each on its own GPU, else its own share of the
#                  cores (JOBS not given: one per GPU, else one per core)
#   SCHED=slurm    one Slurm job array, a task per run; WAIT=1 waits for it, then writes the report.
#                  PARTITION, ACCOUNT, GPUS (per task; default 1 where the cluster has GPU GRES),
#                  TIME_LIMIT (sbatch --time), THROTTLE (at most N tasks at once), CPUS_PER_TASK,
#                  SBATCH_ARGS; unset ones are the cluster's defaults (or sbatch's SBATCH_* variables)
# Every mode skips complete runs and resumes partial ones; Slurm also skips runs still queued.
# `make exp EXP="a b" SCHED=...` sweeps experiments/<name>.toml for each name over EXP_SEEDS into RUNS_ROOT/exp.
SCHED     ?= serial
EXP_SEEDS ?= $(if $(filter command line,$(origin SEEDS)),$(SEEDS),1)
SCHED_ARGS = --sched $(SCHED) --jobs $(if $(filter command line environment,$(origin JOBS)),$(JOBS),0) \
  $(if $(filter-out 0,$(WAIT)),--wait) $(if $(PARTITION),--partition '$(PARTITION)') \
  $(if $(ACCOUNT),--account '$(ACCOUNT)') $(if $(GPUS),--gpus '$(GPUS)') $(if $(TIME_LIMIT),--time '$(TIME_LIMIT)') \
  $(if $(THROTTLE),--throttle '$(THROTTLE)') $(if $(CPUS_PER_TASK),--cpus '$(CPUS_PER_TASK)') \
  $(if $(SBATCH_ARGS),--sbatch-args '$(SBATCH_ARGS)')
PYTHON    ?= $(or $(shell for p in python3 /usr/bin/python3; do $$p -c 'import matplotlib' 2>/dev/null && echo $$p && break; done),python3)
REPRO     := $(PYTHON) scripts/repro.py
# The CPU-sized Fashion-MNIST comparison: 10000 training images (2000 held out), 2 epochs.
COMPARE_ARGS ?= --set data.train_subset=10000 --set data.validation=2000 --set train.epochs=2 --set prune.edropout.min_epochs=1
PROFILE_EXP  ?= fashion_mnist_lenet_edropout
PROFILE_SHORT := --set train.epochs=1 --set data.train_subset=2048 --set data.validation=512 --set finetune.epochs=1
COST_STUDIES = $(wildcard bench/results/*_cost_study.json)

.PHONY: repro-edropout repro-gibbs repro-energy-aware repro-crl repro-all compare-fmnist study-fmnist study-report edropout-cost report profile ncu cost-study

# $(call repro,name,lists,data targets)
define repro
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	@$(REPRO) $(2) --seeds $(SEEDS) --out $(RUNS_ROOT)/$(1) --estimate-only $(SCHED_ARGS) $(REPRO_ARGS)
	$(if $(3),@$(MAKE) --no-print-directory $(3))
	$(REPRO) $(2) --seeds $(SEEDS) --out $(RUNS_ROOT)/$(1) --title "$(1)" $(SCHED_ARGS) $(REPRO_ARGS)
endef

repro-edropout: deps  ## EDropout's experiments over SEEDS seeds (default 3), table vs the paper in runs/repro-edropout/report
	$(call repro,repro-edropout,experiments/repro/edropout.txt,data-cifar10 data-cifar100)

repro-gibbs: deps  ## Gibbs pruning's experiments (experiments/gibbs_*.toml) over SEEDS seeds
	$(call repro,repro-gibbs,experiments/repro/gibbs.txt,data-cifar10)

repro-energy-aware: deps  ## energy-aware pruning, ResNet-56/110 on CIFAR-10, over SEEDS seeds
	$(call repro,repro-energy-aware,experiments/repro/energy-aware.txt,data-cifar10)

repro-crl: deps  ## constrained-RL pruning, VGG-16 / ResNet-18, over SEEDS seeds
	$(call repro,repro-crl,experiments/repro/crl.txt,data-cifar10)

repro-all: deps  ## every paper's experiments in one table (runs/repro-all/report)
	$(call repro,repro-all,$(wildcard experiments/repro/edropout.txt experiments/repro/gibbs.txt experiments/repro/energy-aware.txt experiments/repro/crl.txt),data-cifar10 data-cifar100)

compare-fmnist: deps  ## every method on Fashion-MNIST LeNet at 40% of the parameters (CPU, under an hour: COMPARE_ARGS)
	$(call repro,compare-fmnist,experiments/repro/compare-fmnist.txt $(COMPARE_ARGS))

# The full comparison: every method on all of Fashion-MNIST at 40% and 15% of the parameters on the
# small CNN, then on its wide variant, then the filter methods on ResNet-20 at 40% of the MACs (Gibbs
# filter-wise last: about 9 h a seed on a CPU core), SEEDS seeds, seed by seed; days on a CPU. Each
# completed run is kept without its weights in STUDY_ARCHIVE, a folder in the repository: commit it, and a later `make study-fmnist`
# on any machine runs only what is missing there. The methods that prune a trained network share
# one trained baseline per network and seed (prune.baseline_cache). study-report: the report alone.
STUDY_LISTS   ?= experiments/repro/study-fmnist-lenet.txt experiments/repro/study-fmnist-wide.txt \
  experiments/repro/study-fmnist-resnet20.txt experiments/repro/study-fmnist-resnet20-gibbs.txt
STUDY_ARCHIVE ?= bench/results/study_fmnist/runs
STUDY_REPORT   = $(PYTHON) scripts/study_report.py $(STUDY_ARCHIVE) --out $(patsubst %/,%,$(dir $(STUDY_ARCHIVE))) \
  --command "make study-fmnist" $(addprefix --expect ,$(STUDY_LISTS))

study-fmnist: deps  ## every method, full Fashion-MNIST, 40%/15% of the parameters, small and wide CNN (+ ResNet-20), SEEDS seeds (days of CPU; resumable; kept in STUDY_ARCHIVE)
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	$(REPRO) $(STUDY_LISTS) --seeds $(SEEDS) --out $(RUNS_ROOT)/study-fmnist --archive $(STUDY_ARCHIVE) --latency \
	  --set prune.baseline_cache=$(RUNS_ROOT)/study-fmnist/baselines \
	  --report $(RUNS_ROOT)/study-fmnist/report --title study-fmnist $(SCHED_ARGS) $(REPRO_ARGS)
	$(STUDY_REPORT)

study-report:  ## the study's report (tables, paired statistics, plots) from STUDY_ARCHIVE alone
	$(STUDY_REPORT)

# EDropout's search epochs against plain ones, by images per generation and evaluation path, on one
# core (the last; nothing else should run there) so the times measure the method, not the machine.
COST_SEEDS ?= 1
edropout-cost: deps  ## EDropout's search time vs a plain epoch on one core, COST_SEEDS seeds (~40 min each) -> bench/results/cpu_edropout_cost.md
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	OMP_NUM_THREADS=1 taskset -c $$(($$(nproc) - 1)) $(REPRO) experiments/repro/edropout-cost-fmnist.txt --seeds $(COST_SEEDS) \
	  --out $(RUNS_ROOT)/edropout-cost --title edropout-cost --no-plots $(REPRO_ARGS)
	$(PYTHON) scripts/edropout_cost.py $(RUNS_ROOT)/edropout-cost --out bench/results/cpu_edropout_cost.md

report:  ## tables (Markdown + CSV) and plots (PNG + SVG) from run directories: make report RUNS=dir
	@test -n "$(RUNS)" || { echo "make report: name the run directories, e.g. make report RUNS=runs/compare-fmnist"; exit 2; }
	$(PYTHON) scripts/report.py $(RUNS) --out $(firstword $(RUNS))/report $(addprefix --cost-study ,$(COST_STUDIES)) $(REPORT_ARGS)

# The bench measures ours and writes the networks it timed; bench/cost_study.py times them in
# onnxruntime at the same batches and rounds, and writes the tables (COST_STUDY_ARGS: its options).
cost-study: deps  ## dense vs compacted latency over batch 1..512, ours and onnxruntime's; unstructured masks on dense time -> bench/results/ (DEVICE=cpu|cuda)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/bin/cost_study_bench
	./$(BUILD)/bin/cost_study_bench --device $(or $(DEVICE),auto) --work $(BUILD)/cost_study $(BENCH_ARGS)
	$(TORCH_PYTHON) bench/cost_study.py $(BUILD)/cost_study/study.json --out bench/results $(COST_STUDY_ARGS)

profile:  ## a short run of experiments/$(EXP).toml under Nsight Systems and Nsight Compute, when installed
	@test -n "$(EXP)" || { echo "make profile: name an experiment, e.g. make profile EXP=$(PROFILE_EXP)"; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	scripts/profile.sh run $(EXP) $(APP) $(BUILD_ROOT)/profile $(PROFILE_SHORT)

ncu:  ## one kernel of ours (KERNEL=name, a regex) under Nsight Compute during a short run of PROFILE_EXP
	@test -n "$(KERNEL)" || { echo "make ncu: name a kernel, e.g. make ncu KERNEL=make_trials_kernel"; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(APP)
	scripts/profile.sh kernel '$(KERNEL)' $(PROFILE_EXP) $(APP) $(BUILD_ROOT)/profile $(PROFILE_SHORT)

# libFuzzer targets (fuzz/*_fuzz.cpp) for the readers and parsers, built with clang: the reader
# sources instrumented for coverage + ASan/UBSan, the one CUDA object they need from nvcc.
# `make fuzz` runs each for FUZZ_SECONDS from a generated seed corpus (kept and grown in
# $(FUZZ_DIR)/corpus); a crash, hang or leak leaves its input in $(FUZZ_DIR)/artifacts/TARGET/.
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD_ROOT)/fuzz$(if $(filter 0,$(CUDA)),-cpu)
FUZZ_TARGETS := idx cifar config checkpoint mask
FUZZ_SRC     := data/idx.cpp data/cifar.cpp data/dataset.cpp nn/checkpoint.cpp train/config.cpp nn/tensor.cpp \
                nn/buffer.cpp nn/device.cpp kernels/error.cpp \
                $(if $(filter 1,$(CUDA)),nn/cuda/memory.cpp kernels/check.cpp,nn/cuda_absent.cpp)
FUZZ_OBJ     := $(FUZZ_SRC:%.cpp=$(FUZZ_DIR)/obj/%.o) $(if $(filter 1,$(CUDA)),$(CU_BUILD)/kernels/elementwise.cu.o)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS := -std=c++17 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP $(INCLUDES) $(DEFS)
# What the instrumented sources call beyond themselves (train/config.cpp reads the method
# registry, which reaches most of the library) comes uninstrumented from the library.
FUZZ_LDLIBS  := $(LIB) -fopenmp $(DEP_LDFLAGS) $(LDLIBS)
FUZZ_MAX_LEN := idx=4096 cifar=16384 config=8192 checkpoint=4096 mask=4096

$(FUZZ_DIR)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(call say,CLANG,$<) $(FUZZ_CXX) $(FUZZ_CXXFLAGS) -c $< -o $@

$(FUZZ_DIR)/%_fuzz: $(FUZZ_DIR)/obj/fuzz/%_fuzz.o $(FUZZ_OBJ) $(LIB)
	$(call say,LINK,$@) $(FUZZ_CXX) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $(filter-out $(LIB),$^) $(FUZZ_LDLIBS)

$(FUZZ_DIR)/make_seeds: $(FUZZ_DIR)/obj/fuzz/make_seeds.o $(FUZZ_OBJ) $(LIB)
	$(call say,LINK,$@) $(FUZZ_CXX) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -o $@ $(filter-out $(LIB),$^) $(FUZZ_LDLIBS)

fuzz-deps:  ## install clang with libFuzzer when missing (apt-get)
	@echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' | \
	  $(FUZZ_CXX) -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null || { \
	  echo "installing: clang (libFuzzer)"; SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang >/dev/null; } || \
	    { echo "make fuzz: could not install clang"; exit 1; }; }

.PHONY: fuzz fuzz-deps
fuzz: fuzz-deps  ## build the libFuzzer targets and run each for FUZZ_SECONDS (default 60); prints executions per target
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%_fuzz) $(FUZZ_DIR)/make_seeds
	scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS) "$(foreach t,$(FUZZ_TARGETS),$(filter $(t)=%,$(FUZZ_MAX_LEN)))"

clean:  ## remove build outputs
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(BENCH_OBJ:.o=.d)
-include $(wildcard $(FUZZ_DIR)/obj/*/*.d $(FUZZ_DIR)/obj/*/*/*.d)
