"""posefix_video: refine human poses in video with PoseFix, from any tracker's output.

The public API, importable from the package top:

    from posefix_video import Refiner, refine_video, read_tracks, write_posetrack18, evaluate_posetrack_dirs

Names are resolved lazily (PEP 562): `import posefix_video` or `import posefix_video.io` does not import torch;
only the first use of a name that needs it does. docs/architecture.md maps the packages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "Refiner": "posefix_video.net.refiner",
    "RefineResult": "posefix_video.net.refiner",
    "Safeguard": "posefix_video.net.safeguard",
    "TopDownEstimator": "posefix_video.net.topdown",
    "load_initializer": "posefix_video.video.initial_poses",
    "convert_posefix_tf": "posefix_video.net.posefix_tf",
    "read_tf_checkpoint": "posefix_video.net.tf_checkpoint",
    "list_models": "posefix_video.net.model_store",
    "install_model": "posefix_video.net.model_store",
    "refine_video": "posefix_video.video.refine_video",
    "refine_coco": "posefix_video.video.refine_images",
    "InputContract": "posefix_video.net.contract",
    "load_model": "posefix_video.net.checkpoint",
    "Summary": "posefix_video.video.refine_video",
    "read_tracks": "posefix_video.io",
    "write_posetrack18": "posefix_video.io",
    "write_coco_results": "posefix_video.io",
    "evaluate_posetrack": "posefix_video.eval",
    "evaluate_posetrack_dirs": "posefix_video.eval",
    "evaluate_coco": "posefix_video.eval.coco",
    "PersonRecord": "posefix_video.records",
    "PoseSequence": "posefix_video.records",
    "PosefixError": "posefix_video.errors",
    "InputError": "posefix_video.errors",
    "CheckpointError": "posefix_video.errors",
}

__all__ = [  # noqa: RUF022 (kept as _API lists them)
    "Refiner",
    "RefineResult",
    "Safeguard",
    "TopDownEstimator",
    "load_initializer",
    "convert_posefix_tf",
    "read_tf_checkpoint",
    "list_models",
    "install_model",
    "refine_video",
    "refine_coco",
    "InputContract",
    "load_model",
    "Summary",
    "read_tracks",
    "write_posetrack18",
    "write_coco_results",
    "evaluate_posetrack",
    "evaluate_posetrack_dirs",
    "evaluate_coco",
    "PersonRecord",
    "PoseSequence",
    "PosefixError",
    "InputError",
    "CheckpointError",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from posefix_video.errors import CheckpointError, InputError, PosefixError
    from posefix_video.eval import evaluate_posetrack, evaluate_posetrack_dirs
    from posefix_video.eval.coco import evaluate_coco
    from posefix_video.io import read_tracks, write_coco_results, write_posetrack18
    from posefix_video.net.checkpoint import load_model
    from posefix_video.net.contract import InputContract
    from posefix_video.net.model_store import install_model, list_models
    from posefix_video.net.posefix_tf import convert_posefix_tf
    from posefix_video.net.refiner import Refiner, RefineResult
    from posefix_video.net.tf_checkpoint import read_tf_checkpoint
    from posefix_video.net.topdown import TopDownEstimator
    from posefix_video.records import PersonRecord, PoseSequence
    from posefix_video.video.initial_poses import load_initializer
    from posefix_video.video.refine_images import refine_coco
    from posefix_video.video.refine_video import Summary, refine_video


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'posefix_video' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
