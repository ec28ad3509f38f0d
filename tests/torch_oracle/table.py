"""The oracle's results (DIR/results.json from oracle.py) as the Markdown table kept in
bench/results/: per architecture, the largest logit and gradient differences from PyTorch and
the bounds they are checked against, with date, commit, CPU and PyTorch version."""
import datetime
import json
import os
import platform
import subprocess
import sys

import torch


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(directory, out):
    results = json.load(open(os.path.join(directory, "results.json")))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# spinprune's CPU reference against PyTorch",
        "",
        f"{datetime.date.today().isoformat()}, commit {commit or '?'}, {cpu_name()} ({os.cpu_count()} cores), "
        f"PyTorch {torch.__version__} in float64 as the reference. Written by `tests/test_torch_oracle.cpp` "
        "(`SPINPRUNE_ORACLE_TABLE=bench/results/cpu_torch_oracle.md make test TEST_ARGS=-tc='PyTorch oracle*'`).",
        "",
        "Every zoo architecture at small widths (3-8 channels per resizable set; ResNet-20/32/56/110 keep their "
        "16/32/64 residual stages) on a batch of 4 random inputs (LeNet 1x12x12, AlexNet 3x12x12, the others "
        "3x8x8), 7 classes, batch norms with random statistics. *eval* / *train*: logits in eval mode and with "
        "batch statistics; *gradients*: one training step's gradient of every parameter (mean cross-entropy), "
        "the largest |difference| relative to the parameter's largest gradient (parameters whose gradient is zero "
        "up to rounding, a bias before a batch norm, left out). *bound*: the largest bound gamma(n) Σ|terms| "
        "(n the roundings along the computation, see tests/torch_oracle/oracle.py); *used*: the largest "
        "|difference| / bound, element by element for logits, per parameter tensor (normwise) for gradients "
        "(must stay below 1). "
        "*compacted*: the network compacted by surgery from a filter mask, against the masked and the compacted "
        "spinprune logits; *weight* / *kernel*: networks saved with unstructured masks.",
        "",
        "| case | check | max abs diff | bound | used |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for c in r.get("checks", []):
            if c["what"].startswith("gradient "):
                continue
            if "max_abs_diff" not in c:
                lines.append(f"| {r['case']} | {c['what']} | | | {'ok' if c['ok'] else 'FAILED'} |")
                continue
            lines.append(f"| {r['case']} | {c['what']} | {c['max_abs_diff']:.2e} | {c['max_bound']:.2e} | "
                         f"{c['worst_ratio']:.3f} |")
        if "gradients" in r:
            g = r["gradients"]
            lines.append(f"| {r['case']} | gradients of {g['parameters']} parameters: max rel diff "
                         f"{g['max_rel_diff']:.2e} | | | {g['worst_ratio']:.3f} ({g['worst_parameter']}) |")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
