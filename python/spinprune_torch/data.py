"""Test sets as spinprune reads them: Fashion-MNIST (IDX, plain or .gz) and CIFAR-10/100 (the
binary version), pixels scaled to [0, 1] as float32 (N, C, H, W), labels as int64 (N)."""
import gzip
import os
import struct

import numpy as np

FASHION_MNIST_DIRS = ("third_party/data/fashion-mnist", "/usr/share/datasets/fashion-mnist")
DEFAULT_DIRS = {"cifar10": "data/cifar-10", "cifar100": "data/cifar-100"}


def _read_maybe_gz(path):
    for candidate, opener in ((path, open), (path + ".gz", gzip.open)):
        if os.path.exists(candidate):
            with opener(candidate, "rb") as f:
                return f.read()
    raise FileNotFoundError(f"no {path} or {path}.gz")


def _idx(path, magic, dims):
    raw = _read_maybe_gz(path)
    if len(raw) < 4 + 4 * dims or struct.unpack(">I", raw[:4])[0] != magic:
        raise ValueError(f"{path}: not an IDX file with magic {magic:#010x}")
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, the file holds {data.size} values")
    return data.reshape(shape)


def fashion_mnist_test(directory=None):
    directory = directory or next((d for d in FASHION_MNIST_DIRS if os.path.isdir(d)), FASHION_MNIST_DIRS[-1])
    images = _idx(os.path.join(directory, "t10k-images-idx3-ubyte"), 0x00000803, 3)
    labels = _idx(os.path.join(directory, "t10k-labels-idx1-ubyte"), 0x00000801, 1)
    return images[:, None].astype(np.float32) / np.float32(255), labels.astype(np.int64)


def _resolve(directory, sub, probe):
    for d in (directory, os.path.join(directory, sub)):
        if os.path.exists(os.path.join(d, probe)):
            return d
    raise FileNotFoundError(f"no {probe} in {directory} or {os.path.join(directory, sub)}")


def cifar_test(dataset, directory=None):
    """CIFAR-10 test_batch.bin or CIFAR-100 test.bin (fine labels, as spinprune uses)."""
    directory = directory or DEFAULT_DIRS[dataset]
    if dataset == "cifar10":
        path, label_bytes = os.path.join(_resolve(directory, "cifar-10-batches-bin", "test_batch.bin"), "test_batch.bin"), 1
    else:
        path, label_bytes = os.path.join(_resolve(directory, "cifar-100-binary", "test.bin"), "test.bin"), 2
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + 3 * 32 * 32
    if raw.size % record:
        raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte records")
    rows = raw.reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    return images, rows[:, label_bytes - 1].astype(np.int64)


def test_set(dataset, directory=None):
    if dataset == "fashion-mnist":
        return fashion_mnist_test(directory)
    if dataset in ("cifar10", "cifar100"):
        return cifar_test(dataset, directory)
    raise ValueError(f"unknown dataset '{dataset}' (fashion-mnist, cifar10, cifar100)")
