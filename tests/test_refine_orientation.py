"""--tracks-orientation coded: tracks made on the raw (coded) frames of a video with a display rotation.

The pure transform is checked against hand-picked corner pixels and against np.rot90 (what our PyAV backend does
with `frame.rotation`); its direction is checked on the shared rot90 fixture against the raw coded frames decoded
without rotation. End to end, a stub refiner samples the frames it is handed at the input keypoints (they must show
the coded frame's content at the coded position) and moves joints by a known displayed offset (the output must
carry the coded offset); a small real network must give the same results as the run on displayed tracks.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from posefix_video import geometry
from posefix_video.errors import PosefixError
from posefix_video.io import read_tracks
from posefix_video.io.csv_tracks import write_csv_tracks
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.video.journal import journal_path
from posefix_video.video.orientation import orientation_warnings, tracks_to_displayed
from posefix_video.video.refine_video import refine_video

ROT90 = ("video", "synthetic", "rot90_displaymatrix_320x180_30f.mp4")
CODED_HW = (180, 320)  # of the rot90 fixture; displayed 320 high x 180 wide
N_FRAMES = 30
SHIFT = np.array([1.0, 2.0])  # displayed px the stub moves every joint by
SHIFT_CODED = np.array([-2.0, 1.0])  # the same move in the coded frame: displayed (x', y') = (y, W - 1 - x)


# ---------------------------------------------------------------------------------------------- pure transform

def test_corner_pixels_by_hand():
    hw = (3, 5)  # coded H=3, W=5
    corners = np.array([[0, 0], [4, 0], [0, 2], [4, 2], [1, 2]], dtype=float)
    expected = {
        0: corners,
        90: [[0, 4], [0, 0], [2, 4], [2, 0], [2, 3]],  # (y, W - 1 - x)
        180: [[4, 2], [0, 2], [4, 0], [0, 0], [3, 0]],  # (W - 1 - x, H - 1 - y)
        270: [[2, 0], [2, 4], [0, 0], [0, 4], [0, 1]],  # (H - 1 - y, x): the task's "clockwise" example
    }
    for rotation, want in expected.items():
        np.testing.assert_array_equal(geometry.rotate_points(corners, rotation, hw), np.array(want, float))
    assert geometry.rotated_size(hw, 90) == (5, 3) and geometry.rotated_size(hw, 180) == (3, 5)
    with pytest.raises(ValueError, match="one of"):
        geometry.rotate_points(corners, 45, hw)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_every_pixel_lands_where_np_rot90_puts_it(rotation):
    """The PyAV backend shows np.rot90(coded, k=rotation / 90); every coded pixel centre must map onto its own
    value in that image (the pixel-centre convention: integers stay integers, corners stay corners)."""
    hw = (7, 11)
    coded = np.random.default_rng(rotation).integers(0, 1000, hw)
    shown = np.rot90(coded, k=rotation // 90)
    assert shown.shape == geometry.rotated_size(hw, rotation)
    ys, xs = np.mgrid[: hw[0], : hw[1]]
    pts = geometry.rotate_points(np.stack([xs, ys], -1).astype(float), rotation, hw)
    u, v = pts[..., 0].astype(int), pts[..., 1].astype(int)
    np.testing.assert_array_equal(pts, np.stack([u, v], -1))
    np.testing.assert_array_equal(shown[v, u], coded)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_round_trip(rotation):
    hw = (180, 320)
    back_rotation, shown_hw = (360 - rotation) % 360, geometry.rotated_size(hw, rotation)
    rng = np.random.default_rng(1)
    dyadic = rng.integers(-64 * 10, 64 * 330, (50, 17, 2)) / 64  # exact in float64: the round trip is exact
    there = geometry.rotate_points(dyadic, rotation, hw)
    np.testing.assert_array_equal(geometry.rotate_points(there, back_rotation, shown_hw), dyadic)
    anything = rng.uniform(-5, 330, (50, 17, 2))
    back = geometry.rotate_points(geometry.rotate_points(anything, rotation, hw), back_rotation, shown_hw)
    np.testing.assert_allclose(back, anything, rtol=0, atol=1e-12)
    # boxes: corners map to corners, sizes swap on quarter turns, and the round trip gives the box back
    boxes = np.concatenate([rng.uniform(0, 150, (20, 2)), rng.uniform(1, 30, (20, 2))], -1)
    turned = geometry.rotate_boxes(boxes, rotation, hw)
    np.testing.assert_allclose(geometry.rotate_boxes(turned, back_rotation, shown_hw), boxes, atol=1e-12)
    corners = np.stack([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
    c = geometry.rotate_points(corners, rotation, hw)
    np.testing.assert_allclose(turned[:, :2], c.min(1), atol=1e-12)
    np.testing.assert_allclose(turned[:, 2:], np.abs(c[:, 1] - c[:, 0]), atol=1e-12)


def raw_coded_frames(path: Path) -> list[np.ndarray]:
    """The fixture's frames as stored, without the display rotation (PyAV reports it but does not apply it)."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize("decoder", ["decord", "pyav", "opencv"])
