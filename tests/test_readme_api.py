"""The README's Python API example runs as written (on a synthetic clip with the demo checkpoint)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from posefix_video.demo import DEMO_CHECKPOINT, ClipSpec, make_clip, simulate_tracks
from posefix_video.synthetic.tracker_sim import TrackerSimSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "clip", ClipSpec(frames=4, min_tracks=2, max_tracks=2))
    tracks = simulate_tracks(clip, tmp_path / "sim", TrackerSimSettings.training(), seed=0)
    work = tmp_path / "work"
    (work / "annotations" / "val").mkdir(parents=True)
    (work / "refined" / "val").mkdir(parents=True)
    shutil.copy(clip.video, work / "clip.mp4")
    shutil.copy(tracks, work / "tracks.json")
    shutil.copy(DEMO_CHECKPOINT, work / "posefix.pth")
    shutil.copy(clip.gt, work / "annotations" / "val" / clip.gt.name)
    shutil.copy(tracks, work / "refined" / "val" / clip.gt.name)
    monkeypatch.chdir(work)
    import cv2

    first = cv2.imread(str(sorted(clip.frames.iterdir())[0]))[:, :, ::-1]
    scope = {"frames": np.ascontiguousarray(first[None])}
    exec(compile(_api_example(), "README.md", "exec"), scope)

    assert (work / "refined.json").is_file() and (work / "copy.json").is_file()
    assert scope["summary"].persons == scope["seq"].num_persons
    assert len(scope["records"]) == len(scope["seq"].persons_in(0)) > 0
    assert 0.0 <= scope["result"].groups("ap")["Total"] <= 100.0
