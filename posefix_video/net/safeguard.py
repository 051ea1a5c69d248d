"""After the network: the per-joint safeguard, absent-joint filling and the choice of written scores.

The safeguard keeps (or blends toward) the input joint where the network is unsure of its own answer, so that
refinement does not make good input joints worse:

    keep = confidence < min_confidence  or  move < keep_within * u  or  input_score >= confidence + input_margin
    out  = input where keep, else input + w (refined - input), w = clip((confidence - min_confidence) / blend, 0, 1)

`move` is the distance the network would move the joint and `u` the input's own uncertainty at this person's
scale: the joint's KS-0.85 radius (posefix_method.md §1.3; the "good" band of the training synthesis) from the
area of the box of the person's usable input joints. A move inside that band is what the network was trained to
treat as "already good"; the input is then kept as is (it is the better estimate on small persons, where one
heatmap cell spans several KS radii). `input_score` is the tracker's own score of the joint (when the input has
scores): a joint the tracker is surer of than the network is of its answer keeps the tracker's value. The
thresholds were chosen on held-out tuning clips (seeds 3000+, not the test clips of scripts/learning_proof.py):
scripts/tune_safeguard.py; docs/benchmarks.md has the measurement.

Everything here works on numpy arrays of P persons: (P, J, 2) coordinates, (P, J) confidences and masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORE_MODES = ("input", "refined", "product")


@dataclass(frozen=True)
class Safeguard:
    """The per-joint safeguard rule (see the module docstring).

    Attributes:
        min_confidence: below this network confidence the input joint is kept.
        blend: confidence span above `min_confidence` over which the output moves from the input to the network's
            answer (0: a hard switch).
        keep_within: moves shorter than this many KS-0.85 radii keep the input joint (0: off).
        input_margin: keep the input joint where its input score >= network confidence + input_margin (None: off;
            joints without an input score are never kept by this test).
    """

    min_confidence: float = 0.0
    blend: float = 0.0
    keep_within: float = 0.0
    input_margin: float | None = None


# chosen by scripts/tune_safeguard.py on the tuning clips with the demo checkpoint (docs/benchmarks.md, issue 18):
# the highest mean gain among the rules that keep every joint group of every cell at least as good as the input
DEFAULT_SAFEGUARD = Safeguard(min_confidence=0.7, blend=0.3, input_margin=-0.1)
DEFAULT_FILL_JOINTS = False  # refine_records / refine_video defaults, chosen by measurement (docs/benchmarks.md)
DEFAULT_SCORES = "product"
# fill_joints writes an absent joint only where the network's confidence reaches this (chosen like the defaults)
FILL_JOINT_MIN_CONFIDENCE = 0.0


def recommended_safeguard(contract: object | None, ours: object | None) -> Safeguard | None:
    """The safeguard a refiner applies unless told otherwise.

    The thresholds are calibrated on the confidence of networks trained by our recipe (our input contract). The
    authors' imported models (another contract: BGR, peak-255 heatmaps) run as the paper ran them, with no safeguard,
    so `refine_video` reproduces their behaviour with no extra argument; `--safeguard on` applies the rule anyway.

    Args:
        contract: the refiner's InputContract (None: a stand-in without one, treated as ours).
        ours: `InputContract.ours(cfg)` for the same model config.
    """
    return DEFAULT_SAFEGUARD if contract is None or contract == ours else None


def ks85_radius(keypoints: np.ndarray, usable: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(P, J) KS-0.85 radius per joint, from the area of the box around each person's usable joints (frame px)."""
    u = np.asarray(usable, dtype=bool)[..., None]
    kp = np.asarray(keypoints, dtype=np.float64)
    lo = np.where(u, kp, np.inf).min(axis=1)  # (P, 2)
    hi = np.where(u, kp, -np.inf).max(axis=1)
    side = np.where(np.isfinite(hi - lo), np.maximum(hi - lo, 1.0), 1.0)
    area = side.prod(axis=-1)  # (P,) 1 for persons without usable joints
    return np.sqrt(-2.0 * area[:, None] * (2.0 * np.asarray(sigmas))[None, :] ** 2 * np.log(0.85))


def apply_safeguard(
    refined: np.ndarray,
    confidence: np.ndarray,
    inputs: np.ndarray,
    usable: np.ndarray,
    sigmas: np.ndarray,
    rule: Safeguard,
    input_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The safeguarded coordinates and which joints kept their input value.

    Args:
        refined: (P, J, 2) the network's answer, frame px.
        confidence: (P, J) its confidence in [0, 1].
        inputs: (P, J, 2) the input joints, frame px.
        usable: (P, J) bool, the input joints that exist (only these are guarded; others are returned as refined).
        sigmas: (J,) OKS sigmas of the layout.
        rule: the thresholds.
        input_scores: (P, J) the input's per-joint scores (NaN where unknown), or None.

    Returns:
        keypoints (P, J, 2) float64; kept (P, J) bool (input joint kept as is).
    """
    refined = np.asarray(refined, dtype=np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    usable = np.asarray(usable, dtype=bool)
    keep = conf < rule.min_confidence
    if rule.keep_within > 0:
        move = np.linalg.norm(refined - inputs, axis=-1)
        keep |= move < rule.keep_within * ks85_radius(inputs, usable, sigmas)
    if rule.input_margin is not None and input_scores is not None:
        s_in = np.asarray(input_scores, dtype=np.float64)
        keep |= np.nan_to_num(s_in, nan=-np.inf) >= conf + rule.input_margin
    keep &= usable
    if rule.blend > 0:
        w = np.clip((conf - rule.min_confidence) / rule.blend, 0.0, 1.0)
    else:
        w = np.ones_like(conf)
    w = np.where(keep, 0.0, np.where(usable, w, 1.0))
    out = np.where(usable[..., None], inputs + w[..., None] * (refined - inputs), refined)
    return out, keep


def informative_scores(scores: np.ndarray | None, present: np.ndarray) -> np.ndarray:
    """(J,) a person's joint scores for the safeguard's input test, NaN where they say nothing about the joint.

    Scores that cannot be confidences (outside [0, 1], non-finite) and a person whose present joints all carry the
    same score (files that write 1 or a visibility flag for every joint) are unknown: the tracker's certainty is then
    not measured, and only the network's confidence decides.
    """
    present = np.asarray(present, dtype=bool)
    if scores is None:
        return np.full(present.shape, np.nan)
    s = np.asarray(scores, dtype=np.float64).copy()
    s[~np.isfinite(s) | (s < 0) | (s > 1)] = np.nan
    vals = s[present & np.isfinite(s)]
    if vals.size < 2 or np.ptp(vals) == 0:
        s[:] = np.nan
    return s


def choose_scores(input_scores: np.ndarray | None, confidence: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-joint scores to write: the input's, the network confidence, or their product.

    Inputs without scores (None) get the confidence in every mode but "input" (which keeps None: the writer then
    falls back to the confidence for refined persons, see video/writer.py).
    """
    if mode not in SCORE_MODES:
        raise ValueError(f"scores must be one of {', '.join(SCORE_MODES)}, got {mode!r}")
    conf = np.asarray(confidence, dtype=np.float64)
    if mode == "input":
        return input_scores
    if mode == "refined" or input_scores is None:
        return conf.copy()
    return np.asarray(input_scores, dtype=np.float64) * conf
