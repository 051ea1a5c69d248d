"""The training engine: `train_one_epoch`, `evaluate`, resumable checkpoints, metrics logging, `fit`.

The loop knows nothing of poses: a `prepare(batch, device) -> (inputs, targets)` callable turns a DataLoader batch
into the network input and the criterion's extra arguments, and `criterion(model(inputs), *targets)` returns a dict
of loss terms with the total under "loss". `train/run.py` wires the PoseFix model, data and
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
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from posefix_video.atomic import atomic_open
from posefix_video.errors import CheckpointError, PosefixError
from posefix_video.train.loader import EpochBatchSampler, guard_loader, worker_loader_options
from posefix_video.train.runtime import (
    DistInfo,
    count_flops,
    get_rng_state,
    git_sha,
    peak_flops,
    set_rng_state,
    unwrap,
)

logger = logging.getLogger(__name__)

Prepare = Callable[[Any, torch.device], tuple[torch.Tensor, tuple]]
Criterion = Callable[..., dict[str, torch.Tensor]]




class TrainingDiverged(PosefixError):
    """The loss became NaN or infinite; the run stops before writing a checkpoint of broken weights."""

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
