#!/usr/bin/env python3
"""The report of a matched-budget study (make study-fmnist): every method against the same network
trained unpruned and against L1 filter pruning at the same budget, seed by seed, from the run
directories alone.

    scripts/study_report.py RUNS... --out DIR [--expect LIST ...] [--command TEXT] [--title TEXT]

Runs (found and read as scripts/report.py does) are grouped by experiment name. A row's network is
its model with its widths; its budget, the experiment name's _k<percent> suffix (the share of the
parameters, or of the MACs where prune.budget says so, that its list line asks for); the unpruned
reference of a network is its run with prune.method = "none", paired with the pruned runs seed by
seed. Every row: top-1 and top-5 (mean ± std over seeds), the difference to the unpruned network,
parameters and MACs kept, the latency of the final network (latency.json: one core, fastest of 5
rounds; else the run's own figure), the wall time of the search and of the run. The paired
comparison against L1 at the same budget gives the mean difference, its 95% t-interval and the
sign test over seeds. Writes DIR/README.md (with DIR/notes.md, hand-written observations, where
it exists), DIR/results.csv and DIR/figures/*.png (top-1 against parameters and MACs kept with
error bars; latency against MACs), and says which experiments of the --expect lists have no
complete run yet.
"""
import argparse
import csv
import datetime
import math
import os
import platform
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

# Two-sided 95% quantiles of Student's t by degrees of freedom; between two entries the lower
# degrees' (the wider interval), beyond 30 the normal's 1.96.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t975(df):
    return T975[max(k for k in T975 if k <= df)] if df <= 30 else 1.96


def t_interval(diffs):
    """(mean, half-width of the 95% t-interval); half-width None below two values."""
    m = statistics.fmean(diffs)
    if len(diffs) < 2:
        return m, None
    return m, t975(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))


def sign_test_p(diffs):
    """Two-sided sign test: the chance of a split at least this uneven when either sign is as likely
    (ties dropped); 1.0 without untied pairs."""
    pos, neg = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    n = pos + neg
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(pos, neg) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def network(run):
    """'lenet', or 'lenet conv1=32 conv2=64 fc1=256' for a variant with other widths."""
    widths = report.get(run.config, "model", "widths") or {}
    return " ".join([run.model] + [f"{k}={v}" for k, v in sorted(widths.items())])


def budget(name):
    m = re.search(r"_k(\d+)$", name)
    return int(m.group(1)) if m else None


def method_label(run):
    """The method with what sets its variant apart: EDropout's energy, Gibbs' granularity, RL's cost."""
    c = run.config
    label = run.method
    if run.method == "edropout" and report.get(c, "prune", "edropout", "energy") == "ising":
        label += " (ising)"
    if run.method == "gibbs":
        label += f" ({report.get(c, 'prune', 'granularity') or 'weight'}, p={report.get(c, 'prune', 'gibbs', 'p')})"
    if run.method == "constrained-rl":
        label += f" ({report.get(c, 'prune', 'budget') or 'params'} cost)"
    return label


def plot_method(row):
    """The row's method for the plots' colours: its label without Gibbs' p (that is the budget)."""
    return re.sub(r", p=[^)]*\)", ")", row.label)


def top1(run):
    return report.get(run.summary, "baseline", "top1") if run.method == "none" else run.final("top1")


def top5(run):
    return report.get(run.summary, "baseline", "top5") if run.method == "none" else run.final("top5")


def latency_ms(run, batch):
    return run.latency_ms("dense" if run.method == "none" else "pruned", batch)


def kept(run, key):
    return 100.0 if run.method == "none" else run.kept_percent(key)


def run_seconds(run):
    """The run's wall time with its pretraining: a run that reused a shared baseline
    (prune.baseline_cache) is counted with the training time of that baseline."""
    total = report.get(run.summary, "time_s", "total")
    reused = report.get(run.summary, "baseline_reused") and report.get(run.summary, "time_s", "pretrain")
    return total + reused if total is not None and reused else total


def timed_train_epochs(run):
    return [m for m in run.metrics if m.get("phase") == "train" and m.get("seconds")]


def train_epoch_seconds(run):
    """Mean wall time of the run's [train] epochs; for EDropout, of its search epochs (those whose
    search had not converged at their end), when there are any."""
    train = timed_train_epochs(run)
    searching = [m for m in train if m.get("search_converged") is False]
    s = [m["seconds"] for m in searching or train]
    return statistics.fmean(s) if s else None


def settled_epoch_seconds(run):
    """Mean wall time of an EDropout run's [train] epochs after its search converged (the mask
    fixed): a plain epoch of the same process, so under the same load as its search epochs."""
    s = [m["seconds"] for m in timed_train_epochs(run) if m.get("search_converged") is True]
    return statistics.fmean(s) if s else None


