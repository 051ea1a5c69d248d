"""mmpose prediction dumps and ultralytics YOLO-pose label folders through read_tracks: hand-written tiny inputs
with hand-computed records, both frame bases, content detection (old formats unchanged), every refusal, and the
refine_video CLI on a synthetic clip with each new format."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.io import detect_format, read_tracks
from posefix_video.keypoints import COCO17, POSETRACK18

# ------------------------------------------------------------------------------------------------ mmpose


def _inst(seed: float, track=None, scores=None, k=17, **extra) -> dict:
    """An instance as mmpose's split_instances writes it: point i at (10 i + seed, 5 i + 2 seed)."""
    kps = [[10.0 * i + seed, 5.0 * i + 2 * seed] for i in range(k)]
    out = {"keypoints": kps, "keypoint_scores": scores if scores is not None else [0.5 + i / 100 for i in range(k)],
           "bbox": [[seed, 2 * seed, seed + 100.0, 2 * seed + 200.0]], "bbox_score": 0.875, **extra}  # fmt: skip
    if track is not None:
        out["track_id"] = track
    return out


def _write(tmp_path, name, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_mmpose_inferencer_video(tmp_path, caplog):
    data = [{"frame_id": 0, "instances": [_inst(1.0, track=3), _inst(2.0, track=4)]},
            {"frame_id": 1, "instances": []},
            {"frame_id": 2, "instances": [_inst(3.0)]}]  # fmt: skip
    with caplog.at_level(logging.INFO):  # a frame 0: the 0-based reading is certain, logged at info level
        seq = read_tracks(_write(tmp_path, "clip.json", data))
    assert "read as 0-based" in caplog.text
    assert seq.source_format == "mmpose" and seq.layout is COCO17 and seq.name == "clip"
    assert sorted(seq.frames) == [0, 2] and seq.meta["frame_base"] == 0
    a, b = seq.persons_in(0)
    c = seq.persons_in(2)[0]
    assert (a.track_id, b.track_id, c.track_id) == (3, 4, None)
    assert a.keypoints[4].tolist() == [41.0, 22.0] and c.keypoints[16].tolist() == [163.0, 86.0]
    assert a.scores[4] == pytest.approx(0.54) and a.visibility[4] == pytest.approx(0.54) and a.present.all()
    assert a.box.tolist() == [1.0, 2.0, 100.0, 200.0] and a.person_score == 0.875


def test_mmpose_demo_video_is_1_based(tmp_path):
    # The demo numbers frames from 1 and dumps dataset_meta with json_tricks (arrays as {"__ndarray__": ...}).
    meta = {"dataset_name": "coco", "num_keypoints": 17, "sigmas": {"__ndarray__": [0.026] * 17, "dtype": "float32",
                                                                     "shape": [17]}}  # fmt: skip
    data = {"meta_info": meta, "instance_info": [{"frame_id": 1, "instances": [_inst(1.0)]},
                                                  {"frame_id": 2, "instances": []},
                                                  {"frame_id": 3, "instances": [_inst(2.0)]}]}  # fmt: skip
    path = _write(tmp_path, "results_clip.json", data)
    seq = read_tracks(path)
    assert sorted(seq.frames) == [0, 2] and seq.meta["frame_base"] == 1 and seq.layout is COCO17
    assert seq.persons_in(2)[0].keypoints[0].tolist() == [2.0, 4.0]
    assert sorted(read_tracks(path, num_frames=3).frames) == [0, 2]  # largest frame == frame count -> 1-based
    assert sorted(read_tracks(path, frame_base=0).frames) == [1, 3]
    with pytest.raises(InputError, match=r"beyond the video's 3 frames"):
        read_tracks(path, frame_base=0, num_frames=3)


def test_mmpose_demo_posetrack18_model_and_layout_option(tmp_path):
    data = {"meta_info": {"dataset_name": "posetrack18"}, "instance_info": [{"frame_id": 1, "instances": [_inst(1)]}]}
    path = _write(tmp_path, "r.json", data)
    assert read_tracks(path).layout is POSETRACK18
    assert read_tracks(path, layout="coco17").layout is COCO17
    inf = _write(tmp_path, "inf.json", [{"frame_id": 0, "instances": [_inst(1)]}])
    assert read_tracks(inf, layout="posetrack18").layout is POSETRACK18


def test_mmpose_image_dumps_are_frame_0(tmp_path):
    seq = read_tracks(_write(tmp_path, "img.json", [_inst(1.0), _inst(5.0, track=2)]), frame_base=1)
    assert list(seq.frames) == [0] and [p.track_id for p in seq.persons_in(0)] == [None, 2]
    assert seq.persons_in(0)[1].keypoints[1].tolist() == [15.0, 15.0]
    demo = {"meta_info": {}, "instance_info": [_inst(1.0)]}
    assert list(read_tracks(_write(tmp_path, "demo_img.json", demo)).frames) == [0]


def test_mmpose_zero_score_origin_joint_absent_and_flat_bbox(tmp_path):
    inst = _inst(1.0)
    inst["keypoints"][3] = [0, 0]
    inst["keypoint_scores"][3] = 0
    inst["bbox"] = [10, 20, 30, 60]  # a flat box (some forks drop the one-element wrapper)
    inst["keypoints_visible"] = [1.0] * 17
    p = read_tracks(_write(tmp_path, "r.json", [{"frame_id": 0, "instances": [inst]}])).persons_in(0)[0]
    assert not p.present[3] and p.present.sum() == 16
    assert p.box.tolist() == [10.0, 20.0, 20.0, 40.0] and p.extra == {"keypoints_visible": [1.0] * 17}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[0]["instances"][0].update(_inst(1, k=133)), r"frame_id 4\), instance \[0\]: mmpose output with "
     r"133 keypoints \(COCO-WholeBody\); 17 COCO keypoints are needed"),
    (lambda d: d[0]["instances"][0]["keypoints"].__setitem__(5, [1.0, "x"]), r"instance \[0\]: `keypoints`\[5\] is "
     r"\[1.0, \"x\"\], expected finite numbers"),
    (lambda d: d[0]["instances"][0]["keypoint_scores"].__setitem__(2, None), r"`keypoint_scores`\[2\] is null"),
    (lambda d: d[0]["instances"][0].update(keypoint_scores=[0.5] * 16), r"`keypoint_scores` has 16 values, expected"),
    (lambda d: d[0]["instances"][0].pop("keypoint_scores"), r"instance without `keypoints` and `keypoint_scores`"),
    (lambda d: d[0].update(frame_id="4"), r"\[0\]: `frame_id` is \"4\", expected an integer"),
    (lambda d: d[0]["instances"][0].update(keypoints=[[1, 2, 3]] * 17), r"3 coordinates each; 2D"),
    (lambda d: d[0]["instances"][0].update(track_id=1.5), r"`track_id` is 1.5, expected an integer"),
    (lambda d: d[0]["instances"][0].update(bbox=[[1, 2, 3]]), r"`bbox` has 3 values, expected 4"),
    (lambda d: d[0]["instances"].append(_inst(2, track=7)), r"track_id 7 appears twice in frame 4"),
    (lambda d: d[0].update(instances={}), r"`instances` must be a list"),
    (lambda d: d[0]["instances"][0].update(keypoints=[]), r"`keypoints` is \[\], expected a list of \[x, y\]"),
    (lambda d: d[0]["instances"][0].update(bbox_score="x"), r"instance \[0\]: `bbox_score` is \"x\", expected a"),
])  # fmt: skip
def test_mmpose_errors_name_file_record_problem(tmp_path, mutate, message):
    data = [{"frame_id": 4, "instances": [_inst(1.0, track=7)]}]
    mutate(data)
    path = _write(tmp_path, "bad.json", data)
    with pytest.raises(InputError, match=message) as err:
        read_tracks(path, frame_base=0)
    assert str(err.value).startswith(path)


