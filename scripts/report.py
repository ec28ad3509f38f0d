#!/usr/bin/env python3
"""Tables (Markdown + CSV) and plots (PNG + SVG) from spinprune run directories alone.

    scripts/report.py RUNS... [--out DIR] [--expect LIST ...] [--papers CSV] [--title TEXT]

A run directory is any folder under RUNS holding config.toml, summary.json or metrics.jsonl.
Runs are grouped by experiment name; a group's row gives mean ± std over its complete runs
(seeds) of top-1, top-5 (compacted network, else the masked one), parameters and MACs kept
(1 MAC = 2 FLOPs) and measured latency, beside the paper's numbers from --papers. Missing
(listed by --expect but never run), partial (no summary.json) and corrupt runs are reported in
the table's status column and the problems list, never crashed on. Without matplotlib the tables
are still written and the plots are skipped with a message (exit 0).
"""
import argparse
import csv
import glob
import json
import math
import os
import shlex
import statistics
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11: the config's name is then read from summary.json only
    tomllib = None

# metrics.jsonl keys every training epoch has; any other numeric key is a method trace.
TRAINING_KEYS = {"epoch", "images_per_s", "lr", "seconds", "train_loss", "train_top1", "val_loss",
                 "val_top1", "val_top5"}


def mean_std(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values, digits=2):
    m, s = mean_std(values)
    if m is None:
        return "–"
    n = len([v for v in values if v is not None])
    return f"{m:.{digits}f}" if n == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def get(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


class Run:
    """One run directory: its config, summary and metrics, and what is wrong with it."""

    def __init__(self, path):
        self.path = path
        self.problems = []
        self.config = self._read_config()
        self.summary = self._read_json("summary.json")
        self.metrics = self._read_jsonl("metrics.jsonl")
        self.rl_updates = self._read_jsonl("rl_updates.jsonl")
        self.latency = self._read_json("latency.json") or {}  # scripts/repro.py --latency
        self.environment = self._read_json("environment.json") or {}
        self.name = (get(self.summary, "experiment") or self.config.get("name")
                     or os.path.basename(os.path.dirname(os.path.abspath(path))))
        self.seed = get(self.summary, "seed") if get(self.summary, "seed") is not None else self.config.get("seed")
        self.method = get(self.summary, "method") or get(self.config, "prune", "method") or "?"
        self.model = get(self.summary, "model") or get(self.config, "model", "name") or "?"
        self.dataset = get(self.summary, "dataset") or get(self.config, "data", "dataset") or "?"
        if self.summary is None:
            self.status = "partial"
            if os.path.exists(os.path.join(path, "summary.json")):
                self.status = "corrupt"
            else:
                self.problems.append("partial: no summary.json")
        elif self.summary.get("completed") is False:
            self.status = "incomplete"
            self.problems.append("incomplete: summary.json says completed = false")
        else:
            self.status = "complete"

    def _read_config(self):
        p = os.path.join(self.path, "config.toml")
        if not os.path.exists(p) or tomllib is None:
            return {}
        try:
            with open(p, "rb") as f:
                return tomllib.load(f)
        except (tomllib.TOMLDecodeError, OSError) as e:
            self.problems.append(f"corrupt config.toml: {e}")
            return {}

    def _read_json(self, name):
        p = os.path.join(self.path, name)
        if not os.path.exists(p):
            return None
        try:
            with open(p) as f:
                value = json.load(f)
            if not isinstance(value, dict):
                raise ValueError(f"expected a JSON object, got {type(value).__name__}")
            return value
        except (ValueError, OSError) as e:
            self.problems.append(f"corrupt {name}: {e}")
            return None

    def _read_jsonl(self, name):
        p = os.path.join(self.path, name)
        records = []
        if not os.path.exists(p):
            return records
        with open(p, errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    self.problems.append(f"{name} line {number}: not JSON, skipped")
        return records

    # The final network: compacted when the run compacted it, else the masked one.
    def final(self, key):
        return get(self.summary, "compacted", key) if get(self.summary, "compacted", key) is not None \
            else get(self.summary, "pruned", key)

    def latency_ms(self, kind, batch):
        """ms per forward of the "pruned" or "dense" network at `batch`: latency.json's (one core,
        fastest round) where repro.py --latency measured it, else the run's own."""
        measured = get(self.latency, kind, "ms", f"b{batch}")
        return measured if measured is not None else get(self.summary, "latency_ms", kind, f"b{batch}")

    def kept_percent(self, key):
        v = get(self.summary, key)
        return None if v is None else 100.0 * v


def find_runs(roots):
    runs = []
    for root in roots:
        if not os.path.isdir(root):
            print(f"report: {root}: no such directory, skipped", file=sys.stderr)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if {"config.toml", "summary.json", "metrics.jsonl"} & set(filenames):
                runs.append(Run(dirpath))
    return runs


def read_papers(path):
    """Paper rows by group; lines starting with '#' are comments."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    papers = {}
    for row in rows:
        papers.setdefault(row["group"], []).append(row)
    return papers


def toml_override(override):
    """section.key=value with the value as TOML: a value that is not TOML (name=my_run,
    prune.budget=macs) is a string and gets its quotes."""
    key, _, value = override.partition("=")
    if tomllib is None:
        return override
    try:
        tomllib.loads(f"v = {value}")
    except tomllib.TOMLDecodeError:
        value = json.dumps(value)
    return f"{key}={value}"


def apply_overrides(config, overrides):
    """config (a dict read from TOML) with section.key=value overrides applied."""
    for o in overrides if tomllib is not None else []:
        key, _, value = toml_override(o).partition("=")
        *sections, last = key.split(".")
        d = config
        for s in sections:
            d = d.setdefault(s, {})
        d[last] = tomllib.loads(f"v = {value}")["v"]
    return config


def read_list(path):
    """A repro list: one config (path or glob, relative to the repository root) per line, then
    optional section.key=value overrides (a value that is not TOML is a string: name=my_run);
    '#' starts a comment. Returns [(pattern, overrides)], the overrides as TOML."""
    entries = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                tokens = shlex.split(line)
                entries.append((tokens[0], [toml_override(o) for o in tokens[1:]]))
    return entries


def read_config(path):
    """A config's name (default: the file's stem) and its other keys, {} where unreadable."""
    config = {}
    if tomllib is not None:
        try:
            with open(path, "rb") as f:
                config = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError):
            pass
    config.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return config


def expected_groups(list_paths, root):
    """The configs the lists ask for, by experiment name, and the patterns that match none yet."""
    expected, missing = {}, []
    for list_path in list_paths:
        for pattern, overrides in read_list(list_path):
            matches = sorted(glob.glob(os.path.join(root, pattern)))
            if not matches:
                missing.append(pattern)
            for m in matches:
                config = apply_overrides(read_config(m), overrides)
                expected[config["name"]] = config
    return expected, missing


COLUMNS = ["experiment", "method", "model", "dataset", "seeds", "status", "top1", "top5", "baseline_top1",
           "params_kept_%", "macs_kept_%", "latency_b1_ms", "latency_b128_ms", "dense_latency_b1_ms",
           "paper_base_top1", "paper_top1", "paper_top5", "paper_params_kept_%", "paper_macs_kept_%", "paper_source"]


def group_rows(runs, papers, expected, missing_patterns):
    groups = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    order = list(dict.fromkeys(list(expected) + sorted(groups)))
    rows = []
    for name in order:
        members = groups.get(name, [])
        done = [r for r in members if r.status == "complete"]
        first = members[0] if members else None
        others = [f"{sum(r.status == s for r in members)} {s}" for s in ("partial", "corrupt", "incomplete")
                  if any(r.status == s for r in members)]
        if not members:
            status = "not run"
        elif not done:
            status = "no complete run (" + ", ".join(others) + ")"
        else:
            status = "ok" + (" (also " + ", ".join(others) + ")" if others else "")
        paper = (papers.get(name) or [{}])[0]
        config = expected.get(name, {})
        rows.append({
            "experiment": name,
            "method": first.method if first else get(config, "prune", "method") or paper.get("method", "?"),
            "model": first.model if first else get(config, "model", "name") or paper.get("model", "?"),
            "dataset": first.dataset if first else get(config, "data", "dataset") or paper.get("dataset", "?"),
            "seeds": ";".join(str(r.seed) for r in done) or "–", "status": status,
            "top1": fmt([r.final("top1") for r in done]), "top5": fmt([r.final("top5") for r in done]),
            "baseline_top1": fmt([get(r.summary, "baseline", "top1") for r in done]),
            "params_kept_%": fmt([r.kept_percent("params_kept") for r in done]),
            "macs_kept_%": fmt([r.kept_percent("macs_kept") for r in done]),
            "latency_b1_ms": fmt([r.latency_ms("pruned", 1) for r in done], 3),
            "latency_b128_ms": fmt([r.latency_ms("pruned", 128) for r in done], 3),
            "dense_latency_b1_ms": fmt([r.latency_ms("dense", 1) for r in done], 3),
            "paper_base_top1": paper.get("base_top1") or "–", "paper_top1": paper.get("top1") or "–",
            "paper_top5": paper.get("top5") or "–", "paper_params_kept_%": paper.get("params_kept") or "–",
            "paper_macs_kept_%": paper.get("macs_kept") or "–", "paper_source": paper.get("source") or "–",
        })
    for pattern in missing_patterns:
        rows.append({c: "–" for c in COLUMNS} | {"experiment": pattern, "status": "not run (no config yet)"})
    return rows


def write_tables(rows, runs, out, title):
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "experiment", "seed", "method", "status", "top1", "top5", "params_kept_%",
                    "macs_kept_%", "latency_b1_ms", "latency_b128_ms", "time_s"])
        for r in runs:
            w.writerow([r.path, r.name, r.seed, r.method, r.status, r.final("top1"), r.final("top5"),
                        r.kept_percent("params_kept"), r.kept_percent("macs_kept"),
                        r.latency_ms("pruned", 1), r.latency_ms("pruned", 128),
                        get(r.summary, "time_s", "total")])
    shown = [c for c in COLUMNS if c not in ("dataset", "paper_source")]
    lines = [f"# {title}", "",
             "Ours: mean ± std over the complete runs (seeds) of the final network (compacted when filters "
             "were removed); kept = % of the dense network's parameters / MACs (1 MAC = 2 FLOPs); latency: "
             "measured forward time of the pruned network on the run's device. Paper columns: "
             "experiments/paper_results.csv (sources below); – = not reported / not available.", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(str(row[c]) for c in shown) + " |" for row in rows]
    sources = [(row["experiment"], row["paper_source"]) for row in rows if row["paper_source"] not in ("–", None)]
    if sources:
        lines += ["", "Sources:"] + [f"- {e}: {s}" for e, s in sources]
    problems = [(r.path, p) for r in runs for p in r.problems]
    lines += ["", f"Runs found: {len(runs)} ({sum(r.status == 'complete' for r in runs)} complete)."]
    if problems:
        lines += ["", "Problems:"] + [f"- {path}: {p}" for path, p in problems]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return problems


# ---- plots -----------------------------------------------------------------------------------

def save(fig, out, name, written):
    for ext in ("png", "svg"):
        path = os.path.join(out, f"{name}.{ext}")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)


def plot_all(runs, papers, cost_studies, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    done = [r for r in runs if r.status == "complete"]
    methods = sorted({r.method for r in done} | {p["method"] for rows in papers.values() for p in rows})
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}

    # Top-1 against parameters / MACs kept: one point per run, the papers' (for the same
    # experiments) as crosses.
    for key, label in (("params_kept", "parameters kept (%)"), ("macs_kept", "MACs kept (%)")):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for m in methods:
            pts = [(r.kept_percent(key), r.final("top1")) for r in done if r.method == m]
            pts = [p for p in pts if None not in p]
            if pts:
                ax.scatter(*zip(*pts), color=colours[m], label=m)
        plotted_paper = False
        for group, rows in papers.items():
            if group not in {r.name for r in runs}:
                continue  # another model or dataset than the runs'
            for p in rows:
                x, y = p.get(key), p.get("top1")
                if x and y:
                    ax.scatter(float(x), float(y), marker="x", color=colours[p["method"]],
                               label=None if plotted_paper else "paper (×)")
                    plotted_paper = True
        ax.set_xlabel(label)
        ax.set_ylabel("test top-1 (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        save(fig, out, f"top1_vs_{key}", written)
        plt.close(fig)

    groups = {}
    for r in runs:
        if r.metrics:
            groups.setdefault(r.name, []).append(r)
    # Training curves: validation top-1 and training loss over the phases' epochs, every seed.
    for name, members in groups.items():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for r in members:
            xs = list(range(1, len(r.metrics) + 1))
            phases = [m.get("phase", "?") for m in r.metrics]
            a1.plot(xs, [m.get("val_top1") for m in r.metrics], marker=".", label=f"seed {r.seed}")
            a2.plot(xs, [m.get("train_loss") for m in r.metrics], marker=".", label=f"seed {r.seed}")
            for i in range(1, len(phases)):
                if phases[i] != phases[i - 1]:
                    for a in (a1, a2):
                        a.axvline(i + 0.5, color="grey", ls=":", lw=0.8)
        a1.set_ylabel("validation top-1 (%)")
        a2.set_ylabel("training loss")
        for a in (a1, a2):
            a.set_xlabel("epoch (all phases; dotted: phase change)")
            a.grid(alpha=0.3)
        a1.legend(fontsize=8)
        fig.suptitle(name)
        save(fig, out, f"curves_{name}", written)
        plt.close(fig)

    # Method traces: every non-training numeric key (energies, β, diversity, ν, ...), and the RL
    # updates' records.
    for name, members in groups.items():
        series = {}
        for r in members:
            for source, records in (("epoch", r.metrics), ("rl update", r.rl_updates)):
                for i, m in enumerate(records):
                    for k, v in m.items():
                        if k not in TRAINING_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                            series.setdefault((source, k), {}).setdefault(r.seed, []).append((i + 1, v))
        if not series:
            continue
        cols = min(3, len(series))
        rows_n = math.ceil(len(series) / cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False)
        for ax, ((source, k), by_seed) in zip(axes.flat, sorted(series.items())):
            for seed, pts in by_seed.items():
                ax.plot(*zip(*pts), marker=".", label=f"seed {seed}")
            ax.set_title(k, fontsize=9)
            ax.set_xlabel(source)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(series):]:
            ax.axis("off")
        fig.suptitle(f"{name}: method traces")
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        save(fig, out, f"traces_{name}", written)
        plt.close(fig)

    # Per-layer kept widths of each experiment's first complete run.
    seen = set()
    for r in done:
        layers = get(r.summary, "layers")
        if not layers or r.name in seen:
            continue
        seen.add(r.name)
        fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(layers)), 3.5))
        xs = range(len(layers))
        ax.bar(xs, [l.get("out_dense", 0) for l in layers], color="lightgrey", label="dense")
        ax.bar(xs, [l.get("out", 0) for l in layers], color="tab:blue", label="kept")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([l.get("name", "?") for l in layers], rotation=90, fontsize=7)
        ax.set_ylabel("output channels / neurons")
        ax.set_title(f"{r.name} (seed {r.seed}): kept widths")
        ax.legend(fontsize=8)
        save(fig, out, f"widths_{r.name}", written)
        plt.close(fig)

    # Latency against batch size, dense vs compacted: the cost study's sweep (ours, and
    # onnxruntime's on the CPU where measured), else the runs' two measured batches (1 and 128).
    curves = []
    for study in cost_studies:
        for model in study.get("models", []):
            for runtime, prefix in ((f"spinprune {study.get('device', '?')}", ""), ("onnxruntime cpu", "onnxruntime_")):
                for kind in ("dense", "compacted"):
                    key = f"{prefix}{kind}_ms"
                    pts = [(p["batch"], p[key]) for p in model.get("latency", []) if key in p]
                    if pts:
                        curves.append((f"{model.get('name', '?')} {kind} ({runtime})", pts))
    if not curves:
        for r in done:
            for kind in ("dense", "pruned"):
                lat = get(r.summary, "latency_ms", kind) or {}
                pts = [(int(k[1:]), v) for k, v in sorted(lat.items()) if k.startswith("b")]
                if pts:
                    curves.append((f"{r.name} s{r.seed} {kind}", sorted(pts)))
    if curves:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for label, pts in curves:
            ax.plot(*zip(*pts), marker="o", ls="--" if "dense" in label else "-", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("latency (ms per forward)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        save(fig, out, "latency_vs_batch", written)
        plt.close(fig)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories, or folders holding them (searched recursively)")
    ap.add_argument("--out", help="output folder (default: RUNS[0]/report)")
    ap.add_argument("--expect", action="append", default=[], help="repro list file: its experiments get rows even if not run")
    ap.add_argument("--papers", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                     "experiments", "paper_results.csv"))
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                    help="repository root the lists' config paths are relative to")
    ap.add_argument("--cost-study", action="append", default=[], help="a cost study's JSON (written by bench/cost_study.cpp)")
    ap.add_argument("--title", default="spinprune results")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    out = args.out or os.path.join(args.runs[0], "report")
    os.makedirs(out, exist_ok=True)
    runs = [r for r in find_runs(args.runs) if os.path.abspath(r.path) != os.path.abspath(out)]
    papers = read_papers(args.papers)
    expected, missing = expected_groups(args.expect, args.root)
    rows = group_rows(runs, papers, expected, missing)
    problems = write_tables(rows, runs, out, args.title)
    print(f"report: {len(runs)} runs, {len(rows)} rows -> {out}/results.md, results.csv, runs.csv")
    for path, p in problems:
        print(f"report: {path}: {p}")
    for row in rows:
        if row["status"].startswith("not run"):
            print(f"report: {row['experiment']}: {row['status']}")
    if args.no_plots:
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("report: plots skipped: matplotlib is not installed (make deps installs python3-matplotlib)")
        return 0
    studies = []
    for path in args.cost_study:
        try:
            with open(path) as f:
                studies.append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"report: cost study {path}: {e}, skipped")
    figures = os.path.join(out, "figures")
    os.makedirs(figures, exist_ok=True)
    written = plot_all(runs, papers, studies, figures)
    print(f"report: {len(written)} figure files in {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
