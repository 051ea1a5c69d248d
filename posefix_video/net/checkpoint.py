"""Our checkpoint format: one torch file that needs nothing else to be used.

Layout (a dict, `torch.save`d):
    format: "posefix_video"           marks our files
    version: 1
    model: the network's state dict  (required)
    model_config: ModelConfig as a plain dict (required; includes the keypoint layout name)
    layout: the layout name again, readable without parsing the config
    input_contract: the model's input contract (net/contract.py) as a dict; optional: files without it were all
        written by our own training and get InputContract.ours(model_config)
    ...: anything else the caller adds (training: optimizer, scheduler, epoch, train config, ...)

The loader requires only `model` and `model_config`, so training may add keys freely.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import torch

from posefix_video.atomic import write_bytes_atomic
from posefix_video.config import ModelConfig, from_dict, to_dict
from posefix_video.errors import CheckpointError, ConfigError
from posefix_video.net.contract import CONTRACT_KEY, InputContract
from posefix_video.net.model import PoseFixNet, build_model
from posefix_video.net.weights import _names, load_torch_file

FORMAT = "posefix_video"
VERSION = 1
_RESERVED = ("format", "version", "model", "model_config", "layout")


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, cfg: ModelConfig, **extra: Any) -> None:
    """Writes model weights + config (+ `extra` entries) to `path` atomically.

    Args:
        path: output file.
        model: the network (a torch.compile wrapper is unwrapped).
        cfg: the ModelConfig it was built from.
        **extra: more entries (must not reuse the reserved keys format/version/model/model_config/layout);
            `input_contract` may be given as an InputContract (stored as its dict).
    """
    clash = [k for k in extra if k in _RESERVED]
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved")
    if isinstance(extra.get(CONTRACT_KEY), InputContract):
        extra[CONTRACT_KEY].check_model(cfg, os.fspath(path))
        extra[CONTRACT_KEY] = extra[CONTRACT_KEY].to_dict()
    model = getattr(model, "_orig_mod", model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "model": state, "model_config": to_dict(cfg),
               "layout": cfg.layout, **extra}
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Reads a checkpoint on the CPU.

    Returns:
        (model config, model state dict, the whole checkpoint dict).

    Raises:
        CheckpointError: missing, corrupt or foreign file; `model`/`model_config` missing or invalid.
    """
    path = os.fspath(path)
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{path}: not a posefix_video checkpoint (got a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in ("model", "model_config") if k not in ckpt]
    if missing:
        hint = ""
        if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            hint = " (it looks like a bare state dict, e.g. ImageNet weights: use weights.load_imagenet_weights)"
        raise CheckpointError(f"{path}: not a posefix_video checkpoint: missing key(s) {missing}{hint}")
    if not isinstance(ckpt["model_config"], Mapping):
        raise CheckpointError(f"{path}: model_config must be a mapping, got {type(ckpt['model_config']).__name__}")
    try:
        cfg = from_dict(ModelConfig, dict(ckpt["model_config"]), source=f"{path}: model_config")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    state = ckpt["model"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: `model` must be a state dict, got {type(state).__name__}")
    return cfg, dict(state), dict(ckpt)


def checkpoint_contract(ckpt: Mapping[str, Any], cfg: ModelConfig, path: str | os.PathLike) -> InputContract:
    """The input contract of a loaded checkpoint dict: its `input_contract` entry, or ours for older files.

    Raises:
        CheckpointError: a malformed entry, or one that disagrees with the model config.
    """
    if CONTRACT_KEY not in ckpt:
        return InputContract.ours(cfg)
    source = f"{os.fspath(path)}: {CONTRACT_KEY}"
    contract = InputContract.from_dict(ckpt[CONTRACT_KEY], source=source)
    contract.check_model(cfg, os.fspath(path))
    return contract


def load_model(path: str | os.PathLike) -> tuple[PoseFixNet, ModelConfig, InputContract]:
    """The network of a checkpoint (CPU, eval mode), its config and its input contract.

    Raises:
        CheckpointError: as load_checkpoint, a bad `input_contract`, or weights that do not fit the described
            network (names listed).
    """
    cfg, state, ckpt = load_checkpoint(path)
    contract = checkpoint_contract(ckpt, cfg, path)
    return _build_loaded(path, cfg, state), cfg, contract


def model_from_checkpoint(path: str | os.PathLike) -> tuple[PoseFixNet, ModelConfig]:
    """Builds the network described by a checkpoint and loads its weights (CPU, eval mode).

    Use `load_model` to get the input contract too (needed to feed the network anything).

    Raises:
        CheckpointError: as load_model.
    """
    model, cfg, _ = load_model(path)
    return model, cfg


def _build_loaded(path: str | os.PathLike, cfg: ModelConfig, state: dict[str, torch.Tensor]) -> PoseFixNet:
    model = build_model(cfg)
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(ours[k].shape)}" for k, v in state.items()
              if k in ours and isinstance(v, torch.Tensor) and v.shape != ours[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label}: {_names(items)}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if items]
        raise CheckpointError(f"{os.fspath(path)}: weights do not match the model config it embeds: {'; '.join(parts)}")
    model.load_state_dict(state)
    return model.eval()