# ------------------------------------------------------------------------------------------------ ultralytics

W, H = 640, 480


def _kp_line(seed: float, extra: str = "", absent=(), per_kp=3, cls=0) -> str:
    """Keypoint i at normalised (0.05 i + seed, 0.04 i + seed) with confidence 0.9 - 0.01 i."""
    vals = []
    for i in range(17):
        if i in absent:
            vals += [0, 0, 0.25][:per_kp]  # ultralytics zeroes x, y of confidence < 0.5 keypoints
        else:
            vals += [0.05 * i + seed, 0.04 * i + seed, 0.9 - 0.01 * i][:per_kp]
    box = [cls, 0.5, 0.5, 0.25, 0.5]
    return " ".join(f"{v:g}" for v in box + vals) + (f" {extra}" if extra else "")


def _labels(tmp_path, files: dict[str, list[str]], folder="labels"):
    d = tmp_path / folder
    d.mkdir(parents=True)
    for name, lines in files.items():
        (d / name).write_text("".join(line + "\n" for line in lines))
    return d


def test_ultralytics_track_ids_1_based(tmp_path, caplog):
    d = _labels(tmp_path, {"walk_2.txt": [_kp_line(0.1, "5", absent=(3,)), _kp_line(0.2, "6")],
                           "walk_4.txt": [_kp_line(0.1, "5")]})  # fmt: skip
    with caplog.at_level(logging.WARNING):
        seq = read_tracks(d, image_size=(W, H))  # a folder: detected by content
    assert "ultralytics numbers video frames from 1" in caplog.text
    assert seq.source_format == "ultralytics" and seq.name == "walk" and seq.layout is COCO17
    assert sorted(seq.frames) == [1, 3] and seq.meta["frame_base"] == 1
    a, b = seq.persons_in(1)
    assert (a.track_id, b.track_id, seq.persons_in(3)[0].track_id) == (5, 6, 5)
    # joint 2 of a: normalised (0.2, 0.18) -> (128, 86.4) px; confidence 0.88 is score and visibility
    assert a.keypoints[2] == pytest.approx([128.0, 86.4]) and a.scores[2] == pytest.approx(0.88)
    assert a.visibility[2] == pytest.approx(0.88)
    assert not a.present[3] and a.keypoints[3].tolist() == [0, 0] and a.scores[3] == 0 and a.present.sum() == 16
    assert a.box == pytest.approx([240.0, 120.0, 160.0, 240.0]) and a.person_score is None
    assert sorted(read_tracks(d, image_size=(W, H), frame_base=0).frames) == [2, 4]


