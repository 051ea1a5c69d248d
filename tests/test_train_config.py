import subprocess
import sys
from pathlib import Path

import pytest

from posefix_video.config import dump_config
from posefix_video.errors import ConfigError
from posefix_video.train.config import TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[1]


def test_paper_recipes_load_with_the_published_values():
    r152 = load_train_config(REPO / "configs" / "coco_r152_384x288.yaml")
    assert (r152.model.depth, r152.model.input_size, r152.model.layout) == (152, (384, 288), "coco17")
    assert (r152.optim.lr, r152.optim.weight_decay, r152.data.batch_size) == (5e-4, 1e-5, 32)
    assert (r152.schedule.epochs, r152.schedule.milestones, r152.schedule.gamma) == (140, (90, 120), 0.1)
    r50 = load_train_config(REPO / "configs" / "coco_r50_256x192.yaml")
    assert (r50.model.depth, r50.model.input_size) == (50, (256, 192))
    pt = load_train_config(REPO / "configs" / "posetrack18_r152_384x288.yaml")
    assert pt.model.layout == "posetrack18" and pt.init.checkpoint.endswith(".pth")
    assert (pt.optim.lr, pt.schedule.epochs, pt.schedule.milestones) == (1e-4, 20, (10, 15))


def test_every_config_in_the_repo_loads():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_train_config(path)


def test_overrides_and_round_trip(tmp_path):
    cfg = load_train_config(REPO / "configs" / "coco_r50_256x192.yaml", ["optim.lr=1e-3", "schedule.milestones=[3]",
                                                                         "schedule.epochs=5"])
    assert cfg.optim.lr == 1e-3 and cfg.schedule.milestones == (3,)
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_train_config(tmp_path / "config.yaml") == cfg


def test_bad_keys_and_values_are_named():
    with pytest.raises(ConfigError, match=r"unknown config key optim\.'lrr'"):
        load_train_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="milestones"):
        load_train_config(None, ["schedule.epochs=10", "schedule.milestones=[20]"])
    with pytest.raises(ConfigError, match="weight_decay_mode"):
        load_train_config(None, ["optim.weight_decay_mode=l1"])
    assert TrainConfig().optim.weight_decay_mode == "l2_conv"


def test_cli_rejects_a_bad_key_without_traceback(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("optim:\n  learning_rate: 0.1\n")
    r = subprocess.run([sys.executable, "-m", "pipelines.train", "--config", str(cfg), "--out", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "learning_rate" in r.stderr and str(cfg) in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