class Row:
    def __init__(self, name, runs):
        self.name = name
        self.runs = {r.seed: r for r in runs if r.status == "complete"}
        first = (list(self.runs.values()) or runs)[0]
        self.config, self.network, self.budget, self.method = first.config, network(first), budget(name), first.method
        self.budget_of = report.get(self.config, "prune", "budget") or "params"  # what the budget is a share of
        self.label = "unpruned" if first.method == "none" else method_label(first)

    def values(self, fn):
        return [fn(r) for _, r in sorted(self.runs.items())]

    def paired(self, other, fn):
        """Per-seed differences fn(self) − fn(other) over the seeds both have."""
        if other is None:
            return []
        seeds = sorted(set(self.runs) & set(other.runs))
        pairs = [(fn(self.runs[s]), fn(other.runs[s])) for s in seeds]
        return [a - b for a, b in pairs if a is not None and b is not None]


def pm(diffs, digits=2):
    if not diffs:
        return "–"
    m, s = report.mean_std(diffs)
    return f"{m:+.{digits}f}" if len(diffs) == 1 else f"{m:+.{digits}f} ± {s:.{digits}f}"


def provenance(runs, command):
    revisions = sorted({r.environment.get("git_revision", "?") for r in runs})
    devices = sorted({report.get(r.summary, "device") or "?" for r in runs})
    dates = sorted(d[:10] for d in (report.get(r.latency, "measured") for r in runs) if d)
    span = f"{dates[0]} to {dates[-1]}" if dates else "not recorded (runs archived before latency.json dated them)"
    return [f"Command: `{command}` (resumable: it runs only what the archive lacks; the report alone: "
            "`make study-report`).",
            f"Commits of the runs: {', '.join(revisions)}. Devices: {'; '.join(devices)}. Runs measured: {span}. "
            f"Report written {datetime.date.today().isoformat()} with Python {platform.python_version()}.",
            "MACs are multiply-accumulates per image (1 MAC = 2 FLOPs)."]


def build_rows(runs):
    groups = {}
    for r in runs:
        groups.setdefault(r.name, []).append(r)
    rows = [Row(name, members) for name, members in groups.items()]
    rows.sort(key=lambda r: (r.network, r.method != "none", -(r.budget or 0), r.label))
    return rows


def reference(rows, row, method):
    """The row of `method` ("none": the unpruned network; else at the same budget) on row's network."""
    for r in rows:
        if r.network == row.network and r.method == method and (method == "none" or r.budget == row.budget):
            return r
    return None


TABLE = ["budget", "method", "seeds", "top-1 %", "top-5 %", "Δ top-1 vs unpruned", "params kept %", "MACs kept %",
         "latency b1 ms", "latency b128 ms", "search s", "run s"]


def table_row(rows, row):
    unpruned = reference(rows, row, "none")
    delta = row.paired(unpruned, top1) if row.method != "none" else []
    return {"budget": f"{row.budget}% {row.budget_of}" if row.budget else "–", "method": row.label,
            "seeds": ";".join(map(str, sorted(row.runs))) or "none complete",
            "top-1 %": report.fmt(row.values(top1)), "top-5 %": report.fmt(row.values(top5)),
            "Δ top-1 vs unpruned": pm(delta), "params kept %": report.fmt(row.values(lambda r: kept(r, "params_kept"))),
            "MACs kept %": report.fmt(row.values(lambda r: kept(r, "macs_kept"))),
            "latency b1 ms": report.fmt(row.values(lambda r: latency_ms(r, 1)), 3),
            "latency b128 ms": report.fmt(row.values(lambda r: latency_ms(r, 128)), 2),
            "search s": report.fmt(row.values(lambda r: report.get(r.summary, "time_s", "search")), 1)
            if row.method != "none" else "–",
            "run s": report.fmt(row.values(run_seconds), 0)}


def paired_lines(rows):
    lines = ["| network | budget | method | seeds | mean Δ top-1 vs L1 | 95% t-interval | signs + / − | sign-test p | reading |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        l1 = reference(rows, row, "l1-filter")
        if row.method in ("none", "l1-filter") or l1 is None:
            continue
        diffs = row.paired(l1, top1)
        if not diffs:
            continue
        m, half = t_interval(diffs)
        interval = f"[{m - half:+.2f}, {m + half:+.2f}]" if half is not None else "– (one seed)"
        if half is None:
            reading = "one seed: no test"
        elif m - half <= 0 <= m + half:
            reading = "inside the noise"
        else:
            reading = "above L1" if m > 0 else "below L1"
        lines.append(f"| {row.network} | {row.budget}% | {row.label} | {len(diffs)} | {m:+.2f} | {interval} | "
                     f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)} | {sign_test_p(diffs):.2f} | {reading} |")
    return lines