def test_ultralytics_conf_and_ids(tmp_path):
    d = _labels(tmp_path, {"v_1.txt": [_kp_line(0.1, "0.83 2")]})  # save_conf=True while tracking: 58 values
    p = read_tracks(d, image_size=(W, H)).persons_in(0)[0]
    assert p.person_score == pytest.approx(0.83) and p.track_id == 2
    d = _labels(tmp_path, {"v_1.txt": [_kp_line(0.1, "0.83")], "v_2.txt": [_kp_line(0.1, "1")]}, "conf")
    seq = read_tracks(d, image_size=(W, H))  # 57 values, one not an integer: a confidence column
    assert [p.person_score for p in seq.persons()] == [pytest.approx(0.83), 1.0]
    assert [p.track_id for p in seq.persons()] == [None, None]
    d = _labels(tmp_path, {"v_1.txt": [_kp_line(0.1, "3", cls=2)], "v_2.txt": [_kp_line(0.1, "1")]}, "ids")
    seq = read_tracks(d, image_size=(W, H))  # 57 values, all integers: a track-id column
    assert [p.track_id for p in seq.persons()] == [3, 1] and seq.persons_in(0)[0].extra == {"class": 2}


def test_ultralytics_frame_0_run_folder_single_file_and_xy_only(tmp_path):
    d = _labels(tmp_path, {"v_0.txt": [_kp_line(0.1)], "v_3.txt": [_kp_line(0.1)]}, "run/labels")
    seq = read_tracks(tmp_path / "run", image_size=(W, H))  # the run folder that holds labels/
    assert sorted(seq.frames) == [0, 3] and seq.meta["frame_base"] == 0
    one = read_tracks(d / "v_3.txt", image_size=(W, H), frame_base=1)  # one label file, detected by content
    assert one.source_format == "ultralytics" and list(one.frames) == [2]
    d = _labels(tmp_path, {"000001.txt": [_kp_line(0.1, per_kp=2)], "000002.txt": [_kp_line(0.3, "4", per_kp=2)]},
                "images")  # fmt: skip
    seq = read_tracks(d, image_size=(W, H), num_frames=2)  # image-style names: largest == frame count -> 1-based
    assert sorted(seq.frames) == [0, 1] and seq.persons_in(1)[0].track_id == 4
    p = seq.persons_in(0)[0]
    assert p.scores is None and p.visibility is None and p.present.all()
    assert p.keypoints[1] == pytest.approx([96.0, 67.2])


