#!/usr/bin/env python3
"""Runs the experiments of repro lists over seeds with bin/spinprune, then the results table.

    scripts/repro.py experiments/repro/edropout.txt [...] --seeds 3 --out runs/repro-edropout
        [--archive DIR] [--latency] [--report DIR]
        [--sched serial | local --jobs N | slurm [--wait] [--partition P --time T ...]]

A list names one config per line (a path or glob from the repository root) with optional
section.key=value overrides (name=... renames the run, so one config can make several rows);
a pattern that matches no config yet is reported as "not run"; an argument ending in .toml is
one config. Run i of a config goes to OUT/<experiment>/seed<i> with --seed i; the runs go list by
list, seed by seed (every experiment of a list with seed 1 first), so a study stopped early has
whole seeds. A run whose summary.json says completed is skipped, a partial one is resumed, a
failed one is logged and the others go on. A run made earlier with another config than its list
gives now (another value of any key but where files are) stops the script before anything runs;
--rerun-changed deletes such runs and runs them again. The runs go one after another, N at once
on this machine, or to Slurm as one job array (scripts/sweep.py). Before starting, the script prints an
estimate of the run time; at the end (with Slurm: with --wait), the runs not completed and the
table.

--latency times each completed run's final network (and its dense baseline) with `spinprune
latency` on one core, batch 1 and 128, the fastest of 5 rounds, into the run's latency.json.
--archive DIR keeps the small files of every completed run (config, summary, metrics, latency;
no weights) in DIR/<experiment>/seed<i>: a run complete there is not run again, and the report is
written from DIR, so a study that spans many machines and days lives in a folder one commits.
"""
import argparse
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
import sweep  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# Rough cost model for the estimate when no earlier run of the model was measured: MACs per image
# (CIFAR-sized input; Fashion-MNIST's 28×28 is about 0.77 of that) and the training set sizes.
MACS = {"lenet": 1.12e6, "resnet20": 41e6, "resnet32": 69e6, "resnet56": 125e6, "resnet110": 253e6,
        "resnet18": 557e6, "resnet34": 1.16e9, "vgg16": 313e6, "alexnet": 45e6, "squeezenet": 35e6}
TRAIN_IMAGES = {"fashion-mnist": 60000, "cifar10": 50000, "cifar100": 50000}
# Sustained MAC rate of a training step (forward + 2× backward), a rough figure per device kind.
RATE = {"cpu": 2e9, "cuda": 3e12}


def measured_images_per_s(earlier, config):
    """Training throughput of earlier runs (report.Run) of the same model, widths and dataset."""
    rates = []
    for run in earlier:
        if model_key(run.config) == model_key(config) and \
                run.dataset == config.get("data", {}).get("dataset", "fashion-mnist"):
            rates += [m["images_per_s"] for m in run.metrics if m.get("phase") == "train" and m.get("images_per_s")]
    return sum(rates) / len(rates) if rates else None


def model_key(config):
    """The architecture and its widths: what sets a run's throughput."""
    return config.get("model", {}).get("name", "lenet"), config.get("model", {}).get("widths", {})


def estimate_s(config, earlier, device):
    model = config.get("model", {}).get("name", "lenet")
    dataset = config.get("data", {}).get("dataset", "fashion-mnist")
    images = config.get("data", {}).get("train_subset") or TRAIN_IMAGES.get(dataset, 50000)
    images -= config.get("data", {}).get("validation", 5000)
    epochs = config.get("train", {}).get("epochs", 3) + config.get("finetune", {}).get("epochs", 0)
    rate = measured_images_per_s(earlier, config)
    if rate is None:
        macs = MACS.get(model, 100e6) * (0.77 if dataset == "fashion-mnist" else 1.0)
        rate = RATE[device] / (3 * macs)
    return epochs * max(images, 1) / rate


