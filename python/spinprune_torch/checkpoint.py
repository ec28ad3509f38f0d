"""Reading spinprune checkpoints: the safetensors layout (8-byte little-endian header length, a
JSON header of {name: {dtype, shape, data_offsets}} plus "__metadata__" of strings, then the raw
tensors) with NumPy alone, and the model description spinprune stores in the metadata."""
import json
import struct
from dataclasses import dataclass, field

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or lacks what the caller needs; the message names the file."""


@dataclass
class Checkpoint:
    path: str
    tensors: dict  # name -> float32 ndarray
    metadata: dict  # key -> str

    def meta(self, key):
        if key not in self.metadata:
            raise CheckpointError(f"{self.path}: checkpoint metadata has no key '{key}'")
        return self.metadata[key]


def read_checkpoint(path):
    """All tensors (float32 arrays) and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        contents = f.read()
    if len(contents) < 8:
        raise CheckpointError(f"{path}: not a safetensors file ({len(contents)} bytes, need at least 8)")
    (length,) = struct.unpack("<Q", contents[:8])
    if length > len(contents) - 8:
        raise CheckpointError(f"{path}: header length {length} exceeds the file ({len(contents)} bytes)")
    try:
        header = json.loads(contents[8:8 + length])
    except ValueError as e:
        raise CheckpointError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header must be a JSON object")
    data = memoryview(contents)[8 + length:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") != "F32":
            raise CheckpointError(f"{path}: tensor '{name}' is not F32 (spinprune writes float32 only)")
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if not 0 <= begin <= end <= len(data) or (end - begin) != 4 * int(np.prod(shape, dtype=np.int64)):
            raise CheckpointError(f"{path}: tensor '{name}': data_offsets [{begin}, {end}) do not fit shape {shape}")
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(shape).copy()
    return Checkpoint(path, tensors, dict(metadata))


@dataclass
class Description:
    """What rebuilds and feeds the network (the metadata keys spinprune's save_model writes)."""
    architecture: str
    input_shape: tuple  # (C, H, W)
    num_classes: int
    mean: list = None  # per input channel, for pixels scaled to [0, 1]; None: no normalisation
    std: list = None
    shortcut: str = "A"
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    dropout: float = 0.5
    channel_sets: dict = field(default_factory=dict)  # every channel set's width, by name
    weight_masks: list = field(default_factory=list)  # layers whose weight carries a 0/1 mask


def read_description(ck):
    """The model description `ck` holds. A checkpoint written before spinprune stored one is an
    error that says so (spinprune itself still loads it, from its config)."""
    if "architecture" not in ck.metadata:
        raise CheckpointError(
            f"{ck.path}: no model description in the metadata ('architecture', 'input_shape', "
            "'normalization', 'channel_sets', ...): the checkpoint was written before spinprune stored one. "
            "spinprune still evaluates it (`spinprune eval --checkpoint ...`); to use it here, re-run the stage "
            "that wrote it with the current spinprune")

    def value(key):
        try:
            return json.loads(ck.meta(key))
        except ValueError:
            raise CheckpointError(f"{ck.path}: metadata '{key}' is not JSON: {ck.meta(key)!r}") from None

    norm = value("normalization")
    options = value("model_options")
    d = Description(
        architecture=ck.meta("architecture"),
        input_shape=tuple(value("input_shape")),
        num_classes=int(value("num_classes")),
        mean=None if norm is None else [float(v) for v in norm["mean"]],
        std=None if norm is None else [float(v) for v in norm["std"]],
        shortcut=options["shortcut"],
        bn_momentum=float(options["bn_momentum"]),
        bn_eps=float(options["bn_eps"]),
        dropout=float(options["dropout"]),
        channel_sets={k: int(v) for k, v in value("channel_sets").items()},
        weight_masks=list(value("weight_masks")),
    )
    if len(d.input_shape) != 3 or d.num_classes < 1:
        raise CheckpointError(f"{ck.path}: input_shape {d.input_shape} / num_classes {d.num_classes} are not a "
                              "(C, H, W) image shape and a positive class count")
    if d.mean is not None and not (len(d.mean) == len(d.std) == d.input_shape[0]):
        raise CheckpointError(f"{ck.path}: normalization has {len(d.mean)} means and {len(d.std)} stds for "
                              f"{d.input_shape[0]} input channels")
    return d
