"""The ONNX Runtime backend of the Refiner (docs/model.md#onnx-runtime-backend): the auto rule, the export cache
and `OnnxRunner`, the network in an InferenceSession (the export itself: onnx_export.py).

Given a torch checkpoint, `OnnxRunner.for_checkpoint` exports on the fly and caches the file keyed by the
checkpoint's sha256: beside the checkpoint when that folder is writable, else in a cache folder. A cache file that
does not load, or belongs to another checkpoint or export version, is rebuilt.

onnxruntime is imported only when used: `import posefix_video` never needs it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posefix_video.errors import CheckpointError, ConfigError
from posefix_video.net.model_store import models_dir
from posefix_video.net.onnx_export import (  # noqa: F401  (re-exported: one import place for callers)
    DEFAULT_OPSET,
    EXPORT_VERSION,
    INPUT_NAME,
    INSTALL_HINT,
    KEY_CONFIG,
    KEY_CONTRACT,
    KEY_LAYOUT,
    KEY_SHA,
    KEY_VERSION,
    OUTPUT_NAME,
    BackendError,
    config_from_metadata,
    contract_from_metadata,
    export_checkpoint,
    export_network,
    sha256_file,
)

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "auto")
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}
PROVIDERS_ENV = "POSEFIX_ORT_PROVIDERS"


# ---------------------------------------------------------------------------------------------------------------
# availability and the auto rule


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # sys.modules[name] is None: the import was blocked
        return False


def onnxruntime_available() -> bool:
    """True when onnxruntime and the exporter (onnx, onnxscript) are installed (checked without importing them)."""
    return all(_installed(m) for m in ("onnxruntime", "onnx", "onnxscript"))


def require_onnxruntime() -> Any:
    """The onnxruntime module, or a BackendError naming the install command."""
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError(f"the onnxruntime backend needs the onnxruntime package, which cannot be imported "
                           f"({err}); install it with: {INSTALL_HINT}") from None
    return onnxruntime


def _device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda when a GPU is visible, else cpu."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if str(device) == "auto" else device)


def resolve_backend(backend: str, device: str | torch.device, precision: str = "auto") -> str:
    """"torch" or "onnxruntime" for a requested backend.

    auto: ONNX Runtime on a CPU device when it is installed (1.6-7x torch eager there, docs/benchmarks.md), torch on
    CUDA (bf16 autocast, channels_last, torch.compile) and whenever bf16 was asked for (the export is fp32).

    Raises:
        ConfigError: an unknown backend, or bf16 with the onnxruntime backend.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = _device(device)
    if backend == "auto":
        if device.type == "cpu" and precision in ("auto", "fp32") and onnxruntime_available():
            return "onnxruntime"
        return "torch"
    if backend == "onnxruntime" and precision == "bf16":
        raise ConfigError("the onnxruntime backend runs the fp32 export; use --precision fp32/auto or --backend torch")
    return backend


def verify_export(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike, *, batch: int = 2,
                  seed: int = 0) -> float:
    """Max |logit difference| between ONNX Runtime on `onnx_path` and torch on `checkpoint`, on random input.

    Raises:
        BackendError: a difference over 1e-3 of the logits' range (a broken export, not float rounding).
    """
    from posefix_video.net.checkpoint import load_model

    model, cfg, _ = load_model(checkpoint)
    x = torch.randn(batch, model.in_channels, *cfg.input_size, generator=torch.Generator().manual_seed(seed))
    runner = OnnxRunner.from_file(onnx_path, device="cpu", batch_size=batch)
    with torch.inference_mode():
        ref, got = model(x), runner(x)
    diff = float((ref - got).abs().max())
    if not diff <= 1e-3 * max(1.0, float(ref.abs().max())):
        raise BackendError(f"{os.fspath(onnx_path)}: ONNX Runtime's logits differ from torch's by {diff:.3g}")
    return diff


# ---------------------------------------------------------------------------------------------------------------
# cache


