#!/usr/bin/env bash
# Side by side on this machine's CPU: `spinprune train` of the default small CNN on
# Fashion-MNIST (experiments/fashion_mnist_lenet.toml) and the same network, settings and split
# sizes in PyTorch (Debian's python3-torch). Writes bench/results/cpu_fashion_mnist_lenet.md.
# Usage: bench/cpu_train_vs_torch.sh   (run it on an otherwise idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null ||
    { echo "installing python3-torch (Debian) for the peer"; apt-get install -y -qq python3-torch >/dev/null; }
make --no-print-directory -j"$(nproc)" bin/spinprune >/dev/null
threads=$(nproc)
out=$(mktemp -d)
./bin/spinprune train --config experiments/fashion_mnist_lenet.toml --device cpu --out "$out/run" >"$out/ours.log"
/usr/bin/python3 bench/torch_fashion_mnist_lenet.py /usr/share/datasets/fashion-mnist "$threads" >"$out/torch.log"
python3 - "$out" "$threads" <<'PY'
import json, statistics, subprocess, sys, datetime, platform
out, threads = sys.argv[1], sys.argv[2]
ours = [json.loads(l) for l in open(f"{out}/run/metrics.jsonl")]
summary = json.load(open(f"{out}/run/summary.json"))
torch_lines = [json.loads(l) for l in open(f"{out}/torch.log")]
torch_epochs, torch_final = torch_lines[:-1], torch_lines[-1]
our_s = statistics.median(r["seconds"] for r in ours)
torch_s = torch_final["median_epoch_s"]
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
text = f"""# CPU training: spinprune vs PyTorch, Fashion-MNIST small CNN

Measured {datetime.date.today()} on {cpu}, {threads} cores, commit {rev}, by `bench/cpu_train_vs_torch.sh`.
Network: conv16-BN-ReLU-maxpool, conv32-BN-ReLU-maxpool, fc64-ReLU, fc10 ({summary['params']} parameters,
{summary['macs']} MACs per image; 1 MAC = 2 FLOPs). 55,000 training images (5,000 held out), batch 128,
SGD lr 0.05 momentum 0.9 weight decay 5e-4, cosine schedule, 3 epochs, float32.

| | median s / epoch | images / s | test top-1 |
|---|---|---|---|
| spinprune (CPU backend, OpenBLAS) | {our_s:.1f} | {55000 // 128 * 128 / our_s:.0f} | {summary['top1']:.2f}% |
| PyTorch {torch_final['torch']} (CPU, {torch_final['threads']} threads) | {torch_s:.1f} | {55000 // 128 * 128 / torch_s:.0f} | {torch_final['test_top1']:.2f}% |

Time per epoch, spinprune / PyTorch: **{our_s / torch_s:.2f}x**. spinprune's epoch time includes a top-1
count per step; neither side counts evaluation. Per-epoch seconds, spinprune: {', '.join(f"{r['seconds']:.1f}" for r in ours)};
PyTorch: {', '.join(f"{r['seconds']:.1f}" for r in torch_epochs)}.
"""
open("bench/results/cpu_fashion_mnist_lenet.md", "w").write(text)
print(text)
PY
