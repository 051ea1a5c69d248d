"""CLEAR-MOT event counting with py-motmetrics' exact semantics, without pandas.

poseval feeds one `motmetrics.MOTAccumulator` per sequence and joint. This module reproduces its update rule
(keep previous matches, then a minimum-cost assignment on the rest with motmetrics' "expensive edge" costs and
scipy's solver, then misses and false positives) and keeps only the counts poseval reads, so MOTA, precision and
recall are identical. It also sums the distances two ways:

- `sum_d_matched`: distances of MATCH and SWITCH events (textbook MOTP, and motmetrics 1.0.x);
- `sum_d_poseval`: every distance motmetrics >= 1.1 stores in its event table (also RAW rows for every finite
  pair, and TRANSFER / ASCEND / MIGRATE rows), which is what poseval sums for MOTP with a current motmetrics.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# Columns of a counts array (one row per joint).
OBJECTS, MISSES, SWITCHES, FALSE_POSITIVES, DETECTIONS, SUM_D_MATCHED, SUM_D_POSEVAL = range(7)
NUM_COUNTS = 7


def _expensive_edges(costs: np.ndarray) -> np.ndarray:
    """motmetrics' replacement of forbidden pairs by a cost that forces maximum cardinality first."""
    valid = np.isfinite(costs)
    if valid.all():
        return costs.copy()
    r = min(costs.shape)
    c = np.abs(costs[valid]).max() + 1
    return np.where(valid, costs, 2 * r * c + 1)


class TrackAccumulator:
    """One sequence, one joint: motmetrics' MOTAccumulator reduced to poseval's counts.

    Attributes:
        counts: (7,) float64: objects, misses, switches, false positives, detections (matches + switches),
            matched distance sum, poseval (motmetrics >= 1.1) distance sum.
    """

    def __init__(self) -> None:
        self.counts = np.zeros(NUM_COUNTS)
        self._match: dict[int, int] = {}  # object -> its last hypothesis (motmetrics `m`)
        self._res_match: dict[int, int] = {}  # hypothesis -> object, set by assignments only (`res_m`)
        self._hyp_matched: set[int] = set()  # hypotheses matched at least once (`hypHistory`)
        self._obj_matched: set[int] = set()  # objects matched at least once (`last_match`)

    def update(self, oids: np.ndarray, hids: np.ndarray, dists: np.ndarray) -> None:
        """One frame.

        Args:
            oids: (N,) int object (GT track) ids.
            hids: (M,) int hypothesis (predicted track) ids.
            dists: (N, M) float distances; NaN forbids a pair.
        """
        c = self.counts
        n, m = len(oids), len(hids)
        c[OBJECTS] += n
        if n == 0 or m == 0:
            c[MISSES] += n
            c[FALSE_POSITIVES] += m
            return
        finite = np.isfinite(dists)
        if not finite.any():
            c[MISSES] += n
            c[FALSE_POSITIVES] += m
            return
        c[SUM_D_POSEVAL] += dists[finite].sum()  # motmetrics' RAW rows
        o_done = np.zeros(n, bool)
        h_done = np.zeros(m, bool)
        hid_list = hids.tolist()
        matched_d = 0.0
        extra_d = 0.0
        detections = 0
        switches = 0
        # 1. Keep a previous correspondence if its hypothesis is here and the pair is allowed.
        if self._match:
            for i, o in enumerate(oids.tolist()):
                h = self._match.get(o)
                if h is None:
                    continue
                js = [j for j, hh in enumerate(hid_list) if hh == h and not h_done[j]]
                if not js or not finite[i, js[0]]:
                    continue
                j = js[0]
                o_done[i] = h_done[j] = True
                self._hyp_matched.add(h)
                self._obj_matched.add(o)
                matched_d += dists[i, j]
                detections += 1
        # 2. Minimum-cost assignment of the rest.
        rest = dists.copy()
        rest[o_done, :] = np.nan
        rest[:, h_done] = np.nan
        rest_ok = np.isfinite(rest)
        if rest_ok.any():
            rows, cols = linear_sum_assignment(_expensive_edges(rest))
            for i, j in zip(rows.tolist(), cols.tolist()):
                if not rest_ok[i, j]:
                    continue
                o, h, d = int(oids[i]), hid_list[j], dists[i, j]
                prev = self._match.get(o)
                if prev is not None and prev != h:
                    switches += 1
                    if h not in self._hyp_matched:
                        extra_d += d  # ASCEND row
                else:
                    detections += 1
                owner = self._res_match.get(h)
                if owner is not None and owner != o:
                    extra_d += d  # TRANSFER row
                    if o not in self._obj_matched:
                        extra_d += d  # MIGRATE row
                self._hyp_matched.add(h)
                self._obj_matched.add(o)
                matched_d += d
                o_done[i] = h_done[j] = True
                self._match[o] = h
                self._res_match[h] = o
        c[MISSES] += n - o_done.sum()
        c[FALSE_POSITIVES] += m - h_done.sum()
        c[SWITCHES] += switches
        c[DETECTIONS] += detections + switches
        c[SUM_D_MATCHED] += matched_d
        c[SUM_D_POSEVAL] += matched_d + extra_d


def mot_metrics(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-joint MOTA, MOTP (both variants), precision and recall (x100) from summed counts, poseval's NaN rules.

    Args:
        counts: (J, 7) counts summed over sequences.

    Returns:
        {"mota", "motp", "motp_textbook", "precision", "recall"}: (J,) float64. MOTA/recall NaN without GT
        objects, precision NaN without detections and FPs, MOTP 0 (not NaN) without detections.
    """
    obj = np.where(counts[:, OBJECTS] > 0, counts[:, OBJECTS], np.nan)
    det = counts[:, DETECTIONS]
    fp = counts[:, FALSE_POSITIVES]
    mota = 100 * (1.0 - (counts[:, MISSES] + counts[:, SWITCHES] + fp) / obj)
    with np.errstate(divide="ignore", invalid="ignore"):
        motp = np.where(det > 0, 100 * (1.0 - counts[:, SUM_D_POSEVAL] / det), 0.0)
        motp_tb = np.where(det > 0, 100 * (1.0 - counts[:, SUM_D_MATCHED] / det), 0.0)
        total = det + fp
        precision = 100 * det / np.where(total > 0, total, np.nan)
    recall = 100 * det / obj
    return {"mota": mota, "motp": motp, "motp_textbook": motp_tb, "precision": precision, "recall": recall}
