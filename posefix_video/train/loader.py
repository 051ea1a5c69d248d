"""DataLoader workers for training: fork-server start, single-threaded worker init, a batch timeout that turns a
stalled or dead worker into `DataLoaderStalled`, epoch-carrying batches for persistent workers, and
`guard_loader`, which lets a user error raised inside a worker reach the CLI with its own message."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import BatchSampler, Dataset, Sampler

from posefix_video.errors import PosefixError

logger = logging.getLogger(__name__)




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
