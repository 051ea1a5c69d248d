"""The input contract (net/contract.py): storage, the one place it is applied, old checkpoints, fine-tuning, and the
official test rules of the Refiner (net/official.py) on hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError, ConfigError
from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.net.checkpoint import load_model, model_from_checkpoint, save_checkpoint
from posefix_video.net.contract import InputContract
from posefix_video.net.heatmaps import IMAGENET_MEAN, IMAGENET_STD, make_network_input, render_gaussians
from posefix_video.net.model import build_model
from posefix_video.net.official import official_boxes, official_crop_joints
from posefix_video.net.refiner import Refiner

CFG = ModelConfig(depth=18, input_size=(64, 64), layout="coco17", width=8, deconv_channels=16)
DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_checkpoint.pth"


def test_contract_round_trip_and_the_two_contracts():
    ours = InputContract.ours(CFG)
    assert ours.channel_order == "RGB" and ours.heatmap_peak == 1.0 and ours.sigma == CFG.input_sigma
    assert ours.mean == tuple((torch.tensor(IMAGENET_MEAN) * 255).tolist())
    assert ours.std == tuple((torch.tensor(IMAGENET_STD) * 255).tolist())
    off = InputContract.official_posefix("posetrack18", sigma=9.0)
    assert (off.channel_order, off.mean, off.std, off.heatmap_peak, off.bn_eps, off.sigma, off.layout) == (
        "BGR", (123.68, 116.78, 103.94), (1.0, 1.0, 1.0), 255.0, 1.001e-5, 9.0, "posetrack18")
    for c in (ours, off):
        assert InputContract.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("change, message", [
    ({"colour": "RGB"}, "unknown config key 'colour'"),
    ({"channel_order": "RBG"}, "channel_order must be one of"),
    ({"mean": [1.0, 2.0]}, "mean must have 3 entries"),
    ({"std": [1.0, 0.0, 1.0]}, "std must be > 0"),
    ({"heatmap_peak": -1}, "heatmap_peak must be a finite number > 0"),
    ({"layout": "mpii"}, "layout must be one of"),
])
def test_bad_contract_entries_are_refused_by_name(change, message):
    d = {**InputContract.official_posefix("coco17").to_dict(), **change}
    with pytest.raises(CheckpointError, match=message) as e:
        InputContract.from_dict(d, source="x.pth: input_contract")
    assert str(e.value).startswith("x.pth: input_contract")
    short = InputContract.official_posefix("coco17").to_dict()
    del short["sigma"]
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['sigma'\]"):
        InputContract.from_dict(short)


def _old_input(crops, kp, valid, sigma, ignored=()):
    """The network input exactly as the code computed it before contracts existed (kept here as the reference)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    image = (crops.float() - mean) / std
    valid = valid.clone()
    valid[:, list(ignored)] = False
    return torch.cat([image, render_gaussians(kp, valid, crops.shape[2], crops.shape[3], sigma) * 1.0], dim=1)


def test_our_contract_gives_the_old_input_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (3, 3, 64, 48), dtype=torch.uint8, generator=g)
    kp = torch.rand(3, 17, 2, generator=g) * 48
    valid = torch.rand(3, 17, generator=g) > 0.3
    old = _old_input(crops, kp, valid, 2.5, (3, 4))
    assert torch.equal(make_network_input(crops, kp, valid, 2.5, (3, 4)), old)
    cfg = ModelConfig(depth=18, input_size=(64, 64), layout="posetrack18", heatmap_sigma=2.5)
    assert torch.equal(make_network_input(crops, kp, valid, contract=InputContract.ours(cfg)), old)


def test_official_contract_feeds_bgr_minus_rgb_means_and_peak_255():
    crops = torch.zeros(1, 3, 8, 6, dtype=torch.uint8)
    crops[0, 0], crops[0, 1], crops[0, 2] = 10, 20, 30  # R, G, B
    kp = torch.tensor([[[2.0, 5.0]] * 17])
    x = make_network_input(crops, kp, torch.ones(1, 17, dtype=torch.bool),
                           contract=InputContract.official_posefix("posetrack18", sigma=2.0))
    # channel 0 is B - 123.68, 1 is G - 116.78, 2 is R - 103.94 (no std)
    assert torch.allclose(x[0, :3, 0, 0], torch.tensor([30 - 123.68, 20 - 116.78, 10 - 103.94]))
    assert x[0, 3, 5, 2] == 255.0 and x[0, 3, 5, 3] == pytest.approx(255 * np.exp(-1 / 8), rel=1e-6)
    assert x[0, 3 + 3].abs().sum() == 0 and x[0, 3 + 4].abs().sum() == 0  # PoseTrack ears: zero maps
    with pytest.raises(ValueError, match="sigma"):
        make_network_input(crops, kp, torch.ones(1, 17, dtype=torch.bool), 3.0,
                           contract=InputContract.official_posefix("coco17", sigma=2.0))


