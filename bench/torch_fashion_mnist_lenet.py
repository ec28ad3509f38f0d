#!/usr/bin/python3
"""PyTorch peer of `spinprune train --config experiments/fashion_mnist_lenet.toml`: the same
network (conv16-BN-ReLU-maxpool, conv32-BN-ReLU-maxpool, fc64-ReLU, fc10), the same data split
sizes, optimizer, schedule and batch size, on the CPU. Prints one JSON line per epoch and a
final summary line. Used by bench/cpu_train_vs_torch.sh."""
import gzip, json, sys, time

import numpy as np
import torch
import torch.nn as nn

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    epochs, batch, lr, validation = 3, 128, 0.05, 5000
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x = torch.tensor(idx(f"{root}/train-images-idx3-ubyte.gz"), dtype=torch.float32).unsqueeze(1) / 255
    y = torch.tensor(idx(f"{root}/train-labels-idx1-ubyte.gz"), dtype=torch.long)
    xt = torch.tensor(idx(f"{root}/t10k-images-idx3-ubyte.gz"), dtype=torch.float32).unsqueeze(1) / 255
    yt = torch.tensor(idx(f"{root}/t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    perm = torch.randperm(len(x))
    x, y = x[perm[validation:]], y[perm[validation:]]
    mean, std = x.mean().item(), x.std().item()
    x, xt = (x - mean) / std, (xt - mean) / std
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
    steps = len(x) // batch
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * s / (epochs * steps))))
    loss_fn = nn.CrossEntropyLoss()
    per_epoch = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for s in range(steps):
            idxs = order[s * batch:(s + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idxs]), y[idxs])
            loss.backward()
            opt.step()
            sched.step()
        seconds = time.perf_counter() - start
        per_epoch.append(seconds)
        print(json.dumps({"epoch": epoch + 1, "seconds": seconds, "images_per_s": steps * batch / seconds}), flush=True)
    model.eval()
    with torch.no_grad():
        correct = sum((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item() for i in range(0, len(xt), 1000))
    print(json.dumps({"torch": torch.__version__, "threads": threads, "test_top1": 100.0 * correct / len(xt),
                      "median_epoch_s": float(np.median(per_epoch))}))

if __name__ == "__main__":
    main()