def goal_lines(rows):
    """The study's three goals (docs/usage.md), read off the rows that bear on them."""
    small = [r for r in rows if r.network == "lenet"]
    lines = []
    ed = [r for r in small if r.method == "edropout" and r.runs]
    hits = []
    for r in ed:
        params = statistics.fmean(r.values(lambda x: kept(x, "params_kept")))
        delta = r.paired(reference(rows, r, "none"), top1)
        if delta:
            hits.append((r, params, statistics.fmean(delta)))
    met = [h for h in hits if h[1] <= 25 and h[2] >= -1]
    found = "; ".join(f"{r.name} keeps {p:.1f}% at {d:+.2f} points" for r, p, d in hits)
    lines.append("- EDropout on the small CNN keeping at most 25% of the parameters within 1 point of the unpruned "
                 "network: " + ("**met**: " if met else "not met: " if hits else "no complete run yet") + found)
    gibbs = [r for r in small if r.method == "gibbs" and r.runs and report.get(r.config, "prune", "gibbs", "p") == 0.9
             and (report.get(r.config, "prune", "granularity") or "weight") == "weight"]
    gd = [(r, r.paired(reference(rows, r, "none"), top1)) for r in gibbs]
    gd = [(r, statistics.fmean(d)) for r, d in gd if d]
    lines.append("- Gibbs unstructured at p = 0.9 on the small CNN within 1 point: " +
                 ("; ".join(f"{'**met**' if d >= -1 else 'not met'}: {d:+.2f} points ({r.name})" for r, d in gd)
                  if gd else "no complete run yet"))
    ratios = []
    for r in ed:
        plain = reference(rows, r, "none")
        pairs = [(train_epoch_seconds(r.runs[s]), train_epoch_seconds(plain.runs[s]))
                 for s in sorted(set(r.runs) & set(plain.runs))] if plain else []
        pairs = [a / b for a, b in pairs if a and b]
        own = [(train_epoch_seconds(x), settled_epoch_seconds(x)) for x in r.runs.values()]
        own = [a / b for a, b in own if a and b]
        if pairs:
            ratios.append((r, statistics.fmean(pairs), statistics.fmean(own) if own else None))
    lines.append("- EDropout's search epochs at most 1.2× a plain training epoch (the unpruned run's, same seed; in "
                 "brackets, against the run's own epochs after its search converged, same process and load): " +
                 ("; ".join(f"{'**met**' if x <= 1.2 else 'not met'}: {x:.2f}× "
                            f"{'' if o is None else f'[{o:.2f}×] '}({r.name})" for r, x, o in ratios)
                  if ratios else "no complete run yet"))
    return lines


