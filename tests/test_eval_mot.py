"""Our CLEAR-MOT counting against py-motmetrics' MOTAccumulator (the library poseval calls), event by event."""

from __future__ import annotations

import numpy as np
import pytest

from posefix_video.eval.mot import (
    DETECTIONS,
    FALSE_POSITIVES,
    MISSES,
    OBJECTS,
    SUM_D_MATCHED,
    SUM_D_POSEVAL,
    SWITCHES,
    TrackAccumulator,
    mot_metrics,
)


def _random_frames(rng, n_frames=30, n_tracks=6, n_hyps=7):
    frames = []
    for _ in range(n_frames):
        oids = np.sort(rng.choice(n_tracks, size=rng.integers(0, n_tracks + 1), replace=False))
        hids = rng.permutation(rng.choice(n_hyps, size=rng.integers(0, n_hyps + 1), replace=False))
        d = rng.uniform(0, 0.8, size=(len(oids), len(hids)))
        d[d > 0.5] = np.nan  # forbidden pairs, as poseval's threshold makes them
        frames.append((oids, hids, d))
    return frames


@pytest.mark.parametrize("seed", range(6))
def test_counts_equal_motmetrics(seed):
    mm = pytest.importorskip("motmetrics")
    rng = np.random.default_rng(seed)
    frames = _random_frames(rng)
    ours = TrackAccumulator()
    acc = mm.MOTAccumulator(auto_id=True)
    for oids, hids, d in frames:
        ours.update(oids, hids, d)
        acc.update(oids, hids, d)
    m = mm.metrics.create().compute(acc, metrics=["num_misses", "num_switches", "num_false_positives",
                                                  "num_objects", "num_detections"], return_dataframe=False)
    c = ours.counts
    assert c[OBJECTS] == m["num_objects"] and c[MISSES] == m["num_misses"]
    assert c[SWITCHES] == m["num_switches"] and c[FALSE_POSITIVES] == m["num_false_positives"]
    assert c[DETECTIONS] == m["num_detections"]
    assert c[SWITCHES] > 0  # the random data do exercise switches
    ev = acc.events
    assert c[SUM_D_POSEVAL] == pytest.approx(ev["D"].sum())  # what poseval sums with motmetrics >= 1.1
    assert c[SUM_D_MATCHED] == pytest.approx(ev[ev.Type.isin(["MATCH", "SWITCH"])]["D"].sum())


def test_keeps_previous_match_over_a_cheaper_pair_and_counts_switch():
    acc = TrackAccumulator()
    acc.update(np.array([1]), np.array([10, 11]), np.array([[0.1, 0.4]]))  # 1 -> 10
    acc.update(np.array([1]), np.array([10, 11]), np.array([[0.4, 0.1]]))  # kept, though 11 is closer
    assert acc.counts[SWITCHES] == 0 and acc.counts[DETECTIONS] == 2
    acc.update(np.array([1]), np.array([11]), np.array([[0.2]]))  # 10 gone: 1 -> 11 is a switch
    acc.update(np.array([1]), np.array([10, 11]), np.array([[0.1, 0.3]]))  # 11 kept, no switch back
    c = acc.counts
    assert (c[OBJECTS], c[MISSES], c[FALSE_POSITIVES], c[SWITCHES], c[DETECTIONS]) == (4, 0, 3, 1, 4)
    assert c[SUM_D_MATCHED] == pytest.approx(0.1 + 0.4 + 0.2 + 0.3)


def test_metric_formulas_and_nan_rules():
    counts = np.zeros((3, 7))
    counts[0, [OBJECTS, MISSES, SWITCHES, FALSE_POSITIVES, DETECTIONS, SUM_D_MATCHED, SUM_D_POSEVAL]] = \
        [10, 2, 1, 3, 8, 0.8, 1.6]
    counts[1, [FALSE_POSITIVES]] = [4]  # no GT: MOTA and recall NaN, MOTP 0, precision 0
    m = mot_metrics(counts)
    assert m["mota"][0] == pytest.approx(100 * (1 - 6 / 10))
    assert m["motp_textbook"][0] == pytest.approx(90.0) and m["motp"][0] == pytest.approx(80.0)
    assert m["precision"][0] == pytest.approx(100 * 8 / 11) and m["recall"][0] == pytest.approx(80.0)
    assert np.isnan(m["mota"][1]) and np.isnan(m["recall"][1]) and m["motp"][1] == 0 and m["precision"][1] == 0
    assert np.isnan(m["precision"][2]) and m["motp"][2] == 0  # nothing at all
