#!/usr/bin/env bash
# `make gpu-check`: the whole GPU verdict in one command of at most GPU_CHECK_SECONDS (default
# 470, build included), for a GPU machine lent for a short window (offline: the header-only
# libraries and Fashion-MNIST travel in third_party/, from `make third-party`).
#
#   scripts/gpu_check.sh [OUT]      OUT: where results go (default $OUT, else runs/gpu_check)
#   scripts/gpu_check.sh --dry-run  the plan and its checks, without a GPU (also the default
#                                   when nvidia-smi lists none)
#
# Stages run in order of value, each under its own time cap (shortened to what the total
# budget has left; a stage with too little left is "not reached"). As each stage ends, its log
# is appended to OUT/gpu_check.log and OUT/summary.md is rewritten (verdicts, times, tables), so
# a command stopped at its limit still returns everything finished before. OUT holds at most
# seven files: summary.md, gpu_check.log and the benchmark tables.
#
# No false pass: the GPU tests run with SPINPRUNE_REQUIRE_GPU=1, so a CUDA runtime that cannot
# start fails them (tests/main.cpp), and the stage also fails unless every registered GPU case
# ran. The exit status is 0 only when no stage failed (skipped and not-reached stages are named
# in the summary; the GPU tests must have run for a pass).
set -uo pipefail
cd "$(dirname "$0")/.."
# The stages build and run the release configuration: a parent make's variables (SAN=1 from
# `make test SAN=1`, which make puts both in MAKEFLAGS and in the environment) must not switch the
# configuration under us.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES SAN DEBUG CUDA

dry_run=0
[[ ${1:-} == --dry-run ]] && { dry_run=1; shift; }
out=${1:-${OUT:-runs/gpu_check}}
budget=${GPU_CHECK_SECONDS:-470}
jobs=$(nproc)
work=${GPU_CHECK_WORK:-build/gpu_check}  # run directories and full logs (not returned)
bin=build/release/bin
tests=build/release/spinprune_tests
have_gpu() { nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }
have_gpu || dry_run=1

# name | cap in seconds | what it does. The order is the order of value.
STAGES=(
    "facts|45|the GPU, driver, toolkit and libraries found (nvidia-smi, make print-deps)"
    "build|240|make -j$jobs ARCHS=90: bin/spinprune, the test binary, the benchmarks"
    "gpu_tests|150|every GPU test case (-ts=gpu) with SPINPRUNE_REQUIRE_GPU=1; all must run and pass"
    "memcheck|120|compute-sanitizer memcheck on the GPU test cases"
    "determinism|60|the same deterministic GPU training twice: model.safetensors equal byte for byte"
    "bench_train|90|a training step of ResNet-20/56 at batch 128 beside PyTorch eager (TF32 both sides)"
    "bench_pruning|75|population evaluation, Gibbs samplers, feature-map scoring on the GPU"
    "runs|90|one short EDropout run (ResNet-18) and one short Gibbs run (ResNet-20) on Fashion-MNIST"
    "racecheck|60|compute-sanitizer racecheck on the GPU test cases, if time remains"
    "initcheck|60|compute-sanitizer initcheck on the GPU test cases, if time remains"
)
BUILD_TARGETS="bin/spinprune $tests $bin/train_step_bench $bin/population_bench $bin/gibbs_sampler_bench $bin/scoring_cost_bench"
# Files the stages read; the dry run checks each exists.
INPUTS="experiments/fashion_mnist_lenet.toml experiments/edropout_resnet18_fmnist.toml experiments/gibbs_resnet20_fmnist.toml
        bench/train_vs_torch.sh bench/torch_train_step.py scripts/find_deps.py"
# The short runs' configs with their overrides (the dry run validates each with `spinprune info`).
DET_ARGS="--config experiments/fashion_mnist_lenet.toml --set deterministic=true --set train.epochs=1 --set data.train_subset=6000 --set data.validation=1000"
EDROPOUT_ARGS="--config experiments/edropout_resnet18_fmnist.toml --set data.train_subset=10000 --set data.validation=2000 --set train.epochs=2 --set finetune.epochs=1"
GIBBS_ARGS="--config experiments/gibbs_resnet20_fmnist.toml --set data.train_subset=10000 --set data.validation=2000 --set train.epochs=2 --set prune.gibbs.anneal_epochs=1 --set finetune.epochs=1"

