"""ONNX export of the PoseFix network, with its metadata (docs/model.md#onnx-runtime-backend).

The exported graph is the network only: the normalised (B, 3+J, H, W) float32 input -> (B, J, H/4, W/4) heatmap
logits, with a dynamic batch axis. Crops, input heatmaps, the flip test and soft-argmax stay in our code
(refiner.py), so an ONNX Runtime run differs from torch only by float rounding.

The model config, the keypoint layout and the input contract (what the input tensor holds: channel order,
mean/std, heatmap peak) travel in the file's metadata_props (the KEY_* names below, JSON strings), so an .onnx
file is usable on its own (`Refiner.from_onnx`). onnx / onnxscript (torch's exporter) are imported only when
exporting. The runtime side (ONNX Runtime sessions, the export cache) is onnx_backend.py.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from posefix_video.atomic import write_bytes_atomic
from posefix_video.config import ModelConfig, from_dict, to_dict
from posefix_video.errors import CheckpointError, ConfigError, PosefixError
from posefix_video.net.contract import InputContract

DEFAULT_OPSET = 18  # the lowest opset torch's (dynamo) exporter writes natively
EXPORT_VERSION = "1"  # bump when the graph or metadata changes: cached exports of older versions are rebuilt
INPUT_NAME, OUTPUT_NAME = "input", "logits"
KEY_FORMAT = "posefix_video.format"
KEY_VERSION = "posefix_video.export_version"
KEY_CONFIG = "posefix_video.model_config"
KEY_LAYOUT = "posefix_video.layout"
KEY_CONTRACT = "posefix_video.input_contract"
KEY_SHA = "posefix_video.checkpoint_sha256"
FORMAT = "posefix_video.network"
INSTALL_HINT = ("pip install onnxruntime onnx onnxscript (they are dependencies of posefix-video: `bash "
                "scripts/setup.sh` installs them; for the CUDA/TensorRT providers replace onnxruntime by "
                "onnxruntime-gpu)")

class BackendError(PosefixError):
    """A backend that cannot run here (package missing, execution provider absent, option it does not support)."""


def _require_exporter() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter imports it; checked here for a clear message)
    except ImportError as err:
        raise BackendError(f"exporting to ONNX needs the onnx and onnxscript packages ({err}); install them "
                           f"with: {INSTALL_HINT}") from None
    return onnx


# ---------------------------------------------------------------------------------------------------------------
# export


@contextlib.contextmanager
def _quiet_loggers(names: Sequence[str] = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_network(model: torch.nn.Module, cfg: ModelConfig, out: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                   contract: Mapping[str, Any] | None = None, checkpoint_sha256: str | None = None) -> Path:
    """Exports the network to ONNX (dynamic batch, metadata as in the module docstring), checks it with onnx's
    checker and writes it atomically.

    Args:
        model: the network (not modified: a CPU fp32 copy is exported).
        cfg: its ModelConfig.
        out: the .onnx file.
        opset: ONNX opset.
        contract: input contract (plain dict) to record; None records none.
        checkpoint_sha256: the source checkpoint's hash (the cache key).

    Raises:
        BackendError: onnx/onnxscript missing, or the exporter failed (its message included).
    """
    onnx = _require_exporter()
    net = copy.deepcopy(getattr(model, "_orig_mod", model)).float().cpu().eval()
    net = net.to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, net.in_channels, *cfg.input_size)  # (2, 3+J, H, W); batch 2: torch.export specialises 1
    batch = torch.export.Dim("batch", min=1, max=65536)
    # the exporter prints progress on stdout, warns about optional packages (torchvision) and logs each graph
    # pass at INFO: keep the output (and the -v log) to our own messages
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_loggers():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(net, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        opset_version=opset, dynamo=True, verbose=False,
                                        dynamic_shapes=({0: batch},))
        except Exception as err:  # the exporter raises many types; the user needs the reason, not the type
            raise BackendError(f"ONNX export (opset {opset}) failed: {err}") from err
    proto = program.model_proto
    meta = {KEY_FORMAT: FORMAT, KEY_VERSION: EXPORT_VERSION, KEY_CONFIG: json.dumps(to_dict(cfg)),
            KEY_LAYOUT: cfg.layout, KEY_CONTRACT: json.dumps(contract)}
    if checkpoint_sha256:
        meta[KEY_SHA] = checkpoint_sha256
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = ("PoseFix network: input (batch, 3+J, H, W) normalised float32 (see metadata "
                        f"{KEY_CONTRACT}), output (batch, J, H/4, W/4) heatmap logits (softmax over each map)")
    onnx.checker.check_model(proto, full_check=True)
    out = Path(out)
    write_bytes_atomic(out, proto.SerializeToString())
    return out


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                      opset: int = DEFAULT_OPSET) -> Path:
    """Exports one of our checkpoints (config, layout and input contract from the file: its own
    `input_contract`, or ours for files without one, as the Refiner reads them).

    Raises:
        CheckpointError: missing or unusable checkpoint. BackendError: as export_network.
    """
    from posefix_video.net.checkpoint import load_model

    model, cfg, contract = load_model(checkpoint)
    return export_network(model, cfg, out, opset=opset, contract=contract.to_dict(),
                          checkpoint_sha256=sha256_file(checkpoint))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def config_from_metadata(meta: Mapping[str, str], source: str | os.PathLike) -> ModelConfig:
    """The ModelConfig recorded in an exported file's metadata.

    Raises:
        CheckpointError: not one of our exports, or a config that does not parse.
    """
    source = os.fspath(source)
    if meta.get(KEY_FORMAT) != FORMAT or KEY_CONFIG not in meta:
        raise CheckpointError(f"{source}: not a posefix_video ONNX export (no {KEY_CONFIG} metadata); export one "
                              "with `python -m pipelines.export_onnx CHECKPOINT -o model.onnx`")
    try:
        return from_dict(ModelConfig, json.loads(meta[KEY_CONFIG]), source=f"{source}: {KEY_CONFIG}")
    except (ValueError, ConfigError) as err:
        raise CheckpointError(f"{source}: unreadable {KEY_CONFIG} metadata: {err}") from None


def contract_from_metadata(meta: Mapping[str, str], source: str | os.PathLike) -> InputContract:
    """The input contract recorded in an export (ours for the config when none was recorded).

    Raises:
        CheckpointError: a malformed contract.
    """
    cfg = config_from_metadata(meta, source)
    try:
        value = json.loads(meta.get(KEY_CONTRACT, "null"))
    except ValueError:
        raise CheckpointError(f"{os.fspath(source)}: unreadable {KEY_CONTRACT} metadata") from None
    if value is None:
        return InputContract.ours(cfg)
    return InputContract.from_dict(value, source=f"{os.fspath(source)}: {KEY_CONTRACT}")
