"""Refiner end to end (geometry, flip test, precisions, pass-through) and the checkpoint format."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.net.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from posefix_video.net.crop import crop_boxes
from posefix_video.net.model import build_model
from posefix_video.net.refiner import CONFIDENCE_KEY, Refiner
from posefix_video.records import PersonRecord

CFG = ModelConfig(depth=18, input_size=(64, 64), layout="coco17", width=8, deconv_channels=16)


class EchoNet(torch.nn.Module):
    """A 'network' that returns its input pose: logits = log of the input heatmaps sampled every 4 px.

    The soft-argmax of a Gaussian (sigma 4 px) sampled on a 4 px lattice is its centre to ~1e-8, so a refiner
    around this net must give back the input keypoints exactly if crops, mapping and flips are right.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x[:, 3:, ::4, ::4].clamp_min(1e-30))


def _sharp(model: torch.nn.Module) -> torch.nn.Module:
    """A random net with peaked, input-dependent heatmaps (the default head init gives nearly flat logits)."""
    torch.manual_seed(0)
    for m in model.deconv.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.normal_(m.weight, std=0.1)
    torch.nn.init.normal_(model.final.weight, std=1.0)
    return model.eval()


def _scene(P=6, seed=0, frame_hw=(120, 160)):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (3, *frame_hw, 3), dtype=np.uint8)
    centre = rng.uniform([40, 40], [frame_hw[1] - 40, frame_hw[0] - 40], (P, 1, 2))
    kp = centre + rng.normal(0, 1, (P, 17, 2)) * np.array([12.0, 25.0])
    return frames, rng.integers(0, 3, P), kp, np.ones((P, 17), dtype=bool)


@pytest.mark.parametrize("flip_test", [False, True])
def test_echo_network_gives_back_the_input_pose(flip_test):
    cfg = ModelConfig(depth=18, input_size=(128, 96), layout="posetrack18", width=8, heatmap_sigma=4.0)
    refiner = Refiner(model=EchoNet(), layout=POSETRACK18, input_size=cfg.input_size, sigma=4.0, device="cpu",
                      flip_test=flip_test, batch_size=4)  # several batches per call
    frames, fi, kp, present = _scene(P=5, seed=1)
    kp[0, 3] = [0.0, 0.0]  # placeholder: stays as is
    present[1, 7] = False
    result = refiner.refine_arrays(frames, fi, kp, present)
    assert result.refined.all()
    usable = present.copy()
    usable[:, [3, 4]] = False
    assert np.abs(result.keypoints[usable] - kp[usable]).max() < 1e-2
    assert np.array_equal(result.keypoints[~usable], kp[~usable])  # never refined: returned bit for bit
    assert (result.confidence[~usable] == 0).all() and (result.confidence[usable] > 0.5).all()


def test_flip_test_is_exactly_mirror_equivariant_on_crops():
    refiner = Refiner.from_model(_sharp(build_model(CFG)), CFG, device="cpu", flip_test=True)
    rng = np.random.default_rng(2)
    crops = torch.as_tensor(rng.integers(0, 256, (4, 3, 64, 64), dtype=np.uint8))
    kp = torch.as_tensor(rng.uniform(8, 56, (4, 17, 2)), dtype=torch.float32)
    valid = torch.as_tensor(rng.random((4, 17)) > 0.2)
    coords, conf = refiner.predict_crops(crops, kp, valid)
    perm = torch.as_tensor(COCO17.flip_permutation)
    kp_m = kp[:, perm].clone()
    kp_m[..., 0] = 63 - kp_m[..., 0]
    coords_m, conf_m = refiner.predict_crops(crops.flip(-1), kp_m, valid[:, perm])
    mirrored = coords[:, perm].clone()
    mirrored[..., 0] = 63 - mirrored[..., 0]
    assert torch.allclose(coords_m, mirrored, atol=1e-3)
    assert torch.allclose(conf_m, conf[:, perm], atol=1e-5)
    # without the flip test the same network is not symmetric: the check above has teeth
    plain = Refiner.from_model(refiner.model, CFG, device="cpu", flip_test=False)
    c0, _ = plain.predict_crops(crops, kp, valid)
    c1, _ = plain.predict_crops(crops.flip(-1), kp_m, valid[:, perm])
    c0m = c0[:, perm].clone()
    c0m[..., 0] = 63 - c0m[..., 0]
    assert (c1 - c0m).abs().max() > 0.05