# ---------------------------------------------------------------- stages (stdout: the log)

# The sanitizer on the GPU cases; "refused" (exit 77) where the device is not supported.
sanitize() {
    local tool=$1
    command -v compute-sanitizer >/dev/null || export PATH=$PATH:${CUDA_HOME:-/usr/local/cuda}/bin
    command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found"; return 77; }
    compute-sanitizer --tool "$tool" --error-exitcode 3 --print-limit 50 \
        env SPINPRUNE_REQUIRE_GPU=1 "$tests" -ts=gpu --duration=true 2>&1 | tee "$work/$tool.raw"
    local rc=${PIPESTATUS[0]}
    if grep -qE 'Device not supported|Error: Target application terminated before first instrumented API call' "$work/$tool.raw"; then
        echo "compute-sanitizer refused this device"
        return 77
    fi
    return "$rc"
}

stage_facts() {
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv
    echo "nvcc: $(command -v nvcc || echo 'not on PATH')"; nvcc --version | tail -n 2
    python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' ||
        echo "python3 has no PyTorch: bench-train has no peer"
    command -v compute-sanitizer >/dev/null && compute-sanitizer --version | tail -n 1
    [[ -d third_party/include && -d third_party/data/fashion-mnist ]] ||
        echo "third_party/ is incomplete: run make third-party where the Debian packages are, and carry it"
    make --no-print-directory ARCHS=90 print-deps
}

stage_build() {
    # shellcheck disable=SC2086
    make --no-print-directory -j"$jobs" ARCHS=90 $BUILD_TARGETS
}

stage_gpu_tests() {
    SPINPRUNE_REQUIRE_GPU=1 SPINPRUNE_BIN=bin/spinprune "$tests" -ts=gpu --duration=true | tee "$work/gpu_tests.raw"
    local rc=${PIPESTATUS[0]}
    local ran registered
    read -r ran registered < <(sed -nE 's/^GPU cases: ([0-9]+) of ([0-9]+) ran$/\1 \2/p' "$work/gpu_tests.raw" | tail -n 1)
    if [[ -z ${ran:-} || $ran != "$registered" || $registered == 0 ]]; then
        echo "FAIL: ${ran:-?} of ${registered:-?} registered GPU cases ran; a GPU case not run on a GPU is a failure"
        return 1
    fi
    return "$rc"
}

stage_memcheck() { sanitize memcheck; }
stage_racecheck() { sanitize racecheck; }
stage_initcheck() { sanitize initcheck; }

stage_determinism() {
    for i in 1 2; do
        rm -rf "$work/det$i"
        # shellcheck disable=SC2086
        bin/spinprune train $DET_ARGS --device cuda --out "$work/det$i" || return 1
    done
    if cmp "$work/det1/model.safetensors" "$work/det2/model.safetensors"; then
        echo "two deterministic GPU trainings: model.safetensors identical ($(stat -c %s "$work/det1/model.safetensors") bytes)"
    else
        echo "FAIL: two deterministic GPU trainings wrote different weights"
        return 1
    fi
}

stage_bench_train() {
    MODELS=resnet20,resnet56 BATCHES=128 STEPS=20 REPEATS=3 COMPILE=0 MATH=tf32 RESULT="$out/train_step_tf32.md" \
        bench/train_vs_torch.sh cuda && cat "$out/train_step_tf32.md"
}

stage_bench_pruning() {
    local status=0
    $bin/population_bench --device cuda --max-members 128 --repeats 5 | tee "$out/population.md" || status=1
    { $bin/gibbs_sampler_bench --device cuda --repeats 10 &&
          $bin/train_step_bench --device cuda --models lenet,resnet20 --batches 128 --steps 10 --repeats 3 \
              --masks dense,gibbs,gibbs-fused; } | tee "$out/gibbs.md" || status=1
    $bin/scoring_cost_bench --device cuda --repeats 3 | tee "$out/scoring.md" || status=1
    return $status
}

