#!/usr/bin/env python3
"""Renders a run directory's summary.json (from `spinprune run`) as a Markdown table with the
device, date and git revision of the run. Usage: bench/summary_table.py RUN_DIR [TITLE]"""
import json, os, sys

run = sys.argv[1]
title = sys.argv[2] if len(sys.argv) > 2 else None
s = json.load(open(os.path.join(run, "summary.json")))
env = json.load(open(os.path.join(run, "environment.json")))
date = os.path.basename(os.path.normpath(run)).split("-")[0]
print(f"# {title or s['experiment']}\n")
print(f"`spinprune run --config experiments/{s['experiment']}.toml` on {env['device_name']} ({env['device']}), "
      f"git {env['git_revision']}, run {os.path.basename(os.path.normpath(run))}, seed {s['seed']}, method `{s['method']}`.")
print("MACs are multiply-accumulates per image (1 MAC = 2 FLOPs); top-1/top-5 on the test set.\n")
print("| stage | top-1 | top-5 | params | MACs |")
print("|---|---|---|---|---|")
rows = [("baseline", "baseline")]
if "full" in s and "baseline_kind" not in s:
    rows.append(("full", "EDropout (F): all units kept"))
rows += [("pruned", "pruned (masked)"), ("compacted", "pruned (compacted)")]
for key, label in rows:
    if key in s:
        r = s[key]
        print(f"| {label} | {r['top1']:.2f}% | {r['top5']:.2f}% | {r['params']:,} | {r['macs']:,} |")
if "params_kept" in s:
    lat = s["latency_ms"]
    print(f"\nKept: **{100 * s['params_kept']:.2f}%** of parameters, **{100 * s['macs_kept']:.2f}%** of MACs; "
          f"top-1 change vs baseline: **{s['pruned']['top1'] - s['baseline']['top1']:+.2f}** points.")
    print(f"\nLatency (ms, median of 10 after 3 warm-ups): batch 1 {lat['dense']['b1']:.3f} dense → "
          f"{lat['pruned']['b1']:.3f} pruned; batch 128 {lat['dense']['b128']:.3f} → {lat['pruned']['b128']:.3f}.")
if "search" in s:
    se = s["search"]
    print(f"\nSearch: {se['generations']} generations, converged: {se['converged']}, "
          f"{1000 * se['seconds_per_generation']:.1f} ms per generation.")
t = s["time_s"]
print("\nTime (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
