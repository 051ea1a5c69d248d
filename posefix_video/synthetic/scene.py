"""Scenes: cluttered backgrounds, several people composed by depth, and the exact ground truth of every person.

Ground-truth rules (read off the part-label map, so occlusion is exact):
- A joint outside the frame is unlabeled in both layouts: (0, 0, 0).
- COCO-17: v=2 when the pixel at the joint shows one of the person's parts adjacent to that joint, else v=1
  (hidden by a nearer person or by the person's own body). Eyes and nose are labeled only when the face is
  toward the camera, ears when not turned fully away; a labeled face point on the far side of the head is v=1.
- PoseTrack18: every labeled joint has v=1, visible or occluded (as in the official GT); slot 1 = head_bottom
  (chin), slot 2 = head_top; ears never labeled; the nose is labeled unless the person faces away.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.special import erfinv

from posefix_video.synthetic import render as rd
from posefix_video.synthetic import skeleton as sk

# Which parts may show at each COCO slot for the joint to count as visible.
_JOINT_PARTS: dict[int, tuple[int, ...]] = {
    sk.NOSE: (rd.HEAD,), sk.L_EYE: (rd.HEAD,), sk.R_EYE: (rd.HEAD,), sk.L_EAR: (rd.HEAD,), sk.R_EAR: (rd.HEAD,),
    sk.L_SHO: (rd.TORSO, rd.L_UPPER_ARM), sk.R_SHO: (rd.TORSO, rd.R_UPPER_ARM),
    sk.L_ELB: (rd.L_UPPER_ARM, rd.L_FOREARM), sk.R_ELB: (rd.R_UPPER_ARM, rd.R_FOREARM),
    sk.L_WRI: (rd.L_FOREARM,), sk.R_WRI: (rd.R_FOREARM,),
    sk.L_HIP: (rd.TORSO, rd.L_THIGH), sk.R_HIP: (rd.TORSO, rd.R_THIGH),
    sk.L_KNEE: (rd.L_THIGH, rd.L_SHIN), sk.R_KNEE: (rd.R_THIGH, rd.R_SHIN),
    sk.L_ANK: (rd.L_SHIN,), sk.R_ANK: (rd.R_SHIN,),
    sk.CHIN: (rd.HEAD, rd.NECK), sk.HEAD_TOP: (rd.HEAD,),
}  # fmt: skip
ALLOWED = np.zeros((sk.NUM_POINTS, rd.PARTS), dtype=bool)
for _j, _parts in _JOINT_PARTS.items():
    ALLOWED[_j, list(_parts)] = True

_COCO_POINTS = np.arange(17)
_PT18_POINTS = np.array([sk.NOSE, sk.CHIN, sk.HEAD_TOP, sk.L_EAR, sk.R_EAR, *range(5, 17)])
# Face points are labeled/visible only when their outward normal's camera component (Projected.face_z) exceeds
# these; other points have face_z 1 and no threshold.
_LABEL_MIN = np.full(sk.NUM_POINTS, -np.inf)
_LABEL_MIN[[sk.NOSE, sk.L_EYE, sk.R_EYE]] = -0.15
_LABEL_MIN[[sk.L_EAR, sk.R_EAR]] = -0.45
_VISIBLE_MIN = np.full(sk.NUM_POINTS, -np.inf)
_VISIBLE_MIN[[sk.NOSE, sk.L_EYE, sk.R_EYE]] = 0.1
_VISIBLE_MIN[[sk.L_EAR, sk.R_EAR]] = -0.3  # ears stick out: seen edge-on from the front and from behind
_PT_LABEL_MIN = np.full(sk.NUM_POINTS, -np.inf)
_PT_LABEL_MIN[sk.NOSE] = -0.3


@dataclass
class Person:
    """A person to draw in one frame: shape, appearance, projected pose and identity."""

    track_id: int
    shape: sk.BodyShape
    look: rd.Appearance
    proj: sk.Projected
    kind: str = ""


@dataclass
class PersonTruth:
    """Exact ground truth of one drawn person.

    Attributes:
        track_id: identity (the index of the person in the video / image).
        coco: (17, 3) COCO-17 [x, y, v] frame px (v 0/1/2; unlabeled rows are 0, 0, 0).
        posetrack: (17, 3) PoseTrack18 [x, y, v] (v 0/1).
        box: (4,) [x, y, w, h] amodal extent of the drawn body, clipped to the frame.
        head_box: (4,) [x, y, w, h] box of the head ellipse (not clipped).
        area: visible pixels of the person in the label map.
        slot: index of the person in the frame's draw list (its label-map id is (slot + 1) * PARTS + part).
    """

    track_id: int
    coco: np.ndarray
    posetrack: np.ndarray
    box: np.ndarray
    head_box: np.ndarray
    area: int
    slot: int


def random_horizon(rng: np.random.Generator, height: int) -> float:
    """y of the floor's far edge: people's feet stand below it (shared by the background and the people)."""
    return float(height * rng.uniform(0.3, 0.5))


def make_background(rng: np.random.Generator, height: int, width: int, horizon: float | None = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR: wall/sky and floor gradients, random clutter (boxes, discs, poles, polygons), noise.

    `horizon`: y where the floor starts (random when None).
    """
    horizon = int(random_horizon(rng, height) if horizon is None else horizon)
    img = np.empty((height, width, 3), np.uint8)
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    c0, c1 = rng.integers(60, 240, 3), rng.integers(30, 220, 3)
    img[:horizon] = (c0 * (1 - t) + c1 * t).astype(np.uint8)[:, None, :]
    t = np.linspace(0.0, 1.0, height - horizon)[:, None]
    f0, f1 = rng.integers(30, 200, 3), rng.integers(20, 160, 3)
    img[horizon:] = (f0 * (1 - t) + f1 * t).astype(np.uint8)[:, None, :]
    for _ in range(int(rng.integers(3, 9))):  # floor lines converging to a vanishing point
        vx = rng.uniform(0, width)
        cv2.line(img, (int(vx), horizon), (int(rng.uniform(-width, 2 * width)), height),
                 tuple(int(v) for v in f1 * rng.uniform(0.6, 1.2)), 1, cv2.LINE_AA)  # fmt: skip
    for _ in range(int(rng.integers(12, 40))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        x, y = int(rng.uniform(-0.1, 1.1) * width), int(rng.uniform(-0.1, 0.8) * height)
        s = int(rng.uniform(0.02, 0.25) * width)
        if kind == 0:
            y2 = min(y + int(s * rng.uniform(0.5, 3)), horizon + int(0.1 * height))
            cv2.rectangle(img, (x, y), (x + s, max(y + 2, y2)), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), s // 2, colour, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.line(img, (x, y), (x + int(rng.normal(0, s)), y + int(rng.uniform(0.5, 2) * s)), colour,
                     int(rng.integers(1, 8)), cv2.LINE_AA)  # fmt: skip
        else:
            pts = np.array([x, y]) + rng.normal(0, s / 2, (int(rng.integers(3, 7)), 2))
            cv2.fillPoly(img, [pts.astype(np.int32)], colour, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    return np.clip(img.astype(np.int16) + gaussian_noise(rng, img.shape, rng.uniform(2, 8)), 0, 255).astype(np.uint8)


_NORMAL_QUANTILES = np.sqrt(2.0) * erfinv(2.0 * (np.arange(256) + 0.5) / 256 - 1.0)  # (256,) N(0, 1) quantiles


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """int16 noise of about N(0, sigma^2): random bytes through a table of normal quantiles.

    Twenty times cheaper than drawing normals for a whole frame; 256 levels are plenty at a few grey levels.
    """
    table = np.round(_NORMAL_QUANTILES * sigma).astype(np.int16)
    raw = np.frombuffer(rng.bytes(int(np.prod(shape))), dtype=np.uint8).reshape(shape)
    return table[raw]


class SensorNoise:
    """Cheap per-frame noise: a few precomputed (+, -) uint8 noise pairs applied with saturating adds.

    Args:
        rng: source of the noise fields.
        shape: (H, W, 3) frame shape.
        sigma: standard deviation in grey levels.
        count: number of distinct noise fields, cycled by frame index.
    """

    def __init__(self, *, rng: np.random.Generator, shape: tuple[int, int, int], sigma: float = 3.0, count: int = 4):
        self.pairs = []
        for _ in range(count):
            n = gaussian_noise(rng, shape, sigma)
            self.pairs.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))

    def apply(self, image: np.ndarray, index: int) -> None:
        pos, neg = self.pairs[index % len(self.pairs)]
        cv2.add(image, pos, dst=image)
        cv2.subtract(image, neg, dst=image)


