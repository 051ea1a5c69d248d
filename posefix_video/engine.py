"""The training engine: `train_one_epoch`, `evaluate`, resumable checkpoints, metrics logging, `fit`.

The loop knows nothing of poses: a `prepare(batch, device) -> (inputs, targets)` callable turns a DataLoader batch
into the network input and the criterion's extra arguments, and `criterion(model(inputs), *targets)` returns a dict
of loss terms with the total under "loss". `run_training` (end of this file) wires the PoseFix model, data and
validation to it; tests drive it with tiny stand-ins.

Distributed training: launched by `torchrun`, every process calls `init_distributed()` (NCCL on GPUs, gloo on CPU);
the model is wrapped in DistributedDataParallel, each process reads its shard through a DistributedSampler seeded
by the run seed and `set_epoch(epoch)`, and only rank 0 logs and writes files. Without torchrun the same code runs
as one process (a DistributedSampler with one replica gives the same order as a single process would).

Checkpoints hold the model (as `checkpoint.py` writes it: loadable by `Refiner.from_checkpoint`), the optimizer,
the scheduler, the next epoch (the sampler position: order is a function of (seed, epoch)), the RNG states
(python, numpy, torch, cuda), the merged config and the git sha. They are written atomically every epoch.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from posefix_video.atomic import atomic_open
from posefix_video.errors import CheckpointError, PosefixError

logger = logging.getLogger(__name__)

Prepare = Callable[[Any, torch.device], tuple[torch.Tensor, tuple]]
Criterion = Callable[..., dict[str, torch.Tensor]]


class TrainingDiverged(PosefixError):
    """The loss became NaN or infinite; the run stops before writing a checkpoint of broken weights."""


# ---------------------------------------------------------------------------------------------------------------
# processes and devices


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank among world_size processes, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Joins the process group when launched by torchrun (WORLD_SIZE > 1), else describes a single process.

    Args:
        device: "auto" (cuda when available), "cuda" or "cpu". Under torchrun with CUDA: cuda:LOCAL_RANK.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise PosefixError("runtime.device is 'cuda' but no CUDA device is available (use runtime.device=cpu)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """RNG states as tensors, tuples and numbers only, so the checkpoint loads with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def git_sha() -> str | None:
    """The commit of the code that trains (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# Dense bf16 tensor-core peaks (FLOP/s) used for the FLOP utilisation; unknown devices report none.
_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None when unknown (CPU, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in _PEAK_BF16.items():
        if key in name:
            return value
    return None


def count_flops(model: nn.Module, example: torch.Tensor) -> float:
    """Forward FLOPs of one sample (FlopCounterMode; multiply-add = 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example[:1])
    model.train(was_training)
    return float(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------------------------
# metrics


class MetricsLog:
    """Console (logging) and JSON-lines metrics of rank 0. Other ranks log nothing."""

    def __init__(self, path: str | os.PathLike | None, *, enabled: bool = True):
        self.path = Path(path) if path is not None and enabled else None
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        parts = []
        for k, v in record.items():
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
        logger.info("  ".join(parts))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(clean) + "\n")


def _all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


# ---------------------------------------------------------------------------------------------------------------
# one epoch, evaluation


