"""DataLoader workers in training: same results as one process, no fork deadlock, stalls and deaths are user errors."""

from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from posefix_video.errors import PosefixError
from posefix_video.synthetic.coco_dataset import CocoSettings, write_coco_dataset
from posefix_video.train import loader as engine
from posefix_video.train.config import load_train_config
from posefix_video.train.loader import DataLoaderStalled, guard_loader, worker_loader_options
from posefix_video.train.run import run_training

TIMING_KEYS = {"samples_per_s", "epoch_time_s", "data_wait"}


def losses(path):
    """metrics.jsonl without the timing fields: every loss term of every logged iteration and epoch."""
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def test_workers_train_exactly_as_one_process(tmp_path, monkeypatch):
    ann = write_coco_dataset(tmp_path / "coco", CocoSettings(num_images=8, width=320, height=240, max_persons=3))
    monkeypatch.setattr(engine, "WORKER_TIMEOUT_S", 60.0)  # a deadlocked worker fails the test instead of hanging it
    frame = np.zeros((1080, 1920, 3), np.uint8)
    runs = {}
    for workers in (0, 2):
        # the parent's OpenCV thread pool has just worked (as validation's frame decode does): workers forked from
        # this process could deadlock at their first cv2 call; workers from the fork server cannot
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        cfg = load_train_config("configs/tiny_synthetic.yaml", [
            f"data.train_ann={ann}", f"data.train_images={tmp_path / 'coco' / 'train2017'}", "data.batch_size=4",
            f"data.num_workers={workers}", "schedule.epochs=2", "schedule.milestones=[1]", "runtime.log_every=1"])
        run_training(cfg, tmp_path / f"w{workers}")
        runs[workers] = losses(tmp_path / f"w{workers}" / "metrics.jsonl")
    epochs = [r for r in runs[0] if r.get("phase") == "train_epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert len(runs[0]) > 4  # iteration lines too, so every batch's loss is compared
    # samples are a function of (seed, epoch, batch indices) and the main RNG is drawn alike: bit-identical losses
    assert runs[2] == runs[0]


def test_loader_options():
    assert worker_loader_options(0) == {}
    opts = worker_loader_options(2, timeout_s=7.0)
    assert opts["multiprocessing_context"].get_start_method() == "forkserver"
    assert opts["timeout"] == 7.0
    cv_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    try:
        opts["worker_init_fn"](0)  # single-threaded cv2 and torch
        assert cv2.getNumThreads() == 1 and torch.get_num_threads() == 1
    finally:
        cv2.setNumThreads(cv_threads)
        torch.set_num_threads(torch_threads)


class SlowData(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(30)
        return torch.zeros(1)


class DyingData(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        os._exit(3)


def test_a_stalled_worker_stops_with_a_clear_error():
    loader = DataLoader(SlowData(), batch_size=2, num_workers=1, **worker_loader_options(1, timeout_s=1.0))
    with pytest.raises(DataLoaderStalled, match=r"training data: no batch from the DataLoader workers for 1.0 s"):
        list(guard_loader(loader))


def test_a_dead_worker_stops_with_a_clear_error():
    # fork-server workers are not our children: death is noticed when the batch timeout expires
    loader = DataLoader(DyingData(), batch_size=2, num_workers=1, **worker_loader_options(1, timeout_s=3.0))
    with pytest.raises(PosefixError, match=r"validation data: a DataLoader worker died .*data.num_workers"):
        list(guard_loader(loader, "validation data"))


class MissingImageData(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        from posefix_video.errors import InputError

        raise InputError("/data/coco/000001.jpg", "image missing or not readable", f"person {i}")


def test_a_user_error_in_a_worker_keeps_its_message():
    # the DataLoader cannot rebuild InputError from a message: without the guard this is a RuntimeError traceback
    loader = DataLoader(MissingImageData(), batch_size=2, num_workers=1, **worker_loader_options(1, timeout_s=30.0))
    with pytest.raises(PosefixError) as err:
        list(guard_loader(loader))
    assert str(err.value) == "/data/coco/000001.jpg: person 0: image missing or not readable"
