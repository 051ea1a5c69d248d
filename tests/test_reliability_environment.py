"""Issue 15, class 4: environment errors end in one line naming the path and the OS reason (exit 2), Ctrl-C says
how to resume (exit 130, journal kept), and what can be checked before the work is checked then (output folder
writable, device available). Full disks and read-only folders are real tmpfs mounts where the tests run as root,
and skip otherwise (a patched fsync covers the full disk everywhere)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from test_reliability_journal import CKPT, ShiftRefiner, make_clip

from posefix_video.cli import EXIT_INTERRUPTED, run_cli
from posefix_video.video.journal import Journal, journal_path


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at `path` for the block, or a skip when mounting is not allowed (not root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _one_line_error(capsys, code: int, *parts: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def stub_network(monkeypatch):
    """refine_video's CLI with the fast stand-in network (the CPU is shared by many jobs)."""
    monkeypatch.setattr("posefix_video.video.refine_video.load_refiner", lambda *a, **k: ShiftRefiner())


def _refine_cli(clip, out, *extra):
    from pipelines.refine_video import main

    return main([str(clip[0]), str(clip[1]), "--checkpoint", str(CKPT), "-o", str(out), "--decoder", "pyav",
                 "--device", "cpu", "--no-progress", "--batch-size", "2", *extra])


def test_full_disk_real_tmpfs(clip, tmp_path, capsys, stub_network):
    with tmpfs(tmp_path / "full", "size=8k") as full:
        out = full / "out.json"
        line = _one_line_error(capsys, _refine_cli(clip, out), str(full), "No space left on device")
        assert "out.json" in line and not out.exists()


def test_full_disk_patched_fsync_every_atomic_write(tmp_path, capsys, monkeypatch):
    from pipelines.make_synthetic import main

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    out = tmp_path / "sheet.png"
    _one_line_error(capsys, main(["sheet", "--out", str(out), "--count", "1", "--tile-width", "64"]),
                    f"{out}: No space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_read_only_folder_refused_before_work(tmp_path, capsys):
    from pipelines.evaluate import main as evaluate
    from pipelines.refine_video import main as refine
    from pipelines.train import main as train

    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        code = refine(["missing.mp4", "missing.json", "--checkpoint", "missing.pth", "-o", str(ro / "o.json")])
        _one_line_error(capsys, code, str(ro), "read-only")
        _one_line_error(capsys, train(["--config", "configs/tiny_synthetic.yaml", "--out", str(ro / "run")]),
                        str(ro), "read-only")
        _one_line_error(capsys, evaluate(["--gt", "g", "--pred", "p", "--json", str(ro / "m.json")]), "read-only")


def test_output_that_is_a_folder(tmp_path, capsys):
    from pipelines.evaluate import main as evaluate

    (tmp_path / "m.json").mkdir()
    _one_line_error(capsys, evaluate(["--gt", "g", "--pred", "p", "--json", str(tmp_path / "m.json")]),
                    "is a folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable GPU")
def test_cuda_requested_on_a_cpu_only_torch(tmp_path, capsys):
    from pipelines.refine_posetrack import main as refine_posetrack
    from pipelines.refine_video import main as refine

    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "t.json").write_bytes(b"x")
    code = refine([str(tmp_path / "v.mp4"), str(tmp_path / "t.json"), "--checkpoint", str(CKPT), "--device", "cuda"])
    _one_line_error(capsys, code, "--device cuda", "use --device cpu")
    for d in ("preds", "frames"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "000001_mpiinew_test.json").write_text("{}")
    code = refine_posetrack(["--frames-root", str(tmp_path / "frames"), "--pred-dir", str(tmp_path / "preds"),
                             "--out-dir", str(tmp_path / "o"), "--checkpoint", str(CKPT), "--device", "cuda:1"])
    _one_line_error(capsys, code, "--device cuda:1")


def test_ctrl_c_keeps_the_journal_and_says_how_to_resume(clip, tmp_path, capsys, monkeypatch, stub_network):
    straight = tmp_path / "straight.json"
    assert _refine_cli(clip, straight) == 0
    out = tmp_path / "out.json"
    append = Journal.append
    calls = []

    def interrupt_second(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        append(self, *args)

    monkeypatch.setattr(Journal, "append", interrupt_second)
    assert _refine_cli(clip, out) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    jpath = journal_path(out)
    assert f"kept in {jpath}" in err and "--resume" in err and "Traceback" not in err
    assert jpath.read_text().count("\n") == 2 and not out.exists()  # header + the first chunk
    monkeypatch.setattr(Journal, "append", append)
    assert _refine_cli(clip, out, "--resume") == 0
    assert "2 from the journal" in capsys.readouterr().err
    assert json.loads(out.read_text()) == json.loads(straight.read_text())


def test_run_cli_maps_errors_and_interrupts(capsys):
    def interrupted():
        raise KeyboardInterrupt

    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.json")

    assert run_cli(interrupted, interrupted_hint=lambda: "rerun with --resume") == 130
    assert capsys.readouterr().err == "interrupted: rerun with --resume\n"
    assert run_cli(disk_full) == 2
    assert capsys.readouterr().err == "error: /data/out.json: No space left on device\n"
    assert run_cli(lambda: None) == 0 and run_cli(lambda: 1) == 1