def plots(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    networks = list(dict.fromkeys(r.network for r in rows))
    # One colour per method (Gibbs at another p is the same method), one marker per budget.
    methods = sorted({plot_method(r) for r in rows if r.method != "none"})
    palette = [plt.cm.tab20(i) for i in list(range(0, 20, 2)) + list(range(1, 20, 2))]  # dark shades first
    colours = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    budgets = sorted({r.budget for r in rows if r.method != "none" and r.runs}, key=lambda b: -(b or 0))
    markers = {b: "osD^vP*Xph"[i % 10] for i, b in enumerate(budgets)}

    def stats(row, fn):
        m, s = report.mean_std(row.values(fn))
        return m, s or 0.0

    for key, xlabel in (("params_kept", "parameters kept (%)"), ("macs_kept", "MACs kept (%)")):
        fig, axes = plt.subplots(1, len(networks), figsize=(6.5 * len(networks), 5), squeeze=False)
        legend = set()
        for ax, net in zip(axes[0], networks):
            for row in (r for r in rows if r.network == net and r.runs):
                if row.method == "none":
                    m, s = stats(row, top1)
                    ax.axhspan(m - s, m + s, color="grey", alpha=0.2)
                    ax.axhline(m, color="grey", ls="--", lw=1, label=None if "unpruned" in legend else "unpruned (± std)")
                    legend.add("unpruned")
                    continue
                (x, xs), (y, ys) = stats(row, lambda r: kept(r, key)), stats(row, top1)
                method = plot_method(row)
                ax.errorbar(x, y, xerr=xs, yerr=ys, fmt=markers[row.budget], color=colours[method], capsize=3,
                            label=None if method in legend else method)
                legend.add(method)
            ax.set_title(net)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test top-1 (%), mean ± std over seeds")
            ax.grid(alpha=0.3)
        handles, names = [sum(x, []) for x in zip(*(ax.get_legend_handles_labels() for ax in axes[0]))]
        for b in budgets:  # the markers' key: grey stand-ins, one per budget
            handles.append(plt.Line2D([], [], ls="", marker=markers[b], color="grey"))
            names.append(f"budget {b}%" if b else "budget: –")
        fig.legend(handles, names, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.suptitle("top-1 against " + xlabel + " (colour: method; marker: budget)")
        fig.tight_layout()
        path = os.path.join(out, f"top1_vs_{key}.png")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, batch in zip(axes, (1, 128)):
        for net, shape in zip(networks, "os^"):
            pts = [(stats(r, macs_abs)[0], stats(r, lambda x: latency_ms(x, batch))[0])
                   for r in rows if r.network == net and r.runs]
            pts = [p for p in pts if None not in p]
            if pts:
                ax.scatter(*zip(*pts), marker=shape, label=net, alpha=0.7)
        ax.set_xlabel("MACs per image of the final network")
        ax.set_ylabel(f"latency at batch {batch} (ms, one core)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("latency against MACs (unstructured masks keep the dense shapes: no faster)")
    fig.tight_layout()
    path = os.path.join(out, "latency_vs_macs.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    written.append(path)
    plt.close(fig)
    return written


def macs_abs(run):
    """The final network's MACs per image (the dense ones for the unpruned run)."""
    if run.method == "none":
        return report.get(run.summary, "baseline", "macs")
    return run.final("macs")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories, or folders holding them (searched recursively)")
    ap.add_argument("--out", required=True, help="folder of README.md, results.csv and figures/")
    ap.add_argument("--expect", action="append", default=[], help="repro list: its experiments without a complete run are named")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--command", default="make study-fmnist", help="the command that produced the runs, for the report")
    ap.add_argument("--title", default="Every method at matched budgets on Fashion-MNIST")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    runs = report.find_runs(args.runs)
    rows = build_rows(runs)
    os.makedirs(args.out, exist_ok=True)
    table = {row.name: table_row(rows, row) for row in rows}
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["experiment", "network"] + TABLE, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({"experiment": row.name, "network": row.network} | table[row.name])

    expected, missing = report.expected_groups(args.expect, args.root)
    complete = {r.name for r in runs if r.status == "complete"}
    not_run = [name for name in expected if name not in complete] + missing
    seeds = sorted({len(row.runs) for row in rows if row.runs})
    lines = [f"# {args.title}", ""] + provenance(runs, args.command) + [""]
    lines += [f"{len(complete)} experiments with at least one complete run ({sum(len(r.runs) for r in rows)} runs; "
              f"seeds per experiment: {', '.join(map(str, seeds)) or '–'}); {len(not_run)} listed experiments without one yet.",
              "", "Top-1 and top-5 of the final network (compacted where whole filters went) on the 10,000 test images, "
              "mean ± std over seeds; Δ: paired by seed with the unpruned network trained for the same number of "
              "epochs; latency: the final network on one core, the fastest of 5 rounds of 10 forwards (unstructured "
              "masks keep the dense shapes); search: the method's own time (scoring, search, RL), run: the whole run with its pretraining "
              "(shared between the methods that prune a trained network, and counted in each of them)."]
    for net in dict.fromkeys(r.network for r in rows):
        lines += ["", f"## {net}", "", "| " + " | ".join(TABLE) + " |", "|" + "---|" * len(TABLE)]
        lines += ["| " + " | ".join(str(table[r.name][c]) for c in TABLE) + " |" for r in rows if r.network == net]
    lines += ["", "## Against L1 filter pruning at the same budget", "",
              "Per seed, the method's top-1 minus L1's; the t-interval and the sign test over the paired seeds. "
              "With three seeds the sign test cannot go below p = 0.25: read the interval.", ""] + paired_lines(rows)
    lines += ["", "## Goals", ""] + goal_lines(rows)
    notes = os.path.join(args.out, "notes.md")  # what a person saw while the runs ran, kept across reports
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["", "## Notes", "", f.read().strip()]
    if not_run:
        lines += ["", "## Not run yet", "", ", ".join(not_run)]
    problems = [(r.path, p) for r in runs for p in r.problems if r.status != "complete"]
    if problems:
        lines += ["", "## Problems", ""] + [f"- {os.path.relpath(p, args.out)}: {what}" for p, what in problems]
    written = []
    if not args.no_plots:
        try:
            figures = os.path.join(args.out, "figures")
            os.makedirs(figures, exist_ok=True)
            written = plots(rows, figures)
        except ImportError:
            print("study_report: plots skipped: matplotlib is not installed (make deps installs python3-matplotlib)")
    if written:
        lines += ["", "## Figures", ""] + [f"- [{os.path.basename(p)}](figures/{os.path.basename(p)})" for p in written]
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"study_report: {len(rows)} experiments, {sum(len(r.runs) for r in rows)} complete runs -> "
          f"{args.out}/README.md, results.csv" + (f", {len(written)} figures" if written else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
