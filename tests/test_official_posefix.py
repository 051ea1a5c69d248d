"""Exactness against the OFFICIAL PoseFix test pipeline (../shared/data/official_posefix, README there): the glue
reproduces the debug tensors, the imported network its logits, and the Refiner / refine_coco with the official test
rules every person's `refined_xys` (flip test) and `coord_noflip` within 0.01 px (fp32, CPU). Skips where the data is
absent. The official run filters and sorts its inputs; we keep input order and compare per `input_index`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from posefix_video.keypoints import get_layout
from posefix_video.net.checkpoint import load_model
from posefix_video.net.contract import InputContract
from posefix_video.net.heatmaps import make_network_input, soft_argmax
from posefix_video.net.official import official_boxes, official_crop_joints
from posefix_video.net.refiner import Refiner
from posefix_video.net.warp import pad_frames, warp_affine_exact

TOL_PX = 0.01  # the fixture's target, image px
# dataset -> (expected file tag, import dataset, layout, image folder under shared/data, annotation file)
CASES = {
    "COCO": ("coco", "coco17", "coco_mmpose", "coco_mmpose/test_coco.json"),
    "PoseTrack": ("posetrack", "posetrack18", "posetrack18_mmpose",
                  "posetrack18_mmpose/annotations/test_posetrack18_val.json"),
}


def _expected(shared_data, ds):
    folder = shared_data / "official_posefix"
    if not (folder / f"expected_{ds}.json").is_file():
        pytest.skip(f"{folder} not found")
    return json.loads((folder / f"expected_{ds}.json").read_text()), dict(np.load(folder / f"debug_{ds}.npz"))


def _image_rgb(shared_data, ds, image_id):
    _, _, root, ann = CASES[ds]
    names = {im["id"]: im["file_name"] for im in json.loads((shared_data / ann).read_text())["images"]}
    bgr = cv2.imread(str(shared_data / root / names[image_id]), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return np.ascontiguousarray(bgr[..., ::-1])


@pytest.mark.parametrize("ds", list(CASES))
def test_debug_tensors_glue(shared_data, ds):
    """Crop, input coordinates, input heatmaps, soft-argmax and map back of the debug person (no network)."""
    exp, dbg = _expected(shared_data, ds)
    layout = get_layout(CASES[ds][1])
    person = exp["persons"][exp["numerics"]["debug_person"]]
    kp = np.asarray(person["input_keypoints"], dtype=np.float64)[None]
    boxes = official_boxes(kp[..., :2], layout, (256, 192))
    assert np.array_equal(boxes["matrix"][0], np.asarray(person["affine_2x3"]))
    assert np.array_equal(boxes["box"][0], np.asarray(person["crop_box_x0y0x1y1"]))
    # the crop, bit for bit as cv2.warpAffine cut it (the debug image is the BGR crop minus the means, float32)
    rgb = _image_rgb(shared_data, ds, person["image_id"])
    crop = warp_affine_exact(pad_frames(torch.as_tensor(rgb[None])), torch.tensor([0]),
                             torch.as_tensor(boxes["matrix"]), (256, 192))  # (1, 3, H, W) RGB
    fed_bgr = np.round(dbg["image"].astype(np.float64) + [123.68, 116.78, 103.94])
    assert np.array_equal(crop[0].flip(0).permute(1, 2, 0).numpy(), fed_bgr)
    coords = official_crop_joints(kp[..., :2], kp[..., 2], boxes["matrix"])[0]
    assert np.abs(coords - dbg["input_pose_coord"]).max() < 1e-4
    contract = InputContract.official_posefix(layout.name, sigma=7.0)
    valid = torch.as_tensor(layout.used_mask)[None]
    x = make_network_input(crop, torch.as_tensor(coords, dtype=torch.float32)[None], valid, contract=contract)
    assert np.abs(x[0, :3].permute(1, 2, 0).numpy() - dbg["image"]).max() < 1e-4
    assert np.abs(x[0, 3:].permute(1, 2, 0).numpy() - dbg["input_heatmaps"]).max() < 1e-3  # peak 255
    assert np.array_equal(valid[0].numpy().astype(np.float32), dbg["input_pose_valid"])
    # soft-argmax over integer cells x 4, on the official logits
    for logits, coord in (("output_logits", "coord"), ("output_logits_flip", "coord_flip")):
        cells, _ = soft_argmax(torch.as_tensor(dbg[logits]).permute(2, 0, 1)[None])
        assert np.abs(cells[0].numpy() * 4 - dbg[coord]).max() < 1e-3
    # flip back (191 - x, pair swap), average, map back with the box
    back = dbg["coord_flip"][layout.flip_permutation].copy()
    back[:, 0] = 191 - back[:, 0]
    avg = (dbg["coord"] + back) / 2
    x0, y0, x1, y1 = boxes["box"][0]
    refined = np.stack([avg[:, 0] / 192 * (x1 - x0) + x0, avg[:, 1] / 256 * (y1 - y0) + y0], axis=-1)
    used = layout.used_mask
    assert np.linalg.norm(refined - dbg["refined_xys"], axis=-1)[used].max() < 1e-3


@pytest.mark.parametrize("ds", list(CASES))
def test_imported_network_gives_the_official_logits(shared_data, official_posefix_model, ds):
    _, dbg = _expected(shared_data, ds)
    model, cfg, contract = load_model(official_posefix_model(CASES[ds][0]))
    assert contract == InputContract.official_posefix(CASES[ds][1], sigma=7.0)
    x = torch.cat([torch.as_tensor(dbg["image"]), torch.as_tensor(dbg["input_heatmaps"])], -1).permute(2, 0, 1)
    with torch.inference_mode():
        logits = model(x[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(logits - dbg["output_logits"]).max() < 1e-4  # logits std ~2.4


def _refine_persons(shared_data, ds, checkpoint, flip_test, persons):
    refiner = Refiner.from_checkpoint(checkpoint, device="cpu", flip_test=flip_test, official_test=True)
    assert refiner.precision == "fp32"
    out = {}
    by_image = {}
    for p in persons:
        by_image.setdefault(p["image_id"], []).append(p)
    for image_id, group in by_image.items():
        kp = np.asarray([p["input_keypoints"] for p in group], dtype=np.float64)
        res = refiner.refine_arrays(_image_rgb(shared_data, ds, image_id)[None], np.zeros(len(group), dtype=int),
                                    kp[..., :2], ~(kp == 0).all(-1), joint_scores=kp[..., 2])
        assert res.refined.all()
        out.update({p["input_index"]: res.keypoints[i] for i, p in enumerate(group)})
    return out


@pytest.mark.parametrize("ds", list(CASES))
def test_refiner_official_rules_reproduce_the_debug_person(shared_data, official_posefix_model, ds):
    exp, _ = _expected(shared_data, ds)
    person = exp["persons"][exp["numerics"]["debug_person"]]
    used = get_layout(CASES[ds][1]).used_mask
    for flip_test, key in ((True, "refined_xys"), (False, "coord_noflip")):
        got = _refine_persons(shared_data, ds, official_posefix_model(CASES[ds][0]), flip_test, [person])
        err = np.linalg.norm(got[person["input_index"]] - np.asarray(person[key]), axis=-1)[used]
        assert err.max() < TOL_PX, (key, err.max())


@pytest.mark.slow
@pytest.mark.parametrize("ds", list(CASES))
@pytest.mark.parametrize("flip", [True, False])
def test_refine_coco_official_test_reproduces_every_person(shared_data, official_posefix_model, tmp_path, ds, flip,
                                                           capsys):
    """`refine_coco --official-test` on the 16 inputs: every person within 0.01 px; OKS-NMS 0.9 keeps what the
    official NMS kept."""
    from pipelines.refine_coco import main

    exp, _ = _expected(shared_data, ds)
    tag, layout_name, root, ann = CASES[ds]
    out = tmp_path / "out.json"
    args = [str(shared_data / root), "--ann", str(shared_data / ann), "--results",
            str(shared_data / "official_posefix" / f"inputs_{ds}.json"), "--checkpoint",
            str(official_posefix_model(tag)), "-o", str(out), "--official-test", "--device", "cpu", "--no-progress"]
    assert main(args + ([] if flip else ["--no-flip"])) == 0
    inputs = json.loads((shared_data / "official_posefix" / f"inputs_{ds}.json").read_text())
    written = json.loads(out.read_text())
    assert len(written) == len(inputs)  # one entry per input, in input order
    used = get_layout(layout_name).used_mask
    worst = 0.0
    for p in exp["persons"]:
        entry = written[p["input_index"]]
        assert entry["image_id"] == inputs[p["input_index"]]["image_id"]
        trip = np.asarray(entry["keypoints"]).reshape(17, 3)
        assert np.array_equal(trip[:, 2], np.asarray(inputs[p["input_index"]]["keypoints"]).reshape(17, 3)[:, 2])
        assert len(entry["posefix_confidence"]) == 17
        ref = np.asarray(p["refined_xys" if flip else "coord_noflip"])
        worst = max(worst, float(np.linalg.norm(trip[:, :2] - ref, axis=-1)[used].max()))
    print(f"{ds} {'refined_xys' if flip else 'coord_noflip'}: max error {worst:.5f} px over {len(exp['persons'])} "
          "persons")  # the figure docs/model.md quotes (pytest -m slow -s)
    assert worst < TOL_PX, worst
    if flip:
        assert main(args + ["--oks-nms", "0.9", "-o", str(tmp_path / "nms.json")]) == 0
        kept = json.loads((tmp_path / "nms.json").read_text())
        official_kept = [p["input_index"] for p in exp["persons"] if p["kept_by_oks_nms"]]
        assert len(kept) == len(official_kept)
        same = {json.dumps(written[i]["keypoints"]) for i in official_kept}
        assert {json.dumps(e["keypoints"]) for e in kept} == same
