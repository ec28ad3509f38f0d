#!/usr/bin/env python3
"""The sweep engine of scripts/repro.py: a sweep's runs (experiment × seed × overrides) one after
another, N at once on this machine, or as one Slurm job array, with the same rules everywhere:

- run i of a config goes to OUT/<experiment>/seed<i> (`spinprune run --seed i --out ...`), its
  output appended to OUT/<experiment>/seed<i>.log;
- a run whose summary.json says completed is skipped; one with a config.toml (started, stopped by
  SIGINT/SIGTERM, a time limit or a kill) continues with --resume from its checkpoint; whether to
  resume is decided when the run starts, so a requeued Slurm task resumes too;
- on Slurm, runs still pending or running in an earlier array of the same OUT are not sent again.

Slurm: the runs to do become one `sbatch --array` whose task k runs `sweep.py task MANIFEST` with
SLURM_ARRAY_TASK_ID = k; MANIFEST (OUT/.sweep/array-*.json) lists the runs and records the job id.
"""
import datetime
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
INTERRUPTED = 130  # spinprune's exit status after SIGINT/SIGTERM: stopped with a checkpoint


class SweepError(Exception):
    """Bad input or a refused submission: the message names what was wrong."""


@dataclass
class Run:
    config: str
    name: str
    seed: int
    dir: str
    overrides: list = field(default_factory=list)

    @property
    def log(self):
        return self.dir + ".log"

    def label(self):
        return f"{self.name} seed {self.seed}"


def run_state(run):
    """'complete' (summary.json says so), 'partial' (started: config.toml) or 'new'."""
    try:
        with open(os.path.join(run.dir, "summary.json")) as f:
            if json.load(f).get("completed", True):
                return "complete"
    except (OSError, ValueError, AttributeError):
        pass
    return "partial" if os.path.exists(os.path.join(run.dir, "config.toml")) else "new"


def config_changes(run, binary):
    """The keys in which the run's recorded config.toml differs from what its config, seed and
    overrides give now (`spinprune config --against`); empty when it is the same experiment."""
    cmd = [binary, "config", "--config", run.config, "--seed", str(run.seed),
           "--against", os.path.join(run.dir, "config.toml")]
    for o in run.overrides:
        cmd += ["--set", o]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    changes = p.stdout.splitlines()
    if p.returncode not in (0, 1) or (p.returncode == 1) != bool(changes):
        raise SweepError(f"{run.label()}: could not compare its config with {run.dir}/config.toml: "
                         f"{p.stderr.strip() or f'exit {p.returncode}'}")
    return changes


def run_command(run, binary, device):
    cmd = [binary, "run", "--config", run.config, "--seed", str(run.seed), "--out", run.dir, "--device", device]
    if run_state(run) == "partial":
        cmd.append("--resume")
    for o in run.overrides:
        cmd += ["--set", o]
    return cmd


# Child processes of this sweep, so a SIGTERM to the sweep stops them too (each with a checkpoint).
# Reentrant: the handler runs in the main thread, which may hold the lock when the signal comes.
_children, _children_lock, _stopping = set(), threading.RLock(), threading.Event()


def _forward_stop(signum, frame):
    _stopping.set()
    with _children_lock:
        for p in _children:
            if p.poll() is None:
                p.send_signal(signum)


def install_stop_forwarding():
    signal.signal(signal.SIGTERM, _forward_stop)
    signal.signal(signal.SIGINT, _forward_stop)


def execute(run, binary, device, env=None, prefix=(), where=""):
    """Runs one run (resuming it when started before), its output appended to its log; the exit status."""
    cmd = list(prefix) + run_command(run, binary, device)
    os.makedirs(os.path.dirname(run.dir), exist_ok=True)
    with open(run.log, "a") as log:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        log.write(f"== sweep: {stamp} on {socket.gethostname()}{where}: {shlex.join(cmd)}\n")
        log.flush()
        with _children_lock:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
            _children.add(p)
            if _stopping.is_set():  # a stop that came while the child was being started
                p.send_signal(signal.SIGTERM)
        rc = p.wait()
        with _children_lock:
            _children.discard(p)
        log.write(f"== sweep: exit {rc}\n")
    return rc


# ---- this machine: one run at a time, or N at once --------------------------------------------

