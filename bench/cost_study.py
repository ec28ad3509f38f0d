#!/usr/bin/python3
"""Cost study (make cost-study), second half: reads what bench/cost_study.cpp measured on our
backend (WORK/study.json, with the sweep's dense and compacted networks as checkpoints beside it),
times the same networks in onnxruntime, and writes OUT/<device>_cost_study.json (the study with
onnxruntime's times beside ours) and .md (the tables).

onnxruntime runs on the CPU execution provider with as many intra-op threads as our CPU backend
had OpenMP threads (the study's cpu_threads), one inter-op thread and sequential execution; its
graph is exported from the checkpoint by spinprune_torch. Batch sizes, warm-up, repeats and
rounds are the study's, so both runtimes follow one protocol: per batch, the dense network then
the compacted one, each the minimum over rounds of the median of repeats after the warm-up runs.

Usage: bench/cost_study.py WORK/study.json [--out bench/results] [--no-onnxruntime]
Needs PyTorch, onnx and onnxruntime (`make deps`), except with --no-onnxruntime."""
import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class StudyError(Exception):
    pass


def require(obj, keys, where):
    """The dict `obj` (at `where`) with every key of `keys`; an error names the first missing one."""
    if not isinstance(obj, dict):
        raise StudyError(f"{where}: expected an object, found {type(obj).__name__}")
    for key in keys:
        if key not in obj:
            raise StudyError(f"{where}: no key '{key}'")
    return obj


def require_list(obj, key, keys, where):
    """Each element of obj[key] with every key of `keys`."""
    if not isinstance(obj[key], list):
        raise StudyError(f"{where}.{key}: expected a list")
    for i, item in enumerate(obj[key]):
        require(item, keys, f"{where}.{key}[{i}]")
    return obj[key]