def resolve(lists, root):
    """(list, config path, overrides) for every config the lists name; patterns that match nothing.
    An argument ending in .toml is a config itself, and must exist."""
    configs, missing = [], []
    for list_path in lists:
        if list_path.endswith(".toml"):
            configs.append((list_path, os.path.abspath(list_path), []))
            continue
        for pattern, overrides in report.read_list(list_path):
            matches = sorted(glob.glob(os.path.join(root, pattern)))
            if not matches:
                missing.append(pattern)
            configs += [(list_path, m, overrides) for m in matches]
    return configs, missing


# What --archive keeps of a completed run: everything but the weights; summary.json last, since it
# is what marks the archived run complete.
ARCHIVED_FILES = ("config.toml", "environment.json", "metrics.jsonl", "rl_updates.jsonl", "latency.json", "summary.json")


def archived(run, archive):
    """The run's copy in the archive, ARCHIVE/<experiment>/seed<i>."""
    return sweep.Run(run.config, run.name, run.seed, os.path.join(archive, run.name, f"seed{run.seed}"), run.overrides)


def earlier_copies(run, archive):
    """What earlier sweeps left of the run: its complete copy in the archive, its started one in OUT.
    They count only while their config.toml is the experiment the list asks for now."""
    copies = [archived(run, archive)] if archive and sweep.run_state(archived(run, archive)) == "complete" else []
    return copies + ([run] if sweep.run_state(run) != "new" else [])


def archive_run(run, archive):
    """Copies the run's small files to its place in the archive, each written atomically."""
    dest = archived(run, archive).dir
    os.makedirs(dest, exist_ok=True)
    for name in ARCHIVED_FILES:
        src = os.path.join(run.dir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(dest, name + ".tmp"))
            os.replace(os.path.join(dest, name + ".tmp"), os.path.join(dest, name))
    return dest


# The networks --latency times: the final one (compacted where filters went, else masked) and the
# dense baseline; a run without pruning has the baseline only.
LATENCY_MODELS = (("pruned", "pruned.safetensors"), ("dense", "baseline.safetensors"))