@pytest.mark.parametrize("files, kwargs, message", [
    ({"v_1.txt": [_kp_line(0.1)]}, {"image_size": None}, r"labels: ultralytics labels hold coordinates normalised "
     r"to the image size: pass image_size=\(width, height\)"),
    ({"v_1.txt": [_kp_line(0.1), "0 0.5 0.5 0.2 0.2 " + "0.1 " * 20]}, {}, r"v_1.txt: line 2: 25 columns; an "
     r"ultralytics pose line for 17 COCO keypoints has 56"),
    ({"v_1.txt": ["", _kp_line(0.1).replace("0.5 ", "abc ", 1)]}, {}, r"v_1.txt: line 2: column 2 is 'abc', "
     r"expected a finite number"),
    ({"v_1.txt": [_kp_line(0.1, "0.9 2.5")]}, {}, r"v_1.txt: line 1: track id \(last column\) is 2.5"),
    ({"v_1.txt": [_kp_line(0.1)], "walk.txt": [_kp_line(0.1)]}, {}, r"walk.txt: cannot read a frame number from "
     r"the file name 'walk.txt'"),
    ({"a_1.txt": [_kp_line(0.1)], "b_1.txt": [_kp_line(0.1)]}, {}, r"label files of 2 sources: a \(a_1.txt"),
    ({"v_1.txt": [_kp_line(0.1, "3"), _kp_line(0.2, "3")]}, {}, r"v_1.txt: line 2: track_id 3 appears twice in "
     r"frame 0 \(first at v_1.txt: line 1\)"),
    ({"v_5.txt": [_kp_line(0.1)]}, {"num_frames": 4}, r"v_5.txt: line 1: frame index 4 is beyond the video's 4"),
])  # fmt: skip
def test_ultralytics_errors_name_file_record_problem(tmp_path, files, kwargs, message):
    d = _labels(tmp_path, files)
    kwargs = {"image_size": (W, H), **kwargs}
    with pytest.raises(InputError, match=message):
        read_tracks(d, format="ultralytics", **kwargs)


def test_directory_without_labels_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: is a directory without ultralytics pose label files"):
        read_tracks(tmp_path / "empty", image_size=(W, H))
    with pytest.raises(InputError, match=r"empty: no ultralytics label files"):
        read_tracks(tmp_path / "empty", format="ultralytics", image_size=(W, H))


# ------------------------------------------------------------------------------------------------ detection


def _coco(extra=None):
    return [{"image_id": 0, "keypoints": [1.0] * 51, **(extra or {})}]


@pytest.mark.parametrize("content, expected", [
    ({"images": [], "annotations": []}, "posetrack18"),
    ({"annolist": []}, "posetrack17"),
    (_coco(), "coco"),
    ([], "coco"),
    (_coco({"idx": 1}), "alphapose"),
    (_coco({"box": [1, 2, 3, 4]}), "alphapose"),
    ("frame,track_id," + ",".join(["a"] * 51), "csv"),
    ("0,1," + ",".join(["1.0"] * 51), "csv"),
    ([{"frame_id": 0, "instances": []}], "mmpose"),
    ({"meta_info": {}, "instance_info": []}, "mmpose"),
    ([_inst(1.0)], "mmpose"),
    ([{"keypoints": [[1, 2]] * 17}], "mmpose"),
    (_kp_line(0.1), "ultralytics"),
    (_kp_line(0.1, "0.9 3"), "ultralytics"),
    (_kp_line(0.1, per_kp=2), "ultralytics"),
    ("0 0.5 0.5 0.2 0.4 0.91 7", "ultralytics"),  # box-only formats (docs/formats.md)
    ("1,2,10,20,30,40,0.9,-1,-1,-1", "mot"),
    ([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}], "coco"),
])  # fmt: skip
def test_detection_old_and_new_formats(tmp_path, content, expected):
    text = content if isinstance(content, str) else json.dumps(content)
    assert detect_format(tmp_path / "x", text)[0] == expected