def read_study(path):
    """cost_study_bench's study.json, checked for every key this script reads."""
    try:
        with open(path) as f:
            study = json.load(f)
    except OSError as e:
        raise StudyError(f"{path}: {e.strerror} (cost_study_bench --work DIR writes DIR/study.json)") from None
    except ValueError as e:
        raise StudyError(f"{path}: not JSON: {e}") from None
    require(study, ("device", "device_name", "git_revision", "date", "command", "repeats", "rounds", "warmup",
                    "cpu_threads", "machinery", "models", "unstructured"), path)
    for key in ("repeats", "rounds", "cpu_threads"):
        if not isinstance(study[key], int) or study[key] < 1:
            raise StudyError(f"{path}: '{key}' is {study[key]!r}, expected a positive integer")
    require(study["machinery"], ("batch", "step_ms", "rows"), f"{path}: machinery")
    require_list(study["machinery"], "rows", ("work", "unit", "ms"), f"{path}: machinery")
    for i, model in enumerate(require_list(study, "models", ("name", "params_kept", "macs_kept", "dense_macs",
                                                             "compacted_macs", "dense_params", "compacted_params",
                                                             "checkpoints", "latency"), path)):
        where = f"{path}: models[{i}]"
        require(model["checkpoints"], ("dense", "compacted"), f"{where}.checkpoints")
        for j, point in enumerate(require_list(model, "latency", ("batch", "dense_ms", "compacted_ms"), where)):
            if not isinstance(point["batch"], int) or point["batch"] < 1:
                raise StudyError(f"{where}.latency[{j}]: batch is {point['batch']!r}, expected a positive integer")
    for i, model in enumerate(require_list(study, "unstructured", ("name", "latency"), path)):
        require_list(model, "latency", ("batch", "dense_ms", "masked_ms"), f"{path}: unstructured[{i}]")
    return study


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def onnxruntime_latency(study, study_path):
    """Adds onnxruntime_dense_ms and onnxruntime_compacted_ms to every point of the sweep, and
    study["onnxruntime"] with the runtime's version and settings."""
    import numpy as np
    import onnxruntime
    sys.path.insert(0, os.path.join(REPO, "python"))
    import spinprune_torch
    from spinprune_torch.__main__ import ONNX_OPSET, export_onnx

    threads = study["cpu_threads"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    work = os.path.dirname(os.path.abspath(study_path))
    load_start = load_average()

    def session(model_entry, kind, folder):
        path = os.path.join(work, model_entry["checkpoints"][kind])
        try:
            model = spinprune_torch.load(path)
        except (spinprune_torch.CheckpointError, OSError) as e:
            raise StudyError(f"{study_path}: {model_entry['name']} {kind}: {e}") from None
        params = sum(p.numel() for p in model.parameters())
        if params != model_entry[f"{kind}_params"]:
            raise StudyError(f"{path}: holds a network of {params} parameters, the study timed "
                             f"{model_entry[f'{kind}_params']} ({model_entry['name']} {kind}): not the same network")
        graph = os.path.join(folder, f"{model_entry['name']}_{kind}.onnx")
        with warnings.catch_warnings():  # the exporter's notes on the option-A shortcut's strided slice
            warnings.simplefilter("ignore", UserWarning)
            export_onnx(model, graph)
        return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"]), model.input_shape

    def latency_ms(sess, pixels):
        best = math.inf
        for _ in range(study["rounds"]):
            for _ in range(study["warmup"]):
                sess.run(["logits"], {"pixels": pixels})
            times = []
            for _ in range(study["repeats"]):
                t0 = time.perf_counter()
                sess.run(["logits"], {"pixels": pixels})
                times.append(1e3 * (time.perf_counter() - t0))
            best = min(best, sorted(times)[len(times) // 2])  # the upper median, as ours
        return best

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for m in study["models"]:
            dense, shape = session(m, "dense", folder)
            compacted, _ = session(m, "compacted", folder)
            for p in m["latency"]:
                pixels = rng.random((p["batch"],) + tuple(shape), dtype=np.float32)
                p["onnxruntime_dense_ms"] = latency_ms(dense, pixels)
                p["onnxruntime_compacted_ms"] = latency_ms(compacted, pixels)
                print(f"onnxruntime {m['name']} batch {p['batch']}: dense {p['onnxruntime_dense_ms']:.3f} ms, "
                      f"compacted {p['onnxruntime_compacted_ms']:.3f} ms", file=sys.stderr)
    study["onnxruntime"] = {"version": onnxruntime.__version__, "provider": "CPUExecutionProvider",
                            "intra_op_threads": threads, "inter_op_threads": 1, "execution_mode": "sequential",
                            "graph_optimization": options.graph_optimization_level.name, "onnx_opset": ONNX_OPSET,
                            "load_average": {"start": load_start, "end": load_average()}}


def load_note(load):
    def one_minute(x):
        return "?" if not x else f"{x[0]:.1f}"
    return f"{one_minute(load.get('start'))} at the start, {one_minute(load.get('end'))} at the end"


def markdown(study):
    ort = study.get("onnxruntime")
    md = ["# Cost study: dense vs compacted latency, unstructured masks", "",
          f"Device: {study['device_name']} ({study['device']}); date {study['date']}; commit {study['git_revision']}. "
          f"Command: `make cost-study` ({study['command']}; then bench/cost_study.py).",
          f"Latency: milliseconds per forward in eval mode on random input, the minimum over {study['rounds']} rounds "
          f"of the median of {study['repeats']} forwards (after {study['warmup']} warm-up runs each); the minimum, "
          "since other jobs on a shared machine only add time. MACs: multiply-accumulates per image (1 MAC = 2 FLOPs)."]
    if study["device"] == "cpu":
        md.append(f"Our CPU backend ran with {study['cpu_threads']} OpenMP thread(s) (OMP_NUM_THREADS; by default one "
                  f"per core) on a machine of "
                  f"{os.cpu_count()} cores; 1-minute load average {load_note(study.get('load_average', {}))} "
                  "of our measurements (this benchmark counts for about one).")
    if ort:
        md.append(f"onnxruntime {ort['version']} ({ort['provider']}, {ort['intra_op_threads']} intra-op thread(s) as "
                  f"ours, {ort['inter_op_threads']} inter-op, {ort['execution_mode']} execution, graph optimisation "
                  f"{ort['graph_optimization']}, its default) ran the same dense and compacted networks, exported "
                  f"from their checkpoints by spinprune_torch (ONNX opset {ort['onnx_opset']}; PyTorch's exporter "
                  "folds batch norm into the convolutions, onnxruntime fuses ReLUs into them and uses its blocked "
                  "NCHWc layout), at the same batches with the same warm-up, repeats and rounds; 1-minute "
                  f"load average {load_note(ort['load_average'])} of its measurements.")
    else:
        md.append("onnxruntime: not measured (bench/cost_study.py --no-onnxruntime).")
    mach = study["machinery"]
    md += ["", "## The pruning machinery per unit of work", "",
           f"ResNet-20 on random 3x32x32 images, batch {mach['batch']}; every row the median of the repeats after a "
           "warm-up; \"share of a step\": its time against one training step at the same batch.", "",
           "| work | ms per unit | share of a training step |", "|---|---:|---:|"]
    for r in mach["rows"]:
        md.append(f"| {r['work']} | {r['ms']:.4g} per {r['unit']} | {r['ms'] / mach['step_ms']:.3g} |")
    md += ["", "## Dense vs compacted (50% of every prunable layer's filters removed, lowest L1 norm)", ""]
    if ort:
        md += [f"onnxruntime's columns: the same networks in onnxruntime on the CPU"
               f"{' (ours on the GPU)' if study['device'] != 'cpu' else ''}.", ""]
    for m in study["models"]:
        md += [f"### {m['name']}: {100 * m['params_kept']:.1f}% of the parameters, {100 * m['macs_kept']:.1f}% of the "
               f"MACs kept ({m['dense_macs']} -> {m['compacted_macs']} MACs/image)", ""]
        header = "| batch | dense ms | compacted ms | speed-up |"
        rule = "|---:|---:|---:|---:|"
        if ort:
            header += " onnxruntime dense ms | onnxruntime compacted ms | onnxruntime speed-up |"
            rule += "---:|---:|---:|"
        md += [header + " MAC ratio |", rule + "---:|"]
        for p in m["latency"]:
            row = f"| {p['batch']} | {p['dense_ms']:.3f} | {p['compacted_ms']:.3f} | {p['dense_ms'] / p['compacted_ms']:.2f}x |"
            if ort:
                row += (f" {p['onnxruntime_dense_ms']:.3f} | {p['onnxruntime_compacted_ms']:.3f} | "
                        f"{p['onnxruntime_dense_ms'] / p['onnxruntime_compacted_ms']:.2f}x |")
            md.append(row + f" {1 / m['macs_kept']:.2f}x |")
        md.append("")
    md += ["## Unstructured masks (50% of the weights, per-layer magnitude) on the dense network", "",
           "| model | batch | dense ms | masked ms | masked / dense |", "|---|---:|---:|---:|---:|"]
    for m in study["unstructured"]:
        for p in m["latency"]:
            md.append(f"| {m['name']} | {p['batch']} | {p['dense_ms']:.3f} | {p['masked_ms']:.3f} | "
                      f"{p['masked_ms'] / p['dense_ms']:.2f} |")
    return "\n".join(md) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", help="the study.json cost_study_bench --work DIR wrote")
    ap.add_argument("--out", default="bench/results", help="folder for <device>_cost_study.md and .json")
    ap.add_argument("--no-onnxruntime", action="store_true", help="our measurements alone")
    args = ap.parse_args(argv)
    try:
        study = read_study(args.study)
        if not args.no_onnxruntime:
            try:
                onnxruntime_latency(study, args.study)
            except ImportError as e:
                raise StudyError(f"{e} in {sys.executable}: make deps installs PyTorch, onnx and onnxruntime "
                                 "(or --no-onnxruntime for our measurements alone)") from None
        text = markdown(study)
    except StudyError as e:
        print(f"cost_study.py: error: {e}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"{study['device']}_cost_study")
    with open(base + ".json", "w") as f:
        f.write(json.dumps(study, indent=2) + "\n")
    with open(base + ".md", "w") as f:
        f.write(text)
    print(text, end="")
    print(f"wrote {base}.md and {base}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
