"""refine_coco with box-only input: `--detections DETS --initializer CKPT [--no-refine] [--no-flip]`.

The done-when of issue 17 through the command line: on ../shared/data/simplebaseline_reference, the initializer's
output (--no-refine) reproduces each reference's own keypoints within 0.05 px and maxvals within 1e-3 (near-tie
joints the fixture marks are skipped), for both checkpoint layouts, with and without the flip test."""

from __future__ import annotations

import json

import numpy as np
import pytest

KP_TOL = 0.05
MAXVAL_TOL = 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["msra", "mmpose"])
def test_no_refine_reproduces_the_reference_outputs(shared_data, simplebaseline_models, kind, tmp_path):
    from pipelines.refine_coco import main

    ref = shared_data / "simplebaseline_reference"
    expected = json.loads((ref / f"expected_{kind}.json").read_text())["results"]
    dets = json.loads((ref / "detections.json").read_text())
    for flip in (True, False):
        out = tmp_path / f"{kind}_{flip}.json"
        argv = [str(shared_data / "coco_mmpose"), "--ann", str(shared_data / "coco_mmpose" / "test_coco.json"),
                "--detections", str(ref / "detections.json"), "--initializer", str(simplebaseline_models[kind]),
                "--no-refine", "--device", "cpu", "--no-progress", "--no-eval", "-o", str(out)]
        assert main(argv + ([] if flip else ["--no-flip"])) == 0
        got = json.loads(out.read_text())
        assert len(got) == len(dets)  # one entry per detection, in input order
        for e, d, r in zip(got, dets, expected):
            assert (e["image_id"], e["bbox"]) == (d["image_id"], d["bbox"]) and r["det_index"] == dets.index(d)
            res = r["flip" if flip else "noflip"]
            keep = [j for j in range(17) if j not in set(res["skip_joints"])]
            trip = np.asarray(e["keypoints"]).reshape(17, 3)
            dk = np.abs(trip[keep, :2] - np.asarray(res["keypoints"])[keep]).max()
            dm = np.abs(trip[keep, 2] - np.asarray(res["maxvals"])[keep]).max()
            assert dk <= KP_TOL and dm <= MAXVAL_TOL, (kind, flip, r["det_index"], dk, dm)


def test_detections_without_initializer_or_refine_are_refused_or_passed(shared_data, tmp_path, capsys):
    from pipelines.refine_coco import main

    ref = shared_data / "simplebaseline_reference"
    if not ref.is_dir():
        pytest.skip(f"{ref} not found")
    argv = [str(shared_data / "coco_mmpose"), "--ann", str(shared_data / "coco_mmpose" / "test_coco.json"),
            "--detections", str(ref / "detections.json"), "--no-refine", "-o", str(tmp_path / "o.json")]
    assert main(argv) == 2
    assert "--no-refine needs --initializer" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_detections_initializer_then_refiner(shared_data, tmp_path, capsys):
    """Detections -> initializer -> PoseFix (tiny random networks): one refined entry per detection, in input
    order, the initializer's maxvals kept as the scores, AP printed for the initializer and after PoseFix."""
    import torch

    from pipelines.refine_coco import main
    from posefix_video.config import ModelConfig
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.model import build_model
    from posefix_video.train.run import topdown_contract

    ref = shared_data / "simplebaseline_reference"
    if not ref.is_dir():
        pytest.skip(f"{ref} not found")
    torch.manual_seed(0)
    kw = dict(depth=18, input_size=(64, 64), layout="coco17", width=8, deconv_channels=16)
    td = ModelConfig(**kw, pose_input=False)
    save_checkpoint(tmp_path / "init.pth", build_model(td), td, input_contract=topdown_contract(td))
    pf = ModelConfig(**kw)
    save_checkpoint(tmp_path / "pf.pth", build_model(pf), pf)
    common = [str(shared_data / "coco_mmpose"), "--ann", str(shared_data / "coco_mmpose" / "test_coco.json"),
              "--detections", str(ref / "detections.json"), "--initializer", str(tmp_path / "init.pth"),
              "--device", "cpu", "--no-progress"]
    assert main(common + ["--no-refine", "-o", str(tmp_path / "init.json")]) == 0
    assert main(common + ["--checkpoint", str(tmp_path / "pf.pth"), "-o", str(tmp_path / "out.json")]) == 0
    err = capsys.readouterr().err
    assert "COCO OKS AP before" in err
    dets = json.loads((ref / "detections.json").read_text())
    init = json.loads((tmp_path / "init.json").read_text())
    out = json.loads((tmp_path / "out.json").read_text())
    assert len(out) == len(init) == len(dets)
    for d, i, o in zip(dets, init, out):
        assert o["bbox"] == i["bbox"] == d["bbox"] and "posefix_confidence" in o
        ti, to = np.asarray(i["keypoints"]).reshape(17, 3), np.asarray(o["keypoints"]).reshape(17, 3)
        assert np.array_equal(ti[:, 2], to[:, 2])  # the initializer's maxvals stay the scores
