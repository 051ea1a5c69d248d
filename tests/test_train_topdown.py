"""Top-down training (model.pose_input false): the Simple Baselines loss, the config, the batch preparation and
the checkpoint's input contract."""

import math
from pathlib import Path

import pytest
import torch

from posefix_video.errors import ConfigError
from posefix_video.train.config import load_train_config
from posefix_video.train.losses import HeatmapMSELoss, PoseFixLoss, build_criterion

H, W = 8, 6


def test_mse_loss_matches_hand_computation():
    # one joint at cell (2, 3), sigma 1: target exp(-d^2 / 2) per cell; the output is all zeros, so the loss is
    # 0.5 * mean(target^2) over the joints and cells, the invalid second joint contributing zeros
    loss_fn = HeatmapMSELoss(target_sigma=1.0)
    out = torch.zeros(1, 2, H, W)
    cells = torch.tensor([[[2.0, 3.0], [float("nan"), float("nan")]]])
    valid = torch.tensor([[True, False]])
    terms = loss_fn(out, cells, valid)
    total = 0.0
    for y in range(H):
        for x in range(W):
            total += math.exp(-((x - 2) ** 2 + (y - 3) ** 2) / 2.0) ** 2
    assert terms["loss"].item() == pytest.approx(0.5 * total / (2 * H * W), rel=1e-6)
    assert torch.isfinite(terms["loss"])


def test_mse_loss_is_zero_at_the_target_and_masks_joints():
    cells = torch.tensor([[[2.5, 3.25], [4.0, 1.0]]])
    loss_fn = HeatmapMSELoss(target_sigma=2.0)
    from posefix_video.net.heatmaps import render_gaussians

    target = render_gaussians(cells, torch.ones(1, 2, dtype=torch.bool), H, W, 2.0)
    assert loss_fn(target, cells, torch.ones(1, 2, dtype=torch.bool))["loss"].item() == pytest.approx(0.0, abs=1e-12)
    # a wrong second map does not count when that joint is masked by the layout or unlabeled
    wrong = target.clone()
    wrong[0, 1] = 5.0
    masked = HeatmapMSELoss(target_sigma=2.0, joint_mask=torch.tensor([True, False]))
    assert masked(wrong, cells, torch.ones(1, 2, dtype=torch.bool))["loss"].item() == pytest.approx(0.0, abs=1e-12)
    assert loss_fn(wrong, cells, torch.tensor([[True, False]]))["loss"].item() == pytest.approx(0.0, abs=1e-12)
    assert loss_fn(wrong, cells, torch.ones(1, 2, dtype=torch.bool))["loss"].item() > 1.0


def test_build_criterion_and_config_resolve_the_loss():
    assert isinstance(build_criterion("posefix"), PoseFixLoss)
    mse = build_criterion("heatmap_mse", target_sigma=3.0)
    assert isinstance(mse, HeatmapMSELoss) and mse.target_sigma == 3.0
    with pytest.raises(ValueError, match="unknown loss"):
        build_criterion("l1")
    assert load_train_config(None).loss_kind == "posefix"
    assert load_train_config(None, ["model.pose_input=false"]).loss_kind == "heatmap_mse"
    with pytest.raises(ConfigError, match="top-down"):
        load_train_config(None, ["loss.kind=heatmap_mse"])
    with pytest.raises(ConfigError, match="target_sigma"):
        load_train_config(None, ["loss.target_sigma=0"])


def test_simplebaseline_recipe_has_the_published_values():
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "coco_simplebaseline_r50_256x192.yaml")
    assert (cfg.model.depth, cfg.model.input_size, cfg.model.pose_input) == (50, (256, 192), False)
    assert cfg.loss_kind == "heatmap_mse" and cfg.loss.target_sigma == 2.0
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (1e-3, 0.0)
    assert (cfg.schedule.epochs, cfg.schedule.milestones, cfg.schedule.gamma) == (140, (90, 120), 0.1)
    assert cfg.data.batch_size == 128  # 32 per GPU x 4 GPUs
    assert (cfg.data.rotation_factor, cfg.data.scale_factor, cfg.data.flip_prob) == (40.0, 0.3, 0.5)
    assert cfg.init.imagenet


def test_topdown_prepare_feeds_the_normalised_image_only():
    from posefix_video.net.contract import OURS_MEAN, OURS_STD
    from posefix_video.train.run import topdown_prepare

    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (2, 64, 32, 3), generator=g, dtype=torch.uint8)
    kp = torch.tensor([[[8.0, 12.0]], [[4.0, 40.0]]])
    batch = {"image": image, "target_keypoints": kp, "target_valid": torch.tensor([[True], [False]])}
    x, (cells, valid) = topdown_prepare(channels_last=False)(batch, torch.device("cpu"))
    assert x.shape == (2, 3, 64, 32)
    expected = (image.permute(0, 3, 1, 2).float() - torch.tensor(OURS_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        OURS_STD).view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-6)
    assert torch.equal(cells, kp / 4)
    assert valid.tolist() == [[True], [False]]


def test_topdown_checkpoint_contract_is_what_the_estimator_reads(tmp_path):
    from posefix_video.config import ModelConfig
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.contract import OURS_MEAN, InputContract
    from posefix_video.net.model import build_model
    from posefix_video.net.topdown import TopDownEstimator
    from posefix_video.train.run import topdown_contract

    cfg = ModelConfig(depth=18, input_size=(64, 32), layout="posetrack18", width=8, deconv_channels=16,
                      pose_input=False)
    contract = InputContract.from_dict(topdown_contract(cfg))
    assert (contract.channel_order, contract.mean, contract.decoder) == ("RGB", OURS_MEAN, "argmax_msra")
    path = tmp_path / "td.pth"
    save_checkpoint(path, build_model(cfg), cfg, input_contract=topdown_contract(cfg))
    est = TopDownEstimator.from_checkpoint(path, device="cpu", flip_test=False)
    assert est.convention == "msra" and est.contract.channel_order == "RGB"
    assert est.layout.name == "posetrack18"


def test_a_posefix_checkpoint_starts_a_topdown_model(tmp_path):
    from posefix_video.config import ModelConfig
    from posefix_video.errors import CheckpointError
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.model import build_model
    from posefix_video.train.run import init_weights

    kw = dict(depth=18, input_size=(64, 32), layout="posetrack18", width=8, deconv_channels=16)
    torch.manual_seed(0)
    src_cfg = ModelConfig(**kw)
    src = build_model(src_cfg)
    save_checkpoint(tmp_path / "pf.pth", src, src_cfg)
    td_cfg = ModelConfig(**kw, pose_input=False)
    torch.manual_seed(1)
    td = build_model(td_cfg)
    final_before = td.final.weight.clone()
    assert "PoseFix weights" in init_weights(td, td_cfg, checkpoint=str(tmp_path / "pf.pth"))
    assert torch.equal(td.conv1.weight, src.conv1.weight[:, :3])  # the image kernels
    assert torch.equal(td.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    assert torch.equal(td.deconv[0].weight, src.deconv[0].weight)
    assert torch.equal(td.final.weight, final_before)  # the output layer starts afresh
    save_checkpoint(tmp_path / "td.pth", td, td_cfg)
    with pytest.raises(CheckpointError, match="pose_input"):  # the other way round has no pose kernels
        init_weights(build_model(src_cfg), src_cfg, checkpoint=str(tmp_path / "td.pth"))
