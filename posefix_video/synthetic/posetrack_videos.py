"""Synthetic videos in the PoseTrack 2018 layout, with exact per-frame ground truth and consistent track ids.

    <out>/images/<split>/<video>/000000.jpg ...      numbered JPEG frames (0-based, 6 digits)
    <out>/videos/<split>/<video>.mp4                   the same frames (H.264 via PyAV, else mp4v)
    <out>/annotations/<split>/<video>.json             ground truth poseval accepts

Video names are `NNNNNN_mpiinew_<train|test>` (val and test videos end in `_test`, as in PoseTrack); image ids
are 3 * 1e10 + video * 1e4 + frame. People walk across (entering and leaving the frame), walk toward or away from
the camera (changing size), turn on the spot, wave, or hold a pose (sit, bend, squat, lie, arms raised) with small
movements. Every frame is drawn from the tracks' closed-form motion, so frames stream (memory does not grow with
the video length) and frame t is the same however the video is cut.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from posefix_video.errors import ConfigError
from posefix_video.io.posetrack18 import categories_block, write_posetrack18
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.synthetic import render as rd
from posefix_video.synthetic import scene
from posefix_video.synthetic import skeleton as sk

log = logging.getLogger(__name__)

MAX_FRAMES = 10**4  # image id = 3e10 + video * 1e4 + frame
MAX_VIDEOS = 10**6
MOTIONS = ("walk_across", "walk_depth", "turn", "wave", "hold")
_HOLD_KINDS = ("sit", "bend", "squat", "lie", "arms_raised", "reach", "stand")


@dataclass(frozen=True)
class VideoSettings:
    """What `write_posetrack_videos` generates.

    Attributes:
        num_videos, num_frames: videos and frames per video.
        seed: master seed; equal seeds give byte-identical files.
        width, height: frame size in px.
        split: "train", "val" or "test" (folder names; val/test videos end in `_test`).
        first_video: number of the first video (names and image ids).
        min_tracks, max_tracks: people per video (uniform).
        min_height: smallest person height in px (the largest is 90 % of the frame height).
        max_height: largest person height in px when set (None: 90 % of the frame height); walk_depth persons
            stay within [0.75 min_height, 1.3 max_height] as they approach or recede.
        fps: frame rate of the mp4 (motion speeds are per second).
        label_every: frames with `is_labeled` true and annotations: every k-th (1: all).
        jpeg_quality: fixed JPEG quality.
        write_mp4: also encode the mp4.
        noise_sigma: sensor noise (grey levels) added per frame.
    """

    num_videos: int = 2
    num_frames: int = 60
    seed: int = 0
    width: int = 640
    height: int = 480
    split: str = "val"
    first_video: int = 1
    min_tracks: int = 2
    max_tracks: int = 6
    min_height: float = 40.0
    max_height: float | None = None
    fps: int = 25
    label_every: int = 1
    jpeg_quality: int = 92
    write_mp4: bool = True
    noise_sigma: float = 3.0


@dataclass
class Track:
    """One person's closed-form motion through a video (see `person_at`)."""

    track_id: int
    shape: sk.BodyShape
    look: rd.Appearance
    motion: str
    kind: str
    base: sk.Pose
    start: int
    x0: float
    height0: float
    horizon: float
    ground_k: float
    vx: float  # px per frame
    growth: float  # relative height change per frame (walk_depth)
    yaw0: float
    yaw_rate: float  # rad per frame
    phase0: float
    phase_rate: float  # walk-cycle rad per frame
    wiggle: float  # rad per frame of the slow limb movements
    height_range: tuple[float, float] = (20.0, 1e4)  # walk_depth stops shrinking / growing at these heights

    def person_at(self, t: int) -> scene.Person | None:
        """The person at frame t, or None before the track starts."""
        if t < self.start:
            return None
        dt = t - self.start
        pose = replace(self.base, arms=self.base.arms.copy(), legs=self.base.legs.copy())
        height = self.height0
        x = self.x0 + self.vx * dt
        if self.motion in ("walk_across", "walk_depth"):
            sk.walk_cycle(pose, self.phase0 + self.phase_rate * dt)
            if self.motion == "walk_depth":
                height = float(np.clip(self.height0 * (1.0 + self.growth) ** dt, *self.height_range))
        if self.motion == "turn":
            pose.yaw = self.yaw0 + self.yaw_rate * dt
        else:
            pose.yaw = self.yaw0 + 0.15 * np.sin(self.yaw_rate * dt)
        if self.motion == "wave":
            pose.arms[0, 2] = self.base.arms[0, 2] + 0.6 * np.sin(self.wiggle * 6 * dt)
        if self.motion in ("hold", "turn", "wave"):
            pose.arms[:, 1] += 0.12 * np.sin(self.wiggle * dt + np.array([0.0, 1.3]))
            pose.head_yaw = self.base.head_yaw + 0.3 * np.sin(self.wiggle * 0.7 * dt)
        ground = self.horizon + height * self.ground_k
        proj = sk.project(self.shape, pose, height_px=height, x=x, ground_y=ground)
        return scene.Person(track_id=self.track_id, shape=self.shape, look=self.look, proj=proj, kind=self.kind)