def measure_latency(run, binary, device):
    """`spinprune latency` of the run's networks on one core (the last this process may use), the
    fastest of 5 rounds at batch 1 and 128, into run.dir/latency.json. False when it failed."""
    core = str(sorted(os.sched_getaffinity(0))[-1])
    prefix = ["taskset", "-c", core] if shutil.which("taskset") else []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = {"measured": datetime.datetime.now().isoformat(timespec="seconds")}
    for kind, file in LATENCY_MODELS:
        path = os.path.join(run.dir, file)
        if not os.path.exists(path):
            continue
        cmd = prefix + [binary, "latency", "--checkpoint", path, "--batches", "1,128", "--rounds", "5",
                        "--device", device]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if r.returncode != 0:
            print(f"repro: {run.label()}: latency of {file} failed (exit {r.returncode}): {r.stderr.strip()}")
            return False
        result[kind] = json.loads(r.stdout) | {"checkpoint": file}  # the run's file, not this machine's path
    path = os.path.join(run.dir, "latency.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
    return True


def finish_run(run, args, device):
    """After a run completed: its latency (--latency), then its archive copy (--archive)."""
    if args.latency and not os.path.exists(os.path.join(run.dir, "latency.json")):
        measure_latency(run, args.bin, device)
    if args.archive:
        archive_run(run, args.archive)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lists", nargs="+", help="repro list files (experiments/repro/*.txt) or experiment configs (*.toml)")
    ap.add_argument("--seeds", type=int, default=3, help="runs per config, seeds 1..N (default 3)")
    ap.add_argument("--out", required=True, help="folder for the run directories and the report")
    ap.add_argument("--set", action="append", default=[], dest="overrides",
                    help="section.key=value for every run (after the list's own)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "spinprune"))
    ap.add_argument("--root", default=ROOT, help="folder the lists' config paths are relative to (default: the repository)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--title", default="Reproduction")
    ap.add_argument("--archive", help="keep every completed run's small files here; runs complete here are not run "
                                      "again; the report is written from here (a study to commit)")
    ap.add_argument("--latency", action="store_true",
                    help="time each completed run's networks on one core (latency.json), batch 1 and 128")
    ap.add_argument("--rerun-changed", action="store_true",
                    help="runs (in OUT or the archive) whose recorded config differs from what the list gives now are "
                         "deleted and run again (without it, such runs stop the script before anything runs)")
    ap.add_argument("--report", help="folder of the report (default: OUT/report)")
    ap.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    ap.add_argument("--no-plots", action="store_true", help="the report's tables only")
    ap.add_argument("--sched", choices=["serial", "local", "slurm"], default="serial",
                    help="serial: one run after another (default); local: --jobs runs at once on this machine, each on "
                         "its own GPU / share of the cores; slurm: one job array, a task per run")
    ap.add_argument("--jobs", type=int, default=0,
                    help="--sched local: runs at once (default 0: one per visible GPU, else one per core)")
    ap.add_argument("--wait", action="store_true", help="--sched slurm: wait for the array, then write the report")
    ap.add_argument("--poll", type=float, default=10, help="--sched slurm --wait: seconds between squeue polls (default 10)")
    slurm = ap.add_argument_group("Slurm (--sched slurm; empty: the cluster's defaults, or sbatch's SBATCH_* variables)")
    slurm.add_argument("--partition", default="")
    slurm.add_argument("--account", default="")
    slurm.add_argument("--gpus", default="", help="GPUs per task (default: 1 where the cluster has GPU GRES, else 0)")
    slurm.add_argument("--time", default="", help="time limit per task (sbatch --time)")
    slurm.add_argument("--throttle", type=int, default=0, help="at most N tasks at once (--array=...%%N)")
    slurm.add_argument("--cpus", type=int, default=0, help="CPUs per task (sbatch --cpus-per-task)")
    slurm.add_argument("--sbatch-args", default="", help="further sbatch options, one string")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    args.archive = os.path.abspath(args.archive) if args.archive else None
    args.report = os.path.abspath(args.report) if args.report else os.path.join(args.out, "report")
    if os.sep in args.bin:  # the runs start in the repository root, the path was meant from here
        args.bin = os.path.abspath(args.bin)
    if args.seeds < 1:
        ap.error(f"--seeds: expected at least 1, got {args.seeds}")
    if args.jobs < 0:
        ap.error(f"--jobs: expected a number of runs at once (0: one per GPU, else per core), got {args.jobs}")
    if args.gpus and not args.gpus.isdigit():
        ap.error(f"--gpus: expected a number of GPUs per task, got '{args.gpus}'")
    for list_path in args.lists:
        if not os.path.exists(list_path):
            ap.error(f"{list_path}: no such {'experiment config' if list_path.endswith('.toml') else 'repro list'}")

    configs, missing = resolve(args.lists, args.root)
    for pattern in missing:
        print(f"repro: {pattern}: no config yet, listed as not run")
    device = args.device if args.device != "auto" else ("cuda" if sweep.visible_gpus() else "cpu")
    runs, total, named = [], 0.0, {}
    earlier = report.find_runs([d for d in (args.out, args.archive) if d and os.path.isdir(d)])
    for list_path in dict.fromkeys(l for l, _, _ in configs):
        members = []
        for _, path, overrides in (c for c in configs if c[0] == list_path):
            overrides = overrides + [report.toml_override(o) for o in args.overrides]
            config = report.apply_overrides(report.read_config(path), overrides)
            name = config["name"]
            if name in named:
                print(f"repro: {list_path}: experiment '{name}' ({os.path.relpath(path, args.root)}) is also "
                      f"{os.path.relpath(named[name], args.root)}'s name: give each line its own name=...", file=sys.stderr)
                return 2
            named[name] = path
            est = estimate_s(config, earlier, device)
            members.append((path, name, overrides))
            total += est * args.seeds
            print(f"repro: {name}: {args.seeds} × about {est / 60:.1f} min")
        for seed in range(1, args.seeds + 1):  # seed by seed: a study stopped early has whole seeds
            runs += [sweep.Run(path, name, seed, os.path.join(args.out, name, f"seed{seed}"), overrides)
                     for path, name, overrides in members]
    at_once = {"serial": 1, "local": args.jobs or sweep.default_jobs(args.device)}.get(args.sched)
    spread = (f", about {total / min(at_once, max(len(runs), 1)) / 3600:.2f} h with {at_once} at once" if at_once and at_once > 1
              else ", spread over the array's tasks" if args.sched == "slurm" else "")
    print(f"repro: estimated run time on {device}: about {total / 3600:.2f} h for {len(runs)} runs{spread} "
          f"(rough: earlier runs' throughput where there are any, else a MAC-rate model)")
    if args.estimate_only:
        return 0

    todo, changed = [], []
    try:
        for i, run in enumerate(runs, 1):
            copies = earlier_copies(run, args.archive)
            changes = next((c for c in (sweep.config_changes(r, args.bin) for r in copies) if c), [])
            if changes and not args.rerun_changed:
                changed.append((run, copies, changes))
            elif changes:
                for r in copies:
                    shutil.rmtree(r.dir)
                print(f"repro: [{i}/{len(runs)}] {run.label()}: its config changed ({'; '.join(changes)}): "
                      f"the earlier run is deleted and runs again")
                todo.append(run)
            elif args.archive and sweep.run_state(archived(run, args.archive)) == "complete":
                print(f"repro: [{i}/{len(runs)}] {run.label()}: in the archive, skipped")
            elif sweep.run_state(run) == "complete":
                finish_run(run, args, device)
                print(f"repro: [{i}/{len(runs)}] {run.label()}: done earlier, skipped")
            else:
                todo.append(run)
    except sweep.SweepError as e:
        print(f"repro: {e}", file=sys.stderr)
        return 2
    if changed:
        for run, copies, changes in changed:
            print(f"repro: {run.label()}: its config changed since it ran ({'; '.join(changes)}); "
                  f"earlier run: {', '.join(r.dir for r in copies)}", file=sys.stderr)
        print(f"repro: {len(changed)} runs were made with another config than their list gives now: put the "
              "configs back, or pass --rerun-changed to delete those runs and run them again", file=sys.stderr)
        return 2
    start = time.time()
    try:
        if args.sched == "slurm":
            opts = sweep.SlurmOptions(args.partition, args.account, args.gpus, args.time, args.throttle, args.cpus,
                                      args.sbatch_args)
            failed = sweep.run_slurm(todo, args.out, args.bin, args.device, opts, args.wait, args.poll)
            if failed is None:  # submitted, not waiting: the report comes later (make report)
                return 0
        else:
            failed = sweep.run_here(todo, args.bin, args.device, at_once,
                                    on_complete=lambda run: finish_run(run, args, device))
    except sweep.SweepError as e:
        print(f"repro: {e}", file=sys.stderr)
        return 2
    if args.sched == "slurm":  # what the tasks completed (the local runs were finished as they ended)
        for run in todo:
            if sweep.run_state(run) == "complete":
                finish_run(run, args, device)
    print(f"repro: {len(todo)} runs in {(time.time() - start) / 60:.1f} min, {len(failed)} not completed")
    for run, detail in failed:
        logs = f"{run.log}" + (f", task log {detail}" if isinstance(detail, str) else "")
        print(f"repro: not completed: {run.label()}: see {logs}")

    report_args = [args.archive or args.out, "--out", args.report, "--title", args.title, "--root", args.root]
    for list_path in args.lists:
        if not list_path.endswith(".toml"):
            report_args += ["--expect", list_path]
    report_args += ["--no-plots"] if args.no_plots else []
    report.main(report_args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