def test_direction_on_the_rot90_fixture(shared_data, decoder):
    """`rotation` 90 as our decoders report it: the displayed frame at rotate_points(p) is the coded frame at p."""
    from posefix_video.video import open_frames

    path = shared_data.joinpath(*ROT90)
    reader = open_frames(path, decoder=decoder)
    assert reader.info.rotation == 90 and reader.info.coded_size == CODED_HW
    shown = next(iter(reader.frames())).astype(int)
    coded = raw_coded_frames(path)[0].astype(int)
    assert coded.shape[:2] == CODED_HW
    ys, xs = np.mgrid[: CODED_HW[0], : CODED_HW[1]]
    uv = geometry.rotate_points(np.stack([xs, ys], -1).astype(float), 90, CODED_HW).astype(int)
    assert np.abs(shown[uv[..., 1], uv[..., 0]] - coded).mean() < 1.0
    # the other direction would be far off (the content is not symmetric)
    wrong = geometry.rotate_points(np.stack([xs, ys], -1).astype(float), 270, CODED_HW).astype(int)
    assert np.abs(shown[wrong[..., 1], wrong[..., 0]] - coded).mean() > 10


# ---------------------------------------------------------------------------------------------- end to end

def coded_tracks(seed: int = 0) -> PoseSequence:
    """Two persons per frame in coded pixels of the rot90 fixture: one spanning the frame (corner joints included,
    joint 3 absent, joint 4 the (0, 0) placeholder), one small; every frame has persons."""
    rng = np.random.default_rng(seed)
    h, w = CODED_HW
    seq = PoseSequence(name="rot", layout=POSETRACK18, num_frames=N_FRAMES)
    for f in range(N_FRAMES):
        big = rng.integers([1, 1], [w - 1, h - 1], (17, 2)).astype(float)
        big[:3] = [[w - 1, 0], [0, h - 1], [w - 1, h - 1]]
        present = np.ones(17, bool)
        present[3] = False
        big[3] = big[4] = 0.0
        seq.add(PersonRecord(frame=f, track_id=1, keypoints=big, scores=np.full(17, 0.9), present=present,
                             visibility=present.astype(float)))
        centre = rng.uniform([60, 40], [w - 60, h - 40])
        small = centre + rng.normal(0, 1, (17, 2)) * [10, 20]
        seq.add(PersonRecord(frame=f, track_id=2, keypoints=small, scores=np.full(17, 0.8),
                             present=np.ones(17, bool), visibility=np.ones(17)))
    return seq


class SamplingRefiner:
    """Refiner stand-in: remembers the frame pixels under every movable joint, then moves those joints by SHIFT."""

    layout = POSETRACK18
    input_size = (64, 48)
    flip_test = False
    device = "cpu"

    def __init__(self):
        self.seen: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def refine_records(self, frames, records, frame_offset=0):
        frames = frames.numpy()
        kp = np.stack([r.keypoints for r in records])
        movable = geometry.usable_joints(kp, np.stack([r.present for r in records]))
        fi = np.array([r.frame - frame_offset for r in records])
        ij = np.clip(np.round(kp).astype(int), 0, [frames.shape[2] - 1, frames.shape[1] - 1])
        pixels = frames[fi[:, None], ij[..., 1], ij[..., 0]]  # (P, 17, 3)
        out = []
        for i, r in enumerate(records):
            self.seen[(r.frame, r.track_id)] = (kp[i], movable[i], pixels[i])
            out.append(r.replace(keypoints=np.where(movable[i, :, None], kp[i] + SHIFT, kp[i])))
        return out, Counter()


def movable_when_shown(p: PersonRecord) -> np.ndarray:
    """(17,) joints a refiner moves once the pose is displayed: present, and not (0, 0) in either frame. Coded
    (W - 1, 0) lands on the displayed (0, 0) placeholder, so it is passed through, as it would be for displayed
    tracks holding that point."""
    w = CODED_HW[1]
    return p.present & (p.keypoints != 0).any(-1) & (p.keypoints != [w - 1, 0]).any(-1)


def refined_keypoints(path: Path) -> dict[tuple[int, int], np.ndarray]:
    seq = read_tracks(path)
    return {(p.frame, p.track_id): p.keypoints for p in seq.persons()}