stage_runs() {
    local status=0
    # shellcheck disable=SC2086
    bin/spinprune run $EDROPOUT_ARGS --device cuda --out "$work/edropout_r18" || status=1
    # shellcheck disable=SC2086
    bin/spinprune run $GIBBS_ARGS --device cuda --out "$work/gibbs_r20" || status=1
    for run in edropout_r18 gibbs_r20; do
        echo "== $run: summary.json"
        cat "$work/$run/summary.json" 2>/dev/null || echo "(none)"
    done
    return $status
}

# ---------------------------------------------------------------- the plan, and the dry run

print_plan() {
    echo "gpu-check plan (total budget ${budget} s; each stage capped, and shortened to what is left):"
    local s name cap what
    for s in "${STAGES[@]}"; do
        IFS='|' read -r name cap what <<<"$s"
        printf '  %-14s %4s s  %s\n' "$name" "$cap" "$what"
    done
}

dry_run_checks() {
    local failed=0 f s name
    for s in "${STAGES[@]}"; do
        name=${s%%|*}
        declare -F "stage_$name" >/dev/null || { echo "dry run: stage $name has no function"; failed=1; }
    done
    for f in $INPUTS; do
        [[ -e $f ]] || { echo "dry run: $f is missing"; failed=1; }
    done
    # Every make target the stages use has a rule (print-deps' own program stands for it: make -n
    # still runs a recipe's recursive $(MAKE) lines, and print-deps would run the program).
    # shellcheck disable=SC2086
    make --no-print-directory -n ARCHS=90 $BUILD_TARGETS build/release/bin/deps_check >/dev/null ||
        { echo "dry run: make cannot build $BUILD_TARGETS"; failed=1; }
    # The short runs' configs and overrides are valid (where the program is built).
    if [[ -x bin/spinprune ]]; then
        local args
        for args in "$DET_ARGS" "$EDROPOUT_ARGS" "$GIBBS_ARGS"; do
            # shellcheck disable=SC2086
            bin/spinprune info $args --device cpu >/dev/null || { echo "dry run: spinprune rejects: $args"; failed=1; }
        done
    else
        echo "dry run: bin/spinprune not built; the run configs were not validated"
    fi
    # The benchmark programs accept the options the stages give (where built).
    local b
    for b in train_step_bench population_bench gibbs_sampler_bench scoring_cost_bench; do
        [[ -x $bin/$b ]] && { $bin/$b --help >/dev/null || { echo "dry run: $b --help failed"; failed=1; }; }
    done
    return $failed
}

if ((dry_run)); then
    echo "gpu-check: dry run (no GPU listed by nvidia-smi): checking the plan, running no stage"
    print_plan
    if dry_run_checks; then
        echo "gpu-check dry run: every stage, input, make target and run configuration is in place"
        exit 0
    fi
    echo "gpu-check dry run: FAILED (see above)"
    exit 1
fi

# ---------------------------------------------------------------- running the stages

