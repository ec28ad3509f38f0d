"""Command line: `python3 -m spinprune_torch eval CHECKPOINT` (top-1 on the test set of the
checkpoint's config, in PyTorch or, with --runtime onnxruntime, through an exported ONNX graph)
and `python3 -m spinprune_torch export-onnx CHECKPOINT OUT.onnx` (the network on pixels in
[0, 1], normalisation included, checked with onnx.checker when the onnx package is installed)."""
import argparse
import os
import sys
import tempfile
import tomllib

import numpy as np
import torch

from . import load, read_checkpoint
from .checkpoint import CheckpointError
from .data import test_set

ONNX_OPSET = 13


def export_onnx(model, path):
    """Writes the network on pixels in [0, 1] (normalisation included) with a dynamic batch axis:
    input "pixels" (N, C, H, W), output "logits" (N, classes)."""
    example = torch.zeros((1,) + tuple(model.input_shape))
    torch.onnx.export(model.with_normalization().eval(), example, path, input_names=["pixels"],
                      output_names=["logits"], dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=ONNX_OPSET)
    try:
        import onnx
    except ImportError:
        return False
    onnx.checker.check_model(onnx.load(path), full_check=True)
    return True


def correct_top1(logits, labels):
    """Images whose label's logit is strictly above every other logit: spinprune's top-1 rule,
    where a tie counts against the label."""
    label_logit = np.take_along_axis(logits, labels[:, None], 1)
    ahead = (logits >= label_logit).sum(1) - 1  # the label's own logit is counted once
    return int((ahead == 0).sum())


def evaluate(predict, images, labels, batch_size):
    correct = 0
    for i in range(0, len(images), batch_size):
        correct += correct_top1(predict(images[i:i + batch_size]), labels[i:i + batch_size])
    return correct


def command_eval(args):
    ck = read_checkpoint(args.checkpoint)
    config = tomllib.loads(ck.meta("config")).get("data", {})
    dataset = args.dataset or config.get("dataset", "fashion-mnist")
    images, labels = test_set(dataset, args.data_dir or config.get("dir") or None)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    model = load(args.checkpoint)
    if tuple(images.shape[1:]) != model.input_shape:
        raise CheckpointError(f"{args.checkpoint}: the network takes {model.input_shape}, the {dataset} test set "
                              f"holds {tuple(images.shape[1:])}")
    if args.runtime == "torch":
        net = model.with_normalization()

        def predict(x):
            with torch.no_grad():
                return net(torch.from_numpy(x)).numpy()
    else:
        import onnxruntime
        path = args.onnx or os.path.join(tempfile.mkdtemp(), "model.onnx")
        export_onnx(model, path)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

        def predict(x):
            return session.run(["logits"], {"pixels": x})[0]
    correct = evaluate(predict, images, labels, args.batch_size)
    print(f"{args.runtime}: {model.architecture} on {dataset}: top-1 {100.0 * correct / len(labels):.2f}% "
          f"({correct} of {len(labels)} images)")


def command_export(args):
    model = load(args.checkpoint)
    checked = export_onnx(model, args.out)
    print(f"wrote {args.out}: {model.architecture}, input pixels (N, {', '.join(map(str, model.input_shape))}) in [0, 1]"
          f"{', checked with onnx.checker' if checked else ' (onnx not installed: not checked)'}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m spinprune_torch", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="top-1 on the test set of the checkpoint's config")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", help="fashion-mnist | cifar10 | cifar100 (default: the checkpoint's config)")
    ev.add_argument("--data-dir", help="dataset directory (default: the config's, else the standard one)")
    ev.add_argument("--batch-size", type=int, default=500)
    ev.add_argument("--limit", type=int, default=0, help="only the first N test images")
    ev.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch")
    ev.add_argument("--onnx", help="with --runtime onnxruntime: where to keep the exported graph")
    ex = sub.add_parser("export-onnx", help="the network on pixels in [0, 1] as an ONNX graph")
    ex.add_argument("checkpoint")
    ex.add_argument("out")
    args = parser.parse_args(argv)
    try:
        command_eval(args) if args.command == "eval" else command_export(args)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"spinprune_torch: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
