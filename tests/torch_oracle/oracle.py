"""PyTorch as the independent oracle of spinprune's CPU reference (run by tests/test_torch_oracle.cpp).

For every case the C++ test wrote into DIR (manifest.json), this loads the checkpoint through
spinprune_torch.load (so the loader is tested on the same path), recomputes in float64 what
spinprune computed in float32 — eval-mode logits, train-mode logits (batch statistics) and one
training step's gradient of every parameter (mean cross-entropy) — and compares.

Tolerances follow the convention of the suite's whole-network comparisons (CPU vs CUDA, masked vs
compacted): float32 values computed through a chain of n roundings carry relative error at most
gamma(n) = n u / (1 - n u), u = 2^-24, so a result that is a sum of terms errs by at most
gamma(n) Σ|terms|. Here n counts the roundings of the whole computation (forward, and for a
gradient the backward to the parameter and its own reduction, see rounding_chain), and the
float64 reference adds its own gamma at u = 2^-53. Σ|terms| is recomputed in float64 from the
reference's values: a logit's from the classifier's inputs, a gradient's from the layer's input
and output gradient. Logits are checked element by element. Gradients are checked normwise, per
parameter tensor: max |error| <= gamma(n) max Σ|terms|. Element by element would be wrong there:
a training batch norm's backward, dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂)), removes the batch
mean and the x̂ component from its upstream gradient, so an element can be far smaller than its
terms while its error, carried from upstream, is not; the error of a gradient element scales with
the tensor's terms, not with its own. A ReLU input or a max-pool tie within rounding of zero
would flip a kink and change a gradient by far more than that; the check would then fail and
name the parameter.

Writes DIR/results.json (one object per case) and exits 1 if any check failed."""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import spinprune_torch  # noqa: E402
from spinprune_torch import models as zoo  # noqa: E402

U32, U64 = 2.0 ** -24, 2.0 ** -53


def gamma(n, u):
    return n * u / (1.0 - n * u)


def bound_factor(n):
    """Relative error of a chain of n float32 roundings, plus the float64 reference's."""
    return gamma(n, U32) + gamma(n, U64)


def leaves(model):
    return [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]


def rounding_chain(model, x, train):
    """Roundings along the forward and along the backward, as the suite's rounding_chain counts
    them: one per leaf layer (elementwise steps, residual adds), a conv/linear output's fan-in + 1,
    a batch norm's few operations, a global average's H·W + 1, an LRN's 5-term sum and 6 more. The
    backward: a conv/linear input gradient sums out-channels × window, a training batch norm's two
    M-term sums; returns (forward, backward, own) where own maps each parameter to the length of
    its gradient's reduction."""
    record = []
    hooks = [m.register_forward_hook(lambda m, i, o: record.append((m, i[0].shape, o.shape))) for m in leaves(model)]
    model.train(train)
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    forward = backward = 0
    own = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for m, i, o in record:
        forward += 1
        backward += 1
        positions = int(np.prod(o)) // (o[0] * o[1]) if len(o) == 4 else 1
        if isinstance(m, nn.Conv2d):
            forward += (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] + 1
            backward += m.out_channels * m.kernel_size[0] * m.kernel_size[1] + 1
            for p in m.parameters():
                own[names[id(p)]] = o[0] * positions
        elif isinstance(m, nn.Linear):
            forward += m.in_features + 1
            backward += m.out_features + 1
            for p in m.parameters():
                own[names[id(p)]] = o[0]
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            forward += 4
            count = o[0] * (int(np.prod(o[2:])) if len(o) > 2 else 1)
            backward += (2 * count + 8) if train else 4
            for p in m.parameters():
                own[names[id(p)]] = count
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            forward += i[2] * i[3] + 1
            backward += 1
        elif isinstance(m, nn.LocalResponseNorm):
            forward += 5 + 6
            backward += 2 * (5 + 6)
        elif isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            backward += math.ceil(k / s) ** 2  # input gradients where windows overlap
    return forward, backward, own


class Recorder:
    """Inputs and output gradients of every conv / linear / batch norm during one pass."""

    def __init__(self, model):
        self.inputs, self.grads = {}, {}
        self.hooks = []
        for m in leaves(model):
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)):
                self.hooks.append(m.register_forward_hook(lambda m, i, o: self.inputs.__setitem__(m, i[0].detach())))
                self.hooks.append(m.register_full_backward_hook(
                    lambda m, gi, go: self.grads.__setitem__(m, go[0].detach())))

    def remove(self):
        for h in self.hooks:
            h.remove()


def classifier_terms(model, inputs, x):
    """Σ|terms| of every logit: |b| + Σ|w||h| of the last conv/linear (SqueezeNet's 1x1 conv is
    followed by ReLU and the global average: the average of that over positions)."""
    last = [m for m in leaves(model) if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    h = inputs[last].abs()
    if isinstance(last, nn.Linear):
        return h @ last.weight.abs().t() + last.bias.abs()
    return F.conv2d(h, last.weight.abs(), last.bias.abs()).mean((2, 3))


def gradient_terms(model, rec, train):
    """Σ|terms| of every parameter gradient's reduction, by name."""
    names = {id(p): n for n, p in model.named_parameters()}
    terms = {}
    for m, x in rec.inputs.items():
        g = rec.grads[m].abs()
        if isinstance(m, nn.Conv2d):
            terms[names[id(m.weight)]] = torch.nn.grad.conv2d_weight(x.abs(), m.weight.shape, g, m.stride, m.padding,
                                                                     m.dilation, m.groups)
            if m.bias is not None:
                terms[names[id(m.bias)]] = g.sum((0, 2, 3))
        elif isinstance(m, nn.Linear):
            terms[names[id(m.weight)]] = g.t() @ x.abs()
            terms[names[id(m.bias)]] = g.sum(0)
        else:
            dims = (0, 2, 3) if x.dim() == 4 else (0,)
            shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
            if train:
                mean, var = x.mean(dims), x.var(dims, unbiased=False)
            else:
                mean, var = m.running_mean, m.running_var
            xhat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + m.eps)
            terms[names[id(m.weight)]] = (g * xhat.abs()).sum(dims)
            terms[names[id(m.bias)]] = g.sum(dims)
    return terms


