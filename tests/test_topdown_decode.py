"""Top-down decoding and crops: the references' hand-made decoder cases, flip-back, cv2's fixed-point crop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posefix_video.config import ModelConfig
from posefix_video.keypoints import COCO17
from posefix_video.net.model import build_model
from posefix_video.net.topdown import TopDownEstimator, simplebaseline_contract
from posefix_video.net.topdown_codec import box_center_scale, crop_matrices, decode_argmax, flip_back
from posefix_video.net.warp import pad_frames, warp_affine_exact


def _cases(shared_data):
    path = shared_data / "simplebaseline_reference" / "decoder_cases.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def _heatmap(case, shape):
    hm = np.full(shape, float(case["background"]), dtype=np.float32)
    for y, x, v in case["points_y_x_value"]:
        hm[0, y, x] = v
    return torch.from_numpy(hm)[None]  # (1, 1, 64, 48)


@pytest.mark.parametrize("convention", ["msra", "mmpose"])
def test_hand_made_decoder_cases_match_each_reference(shared_data, convention):
    data = _cases(shared_data)
    assert len(data["cases"]) == 18
    differ = 0
    for case in data["cases"]:
        hm = _heatmap(case, tuple(data["heatmap_shape_khw"]))
        coords, maxvals = decode_argmax(hm, convention)
        ref = case[convention]
        assert coords[0, 0].tolist() == ref["keypoint_hm_xy"], case["name"]
        assert maxvals[0, 0].item() == pytest.approx(ref["maxval" if convention == "msra" else "score"], abs=0)
        differ += bool(case["references_differ"])
    assert differ > 0  # the fixture does exercise the differences


def test_decoders_differ_where_the_readme_says():
    # max at x = 1: Microsoft shifts nothing, mmpose still shifts y; all-negative: (0, 0) vs (-1, -1)
    hm = torch.zeros(1, 2, 64, 48)
    hm[0, 0, 30, 1], hm[0, 0, 31, 1], hm[0, 0, 30, 2] = 1.0, 0.5, 0.5
    hm[0, 1] = -1.0
    hm[0, 1, 10, 10] = -0.25
    msra, mv = decode_argmax(hm, "msra")
    mm, _ = decode_argmax(hm, "mmpose")
    assert msra[0].tolist() == [[1.0, 30.0], [0.0, 0.0]]
    assert mm[0].tolist() == [[1.0, 30.25], [-1.0, -1.0]]
    assert mv[0].tolist() == [1.0, -0.25]


def test_flip_back_swaps_pairs_mirrors_and_shifts_right_keeping_column_0():
    perm = torch.as_tensor(COCO17.flip_permutation)
    hm = torch.zeros(1, 17, 4, 5)
    hm[0, 1, 2, 0] = 1.0  # left eye, column 0 of the mirrored map
    hm[0, 0, 1, 4] = 2.0  # nose, last column
    out = flip_back(hm, perm)
    # left eye -> right eye slot (2), mirrored to column 4, shifted right: falls off the map
    assert out[0, 2].abs().sum() == 0
    # nose: mirrored to column 0, shifted to column 1, column 0 keeps its old value (the same 2.0)
    assert out[0, 0, 1].tolist() == [2.0, 2.0, 0.0, 0.0, 0.0]


def test_box_recipes_pad_and_fix_aspect_as_each_reference():
    box = np.array([[10.0, 20.0, 30.0, 100.0]])  # narrow: width grows to 0.75 * h, then x1.25
    for conv in ("msra", "mmpose"):
        c, s = box_center_scale(box, conv, (256, 192))
        assert c.tolist() == [[25.0, 70.0]] and s.tolist() == [[93.75, 125.0]]
    M = crop_matrices(np.array([[25.0, 70.0]]), np.array([[93.75, 125.0]]), "msra", (256, 192))
    # box centre -> crop centre (W/2, H/2); scale 192 / 93.75 on both axes
    assert np.allclose(M[0], [[2.048, 0, 96 - 2.048 * 25], [0, 2.048, 128 - 2.048 * 70]], atol=1e-9)


def test_warp_quantises_to_1_32_px_and_rounds_like_cv2():
    frame = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    frame[0, :, 2] = 64
    frame[0, :, 3] = 3
    # crop x = frame x - 1/64: cv2 rounds the position to 1/32 px -> 1/32 of the right neighbour
    M = torch.tensor([[[1.0, 0.0, -1 / 64], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    crop = warp_affine_exact(pad_frames(torch.from_numpy(frame)), torch.tensor([0]), M, (4, 6))
    # pixel 1: (0 * 31 + 64 * 1) / 32 = 2 exactly (an exact-position sampler gives 1); pixel 2: (64*31 + 3) / 32
    # = 62.09 -> 62; pixel 5 reads the zero border for 1/32
    assert crop[0, 0, 0].tolist() == [0, 2, 62, 3, 0, 0]
    # half a pixel: (0 + 64) / 2 = 32, (64 + 3) / 2 = 33.5 rounds up (fixed point + 512 >> 10), (3 + 0) / 2 -> 2
    M = torch.tensor([[[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    crop = warp_affine_exact(pad_frames(torch.from_numpy(frame)), torch.tensor([0]), M, (4, 6))
    assert crop[0, 1, 2].tolist() == [0, 32, 34, 2, 0, 0]


def test_estimator_batches_persons_and_frames_with_the_same_result():
    torch.manual_seed(0)
    cfg = ModelConfig(depth=18, input_size=(64, 64), width=8, deconv_channels=16, pose_input=False)
    model = build_model(cfg)
    for m in model.modules():  # random BN statistics: heatmaps with structure
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 20, 30], [30, 10, 25, 35], [-10, 20, 40, 40], [10, 0, 15, 45], [0, 0, 70, 50]], float)
    fidx = np.array([0, 2, 1, 2, 0])
    for decoder in ("argmax_msra", "argmax_mmpose", "soft_argmax"):
        contract = simplebaseline_contract("argmax_mmpose", cfg).replace(decoder=decoder)
        est = TopDownEstimator(model=model, layout=COCO17, input_size=cfg.input_size, contract=contract,
                               device="cpu", flip_test=True, batch_size=4)
        kp, mv = est.estimate_arrays(frames, fidx, boxes)
        assert kp.shape == (5, 17, 2) and mv.shape == (5, 17) and np.isfinite(kp).all()
        for i in (1, 2):  # one person alone in its own frame: the same numbers
            k1, m1 = est.estimate_arrays(frames[fidx[i]][None], np.array([0]), boxes[i : i + 1])
            assert np.allclose(k1[0], kp[i], atol=1e-4) and np.allclose(m1[0], mv[i], atol=1e-5)


def test_estimate_records_gives_box_only_persons_a_pose():
    from posefix_video.records import PersonRecord

    torch.manual_seed(1)
    cfg = ModelConfig(depth=18, input_size=(64, 64), width=8, deconv_channels=16, pose_input=False)
    est = TopDownEstimator(model=build_model(cfg), layout=COCO17, input_size=cfg.input_size,
                           contract=simplebaseline_contract("argmax_msra", cfg), device="cpu", flip_test=False)
    frames = np.random.default_rng(1).integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    empty = dict(keypoints=np.zeros((17, 2)), scores=None, present=np.zeros(17, bool))
    records = [PersonRecord(frame=11, track_id=4, box=[5, 5, 20, 30], person_score=0.7, extra={"k": 1}, **empty),
               PersonRecord(frame=10, track_id=5, box=[5, 5, 0, 30], **empty)]  # no area: unchanged
    out = est.estimate_records(frames, records, frame_offset=10)
    kp, mv = est.estimate_arrays(frames, np.array([1]), np.array([[5.0, 5, 20, 30]]))
    a, b = out
    assert a.present.all() and np.array_equal(a.keypoints, kp[0]) and np.array_equal(a.scores, mv[0])
    assert (a.frame, a.track_id, a.person_score, a.extra) == (11, 4, 0.7, {"k": 1, "initializer": "argmax_msra"})
    assert not b.present.any() and "initializer" not in b.extra and not records[0].present.any()
    with pytest.raises(ValueError, match=r"record 0 \(frame 12, track_id 4\) is outside the frames given"):
        est.estimate_records(frames, [records[0].replace(frame=12)], frame_offset=10)
