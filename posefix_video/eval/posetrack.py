"""PoseTrack evaluation with poseval's numbers: per-joint AP, and MOTA / MOTP / precision / recall.

    result = evaluate_posetrack(gt_paths, pred_paths, tracking=True)
    print(result.table())
    result.to_json()   # {"ap": {"Head": ..., ..., "Total": ...}, "mota": {...}, ...}

GT and prediction files are paired by position in the two lists (`evaluate_posetrack_dirs` pairs the files of two
folders by name, as poseval does). Counts are summed over all sequences before ratios are taken, and the AP ranking
is global over all sequences; nothing is averaged per video.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posefix_video.errors import InputError
from posefix_video.eval.ap import assign_frame, joint_distances, voc_ap
from posefix_video.eval.mot import NUM_COUNTS, TrackAccumulator, mot_metrics
from posefix_video.eval.posetrack_data import NUM_EVAL_JOINTS, POSEVAL_JOINTS, EvalSequence, load_sequence

log = logging.getLogger(__name__)

# The printed columns: poseval's getCum groups (plain means, NaN propagates) in poseval joint ids.
GROUPS = {
    "Head": (14, 12, 13), "Shou": (8, 9), "Elb": (7, 10), "Wri": (6, 11),
    "Hip": (2, 3), "Knee": (1, 4), "Ankl": (0, 5),
}  # fmt: skip
GROUP_NAMES = (*GROUPS, "Total")
METRICS = ("ap", "mota", "motp", "motp_textbook", "precision", "recall")


@dataclass
class SequenceStats:
    """What one sequence contributes: AP samples, GT joint counts and tracking counts.

    Attributes:
        scores: (N, 15) float64 predicted joint scores, one row per predicted person (frame-major, file order).
        labels: (N, 15) bool true positives.
        present: (N, 15) bool which predicted joints exist (the AP samples).
        n_gt: (15,) GT joints.
        counts: (15, 7) tracking counts (see `mot.py`), None when tracking is off or impossible.
        n_frames: labeled frames after cleanup.
    """

    scores: np.ndarray
    labels: np.ndarray
    present: np.ndarray
    n_gt: np.ndarray
    counts: np.ndarray | None
    n_frames: int


@dataclass
class PoseTrackResult:
    """Per-joint metrics in poseval's joint order (index 0..14) plus the Total at index 15, in percent.

    Attributes:
        ap, ap_precision, ap_recall: (16,) AP and the last point of the precision/recall curve.
        mota, motp, motp_textbook, precision, recall: (16,) tracking metrics, None without tracking. `motp` is
            poseval's with motmetrics >= 1.1 (it sums more than the matched distances), `motp_textbook` the
            CLEAR-MOT definition (matched distances only; equals poseval with motmetrics 1.0.x).
        n_frames: labeled GT frames evaluated (poseval's "# gt frames").
        notes: things the user should know (for example sequences too short for tracking).
        per_sequence: {sequence name: result} when asked for.
    """

    ap: np.ndarray
    ap_precision: np.ndarray
    ap_recall: np.ndarray
    mota: np.ndarray | None = None
    motp: np.ndarray | None = None
    motp_textbook: np.ndarray | None = None
    precision: np.ndarray | None = None
    recall: np.ndarray | None = None
    n_frames: int = 0
    notes: list[str] = field(default_factory=list)
    per_sequence: dict[str, PoseTrackResult] | None = None

    def groups(self, metric: str) -> dict[str, float]:
        """{"Head", ..., "Ankl", "Total"} -> value of `metric` (one of METRICS); NaN where poseval gives NaN."""
        vals = getattr(self, metric)
        out = {name: float(np.mean(vals[list(ids)])) for name, ids in GROUPS.items()}
        out["Total"] = float(vals[NUM_EVAL_JOINTS])
        return out

    def to_json(self) -> dict:
        """JSON-ready dict: metric -> group -> percent or None (NaN); also per joint, and per sequence if computed."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        out: dict = {}
        present = [m for m in METRICS if getattr(self, m) is not None]
        for m in present:
            out[m] = {k: clean(v) for k, v in self.groups(m).items()}
        out["per_joint"] = {m: {POSEVAL_JOINTS[j]: clean(float(getattr(self, m)[j])) for j in range(NUM_EVAL_JOINTS)}
                            for m in present}
        out["n_frames"] = self.n_frames
        if self.notes:
            out["notes"] = list(self.notes)
        if self.per_sequence is not None:
            out["per_sequence"] = {name: {m: v for m, v in r.to_json().items() if m in METRICS}
                                   for name, r in self.per_sequence.items()}
        return out

    def table(self) -> str:
        """poseval's printed tables: AP by group, then (with tracking) MOTA by group and MOTP/Prec/Rec Total."""
        def cell(v: float) -> str:
            return f"{v:5.1f}"  # poseval: "{:>5}".format("%1.1f" % v)

        def row(vals: list[float]) -> str:
            return "&" + " &".join(cell(v) for v in vals) + " \\\\"

        head = "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\"
        lines = ["Average Precision (AP) metric:", head, row(list(self.groups("ap").values()))]
        if self.mota is not None:
            lines += [
                "Multiple Object Tracking (MOT) metrics:",
                "& MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTP & Prec & Rec  \\\\",
                "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total& Total& Total& Total\\\\",
                row([*self.groups("mota").values(), self.motp[15], self.precision[15], self.recall[15]]),
            ]
            lines.append(f"(MOTP Total, textbook CLEAR-MOT definition: {self.motp_textbook[15]:.1f})")
        return "\n".join(lines)


def _with_total(per_joint: np.ndarray) -> np.ndarray:
    """Appends poseval's Total: the mean over the non-NaN joints (NaN if all are NaN)."""
    ok = per_joint[~np.isnan(per_joint)]
    total = ok.mean() if len(ok) else np.nan
    return np.append(per_joint, total)


def sequence_stats(seq: EvalSequence, tracking: bool) -> SequenceStats:
    """Runs poseval's per-frame assignment over one sequence and feeds its tracking accumulators."""
    scores, labels, present = [], [], []
    n_gt = np.zeros(NUM_EVAL_JOINTS)
    accs = [TrackAccumulator() for _ in range(NUM_EVAL_JOINTS)] if tracking else None
    dummy = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.full((1, 1), np.nan))
    last = len(seq.frames) - 1
    for f_idx, frame in enumerate(seq.frames):
        gt, pred = frame.gt, frame.pred
        n_gt += gt.present.sum(axis=0)
        both = len(gt) > 0 and len(pred) > 0
        if both:
            if np.isnan(gt.head).any():
                raise InputError(None, "GT person without a head box", f"frame {frame.name}")
            dist = joint_distances(gt, pred)
            lab, match = assign_frame(dist, gt.present)
        else:
            lab = np.zeros((len(pred), NUM_EVAL_JOINTS), bool)
        scores.append(pred.scores)
        labels.append(lab)
        present.append(pred.present)
        # poseval leaves the last labeled frame of every sequence out of tracking (imgidxs[:-1]).
        if accs is None or f_idx == last:
            continue
        if not both:
            for acc in accs:  # one dummy object and hypothesis that never pair: 1 miss + 1 FP per joint
                acc.update(*dummy)
            continue
        allowed = np.where(match, dist, np.nan).transpose(1, 0, 2)  # (G, P, 15)
        for j, acc in enumerate(accs):
            g = gt.present[:, j]
            p = pred.present[:, j]
            acc.update(gt.track_ids[g], pred.track_ids[p], allowed[g][:, p, j])
    counts = None
    if accs is not None and len(seq.frames) >= 2:
        counts = np.stack([a.counts for a in accs])
    return SequenceStats(
        scores=np.concatenate(scores) if scores else np.zeros((0, NUM_EVAL_JOINTS)),
        labels=np.concatenate(labels) if labels else np.zeros((0, NUM_EVAL_JOINTS), bool),
        present=np.concatenate(present) if present else np.zeros((0, NUM_EVAL_JOINTS), bool),
        n_gt=n_gt, counts=counts, n_frames=len(seq.frames))


