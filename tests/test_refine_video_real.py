"""End-to-end runs with a real (tiny, untrained) checkpoint made here: the real Refiner, real videos and PoseTrack
frames, the CLI with its exit codes, and a run killed with SIGKILL then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence

REPO = Path(__file__).resolve().parents[1]
STANDING = np.array([  # a standing person, PoseTrack18 slots, in units of its height (x right, y down)
    [0, -.42], [0, -.36], [0, -.5], [0, 0], [0, 0], [-.12, -.3], [.12, -.3], [-.16, -.12], [.16, -.12],
    [-.18, .02], [.18, .02], [-.08, .02], [.08, .02], [-.09, .25], [.09, .25], [-.09, .48], [.09, .48]])


def make_checkpoint(path: Path, layout: str = "posetrack18") -> Path:
    import torch

    from posefix_video.config import ModelConfig
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(depth=18, input_size=(128, 96), layout=layout, width=8, deconv_channels=16)
    save_checkpoint(path, build_model(cfg), cfg)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def street_tracks(path: Path, num_frames: int, size_wh: tuple[int, int], seq_name: str | None = None) -> None:
    """Three tracked walkers drifting right (one leaves after frame 2), written as PoseTrack18."""
    from posefix_video.io import write_posetrack18

    w, h = size_wh
    seq = PoseSequence(name=seq_name or "000002_mpiinew_test", layout=POSETRACK18, num_frames=num_frames)
    for f in range(num_frames):
        for t, (x, y, height) in enumerate([(0.2, 0.55, 0.5), (0.5, 0.6, 0.35), (0.8, 0.5, 0.2)]):
            if t == 2 and f > 2:
                continue
            kp = STANDING * height * h + [x * w + 3 * f, y * h]
            present = np.ones(17, bool)
            present[[3, 4]] = False
            seq.add(PersonRecord(frame=f, track_id=t, keypoints=np.where(present[:, None], kp, 0),
                                 scores=np.full(17, 0.8) * present, present=present,
                                 visibility=present.astype(float)))
    write_posetrack18(seq, path, image_size=size_wh)


def check_poseval_shape(path: Path, num_frames: int) -> dict:
    data = json.loads(path.read_text())
    assert len(data["images"]) == num_frames
    assert len({im["id"] for im in data["images"]}) == num_frames
    assert len(data["categories"]) == 1 and len(data["categories"][0]["keypoints"]) == 17
    by_image: dict = {}
    for ann in data["annotations"]:
        assert len(ann["scores"]) == 17 and len(ann["keypoints"]) == 51
        assert isinstance(ann["track_id"], int) and 0 <= ann["track_id"] < 1000
        by_image.setdefault(ann["image_id"], []).append(ann["track_id"])
    for tids in by_image.values():
        assert len(tids) == len(set(tids))
    return data


def test_mmpose_street_video(shared_data, checkpoint, tmp_path):
    from posefix_video.video.refine_video import refine_video

    video = shared_data / "video" / "mmpose_demo_street_960x540_5f.mp4"
    street_tracks(tmp_path / "street.json", 5, (960, 540))
    s = refine_video(video, tmp_path / "street.json", checkpoint, device="cpu", batch_size=4,
                     render=tmp_path / "street.mp4", smooth="savgol")
    assert s.frames == 5 and s.persons == 3 * 3 + 2 * 2 and s.refined == s.persons
    data = check_poseval_shape(tmp_path / "street_refined.json", 5)
    src = json.loads((tmp_path / "street.json").read_text())
    # refined poses moved (untrained net) but stayed near their input crop
    a = np.array([x["keypoints"] for x in src["annotations"]]).reshape(-1, 17, 3)
    b = np.array([x["keypoints"] for x in data["annotations"]]).reshape(-1, 17, 3)
    assert [x["track_id"] for x in src["annotations"]] == [x["track_id"] for x in data["annotations"]]
    moved = np.abs(a[..., :2] - b[..., :2]).max()
    assert 0 < moved < 540
    import av

    with av.open(str(tmp_path / "street.mp4")) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "h264" and st.average_rate == 5
        assert sum(1 for _ in c.decode(st)) == 5


@pytest.mark.parametrize("video", ["003418_mpii_test", "012834_mpii_test"])
def test_posetrack18_frames_with_gt_as_tracks(shared_data, checkpoint, tmp_path, video):
    from posefix_video.video.refine_video import refine_video

    root = shared_data / "posetrack18_mmpose"
    tracks = root / "annotations" / "val" / f"{video}.json"
    s = refine_video(root / "images" / "val" / video, tracks, checkpoint, out=tmp_path / f"{video}.json",
                     device="cpu")
    data = check_poseval_shape(tmp_path / f"{video}.json", 1)
    gt = json.loads(tracks.read_text())
    assert data["images"] == gt["images"]  # the images list is kept as it is
    assert s.persons == len(gt["annotations"]) == len(data["annotations"])


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.refine_video", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, **kw)


def test_cli_bad_input_exit_2(shared_data, checkpoint, tmp_path):
    street_tracks(tmp_path / "t.json", 5, (960, 540))
    r = run_cli(str(tmp_path / "missing.mp4"), str(tmp_path / "t.json"), "--checkpoint", str(checkpoint))
    assert r.returncode == 2 and "missing.mp4" in r.stderr and "Traceback" not in r.stderr
    coco_ckpt = make_checkpoint(tmp_path / "coco.pt", "coco17")
    video = shared_data / "video" / "mmpose_demo_street_960x540_5f.mp4"
    r = run_cli(str(video), str(tmp_path / "t.json"), "--checkpoint", str(coco_ckpt), "--device", "cpu")
    assert r.returncode == 2 and "coco17" in r.stderr and "posetrack18" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "t_refined.json").exists()


@pytest.mark.slow  # about 20 s on 2 cores; the in-process interrupt test covers resume by default
def test_sigkill_then_resume_matches_uninterrupted(checkpoint, tmp_path):
    from tests.test_refine_video import write_clip

    n = 60
    write_clip(tmp_path / "clip.mp4", n)
    street_tracks(tmp_path / "t.json", n, (192, 256))
    common = ["--checkpoint", str(checkpoint), "--device", "cpu", "--batch-size", "2", "--chunk-frames", "1",
              "--no-progress", "--decoder", "pyav"]
    full = run_cli(str(tmp_path / "clip.mp4"), str(tmp_path / "t.json"), "-o", str(tmp_path / "full.json"), *common)
    assert full.returncode == 0, full.stderr
    out = tmp_path / "killed.json"
    journal = tmp_path / "killed.json.partial.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.refine_video", str(tmp_path / "clip.mp4"),
                             str(tmp_path / "t.json"), "-o", str(out), *common], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 6:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    chunks = journal.read_bytes().count(b"\n") - 1
    assert 5 <= chunks < n
    r = run_cli(str(tmp_path / "clip.mp4"), str(tmp_path / "t.json"), "-o", str(out), "--resume", *common)
    assert r.returncode == 0, r.stderr
    assert "from the journal" in r.stderr
    assert json.loads(out.read_text()) == json.loads((tmp_path / "full.json").read_text())
    assert not journal.exists()


def test_refine_posetrack_shards_videos(shared_data, checkpoint, tmp_path, monkeypatch):
    from pipelines import refine_posetrack

    root = shared_data / "posetrack18_mmpose"
    args = ["--frames-root", str(root / "images" / "val"), "--pred-dir", str(root / "annotations" / "val"),
            "--out-dir", str(tmp_path), "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress"]
    names = sorted(p.name for p in (root / "annotations" / "val").glob("*.json"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert refine_posetrack.main(args) == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == names[1::2]
    monkeypatch.setenv("RANK", "0")
    assert refine_posetrack.main(args) == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == names
    for name in names:
        check_poseval_shape(tmp_path / name, 1)
    assert refine_posetrack.main([*args[:4], "--out-dir", str(root / "annotations" / "val"), *args[6:]]) == 2
