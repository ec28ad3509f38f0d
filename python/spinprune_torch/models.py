"""spinprune's model zoo in PyTorch, built at the widths a checkpoint records, with module names
equal to spinprune's parameter names (so the checkpoint is the state_dict). Each builder follows
the C++ builder of the same name (nn/models/zoo.cpp) layer by layer; the widths come from the
checkpoint's channel sets, so dense and compacted networks are built by the same code."""
from collections import OrderedDict

import torch
from torch import nn
import torch.nn.functional as F


def _window(size, kernel, stride, padding=0):
    return (size + 2 * padding - kernel) // stride + 1


class ShortcutA(nn.Module):
    """He et al.'s option A: x subsampled by `stride`, its C channels placed at channel offset
    (K - C) / 2 of K, zeros elsewhere (the common reference's F.pad(x[:, :, ::2, ::2], ...))."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x):
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.before, self.after))


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 has `hidden` filters."""

    def __init__(self, in_channels, planes, hidden, stride, shortcut, momentum, eps):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden, eps, momentum)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(hidden, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps, momentum)
        self.relu2 = nn.ReLU()
        if stride == 1 and in_channels == planes:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(in_channels, planes, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, 0, bias=False),
                                          nn.BatchNorm2d(planes, eps, momentum))

    def forward(self, x):
        h = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(h)) + self.shortcut(x))


class Fire(nn.Module):
    """SqueezeNet's fire module: s = relu(squeeze(x)); [relu(expand1x1(s)) ‖ relu(expand3x3(s))]."""

    def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        s = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(s)),
                          self.expand3x3_activation(self.expand3x3(s))], 1)


class _Shape:
    """The activation shape (C, H, W) while a builder appends layers."""

    def __init__(self, c, h, w):
        self.c, self.h, self.w = c, h, w

    def window(self, kernel, stride, padding=0):
        self.h, self.w = _window(self.h, kernel, stride, padding), _window(self.w, kernel, stride, padding)

    def features(self):
        return self.c * self.h * self.w


def _lenet(d, s, sets):
    bn = lambda c: nn.BatchNorm2d(c, d.bn_eps, d.bn_momentum)
    m = OrderedDict()
    for i in (1, 2):
        width = sets[f"conv{i}"]
        m[f"conv{i}"] = nn.Conv2d(s.c, width, 3, 1, 1, bias=False)
        m[f"bn{i}"] = bn(width)
        m[f"relu{i}"] = nn.ReLU()
        m[f"pool{i}"] = nn.MaxPool2d(2, 2)
        s.c = width
        s.window(2, 2)
    m["flatten"] = nn.Flatten()
    m["fc1"] = nn.Linear(s.features(), sets["fc1"])
    m["relu3"] = nn.ReLU()
    m["fc2"] = nn.Linear(sets["fc1"], d.num_classes)
    return m


