#!/usr/bin/env bash
# `make profile` / `make ncu`: a short CUDA run of an experiment under Nsight Systems and Nsight
# Compute, whichever is installed (the device's clocks are left as they are: --clock-control none).
#   scripts/profile.sh run EXP APP OUT_DIR [run overrides...]        timeline + kernel summary, SpeedOfLight
#   scripts/profile.sh kernel REGEX EXP APP OUT_DIR [run overrides...] one kernel's full sections
set -uo pipefail
cd "$(dirname "$0")/.."
mode=$1
shift
have() { command -v "$1" >/dev/null; }
case $mode in
run)
    exp=$1 app=$2 dir=$3
    shift 3
    if ! have nsys && ! have ncu; then
        echo "make profile: neither nsys nor ncu is installed (Nsight Systems / Compute); nothing to do"
        exit 0
    fi
    mkdir -p "$dir"
    run=("./$app" run --config "experiments/$exp.toml" --device cuda "$@")
    status=0
    if have nsys; then
        rm -rf "$dir/${exp}_nsys_run"
        nsys profile --force-overwrite true --trace cuda,nvtx,cudnn,cublas -o "$dir/$exp" "${run[@]}" --out "$dir/${exp}_nsys_run" &&
            nsys stats --report nvtx_sum,cuda_gpu_kern_sum "$dir/$exp.nsys-rep" | tee "$dir/${exp}_nsys.txt" || status=1
    else
        echo "make profile: nsys not installed, timeline skipped"
    fi
    if have ncu; then
        rm -rf "$dir/${exp}_ncu_run"
        ncu --clock-control none --force-overwrite --launch-count 200 --section SpeedOfLight -o "$dir/$exp" \
            "${run[@]}" --out "$dir/${exp}_ncu_run" &&
            ncu --import "$dir/$exp.ncu-rep" --page details | tee "$dir/${exp}_ncu.txt" || status=1
    else
        echo "make profile: ncu not installed, kernel metrics skipped"
    fi
    exit $status
    ;;
kernel)
    kernel=$1 exp=$2 app=$3 dir=$4
    shift 4
    have ncu || { echo "make ncu: ncu (Nsight Compute) is not installed; nothing to do"; exit 0; }
    mkdir -p "$dir" && rm -rf "$dir/ncu_${kernel}_run"
    ncu --clock-control none --force-overwrite --kernel-name "regex:$kernel" --launch-count 5 \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section Occupancy \
        --section LaunchStats "./$app" run --config "experiments/$exp.toml" --device cuda "$@" \
        --out "$dir/ncu_${kernel}_run" | tee "$dir/ncu_$kernel.txt"
    ;;
*)
    sed -n '2,6p' "$0"
    exit 2
    ;;
esac
