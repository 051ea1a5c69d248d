"""The top-down initializer against the two SimpleBaseline references (../shared/data/simplebaseline_reference):
the references' own keypoints (0.05 px) and maxvals (1e-3) from their person boxes on the COCO sample images, with
and without the flip test, and their intermediates (network input, heatmaps) for two boxes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from posefix_video.net.topdown import TopDownEstimator, normalise_image
from posefix_video.net.topdown_codec import box_center_scale, crop_matrices, decode_argmax, flip_back, heatmap_to_frame
from posefix_video.net.warp import pad_frames, warp_affine_exact

KP_TOL = 0.05  # px, the fixture's tolerance
MAXVAL_TOL = 1e-3


def _reference(shared_data, kind):
    folder = shared_data / "simplebaseline_reference"
    expected = json.loads((folder / f"expected_{kind}.json").read_text())["results"]
    debug = dict(np.load(folder / f"debug_{kind}.npz"))
    coco = json.loads((shared_data / "coco_mmpose" / "test_coco.json").read_text())
    files = {im["id"]: shared_data / "coco_mmpose" / im["file_name"] for im in coco["images"]}
    return expected, debug, files


def _rgb(path):
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)[..., ::-1])


def _check(result, keypoints, maxvals, label):
    skip = set(result["skip_joints"])
    keep = [j for j in range(17) if j not in skip]
    ek, em = np.array(result["keypoints"])[keep], np.array(result["maxvals"])[keep]
    dk = np.abs(keypoints[keep] - ek).max()
    dm = np.abs(maxvals[keep] - em).max()
    assert dk <= KP_TOL, f"{label}: keypoints off by {dk:.4f} px"
    assert dm <= MAXVAL_TOL, f"{label}: maxvals off by {dm:.2e}"


@pytest.mark.parametrize("kind", ["msra", "mmpose"])
def test_debug_boxes_match_the_reference_intermediates_and_outputs(shared_data, simplebaseline_models, kind):
    expected, debug, files = _reference(shared_data, kind)
    est = TopDownEstimator.from_checkpoint(simplebaseline_models[kind], device="cpu", flip_test=True)
    assert est.contract.channel_order == ("BGR" if kind == "msra" else "RGB")
    dets = [expected[i] for i in debug["det_index"]]
    boxes = np.array([d["bbox"] for d in dets])
    # crop centre and size exactly as the reference (float32), then the crop itself bit for bit
    centre, size = box_center_scale(boxes, kind, (256, 192))
    assert np.array_equal(centre, debug["center"])
    assert np.array_equal(size, debug["scale"] * (200 if kind == "msra" else 1))
    crops = torch.cat([
        warp_affine_exact(pad_frames(torch.from_numpy(_rgb(files[d["image_id"]]))[None]), torch.tensor([0]),
                          torch.from_numpy(crop_matrices(centre[i : i + 1], size[i : i + 1], kind, (256, 192))),
                          (256, 192))
        for i, d in enumerate(dets)])
    x = normalise_image(crops, est.contract)
    assert np.abs(x.numpy() - debug["input"]).max() < 1e-5  # same crop bits; float rounding of (x - m) / s only
    out = est.network(crops)  # (4, 17, 64, 48): the two boxes, then their mirrored crops
    assert np.abs(out[:2].numpy() - debug["heatmaps"]).max() < 1e-4
    flipped = flip_back(out[2:], est._flip_perm)
    assert np.abs(flipped.numpy() - debug["heatmaps_flipped"]).max() < 1e-4
    for flip, merged in (("noflip", out[:2]), ("flip", (out[:2] + flipped) * 0.5)):
        coords, maxvals = decode_argmax(merged, kind)
        kp = heatmap_to_frame(coords.numpy(), centre, size, kind, (256, 192), (64, 48))
        for i, d in enumerate(dets):
            _check(d[flip], kp[i], maxvals[i].numpy(), f"{kind} det {d['det_index']} {flip}")
    # the estimator's own path (frames -> boxes -> keypoints), without the flip test to keep this test short
    est = TopDownEstimator(model=est.model, layout=est.layout, input_size=est.input_size, contract=est.contract,
                           device="cpu", flip_test=False)
    images = [_rgb(files[d["image_id"]]) for d in dets]
    frames = np.zeros((2, max(im.shape[0] for im in images), max(im.shape[1] for im in images), 3), np.uint8)
    for f, im in zip(frames, images):  # zeros beyond a frame read as the crop's border value: the same crops
        f[: im.shape[0], : im.shape[1]] = im
    kp, mv = est.estimate_arrays(frames, np.arange(2), boxes)
    for i, d in enumerate(dets):
        _check(d["noflip"], kp[i], mv[i], f"{kind} det {d['det_index']} estimate_arrays")


@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("kind", ["msra", "mmpose"])
def test_refine_coco_no_refine_reproduces_the_reference(shared_data, simplebaseline_models, tmp_path, kind, flip):
    """The done-when: `refine_coco IMAGES --ann ANN --detections DETS --initializer CKPT --no-refine [--no-flip]`
    gives every reference box the reference's keypoints (0.05 px) and maxvals (1e-3), in input order."""
    from pipelines import refine_coco

    expected, _, _ = _reference(shared_data, kind)
    folder = shared_data / "coco_mmpose"
    out = tmp_path / "out.json"
    argv = [str(folder), "--ann", str(folder / "test_coco.json"), "--detections",
            str(shared_data / "simplebaseline_reference" / "detections.json"), "--initializer",
            str(simplebaseline_models[kind]), "--no-refine", "--device", "cpu", "--no-progress", "-o", str(out)]
    assert refine_coco.main(argv + (["--no-flip"] if not flip else [])) == 0
    results = json.loads(out.read_text())
    assert len(results) == len(expected) == 26
    for entry, ref in zip(results, expected):
        assert entry["image_id"] == ref["image_id"] and entry["bbox"] == pytest.approx(ref["bbox"])
        kp = np.array(entry["keypoints"]).reshape(17, 3)
        _check(ref["flip" if flip else "noflip"], kp[:, :2], kp[:, 2], f"{kind} det {ref['det_index']}")
