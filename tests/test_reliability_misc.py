"""Issue 15, classes 5-8 and 10: option values, training outputs, file modes, truncated videos, log levels and
the written precision."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from test_reliability_journal import CKPT, ShiftRefiner, make_clip

from posefix_video.atomic import write_json_atomic
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence

REPO = Path(__file__).resolve().parents[1]


def _error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------------------------- 5. option values


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--batch-size", "-3"], ["--chunk-frames", "-1"],
                                    ["--chunk-frames", "0"]])
def test_batch_and_chunk_options_refused(tmp_path, capsys, option):
    from pipelines.refine_video import main

    clip = make_clip(tmp_path, n=2)
    err = _error(capsys, main([str(clip[0]), str(clip[1]), "--checkpoint", str(CKPT), *option]))
    assert f"{option[0]} {option[1]}: must be a whole number >= 1" in err
    assert not list(tmp_path.glob("*refined*"))


def test_refine_posetrack_batch_size_zero(tmp_path, capsys):
    from pipelines.refine_posetrack import main

    for d in ("preds", "frames"):
        (tmp_path / d).mkdir()
    err = _error(capsys, main(["--frames-root", str(tmp_path / "frames"), "--pred-dir", str(tmp_path / "preds"),
                               "--out-dir", str(tmp_path / "out"), "--checkpoint", str(CKPT), "--batch-size", "0"]))
    assert "--batch-size 0: must be a whole number >= 1" in err


@pytest.mark.parametrize("size", [[0, 0], [-32, 96], [128, 0]])
def test_checkpoint_with_a_non_positive_input_size(tmp_path, capsys, size):
    from pipelines.refine_video import main

    ckpt = torch.load(CKPT, map_location="cpu", weights_only=False)
    ckpt["model_config"] = dict(ckpt["model_config"], input_size=size)
    bad = tmp_path / "bad.pth"
    torch.save(ckpt, bad)
    clip = make_clip(tmp_path, n=2)
    err = _error(capsys, main([str(clip[0]), str(clip[1]), "--checkpoint", str(bad), "--device", "cpu",
                               "--no-progress"]))
    assert str(bad) in err and "input_size must be positive" in err


# ---------------------------------------------------------------------------------------------------- 6. training


def test_train_writes_no_config_when_the_run_is_invalid(tmp_path, capsys):
    from pipelines.train import main

    out = tmp_path / "run"
    code = main(["--config", "configs/tiny_synthetic.yaml", "--out", str(out), "--quiet",
                 f"data.train_ann={tmp_path / 'missing.json'}", f"data.train_images={tmp_path}", "runtime.device=cpu",
                 "data.num_workers=0"])
    err = _error(capsys, code)
    assert "missing.json" in err
    assert not (out / "config.yaml").exists()


def test_empty_config_file_is_named(tmp_path, capsys):
    from pipelines.train import main

    empty = tmp_path / "recipe.yaml"
    empty.write_text("\n# nothing yet\n")
    err = _error(capsys, main(["--config", str(empty), "--out", str(tmp_path / "run")]))
    assert f"{empty}: the config file is empty" in err
    assert not (tmp_path / "run").exists()


# -------------------------------------------------------------------------------------------------- 7. file modes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_json_atomic(path, {"x": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and json.loads(path.read_text()) == {"x": 2}


# --------------------------------------------------------------------------------------------- 8. truncated video


def _faststart_clip(path: Path, n: int) -> None:
    """An mp4 with its index first (faststart): cutting its tail loses frames but keeps the promised count."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.options = {"g": "5"}
        for _ in range(n):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_truncated_video_is_reported_in_summary_and_output(tmp_path):
    from posefix_video.io.csv_tracks import write_csv_tracks
    from posefix_video.video.refine_video import refine_video

    video = tmp_path / "cut.mp4"
    _faststart_clip(video, 30)
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.6)])
    seq = PoseSequence(name="x", layout=POSETRACK18, num_frames=None)
    for f in range(6):
        kp = np.stack([np.linspace(50, 100, 17), np.linspace(15, 105, 17)], -1)
        seq.add(PersonRecord(frame=f, track_id=1, keypoints=kp, scores=np.ones(17), present=np.ones(17, bool)))
    write_csv_tracks(seq, tmp_path / "t.csv")
    s = refine_video(video, tmp_path / "t.csv", out=tmp_path / "o.json", refiner=ShiftRefiner(), decoder="pyav",
                     frame_base=0, layout="posetrack18")
    assert 0 < s.frames < 30 and s.frames_promised == 30
    assert "of 30 promised: the video is truncated" in str(s)
    assert any("container promised 30" in w for w in s.warnings)
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["posefix"]["frames_decoded"] == s.frames and out["posefix"]["frames_promised"] == 30
    assert len(out["images"]) == s.frames


