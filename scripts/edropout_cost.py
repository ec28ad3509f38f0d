#!/usr/bin/env python3
"""EDropout's search cost (make edropout-cost): from the runs of experiments/repro/edropout-cost-fmnist.txt,
each EDropout row's search epochs against the plain epochs of the unpruned reference in the same
folder, its time per generation, and what it ended at (top-1, parameters kept).

    scripts/edropout_cost.py RUNS --out NAME.md [--command TEXT]

A search epoch is a [train] epoch whose search had not converged at its end (study_report.py's
definition); the plain epoch is the mean [train] epoch of the runs with prune.method = "none".
"""
import argparse
import datetime
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
import study_report  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", help="the folder of the runs (repro.py's --out)")
    ap.add_argument("--out", required=True, help="the Markdown file to write")
    ap.add_argument("--command", default="make edropout-cost", help="the command the runs came from")
    args = ap.parse_args(argv)
    runs = [r for r in report.find_runs([args.runs]) if report.get(r.summary, "completed")]
    plain = [s for s in (study_report.train_epoch_seconds(r) for r in runs
                         if report.get(r.config, "prune", "method") == "none") if s]
    searched = sorted((r for r in runs if report.get(r.config, "prune", "method") == "edropout"),
                      key=lambda r: (bool(report.get(r.config, "prune", "edropout", "compact_members")),
                                     -(report.get(r.config, "prune", "edropout", "eval_images") or 10 ** 9), r.seed))
    if not plain or not searched:
        print(f"edropout_cost: {args.runs}: needs a complete unpruned run and EDropout runs", file=sys.stderr)
        return 2
    plain_s = statistics.fmean(plain)
    revisions = sorted({r.environment.get("git_revision", "?") for r in runs})
    lines = [
        "# EDropout's search cost on Fashion-MNIST, small CNN, 40% of the parameters",
        "",
        f"`{args.command}` on {report.get(searched[0].summary, 'device')}, every run on one core "
        f"(OMP_NUM_THREADS=1, pinned), git {', '.join(revisions)}, table written "
        f"{datetime.date.today().isoformat()}. Top-1 on the test set after one epoch of fine-tuning. "
        f"Plain epoch (the unpruned reference's [train] epochs): **{plain_s:.1f} s**. "
        "× own: against the same run's epochs after its search converged (the mask fixed), timed in the "
        "same process, so under the same load as its search epochs.",
        "",
        "| run | seed | images per generation | members evaluated | search epoch (s) | × plain epoch | × own "
        "| s per generation | generations | top-1 | params kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    def num(value, spec, scale=1, unit=""):
        return "–" if value is None else f"{scale * value:{spec}}{unit}"

    for r in searched:
        e = report.get(r.config, "prune", "edropout") or {}
        batch = report.get(r.config, "train", "batch_size") or 128
        epoch_s, settled_s = study_report.train_epoch_seconds(r), study_report.settled_epoch_seconds(r)
        lines.append(
            f"| {r.name} | {num(r.seed, 'd')} | {e.get('eval_images') or batch} | "
            f"{'compacted, one by one' if e.get('compact_members') else 'one gated pass'} | {num(epoch_s, '.1f')} | "
            f"**{num(epoch_s and epoch_s / plain_s, '.2f', unit='×')}** | "
            f"{num(epoch_s and settled_s and epoch_s / settled_s, '.2f', unit='×')} | "
            f"{num(report.get(r.summary, 'search', 'seconds_per_generation'), '.4f')} | "
            f"{num(report.get(r.summary, 'search', 'generations'), 'd')} | "
            f"{num(report.get(r.summary, 'compacted', 'top1'), '.2f', unit='%')} | "
            f"{num(report.get(r.summary, 'params_kept'), '.1f', 100, '%')} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"edropout_cost: {len(searched)} EDropout runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
