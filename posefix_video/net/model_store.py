"""The models folder: imported or trained checkpoints installed under a name, and the default model of a layout.

    $POSEFIX_HOME/models/<name>.pth     the checkpoint (our format, net/checkpoint.py)
    $POSEFIX_HOME/models/<name>.json    its summary for listing (layout, input size, depth, contract, source)

POSEFIX_HOME defaults to ~/.cache/posefix-video. Everything that takes `--checkpoint` accepts a file path or an
installed name (`resolve_checkpoint`); refine_video without a checkpoint takes `default_model(layout)`:

    1. the suggested name of the layout if installed (posefix-coco-r152-384x288, posefix-pt18-r152-384x288);
    2. else the installed model of that layout with the largest (depth, input area), ties by name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posefix_video.atomic import atomic_open, write_json_atomic
from posefix_video.config import ModelConfig, to_dict
from posefix_video.errors import CheckpointError
from posefix_video.net.checkpoint import checkpoint_contract, load_checkpoint, save_checkpoint
from posefix_video.net.contract import CONTRACT_KEY, InputContract

SUGGESTED = {"coco17": "posefix-coco-r152-384x288", "posetrack18": "posefix-pt18-r152-384x288"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SUFFIX = ".pth"

INSTALL_STEPS = """\
  1. download the authors' trained model (zip of a TensorFlow checkpoint), linked from the README of
     mks0601/PoseFix_RELEASE: {model} (ResNet-152, 384x288), and unzip it;
  2. python -m pipelines.import_weights posefix-tf UNZIPPED_FOLDER --dataset {dataset} --input-size 384x288 \