@pytest.mark.parametrize("text, message", [
    ("1 2 10 20 30 40 0.9 -1 -1 -1", "unknown format"),  # MOTChallenge is comma-separated
    (json.dumps({"foo": 1}), "unknown JSON format"),
])  # fmt: skip
def test_detection_refusals_unchanged(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        detect_format(tmp_path / "x", text)


# ------------------------------------------------------------------------------------------------ end to end


def _posetrack_seq(gt):
    return read_tracks(gt)


def _as_mmpose(seq, frame_base: int) -> dict:
    frames = []
    for f in range(seq.num_frames):
        insts = []
        for p in seq.persons_in(f):
            kp = np.where(p.present[:, None], p.keypoints, 0.0)
            insts.append({"keypoints": kp.tolist(), "keypoint_scores": p.present.astype(float).tolist(),
                          "track_id": p.track_id})  # fmt: skip
        frames.append({"frame_id": f + frame_base, "instances": insts})
    return {"meta_info": {"dataset_name": "posetrack18"}, "instance_info": frames}


def _as_ultralytics(seq, folder, size_wh) -> None:
    folder.mkdir()
    for f in range(seq.num_frames):
        lines = []
        for p in seq.persons_in(f):
            kp = np.where(p.present[:, None], p.keypoints / size_wh, 0.0)
            trip = np.concatenate([kp, p.present[:, None].astype(float)], axis=1)
            lines.append(" ".join(f"{v:.9g}" for v in [0, 0.5, 0.5, 0.2, 0.2, *trip.ravel(), p.track_id]))
        if lines:
            (folder / f"clip_{f + 1}.txt").write_text("\n".join(lines) + "\n")


def _by_frame_track(path) -> dict:
    data = json.loads(path.read_text())
    frame_of = {im["id"]: k for k, im in enumerate(data["images"])}
    return {(frame_of[a["image_id"]], a["track_id"]): np.array(a["keypoints"]).reshape(17, 3) for a in
            data["annotations"]}  # fmt: skip


def test_refine_video_cli_accepts_mmpose_and_ultralytics(tmp_path, capsys):
    """The same persons given as PoseTrack18, mmpose (demo, 1-based) and ultralytics labels refine identically."""
    from pipelines.refine_video import main
    from posefix_video.demo import DEMO_CHECKPOINT, ClipSpec, make_clip

    clip = make_clip(tmp_path / "clip", ClipSpec(frames=4, width=320, height=240, min_tracks=2, max_tracks=2))
    seq = _posetrack_seq(clip.gt)
    (tmp_path / "mm.json").write_text(json.dumps(_as_mmpose(seq, 1)))
    _as_ultralytics(seq, tmp_path / "labels", np.array([320.0, 240.0]))
    # --no-safeguard: the safeguard reads the input's joint scores, which PT18 GT lacks and the others carry
    common = ["--checkpoint", str(DEMO_CHECKPOINT), "--device", "cpu", "--no-progress", "--no-flip",
              "--seq-name", "000001_mpiinew_test", "--no-safeguard"]  # fmt: skip
    outs = {}
    for name, tracks, extra in [("pt18", clip.gt, []), ("mmpose", tmp_path / "mm.json", ["--format", "mmpose"]),
                                ("ultralytics", tmp_path / "labels", ["--layout", "posetrack18"])]:  # fmt: skip
        outs[name] = tmp_path / f"{name}_out.json"
        rc = main([str(clip.video), str(tracks), "-o", str(outs[name]), *common, *extra])
        assert rc == 0, capsys.readouterr().err
    ref = _by_frame_track(outs["pt18"])
    assert len(ref) == seq.num_persons > 0
    for name in ("mmpose", "ultralytics"):
        got = _by_frame_track(outs[name])
        assert got.keys() == ref.keys(), name  # same persons on the same frames: the frame bases line up
        for key, kp in ref.items():
            # ultralytics' normalised coordinates round-trip through text: refined joints agree to a pixel
            assert np.abs(got[key][:, :2] - kp[:, :2]).max() < (1e-6 if name == "mmpose" else 1.0), (name, key)


def test_validate_input_takes_the_image_size_for_ultralytics(tmp_path, capsys):
    from pipelines import validate

    d = _labels(tmp_path, {"walk_1.txt": [_kp_line(0.1, "5")], "walk_2.txt": [_kp_line(0.2, "5")]})
    assert validate.main([str(d), "--input"]) == 2
    assert "normalised" in capsys.readouterr().err
    assert validate.main([str(d), "--input", "--image-size", "64Ox480"]) == 2
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err
    assert validate.main([str(d), "--input", "--image-size", f"{W}x{H}"]) == 0
    assert "OK: ultralytics, 2 persons on 2 frames" in capsys.readouterr().err


def test_ultralytics_image_labels_pair_with_the_frame_folder_by_name(tmp_path):
    """PoseTrack-style folder 000000..000005 whose frame 0 has no person: labels 000001/000004 are frames 1 and 4.
    The number-based rule alone would guess 1-based (smallest number 1) and shift every person a frame early."""
    import cv2

    from posefix_video.video.decoders import open_frames as open_video
    from posefix_video.video.refine_video import read_input_tracks

    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(6):
        cv2.imwrite(str(frames / f"{k:06d}.jpg"), np.zeros((H, W, 3), np.uint8))
    d = _labels(tmp_path, {"000001.txt": [_kp_line(0.1, "7")], "000004.txt": [_kp_line(0.2, "7")]})
    seq = read_input_tracks(d, open_video(frames), "auto", "auto", None)
    assert sorted(seq.frames) == [1, 4] and seq.persons_in(4)[0].track_id == 7
    # the same folder numbered from 1 (000001..000006): label 000001 is frame 0
    for k in range(6):
        (frames / f"{k:06d}.jpg").rename(frames / f"x{k + 1:06d}.jpg")
    for k in range(6):
        (frames / f"x{k + 1:06d}.jpg").rename(frames / f"{k + 1:06d}.jpg")
    assert sorted(read_input_tracks(d, open_video(frames), "auto", "auto", None).frames) == [0, 3]
    # an explicit --frame-base still wins; a label naming no image is refused, naming the file
    assert sorted(read_input_tracks(d, open_video(frames), "auto", 0, None).frames) == [1, 4]
    (d / "000009.txt").write_text(_kp_line(0.1, "7") + "\n")
    with pytest.raises(InputError, match=r"000009.txt: no image numbered 9 in the frame folder \(6 frames, 000001 "
                       r"\.\. 000006\)"):  # fmt: skip
        read_input_tracks(d, open_video(frames), "auto", "auto", None)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe0 0.5", r"labels[/\\]v_1.txt: not a text file \(byte 0 is not UTF-8\)"),
    (b"0 0.5 0.5 -0.2 0.4 0.91 7\n", r"labels[/\\]v_1.txt: line 1: box \[x, y, w, h\] = .* has a negative size"),
])  # fmt: skip
def test_auto_detected_label_folder_problems_name_the_file(tmp_path, content, message):
    """A labels folder the reader can say something precise about is not called 'a directory without labels'."""
    d = tmp_path / "labels"
    d.mkdir()
    (d / "v_1.txt").write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_tracks(d, image_size=(W, H))