def visible_gpus():
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return [str(i) for i, line in enumerate(r.stdout.splitlines()) if line.startswith("GPU ")] if r.returncode == 0 else []


def default_jobs(device):
    """Runs at once when JOBS is not given: one per visible GPU, else one per core."""
    return len(visible_gpus() if device != "cpu" else []) or len(os.sched_getaffinity(0))


def local_slots(jobs, device):
    """One (description, environment, command prefix) per concurrent run: its own GPU where there are
    GPUs (device auto/cuda), and its own share of this process's CPU cores (taskset, OMP_NUM_THREADS)."""
    cores = sorted(os.sched_getaffinity(0))
    gpus = visible_gpus() if device != "cpu" else []
    if gpus and jobs > len(gpus):
        print(f"sweep: JOBS={jobs} runs at once on {len(gpus)} GPUs: some GPUs get more than one run")
    if jobs > len(cores):
        print(f"sweep: JOBS={jobs} runs at once on {len(cores)} CPU cores: some cores get more than one run")
    slots = []
    for i in range(jobs):
        share = cores[i * len(cores) // jobs:(i + 1) * len(cores) // jobs] or [cores[i % len(cores)]]
        env = dict(os.environ, OMP_NUM_THREADS=str(len(share)))
        where = f", cores {','.join(map(str, share))}"
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
            where = f", GPU {gpus[i % len(gpus)]}" + where
        prefix = ["taskset", "-c", ",".join(map(str, share))] if shutil.which("taskset") else []
        slots.append((where, env, prefix))
    return slots


def clock(seconds):
    """'1:05', '1:02:03': a duration for people."""
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def run_here(runs, binary, device, jobs, on_complete=None):
    """Runs `runs` on this machine, `jobs` at once (1: one after another, nothing pinned), calling
    on_complete(run) after each run that completed, before the next starts on its slot. Returns
    (run, exit status) for each run that did not finish: status None for those a stop signal
    kept from starting."""
    install_stop_forwarding()
    slots = queue.Queue()
    for slot in (local_slots(jobs, device) if jobs > 1 else [("", None, [])]):
        slots.put(slot)
    lock = threading.Lock()
    status = {}  # index in runs -> exit status of the runs that started
    started_at, ended = time.monotonic(), []

    def one(i, run):
        slot = slots.get()
        try:
            with lock:
                if _stopping.is_set():
                    return
                status[i] = None
                print(f"sweep: [{len(status)}/{len(runs)}] {run.label()}{slot[0]}: "
                      f"{'resumed' if run_state(run) == 'partial' else 'started'}", flush=True)
            rc = execute(run, binary, device, slot[1], slot[2], slot[0])
            if rc == 0 and on_complete:
                on_complete(run)
            with lock:
                status[i] = rc
                what = ("done" if rc == 0 else "stopped with a checkpoint" if rc == INTERRUPTED else f"failed (exit {rc})")
                ended.append(i)
                elapsed = time.monotonic() - started_at
                left = elapsed / len(ended) * (len(runs) - len(ended))  # at the mean pace so far
                progress = f"{len(ended)}/{len(runs)} ended, {clock(elapsed)} elapsed" + \
                    (f", about {clock(left)} left" if len(ended) < len(runs) else "")
                print(f"sweep: {run.label()} {what}" + (f", see {run.log}" if rc else "") + f" ({progress})", flush=True)
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for f in [pool.submit(one, i, r) for i, r in enumerate(runs)]:
            f.result()
    if _stopping.is_set():
        print(f"sweep: stopped by a signal; {len(runs) - len(status)} of {len(runs)} runs not started", flush=True)
    return [(r, status.get(i)) for i, r in enumerate(runs) if status.get(i) != 0]


# ---- Slurm: one job array ------------------------------------------------------------------------

@dataclass
class SlurmOptions:
    partition: str = ""
    account: str = ""
    gpus: str = ""           # per task; "" = 1 if the cluster has GPU GRES, else 0
    time: str = ""           # --time
    throttle: int = 0        # at most this many tasks at once (--array ...%N); 0 = no limit
    cpus: int = 0            # --cpus-per-task; 0 = the cluster's default
    extra: str = ""          # more sbatch options, as one string
    warn_s: int = 120        # SIGTERM this long before the time limit, for the final checkpoint


def plural(n, noun):
    return f"{n} {noun}{'' if n == 1 else 's'}"


def sweep_dir(out):
    return os.path.join(out, ".sweep")


def slurm_call(args):
    """Runs a Slurm client command; a missing command is a SweepError naming it."""
    if not shutil.which(args[0]):
        raise SweepError(f"{args[0]} not found: SCHED=slurm needs the Slurm client commands (sbatch, squeue, sinfo) on PATH")
    return subprocess.run(args, capture_output=True, text=True)


def job_name(out):
    return "spinprune:" + os.path.basename(os.path.normpath(out))


def manifests(out):
    d = sweep_dir(out)
    found = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith("array-") and name.endswith(".json"):
            try:
                with open(os.path.join(d, name)) as f:
                    found.append((os.path.join(d, name), json.load(f)))
            except (OSError, ValueError):
                print(f"sweep: {os.path.join(d, name)}: unreadable, ignored")
    return found


def in_flight(out):
    """{run dir: (job id, state)} for the runs of earlier arrays of OUT that Slurm still lists."""
    r = slurm_call(["squeue", "-h", "-r", "--name", job_name(out), "-o", "%F %K %T"])
    if r.returncode != 0:
        raise SweepError(f"squeue failed: {r.stderr.strip()}")
    listed = {}
    for line in r.stdout.split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            listed[(parts[0], int(parts[1]))] = parts[2]
    flying = {}
    for _, m in manifests(out):
        for k, run in enumerate(m.get("runs", [])):
            state = listed.get((str(m.get("job_id")), k))
            if state:
                flying[run["dir"]] = (m["job_id"], state)
    return flying


def default_gpus():
    r = slurm_call(["sinfo", "-h", "-o", "%G"])
    return "1" if r.returncode == 0 and "gpu" in r.stdout else "0"


def submit(runs, out, binary, device, opts):
    """Submits `runs` as one job array; returns its job id. Nothing is left behind when sbatch refuses."""
    gpus = opts.gpus or default_gpus()
    d = sweep_dir(out)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    manifest = os.path.join(d, f"array-{stamp}.json")
    script = os.path.join(d, f"array-{stamp}.sh")
    write_json(manifest, {"binary": binary, "device": device, "root": ROOT, "runs": [asdict(r) for r in runs]})
    with open(script, "w") as f:
        f.write(f"#!/bin/bash\n# One task of the sweep in {manifest}: its run number is SLURM_ARRAY_TASK_ID.\n"
                f"exec {shlex.quote(sys.executable)} {shlex.quote(os.path.abspath(__file__))} task {shlex.quote(manifest)}\n")
    array = f"0-{len(runs) - 1}" + (f"%{opts.throttle}" if opts.throttle > 0 else "")
    cmd = ["sbatch", "--parsable", f"--job-name={job_name(out)}", f"--array={array}",
           f"--output={os.path.join(d, 'logs', '%A_%a.out')}", f"--chdir={ROOT}",
           "--open-mode=append", "--requeue", f"--signal=B:TERM@{opts.warn_s}"]
    cmd += [f"--partition={opts.partition}"] if opts.partition else []
    cmd += [f"--account={opts.account}"] if opts.account else []
    cmd += [f"--time={opts.time}"] if opts.time else []
    cmd += [f"--cpus-per-task={opts.cpus}"] if opts.cpus > 0 else []
    cmd += [f"--gres=gpu:{gpus}"] if gpus not in ("", "0") else []
    cmd += shlex.split(opts.extra) + [script]
    try:
        r = slurm_call(cmd)
    except SweepError:
        os.remove(manifest)
        os.remove(script)
        raise
    job_id = r.stdout.strip().split(";")[0]
    if r.returncode != 0 or not job_id.isdigit():
        os.remove(manifest)
        os.remove(script)
        raise SweepError(f"sbatch refused the array of {plural(len(runs), 'run')}, nothing was submitted:\n  {shlex.join(cmd)}\n  "
                         + (r.stderr.strip() or r.stdout.strip()).replace("\n", "\n  "))
    with open(manifest) as f:
        m = json.load(f)
    m.update(job_id=job_id, submitted=stamp, sbatch=cmd)
    write_json(manifest, m)
    print(f"sweep: submitted job array {job_id}: {plural(len(runs), 'run')} (tasks {array}); "
          f"task logs {os.path.join(d, 'logs', job_id + '_<task>.out')}", flush=True)
    return job_id


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)  # a task reading the manifest sees the old or the new one, whole


