#!/usr/bin/env python3
"""Runs the experiments of repro lists over seeds with bin/spinprune, then the results table.

    scripts/repro.py experiments/repro/edropout.txt [...] --seeds 3 --out runs/repro-edropout

A list names one config per line (a path or glob from the repository root) with optional
section.key=value overrides; a pattern that matches no config yet is reported as "not run".
Run i of a config goes to OUT/<experiment>/seed<i> with --seed i; a run whose summary.json says
completed is skipped, a partial one is resumed, a failed one is logged and the others go on.
Before starting, the script prints an estimate of the run time.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# Rough cost model for the estimate when no earlier run of the model was measured: MACs per image
# (CIFAR-sized input; Fashion-MNIST's 28×28 is about 0.77 of that) and the training set sizes.
MACS = {"lenet": 1.12e6, "resnet20": 41e6, "resnet32": 69e6, "resnet56": 125e6, "resnet110": 253e6,
        "resnet18": 557e6, "resnet34": 1.16e9, "vgg16": 313e6, "alexnet": 45e6, "squeezenet": 35e6}
TRAIN_IMAGES = {"fashion-mnist": 60000, "cifar10": 50000, "cifar100": 50000}
# Sustained MAC rate of a training step (forward + 2× backward), a rough figure per device kind.
RATE = {"cpu": 2e9, "cuda": 3e12}


def has_gpu():
    return shutil.which("nvidia-smi") is not None and subprocess.call(
        ["nvidia-smi", "-L"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def apply_overrides(config, overrides):
    for o in overrides:
        key, _, value = o.partition("=")
        *sections, last = key.split(".")
        d = config
        for s in sections:
            d = d.setdefault(s, {})
        try:
            d[last] = report.tomllib.loads(f"v = {value}")["v"]
        except report.tomllib.TOMLDecodeError:
            d[last] = value


def measured_images_per_s(out, model, dataset):
    """Training throughput of earlier runs of the same model and dataset under `out`."""
    rates = []
    for run in report.find_runs([out]) if os.path.isdir(out) else []:
        if run.model == model and run.dataset == dataset:
            rates += [m["images_per_s"] for m in run.metrics if m.get("phase") == "train" and m.get("images_per_s")]
    return sum(rates) / len(rates) if rates else None


def estimate_s(config, out, device):
    model = config.get("model", {}).get("name", "lenet")
    dataset = config.get("data", {}).get("dataset", "fashion-mnist")
    images = config.get("data", {}).get("train_subset") or TRAIN_IMAGES.get(dataset, 50000)
    images -= config.get("data", {}).get("validation", 5000)
    epochs = config.get("train", {}).get("epochs", 3) + config.get("finetune", {}).get("epochs", 0)
    rate = measured_images_per_s(out, model, dataset)
    if rate is None:
        macs = MACS.get(model, 100e6) * (0.77 if dataset == "fashion-mnist" else 1.0)
        rate = RATE[device] / (3 * macs)
    return epochs * max(images, 1) / rate


def resolve(lists, root):
    configs, missing = [], []
    for list_path in lists:
        for pattern, overrides in report.read_list(list_path):
            matches = sorted(glob.glob(os.path.join(root, pattern)))
            if not matches:
                missing.append(pattern)
            configs += [(m, overrides) for m in matches]
    return configs, missing


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lists", nargs="+", help="repro list files (experiments/repro/*.txt)")
    ap.add_argument("--seeds", type=int, default=3, help="runs per config, seeds 1..N (default 3)")
    ap.add_argument("--out", required=True, help="folder for the run directories and the report")
    ap.add_argument("--set", action="append", default=[], dest="overrides",
                    help="section.key=value for every run (after the list's own)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "spinprune"))
    ap.add_argument("--root", default=ROOT, help="folder the lists' config paths are relative to (default: the repository)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--title", default="Reproduction")
    ap.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    if args.seeds < 1:
        ap.error(f"--seeds: expected at least 1, got {args.seeds}")
    for list_path in args.lists:
        if not os.path.exists(list_path):
            ap.error(f"{list_path}: no such repro list")

    configs, missing = resolve(args.lists, args.root)
    for pattern in missing:
        print(f"repro: {pattern}: no config yet, listed as not run")
    device = args.device if args.device != "auto" else ("cuda" if has_gpu() else "cpu")
    jobs, total = [], 0.0
    for path, overrides in configs:
        config = report.read_config(path)
        apply_overrides(config, overrides + args.overrides)
        name = config["name"]
        est = estimate_s(config, args.out, device)
        for seed in range(1, args.seeds + 1):
            jobs.append((path, name, seed, overrides + args.overrides))
            total += est
        print(f"repro: {name}: {args.seeds} × about {est / 60:.1f} min")
    print(f"repro: estimated run time on {device}: about {total / 3600:.2f} h for {len(jobs)} runs "
          f"(rough: earlier runs' throughput where there are any, else a MAC-rate model)")
    if args.estimate_only:
        return 0

    failed = []
    start = time.time()
    for i, (path, name, seed, overrides) in enumerate(jobs, 1):
        run_dir = os.path.join(args.out, name, f"seed{seed}")
        summary = os.path.join(run_dir, "summary.json")
        if os.path.exists(summary):
            try:
                with open(summary) as f:
                    if json.load(f).get("completed", True):
                        print(f"repro: [{i}/{len(jobs)}] {name} seed {seed}: done earlier, skipped")
                        continue
            except ValueError:
                pass
        cmd = [args.bin, "run", "--config", path, "--seed", str(seed), "--out", run_dir, "--device", args.device]
        if os.path.exists(os.path.join(run_dir, "config.toml")):
            cmd.append("--resume")
        for o in overrides:
            cmd += ["--set", o]
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
        print(f"repro: [{i}/{len(jobs)}] {' '.join(cmd)}", flush=True)
        with open(run_dir + ".log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if rc != 0:
            failed.append((name, seed, rc))
            print(f"repro: {name} seed {seed} failed (exit {rc}), see {run_dir}.log")
    print(f"repro: {len(jobs)} runs in {(time.time() - start) / 60:.1f} min, {len(failed)} failed")

    report_args = [args.out, "--out", os.path.join(args.out, "report"), "--title", args.title, "--root", args.root]
    for list_path in args.lists:
        report_args += ["--expect", list_path]
    report.main(report_args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