def combine(stats: list[SequenceStats], tracking: bool) -> PoseTrackResult:
    """Metrics over several sequences: AP ranked globally, tracking counts summed, then ratios."""
    if stats:
        scores = np.concatenate([s.scores for s in stats])
        labels = np.concatenate([s.labels for s in stats])
        present = np.concatenate([s.present for s in stats])
    else:
        scores = np.zeros((0, NUM_EVAL_JOINTS))
        labels = present = np.zeros((0, NUM_EVAL_JOINTS), bool)
    n_gt = sum((s.n_gt for s in stats), np.zeros(NUM_EVAL_JOINTS))
    per_joint = np.array([voc_ap(scores[present[:, j], j], labels[present[:, j], j], n_gt[j])
                          for j in range(NUM_EVAL_JOINTS)])
    result = PoseTrackResult(ap=_with_total(per_joint[:, 0]), ap_precision=_with_total(per_joint[:, 1]),
                             ap_recall=_with_total(per_joint[:, 2]), n_frames=sum(s.n_frames for s in stats))
    if tracking:
        counts = np.zeros((NUM_EVAL_JOINTS, NUM_COUNTS))
        for s in stats:
            if s.counts is not None:
                counts += s.counts
        for name, vals in mot_metrics(counts).items():
            setattr(result, name, _with_total(vals))
    return result