def train_one_epoch(model: nn.Module, criterion: Criterion, optimizer: torch.optim.Optimizer, loader: Iterable, *,
                    device: torch.device, epoch: int, prepare: Prepare, log: MetricsLog,
                    autocast_dtype: torch.dtype | None = None,
                    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None, grad_clip: float = 0.0,
                    log_every: int = 50, flops_per_sample: float | None = None,
                    peak: float | None = None, world_size: int = 1) -> dict[str, float]:
    """Trains one pass over `loader`.

    Finiteness is checked where the loss terms are reduced anyway (every `log_every` iterations and at the end of the
    epoch): a per-iteration check would synchronise the device every step. NaN weights never reach a checkpoint
    because the epoch-end check runs before saving.

    Args:
        extra_loss: a term added to the loss, logged as "decay" (the reference's L2 on conv kernels).
        flops_per_sample: forward FLOPs of one sample; with `peak`, FLOP utilisation = 3 x forward (forward +
            backward) x samples/s / peak is logged.
        world_size: processes sharing the global batch (samples/s is reported for all of them).

    Returns:
        Epoch means of every loss term (averaged over processes), samples/s and the data-wait share.

    Raises:
        TrainingDiverged: a loss term is NaN or infinite.
    """
    model.train()
    sums: dict[str, torch.Tensor] = {}
    window: dict[str, torch.Tensor] = {}
    n_iter = n_window = samples_window = samples_epoch = 0
    wait_window = 0.0
    t_epoch = t_window = t_ready = time.perf_counter()

    def reduce_check(acc: dict[str, torch.Tensor], n: int, it: int) -> dict[str, float]:
        names = sorted(acc)
        vec = _all_reduce_mean(torch.stack([acc[k] for k in names]) / max(n, 1)).tolist()
        values = dict(zip(names, vec))
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}, iteration {it}: loss terms {bad} are not finite "
                f"(all terms: {values}); lower optim.lr, check the data, or resume from the last checkpoint")
        return values

    for batch in loader:
        t_got = time.perf_counter()
        wait_window += t_got - t_ready
        inputs, targets = prepare(batch, device)
        bsz = inputs.shape[0]
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = model(inputs)
        terms = criterion(outputs, *targets)
        loss = terms["loss"]
        if extra_loss is not None:
            decay = extra_loss(unwrap(model))
            terms = {**terms, "decay": decay}
            loss = loss + decay
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

        for k, v in terms.items():
            if v.ndim == 0:
                d = v.detach().float()
                sums[k] = sums.get(k, 0) + d
                window[k] = window.get(k, 0) + d
        n_iter += 1
        n_window += 1
        samples_window += bsz
        samples_epoch += bsz
        if n_iter % log_every == 0:
            values = reduce_check(window, n_window, n_iter)  # synchronises the device
            now = time.perf_counter()
            sps = samples_window * world_size / (now - t_window)
            rec = {"epoch": epoch, "iter": n_iter, **values, "lr": optimizer.param_groups[0]["lr"],
                   "samples_per_s": sps, "data_wait": wait_window / (now - t_window)}
            if flops_per_sample and peak:
                rec["flop_util"] = 3 * flops_per_sample * sps / (peak * world_size)
            log.write(rec)
            window, n_window, samples_window, wait_window, t_window = {}, 0, 0, 0.0, now
        t_ready = time.perf_counter()
    if n_iter == 0:
        raise PosefixError(f"epoch {epoch}: the training data gave no batch (fewer samples than one batch?)")
    values = reduce_check(sums, n_iter, n_iter)
    elapsed = time.perf_counter() - t_epoch
    return {**values, "samples_per_s": samples_epoch * world_size / elapsed, "epoch_time_s": elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, criterion: Criterion, loader: Iterable, *, device: torch.device, prepare: Prepare,
             autocast_dtype: torch.dtype | None = None, reduce: bool = True) -> dict[str, float]:
    """Mean loss terms over `loader` in eval mode (BatchNorm running statistics), averaged over processes when
    `reduce` (False when only one process evaluates, as `fit`'s rank-0 validation: a collective would hang)."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    n = 0
    for batch in loader:
        inputs, targets = prepare(batch, device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = model(inputs)
        for k, v in criterion(outputs, *targets).items():
            if v.ndim == 0:
                sums[k] = sums.get(k, 0) + v.float() * inputs.shape[0]
        n += inputs.shape[0]
    names = sorted(sums)
    if not names:
        return {}
    vec = torch.stack([sums[k] for k in names]) / max(n, 1)
    return dict(zip(names, (_all_reduce_mean(vec) if reduce else vec).tolist()))


# ---------------------------------------------------------------------------------------------------------------
# checkpoints


def save_training_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Writes a checkpoint dict atomically (never a truncated file, even on a crash)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_open(path, "wb") as f:
        f.write(buf.getbuffer())


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a checkpoint written by `save_training_checkpoint` (with optimizer and RNG states)."""
    try:
        # everything in our checkpoints is weights_only-safe (tensors, numbers, strings, lists, dicts)
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as e:  # torch raises many kinds on a corrupt file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------------------------
# data loader workers