@pytest.fixture(scope="module")
def rot90(shared_data) -> Path:
    return shared_data.joinpath(*ROT90)


def test_coded_tracks_show_coded_content_and_come_back_coded(rot90, tmp_path):
    seq = coded_tracks()
    write_csv_tracks(seq, tmp_path / "tracks.csv")
    stub = SamplingRefiner()
    s = refine_video(rot90, tmp_path / "tracks.csv", refiner=stub, out=tmp_path / "out.json", decoder="pyav",
                     frame_base=0, layout="posetrack18", tracks_orientation="coded", batch_size=8,
                     render=tmp_path / "r.mp4")
    assert s.frames == N_FRAMES and s.persons == 2 * N_FRAMES and s.warnings == []
    raw = raw_coded_frames(rot90)
    h, w = CODED_HW
    # (a) the refiner got displayed frames and displayed keypoints that sit on the coded content
    for p in seq.persons():
        shown_kp, movable, pixels = stub.seen[(p.frame, p.track_id)]
        np.testing.assert_array_equal(movable, movable_when_shown(p))
        if p.track_id == 1:  # coded (W - 1, 0) is the displayed origin; the other corners move
            assert not movable[0] and movable[1:3].all()
        x, y = np.round(p.keypoints[movable]).astype(int).T
        np.testing.assert_array_equal(pixels[movable], raw[p.frame][np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)])
        np.testing.assert_allclose(shown_kp[movable], np.stack([p.keypoints[movable, 1],
                                                                w - 1 - p.keypoints[movable, 0]], -1), atol=1e-9)
    # (b) the output is in coded pixels: the displayed move (+1, +2) is (-2, +1) there; placeholders stay
    data = json.loads((tmp_path / "out.json").read_text())
    assert {(im["width"], im["height"]) for im in data["images"]} == {(w, h)}
    got = refined_keypoints(tmp_path / "out.json")
    for p in seq.persons():
        movable = movable_when_shown(p)
        # moved joints are written to 2 decimals (video.writer.KEYPOINT_DECIMALS), the others exactly as given
        want = np.where(movable[:, None], np.round(p.keypoints + SHIFT_CODED, 2), p.keypoints)
        np.testing.assert_allclose(got[(p.frame, p.track_id)], want, atol=1e-9)
    import av

    with av.open(str(tmp_path / "r.mp4")) as c:  # the overlay is drawn on the displayed frames
        frame = next(c.decode(video=0))
        assert (frame.height, frame.width) == (w, h)


def tiny_refiner():
    import torch

    from posefix_video.config import ModelConfig
    from posefix_video.net.model import build_model
    from posefix_video.net.refiner import Refiner

    cfg = ModelConfig(depth=18, input_size=(64, 64), layout="posetrack18", width=8, deconv_channels=16)
    torch.manual_seed(0)
    model = build_model(cfg)
    for m in model.deconv.modules():  # peaked, input-dependent heatmaps (the default head init is nearly flat)
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.normal_(m.weight, std=0.1)
    torch.nn.init.normal_(model.final.weight, std=1.0)
    return Refiner(model=model.eval(), layout=POSETRACK18, input_size=cfg.input_size, sigma=2.0, device="cpu",
                   flip_test=True, batch_size=32)


def test_real_network_coded_equals_displayed_run_mapped(rot90, tmp_path):
    """The same poses given in displayed pixels (mapped here by the hand formula, not the library) refine to the
    same results, mapped through the transform."""
    seq = coded_tracks(seed=3)
    w = CODED_HW[1]
    shown = PoseSequence(name="rot", layout=POSETRACK18, num_frames=N_FRAMES)
    for p in seq.persons():
        movable = p.present & (p.keypoints != 0).any(-1)
        kp = np.where(movable[:, None], np.stack([p.keypoints[:, 1], w - 1 - p.keypoints[:, 0]], -1), p.keypoints)
        shown.add(p.replace(keypoints=kp))
    write_csv_tracks(seq, tmp_path / "coded.csv")
    write_csv_tracks(shown, tmp_path / "shown.csv")
    refiner = tiny_refiner()
    kw = dict(refiner=refiner, decoder="decord", frame_base=0, layout="posetrack18", batch_size=32)
    s = refine_video(rot90, tmp_path / "coded.csv", out=tmp_path / "coded.json", tracks_orientation="coded", **kw)
    assert s.refined == 2 * N_FRAMES
    refine_video(rot90, tmp_path / "shown.csv", out=tmp_path / "shown.json", **kw)
    coded, displayed = refined_keypoints(tmp_path / "coded.json"), refined_keypoints(tmp_path / "shown.json")
    moved = 0.0
    for p in seq.persons():
        key = (p.frame, p.track_id)
        movable = p.present & (p.keypoints != 0).any(-1)
        c = coded[key]
        expected = np.where(movable[:, None], np.stack([c[:, 1], w - 1 - c[:, 0]], -1), c)
        np.testing.assert_allclose(expected, displayed[key], rtol=0, atol=1e-3)
        np.testing.assert_array_equal(c[~movable], p.keypoints[~movable])
        moved = max(moved, np.abs(c[movable] - p.keypoints[movable]).max())
    assert moved > 1.0  # the network did move joints: the comparison is not between two copies of the input