def wait_for_jobs(job_ids, poll_s):
    """Polls squeue until none of the job arrays has a task left."""
    last = None
    while True:
        r = slurm_call(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%T"])
        if r.returncode != 0 and "Invalid job id" not in r.stderr:
            raise SweepError(f"squeue failed while waiting for job(s) {', '.join(job_ids)}: {r.stderr.strip()}")
        states = r.stdout.split() if r.returncode == 0 else []
        if not states:
            return
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        if counts != last:
            print(f"sweep: job(s) {', '.join(job_ids)}: {counts}", flush=True)
            last = counts
        time.sleep(poll_s)


def run_slurm(runs, out, binary, device, opts, wait, poll_s):
    """Submits what is neither complete nor in flight; with `wait`, waits for it and for the arrays
    still running, then returns the runs that did not complete (with their logs). Returns None when
    not waiting."""
    flying = in_flight(out)
    todo = [r for r in runs if r.dir not in flying]
    for r in runs:
        if r.dir in flying:
            print(f"sweep: {r.label()}: {flying[r.dir][1].lower()} in job {flying[r.dir][0]}, not sent again")
    job_ids = sorted({job for job, _ in flying.values()})
    if todo:
        job_ids.append(submit(todo, out, binary, device, opts))
    elif not flying:
        print("sweep: nothing to submit")
    if not wait:
        if job_ids:
            print(f"sweep: not waiting (WAIT=1 waits); `squeue --name {job_name(out)}` shows the array, "
                  f"`make report RUNS={os.path.relpath(out, ROOT) if out.startswith(ROOT) else out}` tabulates what is done")
        return None
    if job_ids:
        wait_for_jobs(job_ids, poll_s)
    task_logs = {}
    for _, m in manifests(out):
        for k, run in enumerate(m.get("runs", [])):
            if m.get("job_id"):
                task_logs[run["dir"]] = os.path.join(sweep_dir(out), "logs", f"{m['job_id']}_{k}.out")
    return [(r, task_logs.get(r.dir)) for r in runs if run_state(r) != "complete"]


def task_main(manifest):
    """Inside a Slurm array task: the run SLURM_ARRAY_TASK_ID of MANIFEST."""
    index = os.environ.get("SLURM_ARRAY_TASK_ID")
    if index is None or not index.isdigit():
        print("sweep task: SLURM_ARRAY_TASK_ID is not set: `sweep.py task` runs inside a Slurm array task", file=sys.stderr)
        return 2
    try:
        with open(manifest) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        print(f"sweep task: {manifest}: cannot read the sweep's manifest: {e}", file=sys.stderr)
        return 2
    if int(index) >= len(m["runs"]):
        print(f"sweep task: {manifest} has {len(m['runs'])} runs, no run {index}", file=sys.stderr)
        return 2
    run = Run(**m["runs"][int(index)])
    if run_state(run) == "complete":
        print(f"sweep task: {run.label()} is complete already ({run.dir})")
        return 0
    # Threads: the CPUs Slurm gave this task, unless asked otherwise (no oversubscription when
    # the cluster does not bind tasks to cores).
    env = dict(os.environ)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_JOB_CPUS_PER_NODE", "").split("(")[0]
    if "OMP_NUM_THREADS" not in env and cpus.isdigit():
        env["OMP_NUM_THREADS"] = cpus
    install_stop_forwarding()
    where = f", job {os.environ.get('SLURM_ARRAY_JOB_ID', '?')}_{index}"
    print(f"sweep task: {run.label()}: {'resumed' if run_state(run) == 'partial' else 'started'}; output in {run.log}", flush=True)
    rc = execute(run, m["binary"], m["device"], env, where=where)
    print(f"sweep task: {run.label()}: exit {rc}" + (" (stopped with a checkpoint; runs again with --resume)" if rc == INTERRUPTED else ""))
    return rc


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "task":
        print(__doc__ + "\nusage: sweep.py task MANIFEST   (inside a Slurm array task; scripts/repro.py submits)", file=sys.stderr)
        sys.exit(2)
    sys.exit(task_main(sys.argv[2]))