class DataLoaderStalled(PosefixError):
    """A DataLoader worker gave no batch within the timeout, or died; the run stops instead of hanging."""


# Workers start from a fork server (a clean, single-threaded process that has imported these modules), not by
# fork() of the training process: that process has run thread pools (OpenCV's, used by validation's frame decode;
# torch's; decoder threads), and a child forked while a pool thread holds its lock deadlocks at its first cv2 call
# (cv2.setNumThreads in the dataset). The server is started once per process; each epoch's workers fork from it.
WORKER_START_METHOD = "forkserver"
WORKER_PRELOAD = ("torch", "numpy", "cv2")
# Longest wait for one batch before the run stops: a stalled worker otherwise blocks training forever. Fork-server
# workers are not our children (no SIGCHLD), so a dead worker is also noticed only after this wait; a batch normally
# takes seconds, so 120 s leaves a wide margin for a loaded machine or a cold disk.
WORKER_TIMEOUT_S = 120.0


def _worker_init(worker_id: int) -> None:
    """Single-threaded cv2 and torch in each worker: the workers themselves already occupy the cores."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def worker_loader_options(num_workers: int, dataset: Dataset | None = None, *,
                          start_method: str | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """DataLoader keyword arguments for `num_workers` worker processes (none for 0).

    Args:
        dataset: its module is preloaded in the fork server too, so a worker starts without importing it.
        start_method: default WORKER_START_METHOD, "forkserver" ("spawn" where the platform has no fork server);
            "fork" starts fastest but is unsafe once the training process has run thread pools.
        timeout_s: longest wait for one batch (default WORKER_TIMEOUT_S); `guard_loader` turns the timeout into
            `DataLoaderStalled`.
    """
    if num_workers <= 0:
        return {}
    start_method = start_method or WORKER_START_METHOD
    timeout_s = WORKER_TIMEOUT_S if timeout_s is None else timeout_s
    import multiprocessing

    if start_method not in multiprocessing.get_all_start_methods():
        start_method = "spawn"
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        # '__main__' keeps the default: the server imports the main module as spawn would
        extra = (type(dataset).__module__,) if dataset is not None else ()
        ctx.set_forkserver_preload(["__main__", *WORKER_PRELOAD, *extra])
    return {"multiprocessing_context": ctx, "worker_init_fn": _worker_init, "timeout": timeout_s}


class EpochBatch(list):
    """A batch of dataset indices that carries its epoch (`.epoch`).

    Persistent DataLoader workers hold their own copy of the dataset, which `set_epoch` in the training process
    does not reach; a dataset whose samples depend on the epoch reads it from the batch instead (PoseFixDataset
    does, and says so with `reads_batch_epoch = True`).
    """

    def __init__(self, indices: Iterable[int], epoch: int):
        super().__init__(indices)
        self.epoch = epoch


class EpochBatchSampler(Sampler):
    """Batches of `sampler` (as BatchSampler makes them) tagged with the epoch given to `set_epoch`."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool):
        self.sampler, self.batch_size, self.drop_last, self.epoch = sampler, batch_size, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        for batch in BatchSampler(self.sampler, self.batch_size, self.drop_last):
            yield EpochBatch(batch, self.epoch)

    def __len__(self) -> int:
        return len(BatchSampler(self.sampler, self.batch_size, self.drop_last))


_USER_ERRORS = {"PosefixError", "InputError", "ConfigError", "CheckpointError", "DataLoaderStalled"}