--name {name}
(or pass --checkpoint FILE.pth / NAME; docs/importing.md)"""
_AUTHORS = {"coco17": ("PoseFix_coco2017_resnet152_384x288", "coco"),
            "posetrack18": ("PoseFix_posetrack2018_resnet152_384x288", "posetrack")}


def models_dir() -> Path:
    """$POSEFIX_HOME/models (POSEFIX_HOME defaults to ~/.cache/posefix-video)."""
    home = os.environ.get("POSEFIX_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "posefix-video")
    return Path(home) / "models"


def check_name(name: str) -> str:
    """A model name: letters, digits, '.', '_', '-' (no path separators), at most 100 characters."""
    if not _NAME_RE.match(name) or name.endswith(SUFFIX):
        raise CheckpointError(f"model name {name!r}: use letters, digits, '.', '_' and '-' only (no folders, no "
                              f"{SUFFIX} suffix), e.g. {SUGGESTED['coco17']}")
    return name


def model_path(name: str) -> Path:
    return models_dir() / f"{check_name(name)}{SUFFIX}"


@dataclass(frozen=True)
class ModelInfo:
    """One installed model, as `pipelines.models` lists it."""

    name: str
    path: Path
    layout: str
    input_size: tuple[int, int]
    depth: int
    contract: str  # InputContract.describe()
    source: dict[str, Any]
    pose_input: bool = True  # a PoseFix refiner; False: a top-down estimator (SimpleBaseline), never a default refiner

    def line(self) -> str:
        origin = self.source.get("authors_model") or self.source.get("path") or self.source.get("kind") or "-"
        kind = "PoseFix" if self.pose_input else "top-down estimator"
        return (f"{self.name}: {kind}, {self.layout}, ResNet-{self.depth}, {self.input_size[0]}x{self.input_size[1]}, "
                f"from {origin}\n    contract: {self.contract}\n    file: {self.path}")


def _summary(name: str, path: Path, cfg: ModelConfig, contract: InputContract, source: dict[str, Any]) -> dict:
    return {"name": name, "file": path.name, "layout": cfg.layout, "input_size": list(cfg.input_size),
            "depth": cfg.depth, "model_config": to_dict(cfg), CONTRACT_KEY: contract.to_dict(),
            "contract": contract.describe(), "source": source}


def _info(summary: dict, path: Path) -> ModelInfo:
    return ModelInfo(name=summary["name"], path=path, layout=summary["layout"],
                     input_size=tuple(summary["input_size"]), depth=int(summary["depth"]),
                     contract=summary["contract"], source=dict(summary.get("source") or {}),
                     pose_input=bool((summary.get("model_config") or {}).get("pose_input", True)))


def describe_checkpoint(path: Path, name: str) -> dict:
    """The summary of a checkpoint file (reads the whole file)."""
    cfg, _, ckpt = load_checkpoint(path)
    contract = checkpoint_contract(ckpt, cfg, path)
    source = ckpt.get("source") if isinstance(ckpt.get("source"), dict) else {"kind": "posefix_video checkpoint"}
    return _summary(name, path, cfg, contract, source)


def free_path(name: str, force: bool = False) -> Path:
    """The file of model `name`; CheckpointError when it is installed already (unless `force`)."""
    path = model_path(name)
    if path.exists() and not force:
        raise CheckpointError(f"a model named {name!r} is installed already ({path}); choose another name, or "
                              "pass --force to replace it")
    return path


def install_model(checkpoint_path: str | os.PathLike, name: str, *, force: bool = False) -> Path:
    """Copies one of our checkpoint files into the models folder under `name` (checked to load first).

    Raises:
        CheckpointError: not a loadable checkpoint, a bad name, or the name is taken (without `force`).
    """
    src = Path(checkpoint_path)
    dst = free_path(name, force)
    summary = describe_checkpoint(src, name)
    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 16 << 20)
    write_json_atomic(dst.with_suffix(".json"), summary, indent=1)
    return dst


def save_model(model: Any, cfg: ModelConfig, contract: InputContract, source: dict[str, Any], *,
               out: str | os.PathLike | None = None, name: str | None = None, force: bool = False) -> list[Path]:
    """Writes a converted model as our checkpoint to `out` and/or installs it under `name` (importers call this).

    Returns the files written. Nothing is written when the name is taken (without `force`).
    """
    if out is None and name is None:
        raise CheckpointError("nowhere to write the model: give an output file (-o) and/or a name (--name)")
    dst = free_path(name, force) if name is not None else None
    written = []
    if out is not None:
        save_checkpoint(out, model, cfg, input_contract=contract, source=source)
        written.append(Path(out))
    if dst is not None:
        if out is not None:
            with open(out, "rb") as fin, atomic_open(dst, "wb") as fout:
                shutil.copyfileobj(fin, fout, 16 << 20)
        else:
            save_checkpoint(dst, model, cfg, input_contract=contract, source=source)
        write_json_atomic(dst.with_suffix(".json"), _summary(name, dst, cfg, contract, source), indent=1)
        written.append(dst)
    return written


def list_models() -> list[ModelInfo]:
    """Installed models, sorted by name. A .pth without its summary (copied in by hand) is read to describe it;
    one that cannot be read is left out with nothing raised (`pipelines.models` names it)."""
    folder = models_dir()
    infos = []
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        name = path.name[:-len(SUFFIX)]
        try:
            summary = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            infos.append(_info(summary, path))
            continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            infos.append(_info(describe_checkpoint(path, name), path))
        except CheckpointError:
            continue
    return infos


def unreadable_models() -> list[Path]:
    """Files of the models folder that `list_models` could not describe."""
    listed = {i.path for i in list_models()}
    folder = models_dir()
    return [p for p in sorted(folder.glob(f"*{SUFFIX}")) if p not in listed] if folder.is_dir() else []


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint file: the path itself if it exists, else the installed model of that name.

    Raises:
        CheckpointError: neither a file nor an installed name (the installed names and how to install are listed).
    """
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.is_dir():
        raise CheckpointError(f"{p}: a folder, not a checkpoint file")
    text = os.fspath(name_or_path)
    if _NAME_RE.match(text) and not text.endswith(SUFFIX) and model_path(text).is_file():
        return model_path(text)
    names = [i.name for i in list_models()]
    installed = f"installed models ({models_dir()}): {', '.join(names)}" if names else \
        f"no model is installed in {models_dir()}"
    raise CheckpointError(f"{text}: no such checkpoint file or installed model name; {installed}. Install one with "
                          "python -m pipelines.import_weights ... --name NAME (docs/importing.md)")


def default_model(layout: str) -> Path | None:
    """The installed PoseFix model that refines `layout` poses (rule in the module docstring); None when there is
    none. Top-down estimators (SimpleBaseline) are never a default refiner."""
    fits = [i for i in list_models() if i.layout == layout and i.pose_input]
    if not fits:
        return None
    for i in fits:
        if i.name == SUGGESTED.get(layout):
            return i.path
    best = min(fits, key=lambda i: (-i.depth, -i.input_size[0] * i.input_size[1], i.name))
    return best.path


def install_hint(layout: str) -> str:
    """The two steps that install a model for `layout`."""
    model, dataset = _AUTHORS.get(layout, _AUTHORS["coco17"])
    return INSTALL_STEPS.format(model=model, dataset=dataset, name=SUGGESTED.get(layout, SUGGESTED["coco17"]))


def resolve_model(checkpoint: str | os.PathLike | None, layout: str) -> Path:
    """The checkpoint to refine `layout` poses with: `checkpoint` (path or name) when given, else the default.

    Raises:
        CheckpointError: an unknown path/name, or no checkpoint given and none installed for `layout` (the message
            says how to install one).
    """
    if checkpoint is not None:
        return resolve_checkpoint(checkpoint)
    found = default_model(layout)
    if found is None:
        raise CheckpointError(f"no --checkpoint given and no {layout} model is installed in {models_dir()}. "
                              f"Install the authors' model in two steps:\n{install_hint(layout)}")
    return found
