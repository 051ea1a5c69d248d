"""Configs: frozen dataclasses loaded from YAML, with `key=value` overrides; unknown keys are rejected.

`load_config(Cls, path, overrides)` reads a YAML file into the dataclass `Cls` (nested dataclasses follow the
YAML nesting), applies command-line overrides such as `train.lr=1e-4` or `model.input_size=[384,288]`, and checks
every key and type. `dump_config` writes the merged config, saved beside every output so a run can be repeated.
Only builder functions read configs; classes take explicit keyword arguments.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from posefix_video.atomic import atomic_open
from posefix_video.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """The PoseFix network. Embedded in every checkpoint, so a checkpoint needs nothing else to be used.

    Attributes:
        depth: ResNet depth, one of 18, 34, 50, 101, 152.
        input_size: (height, width) of the person crop in pixels; the paper uses (256, 192) and (384, 288).
        layout: keypoint layout name ("coco17" or "posetrack18").
        width: channels after the stem (64 in every standard ResNet; smaller only for tests and the demo).
        deconv_channels: channels of each of the head's transposed convolutions (256 in the paper).
        num_deconv: number of stride-2 transposed convolutions; 3 gives heatmaps at 1/4 of the input size.
        heatmap_sigma: sigma in crop pixels of the input-pose Gaussians; None means 7 px at 256x192 scaled with
            the crop height (9 px at 384x288, as the reference).
        pose_input: True for PoseFix (image + input-pose heatmaps); False for a top-down estimator (SimpleBaseline:
            image only).
        bn_eps: BatchNorm epsilon (PyTorch's 1e-5; the authors' TF-1 models ran with 1.001e-5).
    """

    depth: int = 50
    input_size: tuple[int, int] = (256, 192)
    layout: str = "coco17"
    width: int = 64
    deconv_channels: int = 256
    num_deconv: int = 3
    heatmap_sigma: float | None = None
    pose_input: bool = True
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.depth not in (18, 34, 50, 101, 152):
            raise ConfigError(f"model.depth must be one of 18, 34, 50, 101, 152, got {self.depth}")
        h, w = self.input_size
        if h <= 0 or w <= 0:
            raise ConfigError(f"model.input_size must be positive (height, width), got {h}x{w}")
        if h % 32 or w % 32:
            raise ConfigError(f"model.input_size must be multiples of 32 (the backbone stride), got {h}x{w}")

    @property
    def input_sigma(self) -> float:
        if self.heatmap_sigma is not None:
            return float(self.heatmap_sigma)
        # The reference uses 7 px at 256x192 and 9 px at 384x288, not proportional to the crop (that would give
        # 10.5 at 384); keep both published points exact and interpolate linearly in the crop height.
        h = self.input_size[0]
        return 7.0 + (h - 256) * (9.0 - 7.0) / (384 - 256)


# ---------------------------------------------------------------------------------------------------------------
# loading, overrides, dumping


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Builds `cls` from a YAML file (optional) and `key=value` overrides.

    Raises:
        ConfigError: unreadable YAML, an unknown key (named with its dotted path and the file), or a value of the
            wrong type.
    """
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{source}: cannot read config: {e.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML: {e}") from None
        if loaded is None:  # an empty file is a mistake (a truncated copy, the wrong file), not "all defaults"
            raise ConfigError(f"{source}: the config file is empty (no keys); give a recipe, e.g. "
                              "configs/tiny_synthetic.yaml")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (for example train.lr=1e-4)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
        source = f"{source} + overrides" if "overrides" not in source else source
    return from_dict(cls, data, source=source)


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<dict>", prefix: str = "") -> T:
    """Builds dataclass `cls` from a mapping, recursing into nested dataclasses; rejects unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown config key {prefix}{unknown[0]!r} (known keys here: {known})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, source, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML/JSON-friendly data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def dump_config(cfg: Any, path: str | os.PathLike) -> None:
    """Writes the merged config as YAML, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{source}: {key}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, source, prefix=f"{key}.")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{source}: {key} must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return [_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-4" as a string
            except ValueError:
                pass
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    if typing.get_origin(tp) is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{source}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
    return value