def test_checkpoint_contract_stored_loaded_and_checked(tmp_path):
    model = build_model(CFG)
    save_checkpoint(tmp_path / "old.pth", model, CFG)  # no contract entry: an older file
    _, cfg, contract = load_model(tmp_path / "old.pth")
    assert contract == InputContract.ours(cfg)
    off = InputContract.official_posefix("coco17", sigma=CFG.input_sigma).replace(bn_eps=CFG.bn_eps)
    save_checkpoint(tmp_path / "new.pth", model, CFG, input_contract=off)
    assert load_model(tmp_path / "new.pth")[2] == off
    assert model_from_checkpoint(tmp_path / "new.pth")[1] == CFG  # the old API still answers
    with pytest.raises(CheckpointError, match="sigma 9.0 vs model_config 4.0"):
        save_checkpoint(tmp_path / "bad.pth", model, CFG, input_contract=off.replace(sigma=9.0))
    save_checkpoint(tmp_path / "bad.pth", model, CFG, input_contract={**off.to_dict(), "std": "x"})
    with pytest.raises(CheckpointError, match=r"bad.pth: input_contract: std"):
        load_model(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth"):
        Refiner.from_checkpoint(tmp_path / "bad.pth", device="cpu")


@pytest.mark.skipif(not DEMO.is_file(), reason="demo checkpoint not built")
def test_demo_checkpoint_outputs_do_not_change():
    """The refiner (contract path) against the same refiner fed by the pre-contract input formula: bit-identical."""
    refiner = Refiner.from_checkpoint(DEMO, device="cpu", precision="fp32", flip_test=True)
    assert refiner.contract == InputContract.ours(load_model(DEMO)[1])

    class OldInput(Refiner):
        def _input(self, crops, kp, valid):
            return _old_input(crops, kp, valid, self.sigma, self.layout.ignored)

    old = OldInput.from_model(refiner.model, load_model(DEMO)[1], device="cpu", precision="fp32")
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    kp = rng.uniform([30, 20], [100, 80], (4, 17, 2))
    present = np.ones((4, 17), dtype=bool)
    a = refiner.refine_arrays(frames, np.array([0, 1, 1, 0]), kp, present)
    b = old.refine_arrays(frames, np.array([0, 1, 1, 0]), kp, present)
    assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.confidence, b.confidence)


def test_fine_tuning_keeps_an_imported_contract(tmp_path):
    from posefix_video.train.run import init_contract

    off = InputContract.official_posefix("coco17", sigma=7.0)
    src = ModelConfig(depth=18, input_size=(64, 64), layout="coco17", width=8, deconv_channels=16,
                      heatmap_sigma=7.0, bn_eps=1.001e-5)
    save_checkpoint(tmp_path / "imported.pth", build_model(src), src, input_contract=off)
    run_cfg = ModelConfig(**{**src.__dict__, "layout": "posetrack18"})
    assert init_contract(run_cfg, str(tmp_path / "imported.pth")) == off.replace(layout="posetrack18")
    assert init_contract(CFG) == InputContract.ours(CFG)
    with pytest.raises(ConfigError, match="model.bn_eps=1.001e-05"):
        init_contract(ModelConfig(**{**src.__dict__, "bn_eps": 1e-5}), str(tmp_path / "imported.pth"))


def test_trainer_input_is_built_by_the_same_function():
    from posefix_video.train.run import posefix_prepare

    off = InputContract.official_posefix("posetrack18", sigma=3.0)
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.randint(0, 256, (2, 32, 24, 3), dtype=torch.uint8, generator=g),
             "input_keypoints": torch.rand(2, 17, 2, generator=g) * 24, "input_valid": torch.ones(2, 17, dtype=bool),
             "target_keypoints": torch.rand(2, 17, 2, generator=g) * 24, "target_valid": torch.ones(2, 17, dtype=bool)}
    x, _ = posefix_prepare(sigma=3.0, ignored=(3, 4), channels_last=False, contract=off)(batch, torch.device("cpu"))
    expected = make_network_input(batch["image"].permute(0, 3, 1, 2), batch["input_keypoints"],
                                  batch["input_valid"], contract=off)
    assert torch.equal(x, expected)


# ---------------------------------------------------------------------------------------------------------------
# official test rules


