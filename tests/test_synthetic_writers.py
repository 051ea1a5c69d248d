"""Synthetic COCO datasets and PoseTrack18 videos: loadable by pycocotools / our reader / the evaluator,
deterministic, and consistent with the rendered frames."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines import make_synthetic
from posefix_video.io import read_posetrack18
from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.synthetic import coco_dataset, posetrack_videos
from posefix_video.synthetic import render as rd


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


COCO_SETTINGS = coco_dataset.CocoSettings(num_images=3, seed=5, width=320, height=240, max_persons=5)
VIDEO_SETTINGS = posetrack_videos.VideoSettings(num_videos=1, num_frames=10, seed=4, width=320, height=240,
                                                min_tracks=3, max_tracks=4, first_video=17)  # fmt: skip


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coco")
    coco_dataset.write_coco_dataset(out, COCO_SETTINGS)
    return out


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pt")
    posetrack_videos.write_posetrack_videos(out, VIDEO_SETTINGS)
    return out


def test_coco_dataset_loads_with_pycocotools(coco_dir):
    from pycocotools.coco import COCO

    coco = COCO(str(coco_dir / "annotations" / "person_keypoints_train2017.json"))
    assert coco.getImgIds() == [1, 2, 3]
    assert coco.loadCats(1)[0]["keypoints"] == list(COCO17.names)
    total = 0
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        image = cv2.imread(str(coco_dir / "train2017" / info["file_name"]))
        assert image.shape == (240, 320, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, catIds=[1], iscrowd=False))
        total += len(anns)
        _, labels, truths = coco_dataset.render_coco_image(COCO_SETTINGS, img_id - 1)
        assert len(anns) == len(truths)
        for ann, truth in zip(anns, truths):
            kp = np.array(ann["keypoints"]).reshape(17, 3)
            assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
            assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
            assert (kp[kp[:, 2] == 0] == 0).all()
            assert np.allclose(kp[:, :2], truth.coco[:, :2], atol=0.006)
            assert ann["area"] == int((labels // rd.PARTS == truth.slot + 1).sum())
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 240
            vis = kp[:, 2] == 2  # visible joints lie on the person in the saved annotation
            pix = np.round(kp[vis, :2]).astype(int)
            assert (labels[pix[:, 1], pix[:, 0]] // rd.PARTS == truth.slot + 1).all()
    assert total >= 3


def test_coco_dataset_is_deterministic(coco_dir, tmp_path):
    coco_dataset.write_coco_dataset(tmp_path / "again", COCO_SETTINGS)
    assert _hashes(coco_dir) == _hashes(tmp_path / "again")
    other = coco_dataset.CocoSettings(**{**COCO_SETTINGS.__dict__, "seed": 6})
    coco_dataset.write_coco_dataset(tmp_path / "other", other)
    assert _hashes(coco_dir) != _hashes(tmp_path / "other")


def test_posetrack_video_layout_and_ground_truth(video_dir):
    name = "000017_mpiinew_test"
    path = video_dir / "annotations" / "val" / f"{name}.json"
    data = json.loads(path.read_text())
    images = data["images"]
    assert [im["id"] for im in images] == [3 * 10**10 + 17 * 10**4 + t for t in range(10)]
    assert [im["file_name"] for im in images] == [f"images/val/{name}/{t:06d}.jpg" for t in range(10)]
    for im in images:
        assert im["nframes"] == 10 and im["is_labeled"] is True and im["vid_id"] == "000017"
        assert im["ignore_regions_x"] == [] and im["ignore_regions_y"] == []
        assert (im["width"], im["height"]) == (320, 240)
        assert (video_dir / im["file_name"]).is_file()
    assert data["categories"][0]["keypoints"] == list(POSETRACK18.names)
    for ann in data["annotations"]:
        assert ann["scores"] == [] and len(ann["bbox_head"]) == 4 and len(ann["keypoints"]) == 51
        kp = np.array(ann["keypoints"]).reshape(17, 3)
        assert (kp[[3, 4]] == 0).all() and set(np.unique(kp[:, 2])) <= {0, 1}
        assert ann["num_keypoints"] == int(kp[:, 2].sum())
    from posefix_video.io.validate import validate_posetrack18

    assert validate_posetrack18(path, kind="gt") == []
    seq = read_posetrack18(path)
    assert seq.num_frames == 10 and seq.layout is POSETRACK18
    # Track ids are consistent: each track's hips move smoothly from frame to frame.
    tracks: dict[int, dict[int, np.ndarray]] = {}
    for p in seq.persons():
        assert p.track_id < 10000
        if p.present[11] and p.present[12]:
            tracks.setdefault(p.track_id, {})[p.frame] = p.keypoints[11:13].mean(0)
    assert len(tracks) >= 2
    steps = [np.linalg.norm(frames[f + 1] - frames[f]) for frames in tracks.values() for f in frames if f + 1 in frames]
    assert max(steps) < 25 and max(steps) > 1  # someone moves, nobody jumps
    # The JSON matches the rendered frames: visible (COCO v=2) joints sit on their person's pixels.
    for t, _, labels, truths in posetrack_videos.render_video(VIDEO_SETTINGS, 0):
        listed = {p.track_id: p for p in seq.persons_in(t)}
        for truth in truths:
            if truth.posetrack[:, 2].any():
                written = listed[truth.track_id].keypoints
                assert np.allclose(written, truth.posetrack[:, :2], atol=0.006)
                vis = truth.coco[:, 2] == 2
                vis[:5] = False
                pix = np.round(written[vis]).astype(int)
                assert (labels[pix[:, 1], pix[:, 0]] // rd.PARTS == truth.slot + 1).all()


def test_posetrack_mp4_holds_the_frames(video_dir):
    cap = cv2.VideoCapture(str(video_dir / "videos" / "val" / "000017_mpiinew_test.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 10
    jpeg = cv2.imread(str(video_dir / "images" / "val" / "000017_mpiinew_test" / "000004.jpg"))
    assert np.abs(frames[4].astype(int) - jpeg.astype(int)).mean() < 8


def test_posetrack_videos_are_deterministic(video_dir, tmp_path):
    posetrack_videos.write_posetrack_videos(tmp_path, VIDEO_SETTINGS)
    assert _hashes(video_dir) == _hashes(tmp_path)


def test_label_every_marks_and_annotates_only_those_frames(tmp_path):
    settings = posetrack_videos.VideoSettings(num_videos=1, num_frames=9, seed=1, width=160, height=120,
                                              label_every=4, write_mp4=False)  # fmt: skip
    (path,) = posetrack_videos.write_posetrack_videos(tmp_path, settings)
    data = json.loads(path.read_text())
    labeled = {im["id"] for im in data["images"] if im["is_labeled"]}
    assert [im["is_labeled"] for im in data["images"]] == [t % 4 == 0 for t in range(9)]
    assert {a["image_id"] for a in data["annotations"]} <= labeled
    assert not (tmp_path / "videos").exists()


def test_ground_truth_scores_100_ap_against_itself(video_dir, tmp_path):
    from posefix_video.eval import evaluate_posetrack
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings, simulate_files

    gt = video_dir / "annotations" / "val" / "000017_mpiinew_test.json"
    result = evaluate_posetrack([gt], [gt], tracking=False, missing_scores="fallback")
    assert result.groups("ap")["Total"] == pytest.approx(100.0)
    (pred,) = simulate_files([gt], tmp_path, TrackerSimSettings.clean(), seed=0)
    result = evaluate_posetrack([gt], [pred], tracking=True)
    assert result.groups("ap")["Total"] == pytest.approx(100.0)
    assert result.groups("mota")["Total"] == pytest.approx(100.0)


def test_cli_writes_and_refuses_bad_input(tmp_path, capsys):
    assert make_synthetic.main(["coco", "--out", str(tmp_path / "c"), "--num-images", "1", "--size", "160x120"]) == 0
    assert (tmp_path / "c" / "annotations" / "person_keypoints_train2017.json").is_file()
    assert make_synthetic.main(["track", "--gt", str(tmp_path / "missing"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert make_synthetic.main(["track", "--gt", str(bad), "--out", str(tmp_path / "p")]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert not (tmp_path / "p" / "bad.json").exists()
    with pytest.raises(SystemExit):
        make_synthetic.main(["posetrack", "--out", str(tmp_path), "--size", "640by480"])


def test_training_loaders_read_the_synthetic_sets(coco_dir, video_dir):
    """The project's training data code (data/) loads both layouts and cuts crops whose target joints are the GT."""
    from posefix_video.keypoints import COCO17
    from posefix_video.train.data import PoseFixDataset, coco_paths, load_coco_persons, load_posetrack_persons

    ann, images = coco_paths(coco_dir, "train2017")
    persons = load_coco_persons(ann, images, COCO17)
    assert len(persons) >= 3
    ds = PoseFixDataset(persons=persons, layout=COCO17, input_hw=(64, 48), augmentation=None, synthesize=False)
    sample = ds[0]
    assert sample["image"].shape == (64, 48, 3) and sample["target_valid"].any()
    pt_persons = load_posetrack_persons(video_dir / "annotations" / "val", video_dir, POSETRACK18)
    data = json.loads((video_dir / "annotations" / "val" / "000017_mpiinew_test.json").read_text())
    assert len(pt_persons) == sum(1 for a in data["annotations"] if a["num_keypoints"] > 0)
    ds = PoseFixDataset(persons=pt_persons, layout=POSETRACK18, input_hw=(64, 48), augmentation=None,
                        synthesize=True)  # fmt: skip
    sample = ds[len(ds) - 1]
    assert not sample["target_valid"][[3, 4]].any() and sample["input_valid"].any()


def test_settings_outside_the_posetrack_id_scheme_are_refused(tmp_path, capsys):
    args = ["posetrack", "--out", str(tmp_path / "o"), "--no-mp4"]
    assert make_synthetic.main([*args, "--frames", "10000"]) == 2
    assert "4 frame digits" in capsys.readouterr().err
    assert make_synthetic.main([*args, "--first-video", "999999", "--num-videos", "2"]) == 2
    assert "6 digits" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_reports_an_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert make_synthetic.main(["coco", "--out", str(blocker / "sub"), "--num-images", "1"]) == 2
    err = capsys.readouterr().err
    assert "file" in err and "Traceback" not in err