def test_mirrored_frame_and_pose_give_the_mirrored_result():
    # Under the crop convention u = W/2 + (x - cx) * W/w, mirroring frame and pose mirrors the crop about u = W/2
    # while the flip test mirrors about (W-1)/2, so the frame-level identity is exact only for a network that
    # follows its input pose; the echo net does, and exercises boxes, crops, flips and the mapping back.
    refiner = Refiner(model=EchoNet(), layout=COCO17, input_size=(128, 96), sigma=4.0, device="cpu")
    frames, fi, kp, present = _scene(P=4, seed=3)
    W = frames.shape[2]
    out = refiner.refine_arrays(frames, fi, kp, present).keypoints
    kp_m = kp[:, COCO17.flip_permutation].copy()
    kp_m[..., 0] = W - 1 - kp_m[..., 0]
    out_m = refiner.refine_arrays(np.ascontiguousarray(frames[:, :, ::-1]), fi, kp_m, present).keypoints
    expected = out[:, COCO17.flip_permutation].copy()
    expected[..., 0] = W - 1 - expected[..., 0]
    assert np.abs(out_m - expected).max() < 1e-2


@pytest.fixture(scope="module")
def sharp_model():
    return _sharp(build_model(CFG))


@pytest.mark.parametrize("precision, channels_last, tol", [("fp32", True, 1e-3), ("bf16", False, 0.3),
                                                           ("bf16", True, 0.3)])
def test_fast_paths_match_fp32_eager(sharp_model, precision, channels_last, tol):
    frames, fi, kp, present = _scene(P=6, seed=4)
    # separate copies: a Refiner converts its model's memory format in place
    ref = Refiner.from_model(copy.deepcopy(sharp_model), CFG, device="cpu", precision="fp32", channels_last=False)
    fast = Refiner.from_model(copy.deepcopy(sharp_model), CFG, device="cpu", precision=precision,
                              channels_last=channels_last)
    assert fast.model.conv1.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    a = ref.refine_arrays(frames, fi, kp, present)
    b = fast.refine_arrays(frames, fi, kp, present)
    # tolerance in frame pixels; the crops here are ~2.5 frame px per crop px, bf16 gave max 0.07, mean 0.02 here
    err = np.abs(a.keypoints - b.keypoints)
    assert err.max() < tol and err.mean() < tol / 3
    assert np.abs(a.confidence - b.confidence).max() < 0.05


@pytest.mark.slow
def test_compiled_matches_eager(sharp_model):
    frames, fi, kp, present = _scene(P=5, seed=5)
    ref = Refiner.from_model(sharp_model, CFG, device="cpu", batch_size=8)
    comp = Refiner.from_model(sharp_model, CFG, device="cpu", batch_size=8, compile=True)
    a = ref.refine_arrays(frames, fi, kp, present)
    b = comp.refine_arrays(frames, fi, kp, present)  # 5 persons x 2 (flip) = 3 padded batches of 8
    assert np.abs(a.keypoints - b.keypoints).max() < 1e-2


def test_pass_through_reasons_are_counted_and_records_copied(sharp_model):
    frames, _, kp, present = _scene(P=4, seed=6)
    scores = np.linspace(0.1, 0.9, 17)
    records = [PersonRecord(frame=10 + i % 3, track_id=i, keypoints=kp[i], scores=scores, present=present[i],
                            extra={"tracker_field": i}) for i in range(4)]
    records[1] = records[1].replace(present=np.zeros(17, dtype=bool))
    records[2] = records[2].replace(keypoints=np.zeros((17, 2)))  # all joints at the (0, 0) placeholder
    refiner = Refiner.from_model(sharp_model, CFG, device="cpu")
    # the network's answer and the input scores as they are (no safeguard, scores="input": tests/test_safeguard.py)
    out, counts = refiner.refine_records(frames, records, frame_offset=10, safeguard=None, scores="input")
    assert counts == {"no usable joints": 2}
    assert [r.track_id for r in out] == [0, 1, 2, 3] and [r.frame for r in out] == [10, 11, 12, 10]
    for i in (1, 2):
        assert np.array_equal(out[i].keypoints, records[i].keypoints) and CONFIDENCE_KEY not in out[i].extra
    for i in (0, 3):
        assert not np.allclose(out[i].keypoints, records[i].keypoints)
        assert np.array_equal(out[i].scores, scores) and out[i].scores is not records[i].scores
        conf = out[i].extra[CONFIDENCE_KEY]
        assert len(conf) == 17 and all(0 <= c <= 1 for c in conf)
        assert out[i].extra["tracker_field"] == i
    assert out[0].keypoints is not records[0].keypoints and np.array_equal(records[0].keypoints, kp[0])
    with pytest.raises(ValueError, match="record 0 \\(frame 10, track_id 0\\) is outside the frames given"):
        refiner.refine_records(frames, records, frame_offset=11)
    assert refiner.refine_records(frames, []) == ([], {})


