"""Articulated 3D stick body, posed by joint angles and projected orthographically into frame pixels.

Body frame (before the global rotation): origin at the pelvis centre, +X = the person's left, +Y = up,
+Z = the person's forward. Camera frame: +X = screen right, +Y = screen up, +Z = toward the camera, so a person
with yaw 0 faces the camera and their left side appears on the screen's right (as in real images). Lengths are
fractions of the standing height; `project` scales them to pixels and places the lowest point on the ground line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Indices of the points `project` returns. 0..16 are the COCO-17 slots; the rest are helpers for drawing and for
# the PoseTrack head points.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16
CHIN, HEAD_TOP, HEAD_CENTRE, L_HAND, R_HAND, L_TOE, R_TOE, NECK_BASE, PELVIS = 17, 18, 19, 20, 21, 22, 23, 24, 25
TORSO_BOX = 26  # 8 corners: 4 at shoulder height then 4 at hip height (front-left, front-right, back-right, back-left)
NUM_POINTS = TORSO_BOX + 8

POSE_KINDS = ("stand", "walk", "arms_raised", "wave", "reach", "bend", "sit", "squat", "lie")


@dataclass(frozen=True)
class BodyShape:
    """Proportions of one person, as fractions of the standing height (adult-like, with per-person variation)."""

    torso: float = 0.29
    neck: float = 0.045
    head_h: float = 0.125
    head_w: float = 0.095
    shoulder_w: float = 0.21
    hip_w: float = 0.11
    depth: float = 0.11  # front-to-back thickness of the torso
    upper_arm: float = 0.17
    forearm: float = 0.145
    hand: float = 0.05
    thigh: float = 0.235
    shin: float = 0.23
    ankle_h: float = 0.035
    foot: float = 0.075

    @staticmethod
    def random(rng: np.random.Generator) -> BodyShape:
        """A plausible random variation of the default proportions (children get bigger heads)."""
        child = rng.random() < 0.15
        s = lambda v, spread=0.08: float(v * (1.0 + spread * rng.standard_normal()))  # noqa: E731
        head = 1.25 if child else 1.0
        return BodyShape(
            torso=s(0.29, 0.05), neck=s(0.045), head_h=s(0.125 * head, 0.05), head_w=s(0.095 * head, 0.06),
            shoulder_w=s(0.21 / (1.1 if child else 1.0)), hip_w=s(0.11), depth=s(0.11), upper_arm=s(0.17, 0.04),
            forearm=s(0.145, 0.04), hand=s(0.05), thigh=s(0.235, 0.04), shin=s(0.23, 0.04), ankle_h=0.035,
            foot=s(0.075),
        )  # fmt: skip


@dataclass
class Pose:
    """Joint angles in radians.

    Attributes:
        yaw: rotation about the vertical; 0 faces the camera, +pi/2 faces screen right.
        roll: rotation about the camera axis (pi/2 or -pi/2 for a person lying down), applied after yaw.
        bend: forward bend of the spine; side: sideways lean of the spine.
        head_yaw, head_tilt: head turn and nod relative to the spine.
        arms: (2, 3) rows left/right of [abduction, flexion, elbow]; abduction moves the arm away from the body
            sideways (pi = straight up), flexion swings it forward, elbow bends the forearm further forward.
        legs: (2, 3) rows left/right of [abduction, flexion, knee]; the knee bends the shin backward.
    """

    yaw: float = 0.0
    roll: float = 0.0
    bend: float = 0.0
    side: float = 0.0
    head_yaw: float = 0.0
    head_tilt: float = 0.0
    arms: np.ndarray = field(default_factory=lambda: np.array([[0.15, 0.0, 0.1], [0.15, 0.0, 0.1]]))
    legs: np.ndarray = field(default_factory=lambda: np.array([[0.05, 0.0, 0.0], [0.05, 0.0, 0.0]]))


# Scalar trig through `math`: these run per person per frame, where numpy's per-call overhead dominates.
def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _lin(base: tuple, *terms: tuple) -> tuple:
    """base + sum(k * v for v, k in terms) on 3-tuples (plain floats: far cheaper than numpy at this size)."""
    x, y, z = base
    for v, k in terms:
        x += v[0] * k
        y += v[1] * k
        z += v[2] * k
    return (x, y, z)


def _limb(abduction: float, flexion: float, side: float) -> tuple:
    ca = math.cos(flexion)
    return (side * math.sin(abduction) * ca, -math.cos(abduction) * ca, math.sin(flexion))


def pose_body(shape: BodyShape, pose: Pose) -> np.ndarray:
    """(NUM_POINTS, 3) points in the body frame, in units of the standing height."""
    p: list = [None] * NUM_POINTS
    spine = _rx(pose.bend) @ _rz(-pose.side)
    left, up, fwd = (tuple(c) for c in spine.T.tolist())
    head = (spine @ _ry(pose.head_yaw) @ _rx(-pose.head_tilt)).T.tolist()
    h_left, h_up, h_fwd = (tuple(c) for c in head)
    origin = (0.0, 0.0, 0.0)
    neck_base = _lin(origin, (up, shape.torso))
    p[PELVIS] = origin
    p[NECK_BASE] = neck_base
    for side, sho, hip in ((1.0, L_SHO, L_HIP), (-1.0, R_SHO, R_HIP)):
        p[sho] = _lin(neck_base, (left, side * shape.shoulder_w / 2), (up, -0.02))
        p[hip] = (side * shape.hip_w / 2, 0.0, 0.0)
    arms, legs = pose.arms.tolist(), pose.legs.tolist()
    for i, (side, sho, elb, wri, hand) in enumerate(((1.0, L_SHO, L_ELB, L_WRI, L_HAND),
                                                     (-1.0, R_SHO, R_ELB, R_WRI, R_HAND))):  # fmt: skip
        ab, fl, el = arms[i]
        p[elb] = _lin(p[sho], (_limb(ab, fl, side), shape.upper_arm))
        fore = _limb(ab, fl + el, side)
        p[wri] = _lin(p[elb], (fore, shape.forearm))
        p[hand] = _lin(p[wri], (fore, shape.hand))
    for i, (side, hip, knee, ank, toe) in enumerate(((1.0, L_HIP, L_KNEE, L_ANK, L_TOE),
                                                     (-1.0, R_HIP, R_KNEE, R_ANK, R_TOE))):  # fmt: skip
        ab, fl, kn = legs[i]
        p[knee] = _lin(p[hip], (_limb(ab, fl, side), shape.thigh))
        p[ank] = _lin(p[knee], (_limb(ab, fl - kn, side), shape.shin))
        p[toe] = _lin(p[ank], ((0.0, -shape.ankle_h, shape.foot), 1.0))
    chin = _lin(neck_base, (up, shape.neck))
    hh, hr = shape.head_h, shape.head_w / 2
    centre = _lin(chin, (h_up, hh / 2))
    p[CHIN] = chin
    p[HEAD_CENTRE] = centre
    p[HEAD_TOP] = _lin(chin, (h_up, hh * 0.95))
    p[NOSE] = _lin(centre, (h_fwd, hr * 0.85), (h_up, -hh * 0.08))
    for side, eye, ear in ((1.0, L_EYE, L_EAR), (-1.0, R_EYE, R_EAR)):
        p[eye] = _lin(centre, (h_fwd, hr * 0.7), (h_left, side * hr * 0.42), (h_up, hh * 0.06))
        p[ear] = _lin(centre, (h_left, side * hr * 0.85))
    # Torso as a box: shoulder-level and hip-level rectangles (width x depth), in the spine frame at the top.
    d = shape.depth / 2
    for k, (sx, sz) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        p[TORSO_BOX + k] = _lin(neck_base, (up, -0.01), (left, sx * shape.shoulder_w * 0.55), (fwd, sz * d))
        p[TORSO_BOX + 4 + k] = (sx * shape.hip_w * 0.85, -0.03, sz * d)
    return np.array(p)


@dataclass
class Projected:
    """A posed person in frame pixels.

    Attributes:
        xy: (NUM_POINTS, 2) float frame px (x right, y down).
        depth: (NUM_POINTS,) toward the camera, in px (bigger = nearer the camera).
        scale: pixels per unit of standing height.
        head_up: (2,) unit screen vector from chin to head top.
        face_z: (NUM_POINTS,) camera-facing component of the outward surface normal for face points (eyes, ears,
            nose: > 0 faces the camera); 1 elsewhere.
    """

    xy: np.ndarray
    depth: np.ndarray
    scale: float
    head_up: np.ndarray
    face_z: np.ndarray


def project(shape: BodyShape, pose: Pose, *, height_px: float, x: float, ground_y: float) -> Projected:
    """Poses, rotates and projects a body: pelvis at screen x `x`, lowest point on the line y = `ground_y`."""
    body = pose_body(shape, pose)
    rot = _rz(pose.roll) @ _ry(pose.yaw)
    cam = body @ rot.T
    xy = np.stack([cam[:, 0], -cam[:, 1]], axis=1) * height_px
    xy[:, 0] += x - xy[PELVIS, 0]
    xy[:, 1] += ground_y - xy[: TORSO_BOX].max(axis=0)[1]
    up = xy[HEAD_TOP] - xy[CHIN]
    up = up / max(math.hypot(up[0], up[1]), 1e-9)
    normals = np.ones(NUM_POINTS)
    n = cam[[NOSE, L_EYE, R_EYE, L_EAR, R_EAR]] - cam[HEAD_CENTRE]
    normals[[NOSE, L_EYE, R_EYE, L_EAR, R_EAR]] = n[:, 2] / np.maximum(np.sqrt((n * n).sum(1)), 1e-9)
    return Projected(xy=xy, depth=cam[:, 2] * height_px, scale=height_px, head_up=up, face_z=normals)


def random_pose(rng: np.random.Generator, kind: str | None = None, phase: float | None = None) -> tuple[str, Pose]:
    """A random pose of `kind` (one of POSE_KINDS; random when None). `phase` drives the walk cycle."""
    if kind is None:
        kind = str(rng.choice(POSE_KINDS, p=[0.2, 0.25, 0.08, 0.08, 0.07, 0.09, 0.09, 0.06, 0.08]))
    n = rng.standard_normal
    pose = Pose(yaw=float(rng.uniform(-np.pi, np.pi)), head_yaw=0.3 * n(), head_tilt=0.15 * n())
    arms = np.array([[0.15 + 0.1 * abs(n()), 0.2 * n(), 0.2 + 0.2 * abs(n())] for _ in range(2)])
    legs = np.array([[0.04 + 0.04 * abs(n()), 0.08 * n(), 0.05 * abs(n())] for _ in range(2)])
    if kind == "walk":
        pose.yaw = float(rng.choice([-1, 1]) * np.pi / 2 + 0.35 * n()) if rng.random() < 0.7 else pose.yaw
        walk_cycle(pose, rng.uniform(0, 2 * np.pi) if phase is None else phase, amplitude=rng.uniform(0.6, 1.1))
        return kind, pose
    if kind == "arms_raised":
        arms[:, 0] = rng.uniform(2.3, 3.0, 2)
        arms[:, 1] = 0.3 * n()
        arms[:, 2] = rng.uniform(0, 0.6, 2)
    elif kind == "wave":
        i = int(rng.integers(2))
        arms[i] = [rng.uniform(1.6, 2.6), 0.3 * n(), rng.uniform(0.3, 1.4)]
    elif kind == "reach":
        i = int(rng.integers(2))
        arms[i] = [0.2 * abs(n()), rng.uniform(1.1, 1.8), 0.2 * abs(n())]
        if rng.random() < 0.5:
            arms[1 - i] = arms[i] + 0.1 * n()
    elif kind == "bend":
        pose.bend = float(rng.uniform(0.6, 1.5))
        pose.yaw = float(rng.choice([-1, 1]) * rng.uniform(0.9, 1.8))
        arms[:, 1] = pose.bend * rng.uniform(0.6, 1.0)
        legs[:, 1] = -0.1
        legs[:, 2] = rng.uniform(0, 0.3)
    elif kind in ("sit", "squat"):
        knee = rng.uniform(1.3, 1.7) if kind == "sit" else rng.uniform(2.0, 2.4)
        legs[:, 1] = knee * (0.95 if kind == "sit" else 0.55) + 0.1 * n()
        legs[:, 2] = knee
        legs[:, 0] = rng.uniform(0.05, 0.3)
        pose.bend = float(0.1 * n() + (0.5 if kind == "squat" else 0.0))
        arms[:, 1] = rng.uniform(0.2, 0.9, 2)
        arms[:, 2] = rng.uniform(0.3, 1.2, 2)
    elif kind == "lie":
        pose.roll = float(rng.choice([-1, 1]) * np.pi / 2 + 0.1 * n())
        pose.yaw = float(rng.uniform(-0.6, 0.6) + rng.choice([0, np.pi]) * (rng.random() < 0.3))
        arms[:, 0] = rng.uniform(0.1, 2.5, 2)
        legs[:, 1] = np.abs(0.2 * rng.standard_normal(2))
        legs[:, 2] = 2 * legs[:, 1]
    pose.side = 0.05 * n()
    pose.arms = arms
    pose.legs = legs
    return kind, pose


def walk_cycle(pose: Pose, phase: float, amplitude: float = 1.0) -> None:
    """Sets the arm and leg angles of `pose` to the walk cycle at `phase` (radians; one stride per 2 pi)."""
    s = np.sin(phase)
    a = amplitude
    pose.legs = np.array([
        [0.05, 0.45 * a * s, 0.15 + 0.5 * a * max(0.0, np.sin(phase + 1.4))],
        [0.05, -0.45 * a * s, 0.15 + 0.5 * a * max(0.0, np.sin(phase + np.pi + 1.4))],
    ])  # fmt: skip
    pose.arms = np.array([[0.12, -0.4 * a * s, 0.3 + 0.2 * a * max(0.0, -s)],
                          [0.12, 0.4 * a * s, 0.3 + 0.2 * a * max(0.0, s)]])  # fmt: skip
    pose.bend = 0.08 * a
