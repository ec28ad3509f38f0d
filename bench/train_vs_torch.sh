#!/usr/bin/env bash
# `make bench-train`: a full training step of ResNet-20, ResNet-56 and VGG-16 on 3x32x32 data,
# spinprune (bench/train_step.cpp) beside PyTorch eager and torch.compile (bench/torch_train_step.py)
# on the same device, same batch, same precision, in one run. Writes
# bench/results/<device>_train_step[_tf32].md.
# Usage: bench/train_vs_torch.sh [cpu|cuda]   (env: MODELS, BATCHES, STEPS, REPEATS, PYTHON,
#        MATH=fp32|tf32: exact FP32 or TF32 tensor cores on both sides; default tf32 on the GPU;
#        COMPILE=0: no torch.compile column on the GPU; RESULT=file: the table there instead;
#        BENCH_BIN: our benchmark program, default build/release/bin/train_step_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-$(nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)}
if [[ $device == cuda ]]; then
    batches=${BATCHES:-128,512} steps=${STEPS:-20} repeats=${REPEATS:-5} compile=$([[ ${COMPILE:-1} == 1 ]] && echo --compile || true)
    label=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
else
    batches=${BATCHES:-32,128} steps=${STEPS:-2} repeats=${REPEATS:-3} compile=
    label="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
fi
models=${MODELS:-resnet20,resnet56,vgg16}
math=${MATH:-$([[ $device == cuda ]] && echo tf32 || echo fp32)}
[[ $math == fp32 || $math == tf32 ]] || { echo "bench-train: MATH=$math, expected fp32 or tf32"; exit 2; }
python=
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do  # the first interpreter with PyTorch
    if "$candidate" -c 'import torch' 2>/dev/null; then python=$candidate; break; fi
done
[[ -n $python ]] || { echo "bench-train: no Python with PyTorch (apt-get install python3-torch, or PYTHON=...)"; exit 1; }
bench=${BENCH_BIN:-build/release/bin/train_step_bench}
out=$(mktemp -d)
"$bench" --device "$device" --models "$models" --batches "$batches" --steps "$steps" --repeats "$repeats" --math "$math" \
    --json >"$out/ours.jsonl"
"$python" bench/torch_train_step.py --device "$device" --models "$models" --batches "$batches" --steps "$steps" \
    --repeats "$repeats" $compile ${THREADS:+--threads $THREADS} $([[ $math == tf32 ]] && echo --tf32) >"$out/torch.jsonl"
slug=$(echo "$label" | tr 'A-Z ' 'a-z_' | tr -cd 'a-z0-9_' | cut -c1-40)
[[ $device == cpu ]] && slug=cpu
suffix=$([[ $math == tf32 ]] && echo _tf32)
python3 - "$out" "$label" "$device" "${RESULT:-bench/results/${slug}_train_step${suffix}.md}" "$steps" "$repeats" "$math" <<'PY'
import datetime, json, os, subprocess, sys
out, label, device, path, steps, repeats, math = sys.argv[1:]
ours = [json.loads(l) for l in open(f"{out}/ours.jsonl")]
peers = [json.loads(l) for l in open(f"{out}/torch.jsonl")]
# GPU_CHECK_COMMIT: the commit a copied tree came from (make gpu-check on a device machine).
rev = os.environ.get("GPU_CHECK_COMMIT") or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = "" if os.environ.get("GPU_CHECK_COMMIT") else subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
torch_version = next((p["torch"] for p in peers if "torch" in p), "?")
lines = [f"# Training step: spinprune vs PyTorch ({device})", "",
         f"Measured {datetime.date.today()} on {label}, commit {rev}{' (with uncommitted changes)' if dirty else ''}, "
         f"by `bench/train_vs_torch.sh {device}` (`make bench-train`). Full step: forward, cross-entropy (value read "
         f"back), backward, SGD momentum 0.9; random 3x32x32 data on the device; "
         f"{'TF32 tensor cores on both sides (FP32 storage and accumulation)' if math == 'tf32' else 'exact fp32 (TF32 off on both sides)'}; "
         f"median of {repeats} repeats of {steps} steps after a warm-up. PyTorch {torch_version}.",
         f"Floors: the step's MACs (3 × forward MACs; 1 MAC = 2 FLOPs) at the measured SGEMM rate "
         f"({ours[0]['gemm_gmac_s']:.0f} GMAC/s), and an estimate of its memory traffic at the measured bandwidth "
         f"({ours[0]['bandwidth_gb_s']:.0f} GB/s); see bench/train_step.cpp.", "",
         "| model | batch | params | spinprune img/s | PyTorch eager img/s | torch.compile img/s | ours / eager | ours / compile | MAC floor ms | traffic floor ms | ours ms |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for o in ours:
    def peer(side):
        return next((p for p in peers if p["side"] == side and p["model"] == o["model"] and p["batch"] == o["batch"]), None)
    eager, comp = peer("pytorch-eager"), peer("pytorch-compile")
    if eager and eager["params"] != o["params"]:
        sys.exit(f"{o['model']}: PyTorch's network has {eager['params']} parameters, ours {o['params']}: not the same model")
    def ips(p):
        return "—" if not p else (f"failed ({p['error']})" if "error" in p else f"{p['images_per_s']:.0f}")
    def ratio(p):
        return "—" if not p or "error" in p else f"{o['images_per_s'] / p['images_per_s']:.2f}"
    lines.append(f"| {o['model']} | {o['batch']} | {o['params']:,} | {o['images_per_s']:.0f} | {ips(eager)} | {ips(comp)} | "
                 f"{ratio(eager)} | {ratio(comp)} | {o['mac_floor_ms']:.2f} | {o['traffic_floor_ms']:.2f} | {o['ms_per_step']:.2f} |")
lines += ["", "Ratios are images/s, ours over PyTorch's (above 1: we are faster)."]
open(path, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"\nwritten: {path}")
PY