def test_official_box_hand_computed():
    kp = np.zeros((2, 17, 2))
    kp[0, :, 0] = np.linspace(100, 200, 17)
    kp[0, :, 1] = np.linspace(50, 250, 17)
    kp[1] = kp[0]
    kp[1, 16] = 0.0  # a missing joint as (0, 0): it drags the box
    b = official_boxes(kp, COCO17, (256, 192))
    # extent 100 x 200 -> x1.2: 120 x 240 -> aspect 0.75: 180 x 240 -> x1.25: 225 x 300, centre (150, 150)
    assert np.allclose(b["centre"][0], [150, 150]) and np.allclose(b["scale"][0], [225, 300])
    assert np.allclose(b["box"][0], [37.5, 0, 262.5, 300])
    # with (0, 0): x 0..193.75, y 0..237.5 -> x1.2: 232.5 x 285 -> aspect: 232.5 x 310 -> x1.25
    assert np.allclose(b["scale"][1], [290.625, 387.5], atol=1e-4)
    # matrix: box x0 -> 0, x1 -> 192 (no half-pixel shift)
    M = b["matrix"][0]
    assert np.allclose(M @ [37.5, 0, 1], [0, 0], atol=1e-4) and np.allclose(M @ [262.5, 300, 1], [192, 256], atol=1e-4)
    one = np.full((1, 17, 2), 50.0)  # all joints on one point: 20 px rule, then x1.2 (24 px), aspect, x1.25
    assert np.allclose(official_boxes(one, COCO17, (256, 192))["scale"][0], [30, 40])
    crop = official_crop_joints(kp[:1], np.where(np.arange(17) == 5, 0.0, 0.9)[None], b["matrix"][:1])
    assert np.allclose(crop[0, 5], kp[0, 5]) and np.allclose(crop[0, 0], [(100 - 37.5) * 192 / 225, 50 * 256 / 300])


class EchoNet(torch.nn.Module):
    """Logits = log of the input heatmaps every 4 px: the soft-argmax gives back the rendered input pose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x[:, 3:, ::4, ::4].clamp_min(1e-30))


@pytest.mark.parametrize("flip_test", [False, True])
def test_official_rules_on_an_echo_network(flip_test):
    off = InputContract.official_posefix("posetrack18", sigma=4.0)
    refiner = Refiner(model=EchoNet(), layout=POSETRACK18, input_size=(128, 96), sigma=4.0, device="cpu",
                      flip_test=flip_test, batch_size=4, contract=off, official_test=True)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 200, 160, 3), dtype=np.uint8)
    kp = rng.uniform([60, 60], [100, 140], (3, 17, 2))
    scores = np.full((3, 17), 0.8)
    present = np.ones((3, 17), dtype=bool)
    kp[1, 9], scores[1, 9] = (40.0, 50.0), 0.0  # score 0: its image coordinates are read as crop coordinates
    kp[2, 12], present[2, 12], scores[2, 12] = 0.0, False, 0.0  # missing (0, 0, 0): in the box, refined
    res = refiner.refine_arrays(frames, np.array([0, 1, 0]), kp, present, joint_scores=scores)
    used = POSETRACK18.used_mask
    assert res.refined.all()
    assert np.allclose(res.keypoints[0][used], kp[0][used], atol=1e-3)  # echo: the input comes back
    assert np.array_equal(res.keypoints[:, ~used], kp[:, ~used])  # ears untouched
    box = official_boxes(np.where(present[..., None], kp, 0), POSETRACK18, (128, 96))["box"]
    x0, y0, x1, y1 = box[1]
    expect = [kp[1, 9, 0] / 96 * (x1 - x0) + x0, kp[1, 9, 1] / 128 * (y1 - y0) + y0]
    assert np.allclose(res.keypoints[1, 9], expect, atol=1e-3)
    # crop (0, 0) -> the box corner (the echo of a Gaussian cut by the crop border lies a few crop px inside)
    corner_px = (res.keypoints[2, 12] - box[2, :2]) / ((box[2, 2:] - box[2, :2]) / [96, 128])
    assert (np.abs(corner_px) < 4).all(), corner_px


def test_official_rules_pass_through_a_non_finite_joint():
    refiner = Refiner(model=EchoNet(), layout=COCO17, input_size=(128, 96), sigma=4.0, device="cpu",
                      contract=InputContract.official_posefix("coco17", sigma=4.0), official_test=True)
    kp = np.random.default_rng(1).uniform(60, 120, (2, 17, 2))
    kp[1, 7] = np.nan
    res = refiner.refine_arrays(np.zeros((1, 200, 160, 3), np.uint8), np.zeros(2, int), kp, np.ones((2, 17), bool))
    assert res.refined.tolist() == [True, False] and res.reason[1] == "non-finite joint (official test rules)"
    assert np.array_equal(res.keypoints[1], kp[1], equal_nan=True)