@pytest.mark.parametrize("size", [("a", 480), (640,), (640, float("nan")), (-1, 480)])
def test_ultralytics_bad_image_size_is_an_input_error(tmp_path, size):
    d = _labels(tmp_path, {"v_1.txt": [_kp_line(0.1)]})
    with pytest.raises(InputError, match=r"labels: image_size must be two positive numbers"):
        read_tracks(d, image_size=size)


def test_resume_refused_after_editing_labels_of_a_run_folder(tmp_path):
    """Given the run folder (which holds labels/ and ultralytics' rendered video), the resume hash must cover the
    label files: an edited label after an interrupted run refuses --resume instead of mixing two inputs."""
    import os

    from posefix_video.demo import ClipSpec, make_clip
    from posefix_video.errors import PosefixError
    from posefix_video.video.journal import journal_path
    from posefix_video.video.refine_video import refine_video
    from tests.test_refine_orientation import SamplingRefiner

    clip = make_clip(tmp_path / "clip", ClipSpec(frames=4, width=320, height=240, min_tracks=2, max_tracks=2))
    run = tmp_path / "run"
    run.mkdir()
    _as_ultralytics(_posetrack_seq(clip.gt), run / "labels", np.array([320.0, 240.0]))
    (run / "clip.mp4").write_bytes(b"ultralytics' annotated video")
    out = tmp_path / "out.json"
    kw = dict(out=out, layout="posetrack18", batch_size=2, chunk_frames_max=1)

    def stop(k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine_video(clip.video, run, refiner=SamplingRefiner(), on_chunk=stop, **kw)
    assert journal_path(out).exists()
    label = sorted((run / "labels").iterdir())[-1]
    text, before = label.read_text(), label.stat()
    label.write_text(text.replace(" 0.5 0.5 ", " 0.5 0.6 ", 1))  # same size and mtime: only the content tells
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(PosefixError, match="other inputs or options"):
        refine_video(clip.video, run, refiner=SamplingRefiner(), resume=True, **kw)
