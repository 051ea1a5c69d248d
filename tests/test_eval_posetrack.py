"""poseval's quirks on small hand-built PoseTrack 2018 / 2017 files, malformed inputs, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.eval import evaluate_posetrack, evaluate_posetrack_dirs
from posefix_video.eval.posetrack_data import POSEVAL_JOINTS
from posefix_video.keypoints import POSETRACK18_NAMES

REPO = Path(__file__).resolve().parents[1]
SLOT_OF = [POSETRACK18_NAMES.index(n) for n in POSEVAL_JOINTS]  # poseval id -> 2018 slot


def _kp(x, y, labeled=True):
    """51 numbers: every joint but the ears at (x + slot, y)."""
    out = []
    for s in range(17):
        out += [0, 0, 0] if s in (3, 4) or not labeled else [x + s, y, 1]
    return out


def _video(frames, gt=True, name="000001_mpii_test", ignore=None):
    """frames: list of lists of (track_id, x, y[, score]); returns a PoseTrack 2018 dict."""
    images, anns = [], []
    for f, persons in enumerate(frames):
        iid = 10000010000 + f
        img = {"id": iid, "file_name": f"images/val/{name}/{f:06d}.jpg", "is_labeled": bool(persons)}
        if ignore and f in ignore:
            img["ignore_regions_x"], img["ignore_regions_y"] = ignore[f]
        images.append(img)
        for p in persons:
            a = {"image_id": iid, "track_id": p[0], "keypoints": _kp(p[1], p[2]), "category_id": 1}
            if gt:
                a.update(bbox_head=[p[1], p[2] - 30, 30, 30], scores=[])
            else:
                a["scores"] = [round(0.9 - 0.01 * s - 0.001 * p[0], 6) for s in range(17)] if len(p) < 4 else p[3]
            anns.append(a)
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(POSETRACK18_NAMES)}]}


def _write(tmp_path, gt, pred, name="000001_mpii_test.json"):
    (tmp_path / "gt").mkdir(exist_ok=True)
    (tmp_path / "pred").mkdir(exist_ok=True)
    (tmp_path / "gt" / name).write_text(json.dumps(gt))
    (tmp_path / "pred" / name).write_text(json.dumps(pred))
    return tmp_path / "gt", tmp_path / "pred"


def test_exact_predictions_and_last_frame_left_out_of_tracking(tmp_path):
    frames = [[(0, 100, 100), (1, 400, 100)]] * 3
    gt, pred = _write(tmp_path, _video(frames), _video(frames, gt=False))
    r = evaluate_posetrack_dirs(gt, pred)
    assert r.n_frames == 3
    assert np.allclose(r.ap, 100) and np.allclose(r.mota, 100)
    # 3 labeled frames -> 2 feed tracking: 2 persons x 2 frames = 4 objects per joint; check via a miss.
    missing_last = [[(0, 100, 100), (1, 400, 100)]] * 2 + [[(0, 100, 100)]]
    r2 = evaluate_posetrack_dirs(*_write(tmp_path, _video(frames), _video(missing_last, gt=False)))
    assert np.allclose(r2.mota, 100)  # the miss in the last frame is not counted
    assert r2.ap[0] < 100


def test_frame_without_predictions_is_one_miss_and_one_fp_per_joint(tmp_path):
    frames = [[(0, 100, 100), (1, 400, 100)]] * 3
    pred = [frames[0], [], frames[2]]
    r = evaluate_posetrack_dirs(*_write(tmp_path, _video(frames), _video(pred, gt=False)))
    # Tracking sees frames 0 and 1: frame 0 gives 2 matches, frame 1 a dummy: objects 3, miss 1, FP 1.
    assert r.mota[0] == pytest.approx(100 * (1 - 2 / 3))
    assert r.recall[0] == pytest.approx(100 * 2 / 3) and r.precision[0] == pytest.approx(100 * 2 / 3)


def test_unlabeled_frames_and_their_predictions_do_not_count(tmp_path):
    frames = [[(0, 100, 100)], [], [(0, 100, 100)]]
    pred = [[(0, 100, 100)], [(5, 700, 700)], [(0, 100, 100)]]
    r = evaluate_posetrack_dirs(*_write(tmp_path, _video(frames), _video(pred, gt=False)))
    assert r.n_frames == 2 and np.allclose(r.ap, 100) and np.allclose(r.mota, 100)


def test_absent_only_for_0_0_0_and_names_define_slots(tmp_path):
    frames = [[(0, 100, 100)]] * 2
    pred = _video(frames, gt=False)
    for a in pred["annotations"]:
        a["keypoints"][5 * 3 + 2] = 0  # left_shoulder v=0 but with coordinates: still predicted
    # Reorder the names and the triplets/scores consistently: the result must not change.
    perm = list(range(17))[::-1]
    names = [POSETRACK18_NAMES[i] for i in perm]
    for a in pred["annotations"]:
        trip = np.array(a["keypoints"]).reshape(17, 3)[perm]
        a["keypoints"] = trip.reshape(-1).tolist()
        a["scores"] = [a["scores"][i] for i in perm]
    pred["categories"][0]["keypoints"] = names
    r = evaluate_posetrack_dirs(*_write(tmp_path, _video(frames), pred))
    assert np.allclose(r.ap, 100)


def test_ignore_region_removes_points_strictly_inside(tmp_path):
    # Square around person 1 of frame 0; a false person inside it is not a false positive.
    frames = [[(0, 100, 100)]] * 2
    pred = [[(0, 100, 100), (7, 500, 500, [0.99] * 17)], [(0, 100, 100)]]  # ranked first: an FP would cost AP
    sq = ([[480, 540, 540, 480]], [[470, 470, 530, 530]])
    gt = _video(frames, ignore={0: sq})
    r = evaluate_posetrack_dirs(*_write(tmp_path, gt, _video(pred, gt=False)))
    assert np.allclose(r.ap, 100)
    r_no = evaluate_posetrack_dirs(*_write(tmp_path, _video(frames), _video(pred, gt=False)))
    assert r_no.ap[15] < 100


def test_poseval_2017_format_gives_the_same_numbers(tmp_path):
    frames = [[(0, 100, 100), (1, 400, 100)], [(0, 105, 100), (1, 400, 104)]]
    pred = [[(0, 102, 100), (1, 398, 100)], [(1, 106, 100), (0, 400, 104)]]
    r18 = evaluate_posetrack_dirs(*_write(tmp_path, _video(frames), _video(pred, gt=False)))

    def to17(video, gt):
        by_img = {}
        for a in video["annotations"]:
            by_img.setdefault(a["image_id"], []).append(a)
        annolist = []
        for im in video["images"]:
            rects = []
            for a in by_img.get(im["id"], []):
                kp = np.array(a["keypoints"], dtype=float).reshape(17, 3).tolist()
                pts = [{"id": [j], "x": [kp[s][0]], "y": [kp[s][1]]} | ({} if gt else {"score": [a["scores"][s]]})
                       for j, s in enumerate(SLOT_OF)]
                r = {"track_id": [a["track_id"]], "annopoints": [{"point": pts}]}
                if gt:
                    x, y, w, h = a["bbox_head"]
                    r.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
                rects.append(r)
            annolist.append({"image": [{"name": im["file_name"]}], "annorect": rects})
        return {"annolist": annolist}

    (tmp_path / "17").mkdir()
    gt17, pred17 = to17(_video(frames), True), to17(_video(pred, False), False)
    r17 = evaluate_posetrack_dirs(*_write(tmp_path / "17", gt17, pred17))
    assert np.allclose(r17.ap, r18.ap) and np.allclose(r17.mota, r18.mota, equal_nan=True)


def test_only_the_first_video_of_a_file_is_used(tmp_path):
    frames = [[(0, 100, 100)]] * 2
    gt = _video(frames)
    other = _video([[(0, 100, 100)]] * 2, name="000002_mpii_test")
    for im in other["images"]:
        im["id"] += 5000
    for a in other["annotations"]:
        a["image_id"] += 5000
    gt["images"] += other["images"]
    gt["annotations"] += other["annotations"]
    pred = _video(frames, gt=False)
    pred["images"] = gt["images"]
    r = evaluate_posetrack_dirs(*_write(tmp_path, gt, pred))
    assert r.n_frames == 2 and np.allclose(r.ap, 100)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p["images"].pop(), "prediction frames but 2 GT frames"),
    (lambda p: p["annotations"][1].update(track_id=0, image_id=p["annotations"][0]["image_id"]),
     "track_id 0 occurs more than once"),
    (lambda p: p["annotations"][0].pop("scores"), "without joint `scores`"),
    (lambda p: p["annotations"][0].update(track_id=10000), "not < 10000"),
    (lambda p: p["annotations"][0].pop("track_id"), "`track_id` is missing"),
    (lambda p: p["categories"][0].update(keypoints=list(p["categories"][0]["keypoints"][:15])), "lack"),
    (lambda p: p["categories"].append(dict(p["categories"][0])), "exactly one category"),
    (lambda p: p["annotations"][0].update(keypoints=[1, 2, 3]), "must hold 51 numbers"),
])
def test_malformed_predictions_are_refused_with_location(tmp_path, mutate, message):
    frames = [[(0, 100, 100), (1, 400, 100)]] * 2
    pred = _video(frames, gt=False)
    mutate(pred)
    gt, pr = _write(tmp_path, _video(frames), pred)
    with pytest.raises(InputError, match=message) as err:
        evaluate_posetrack_dirs(gt, pr)
    assert "000001_mpii_test.json" in str(err.value)


def test_missing_scores_fallback_is_poseval_minus_9999(tmp_path):
    frames = [[(0, 100, 100)]] * 2
    pred = _video(frames, gt=False)
    for a in pred["annotations"]:
        a["scores"] = []
    gt, pr = _write(tmp_path, _video(frames), pred)
    r = evaluate_posetrack_dirs(gt, pr, missing_scores="fallback")
    assert np.allclose(r.ap, 100)


def test_missing_prediction_file_and_api_pairing(tmp_path):
    frames = [[(0, 100, 100)]] * 2
    gt, pr = _write(tmp_path, _video(frames), _video(frames, gt=False))
    (gt / "000002_mpii_test.json").write_text(json.dumps(_video(frames, name="000002_mpii_test")))
    with pytest.raises(InputError, match="prediction file not found"):
        evaluate_posetrack_dirs(gt, pr)
    r = evaluate_posetrack([gt / "000001_mpii_test.json"], [pr / "000001_mpii_test.json"], tracking=False)
    assert r.mota is None and "mota" not in r.to_json()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.evaluate", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_outputs_and_refusal(tmp_path):
    frames = [[(0, 100, 100), (1, 400, 100)]] * 3
    gt, pr = _write(tmp_path, _video(frames), _video([frames[0], [], frames[2]], gt=False))
    out = tmp_path / "m.json"
    p = _cli("--gt", gt, "--pred", pr, "--json", out, "--plot", tmp_path / "m.png")
    assert p.returncode == 0, p.stderr
    assert "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\" in p.stdout
    data = json.loads(out.read_text())
    assert set(data) >= {"ap", "mota", "motp", "motp_textbook", "precision", "recall"}
    assert list(data["ap"]) == ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]
    assert data["mota"]["Total"] == pytest.approx(100 * (1 - 2 / 3))
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    # A duplicate track id: exit 2, message with file, frame and track, no traceback, no output file.
    bad = _video(frames, gt=False)
    bad["annotations"][1]["track_id"] = 0
    (pr / "000001_mpii_test.json").write_text(json.dumps(bad))
    out.unlink()
    p = _cli("--gt", gt, "--pred", pr, "--json", out, "--no-tracking")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "000001_mpii_test.json" in p.stderr and "000000.jpg" in p.stderr and "track_id 0" in p.stderr
    assert not out.exists()
