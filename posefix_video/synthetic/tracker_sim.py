"""Tracker simulator: turns PoseTrack18 ground truth into realistic tracker output (PoseTrack18 predictions).

Error processes, each switchable and with a strength (`TrackerSimSettings`):

- posefix: per-joint good/jitter/miss/inversion/swap errors drawn exactly like PoseFix's training synthesis
  (`posefix_video.synthesis.synthesize_poses`; probability tables and KS radii of posefix_method.md §1.3-1.6),
  with the radii from each person's ground-truth box area in frame pixels and "near" persons = box IoU >= 0.1.
  These are the errors the refiner was trained on.
- drift: a temporally correlated offset per track and joint, AR(1): o_t = rho o_{t-1} + sqrt(1 - rho^2) s e_t,
  s = drift * d_j(0.85) (the joint's KS-0.85 radius), so the pose wobbles smoothly instead of jittering.
- drop_joints: joints not output at all (0, 0, 0), independently per frame.
- drop_limbs: a whole limb (elbow + wrist, or knee + ankle) not output, per frame (occluded or cut-off limbs).
- blank_below: joints whose score is under this value are output as (0, 0, 0), as ultralytics writes poses
  (keypoints under its 0.5 confidence are zeroed); applied after the score model.
- miss_person: a track vanishes for a burst of frames (geometric length, mean `miss_length`).
- id_switch: two persons of a frame exchange identities from then on; `new_id_after_miss`: a track that
  reappears after a miss gets a fresh id (fragmentation).
- scores: per-joint score = sigmoid(score_bias - score_slope * error / d_j(0.5) + N(0, score_noise)), so bigger
  errors get lower scores, noisily, as real estimators' do. Person score = mean joint score.

The ear slots (never labeled in PoseTrack18) and joints the ground truth does not label are output as (0, 0, 0)
with score 0. Every frame of the ground truth's `images` is copied, so poseval pairs the files.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posefix_video.errors import InputError
from posefix_video.io.posetrack18 import read_posetrack18, write_posetrack18
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.synthesis import ks_radius, synthesize_poses

log = logging.getLogger(__name__)

# elbow + wrist and knee + ankle of each side (COCO slots, which PoseTrack18 shares)
LIMBS = ((7, 9), (8, 10), (13, 15), (14, 16))


@dataclass(frozen=True)
class TrackerSimSettings:
    """Error processes of the simulated tracker; a strength of 0 (or False) switches a process off.

    Attributes:
        posefix: probability that a joint takes its PoseFix-synthesised value (else the exact ground truth);
            1 reproduces the training error statistics (harsh under PCKh: about 63 AP on synthetic videos);
            the defaults (0.5, drift 0.2) give about 74 AP, near real trackers on PoseTrack18 val.
        drift: AR(1) offset standard deviation, in units of each joint's KS-0.85 radius.
        drift_rho: AR(1) frame-to-frame correlation (0.9: errors persist for about 10 frames).
        drop_joints: probability that a joint is missing from a detection.
        drop_limbs: probability per limb and detection that the limb (elbow + wrist, knee + ankle) is missing.
        blank_below: joints scoring under this are blanked (0: off; 0.5: ultralytics' confidence blanking).
        miss_person: probability per track and frame that a miss burst starts.
        miss_length: mean length in frames of a miss burst.
        id_switch: probability per frame that two persons of the frame exchange identities.
        new_id_after_miss: probability that a track comes back from a miss burst with a fresh id.
        score_bias, score_slope, score_noise: the score model (logit space).
    """

    posefix: float = 0.5
    drift: float = 0.2
    drift_rho: float = 0.9
    drop_joints: float = 0.02
    drop_limbs: float = 0.0
    blank_below: float = 0.0
    miss_person: float = 0.01
    miss_length: float = 4.0
    id_switch: float = 0.01
    new_id_after_miss: float = 0.5
    score_bias: float = 2.5
    score_slope: float = 2.5
    score_noise: float = 0.6

    @staticmethod
    def training() -> TrackerSimSettings:
        """Only the PoseFix synthesis at full strength: the refiner's training input statistics."""
        return TrackerSimSettings(posefix=1.0, drift=0.0, drop_joints=0.0, miss_person=0.0, id_switch=0.0,
                                  new_id_after_miss=0.0)  # fmt: skip

    @staticmethod
    def ultralytics() -> TrackerSimSettings:
        """The default mix with joints under 0.5 score blanked, as ultralytics writes pose results."""
        return TrackerSimSettings(blank_below=0.5)

    @staticmethod
    def clean() -> TrackerSimSettings:
        """All processes off: the output equals the ground truth (scores from the score model at error 0)."""
        return TrackerSimSettings(posefix=0.0, drift=0.0, drop_joints=0.0, miss_person=0.0, id_switch=0.0,
                                  new_id_after_miss=0.0)  # fmt: skip


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of [x, y, w, h] boxes a (N, 4) and b (M, 4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y2 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def _person_box(p: PersonRecord) -> np.ndarray:
    if p.box is not None and p.box[2] > 0 and p.box[3] > 0:
        return p.box
    pts = p.keypoints[p.present]
    if len(pts) == 0:
        return np.zeros(4)
    lo, hi = pts.min(0), pts.max(0)
    return np.array([lo[0], lo[1], max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)])


class TrackerSimulator:
    """Stateful per-video simulator (drift, miss bursts and identities carry from frame to frame).

    Args:
        settings: the error processes.
        rng: numpy Generator; the output is a deterministic function of its state and the input.
    """

    def __init__(self, *, settings: TrackerSimSettings, rng: np.random.Generator):
        self.s = settings
        self.rng = rng
        self.layout = POSETRACK18
        self.offset: dict[int, np.ndarray] = {}  # track -> (17, 2) AR(1) offset in units of d85
        self.missing: dict[int, int] = {}  # track -> frames of miss burst left
        self.was_missing: set[int] = set()
        self.identity: dict[int, int] = {}  # GT track -> output id
        self.next_id = 0

    def _out_id(self, track: int) -> int:
        if track not in self.identity:
            self.identity[track] = track if track >= self.next_id else self.next_id
            self.next_id = max(self.next_id, self.identity[track]) + 1
        return self.identity[track]

    def frame(self, frame: int, gt: list[PersonRecord]) -> list[PersonRecord]:
        """Simulated detections of one frame from its ground-truth persons (PoseTrack18 records)."""
        s, rng = self.s, self.rng
        keep = []
        for p in gt:
            t = int(p.track_id)
            left = self.missing.get(t, 0)
            if left == 0 and s.miss_person > 0 and rng.random() < s.miss_person:
                left = int(rng.geometric(1.0 / max(s.miss_length, 1.0)))
            if left > 0:
                self.missing[t] = left - 1
                self.was_missing.add(t)
                continue
            keep.append(p)
        if not keep:
            return []
        n = len(keep)
        gt_xy = np.stack([p.keypoints for p in keep])
        gt_ok = np.stack([p.present for p in keep]) & self.layout.used_mask
        boxes = np.stack([_person_box(p) for p in gt])
        mine = np.array([gt.index(p) for p in keep])
        area = boxes[mine, 2] * boxes[mine, 3]
        d85 = ks_radius(0.85, area, self.layout.sigma_array)
        d50 = ks_radius(0.5, area, self.layout.sigma_array)

        xy = gt_xy.copy()
        etype = np.where(gt_ok, 0, -1).astype(np.int8)
        if s.posefix > 0:
            xy, etype = self._posefix(gt, boxes, mine, gt_xy, gt_ok, area, xy, etype)
        if s.drift > 0:
            for k, p in enumerate(keep):
                o = self.offset.get(int(p.track_id))
                eps = rng.standard_normal((17, 2))
                o = eps if o is None else s.drift_rho * o + np.sqrt(1 - s.drift_rho**2) * eps
                self.offset[int(p.track_id)] = o
                xy[k] += o * s.drift * d85[k][:, None]
        present = gt_ok & (etype >= 0)
        if s.drop_joints > 0:
            present &= rng.random((n, 17)) >= s.drop_joints
        if s.drop_limbs > 0:
            gone = rng.random((n, len(LIMBS))) < s.drop_limbs  # (n, 4)
            for k, limb in enumerate(LIMBS):
                present[:, limb] &= ~gone[:, k, None]
        err = np.linalg.norm(xy - gt_xy, axis=-1) / np.maximum(d50, 1e-6)
        logit = s.score_bias - s.score_slope * err + s.score_noise * rng.standard_normal((n, 17))
        scores = np.where(present, 1.0 / (1.0 + np.exp(-logit)), 0.0)
        if s.blank_below > 0:
            present &= scores >= s.blank_below
            scores = np.where(present, scores, 0.0)
        xy = np.where(present[..., None], xy, 0.0)

        if s.id_switch > 0 and n >= 2 and rng.random() < s.id_switch:
            a, b = rng.choice(n, 2, replace=False)
            ta, tb = int(keep[a].track_id), int(keep[b].track_id)
            ia, ib = self._out_id(ta), self._out_id(tb)
            self.identity[ta], self.identity[tb] = ib, ia
        out = []
        for k, p in enumerate(keep):
            t = int(p.track_id)
            if t in self.was_missing:
                self.was_missing.discard(t)
                if s.new_id_after_miss > 0 and rng.random() < s.new_id_after_miss:
                    self.identity[t] = self.next_id
                    self.next_id += 1
            ok = present[k]
            person_score = float(scores[k][ok].mean()) if ok.any() else 0.0
            out.append(PersonRecord(
                frame=frame, track_id=self._out_id(t), keypoints=np.round(xy[k], 2), scores=np.round(scores[k], 4),
                present=ok, visibility=np.round(scores[k], 4), person_score=round(person_score, 4),
                extra={"category_id": 1, "sim_gt_track_id": t, "sim_error_type": etype[k].tolist()},
            ))  # fmt: skip
        return out

    def _posefix(self, gt, boxes, mine, gt_xy, gt_ok, area, xy, etype):
        iou = _iou(boxes[mine], boxes)
        iou[np.arange(len(mine)), mine] = 0.0
        near_mask = iou >= 0.1
        overlap = near_mask.sum(1)
        m = max(int(overlap.max()), 1)
        n = len(mine)
        near = np.zeros((n, m, 17, 2))
        near_ok = np.zeros((n, m, 17), dtype=bool)
        for k in range(n):
            for slot, j in enumerate(np.flatnonzero(near_mask[k])):
                near[k, slot] = gt[j].keypoints
                near_ok[k, slot] = gt[j].present
        res = synthesize_poses(gt_xy, gt_ok, near, near_ok, area, overlap, self.layout, self.rng)
        use = (self.rng.random(gt_ok.shape) < self.s.posefix) & gt_ok
        xy = np.where(use[..., None], res.keypoints, xy)
        etype = np.where(use, res.error_type, etype).astype(np.int8)
        return xy, etype


def simulate_sequence(gt: PoseSequence, settings: TrackerSimSettings, rng: np.random.Generator) -> PoseSequence:
    """Simulated tracker output for a whole ground-truth video (PoseTrack18 layout, GT `images` copied)."""
    if gt.layout.name != POSETRACK18.name:
        raise InputError(None, f"sequence {gt.name!r} has the {gt.layout.name} layout; the tracker simulator "
                         "needs PoseTrack18 ground truth")  # fmt: skip
    sim = TrackerSimulator(settings=settings, rng=rng)
    out = PoseSequence(name=gt.name, layout=POSETRACK18, num_frames=gt.num_frames, images=gt.images,
                       image_ids=gt.image_ids, file_names=gt.file_names, source_format="tracker_sim",
                       meta={"categories": gt.meta.get("categories")})  # fmt: skip
    for frame in sorted(gt.frames):
        persons = [p for p in gt.frames[frame] if p.track_id is not None]
        for p in sim.frame(frame, persons):
            out.add(p)
    return out


def simulate_files(
    gt_paths: list[Path], out_dir: str | os.PathLike, settings: TrackerSimSettings, seed: int
) -> list[Path]:
    """Writes one prediction file per ground-truth file, with the same name, into `out_dir`."""
    out_paths = []
    for path in gt_paths:
        gt = read_posetrack18(path)
        rng = np.random.default_rng([seed, zlib.crc32(Path(path).name.encode())])
        pred = simulate_sequence(gt, settings, rng)
        target = Path(out_dir) / Path(path).name
        write_posetrack18(pred, target)
        log.info("%s: %d simulated detections", target, pred.num_persons)
        out_paths.append(target)
    return out_paths