def test_complete_video_has_no_truncation_note(tmp_path):
    from posefix_video.video.refine_video import refine_video

    clip = make_clip(tmp_path, n=4)
    s = refine_video(*clip, out=tmp_path / "o.json", refiner=ShiftRefiner(), decoder="pyav")
    assert s.frames_promised is None and "posefix" not in json.loads((tmp_path / "o.json").read_text())


# --------------------------------------------------------------------------------------------- 10. small things


def _csv(path: Path, frames: list[int]) -> Path:
    from posefix_video.io.csv_tracks import write_csv_tracks

    seq = PoseSequence(name="x", layout=POSETRACK18, num_frames=None)
    for f in frames:
        kp = np.full((17, 2), 20.0)
        seq.add(PersonRecord(frame=f, track_id=1, keypoints=kp, scores=np.ones(17), present=np.ones(17, bool)))
    write_csv_tracks(seq, path)
    return path


def test_frame_base_logged_as_info_when_certain_warning_when_guessed(tmp_path, caplog):
    from posefix_video.io import read_tracks

    caplog.set_level(logging.INFO, logger="posefix_video")
    read_tracks(_csv(tmp_path / "a.csv", [0, 1, 2]), layout="posetrack18")
    [rec] = [r for r in caplog.records if "read as" in r.getMessage()]
    assert rec.levelno == logging.INFO and "0-based" in rec.getMessage()
    caplog.clear()
    read_tracks(_csv(tmp_path / "b.csv", [1, 2, 3]), layout="posetrack18", num_frames=3)
    [rec] = [r for r in caplog.records if "read as" in r.getMessage()]
    assert rec.levelno == logging.INFO and "1-based" in rec.getMessage()  # frame 3 of 3: 1-based for certain
    caplog.clear()
    read_tracks(_csv(tmp_path / "c.csv", [1, 2]), layout="posetrack18")
    [rec] = [r for r in caplog.records if "read as" in r.getMessage()]
    assert rec.levelno == logging.WARNING  # a guess: the user should hear it


def test_unusable_sequence_name_warning_names_the_cli_option(tmp_path, caplog):
    from posefix_video.io import write_posetrack18

    seq = PoseSequence(name="my clip", layout=POSETRACK18, num_frames=1)
    write_posetrack18(seq, tmp_path / "o.json")
    assert any("--seq-name" in r.getMessage() for r in caplog.records)


def test_refined_joints_written_with_two_decimals_inputs_exact(tmp_path):
    from posefix_video.video.refine_video import refine_video

    video, tracks = make_clip(tmp_path, n=4)
    data = json.loads(tracks.read_text())
    given = data["annotations"][0]["keypoints"]
    given[0], given[1] = 50.123456789, 15.987654321  # joint 0 of frame 0: passed through by the refiner below
    tracks.write_text(json.dumps(data))

    class KeepJointZero(ShiftRefiner):
        def refine_records(self, frames, records, frame_offset=0, **options):
            out, counts = super().refine_records(frames, records, frame_offset, **options)
            for r, src in zip(out, records):
                r.keypoints[0] = src.keypoints[0]
            return out, counts

    refine_video(video, tracks, out=tmp_path / "o.json", refiner=KeepJointZero(), decoder="pyav")
    out = json.loads((tmp_path / "o.json").read_text())
    first = out["annotations"][0]["keypoints"]
    assert first[:2] == [50.123456789, 15.987654321]  # as given, to the last digit
    for ann in out["annotations"]:
        xy = [v for i, v in enumerate(ann["keypoints"][3:]) if i % 3 != 2]
        assert all(round(v, 2) == v and len(repr(v).split(".")[-1]) <= 2 for v in xy), xy