def reference(path, x, labels, train, with_grads):
    """float64 logits (and gradients of the mean cross-entropy) of the checkpoint's network,
    with the bounds of float32 results."""
    model = spinprune_torch.load(path, dtype=torch.float64)
    chain_fwd, chain_bwd, own = rounding_chain(spinprune_torch.load(path, dtype=torch.float64), x, train)
    model.train(train)
    rec = Recorder(model)
    model.zero_grad()
    logits = model(x)
    out = {"logits": logits.detach(), "logit_bound": bound_factor(chain_fwd) * classifier_terms(model, rec.inputs, x),
           "chain": chain_fwd}
    if with_grads:
        F.cross_entropy(logits, labels).backward()
        terms = gradient_terms(model, rec, train)
        out["grads"] = {n: p.grad.detach() for n, p in model.named_parameters()}
        out["grad_bounds"] = {n: bound_factor(chain_fwd + chain_bwd + own[n]) * terms[n] for n in out["grads"]}
        out["chain_grad"] = chain_fwd + chain_bwd + max(own.values())
    rec.remove()
    return model, out


def compare(actual, expected, bound, normwise=False):
    """Largest |actual - expected|, its share of the bound (elementwise, or normwise: of the
    largest bound), and whether it is within."""
    diff = (torch.as_tensor(actual, dtype=torch.float64) - expected).abs()
    if normwise:
        bound = bound.max().expand_as(diff)
    ratio = (diff / bound.clamp_min(1e-300)).max().item()
    return diff.max().item(), ratio, bool((diff <= bound).all())


def run_case(directory, case):
    io = spinprune_torch.read_checkpoint(os.path.join(directory, case["io"]))
    x = torch.from_numpy(io.tensors["input"]).double()
    labels = torch.from_numpy(io.tensors["labels"]).long()
    path = os.path.join(directory, case["checkpoint"])
    result = {"case": case["name"], "checks": []}

    def check(what, actual, expected, bound, gradient=False):
        worst, ratio, ok = compare(actual, expected, bound, normwise=gradient)
        entry = {"what": what, "max_abs_diff": worst, "max_bound": bound.max().item(), "worst_ratio": ratio, "ok": ok}
        if gradient:  # relative to the largest gradient, unless it is zero up to rounding (a bias before BN)
            largest = expected.abs().max().item()
            entry["max_rel_diff"] = worst / largest if largest > bound.max().item() else None
        result["checks"].append(entry)
        return entry

    model, ev = reference(path, x, labels, train=False, with_grads=False)
    result["architecture"] = model.architecture
    result["eval_chain"] = ev["chain"]
    for name in case.get("eval_logits", []):  # spinprune's eval-mode logits of this network
        check(f"eval logits ({name})", io.tensors[name], ev["logits"], ev["logit_bound"])
    if case.get("train"):
        _, tr = reference(path, x, labels, train=True, with_grads=True)
        check("train logits", io.tensors["logits_train"], tr["logits"], tr["logit_bound"])
        rel, ratio, ok, worst_param = 0.0, 0.0, True, ""
        for name, g in tr["grads"].items():
            e = check(f"gradient {name}", io.tensors[f"grad.{name}"], g, tr["grad_bounds"][name], gradient=True)
            rel = max(rel, e["max_rel_diff"] or 0.0)
            if e["worst_ratio"] >= ratio:
                ratio, worst_param = e["worst_ratio"], name
            ok = ok and e["ok"]
        result["gradients"] = {"max_rel_diff": rel, "worst_ratio": ratio, "worst_parameter": worst_param,
                               "parameters": len(tr["grads"]), "ok": ok, "chain": tr["chain_grad"]}
        # The oracle's own consistency: the float64 loss equals spinprune's within float32 rounding.
        result["loss"] = {"ours": float(io.metadata["loss"]),
                          "torch": F.cross_entropy(tr["logits"], labels).item()}
    if case.get("weight_masks"):
        masks = model.weight_masks
        ok = sorted(masks) == sorted(case["weight_masks"]) and all(
            bool((model.get_submodule(layer).weight[masks[layer] == 0] == 0).all()) for layer in masks)
        result["checks"].append({"what": "weight masks loaded, pruned weights zero", "ok": ok})
    result["ok"] = all(c["ok"] for c in result["checks"])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with open(os.path.join(args.dir, "manifest.json")) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        try:
            results.append(run_case(args.dir, case))
        except Exception as e:  # recorded as a failed case, with the reason
            results.append({"case": case["name"], "ok": False, "error": f"{type(e).__name__}: {e}"})
        r = results[-1]
        print(f"{r['case']}: {'ok' if r['ok'] else 'FAILED ' + r.get('error', '')}", flush=True)
        for c in r.get("checks", []):
            if not c["ok"]:
                print(f"  {c['what']}: max |diff| {c.get('max_abs_diff')}, worst diff/bound {c.get('worst_ratio')}")
    with open(os.path.join(args.dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
