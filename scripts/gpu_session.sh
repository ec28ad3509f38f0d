#!/usr/bin/env bash
# A GPU verification session in a few commands of under 10 minutes each (the device machine's
# per-call limit, ../.library/device/README.md): build, the test suite with its GPU cases,
# compute-sanitizer, determinism, the benchmarks beside PyTorch, short GPU runs. Every stage
# writes <stage>.log and, where it makes files, <stage>.tar.gz into OUT (default $OUT, else
# runs/gpu_session), so one call brings everything back in at most 8 files.
#
# Prepare once on a machine with the Debian packages: `make third-party` (headers and
# Fashion-MNIST into third_party/), and carry third_party/ (and build/ after the first call, if
# the machine was given back) with each call. Then, e.g.:
#   scripts/gpu_session.sh build test          # ~6 min on 16 cores
#   scripts/gpu_session.sh sanitize determinism
#   scripts/gpu_session.sh bench               # bench/results/<device>_*.md
#   scripts/gpu_session.sh experiments
# ARCHS (default 90: the H100/H200) and CUDNN_HOME pass through to make; without a GPU every
# stage but build says so and is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu_session}
jobs=$(nproc)
bin=build/release/bin
mk() { make --no-print-directory -j"$jobs" ARCHS="${ARCHS:-90}" "$@"; }
have_gpu() { nvidia-smi -L >/dev/null 2>&1; }
# The tarball of the files a stage wrote, when there are any.
pack() {
    local stage=$1
    shift
    local files=()
    for f in "$@"; do [[ -e $f ]] && files+=("$f"); done
    ((${#files[@]})) && tar czf "$out/$stage.tar.gz" "${files[@]}"
}

stage_build() {
    nvidia-smi || true
    nvcc --version | tail -2
    mk all $bin/train_step_bench $bin/gibbs_sampler_bench $bin/population_bench $bin/scoring_cost_bench $bin/cost_study_bench
}

stage_test() {
    SPINPRUNE_BIN=bin/spinprune ./build/release/spinprune_tests
}

# memcheck, racecheck and initcheck on the GPU test cases (the CPU ones add nothing but time),
# and memcheck on a short GPU training run.
stage_sanitize() {
    command -v compute-sanitizer >/dev/null || export PATH=$PATH:${CUDA_HOME:-/usr/local/cuda}/bin
    command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found"; return 1; }
    local gpu_cases='*CUDA*,*cuda*,*GPU*,*gpu*' status=0
    for tool in memcheck racecheck initcheck; do
        echo "== compute-sanitizer --tool $tool: GPU test cases"
        compute-sanitizer --tool "$tool" --error-exitcode 3 ./build/release/spinprune_tests -tc="$gpu_cases" || status=1
    done
    echo "== compute-sanitizer --tool memcheck: one epoch of the small CNN on 2,000 images"
    compute-sanitizer --tool memcheck --error-exitcode 3 bin/spinprune train --config experiments/fashion_mnist_lenet.toml \
        --device cuda --out "$out/sanitize_run" --set train.epochs=1 --set data.train_subset=2000 \
        --set data.validation=500 || status=1
    return $status
}

# The same deterministic GPU training twice: the checkpoints must be equal byte for byte.
stage_determinism() {
    for i in 1 2; do
        rm -rf "$out/det$i"
        bin/spinprune train --config experiments/fashion_mnist_lenet.toml --device cuda --out "$out/det$i" \
            --set deterministic=true --set train.epochs=1 --set data.train_subset=5000 >/dev/null || return 1
    done
    cmp "$out/det1/checkpoint.safetensors" "$out/det2/checkpoint.safetensors" &&
        echo "deterministic GPU training: two runs, checkpoints identical"
}

stage_bench() {
    local status=0
    MATH=tf32 bench/train_vs_torch.sh cuda || status=1
    MATH=fp32 bench/train_vs_torch.sh cuda || status=1
    local device
    device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    { echo "# $device, $(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"; echo
      $bin/gibbs_sampler_bench --device cuda
      echo; $bin/train_step_bench --device cuda --models lenet,resnet20 --masks dense,gibbs,gibbs-fused
    } | tee "$out/gibbs.md" || status=1
    $bin/population_bench --device cuda --max-members 128 | tee "$out/population.md" || status=1
    $bin/scoring_cost_bench --device cuda | tee "$out/scoring.md" || status=1
    $bin/cost_study_bench --device cuda || status=1
    pack bench bench/results "$out"/gibbs.md "$out"/population.md "$out"/scoring.md
    return $status
}

# Short GPU runs: EDropout on ResNet-18 / Fashion-MNIST (time per generation, the evaluation's
# share) and Gibbs ResNet-20 on Fashion-MNIST (images/s with masks on vs off: train_baseline).
stage_experiments() {
    local status=0
    bin/spinprune run --config experiments/edropout_resnet18_fmnist.toml --device cuda --out "$out/edropout_r18" \
        --set train.epochs=2 --set finetune.epochs=1 || status=1
    bin/spinprune run --config experiments/gibbs_resnet20_fmnist.toml --device cuda --out "$out/gibbs_r20" \
        --set train.epochs=3 --set prune.gibbs.anneal_epochs=2 --set finetune.epochs=1 --set prune.train_baseline=true || status=1
    pack experiments "$out"/edropout_r18/{summary.json,metrics.jsonl,config.toml,environment.json} \
        "$out"/gibbs_r20/{summary.json,metrics.jsonl,config.toml,environment.json}
    return $status
}

(($#)) || { sed -n '2,17p' "$0"; exit 2; }
mkdir -p "$out"
failed=0
for stage in "$@"; do
    declare -F "stage_$stage" >/dev/null || { echo "unknown stage '$stage' (build test sanitize determinism bench experiments)"; exit 2; }
    if [[ $stage != build ]] && ! have_gpu; then
        echo "$stage: skipped, no GPU (nvidia-smi -L failed)" | tee "$out/$stage.log"
        continue
    fi
    start=$SECONDS
    "stage_$stage" 2>&1 | tee "$out/$stage.log"
    rc=${PIPESTATUS[0]}
    echo "$stage: exit $rc after $((SECONDS - start)) s" | tee -a "$out/$stage.log"
    ((rc == 0)) || failed=1
done
exit $failed
