"""AP validation of a checkpoint (posefix_video/train/validation.py) on tiny generated PoseTrack and COCO sets."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import ConfigError, InputError
from posefix_video.eval.coco import evaluate_coco
from posefix_video.eval.posetrack import evaluate_posetrack
from posefix_video.keypoints import get_layout
from posefix_video.net.model import build_model
from posefix_video.net.refiner import Refiner, RefineResult
from posefix_video.train.engine import load_training_checkpoint
from posefix_video.train.validation import (
    build_ap_validation,
    find_video_frames,
    posetrack_pairs,
    synthesize_coco_inputs,
    synthesize_posetrack_inputs,
    validate_coco,
    validate_posetrack,
)

VIDEO = "000001_mpiinew_test"


@pytest.fixture(scope="module")
def pt_set(tmp_path_factory):
    """One 8-frame synthetic PoseTrack video (all frames labeled) and simulated tracker output for it."""
    from posefix_video.synthetic import posetrack_videos, tracker_sim

    root = tmp_path_factory.mktemp("pt")
    settings = posetrack_videos.VideoSettings(num_videos=1, num_frames=8, seed=1, width=256, height=192, split="val",
                                              label_every=1, write_mp4=False)
    gt_files = posetrack_videos.write_posetrack_videos(root, settings)
    tracker_sim.simulate_files(gt_files, root / "pred", tracker_sim.TrackerSimSettings(), seed=1)
    return {"root": root, "gt": root / "annotations" / "val", "pred": root / "pred"}


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    """Four synthetic COCO images and a results file equal to their ground truth (score 1)."""
    from posefix_video.synthetic import coco_dataset

    root = tmp_path_factory.mktemp("coco")
    ann = coco_dataset.write_coco_dataset(root, coco_dataset.CocoSettings(
        num_images=4, seed=2, width=256, height=192, split="val", min_persons=1, max_persons=3))
    gt = json.loads(Path(ann).read_text())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"]]
    (root / "results.json").write_text(json.dumps(results))
    return {"ann": Path(ann), "images": root / "val2017", "results": root / "results.json", "gt": gt}


class IdentityRefiner:
    """Returns every pose unchanged (plus an optional shift): isolates the file plumbing from the network."""

    def __init__(self, layout, shift=0.0):
        self.layout = get_layout(layout)
        self.shift = shift
        self.frames_seen = []

    def refine_records(self, frames, records, frame_offset=0):
        return [r.replace() for r in records], Counter()

    def refine_arrays(self, frames, frame_index, keypoints, present):
        self.frames_seen.append(len(frames))
        P, J = present.shape
        return RefineResult(keypoints=keypoints + self.shift, confidence=np.zeros((P, J), np.float32),
                            refined=np.ones(P, bool), reason=[None] * P)


def tiny_refiner(layout):
    torch.manual_seed(0)
    cfg = ModelConfig(depth=18, input_size=(64, 64), layout=layout, width=8, deconv_channels=16)
    return Refiner.from_model(build_model(cfg), cfg, device="cpu", flip_test=False, precision="fp32")


def test_posetrack_identity_refinement_scores_exactly_the_inputs(pt_set, tmp_path):
    pairs = posetrack_pairs(pt_set["gt"], pt_set["pred"])
    assert [(g.name, p.name) for g, p in pairs] == [(f"{VIDEO}.json", f"{VIDEO}.json")]
    direct = evaluate_posetrack([pairs[0][0]], [pairs[0][1]], tracking=False).groups("ap")["Total"]
    assert 20 < direct < 99  # the simulated tracker is imperfect, so refinement has room
    m = validate_posetrack(IdentityRefiner("posetrack18"), pairs, pt_set["root"], work_dir=tmp_path)
    assert m["ap_total"] == pytest.approx(direct, abs=1e-9)
    assert m["input_ap"] == pytest.approx(direct, abs=1e-9) and m["score"] == m["ap_total"]
    assert list(tmp_path.iterdir()) == []  # the refined files lived in a removed temporary folder


def test_posetrack_with_a_real_refiner_changes_the_poses(pt_set, tmp_path):
    pairs = posetrack_pairs(pt_set["gt"], pt_set["pred"])
    m = validate_posetrack(tiny_refiner("posetrack18"), pairs, pt_set["root"], input_ap=55.0)
    assert m["input_ap"] == 55.0  # a known input AP is reused, not recomputed
    # random weights put joints far from the truth: AP collapses, which proves the refined files are the ones scored
    assert 0.0 <= m["ap_total"] < 30.0


def test_posetrack_input_problems_are_named(pt_set, tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "999999_mpiinew_test.json").write_text("{}")
    with pytest.raises(InputError, match="999999_mpiinew_test.json.*no GT file"):
        posetrack_pairs(pt_set["gt"], tmp_path / "pred")
    with pytest.raises(InputError, match="data.val_inputs"):
        posetrack_pairs(pt_set["gt"], tmp_path / "nothing")
    with pytest.raises(InputError, match=f"no frames for video {VIDEO}"):
        find_video_frames(tmp_path, pt_set["gt"] / f"{VIDEO}.json", VIDEO)
    assert find_video_frames(pt_set["root"], pt_set["gt"] / f"{VIDEO}.json", VIDEO) == \
        pt_set["root"] / "images" / "val" / VIDEO


def test_coco_identity_scores_perfect_and_a_shift_is_penalised(coco_set, tmp_path):
    ident = IdentityRefiner("coco17")
    m = validate_coco(ident, coco_set["ann"], coco_set["images"], coco_set["results"], work_dir=tmp_path)
    assert m["ap"] == pytest.approx(1.0)
    assert m["input_ap"] == pytest.approx(evaluate_coco(coco_set["ann"], coco_set["results"])["AP"])
    assert ident.frames_seen == [4]  # the four equal-size images share one refine_arrays call
    shifted = validate_coco(IdentityRefiner("coco17", shift=12.0), coco_set["ann"], coco_set["images"],
                            coco_set["results"])
    assert shifted["ap"] < 0.9 and shifted["input_ap"] == pytest.approx(1.0)
    assert list(tmp_path.iterdir()) == []


def test_coco_max_samples_limits_images_and_gt(coco_set):
    n_first = sum(1 for a in coco_set["gt"]["annotations"] if a["image_id"] == coco_set["gt"]["images"][0]["id"])
    ident = IdentityRefiner("coco17")
    m = validate_coco(ident, coco_set["ann"], coco_set["images"], coco_set["results"], max_samples=1)
    assert m["ap"] == pytest.approx(1.0)  # GT restricted to the refined image, else unmatched GT lowers AP
    assert n_first >= 1 and ident.frames_seen == [1]


def test_coco_results_are_checked(coco_set, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 424242, "keypoints": [0] * 51, "score": 1}]))
    with pytest.raises(InputError, match=r"bad.json: results\[0\].*image_id 424242"):
        validate_coco(IdentityRefiner("coco17"), coco_set["ann"], coco_set["images"], bad)
    bad.write_text(json.dumps([{"image_id": 1, "keypoints": [0] * 10, "score": 1}]))
    with pytest.raises(InputError, match="10 keypoint numbers, expected 51"):
        validate_coco(IdentityRefiner("coco17"), coco_set["ann"], coco_set["images"], bad)


def _cfg(overrides):
    from posefix_video.train.config import load_train_config

    return load_train_config("configs/tiny_synthetic_posetrack.yaml", overrides)


def test_build_ap_validation_checks_inputs_before_training(pt_set, tmp_path):
    data = [f"data.val_ann={pt_set['gt']}", f"data.val_images={pt_set['root']}"]
    with pytest.raises(InputError, match="missing.*data.val_ann"):
        build_ap_validation(_cfg([f"data.val_ann={tmp_path / 'missing'}", f"data.val_images={pt_set['root']}",
                                  "data.val_inputs=\"\""]), "posetrack_ap", "cpu")
    with pytest.raises(ConfigError, match="coco_ap needs model.layout coco17"):
        build_ap_validation(_cfg([*data, f"data.val_inputs={pt_set['pred']}"]), "coco_ap", "cpu")
    with pytest.raises(InputError, match="no frames"):
        build_ap_validation(_cfg([f"data.val_ann={pt_set['gt']}", f"data.val_images={tmp_path}",
                                  f"data.val_inputs={pt_set['pred']}"]), "posetrack_ap", "cpu")


def test_run_training_keeps_the_best_checkpoint_by_posetrack_ap(pt_set, tmp_path, monkeypatch):
    from posefix_video.train import run as engine
    from tests.test_engine import FakeCrops

    monkeypatch.setattr(engine, "build_dataset", lambda cfg, split: FakeCrops())
    cfg = _cfg(["model.input_size=[64,64]", "schedule.epochs=2", "schedule.milestones=[1]", "data.batch_size=4",
                "data.num_workers=0", "validation.every=1", "validation.flip_test=false",
                f"data.val_ann={pt_set['gt']}", f"data.val_images={pt_set['root']}",
                f"data.val_inputs={pt_set['pred']}"])
    result = engine.run_training(cfg, tmp_path / "run")
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r.get("phase") == "train_epoch"]
    assert len(epochs) == 2 and all("val_ap_total" in r and "val_input_ap" in r for r in epochs)
    assert epochs[0]["val_input_ap"] == epochs[1]["val_input_ap"] > 20
    best = max(r["val_score"] for r in epochs)
    assert result["best_score"] == pytest.approx(best)
    state = load_training_checkpoint(tmp_path / "run" / "best.pth")
    assert state["best_score"] == pytest.approx(best)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pth", "config.yaml", "last.pth",
                                                                   "metrics.jsonl"]


def test_synthesised_posetrack_inputs_follow_the_training_statistics(pt_set, tmp_path):
    gt = pt_set["gt"] / f"{VIDEO}.json"
    folder = synthesize_posetrack_inputs([gt], tmp_path / "synth", seed=3)
    ap = evaluate_posetrack([gt], [folder / gt.name], tracking=False).groups("ap")["Total"]
    assert 30 < ap < 95  # PoseFix errors on every joint: clearly worse than the GT, far from random
    again = synthesize_posetrack_inputs([gt], tmp_path / "again", seed=3)
    assert (again / gt.name).read_bytes() == (folder / gt.name).read_bytes()  # seeded


def test_synthesised_coco_inputs_and_training_with_coco_ap(coco_set, tmp_path, monkeypatch):
    from posefix_video.train import run as engine
    from tests.test_engine import FakeCrops

    results = synthesize_coco_inputs(coco_set["ann"], coco_set["images"], get_layout("coco17"), seed=0)
    labeled = [a for a in coco_set["gt"]["annotations"] if a["num_keypoints"] > 0]
    assert len(results) == len(labeled)
    (tmp_path / "r.json").write_text(json.dumps(results))
    ap = evaluate_coco(coco_set["ann"], tmp_path / "r.json")["AP"]
    assert 0.1 < ap < 0.99

    monkeypatch.setattr(engine, "build_dataset", lambda cfg, split: FakeCrops())
    from posefix_video.train.config import load_train_config

    cfg = load_train_config("configs/tiny_synthetic.yaml", [
        "model.input_size=[64,64]", "schedule.epochs=1", "schedule.milestones=[]", "data.batch_size=4",
        "data.num_workers=0", "validation.every=1", "validation.metric=auto", "validation.flip_test=false",
        f"data.val_ann={coco_set['ann']}", f"data.val_images={coco_set['images']}", "data.val_inputs=\"\""])
    engine.run_training(cfg, tmp_path / "run")
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert rec["val_input_ap"] == pytest.approx(ap)  # the same seeded synthesis, scored on the same GT
    assert 0.0 <= rec["val_ap"] <= 1.0 and rec["val_score"] == rec["val_ap"]
    assert (tmp_path / "run" / "val_inputs_synth" / "coco_results.json").is_file()
    assert (tmp_path / "run" / "best.pth").is_file()


def test_real_posetrack_and_coco_samples(shared_data, tmp_path):
    """Real PoseTrack18 val frames (1920x1080, ignore regions) and COCO val images, inputs synthesised from the GT."""
    root = shared_data / "posetrack18_mmpose"
    gts = sorted((root / "annotations" / "val").glob("*.json"))
    folder = synthesize_posetrack_inputs(gts, tmp_path / "pt", seed=0)
    pairs = [(g, folder / g.name) for g in gts]
    direct = evaluate_posetrack(gts, [p for _, p in pairs], tracking=False).groups("ap")["Total"]
    ident = validate_posetrack(IdentityRefiner("posetrack18"), pairs, root)
    assert ident["ap_total"] == pytest.approx(direct) and 20 < direct < 95
    real = validate_posetrack(tiny_refiner("posetrack18"), pairs, root, input_ap=direct)
    assert 0 <= real["ap_total"] < direct  # untrained weights: refined files really are the ones scored

    coco = shared_data / "coco_mmpose"
    results = synthesize_coco_inputs(coco / "test_coco.json", coco, get_layout("coco17"), seed=0)
    assert len(results) == 12  # 14 annotations, 2 without keypoints
    (tmp_path / "r.json").write_text(json.dumps(results))
    m = validate_coco(IdentityRefiner("coco17"), coco / "test_coco.json", coco, tmp_path / "r.json")
    assert m["ap"] == pytest.approx(evaluate_coco(coco / "test_coco.json", tmp_path / "r.json")["AP"])
    assert 0.1 < m["ap"] < 0.99


def test_coco_refinement_batches_images_with_bounded_memory(coco_set):
    from posefix_video.train.validation import load_coco_inputs, refine_coco_results

    by_image = load_coco_inputs(coco_set["results"], coco_set["gt"], 17)
    paths = {im["id"]: coco_set["images"] / im["file_name"] for im in coco_set["gt"]["images"]}
    ident = IdentityRefiner("coco17", shift=1.0)
    out = refine_coco_results(ident, by_image, paths, images_per_call=3)
    assert ident.frames_seen == [3, 1]
    inputs = [r for rs in by_image.values() for r in rs]
    assert [r["image_id"] for r in out] == [r["image_id"] for r in inputs]
    for r, o in zip(inputs, out):
        a, b = np.reshape(r["keypoints"], (17, 3)), np.reshape(o["keypoints"], (17, 3))
        labeled = a[:, 2] > 0
        assert np.allclose(b[labeled, :2], a[labeled, :2] + 1.0)  # refined joints moved
        assert np.array_equal(b[~labeled], a[~labeled]) and np.array_equal(b[:, 2], a[:, 2])  # the rest untouched
