"""Issue 15, class 3: resume after any fault, and two runs at once.

Kill points: inside the journal's first chunk and inside its header (a truncated trailing record is dropped
wherever it is), during the final atomic write (the stale temporary is cleaned by the next run, nothing else is),
and a second run on the same output while the first holds its journal (refused, the first's journal untouched).
Real processes are killed with SIGKILL; the clips are tiny and the network a stand-in, so everything runs in
seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from posefix_video.errors import PosefixError
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.video.journal import Journal, journal_path

REPO = Path(__file__).resolve().parents[1]
CKPT = REPO / "assets" / "demo_checkpoint.pth"
HW = (120, 160)


def make_clip(folder: Path, n: int = 12) -> tuple[Path, Path]:
    """A small H.264 clip and PT18 tracks with one person on every frame."""
    from posefix_video.io import write_posetrack18
    from posefix_video.video.encode import VideoEncoder

    folder.mkdir(parents=True, exist_ok=True)
    video, tracks = folder / "clip.mp4", folder / "tracks.json"
    rng = np.random.default_rng(0)
    enc = VideoEncoder(video, Fraction(25), HW, crf=20)
    for _ in range(n):
        enc.write(rng.integers(0, 255, (*HW, 3), dtype=np.uint8))
    enc.close()
    seq = PoseSequence(name="000001_mpiinew_test", layout=POSETRACK18, num_frames=n)
    for f in range(n):
        kp = np.stack([np.linspace(50, 100, 17) + f, np.linspace(15, 105, 17)], -1)
        seq.add(PersonRecord(frame=f, track_id=1, keypoints=kp, scores=np.full(17, 0.8), present=np.ones(17, bool)))
    write_posetrack18(seq, tracks, image_size=(HW[1], HW[0]))
    return video, tracks


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip"))


class ShiftRefiner:
    """A fast stand-in for the network (the CPU is shared): moves each joint by its frame's mean pixel value / 64,
    so a result depends on the frame it was computed from, never on how frames were batched."""

    layout = POSETRACK18
    flip_test = False
    device = torch.device("cpu")

    def refine_records(self, frames, records, frame_offset=0, **options):
        means = torch.as_tensor(frames).float().mean(dim=(1, 2, 3)).numpy()
        out = [r.replace(keypoints=r.keypoints + means[r.frame - frame_offset] / 64) for r in records]
        for r in out:
            r.extra["posefix_confidence"] = [0.5] * 17
        return out, Counter()


@pytest.fixture(scope="module")
def refiner():
    return ShiftRefiner()


def run(clip, out, refiner, **kw):
    from posefix_video.video.refine_video import refine_video

    kw.setdefault("batch_size", 2)
    return refine_video(*clip, checkpoint=CKPT, out=out, refiner=refiner, decoder="pyav", **kw)


def interrupted(clip, out, refiner, chunks: int, **kw) -> Path:
    """Runs until `chunks` chunks are journaled, then stops as Ctrl-C would; returns the journal."""

    def stop(k):
        if k == chunks:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(clip, out, refiner, on_chunk=stop, **kw)
    assert not out.exists()
    return journal_path(out)


@pytest.fixture(scope="module")
def reference(clip, refiner, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.json"
    run(clip, out, refiner)
    return json.loads(out.read_text())


@pytest.mark.parametrize("cut", ["first_chunk", "header", "header_empty"])
def test_resume_after_a_cut_inside_the_first_record(clip, refiner, reference, tmp_path, cut):
    out = tmp_path / "out.json"
    jpath = interrupted(clip, out, refiner, chunks=1)
    header, first = jpath.read_bytes().split(b"\n")[:2]
    keep = {"first_chunk": header + b"\n" + first[: len(first) // 2], "header": header[:20],
            "header_empty": b""}[cut]
    jpath.write_bytes(keep)  # what a SIGKILL or a full disk leaves
    s = run(clip, out, refiner, resume=True)
    assert s.resumed_frames == 0 and s.frames == 12
    assert json.loads(out.read_text()) == reference
    assert not jpath.exists()
    s = run(clip, out, refiner, resume=True)  # and again: nothing left over
    assert json.loads(out.read_text()) == reference


def test_resume_after_a_cut_later_keeps_whole_chunks(clip, refiner, reference, tmp_path):
    out = tmp_path / "out.json"
    jpath = interrupted(clip, out, refiner, chunks=3)
    data = jpath.read_bytes()
    jpath.write_bytes(data[:-7])  # the third chunk's line cut short
    s = run(clip, out, refiner, resume=True)
    assert s.resumed_frames == 4  # two whole chunks of two frames (one person per frame, batch 2)
    assert json.loads(out.read_text()) == reference


def test_batch_options_are_part_of_the_fingerprint(clip, refiner, tmp_path):
    out = tmp_path / "out.json"
    interrupted(clip, out, refiner, chunks=2)
    with pytest.raises(PosefixError, match="batch size"):
        run(clip, out, refiner, resume=True, batch_size=3)
    with pytest.raises(PosefixError, match="batch size"):
        run(clip, out, refiner, resume=True, chunk_frames_max=1)
    assert run(clip, out, refiner, resume=True).resumed_frames == 4


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_kill_during_the_final_write_leaves_nothing_behind(clip, refiner, reference, tmp_path):
    out = tmp_path / "out.json"
    code = textwrap.dedent(f"""
        import os, signal
        from posefix_video.atomic import atomic_open
        cm = atomic_open({str(out)!r})
        f = cm.__enter__()
        f.write('{{"images": [')
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.json.")]
    assert len(stale) == 1 and not out.exists()
    # look-alikes that are not ours to delete: no pid, a live pid, another name
    foreign = [tmp_path / ".out.json.abcdefgh.tmp", tmp_path / f".out.json.{os.getppid()}-abcdefgh.tmp",
               tmp_path / f".other.json.{_dead_pid()}-abcdefgh.tmp"]
    for p in foreign:
        p.write_text("keep me")
    run(clip, out, refiner)
    assert json.loads(out.read_text()) == reference
    assert not stale[0].exists()
    assert all(p.read_text() == "keep me" for p in foreign)


