"""The demo pipeline: synthetic clip -> simulated tracker -> refine with the committed checkpoint -> evaluate."""

from __future__ import annotations

import re

import pytest

from pipelines import demo as demo_cli
from posefix_video.demo import DEMO_CHECKPOINT, ClipSpec, format_table, run_demo


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d", line)]


def test_demo_small_clip(tmp_path):
    res = run_demo(tmp_path, spec=ClipSpec(frames=6, width=320, height=240, min_tracks=2, max_tracks=3))
    for name in ("overlay.mp4", "ap_per_joint.png", "table.txt"):
        assert (tmp_path / name).stat().st_size > 0
    assert res.result.refined.is_file()
    lines = res.table.splitlines()
    inp = _numbers(next(ln for ln in lines if ln.startswith("input")))
    ref = _numbers(next(ln for ln in lines if ln.startswith("refined ")))
    assert len(inp) == len(ref) == 9  # 7 groups + Total + MOTA
    assert all(0.0 <= v <= 100.0 for v in inp[:8] + ref[:8])
    # the table's Total equals the evaluator's numbers
    assert inp[7] == pytest.approx(res.result.before.groups("ap")["Total"], abs=0.05)
    assert ref[7] == pytest.approx(res.result.after.groups("ap")["Total"], abs=0.05)
    # the refined file holds every input person (refine_video keeps them all)
    assert res.result.summary.persons == res.result.summary.refined + sum(res.result.summary.passed_through.values())
    same = format_table([("a", res.result.before), ("b", res.result.before)]).splitlines()[2:]
    assert _numbers(same[0]) == _numbers(same[1]) == inp


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    rc = demo_cli.main(["--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "nope.pth"), "--frames", "3"])
    assert rc == 2
    assert "nope.pth" in capsys.readouterr().err


def test_checkpoint_is_small():
    assert DEMO_CHECKPOINT.stat().st_size <= 10 * 1024 * 1024


@pytest.mark.slow
def test_full_demo_improves_ap(tmp_path, capsys):
    assert demo_cli.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    gain = float(re.search(r"refined - input AP Total: ([-+]\d+\.\d)", out).group(1))
    assert gain > 0
