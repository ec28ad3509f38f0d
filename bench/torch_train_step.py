#!/usr/bin/python3
"""PyTorch peer of bench/train_step.cpp: the same networks (CIFAR ResNet-20/56 with option-A
shortcuts, VGG-16 with BN and the fc512-BN-ReLU-fc classifier), the same full training step
(forward, cross-entropy with its value read back, backward, SGD momentum 0.9 / weight decay 5e-4)
on random 3x32x32 data already on the device, fp32 with TF32 off, warm-up, median over repeats.
Eager, and torch.compile with --compile. One JSON object per case on stdout.
Usage: torch_train_step.py --device cpu|cuda --models resnet20,resnet56,vgg16 --batches 128,512
                           --steps N --repeats R [--compile] [--threads T]"""
import argparse, json, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - cin) // 2 if stride != 1 or cin != planes else None
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # Option A: subsample and zero-pad the channels on both sides.
        short = x if self.pad is None else F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    def __init__(self, n, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(BasicBlock(cin, planes, stride if i == 0 else 1))
                cin = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def vgg16(classes=10):
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, v, 3, 1, 1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                         nn.Linear(512, classes))


MODELS = {"resnet20": lambda: CifarResNet(3), "resnet56": lambda: CifarResNet(9), "resnet110": lambda: CifarResNet(18),
          "vgg16": vgg16}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name, batch, device, steps, repeats, compile_mode):
    torch.manual_seed(1)
    model = MODELS[name]().to(device).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32, device=device) * 2 - 1
    y = torch.arange(batch, device=device) % 10
    forward = torch.compile(model) if compile_mode else model

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # the trainer reads every step's loss too

    for _ in range(3 if compile_mode else 1):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        times.append((time.perf_counter() - start) / steps)
    seconds = statistics.median(times)
    return {"side": "pytorch-compile" if compile_mode else "pytorch-eager", "model": name, "batch": batch,
            "device": str(device), "ms_per_step": 1e3 * seconds, "images_per_s": batch / seconds, "params": params,
            "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default="resnet20,resnet56,vgg16")
    ap.add_argument("--batches", default="128,512")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (skipped where it fails)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tf32", action="store_true", help="TF32 tensor cores in convolutions and matmuls (else exact fp32)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cudnn.allow_tf32 = a.tf32  # the same precision as ours (--math)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device(a.device)
    for name in a.models.split(","):
        for batch in map(int, a.batches.split(",")):
            print(json.dumps(bench(name, batch, device, a.steps, a.repeats, False)), flush=True)
            if a.compile:
                try:
                    print(json.dumps(bench(name, batch, device, a.steps, a.repeats, True)), flush=True)
                except Exception as e:  # torch.compile needs a working toolchain; say why it is missing
                    print(json.dumps({"side": "pytorch-compile", "model": name, "batch": batch,
                                      "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}), flush=True)


if __name__ == "__main__":
    main()