def test_a_second_run_on_the_same_output_is_refused(clip, refiner, tmp_path, capsys):
    """The first run holds its journal (here a real process that took the lock and sleeps); the second run
    exits 2 with a clear message and leaves the first's journal as it was."""
    from pipelines.refine_video import main

    out = tmp_path / "out.json"
    jpath = journal_path(out)
    code = textwrap.dedent(f"""
        import sys, time
        from posefix_video.video.journal import Journal
        j = Journal.create({str(jpath)!r}, "first-run")
        print("locked", flush=True)
        time.sleep(60)
    """)
    first = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "locked"
        before = jpath.read_bytes()
        for resume in ([], ["--resume"]):
            rc = main([str(clip[0]), str(clip[1]), "--checkpoint", str(CKPT), "-o", str(out), "--decoder", "pyav",
                       "--device", "cpu", "--no-progress", *resume])
            err = capsys.readouterr().err
            assert rc == 2 and "another run is writing this output" in err and "Traceback" not in err
            assert jpath.read_bytes() == before
    finally:
        first.kill()
        first.wait()
    assert not out.exists()
    # once the first run is gone (killed), its journal can be taken over
    Journal.create(jpath, "second").remove()


def test_two_real_runs_on_one_output_first_finishes_second_refused(clip, refiner, reference, tmp_path, capsys,
                                                                    monkeypatch):
    """Two command-line runs on the same output: the second, started while the first is journaling, exits 2 at
    once; the first finishes with exit 0 and the same output as an undisturbed run."""
    from pipelines.refine_video import main

    out = tmp_path / "out.json"
    args = [str(clip[0]), str(clip[1]), "--checkpoint", str(CKPT), "-o", str(out), "--decoder", "pyav",
            "--device", "cpu", "--no-progress", "--batch-size", "2"]
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, "tests")
        import posefix_video.video.refine_video as rv
        import test_reliability_journal as t
        from posefix_video.video.journal import Journal

        class Slow(t.ShiftRefiner):
            def refine_records(self, *a, **k):
                time.sleep(0.4)
                return super().refine_records(*a, **k)

        rv.load_refiner = lambda *a, **k: Slow()
        append = Journal.append

        def announce(self, *a):
            append(self, *a)
            print("chunk", flush=True)

        Journal.append = announce
        from pipelines.refine_video import main
        sys.exit(main({args!r}))
    """)
    first = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout.readline().strip() == "chunk"
        monkeypatch.setattr("posefix_video.video.refine_video.load_refiner", lambda *a, **k: ShiftRefiner())
        for extra in ([], ["--resume"]):
            assert main(args + extra) == 2
            assert "another run is writing this output" in capsys.readouterr().err
        rest, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert json.loads(out.read_text()) == reference and not journal_path(out).exists()
