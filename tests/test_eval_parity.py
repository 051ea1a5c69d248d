"""Our PoseTrack evaluator against numbers the real poseval (4258a15, motmetrics 1.4.0) printed on the same files.

Predictions are regenerated deterministically by scripts/make_eval_fixtures.py; tests/fixtures/poseval/NOTE.md
says how the expected numbers were made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posefix_video.eval import evaluate_posetrack_dirs
from scripts.make_eval_fixtures import KINDS
from scripts.make_eval_fixtures import main as make_fixtures

FIXTURES = Path(__file__).parent / "fixtures" / "poseval"
SETS = {
    "mmpose": ("posetrack18_mmpose/annotations/val", False),  # 1 labeled frame per video: AP only
    "bonn": ("bonn_posetrack_cvpr17/annotations", True),
}


@pytest.fixture(scope="module")
def predictions(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("preds")
    for name, (gt, _) in SETS.items():
        assert make_fixtures(["--gt", str(shared_data / gt), "--out", str(root / name)]) == 0
    return root


def _expected(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _close(ours: np.ndarray, theirs: list, what: str) -> None:
    theirs = np.array(theirs, dtype=np.float64)  # JSON NaN -> nan
    assert ours.shape == theirs.shape == (16,)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{what}: NaN pattern {ours} vs {theirs}"
    ok = ~np.isnan(theirs)
    assert np.allclose(ours[ok], theirs[ok], rtol=0, atol=0.01), f"{what}: {ours} vs poseval {theirs}"


@pytest.mark.parametrize("name", list(SETS))
@pytest.mark.parametrize("kind", KINDS)
def test_matches_poseval(shared_data, predictions, name, kind):
    gt, tracking = SETS[name]
    exp = _expected(name)[kind]
    r = evaluate_posetrack_dirs(shared_data / gt, predictions / name / kind, tracking=tracking)
    _close(r.ap, exp["ap"], "AP")
    _close(r.ap_precision, exp["ap_pre"], "AP precision")
    _close(r.ap_recall, exp["ap_rec"], "AP recall")
    if tracking:
        _close(r.mota, exp["mota"], "MOTA")
        _close(r.precision, exp["pre"], "MOT precision")
        _close(r.recall, exp["rec"], "MOT recall")
        _close(r.motp, exp["motp"], "MOTP (poseval, motmetrics 1.4.0)")
        # Textbook MOTP only sums matched distances, so it is never below the poseval variant.
        assert np.all(r.motp_textbook[:15] >= r.motp[:15] - 1e-9)
    # The group columns and the printed rows are poseval's, character for character.
    printed = exp["stdout_tables"].splitlines()
    ours = r.table().splitlines()
    assert ours[2] == printed[1]
    if tracking:
        assert ours[4:7] == printed[2:5]


def test_fixture_kinds_exercise_the_metrics():
    """The kinds differ where they should, so the parity test covers more than one regime."""
    bonn = _expected("bonn")
    total = {k: (v["ap"][15], v["mota"][15]) for k, v in bonn.items()}
    assert total["exact"][0] > total["noise_small"][0] - 1e-9 > total["noise_large"][0]
    assert total["swapped_ids"][0] == pytest.approx(total["exact"][0])  # ids do not matter for AP ...
    assert total["swapped_ids"][1] < total["exact"][1] - 5  # ... but switches lower MOTA
    assert bonn["false_persons"]["pre"][15] < 100 and bonn["missing_persons"]["rec"][15] < 100
    # Nose is never labeled in this GT: AP 0 (not NaN), MOTA NaN, and 1 miss + 1 FP per empty frame.
    assert bonn["exact"]["ap"][13] == 0 and np.isnan(np.float64(bonn["exact"]["mota"][13]))
    assert bonn["empty_frames"]["mota"][13] < 0