def test_no_rotation_means_no_change(shared_data, tmp_path):
    clip = shared_data / "video" / "mmpose_demo_street_960x540_5f.mp4"
    seq = PoseSequence(name="street", layout=POSETRACK18, num_frames=5)
    rng = np.random.default_rng(0)
    for f in range(5):
        seq.add(PersonRecord(frame=f, track_id=0, keypoints=rng.uniform([100, 100], [800, 500], (17, 2)),
                             scores=np.ones(17), present=np.ones(17, bool), visibility=np.ones(17)))
    write_csv_tracks(seq, tmp_path / "t.csv")
    outs = []
    for orientation in ("displayed", "coded"):
        out = tmp_path / f"{orientation}.json"
        refine_video(clip, tmp_path / "t.csv", out=out, refiner=SamplingRefiner(), frame_base=0,
                     layout="posetrack18", tracks_orientation=orientation)
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]
    assert {(im["width"], im["height"]) for im in outs[0]["images"]} == {(960, 540)}


def test_resume_with_other_orientation_is_refused(rot90, tmp_path):
    write_csv_tracks(coded_tracks(), tmp_path / "tracks.csv")
    out = tmp_path / "out.json"
    kw = dict(out=out, frame_base=0, layout="posetrack18", decoder="pyav", batch_size=4)

    def stop(k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine_video(rot90, tmp_path / "tracks.csv", refiner=SamplingRefiner(), tracks_orientation="coded",
                     on_chunk=stop, **kw)
    assert journal_path(out).exists()
    with pytest.raises(PosefixError, match="other inputs or options"):
        refine_video(rot90, tmp_path / "tracks.csv", refiner=SamplingRefiner(), resume=True, **kw)
    assert not out.exists()
    # the same orientation resumes
    s = refine_video(rot90, tmp_path / "tracks.csv", refiner=SamplingRefiner(), resume=True,
                     tracks_orientation="coded", **kw)
    assert s.resumed_frames > 0 and out.exists()


def test_bad_orientation_value(rot90, tmp_path):
    write_csv_tracks(coded_tracks(), tmp_path / "tracks.csv")
    with pytest.raises(PosefixError, match="tracks orientation must be one of displayed, coded"):
        refine_video(rot90, tmp_path / "tracks.csv", refiner=SamplingRefiner(), tracks_orientation="raw")


def test_warnings_name_the_option():
    seq = PoseSequence(name="s", layout=POSETRACK18, images=[{"id": 1, "width": 320, "height": 180}])
    tracks = Path("t.json")
    shown_hw, coded_hw = (320, 180), CODED_HW
    (msg,) = orientation_warnings(seq, shown_hw, tracks)
    assert "t.json" in msg and "320x180" in msg and "--tracks-orientation coded" in msg
    assert orientation_warnings(seq, shown_hw, tracks, "coded", coded_hw) == []
    seq.images = [{"id": 1, "width": 180, "height": 320}]
    assert orientation_warnings(seq, shown_hw, tracks) == []
    (msg,) = orientation_warnings(seq, shown_hw, tracks, "coded", coded_hw)
    assert "displayed size" in msg and "coded 320x180" in msg


def test_boxes_follow_the_keypoints():
    seq = coded_tracks()
    p = next(seq.persons())
    p.box = np.array([10.0, 20.0, 30.0, 40.0])  # coded x 10..40, y 20..60
    shown = next(tracks_to_displayed(seq, 90, CODED_HW).persons())
    # displayed x = coded y (20..60), displayed y = W - 1 - coded x (279..309)
    np.testing.assert_array_equal(shown.box, [20.0, 279.0, 40.0, 30.0])
    assert p.box.tolist() == [10.0, 20.0, 30.0, 40.0]  # the input is not modified


def test_normalised_coordinates_scale_by_the_coded_size(rot90, tmp_path):
    """Ultralytics labels hold coordinates divided by the frame size the tracker saw: the coded one here."""
    h, w = CODED_HW
    rng = np.random.default_rng(4)
    labels = tmp_path / "labels"
    labels.mkdir()
    coded = {}
    for f in range(N_FRAMES):
        kp = rng.uniform([20, 20], [w - 20, h - 20], (17, 2))
        coded[f] = kp
        trip = np.concatenate([kp / [w, h], np.ones((17, 1))], -1)
        box = [0.5, 0.5, 0.5, 0.5]
        values = [0, *box, *trip.ravel(), 3]
        (labels / f"rot_{f + 1}.txt").write_text(" ".join(repr(float(v)) if i else "0" for i, v in
                                                          enumerate(values[:-1])) + " 3\n")
    out = tmp_path / "out.json"
    refine_video(rot90, labels, refiner=SamplingRefiner(), out=out, frame_base=1, layout="posetrack18",
                 tracks_orientation="coded")
    got = refined_keypoints(out)
    for f, kp in coded.items():
        np.testing.assert_allclose(got[(f, 3)], np.round(kp + SHIFT_CODED, 2), atol=1e-6)  # written to 0.01 px


def test_cli_option(rot90, tmp_path, capsys):
    from pipelines.refine_video import main

    seq = coded_tracks()
    seq.frames = {f: seq.frames[f][1:] for f in range(0, N_FRAMES, 3)}  # 10 small persons: a quick run
    write_csv_tracks(seq, tmp_path / "t.csv")
    ckpt = Path(__file__).resolve().parents[1] / "assets" / "demo_checkpoint.pth"
    args = [str(rot90), str(tmp_path / "t.csv"), "--checkpoint", str(ckpt), "--layout", "posetrack18",
            "--frame-base", "0", "--no-flip", "--no-progress", "-o", str(tmp_path / "o.json")]
    assert main(args + ["--tracks-orientation", "coded"]) == 0
    data = json.loads((tmp_path / "o.json").read_text())
    assert {(im["width"], im["height"]) for im in data["images"]} == {(320, 180)}
    assert "refined 10" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--tracks-orientation", "sideways"])
    assert exit_info.value.code == 2


def test_keypoints_that_fit_only_the_other_orientation_warn():
    """Coded tracks given as displayed (the silent mistake): ~40% of the joints lie right of the 180-wide displayed
    frame, none outside the 320x180 coded one. Tracks that fit the chosen frame give no warning."""
    coded = coded_tracks()
    shown = tracks_to_displayed(coded, 90, CODED_HW)
    tracks, shown_hw = Path("t.csv"), (320, 180)
    (msg,) = orientation_warnings(coded, shown_hw, tracks, "displayed", CODED_HW)
    assert msg.startswith("t.csv: ") and "outside the displayed 180x320 frames but fit the coded 320x180" in msg
    assert "pass --tracks-orientation coded" in msg
    assert orientation_warnings(coded, shown_hw, tracks, "coded", CODED_HW) == []
    assert orientation_warnings(shown, shown_hw, tracks, "displayed", CODED_HW) == []
    (msg,) = orientation_warnings(shown, shown_hw, tracks, "coded", CODED_HW)
    assert "outside the coded 320x180 frames but fit the displayed 180x320" in msg and "leave" in msg
    # joints a little outside (a person leaving the frame) are normal: no warning
    for p in shown.persons():
        p.keypoints[p.present] += [3.0, 0.0]
    assert orientation_warnings(shown, shown_hw, tracks, "displayed", CODED_HW) == []
    # no rotation: nothing to compare
    assert orientation_warnings(coded, CODED_HW, tracks, "displayed", CODED_HW) == []


def test_results_to_coded_refuses_reordered_records():
    """Boxes and unmoved joints come from the input by position, so two persons swapped within a frame must not
    pass silently (each would get the other's box)."""
    from posefix_video.video.orientation import results_to_coded

    coded = coded_tracks()
    for p in coded.persons():
        p.box = np.array([1.0, 2.0, 3.0, 4.0]) * p.track_id
    shown = tracks_to_displayed(coded, 90, CODED_HW)
    back = results_to_coded(shown, coded, shown, 90, CODED_HW)
    assert [p.box.tolist() for p in back.persons()] == [p.box.tolist() for p in coded.persons()]
    swapped = PoseSequence(name="rot", layout=POSETRACK18, num_frames=N_FRAMES)
    for f in range(N_FRAMES):
        for p in reversed(shown.persons_in(f)):
            swapped.add(p)
    with pytest.raises(RuntimeError, match="not aligned"):
        results_to_coded(swapped, coded, shown, 90, CODED_HW)
