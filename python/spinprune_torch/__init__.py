"""spinprune networks in PyTorch: load(path) rebuilds the network a spinprune checkpoint holds
(dense or compacted, any architecture of the model zoo) with its weights, batch-norm statistics
and input normalisation. Needs only PyTorch and NumPy; `python3 -m spinprune_torch` evaluates a
checkpoint on its test set or exports it to ONNX."""
import torch

from .checkpoint import Checkpoint, CheckpointError, Description, read_checkpoint, read_description
from .models import ARCHITECTURES, SpinpruneNet, build

__all__ = ["load", "keep_masks", "read_checkpoint", "read_description", "build", "Checkpoint", "CheckpointError",
           "Description", "SpinpruneNet", "ARCHITECTURES"]


def load(path, dtype=torch.float32):
    """The network checkpoint `path` holds, in eval mode, as a SpinpruneNet: forward() takes
    normalised images (N, C, H, W); normalize() maps pixels in [0, 1] to them. A weight/kernel
    pruned network's weights are already w ⊙ m; its masks are in model.weight_masks (see
    keep_masks to keep them through fine-tuning)."""
    ck = read_checkpoint(path)
    description = read_description(ck)
    model = build(description).to(dtype)
    state = model.state_dict()
    # PyTorch's BN counts its batches; spinprune's momentum never depends on that count.
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    missing = sorted(expected - ck.tensors.keys())
    if missing:
        raise CheckpointError(f"{path}: {description.architecture} at the recorded widths needs tensors the "
                              f"checkpoint lacks: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    for name in expected:
        value = torch.from_numpy(ck.tensors[name])
        if value.shape != state[name].shape:
            raise CheckpointError(f"{path}: tensor '{name}' has shape {tuple(value.shape)}, "
                                  f"{description.architecture} at the recorded widths expects {tuple(state[name].shape)}")
        state[name] = value.to(dtype)
    model.load_state_dict(state)
    for layer in description.weight_masks:
        model.weight_masks[layer] = torch.from_numpy(ck.tensors[f"{layer}.weight_mask"]).to(dtype)
    return model.eval()


def keep_masks(model):
    """Registers every weight mask with torch.nn.utils.prune, so the pruned weights stay zero
    (and get zero gradients) while the network is fine-tuned in PyTorch."""
    from torch.nn.utils import prune
    for layer, mask in model.weight_masks.items():
        prune.custom_from_mask(model.get_submodule(layer), "weight", mask)
    return model