def cache_folders(checkpoint: str | os.PathLike) -> list[Path]:
    """Where an on-the-fly export of `checkpoint` may live, in order: beside the checkpoint (installed models: the
    models folder), then $POSEFIX_HOME/onnx-cache (POSEFIX_HOME: see model_store.models_dir)."""
    return [Path(checkpoint).resolve().parent, models_dir().parent / "onnx-cache"]


def _writable(folder: Path) -> bool:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def cached_export_name(checkpoint: str | os.PathLike, sha: str) -> str:
    return f"{Path(checkpoint).stem}.{sha[:16]}.onnx"


# ---------------------------------------------------------------------------------------------------------------
# the runner


def _providers(device: torch.device, requested: Sequence[str] | None, available: Sequence[str],
               cache_dir: Path | None) -> list[Any]:
    """ORT providers for `device`: requested names (aliases cpu/cuda/tensorrt allowed, or $POSEFIX_ORT_PROVIDERS),
    else CUDA (+ CPU fallback) on a CUDA device and CPU on the CPU."""
    if requested is None and os.environ.get(PROVIDERS_ENV):
        requested = [p.strip() for p in os.environ[PROVIDERS_ENV].split(",") if p.strip()]
    if requested is None:
        requested = ["cuda", "cpu"] if device.type == "cuda" else ["cpu"]
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
    missing = [n for n in names if n not in available]
    if missing:
        raise BackendError(f"ONNX Runtime execution provider(s) {', '.join(missing)} not available here (this "
                           f"onnxruntime has {', '.join(available)}); for CUDA/TensorRT install onnxruntime-gpu "
                           "in place of onnxruntime")
    gpu = [n for n in names if n in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    if gpu and device.type != "cuda":
        raise BackendError(f"execution provider {gpu[0]} needs a CUDA device; got device {device}")
    if device.type == "cuda" and not gpu:
        raise BackendError(f"device {device} needs the CUDA or TensorRT execution provider; got {', '.join(names)}")
    index = device.index or 0
    out: list[Any] = []
    for n in names:
        if n == "CUDAExecutionProvider":
            out.append((n, {"device_id": index}))
        elif n == "TensorrtExecutionProvider":  # engines are built on first use (minutes): keep them on disk
            opts = {"device_id": index, "trt_engine_cache_enable": True}
            if cache_dir is not None:
                opts["trt_engine_cache_path"] = str(cache_dir)
            out.append((n, opts))
        else:
            out.append(n)
    return out


def default_threads() -> int:
    """Cores this process may run on (os.sched_getaffinity: respects taskset and container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxRunner:
    """The network through an ONNX Runtime InferenceSession: (B, 3+J, H, W) float tensor -> (B, J, h, w) float32
    logits on the input's device. It is the `runner` a Refiner takes in place of a torch model.

    Batches are padded with zeros to a power of two (at most `batch_size`), and larger ones are split: the session
    then sees at most log2(batch_size) + 1 shapes, and ORT keeps one memory plan per shape instead of re-planning
    for every new batch size. Padding wastes under 2x on the last, partial batch only.

    Args:
        session: an onnxruntime.InferenceSession of one of our exports.
        batch_size: largest batch one run gets.
        device: where inputs come from and outputs go (CPU, or CUDA with the CUDA/TensorRT provider).
        meta: the export's metadata (custom_metadata_map).
        path: the .onnx file (for messages).
    """

    backend = "onnxruntime"

    def __init__(self, *, session: Any, batch_size: int, device: torch.device, meta: Mapping[str, str],
                 path: Path | None = None):
        self.session = session
        self.batch_size = int(batch_size)
        self.device = _device(device)
        self.meta = dict(meta)
        self.path = path
        self.providers = session.get_providers()
        out_shape = session.get_outputs()[0].shape  # ['batch', J, h, w]
        self._out_chw = tuple(int(d) for d in out_shape[1:])

    def __repr__(self) -> str:
        return f"OnnxRunner({self.path}, providers={self.providers}, batch_size={self.batch_size})"

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu", batch_size: int = 64,
                  providers: Sequence[str] | None = None, threads: int | None = None) -> OnnxRunner:
        """A runner on an .onnx file.

        Raises:
            BackendError: onnxruntime missing, provider absent. CheckpointError: a file ORT cannot load.
        """
        ort = require_onnxruntime()
        path = Path(path)
        device = _device(device)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or default_threads()
        so.inter_op_num_threads = 1  # one graph branch: parallelism is inside the convolutions
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only
        # idle pool threads sleep instead of spinning: on a shared CPU, and beside refine_video's decode thread and
        # torch's crop/heatmap ops, spinning costs more than it saves (measured here: R-50 network +11 %,
        # refine_video end to end +20 %)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_list = _providers(device, providers, ort.get_available_providers(), path.parent)
        try:
            session = ort.InferenceSession(os.fspath(path), sess_options=so, providers=provider_list)
        except Exception as err:  # ORT raises its own exception types for unreadable/invalid files
            raise CheckpointError(f"{os.fspath(path)}: ONNX Runtime cannot load it: {err}") from None
        return cls(session=session, batch_size=batch_size, device=device,
                   meta=session.get_modelmeta().custom_metadata_map, path=path)

    @classmethod
    def for_checkpoint(cls, checkpoint: str | os.PathLike, *, device: str | torch.device = "cpu",
                       batch_size: int = 64, providers: Sequence[str] | None = None, threads: int | None = None,
                       folders: Sequence[Path] | None = None) -> OnnxRunner:
        """A runner on the cached export of a torch checkpoint, exporting it first when there is none (or the
        cached file is corrupt or stale).

        Args:
            checkpoint: one of our checkpoints.
            folders: cache folders to use instead of `cache_folders(checkpoint)`.
        """
        require_onnxruntime()
        sha = sha256_file(checkpoint)
        name = cached_export_name(checkpoint, sha)
        folders = list(folders) if folders is not None else cache_folders(checkpoint)
        for folder in folders:
            path = folder / name
            if not path.is_file():
                continue
            try:
                runner = cls.from_file(path, device=device, batch_size=batch_size, providers=providers,
                                       threads=threads)
            except CheckpointError as err:
                logger.warning("%s; exporting it again", err)
                break
            if runner.meta.get(KEY_SHA) == sha and runner.meta.get(KEY_VERSION) == EXPORT_VERSION:
                return runner
            logger.warning("%s: a stale export (another checkpoint or export version); exporting it again", path)
            break
        target = next((f / name for f in folders if _writable(f)), None)
        if target is None:
            raise BackendError(f"no writable folder for the ONNX export of {os.fspath(checkpoint)} (tried "
                               f"{', '.join(map(str, folders))}); export it with `python -m pipelines.export_onnx` "
                               "and pass the .onnx file as the checkpoint")
        logger.info("exporting %s to %s (once per checkpoint)", checkpoint, target)
        from posefix_video.net.checkpoint import load_model

        model, cfg, contract = load_model(checkpoint)
        export_network(model, cfg, target, contract=contract.to_dict(), checkpoint_sha256=sha)
        return cls.from_file(target, device=device, batch_size=batch_size, providers=providers, threads=threads)

    def _bucket(self, n: int) -> int:
        return min(self.batch_size, 1 << max(0, n - 1).bit_length())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3+J, H, W) -> (B, J, h, w) float32 logits on x.device."""
        outs = []
        for s in range(0, x.shape[0], self.batch_size):
            part = x[s:s + self.batch_size].float()
            n = part.shape[0]
            size = self._bucket(n)
            if size > n:
                part = torch.cat([part, part.new_zeros(size - n, *part.shape[1:])])
            outs.append(self._run(part.contiguous())[:n])
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cuda":
            out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().numpy()})[0]
            return torch.from_numpy(out)
        # CUDA/TensorRT providers: bind torch's device buffers, no copy through the host
        out = torch.empty((x.shape[0], *self._out_chw), dtype=torch.float32, device=x.device)
        binding = self.session.io_binding()
        index = x.device.index or 0
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.synchronize(x.device)  # ORT runs on its own stream: x must be complete
        self.session.run_with_iobinding(binding)
        return out