def render_frame(
    background: np.ndarray, persons: list[Person]
) -> tuple[np.ndarray, np.ndarray, list[PersonTruth]]:
    """Draws `persons` far to near over a copy of `background`.

    Args:
        background: (H, W, 3) uint8 BGR.
        persons: people to draw; nearer people (larger pelvis depth key, see `depth_key`) occlude farther ones.
    Returns:
        image (H, W, 3) uint8 BGR, part-label map (H, W) uint16, and the ground truth of each person with at least
        one visible pixel, in the order of `persons`.
    """
    image = background.copy()
    labels = np.zeros(background.shape[:2], np.uint16)
    order = sorted(range(len(persons)), key=lambda i: (depth_key(persons[i]), i))
    for slot in order:
        p = persons[slot]
        rd.draw_person(image, labels, p.proj, p.shape, p.look, slot)
    return image, labels, ground_truth(labels, persons)


def depth_key(person: Person) -> float:
    """Nearer people stand lower in the frame (ground-plane perspective): the ground contact y orders them."""
    return float(person.proj.xy[: sk.TORSO_BOX].max(axis=0)[1])


def ground_truth(labels: np.ndarray, persons: list[Person]) -> list[PersonTruth]:
    """COCO-17 and PoseTrack18 ground truth of each person, read off the part-label map `labels` (H, W).

    Vectorised over the persons of the frame; persons without a visible pixel are left out.
    """
    if not persons:
        return []
    h, w = labels.shape
    n_persons = len(persons)
    size = (n_persons + 1) * rd.PARTS
    # cv2.calcHist counts uint16 labels 3x faster than np.bincount (exact integers up to 2^24 pixels).
    hist = cv2.calcHist([labels], [0], None, [size], [0, size]).reshape(-1)
    area = np.round(hist).astype(np.int64).reshape(-1, rd.PARTS).sum(1)[1:]
    xy = np.stack([p.proj.xy for p in persons])  # (P, NUM_POINTS, 2)
    face_z = np.stack([p.proj.face_z for p in persons])
    pix = np.round(xy).astype(np.int64)
    inside = (pix[..., 0] >= 0) & (pix[..., 0] < w) & (pix[..., 1] >= 0) & (pix[..., 1] < h)
    lab = np.zeros(inside.shape, np.int64)
    lab[inside] = labels[pix[..., 1][inside], pix[..., 0][inside]]
    slot_ids = np.arange(1, n_persons + 1)[:, None]
    own = (lab // rd.PARTS == slot_ids) & ALLOWED[np.arange(sk.NUM_POINTS)[None, :], lab % rd.PARTS]
    coco_labeled = inside & (face_z > _LABEL_MIN)
    seen = own & (face_z > _VISIBLE_MIN)
    pt_labeled = inside & (face_z > _PT_LABEL_MIN)

    coco = np.zeros((n_persons, 17, 3))
    m = coco_labeled[:, _COCO_POINTS]
    coco[..., :2] = np.where(m[..., None], xy[:, _COCO_POINTS], 0.0)
    coco[..., 2] = np.where(m, np.where(seen[:, _COCO_POINTS], 2, 1), 0)
    pt = np.zeros((n_persons, 17, 3))
    m = pt_labeled[:, _PT18_POINTS]
    m[:, [3, 4]] = False
    pt[..., :2] = np.where(m[..., None], xy[:, _PT18_POINTS], 0.0)
    pt[..., 2] = m

    # Head ellipse extents: half-width/height of an ellipse with half axes (a, b) rotated by the head angle.
    up = np.stack([p.proj.head_up for p in persons])  # (P, 2); angle of the across axis = atan2(ux, -uy)
    a = np.array([p.shape.head_w / 2 * p.proj.scale for p in persons])
    b = np.array([p.shape.head_h / 2 * p.proj.scale for p in persons])
    cos, sin = -up[:, 1], up[:, 0]
    ex, ey = np.hypot(a * cos, b * sin), np.hypot(a * sin, b * cos)
    centre = xy[:, sk.HEAD_CENTRE]
    head_box = np.stack([centre[:, 0] - ex, centre[:, 1] - ey, 2 * ex, 2 * ey], axis=1)
    pad = 0.045 * np.array([p.proj.scale for p in persons])[:, None]
    lo = np.minimum(xy[:, : sk.TORSO_BOX].min(1) - pad, head_box[:, :2])
    hi = np.maximum(xy[:, : sk.TORSO_BOX].max(1) + pad, head_box[:, :2] + head_box[:, 2:])
    lo = np.clip(lo, 0, [w - 1, h - 1])
    hi = np.clip(hi, 0, [w - 1, h - 1])
    box = np.concatenate([lo, hi - lo], axis=1)
    return [PersonTruth(track_id=p.track_id, coco=coco[i], posetrack=pt[i], box=box[i], head_box=head_box[i],
                        area=int(area[i]), slot=i)
            for i, p in enumerate(persons) if area[i] > 0]  # fmt: skip


def random_people(
    rng: np.random.Generator, height: int, width: int, count: int, min_height: float = 40.0,
    horizon: float | None = None,
) -> list[Person]:
    """`count` people in random poses, heights from `min_height` px to most of the frame, feet below `horizon`."""
    persons = []
    horizon = random_horizon(rng, height) if horizon is None else horizon
    for i in range(count):
        tall = float(np.exp(rng.uniform(np.log(min_height), np.log(0.95 * height))))
        shape = sk.BodyShape.random(rng)
        kind, pose = sk.random_pose(rng)
        # Feet lower for bigger (nearer) people; the nearest may be cut by the bottom edge.
        ground = horizon + tall * rng.uniform(0.55, 1.15)
        ground = min(ground, height + 0.4 * tall)
        x = rng.uniform(-0.05, 1.05) * width
        proj = sk.project(shape, pose, height_px=tall, x=x, ground_y=ground)
        persons.append(Person(track_id=i, shape=shape, look=rd.Appearance.random(rng), proj=proj, kind=kind))
    return persons


def draw_truth(image: np.ndarray, truths: list[PersonTruth]) -> None:
    """Marks COCO ground truth on a BGR image: visible joints green, occluded red, limbs from the COCO edges."""
    from posefix_video.keypoints import COCO17

    for t in truths:
        kp = t.coco
        for a, b in COCO17.edges:
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                cv2.line(image, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), (255, 255, 255),
                         1, cv2.LINE_AA)  # fmt: skip
        for x, y, v in kp:
            if v > 0:
                cv2.circle(image, (int(x), int(y)), 2, (0, 220, 0) if v == 2 else (0, 0, 255), -1, cv2.LINE_AA)


def contact_sheet(images: list[np.ndarray], columns: int = 3, tile_width: int = 320) -> np.ndarray:
    """A grid of `images` (each (H, W, 3) uint8, same size) scaled to `tile_width`; empty cells are black."""
    h, w = images[0].shape[:2]
    th = int(round(h * tile_width / w))
    tiles = [cv2.resize(im, (tile_width, th), interpolation=cv2.INTER_AREA) for im in images]
    rows = (len(tiles) + columns - 1) // columns
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    return np.vstack([np.hstack(tiles[r * columns : (r + 1) * columns]) for r in range(rows)])