def test_degenerate_box_is_passed_through(sharp_model):
    frames, fi, kp, present = _scene(P=2, seed=7)
    kp[1] = 1e308  # finite but the box size overflows
    result = Refiner.from_model(sharp_model, CFG, device="cpu").refine_arrays(frames, fi, kp, present)
    assert result.refined.tolist() == [True, False] and result.reason == [None, "degenerate crop box"]
    assert np.array_equal(result.keypoints[1], kp[1])
    assert crop_boxes(kp, present, COCO17, (64, 64)).reason[1] == "degenerate crop box"


def test_checkpoint_round_trip_gives_identical_outputs(sharp_model, tmp_path):
    path = tmp_path / "ckpt" / "model.pth"
    save_checkpoint(path, sharp_model, CFG, epoch=3, optimizer={"lr": 1e-4})
    assert [p.name for p in path.parent.iterdir()] == ["model.pth"]  # no temporary left behind
    cfg, state, raw = load_checkpoint(path)
    assert cfg == CFG and raw["epoch"] == 3 and raw["optimizer"] == {"lr": 1e-4} and raw["layout"] == "coco17"
    refiner = Refiner.from_checkpoint(path, device="cpu")
    assert refiner.layout is COCO17 and refiner.input_size == (64, 64) and refiner.sigma == CFG.input_sigma
    frames, fi, kp, present = _scene(P=3, seed=8)
    a = Refiner.from_model(sharp_model, CFG, device="cpu").refine_arrays(frames, fi, kp, present)
    b = refiner.refine_arrays(frames, fi, kp, present)
    assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.confidence, b.confidence)


def test_checkpoint_loader_needs_only_model_and_config(sharp_model, tmp_path):
    torch.save({"model": sharp_model.state_dict(), "model_config": {"depth": 18, "input_size": [64, 64],
                "width": 8, "deconv_channels": 16}, "scheduler": {"step": 7}}, tmp_path / "minimal.pth")
    model, cfg = model_from_checkpoint(tmp_path / "minimal.pth")
    assert cfg == CFG and torch.equal(model.final.weight, sharp_model.final.weight)


def test_bad_checkpoints_are_named_plainly(sharp_model, tmp_path):
    cases = {
        "junk.pth": (lambda p: p.write_bytes(b"not a torch file"), "junk.pth: cannot read checkpoint"),
        "bare.pth": (lambda p: torch.save(sharp_model.state_dict(), p),
                     "bare.pth: not a posefix_video checkpoint: missing key.*bare state dict"),
        "list.pth": (lambda p: torch.save([1], p), "list.pth: not a posefix_video checkpoint"),
        "cfg.pth": (lambda p: torch.save({"model": {}, "model_config": {"depth": 17}}, p),
                    "cfg.pth: model_config.*model.depth must be one of"),
        "other.pth": (lambda p: torch.save({"model": sharp_model.state_dict(), "model_config": {"depth": 34}}, p),
                      "other.pth: weights do not match the model config it embeds: missing: .*shape mismatch"),
    }
    for name, (write, pattern) in cases.items():
        write(tmp_path / name)
        with pytest.raises(CheckpointError, match=pattern):
            Refiner.from_checkpoint(tmp_path / name, device="cpu")
    with pytest.raises(CheckpointError, match="absent.pth: checkpoint not found"):
        Refiner.from_checkpoint(tmp_path / "absent.pth")


def test_real_posetrack_frame_and_poses(shared_data):
    """Real 1920x1080 frame + 11 real PoseTrack18 poses: the echo net gives every labeled joint back."""
    import json

    import cv2

    root = shared_data / "posetrack18_mmpose"
    gt = json.loads((root / "annotations/val/012834_mpii_test.json").read_text())
    frame = cv2.cvtColor(cv2.imread(str(root / gt["images"][0]["file_name"])), cv2.COLOR_BGR2RGB)
    records = []
    for a in gt["annotations"]:
        k = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        records.append(PersonRecord(frame=0, track_id=a["track_id"], keypoints=k[:, :2], scores=None,
                                    present=k[:, 2] > 0))
    records.append(PersonRecord(frame=0, track_id=99, keypoints=np.zeros((17, 2)), scores=None,
                                present=np.zeros(17, dtype=bool)))
    refiner = Refiner(model=EchoNet(), layout=POSETRACK18, input_size=(128, 96), sigma=4.0, device="cpu",
                      batch_size=8)
    out, counts = refiner.refine_records(torch.as_tensor(frame[None]), records)
    assert counts == {"no usable joints": 1} and len(out) == 12
    for r, o in zip(records[:-1], out[:-1]):
        assert np.abs(o.keypoints[r.present] - r.keypoints[r.present]).max() < 0.05
        assert min(o.extra[CONFIDENCE_KEY][j] for j in np.flatnonzero(r.present)) > 0.5