def evaluate_posetrack(gt_paths: list[str | os.PathLike], pred_paths: list[str | os.PathLike],
                       tracking: bool = True, per_sequence: bool = False,
                       missing_scores: str = "error") -> PoseTrackResult:
    """Evaluates prediction files against GT files (paired by position) with poseval's rules.

    Args:
        gt_paths: PoseTrack 2018 or 2017 GT files, one video each (only the first video of a file is read).
        pred_paths: the matching prediction files.
        tracking: also compute MOTA etc. (needs >= 2 labeled frames per video; shorter videos are skipped with a
            note, where poseval crashes).
        per_sequence: also compute every video on its own (`result.per_sequence`).
        missing_scores: "error" refuses predicted joints without scores; "fallback" ranks them with -9999.

    Raises:
        InputError: a file poseval would refuse or crash on; the message names file, frame and track.
    """
    if len(gt_paths) != len(pred_paths):
        raise ValueError("gt_paths and pred_paths must have the same length")
    if missing_scores not in ("error", "fallback"):
        raise ValueError(f"missing_scores must be 'error' or 'fallback', got {missing_scores!r}")
    stats, names, notes = [], [], []
    for gt_path, pred_path in zip(gt_paths, pred_paths):
        seq = load_sequence(gt_path, pred_path, missing_scores=missing_scores)
        try:
            s = sequence_stats(seq, tracking)
        except InputError as err:
            raise InputError(gt_path, err.problem, err.record) from None
        if tracking and s.n_frames == 1:
            notes.append(f"{gt_path}: only 1 labeled frame, left out of tracking (poseval crashes on such videos)")
        stats.append(s)
        names.append(seq.name)
    result = combine(stats, tracking)
    result.notes = notes
    for note in notes:
        log.info(note)  # also in result.notes; the CLI prints those
    if per_sequence:
        result.per_sequence = {name: combine([s], tracking) for name, s in zip(names, stats)}
    return result


def pair_files(gt: str | os.PathLike, pred: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """GT and prediction paths from two folders (every `*.json` in GT, the same name in PRED) or two files."""
    gt, pred = Path(gt), Path(pred)
    if gt.is_dir():
        if not pred.is_dir():
            raise InputError(pred, "GT is a folder, so predictions must be a folder too")
        gts = sorted(gt.glob("*.json"))
        if not gts:
            raise InputError(gt, "no *.json GT files in this folder")
        return gts, [pred / g.name for g in gts]
    if not gt.is_file():
        raise InputError(gt, "GT file or folder not found")
    if pred.is_dir():
        raise InputError(pred, "GT is a single file, so predictions must be a single file too")
    return [gt], [pred]


def evaluate_posetrack_dirs(gt: str | os.PathLike, pred: str | os.PathLike, **kwargs) -> PoseTrackResult:
    """`evaluate_posetrack` on two folders paired by file name (or two single files); kwargs as there."""
    gts, preds = pair_files(gt, pred)
    return evaluate_posetrack(gts, preds, **kwargs)
