"""ImageNet ResNet initialisation from a local torchvision-format state-dict file.

The file is what `torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict(), "resnet50.pth")`
writes on a machine with network access. Every backbone tensor is copied by name with strict key and shape
checks; conv1's 3 RGB input channels go into channels 0-2 of our (3+J)-channel conv1 and the heatmap channels
keep their own initialisation (as the reference's saver); `fc.*` is ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

from posefix_video.errors import CheckpointError
from posefix_video.net.model import PoseFixNet

logger = logging.getLogger(__name__)

_IGNORED_PREFIXES = ("fc.",)
# BatchNorm's step counter: absent from old state dicts and unused in eval, so not required
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def read_state_dict(path: str | os.PathLike, what: str = "weight file") -> dict[str, torch.Tensor]:
    """Loads a file that must hold a mapping of names to tensors (a `module.` prefix from DataParallel is removed).

    Raises:
        CheckpointError: missing/unreadable/corrupt file, or not a state dict.
    """
    path = os.fspath(path)
    obj = load_torch_file(path, what)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(
            f"{path}: not a state dict (expected a mapping of parameter names to tensors, got {type(obj).__name__})"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_torch_file(path: str, what: str) -> object:
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot read {what} (corrupt, or not a PyTorch file): {first}") from None


def load_imagenet_weights(model: PoseFixNet, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> list[str]:
    """Copies an ImageNet ResNet's weights into the backbone of `model` (in place).

    Args:
        model: a PoseFixNet whose depth/width match the ResNet in the file.
        source: path of a torchvision-format ResNet state dict, or the mapping itself.

    Returns:
        The names of the model's tensors that were loaded.

    Raises:
        CheckpointError: the file is unreadable or not a state dict; keys are missing or unexpected; a shape
            differs (each problem named).
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<state dict>"
    state = read_state_dict(source) if isinstance(source, (str, os.PathLike)) else dict(source)
    ours = model.state_dict()
    expected = model.backbone_state_keys()
    given = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
    missing = [k for k in expected if k not in given and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in given if k not in expected]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    mismatched = []
    for k, v in given.items():
        if k not in expected:
            continue
        want = tuple(ours[k].shape)
        if k == "conv1.weight":
            want = (want[0], 3, *want[2:])  # ImageNet conv1 sees RGB only
        if tuple(v.shape) != want:
            mismatched.append(f"{k} is {tuple(v.shape)} in the file, expected {want}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_names(mismatched)}")
    if problems:
        raise CheckpointError(
            f"{name}: not an ImageNet ResNet-{model.depth} state dict for this model: " + "; ".join(problems)
        )
    loaded = []
    with torch.no_grad():
        for k, v in given.items():
            target = ours[k]
            if k == "conv1.weight":
                target[:, :3].copy_(v)  # heatmap channels 3: keep their own init
            else:
                target.copy_(v)
            loaded.append(k)
    logger.info("loaded %d ImageNet tensors from %s", len(loaded), name)
    return loaded


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
