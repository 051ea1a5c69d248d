"""Drawing one posed person into a BGR frame and, with the same geometry, into a part-label map.

The label map (uint16, same size as the frame) holds `(person_slot + 1) * PARTS + part` for every pixel a person
covers, so visibility of each joint can be read off it exactly (scene.py). The colour image is antialiased; the
label map is not, which only differs on the outermost edge pixels, never at a joint (joints sit on segment axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posefix_video.synthetic import skeleton as sk
from posefix_video.synthetic.skeleton import Projected

PARTS = 16  # label = (slot + 1) * PARTS + part
HEAD, NECK, TORSO, L_UPPER_ARM, L_FOREARM, R_UPPER_ARM, R_FOREARM = 1, 2, 3, 4, 5, 6, 7
L_THIGH, L_SHIN, R_THIGH, R_SHIN = 8, 9, 10, 11

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate geometry
_ONE = 1 << _SHIFT

# (part, point a, point b, thickness as a fraction of height, colour key) of every capsule.
_CAPSULES = (
    (L_UPPER_ARM, sk.L_SHO, sk.L_ELB, 0.055, "upper_arm"),
    (L_FOREARM, sk.L_ELB, sk.L_WRI, 0.045, "forearm"),
    (R_UPPER_ARM, sk.R_SHO, sk.R_ELB, 0.055, "upper_arm"),
    (R_FOREARM, sk.R_ELB, sk.R_WRI, 0.045, "forearm"),
    (L_THIGH, sk.L_HIP, sk.L_KNEE, 0.085, "thigh"),
    (L_SHIN, sk.L_KNEE, sk.L_ANK, 0.065, "shin"),
    (R_THIGH, sk.R_HIP, sk.R_KNEE, 0.085, "thigh"),
    (R_SHIN, sk.R_KNEE, sk.R_ANK, 0.065, "shin"),
    (NECK, sk.NECK_BASE, sk.CHIN, 0.05, "skin"),
)


@dataclass(frozen=True)
class Appearance:
    """Colours (BGR) and clothing of one person."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    stripe: tuple[int, int, int]
    stripes: int  # number of stripes across the torso (0: plain)
    pants: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool
    shorts: bool

    @staticmethod
    def random(rng: np.random.Generator) -> Appearance:
        def colour(lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
            return tuple(int(v) for v in rng.integers(lo, hi, 3))  # type: ignore[return-value]

        tone = rng.uniform(0.25, 1.0)
        skin = (int(90 + 110 * tone), int(110 + 100 * tone), int(150 + 95 * tone))
        hair = tuple(int(v) for v in np.array([20, 30, 45]) * rng.uniform(0.5, 3.5) + rng.integers(0, 20, 3))
        return Appearance(
            skin=skin, hair=hair, shirt=colour(), stripe=colour(), stripes=int(rng.choice([0, 0, 2, 3, 4, 5])),
            pants=colour(10, 180), shoes=colour(0, 90), long_sleeves=bool(rng.random() < 0.6),
            shorts=bool(rng.random() < 0.25),
        )  # type: ignore[arg-type]

    def part_colour(self, key: str) -> tuple[int, int, int]:
        if key == "upper_arm":
            return self.shirt
        if key == "forearm":
            return self.shirt if self.long_sleeves else self.skin
        if key == "thigh":
            return self.pants
        if key == "shin":
            return self.skin if self.shorts else self.pants
        return self.skin


def _fx(p: np.ndarray) -> np.ndarray:
    """Float px -> cv2 fixed-point int32 (pixel centres at integers)."""
    return np.round(np.asarray(p) * _ONE).astype(np.int32)


def _dim(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (int(c[0] * f), int(c[1] * f), int(c[2] * f))


def ellipse_geometry(proj: Projected, shape: sk.BodyShape) -> tuple[np.ndarray, tuple[float, float], float]:
    """Head ellipse: centre (2,) px, half axes (across, along the head's up axis) px, cv2 angle in degrees."""
    up = proj.head_up
    angle = float(np.degrees(np.arctan2(up[0], -up[1])))
    axes = (shape.head_w / 2 * proj.scale, shape.head_h / 2 * proj.scale)
    return proj.xy[sk.HEAD_CENTRE], axes, angle


def draw_person(
    image: np.ndarray, labels: np.ndarray, proj: Projected, shape: sk.BodyShape, look: Appearance, slot: int
) -> None:
    """Draws one person into `image` (H, W, 3) uint8 BGR and `labels` (H, W) uint16, parts ordered by depth."""
    xy, depth, h = proj.xy, proj.depth, proj.scale
    base = (slot + 1) * PARTS
    items: list[tuple[float, int, object]] = []
    torso_depth = float(depth[sk.TORSO_BOX : sk.TORSO_BOX + 8].mean())
    bias = shape.depth * h * 0.5  # limbs at the body's side are drawn over the torso unless clearly behind it
    for k, (part, a, b, _, _) in enumerate(_CAPSULES):
        d = (depth[a] + depth[b]) / 2 + (bias if part != NECK else bias * 1.5)
        items.append((float(d), k, ("capsule", k)))
    items.append((torso_depth, 100, ("torso",)))
    items.append((float(depth[sk.HEAD_CENTRE]) + 2 * bias, 101, ("head",)))
    items.sort(key=lambda t: (t[0], t[1]))
    fx = [tuple(v) for v in _fx(xy).tolist()]  # fixed-point once per person: cv2 wants int tuples
    for _, _, item in items:
        if item[0] == "capsule":
            part, a, b, frac, key = _CAPSULES[item[1]]
            _draw_limb(image, labels, fx, part, a, b, max(2, int(round(frac * h))), look, key, base, h)
        elif item[0] == "torso":
            _draw_torso(image, labels, xy, look, base)
        else:
            _draw_head(image, labels, proj, shape, look, base)


def _draw_limb(image, labels, fx, part, a, b, thick, look, key, base, h) -> None:
    pa, pb = fx[a], fx[b]
    colour = look.part_colour(key)
    cv2.line(image, pa, pb, colour, thick, cv2.LINE_AA, _SHIFT)
    cv2.line(labels, pa, pb, base + part, thick, cv2.LINE_8, _SHIFT)
    # Hands and feet belong to the forearm / shin parts (a wrist or ankle on them is visible).
    if part in (L_FOREARM, R_FOREARM):
        ph = fx[sk.L_HAND if part == L_FOREARM else sk.R_HAND]
        r = max(1, int(round(0.028 * h)))
        t = max(2, int(round(0.04 * h)))
        cv2.circle(image, ph, r, look.skin, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(labels, ph, r, base + part, -1, cv2.LINE_8, _SHIFT)
        cv2.line(image, pb, ph, look.skin, t, cv2.LINE_AA, _SHIFT)
        cv2.line(labels, pb, ph, base + part, t, cv2.LINE_8, _SHIFT)
    elif part in (L_SHIN, R_SHIN):
        pt = fx[sk.L_TOE if part == L_SHIN else sk.R_TOE]
        t = max(2, int(round(0.04 * h)))
        cv2.line(image, pb, pt, look.shoes, t, cv2.LINE_AA, _SHIFT)
        cv2.line(labels, pb, pt, base + part, t, cv2.LINE_8, _SHIFT)


def _draw_torso(image, labels, xy, look, base) -> None:
    box = xy[sk.TORSO_BOX : sk.TORSO_BOX + 8]
    hull = cv2.convexHull(_fx(box))
    cv2.fillConvexPoly(image, hull, look.shirt, cv2.LINE_AA, _SHIFT)
    cv2.fillConvexPoly(labels, hull, base + TORSO, cv2.LINE_8, _SHIFT)
    if look.stripes:
        top, bottom = box[:4], box[4:]
        n = 2 * look.stripes + 1
        for k in range(1, n, 2):  # every other band of 2*stripes+1 equal bands, so the top and bottom stay plain
            t0, t1 = k / n, (k + 1) / n
            band = np.concatenate([top + (bottom - top) * t0, top + (bottom - top) * t1])
            cv2.fillConvexPoly(image, cv2.convexHull(_fx(band)), look.stripe, cv2.LINE_AA, _SHIFT)


def _draw_head(image, labels, proj: Projected, shape: sk.BodyShape, look: Appearance, base: int) -> None:
    centre, axes, angle = ellipse_geometry(proj, shape)
    c = tuple(_fx(centre))
    ax = (int(round(axes[0] * _ONE)), int(round(axes[1] * _ONE)))
    face = proj.face_z[sk.NOSE] > -0.1
    cv2.ellipse(labels, c, ax, angle, 0, 360, base + HEAD, -1, cv2.LINE_8, _SHIFT)
    if not face:
        cv2.ellipse(image, c, ax, angle, 0, 360, look.hair, -1, cv2.LINE_AA, _SHIFT)
        return
    cv2.ellipse(image, c, ax, angle, 0, 360, look.skin, -1, cv2.LINE_AA, _SHIFT)
    # Hair on the top half, shifted toward the back of the head as it turns away.
    back = float(np.clip(-proj.face_z[sk.NOSE], -1, 1))
    cv2.ellipse(image, c, ax, angle, 180 - 25 + 60 * back, 360 + 25 + 60 * back, look.hair, -1, cv2.LINE_AA, _SHIFT)
    xy, h = proj.xy, proj.scale
    r = max(1, int(round(0.011 * h)))
    for ear in (sk.L_EAR, sk.R_EAR):
        if -0.3 < proj.face_z[ear] < 0.8:
            cv2.circle(image, tuple(_fx(xy[ear])), max(1, int(round(0.016 * h))), _dim(look.skin, 0.85), -1,
                       cv2.LINE_AA, _SHIFT)  # fmt: skip
    for eye in (sk.L_EYE, sk.R_EYE):
        if proj.face_z[eye] > 0.15:
            cv2.circle(image, tuple(_fx(xy[eye])), r, (40, 30, 30), -1, cv2.LINE_AA, _SHIFT)
    if proj.face_z[sk.NOSE] > 0.0:
        nose = xy[sk.NOSE]
        cv2.circle(image, tuple(_fx(nose)), r, _dim(look.skin, 0.7), -1, cv2.LINE_AA, _SHIFT)
        mouth = nose - proj.head_up * 0.03 * h
        side = np.array([-proj.head_up[1], proj.head_up[0]]) * 0.015 * h
        cv2.line(image, tuple(_fx(mouth - side)), tuple(_fx(mouth + side)), (60, 50, 140), max(1, r // 2 + 1),
                 cv2.LINE_AA, _SHIFT)  # fmt: skip