def video_name(settings: VideoSettings, index: int) -> str:
    suffix = "train" if settings.split == "train" else "test"
    return f"{settings.first_video + index:06d}_mpiinew_{suffix}"


def make_tracks(rng: np.random.Generator, settings: VideoSettings, horizon: float | None = None) -> list[Track]:
    """Random tracks of one video: motions, sizes, start frames and speeds; feet below `horizon`."""
    w, h, n = settings.width, settings.height, settings.num_frames
    horizon = scene.random_horizon(rng, h) if horizon is None else horizon
    count = int(rng.integers(settings.min_tracks, settings.max_tracks + 1))
    tracks = []
    for i in range(count):
        motion = str(rng.choice(MOTIONS, p=[0.4, 0.15, 0.15, 0.1, 0.2]))
        top = 0.9 * h if settings.max_height is None else max(min(settings.max_height, 0.9 * h), settings.min_height)
        height = float(np.exp(rng.uniform(np.log(settings.min_height), np.log(top))))
        kind = {"walk_across": "walk", "walk_depth": "walk", "turn": "stand", "wave": "wave"}.get(
            motion, str(rng.choice(_HOLD_KINDS))
        )
        _, base = sk.random_pose(rng, kind)
        per_s = 1.0 / settings.fps
        start, vx, growth, x0 = 0, 0.0, 0.0, float(rng.uniform(0.05, 0.95) * w)
        yaw0 = base.yaw
        if motion == "walk_across":
            direction = float(rng.choice([-1.0, 1.0]))
            vx = direction * height * rng.uniform(0.5, 0.9) * per_s  # about 0.7 body heights per second
            yaw0 = direction * np.pi / 2 + 0.2 * rng.standard_normal()
            if rng.random() < 0.5:  # enters from the side during the video
                start = int(rng.integers(0, max(1, n // 2)))
                x0 = -0.3 * height if direction > 0 else w + 0.3 * height
        elif motion == "walk_depth":
            toward = rng.random() < 0.5
            yaw0 = 0.25 * rng.standard_normal() + (0.0 if toward else np.pi)
            growth = (1 if toward else -1) * rng.uniform(0.2, 0.5) * per_s
            if settings.max_height is None:
                height = min(height, 0.6 * h) if toward else max(height, 0.3 * h)
            vx = 0.1 * height * rng.standard_normal() * per_s
        grow_cap = 1.3 * (h if settings.max_height is None else top)
        tracks.append(Track(
            track_id=i, shape=sk.BodyShape.random(rng), look=rd.Appearance.random(rng), motion=motion, kind=kind,
            base=base, start=start, x0=x0, height0=height, horizon=horizon, ground_k=float(rng.uniform(0.6, 1.1)),
            vx=vx, growth=growth, yaw0=float(yaw0), yaw_rate=float(rng.uniform(-1.5, 1.5) * per_s), phase0=float(
                rng.uniform(0, 2 * np.pi)), phase_rate=float(2 * np.pi * rng.uniform(0.8, 1.0) * per_s),
            wiggle=float(rng.uniform(0.5, 2.0) * per_s), height_range=(0.75 * settings.min_height, grow_cap),
        ))  # fmt: skip
    return tracks


def render_video(settings: VideoSettings, index: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, list]]:
    """Streams video `index`: (frame, image (H, W, 3) uint8 BGR, part labels (H, W) uint16, ground truth)."""
    rng = np.random.default_rng([settings.seed, index, 0x9057])
    horizon = scene.random_horizon(rng, settings.height)
    background = scene.make_background(rng, settings.height, settings.width, horizon)
    tracks = make_tracks(rng, settings, horizon)
    noise = scene.SensorNoise(rng=rng, shape=background.shape, sigma=settings.noise_sigma)
    margin = settings.width
    for t in range(settings.num_frames):
        persons = []
        for track in tracks:
            p = track.person_at(t)
            if p is not None and -margin < p.proj.xy[sk.PELVIS, 0] < settings.width + margin:
                persons.append(p)
        image, labels, truths = scene.render_frame(background, persons)
        if settings.noise_sigma > 0:
            noise.apply(image, t)
        yield t, image, labels, truths


def image_entries(settings: VideoSettings, name: str) -> list[dict]:
    """The `images` list of a video: every frame, ids 3*1e10 + video*1e4 + frame, empty ignore regions."""
    vid = int(name.split("_")[0])
    base = 3 * 10**10 + vid * 10**4
    return [{
        "id": base + t, "file_name": f"images/{settings.split}/{name}/{t:06d}.jpg", "frame_id": base + t,
        "vid_id": f"{vid:06d}", "nframes": settings.num_frames, "is_labeled": t % settings.label_every == 0,
        "has_no_densepose": True, "ignore_regions_x": [], "ignore_regions_y": [],
        "width": settings.width, "height": settings.height,
    } for t in range(settings.num_frames)]  # fmt: skip


def truth_record(frame: int, truth: scene.PersonTruth) -> PersonRecord:
    """A PoseTrack18 ground-truth PersonRecord (scores [], bbox_head, num_keypoints) from a PersonTruth."""
    kp = truth.posetrack
    return PersonRecord(
        frame=frame, track_id=truth.track_id, keypoints=np.round(kp[:, :2], 2), scores=None, present=kp[:, 2] > 0,
        visibility=kp[:, 2], box=np.round(truth.box, 2),
        extra={"category_id": 1, "bbox_head": np.round(truth.head_box, 2).tolist(),
               "num_keypoints": int((kp[:, 2] > 0).sum()), "iscrowd": False},
    )  # fmt: skip


def write_video(out_dir: str | os.PathLike, settings: VideoSettings, index: int) -> Path:
    """Writes frames, mp4 and ground-truth JSON of video `index`; returns the JSON path."""
    out = Path(out_dir)
    name = video_name(settings, index)
    img_dir = out / "images" / settings.split / name
    img_dir.mkdir(parents=True, exist_ok=True)
    encoder = None
    if settings.write_mp4:
        from posefix_video.video.encode import VideoEncoder

        encoder = VideoEncoder(out / "videos" / settings.split / f"{name}.mp4", settings.fps,
                               (settings.height, settings.width))  # fmt: skip
    images = image_entries(settings, name)
    seq = PoseSequence(name=name, layout=POSETRACK18, num_frames=settings.num_frames, images=images,
                       source_format="synthetic", meta={"categories": categories_block()})  # fmt: skip
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(settings.jpeg_quality)]
    try:
        for t, image, _, truths in render_video(settings, index):
            ok, buf = cv2.imencode(".jpg", image, params)
            if not ok:
                raise OSError(f"JPEG encoding of frame {t} of {name} failed")
            (img_dir / f"{t:06d}.jpg").write_bytes(buf.tobytes())
            if encoder is not None:
                encoder.write(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            if images[t]["is_labeled"]:
                for truth in truths:
                    if truth.posetrack[:, 2].any():
                        seq.add(truth_record(t, truth))
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    if encoder is not None:
        encoder.close()
    path = out / "annotations" / settings.split / f"{name}.json"
    write_posetrack18(seq, path)
    log.info("wrote %s: %d frames, %d persons", name, settings.num_frames, seq.num_persons)
    return path


def check_settings(settings: VideoSettings) -> None:
    """Raises ConfigError for settings the PoseTrack id scheme or the renderer cannot honour."""
    if not 1 <= settings.num_frames < MAX_FRAMES:
        raise ConfigError(f"{settings.num_frames} frames per video: PoseTrack image ids hold 4 frame digits, "
                          f"use 1..{MAX_FRAMES - 1}")  # fmt: skip
    if not (0 <= settings.first_video and settings.first_video + settings.num_videos <= MAX_VIDEOS):
        raise ConfigError(f"videos {settings.first_video}..{settings.first_video + settings.num_videos - 1}: "
                          f"video numbers have 6 digits (0..{MAX_VIDEOS - 1})")  # fmt: skip
    if not 0 <= settings.min_tracks <= settings.max_tracks:
        raise ConfigError(f"tracks {settings.min_tracks}-{settings.max_tracks}: need 0 <= min <= max")
    if settings.split not in ("train", "val", "test"):
        raise ConfigError(f"split {settings.split!r}: use train, val or test")


def write_posetrack_videos(out_dir: str | os.PathLike, settings: VideoSettings) -> list[Path]:
    """Writes `settings.num_videos` videos; returns the ground-truth JSON paths.

    Raises:
        ConfigError: settings outside what the PoseTrack layout can hold (see `check_settings`).
    """
    check_settings(settings)
    return [write_video(out_dir, settings, i) for i in range(settings.num_videos)]
