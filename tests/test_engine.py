import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from posefix_video.errors import CheckpointError
from posefix_video.train.engine import MetricsLog, TrainingDiverged, fit, load_training_checkpoint, train_one_epoch
from posefix_video.train.losses import conv_l2_penalty
from posefix_video.train.runtime import DistInfo

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Toy(Dataset):
    """Deterministic regression data: y = mean of x per channel (2 numbers per sample)."""

    def __init__(self, n=48):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 2, 6, 6, generator=g)
        self.y = self.x.mean((2, 3)) * 3 + 1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def toy_model(seed=0):
    torch.manual_seed(seed)
    # Dropout makes the run depend on the torch RNG stream, so resume must restore it.
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def prepare(batch, device):
    return batch["x"].to(device), (batch["y"].to(device),)


def criterion(out, y):
    mse = (out - y).pow(2).mean()
    return {"loss": mse, "mse": mse}


def run(out_dir, epochs, resume=False, **kw):
    model = toy_model()
    args = dict(model=model, criterion=criterion, train_set=Toy(), prepare=prepare, out_dir=out_dir, dist_info=CPU,
                epochs=epochs, batch_size=8, lr=1e-2, milestones=(2,), gamma=0.1, seed=7, resume=resume,
                extra_loss=lambda m: conv_l2_penalty(m, 1e-3), log_every=2, config={"note": "test"})
    args.update(kw)
    result = fit(**args)
    return model, result


def test_resume_is_bit_identical(tmp_path):
    torch.use_deterministic_algorithms(True)
    try:
        full, _ = run(tmp_path / "full", epochs=4)
        run(tmp_path / "split", epochs=2)
        first = load_training_checkpoint(tmp_path / "split" / "last.pth")
        assert first["epoch"] == 2 and first["sampler"] == {"seed": 7, "epoch": 2, "world_size": 1}
        resumed, result = run(tmp_path / "split", epochs=4, resume=True)
    finally:
        torch.use_deterministic_algorithms(False)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # the scheduler restarted at the right place: lr x0.1 after milestone 2
    assert [r["lr"] for r in result["epoch_metrics"]] == pytest.approx([1e-3, 1e-3])
    # without restoring state the run would differ: a fresh 2-epoch continuation from scratch is not the same
    ck = load_training_checkpoint(tmp_path / "split" / "last.pth")
    assert set(ck) >= {"model", "optimizer", "scheduler", "epoch", "sampler", "rng", "config", "git_sha"}
    assert ck["epoch"] == 4 and ck["config"] == {"note": "test"}


def test_training_reduces_the_loss_and_logs_jsonl(tmp_path):
    scores = iter([1.0, 3.0, 2.0])
    _, result = run(tmp_path, epochs=3, validate=lambda m, d, e: {"score": next(scores)}, validate_every=1)
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    iters = [r for r in lines if "iter" in r]
    assert iters and all({"loss", "mse", "decay", "lr", "samples_per_s", "data_wait"} <= set(r) for r in iters)
    epochs = [r for r in lines if r.get("phase") == "train_epoch"]
    assert len(epochs) == 3 and epochs[-1]["loss"] < epochs[0]["loss"]
    assert [r["val_score"] for r in epochs] == [1.0, 3.0, 2.0]
    best = load_training_checkpoint(tmp_path / "best.pth")
    assert best["epoch"] == 2 and best["best_score"] == 3.0  # epoch index 1 scored best; "epoch" = next epoch
    assert result["best_score"] == 3.0


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    def bad_criterion(out, y):
        loss = (out - y).pow(2).mean() * float("nan")
        return {"loss": loss}

    with pytest.raises(TrainingDiverged, match="not finite"):
        run(tmp_path, epochs=2, criterion=bad_criterion)
    assert not (tmp_path / "last.pth").exists()  # no checkpoint of broken weights


