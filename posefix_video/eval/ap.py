"""poseval's per-frame PCKh assignment and its VOC all-point AP.

Per frame, predicted persons are assigned to GT persons greedily (not Hungarian): each prediction keeps only its
best GT by PCKh (first index on ties), then each GT keeps its best prediction. A predicted joint is a true positive
iff its person is assigned and the joint lies within 0.5 head sizes of the assigned GT joint.
"""

from __future__ import annotations

import numpy as np

from posefix_video.eval.posetrack_data import NUM_EVAL_JOINTS, Persons

PCKH_THRESHOLD = 0.5


def joint_distances(gt: Persons, pred: Persons) -> np.ndarray:
    """(P, G, 15) distances normalised by the GT head size; inf where either joint is absent.

    Raw pixel norms are divided by 0.6 x the GT head box diagonal, as poseval does (a zero head size gives inf
    or NaN, which never matches, also as in poseval).
    """
    diff = gt.xy[None, :, :, :] - pred.xy[:, None, :, :]
    norm = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = norm / gt.head_size[None, :, None]
    both = pred.present[:, None, :] & gt.present[None, :, :]
    return np.where(both, dist, np.inf)


def assign_frame(dist: np.ndarray, gt_present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """poseval's greedy two-step PCKh assignment of one frame.

    Args:
        dist: (P, G, 15) from `joint_distances`, P > 0 and G > 0.
        gt_present: (G, 15) bool.

    Returns:
        (labels, match): labels (P, 15) bool, True where a predicted joint is a true positive; match (P, G, 15)
        bool, dist <= 0.5 (inclusive).
    """
    match = dist <= PCKH_THRESHOLD
    n_gt = gt_present.sum(axis=1)
    pck = match.sum(axis=2).astype(np.float64)
    pck = np.where(n_gt[None, :] > 0, pck / np.maximum(n_gt, 1)[None, :], pck)
    best_gt = np.argmax(pck, axis=1)
    keep = np.zeros_like(pck, dtype=bool)
    keep[np.arange(len(pck)), best_gt] = True
    pck = np.where(keep, pck, 0.0)
    pr_to_gt = np.argmax(pck, axis=0)
    assigned = pck.max(axis=0) > 0
    labels = np.zeros((dist.shape[0], NUM_EVAL_JOINTS), bool)
    g = np.flatnonzero(assigned)
    labels[pr_to_gt[g]] = match[pr_to_gt[g], g]
    return labels, match


def voc_ap(scores: np.ndarray, labels: np.ndarray, n_gt: float) -> tuple[float, float, float]:
    """AP, final precision and final recall (x100) of one joint, as poseval computes them.

    Args:
        scores: (N,) float64 scores of all predicted joints, in poseval's sample order (the order decides ties:
            poseval sorts with numpy's default unstable argsort, reversed).
        labels: (N,) bool true positives.
        n_gt: number of GT joints.

    Returns:
        (ap, precision, recall); all 0 when N == 0 (even if n_gt == 0), AP and recall NaN when n_gt == 0 < N.
    """
    if len(scores) == 0:
        return 0.0, 0.0, 0.0
    order = np.asarray(scores).argsort()[::-1]
    tp = np.cumsum(labels[order].astype(np.int64))
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / np.float64(n_gt)
    precision = tp / np.arange(1, len(tp) + 1, dtype=np.float64)
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    ap = np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx])
    return float(ap * 100), float(precision[-1] * 100), float(recall[-1] * 100)