def _resnet(d, s, sets, blocks, strides, shortcut):
    m = OrderedDict()
    m["conv1"] = nn.Conv2d(s.c, sets["layer1"], 3, 1, 1, bias=False)
    m["bn1"] = nn.BatchNorm2d(sets["layer1"], d.bn_eps, d.bn_momentum)
    m["relu"] = nn.ReLU()
    s.c = sets["layer1"]
    for stage, (n, stride) in enumerate(zip(blocks, strides), start=1):
        # A stage that keeps the previous group's channels (no stride) is the same set.
        planes = sets.get(f"layer{stage}", s.c)
        layer = nn.Sequential()
        for i in range(n):
            block_stride = stride if i == 0 else 1
            layer.add_module(str(i), BasicBlock(s.c, planes, sets[f"layer{stage}.{i}.conv1"], block_stride, shortcut,
                                                d.bn_momentum, d.bn_eps))
            s.c = planes
            s.h, s.w = -(-s.h // block_stride), -(-s.w // block_stride)
        m[f"layer{stage}"] = layer
    m["avgpool"] = nn.AdaptiveAvgPool2d(1)
    m["flatten"] = nn.Flatten()
    m["fc"] = nn.Linear(s.c, d.num_classes)
    return m


_VGG = {"vgg11": [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        "vgg16": [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]}


def _vgg(d, s, sets, cfg):
    features = nn.Sequential()
    for v in cfg:
        index = str(len(features))
        if v == 0:  # a 2x2 max pool, left out when it would shrink a side below 1
            if s.h >= 2 and s.w >= 2:
                features.add_module(index, nn.MaxPool2d(2, 2))
                s.window(2, 2)
            continue
        width = sets[f"features.{index}"]
        features.add_module(index, nn.Conv2d(s.c, width, 3, 1, 1, bias=False))
        features.add_module(str(len(features)), nn.BatchNorm2d(width, d.bn_eps, d.bn_momentum))
        features.add_module(str(len(features)), nn.ReLU())
        s.c = width
    hidden = sets["classifier.0"]
    classifier = nn.Sequential(nn.Linear(s.features(), hidden), nn.BatchNorm1d(hidden, d.bn_eps, d.bn_momentum),
                               nn.ReLU(), nn.Linear(hidden, d.num_classes))
    return OrderedDict([("features", features), ("flatten", nn.Flatten()), ("classifier", classifier)])


def _alexnet(d, s, sets):
    m = OrderedDict()
    m["conv1"] = nn.Conv2d(s.c, sets["conv1"], 5, 1, 2)
    m["relu1"] = nn.ReLU()
    m["pool1"] = nn.MaxPool2d(3, 2)
    m["norm1"] = nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    m["conv2"] = nn.Conv2d(sets["conv1"], sets["conv2"], 5, 1, 2)
    m["relu2"] = nn.ReLU()
    m["norm2"] = nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    m["pool2"] = nn.MaxPool2d(3, 2)
    s.c = sets["conv2"]
    s.window(3, 2)
    s.window(3, 2)
    m["flatten"] = nn.Flatten()
    m["fc1"] = nn.Linear(s.features(), sets["fc1"])
    m["relu3"] = nn.ReLU()
    m["fc2"] = nn.Linear(sets["fc1"], sets["fc2"])
    m["relu4"] = nn.ReLU()
    m["fc3"] = nn.Linear(sets["fc2"], d.num_classes)
    return m


def _squeezenet(d, s, sets):
    features = nn.Sequential()
    features.add_module("0", nn.Conv2d(s.c, sets["features.0"], 3, 1, 1))
    features.add_module("1", nn.ReLU())
    features.add_module("2", nn.MaxPool2d(2, 2))
    c = sets["features.0"]
    for i in range(3, 13):
        if i in (5, 8):
            features.add_module(str(i), nn.MaxPool2d(2, 2))
            continue
        name = f"features.{i}"
        fire = Fire(c, sets[f"{name}.squeeze"], sets[f"{name}.expand1x1"], sets[f"{name}.expand3x3"])
        features.add_module(str(i), fire)
        c = sets[f"{name}.expand1x1"] + sets[f"{name}.expand3x3"]
    classifier = nn.Sequential(nn.Dropout(d.dropout), nn.Conv2d(c, d.num_classes, 1), nn.ReLU(),
                               nn.AdaptiveAvgPool2d(1))
    return OrderedDict([("features", features), ("classifier", classifier), ("flatten", nn.Flatten())])


ARCHITECTURES = ("lenet", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34", "vgg11", "vgg16",
                 "alexnet", "squeezenet")


class SpinpruneNet(nn.Sequential):
    """A network of spinprune's zoo. forward() takes normalised images, as spinprune's models do;
    normalize() maps pixels in [0, 1] to them, with_normalization() is the network on pixels."""

    def __init__(self, description, layers):
        super().__init__(layers)
        self.description = description
        self.architecture = description.architecture
        self.input_shape = tuple(description.input_shape)
        self.num_classes = description.num_classes
        self.weight_masks = {}  # layer name -> 0/1 mask of its weight (weight/kernel pruning)
        # The input normalisation, (1, C, 1, 1); not part of the state_dict (it is metadata there).
        shape = (1, -1, 1, 1)
        if description.mean is not None:
            self.register_buffer("input_mean", torch.tensor(description.mean).view(shape), persistent=False)
            self.register_buffer("input_std", torch.tensor(description.std).view(shape), persistent=False)

    def normalize(self, x):
        """(x - mean) / std per channel, for x (N, C, H, W) of pixels scaled to [0, 1]."""
        if self.description.mean is None:
            return x
        return (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)

    def with_normalization(self):
        """The network on pixels in [0, 1] (what an exported deployment graph should take)."""
        return _Normalized(self)


class _Normalized(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(self.net.normalize(x))


def build(description):
    """The architecture `description` names at its channel-set widths, with fresh weights."""
    d = description
    if d.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{d.architecture}'; known: {', '.join(ARCHITECTURES)}")
    s = _Shape(*d.input_shape)
    sets = d.channel_sets
    try:
        if d.architecture == "lenet":
            layers = _lenet(d, s, sets)
        elif d.architecture in ("resnet20", "resnet32", "resnet56", "resnet110"):
            n = {"resnet20": 3, "resnet32": 5, "resnet56": 9, "resnet110": 18}[d.architecture]
            layers = _resnet(d, s, sets, [n] * 3, [1, 2, 2], d.shortcut)
        elif d.architecture in ("resnet18", "resnet34"):
            blocks = [2, 2, 2, 2] if d.architecture == "resnet18" else [3, 4, 6, 3]
            layers = _resnet(d, s, sets, blocks, [1, 2, 2, 2], "B")
        elif d.architecture in _VGG:
            layers = _vgg(d, s, sets, _VGG[d.architecture])
        elif d.architecture == "alexnet":
            layers = _alexnet(d, s, sets)
        else:
            layers = _squeezenet(d, s, sets)
    except KeyError as e:
        raise ValueError(f"{d.architecture}: the description has no width for channel set {e}") from None
    return SpinpruneNet(d, layers)
