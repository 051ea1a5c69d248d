"""`python -m pipelines.demo --boxes`: tracker boxes -> committed initializer -> committed PoseFix checkpoint.

Done-when of issue 17: on a synthetic clip with box-only input, initializer + PoseFix beats the initializer alone
on AP (numbers in docs/demo.md)."""

from __future__ import annotations

from posefix_video.demo import DEMO_CHECKPOINT, DEMO_INITIALIZER


def test_committed_initializer_is_small_and_loads():
    from posefix_video.video.initial_poses import load_initializer

    assert DEMO_INITIALIZER.stat().st_size < 5e6
    est = load_initializer(DEMO_INITIALIZER, device="cpu")
    assert est.layout.name == "posetrack18" and est.contract.decoder == "argmax_msra"


def test_initializer_plus_posefix_beats_the_initializer_alone(tmp_path, capsys):
    from pipelines.demo import main
    from posefix_video.eval import evaluate_posetrack

    assert main(["--boxes", "--out", str(tmp_path)]) == 0  # the default 40-frame demo clip
    printed = capsys.readouterr().out
    assert "initializer" in printed and "+ PoseFix" in printed and "MOTA" in printed
    assert printed.splitlines()[:5] == (tmp_path / "table.txt").read_text().splitlines()
    (gt,) = (tmp_path / "clip" / "annotations" / "val").glob("*.json")
    alone = evaluate_posetrack([gt], [tmp_path / "initializer" / gt.name]).groups("ap")["Total"]
    refined = evaluate_posetrack([gt], [tmp_path / "refined" / gt.name]).groups("ap")["Total"]
    assert refined > alone > 10, printed  # real poses from the boxes, and PoseFix improves them


def test_boxes_refuses_train(tmp_path, capsys):
    from pipelines.demo import main

    assert main(["--boxes", "--train", "--out", str(tmp_path / "x")]) == 2
    assert "--train" in capsys.readouterr().err
    assert DEMO_CHECKPOINT.is_file()