mkdir -p "$out" "$work"
rm -f "$out/gpu_check.log" "$out/summary.md"
started=$SECONDS
# GPU_CHECK_COMMIT: the commit the tree was copied from, where the copy's own .git cannot tell.
dirty=$([[ -n ${GPU_CHECK_COMMIT:-} ]] || git status --porcelain --untracked-files=no 2>/dev/null | head -c1)
commit=${GPU_CHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export GPU_CHECK_COMMIT=$commit  # bench/train_vs_torch.sh writes it into its table
device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
declare -A verdict seconds
build_ok=0

write_summary() {
    {
        echo "# GPU check: $device"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit${dirty:+ (with uncommitted changes)}, \`make gpu-check\`" \
             "(scripts/gpu_check.sh), budget ${budget} s, $((SECONDS - started)) s used."
        echo
        echo "| stage | verdict | seconds | what |"
        echo "|---|---|---:|---|"
        local s name cap what
        for s in "${STAGES[@]}"; do
            IFS='|' read -r name cap what <<<"$s"
            echo "| $name | ${verdict[$name]:-not reached} | ${seconds[$name]:-} | $what |"
        done
        local table
        for table in train_step_tf32 population gibbs scoring; do
            [[ -s $out/$table.md ]] && { echo; echo "## $table"; echo; cat "$out/$table.md"; }
        done
        echo
        echo "Full logs: gpu_check.log."
    } >"$out/summary.md.tmp" && mv "$out/summary.md.tmp" "$out/summary.md"
}

# Runs one stage under its cap; records its verdict, appends its log (long logs: head and tail).
run_stage() {
    local name=$1 cap=$2
    local left=$((budget - (SECONDS - started)))
    if [[ $name != facts && $name != build ]] && ((!build_ok)); then
        verdict[$name]="skipped: the build failed"
    elif ((left < 20)); then
        verdict[$name]="not reached: ${left} s of the budget left"
    else
        ((cap > left - 5)) && cap=$((left - 5))
        local t0=$SECONDS rc
        export -f "stage_$name" sanitize
        export bin tests work out jobs BUILD_TARGETS DET_ARGS EDROPOUT_ARGS GIBBS_ARGS
        timeout --signal=TERM --kill-after=10 "$cap" bash -c "set -o pipefail; stage_$name" >"$work/$name.log" 2>&1
        rc=$?
        seconds[$name]=$((SECONDS - t0))
        case $rc in
            0) verdict[$name]=pass ;;
            77) verdict[$name]="skipped: $(tail -n 1 "$work/$name.log")" ;;
            124|137) verdict[$name]="FAIL: stopped at its cap of ${cap} s (partial log)" ;;
            *) verdict[$name]="FAIL (exit $rc)" ;;
        esac
        # A sanitizer judges memory, races and initialisation; a failing test case under it (exit
        # 1 with no sanitizer error) is the gpu_tests stage's verdict, not the sanitizer's.
        if [[ $name =~ ^(memcheck|racecheck|initcheck)$ && $rc == 1 ]] && grep -q 'ERROR SUMMARY: 0 errors' "$work/$name.log"; then
            verdict[$name]="pass: 0 errors (some test cases failed: see gpu_tests)"
        fi
        # A sanitizer stopped by its cap has checked the cases it finished (doctest's --duration
        # lines); without an error among them that is an incomplete check, not a failure.
        if [[ $name =~ ^(memcheck|racecheck|initcheck)$ && ($rc == 124 || $rc == 137) ]] &&
            ! grep -qE '^========= (Invalid|Program hit|Race|Uninitialized|Error)|ERROR SUMMARY: [1-9]' "$work/$name.log"; then
            verdict[$name]="incomplete: the cap of ${cap} s ended it after $(grep -cE '^[0-9.]+ s: ' "$work/$name.log") GPU cases, none with an error"
        fi
        [[ $name == build && $rc == 0 ]] && build_ok=1
        {
            echo "================ $name: ${verdict[$name]} (${seconds[$name]} s)"
            if (($(wc -l <"$work/$name.log") > 6000)); then
                head -n 1000 "$work/$name.log"
                echo "... ($(wc -l <"$work/$name.log") lines; the first 1000 and the last 5000 shown)"
                tail -n 5000 "$work/$name.log"
            else
                cat "$work/$name.log"
            fi
        } >>"$out/gpu_check.log"
    fi
    echo "gpu-check: $name: ${verdict[$name]}${seconds[$name]:+ (${seconds[$name]} s)}"
    write_summary
}

print_plan
for s in "${STAGES[@]}"; do
    IFS='|' read -r name cap _ <<<"$s"
    run_stage "$name" "$cap"
done
failed=0
for s in "${STAGES[@]}"; do
    [[ ${verdict[${s%%|*}]:-} == FAIL* ]] && failed=1
done
[[ ${verdict[gpu_tests]:-} == pass ]] || failed=1
echo "gpu-check: $( ((failed)) && echo FAILED || echo passed ); summary in $out/summary.md"
exit $failed