def test_nan_detected_at_epoch_end_even_between_log_points(tmp_path):
    model = toy_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [{"x": torch.randn(4, 2, 6, 6), "y": torch.full((4, 2), float("inf"))}]
    with pytest.raises(TrainingDiverged, match="epoch 0, iteration 1"):
        train_one_epoch(model, criterion, opt, batches, device=torch.device("cpu"), epoch=0, prepare=prepare,
                        log=MetricsLog(None), log_every=1000)


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(tmp_path, epochs=1, resume=True)
    (tmp_path / "x.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_training_checkpoint(tmp_path / "x.pth")


class FakeCrops(Dataset):
    """Stand-in for posefix_video.train.data: batches in the documented dict layout."""

    def __init__(self, n=8, h=64, w=64):
        g = torch.Generator().manual_seed(0)
        self.image = torch.randint(0, 256, (n, h, w, 3), generator=g, dtype=torch.uint8)
        self.target = torch.rand(n, 17, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
        self.input = self.target + torch.randn(n, 17, 2, generator=g) * 3

    def __len__(self):
        return len(self.image)

    def __getitem__(self, i):
        valid = torch.ones(17, dtype=torch.bool)
        return {"image": self.image[i], "target_keypoints": self.target[i], "target_valid": valid,
                "input_keypoints": self.input[i], "input_valid": valid}


def test_run_training_writes_a_refiner_loadable_checkpoint(tmp_path, monkeypatch):
    from posefix_video.net.checkpoint import model_from_checkpoint
    from posefix_video.train import run as engine
    from posefix_video.train.config import load_train_config

    monkeypatch.setattr(engine, "build_dataset", lambda cfg, split: FakeCrops())
    cfg = load_train_config("configs/tiny_synthetic.yaml", ["model.input_size=[64,64]", "schedule.epochs=2",
                                                             "schedule.milestones=[1]", "data.batch_size=4",
                                                             "data.num_workers=0"])
    result = engine.run_training(cfg, tmp_path)
    assert len(result["epoch_metrics"]) == 2
    assert load_train_config(tmp_path / "config.yaml") == cfg  # the merged config beside the outputs
    model, mcfg = model_from_checkpoint(tmp_path / "last.pth")
    assert mcfg == cfg.model
    rec = result["epoch_metrics"][0]
    assert {"heatmap", "coord", "decay"} <= set(rec) and rec["decay"] > 0
    # init.checkpoint: every weight reused
    from posefix_video.net.model import build_model

    fresh = build_model(cfg.model)
    engine.init_weights(fresh, cfg.model, checkpoint=str(tmp_path / "last.pth"))
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_a_run_failing_on_its_inputs_leaves_no_output(tmp_path):
    from posefix_video.errors import PosefixError
    from posefix_video.train import run as engine
    from posefix_video.train.config import load_train_config

    # missing training data
    cfg = load_train_config("configs/tiny_synthetic.yaml", [f"data.train_ann={tmp_path / 'nope.json'}",
                                                             "model.input_size=[64,64]"])
    with pytest.raises(PosefixError, match="nope.json"):
        engine.run_training(cfg, tmp_path / "run1")
    assert not (tmp_path / "run1").exists()


def test_a_run_failing_on_its_validation_inputs_leaves_no_output(tmp_path, monkeypatch):
    from posefix_video.errors import InputError
    from posefix_video.train import run as engine
    from posefix_video.train.config import load_train_config

    monkeypatch.setattr(engine, "build_dataset", lambda cfg, split: FakeCrops())
    (tmp_path / "gt").mkdir()
    cfg = load_train_config("configs/tiny_synthetic_posetrack.yaml", [
        "model.input_size=[64,64]", f"data.val_ann={tmp_path / 'gt'}", f"data.val_inputs={tmp_path / 'missing'}"])
    with pytest.raises(InputError, match="missing: data.val_inputs"):
        engine.run_training(cfg, tmp_path / "run2")
    assert not (tmp_path / "run2").exists()


def test_train_cli_exits_2_without_output_on_bad_validation_inputs(tmp_path, capsys):
    from pipelines.train import main

    code = main(["--config", "configs/tiny_synthetic_posetrack.yaml", "--out", str(tmp_path / "run"), "--quiet",
                 f"data.train_ann={tmp_path / 'none'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "none" in err
    assert not (tmp_path / "run").exists()