def guard_loader(loader: Iterable, what: str = "training data") -> Iterable:
    """Iterates `loader`, turning a worker timeout or a dead worker into `DataLoaderStalled` (a clear user error),
    and a user error raised in a worker (e.g. a missing image) into a PosefixError with the worker's message."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except RuntimeError as e:
            msg = str(e)
            if "DataLoader timed out" in msg:
                raise DataLoaderStalled(
                    f"{what}: no batch from the DataLoader workers for {getattr(loader, 'timeout', '?')} s (a "
                    f"stalled or deadlocked worker); rerun with --resume, with data.num_workers=0 to rule the "
                    f"workers out") from None
            user_error = re.match(r"Caught (\w+) in DataLoader worker", msg)
            if user_error and user_error.group(1) in _USER_ERRORS:
                # the DataLoader cannot rebuild our errors from a message: report the worker's own message
                last = msg.strip().splitlines()[-1]
                raise PosefixError(last.split(": ", 1)[1] if last.startswith("posefix_video.") else last) from None
            if "DataLoader worker" in msg and ("exited unexpectedly" in msg or "killed by signal" in msg):
                raise DataLoaderStalled(
                    f"{what}: a DataLoader worker died ({msg.splitlines()[0]}); out of memory or of shared memory "
                    f"(/dev/shm)? Lower data.num_workers or data.batch_size, then rerun with --resume") from None
            raise
        yield batch


# ---------------------------------------------------------------------------------------------------------------
# the whole run


def fit(*, model: nn.Module, criterion: Criterion, train_set: Dataset, prepare: Prepare, out_dir: str | os.PathLike,
        dist_info: DistInfo, epochs: int, batch_size: int, lr: float, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8, adam_weight_decay: float = 0.0, milestones: tuple[int, ...] = (), gamma: float = 0.1,
        seed: int = 0, num_workers: int = 0, autocast_dtype: torch.dtype | None = None,
        extra_loss: Callable[[nn.Module], torch.Tensor] | None = None, grad_clip: float = 0.0,
        sync_bn: bool = False, model_entry: Callable[[nn.Module], dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
        validate: Callable[[nn.Module, Path, int], dict[str, float]] | None = None,
        validate_every: int = 0, resume: bool = False, log_every: int = 50, keep_every: int = 0,
        flops_example: torch.Tensor | None = None, collate_fn: Callable | None = None) -> dict[str, Any]:
    """Trains `model` for `epochs` epochs with Adam and a MultiStepLR schedule; checkpoints every epoch.

    Writes under `out_dir` (rank 0): last.pth (every epoch), best.pth (best validation score), epoch_NNN.pth (every
    `keep_every` epochs), metrics.jsonl. `resume=True` continues from out_dir/last.pth exactly: model, optimizer,
    scheduler, epoch (the sampler position) and RNG states are restored, so the result is bit-identical to an
    uninterrupted run on CPU with deterministic algorithms.

    Args:
        model: the network, already on `dist_info.device` and initialised (seeded).
        batch_size: the global batch; each of the world_size processes takes batch_size / world_size.
        adam_weight_decay: torch Adam weight_decay (0 when the decay is an `extra_loss` term instead).
        model_entry: `model -> dict` of checkpoint entries that make the file loadable for inference
            (checkpoint.py's "model" and "model_config"); default {"model": state_dict}.
        config: the merged run config, stored in every checkpoint.
        validate: `(bare model, out_dir, epoch) -> metrics` with a "score" (higher is better), called on rank 0
            after last.pth of that epoch is written; other ranks wait at a barrier.
        flops_example: one network input; with a known GPU peak, FLOP utilisation is logged.

    Returns:
        {"epoch_metrics": [...], "best_score": float | None, "last": Path}.
    """
    out = Path(out_dir)
    device = dist_info.device
    if batch_size % dist_info.world_size:
        raise PosefixError(f"data.batch_size {batch_size} is not divisible by the {dist_info.world_size} processes")
    local_batch = batch_size // dist_info.world_size

    if dist_info.distributed:
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=adam_weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    sampler = DistributedSampler(train_set, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    batches = EpochBatchSampler(sampler, local_batch, drop_last=True)
    # Workers live for the whole run (the dataset is pickled to each once) when the dataset takes the epoch from
    # the batch; a dataset that only has set_epoch gets fresh workers every epoch.
    persistent = num_workers > 0 and (not hasattr(train_set, "set_epoch") or getattr(train_set, "reads_batch_epoch",
                                                                                      False))  # fmt: skip
    loader = DataLoader(train_set, batch_sampler=batches, num_workers=num_workers, pin_memory=device.type == "cuda",
                        collate_fn=collate_fn, persistent_workers=persistent,
                        **worker_loader_options(num_workers, train_set))

    start_epoch, best_score, history = 0, None, []
    last = out / "last.pth"
    if resume:
        if not last.is_file():
            raise CheckpointError(f"{last}: --resume given but there is no checkpoint to resume from")
        state = load_training_checkpoint(last)
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.milestones = Counter(scheduler.milestones)
        start_epoch = int(state["epoch"])
        best_score = state.get("best_score")
        pos = state.get("sampler", {})
        if pos.get("world_size", dist_info.world_size) != dist_info.world_size or pos.get("seed", seed) != seed:
            logger.warning("resuming with a different process count or seed: the sample order differs from the "
                           "uninterrupted run")
        set_rng_state(state["rng"][dist_info.rank] if isinstance(state["rng"], list) else state["rng"])
        logger.info("resumed from %s at epoch %d", last, start_epoch)
    log = MetricsLog(out / "metrics.jsonl", enabled=dist_info.is_main)
    flops = count_flops(unwrap(model), flops_example.to(device)) if flops_example is not None else None
    peak = peak_flops(device)
    sha = git_sha() if dist_info.is_main else None

    for epoch in range(start_epoch, epochs):
        batches.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        stats = train_one_epoch(model, criterion, optimizer, guard_loader(loader), device=device, epoch=epoch,
                                prepare=prepare, log=log, autocast_dtype=autocast_dtype, extra_loss=extra_loss,
                                grad_clip=grad_clip, log_every=log_every, flops_per_sample=flops, peak=peak,
                                world_size=dist_info.world_size)
        lr_used = optimizer.param_groups[0]["lr"]
        scheduler.step()
        record = {"epoch": epoch, "phase": "train_epoch", **stats, "lr": lr_used}

        rng = get_rng_state()
        if dist_info.distributed:  # each rank's RNG streams, so a resumed run continues every one of them
            gathered: list[Any] = [None] * dist_info.world_size
            dist.all_gather_object(gathered, rng)
            rng = gathered
        bare = unwrap(model)
        sched_state = {**scheduler.state_dict(), "milestones": dict(scheduler.milestones)}  # Counter -> dict
        state = {**(model_entry(bare) if model_entry else {"model": bare.state_dict()}),
                 "optimizer": optimizer.state_dict(), "scheduler": sched_state, "epoch": epoch + 1,
                 "sampler": {"seed": seed, "epoch": epoch + 1, "world_size": dist_info.world_size},
                 "rng": rng, "config": config, "git_sha": sha, "best_score": best_score}
        if dist_info.is_main:
            save_training_checkpoint(last, state)
            if keep_every and (epoch + 1) % keep_every == 0:
                save_training_checkpoint(out / f"epoch_{epoch + 1:03d}.pth", state)

        do_val = validate is not None and validate_every > 0 and (
            (epoch + 1) % validate_every == 0 or epoch + 1 == epochs)
        if do_val:
            if dist_info.is_main:
                val = validate(bare, out, epoch)
                record.update({f"val_{k}": v for k, v in val.items()})
                score = val.get("score")
                if score is not None and (best_score is None or score > best_score):
                    best_score = score
                    state["best_score"] = best_score
                    save_training_checkpoint(out / "best.pth", state)
                    save_training_checkpoint(last, state)  # carries best_score across a resume
            if dist_info.distributed:
                dist.barrier()
        log.write(record)
        history.append(record)
    return {"epoch_metrics": history, "best_score": best_score, "last": last}


# ---------------------------------------------------------------------------------------------------------------
# PoseFix wiring: TrainConfig -> model, criterion, data, fit


def posefix_prepare(*, sigma: float, ignored: tuple[int, ...], channels_last: bool) -> Prepare:
    """Batch -> (network input, (target cells, target valid)), built on the device.

    The batch is a dict as the training datasets return it, collated:
        image: (B, H, W, 3) uint8 RGB crops (or (B, 3, H, W));
        target_keypoints: (B, J, 2) ground truth in crop px; target_valid: (B, J) bool;
        input_keypoints: (B, J, 2) synthesised input pose in crop px; input_valid: (B, J) bool.
    Only uint8 crops and small float arrays cross the worker/IPC boundary; normalisation and heatmap rendering
    run on the device (performance.md A5).
    """
    from posefix_video.heatmaps import crop_to_cells, make_network_input

    def prepare(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, tuple]:
        image = batch["image"].to(device, non_blocking=True)
        if image.shape[-1] == 3 and image.shape[1] != 3:
            image = image.permute(0, 3, 1, 2)
        x = make_network_input(image, batch["input_keypoints"].to(device, non_blocking=True),
                               batch["input_valid"].to(device, non_blocking=True), sigma, ignored)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = crop_to_cells(batch["target_keypoints"].to(device, non_blocking=True).float())
        return x, (target, batch["target_valid"].to(device, non_blocking=True))

    return prepare


def init_weights(model: nn.Module, model_cfg: Any, *, imagenet: str = "", checkpoint: str = "") -> str:
    """Initialises `model` from a previous PoseFix checkpoint (every weight reused) or ImageNet weights.

    A COCO checkpoint initialises a PoseTrack model: the layouts differ but every tensor has the same shape (17
    slots), so slots 1-2 (COCO eyes) start as head_bottom/head_top and learn them. Everything else in the model
    config must match.

    Returns:
        What was done, for the log.
    """
    from posefix_video.checkpoint import load_checkpoint
    from posefix_video.weights import load_imagenet_weights

    if checkpoint:
        src_cfg, state, _ = load_checkpoint(checkpoint)
        diffs = [f for f in ("depth", "input_size", "width", "deconv_channels", "num_deconv")
                 if getattr(src_cfg, f) != getattr(model_cfg, f)]
        if diffs:
            what = ", ".join(f"{f} {getattr(src_cfg, f)} vs {getattr(model_cfg, f)}" for f in diffs)
            raise CheckpointError(f"{checkpoint}: init.checkpoint was trained with a different network ({what})")
        model.load_state_dict(state)
        return f"all weights from {checkpoint} (layout {src_cfg.layout} -> {model_cfg.layout})"
    if imagenet:
        loaded = load_imagenet_weights(model, imagenet)
        return f"{len(loaded)} backbone tensors from ImageNet weights {imagenet}"
    return "random initialisation"


def run_training(cfg: Any, out_dir: str | os.PathLike, *, resume: bool = False) -> dict[str, Any]:
    """Runs a TrainConfig end to end (one process, or one of torchrun's processes).

    Writes config.yaml (the merged config), metrics.jsonl, last.pth / best.pth (checkpoint.py format plus the
    training state, loadable by `Refiner.from_checkpoint`). config.yaml is written once the model, the training data
    and the validation inputs are built, so a run that fails on its inputs leaves no output behind.
    """
    from posefix_video.config import dump_config, to_dict
    from posefix_video.keypoints import get_layout
    from posefix_video.losses import PoseFixLoss, conv_l2_penalty
    from posefix_video.model import build_model

    info = init_distributed(cfg.runtime.device)
    out = Path(out_dir)
    if cfg.runtime.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.runtime.seed)

    layout = get_layout(cfg.model.layout)
    model = build_model(cfg.model)
    logger.info("init: %s", init_weights(model, cfg.model, imagenet=cfg.init.imagenet,
                                         checkpoint=cfg.init.checkpoint))
    use_cuda = info.device.type == "cuda"
    channels_last = cfg.runtime.channels_last and use_cuda
    model = model.to(info.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    bf16 = cfg.runtime.precision == "bf16" or (cfg.runtime.precision == "auto" and use_cuda)
    criterion = PoseFixLoss(joint_mask=torch.as_tensor(layout.used_mask)).to(info.device)
    prepare = posefix_prepare(sigma=cfg.model.input_sigma, ignored=tuple(layout.ignored),
                              channels_last=channels_last)
    train_set = build_dataset(cfg, split="train")
    validate = build_validation(cfg, criterion, prepare, info)
    if info.is_main:
        # only now that the data and validation inputs are known to be good: a run that fails on bad input
        # leaves no config.yaml (nor folder) behind that looks like a started run
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    wd, mode = cfg.optim.weight_decay, cfg.optim.weight_decay_mode
    model_cfg = cfg.model

    def model_entry(bare: nn.Module) -> dict[str, Any]:
        # the entries checkpoint.save_checkpoint writes, so Refiner.from_checkpoint reads our training files
        from posefix_video.checkpoint import FORMAT, VERSION
        weights = {k: v.detach().cpu() for k, v in bare.state_dict().items()}
        return {"format": FORMAT, "version": VERSION, "model": weights, "model_config": to_dict(model_cfg),
                "layout": model_cfg.layout}

    h, w = cfg.model.input_size
    example = torch.zeros(1, 3 + layout.num_joints, h, w)
    return fit(model=model, criterion=criterion, train_set=train_set, prepare=prepare, out_dir=out, dist_info=info,
               epochs=cfg.schedule.epochs, batch_size=cfg.data.batch_size, lr=cfg.optim.lr, betas=cfg.optim.betas,
               eps=cfg.optim.eps, adam_weight_decay=wd if mode == "adam" else 0.0,
               milestones=cfg.schedule.milestones, gamma=cfg.schedule.gamma, seed=cfg.runtime.seed,
               num_workers=cfg.data.num_workers, autocast_dtype=torch.bfloat16 if bf16 else None,
               extra_loss=(lambda m: conv_l2_penalty(m, wd)) if mode == "l2_conv" and wd > 0 else None,
               grad_clip=cfg.optim.grad_clip, sync_bn=cfg.runtime.sync_bn, model_entry=model_entry,
               config=to_dict(cfg), validate=validate,
               validate_every=cfg.validation.every, resume=resume, log_every=cfg.runtime.log_every,
               keep_every=cfg.runtime.keep_every, flops_example=example if use_cuda else None)


def build_dataset(cfg: Any, *, split: str) -> Dataset:
    """The COCO / PoseTrack training or validation dataset of `cfg.data` (posefix_video.data)."""
    try:
        from posefix_video import data as data_module
    except ImportError:
        raise PosefixError("posefix_video.data (the training datasets) is not available in this installation; "
                           "training needs it") from None
    builder = getattr(data_module, "build_dataset", None)
    if builder is None:
        raise PosefixError("posefix_video.data has no build_dataset(cfg, split=...) to build the training data from")
    return builder(cfg, split=split)


def build_validation(cfg: Any, criterion: Criterion, prepare: Prepare,
                     info: DistInfo) -> Callable[[nn.Module, Path, int], dict[str, float]] | None:
    """The per-epoch validation callable of `cfg.validation` (None when disabled or without validation data).

    metric "loss": mean validation loss on the val split (score = -loss). "coco_ap" / "posetrack_ap": refine
    data.val_inputs with `Refiner.from_checkpoint(last.pth)` (exactly the inference path) and score them with
    COCO OKS AP / poseval AP Total (validation.py). Validation inputs are checked here, before training starts.
    `fit` calls it on rank 0 only, so it reduces nothing across processes.
    """
    if cfg.validation.every <= 0 or not cfg.data.val_ann:
        return None
    metric = cfg.validation.metric
    if metric == "auto":
        metric = "coco_ap" if cfg.data.kind == "coco" and cfg.model.layout == "coco17" else "posetrack_ap"
    if metric == "loss":
        val_set = build_dataset(cfg, split="val")
        loader = DataLoader(val_set, batch_size=max(1, cfg.data.batch_size // info.world_size),
                            num_workers=cfg.data.num_workers, **worker_loader_options(cfg.data.num_workers, val_set))

        def validate_loss(model: nn.Module, out_dir: Path, epoch: int) -> dict[str, float]:
            terms = evaluate(model, criterion, guard_loader(loader, "validation data"), device=info.device,
                             prepare=prepare, reduce=False)
            return {**terms, "score": -terms["loss"]}

        return validate_loss
    from posefix_video.validation import build_ap_validation

    return build_ap_validation(cfg, metric, info.device)
