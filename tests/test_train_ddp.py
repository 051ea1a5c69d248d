"""Two CPU processes (gloo) with DistributedDataParallel match one process with the same global batch."""

import os
import socket

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset

from posefix_video.train.engine import fit, load_training_checkpoint
from posefix_video.train.runtime import DistInfo, init_distributed

EPOCHS, GLOBAL_BATCH = 2, 8


class Toy(Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(5)
        self.x = torch.randn(n, 2, 5, 5, generator=g)
        self.y = self.x.mean((2, 3)) * 2 - 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def bn_free_model():
    # No BatchNorm: its batch statistics are per process (unless SyncBatchNorm), which would make the two runs
    # differ by design rather than by a bug.
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(36, 2))


def prepare(batch, device):
    return batch["x"].to(device), (batch["y"].to(device),)


def criterion(out, y):
    return {"loss": (out - y).pow(2).mean()}


def train(out_dir, info):
    model = bn_free_model()
    fit(model=model, criterion=criterion, train_set=Toy(), prepare=prepare, out_dir=out_dir, dist_info=info,
        epochs=EPOCHS, batch_size=GLOBAL_BATCH, lr=1e-2, seed=3, log_every=1)
    return model


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    try:
        train(out_dir, info)
    finally:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process(tmp_path):
    single = train(tmp_path / "single", DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = load_training_checkpoint(tmp_path / "ddp" / "last.pth")
    assert ddp["sampler"]["world_size"] == 2 and len(ddp["rng"]) == 2  # every rank's RNG stream is kept
    for k, v in single.state_dict().items():
        # same samples per step, gradients averaged over ranks = the global-batch mean; only float summation order
        # differs
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-5, atol=1e-6)
    # the weights moved: a wrong split (e.g. each rank seeing the whole batch) would still be caught above
    assert not torch.equal(ddp["model"]["3.weight"], bn_free_model().state_dict()["3.weight"])
