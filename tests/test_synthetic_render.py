"""Synthetic renderer: joints land on the drawn limbs, visibility follows the COCO / PoseTrack18 rules."""

from __future__ import annotations

import numpy as np
import pytest

from posefix_video.synthetic import render as rd
from posefix_video.synthetic import scene
from posefix_video.synthetic import skeleton as sk

H, W = 240, 320


def _person(track_id: int, pose: sk.Pose, height: float, x: float, ground: float, seed: int = 0) -> scene.Person:
    rng = np.random.default_rng(seed)
    shape = sk.BodyShape()
    proj = sk.project(shape, pose, height_px=height, x=x, ground_y=ground)
    return scene.Person(track_id=track_id, shape=shape, look=rd.Appearance.random(rng), proj=proj)


def _flat_background() -> np.ndarray:
    return np.full((H, W, 3), 128, np.uint8)


def test_standing_person_facing_camera_is_fully_visible():
    person = _person(0, sk.Pose(), height=200, x=160, ground=225)
    image, labels, truths = scene.render_frame(_flat_background(), [person])
    (t,) = truths
    assert (t.coco[:, 2] == 2).all(), t.coco[:, 2]
    # Every joint pixel belongs to this person (slot 0 -> label // PARTS == 1) and shows the drawn person.
    pix = np.round(t.coco[:, :2]).astype(int)
    assert (labels[pix[:, 1], pix[:, 0]] // rd.PARTS == 1).all()
    assert (np.abs(image[pix[:, 1], pix[:, 0]].astype(int) - 128).sum(1) > 0).all()
    # Facing the camera, the person's left side is on the screen's right.
    assert t.coco[5, 0] > t.coco[6, 0] and t.coco[11, 0] > t.coco[12, 0] and t.coco[1, 0] > t.coco[2, 0]
    # Standing height: head top to the ground line is about the requested 200 px (head top at 0.95 head height).
    assert 180 < 225 - t.posetrack[2, 1] < 200
    # PoseTrack18: all labeled joints v=1, ears never labeled, head_bottom under head_top, nose between them.
    assert (t.posetrack[[3, 4]] == 0).all()
    assert (t.posetrack[[0, 1, 2, *range(5, 17)], 2] == 1).all()
    assert t.posetrack[2, 1] < t.posetrack[0, 1] < t.posetrack[1, 1]
    # Head box holds head_top and head_bottom; person box holds every joint.
    hx, hy, hw, hh = t.head_box
    for j in (1, 2):
        assert hx <= t.posetrack[j, 0] <= hx + hw and hy <= t.posetrack[j, 1] <= hy + hh
    bx, by, bw, bh = t.box
    assert (t.coco[:, 0] >= bx).all() and (t.coco[:, 0] <= bx + bw).all()
    assert (t.coco[:, 1] >= by).all() and (t.coco[:, 1] <= by + bh).all()
    assert t.area == int((labels // rd.PARTS == 1).sum())


def test_joint_covered_by_nearer_person_is_occluded_but_labeled():
    far = _person(0, sk.Pose(), height=120, x=160, ground=150, seed=1)
    near = _person(1, sk.Pose(), height=200, x=160, ground=235, seed=2)  # lower feet: nearer, drawn later
    _, labels, truths = scene.render_frame(_flat_background(), [far, near])
    by_id = {t.track_id: t for t in truths}
    t_far = by_id[0]
    pix = np.round(far.proj.xy[:17]).astype(int)
    covered = labels[pix[:, 1], pix[:, 0]] // rd.PARTS == 2  # slot 1 = the near person
    assert covered.sum() >= 5
    assert (t_far.coco[covered, 2] == 1).all()
    assert np.allclose(t_far.coco[covered, :2], far.proj.xy[:17][covered])
    # PoseTrack18 labels occluded joints too, with v=1.
    pt_slots = np.array([0, 1, 2, 3, 4, *range(5, 17)])
    body = covered & (np.arange(17) >= 5)
    assert (t_far.posetrack[pt_slots[body], 2] == 1).all()
    assert (by_id[1].coco[:, 2] == 2).all()


def test_joints_outside_the_frame_are_unlabeled():
    person = _person(0, sk.Pose(), height=200, x=5, ground=300)  # legs below the frame, right side cut
    _, _, (t,) = scene.render_frame(_flat_background(), [person])
    xy = person.proj.xy[:17]
    outside = (np.round(xy[:, 0]) < 0) | (np.round(xy[:, 1]) >= H)
    assert outside.any() and (~outside).any()
    assert (t.coco[outside] == 0).all()
    assert (t.coco[~outside, 2] > 0).all()
    assert (t.posetrack[outside & (np.arange(17) >= 5)] == 0).all()
    assert (t.box[:2] >= 0).all() and t.box[1] + t.box[3] <= H - 1


def test_person_facing_away_has_no_face_labels():
    person = _person(0, sk.Pose(yaw=np.pi), height=200, x=160, ground=225)
    _, _, (t,) = scene.render_frame(_flat_background(), [person])
    assert (t.coco[:3] == 0).all()  # nose and eyes unlabeled from behind
    assert (t.coco[[3, 4], 2] == 2).all()  # ears stick out: visible from behind
    assert (t.posetrack[0] == 0).all() and (t.posetrack[[1, 2], 2] == 1).all()
    assert t.coco[5, 0] < t.coco[6, 0]  # from behind, the left shoulder is on the screen's left


def test_profile_view_hides_the_far_arm_behind_the_torso():
    pose = sk.Pose(yaw=np.pi / 2)  # faces screen right: the left side is away from the camera
    person = _person(0, pose, height=200, x=160, ground=225)
    _, labels, (t,) = scene.render_frame(_flat_background(), [person])
    assert t.coco[0, 0] > person.proj.xy[sk.HEAD_CENTRE, 0]  # nose points right
    # The left side faces away: left eye and ear unlabeled, right ones visible.
    assert (t.coco[[1, 3]] == 0).all() and (t.coco[[2, 4], 2] == 2).all()
    # The left arm hangs behind the torso; the right arm is in front of it.
    assert t.coco[7, 2] == 1 and t.coco[8, 2] == 2
    pix = np.round(t.coco[7, :2]).astype(int)
    lab = int(labels[pix[1], pix[0]])  # the person's own torso or right arm, not the left arm
    assert lab // rd.PARTS == 1 and lab % rd.PARTS in (rd.TORSO, rd.R_UPPER_ARM, rd.R_FOREARM)


@pytest.mark.parametrize("seed", range(6))
def test_random_scenes_visible_joints_sit_on_their_person(seed):
    rng = np.random.default_rng(seed)
    bg = scene.make_background(rng, H, W)
    persons = scene.random_people(rng, H, W, 6, min_height=40)
    image, labels, truths = scene.render_frame(bg, persons)
    assert len(truths) >= 1
    changed = 0
    total = 0
    for t in truths:
        vis = t.coco[:, 2] == 2
        pix = np.round(t.coco[vis, :2]).astype(int)
        assert (labels[pix[:, 1], pix[:, 0]] // rd.PARTS == t.slot + 1).all()
        changed += int((image[pix[:, 1], pix[:, 0]] != bg[pix[:, 1], pix[:, 0]]).any(1).sum())
        total += len(pix)
        # Occluded-but-labeled body joints show something else than the person's own adjacent parts.
        occ = (t.coco[:, 2] == 1) & (np.arange(17) >= 5)
        pix = np.round(t.coco[occ, :2]).astype(int)
        lab = labels[pix[:, 1], pix[:, 0]]
        own_adjacent = (lab // rd.PARTS == t.slot + 1) & scene.ALLOWED[np.flatnonzero(occ), lab % rd.PARTS]
        assert not own_adjacent.any()
        assert t.area > 0 and t.box[2] >= 0 and t.box[3] >= 0
    assert changed >= 0.95 * total  # the colour image shows the person where the label map says so


def test_pose_kinds_and_sizes_cover_the_promised_range():
    rng = np.random.default_rng(0)
    kinds = {sk.random_pose(rng)[0] for _ in range(300)}
    assert kinds == set(sk.POSE_KINDS)
    persons = [p for _ in range(30) for p in scene.random_people(rng, 480, 640, 5)]
    heights = np.array([p.proj.scale for p in persons])
    assert heights.min() >= 40 and heights.max() <= 0.95 * 480 and heights.max() > 300 and heights.min() < 60
    lying = [p for p in persons if p.kind == "lie"]
    for p in lying:  # a lying body is wider than tall
        span = np.ptp(p.proj.xy[:17], axis=0)
        assert span[0] > span[1]
