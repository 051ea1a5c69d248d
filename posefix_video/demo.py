"""The end-to-end demo and the learning proof: synthetic clip -> simulated tracker -> refine -> evaluate.

    clip = make_clip(out_dir / "clip", ClipSpec(seed=0))
    tracks = simulate_tracks(clip, out_dir / "tracks", TrackerSimSettings.training(), seed=0)
    result = refine_and_evaluate(clip, tracks, out_dir / "refined", refiner=load_demo_refiner(checkpoint))
    print(format_table(result))

Everything is synthetic (posefix_video.synthetic), so the demo needs no download. The checkpoint is a tiny PoseFix
model trained by our own recipe (configs/tiny_synthetic.yaml) on synthetic PoseTrack18 training videos:
`train_demo_checkpoint` does that, and scripts/make_demo_checkpoint.py writes the committed
assets/demo_checkpoint.pth with it. `refine_and_evaluate` is the one function that runs refine + evaluate on a clip,
shared by the demo (pipelines/demo.py) and scripts/learning_proof.py.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.atomic import write_bytes_atomic
from posefix_video.errors import PosefixError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_CHECKPOINT = REPO_ROOT / "assets" / "demo_checkpoint.pth"
TINY_CONFIG = REPO_ROOT / "configs" / "tiny_synthetic.yaml"
DEMO_INITIALIZER = REPO_ROOT / "assets" / "demo_initializer.pth"
TOPDOWN_CONFIG = REPO_ROOT / "configs" / "tiny_synthetic_topdown.yaml"
AP_GROUPS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")


@dataclass(frozen=True)
class ClipSpec:
    """A synthetic PoseTrack18 clip (one video).

    Attributes:
        seed: master seed of the video (people, motions, backgrounds).
        frames: frames in the video (all labeled).
        width, height: frame size in px.
        min_tracks, max_tracks: people in the video.
        first_video: video number (names: NNNNNN_mpiinew_test).
        min_height, max_height: person heights in px (max None: up to 90 % of the frame height).
    """

    seed: int = 1000
    frames: int = 40
    width: int = 320
    height: int = 240
    min_tracks: int = 3
    max_tracks: int = 5
    first_video: int = 1
    min_height: float = 40.0
    max_height: float | None = None


@dataclass(frozen=True)
class Clip:
    """Files of a synthetic clip: the mp4, its frame folder and its ground-truth PoseTrack18 file."""

    video: Path
    frames: Path
    gt: Path


@dataclass
class ClipResult:
    """Input and refined PoseTrack evaluation of one clip (posefix_video.eval.PoseTrackResult each)."""

    before: Any
    after: Any
    refined: Path
    summary: Any

    def gain(self, group: str = "Total") -> float:
        """Refined minus input AP of one group, in AP points."""
        return float(self.after.groups("ap")[group] - self.before.groups("ap")[group])


def make_clip(out_dir: str | os.PathLike, spec: ClipSpec, *, split: str = "val") -> Clip:
    """Renders one synthetic clip with exact ground truth (mp4 + frames + GT JSON) under `out_dir`."""
    from posefix_video.synthetic.posetrack_videos import VideoSettings, write_posetrack_videos

    settings = VideoSettings(num_videos=1, num_frames=spec.frames, seed=spec.seed, width=spec.width,
                             height=spec.height, split=split, first_video=spec.first_video,
                             min_tracks=spec.min_tracks, max_tracks=spec.max_tracks, write_mp4=True,
                             min_height=spec.min_height, max_height=spec.max_height)
    (gt,) = write_posetrack_videos(out_dir, settings)
    name = gt.stem
    out = Path(out_dir)
    return Clip(video=out / "videos" / split / f"{name}.mp4", frames=out / "images" / split / name, gt=gt)


def simulate_tracks(clip: Clip, out_dir: str | os.PathLike, settings: Any, *, seed: int) -> Path:
    """Writes the simulated tracker's PoseTrack18 output for the clip (same file name as the GT) and returns it."""
    from posefix_video.synthetic.tracker_sim import simulate_files

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (path,) = simulate_files([clip.gt], out_dir, settings, seed)
    return path


def load_demo_refiner(checkpoint: str | os.PathLike = DEMO_CHECKPOINT, *, device: str = "cpu",
                      flip_test: bool = True, batch_size: int = 64) -> Any:
    """Loads a refiner once so that several clips reuse it."""
    from posefix_video.video.refine_video import load_refiner

    if not Path(checkpoint).is_file():
        raise PosefixError(f"{checkpoint}: no such checkpoint; regenerate it with "
                           f"`python scripts/make_demo_checkpoint.py` or pass --train")
    return load_refiner(checkpoint, device=device, flip_test=flip_test, precision="fp32", batch_size=batch_size)


def refine_and_evaluate(clip: Clip, tracks: Path, out_dir: str | os.PathLike, *, refiner: Any,
                        render: str | os.PathLike | None = None, batch_size: int = 64, **options: Any) -> ClipResult:
    """Refines `tracks` on the clip's mp4 and evaluates input and refined poses against the clip's GT.

    Args:
        clip: the synthetic clip (mp4 + GT).
        tracks: the tracker's PoseTrack18 file for the clip.
        out_dir: where the refined PoseTrack18 file goes (same file name as the GT, as the evaluator pairs them).
        refiner: a loaded refiner (`load_demo_refiner`).
        render: optional overlay video (input grey, refined coloured).
        batch_size: persons per refiner call.
        options: further `refine_video` options (safeguard, fill_joints, fill_gaps, scores, ...).

    Returns:
        ClipResult with poseval-style AP and MOTA of the input (`before`) and of the refined poses (`after`).
    """
    from posefix_video.eval import evaluate_posetrack
    from posefix_video.video.refine_video import refine_video

    out = Path(out_dir) / clip.gt.name
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = refine_video(clip.video, tracks, out=out, refiner=refiner, render=render, batch_size=batch_size,
                           seq_name=clip.gt.stem, **options)
    before = evaluate_posetrack([clip.gt], [tracks], tracking=True)
    after = evaluate_posetrack([clip.gt], [out], tracking=True)
    return ClipResult(before=before, after=after, refined=out, summary=summary)


def format_table(rows: list[tuple[str, Any]]) -> str:
    """A fixed-width table of AP per group + Total and MOTA Total, one row per (label, PoseTrackResult)."""
    width = max(10, *(len(label) for label, _ in rows))
    head = f"{'':<{width}}" + "".join(f"{g:>7}" for g in AP_GROUPS) + f"{'MOTA':>7}"
    lines = [f"{'':<{width}}{'AP':>7}", head]
    for label, result in rows:
        ap = result.groups("ap")
        mota = result.groups("mota")["Total"] if result.mota is not None else float("nan")
        lines.append(f"{label:<{width}}" + "".join(f"{ap[g]:7.1f}" for g in AP_GROUPS) + f"{mota:7.1f}")
    return "\n".join(lines)


def plot_before_after(before: Any, after: Any, path: str | os.PathLike, title: str = "") -> None:
    """Per-joint AP bars, input against refined (plus Total), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    from posefix_video.eval.posetrack_data import POSEVAL_JOINTS

    names = [*POSEVAL_JOINTS, "Total"]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    for k, (label, res) in enumerate((("input", before), ("refined", after))):
        vals = np.nan_to_num(np.asarray(res.ap, dtype=np.float64), nan=0.0)
        ax.bar(x + (k - 0.5) * 0.4, vals, 0.4, label=f"{label} (Total {res.groups('ap')['Total']:.1f})")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("AP (%)")
    ax.set_ylim(0, 105)
    ax.legend(loc="lower right")
    ax.set_title(title or "PoseTrack AP per joint: tracker input vs PoseFix-refined")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def training_config(train_dir: str | os.PathLike, *, epochs: int, seed: int = 0, milestones: tuple[int, ...] = (),
                    num_workers: int = 0, init_checkpoint: str | os.PathLike = "") -> Any:
    """The tiny recipe (configs/tiny_synthetic.yaml) pointed at synthetic PoseTrack18 training videos."""
    from posefix_video.train.config import load_train_config

    train_dir = Path(train_dir)
    overrides = [
        "data.kind=posetrack", f"data.train_ann={train_dir / 'annotations' / 'train'}",
        f"data.train_images={train_dir}", "data.val_ann=''", "model.layout=posetrack18", f"schedule.epochs={epochs}",
        f"schedule.milestones=[{','.join(str(m) for m in milestones)}]", "validation.every=0",
        f"runtime.seed={seed}", f"data.num_workers={num_workers}", "runtime.device=cpu", "runtime.log_every=20",
        f"init.checkpoint='{init_checkpoint}'",
    ]
    return load_train_config(TINY_CONFIG, overrides)


def train_demo_checkpoint(work_dir: str | os.PathLike, out_path: str | os.PathLike, *, videos: int = 48,
                          frames: int = 20, epochs: int = 8, seed: int = 0, width: int = 320,
                          height: int = 240, init_checkpoint: str | os.PathLike = "") -> Path:
    """Generates synthetic training videos, trains the tiny recipe through train.run.run_training, copies last.pth.

    The training videos use the "train" split and their own seed, so they never overlap the held-out clips.
    """
    from posefix_video.synthetic.posetrack_videos import VideoSettings, write_posetrack_videos
    from posefix_video.train.run import run_training

    work = Path(work_dir)
    data_dir = work / "data"
    write_posetrack_videos(data_dir, VideoSettings(num_videos=videos, num_frames=frames, seed=seed + 500_000,
                                                   width=width, height=height, split="train", min_tracks=2,
                                                   max_tracks=6, write_mp4=False, min_height=30.0))
    milestones = (max(1, epochs - 1),) if epochs > 1 else ()
    cfg = training_config(data_dir, epochs=epochs, seed=seed, milestones=milestones, init_checkpoint=init_checkpoint)
    run_training(cfg, work / "run")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    shutil.copyfile(work / "run" / "last.pth", tmp)
    os.replace(tmp, out_path)
    return out_path


def train_demo_initializer(work_dir: str | os.PathLike, out_path: str | os.PathLike, *, videos: int = 40,
                           frames: int = 6, epochs: int = 2, seed: int = 0, loss: str = "heatmap_mse",
                           init_checkpoint: str | os.PathLike = "") -> Path:
    """Trains the tiny top-down recipe (configs/tiny_synthetic_topdown.yaml: image only, Gaussian heatmaps + MSE)
    on synthetic PoseTrack18 training videos and writes its weights, configs and input contract to `out_path`
    (the demo's box-only initializer; `loss` "posefix" trains the soft-argmax losses instead, for comparison).
    `init_checkpoint`: start from a PoseFix checkpoint of the same network (its image features; train.run
    init_weights), as the committed initializer starts from the demo checkpoint."""
    from posefix_video.synthetic.posetrack_videos import VideoSettings, write_posetrack_videos
    from posefix_video.train.config import load_train_config
    from posefix_video.train.run import run_training

    work = Path(work_dir)
    data_dir = work / "data"
    write_posetrack_videos(data_dir, VideoSettings(num_videos=videos, num_frames=frames, seed=seed + 500_000,
                                                   width=320, height=240, split="train", write_mp4=False))
    milestones = f"[{epochs - 1}]" if epochs > 1 else "[]"
    cfg = load_train_config(TOPDOWN_CONFIG, [
        f"data.train_ann={data_dir / 'annotations' / 'train'}", f"data.train_images={data_dir}", "data.val_ann=''",
        "validation.every=0", f"schedule.epochs={epochs}", f"schedule.milestones={milestones}", f"loss.kind={loss}",
        f"runtime.seed={seed}", "data.num_workers=0", "runtime.device=cpu", "runtime.log_every=20",
        f"init.checkpoint='{init_checkpoint}'",
    ])
    run_training(cfg, work / "run")
    import torch

    state = torch.load(work / "run" / "last.pth", map_location="cpu", weights_only=True)
    keep = ("format", "version", "model", "model_config", "layout", "input_contract", "config", "git_sha")
    buf = io.BytesIO()
    torch.save({k: v for k, v in state.items() if k in keep}, buf)
    write_bytes_atomic(out_path, buf.getvalue())
    return Path(out_path)


@dataclass
class DemoOutputs:
    """What `run_demo` wrote and measured."""

    result: ClipResult
    table: str
    plot: Path
    render: Path
    checkpoint: Path


def run_demo(out_dir: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None, train: bool = False,
             spec: ClipSpec = ClipSpec(), seed: int = 0, train_epochs: int = 8) -> DemoOutputs:
    """The demo: synthetic clip + simulated tracker (PoseFix error statistics) -> refine -> evaluate -> plot.

    Writes under `out_dir`: clip/ (mp4, frames, GT), tracks/ (tracker input), refined/ (refined PoseTrack18),
    overlay.mp4, ap_per_joint.png, table.txt. With `train` a checkpoint is trained first into out_dir/train/.
    """
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if train:
        checkpoint = train_demo_checkpoint(out / "train", out / "checkpoint.pth", epochs=train_epochs, seed=seed)
    checkpoint = Path(checkpoint) if checkpoint is not None else DEMO_CHECKPOINT
    refiner = load_demo_refiner(checkpoint)
    clip = make_clip(out / "clip", spec)
    tracks = simulate_tracks(clip, out / "tracks", TrackerSimSettings.training(), seed=seed)
    render = out / "overlay.mp4"
    result = refine_and_evaluate(clip, tracks, out / "refined", refiner=refiner, render=render)
    table = format_table([("input", result.before), ("refined", result.after)])
    table += f"\nrefined - input AP Total: {result.gain():+.1f}"
    write_bytes_atomic(out / "table.txt", (table + "\n").encode())
    plot = out / "ap_per_joint.png"
    plot_before_after(result.before, result.after, plot)
    return DemoOutputs(result=result, table=table, plot=plot, render=render, checkpoint=checkpoint)


# ---------------------------------------------------------------------------------------------------------------
# the box-only demo: tracker boxes -> initializer -> PoseFix


def simulate_box_tracks(clip: Clip, out_path: str | os.PathLike, *, seed: int, jitter: float = 0.05) -> Path:
    """A box-only tracker's output for the clip as MOTChallenge text (`frame,id,x,y,w,h,conf,-1,-1,-1`, frames
    from 1): the tracker simulator's detections (its default mix: misses, identity switches, fragmentation), each
    with its ground-truth person's box, centre and size jittered by N(0, `jitter`) of the box size."""
    from posefix_video.io.posetrack18 import read_posetrack18
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings, simulate_sequence

    gt = read_posetrack18(clip.gt)
    rng = np.random.default_rng([seed, 17])
    lines = []
    for p in simulate_sequence(gt, TrackerSimSettings(), rng).persons():
        truth = next(g for g in gt.persons_in(p.frame) if g.track_id == p.extra["sim_gt_track_id"])
        x, y, w, h = truth.box
        jx, jy, jw, jh = rng.standard_normal(4) * jitter
        cx, cy = x + w / 2 + jx * w, y + h / 2 + jy * h
        w, h = w * (1 + jw), h * (1 + jh)
        lines.append(f"{p.frame + 1},{p.track_id + 1},{cx - w / 2:.2f},{cy - h / 2:.2f},{w:.2f},{h:.2f},"
                     f"{p.person_score:.3f},-1,-1,-1")
    write_bytes_atomic(out_path, ("\n".join(lines) + "\n").encode())
    return Path(out_path)


@dataclass
class BoxDemoOutputs:
    """What `run_box_demo` measured: PoseTrack results of the initializer alone and after PoseFix."""

    initializer: Any
    refined: Any
    table: str
    boxes: Path

    def gain(self, group: str = "Total") -> float:
        """Initializer + PoseFix minus initializer alone, AP points."""
        return float(self.refined.groups("ap")[group] - self.initializer.groups("ap")[group])


def run_box_demo(out_dir: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                 initializer: str | os.PathLike | None = None, spec: ClipSpec = ClipSpec(),
                 seed: int = 0) -> BoxDemoOutputs:
    """Box-only demo: synthetic clip -> simulated box tracker (MOT txt) -> initializer poses -> PoseFix, both scored.

    Writes under `out_dir`: clip/, boxes/<video>.txt (the tracker's boxes), initializer/<video>.json (poses of the
    initializer alone, `refine_video(..., refine=False)`), refined/<video>.json (initializer + PoseFix) and
    table.txt.
    """
    from posefix_video.eval import evaluate_posetrack
    from posefix_video.video.initial_poses import load_initializer
    from posefix_video.video.refine_video import refine_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    init = load_initializer(initializer if initializer is not None else DEMO_INITIALIZER, device="cpu")
    refiner = load_demo_refiner(checkpoint if checkpoint is not None else DEMO_CHECKPOINT)
    clip = make_clip(out / "clip", spec)
    boxes = simulate_box_tracks(clip, out / "boxes" / f"{clip.gt.stem}.txt", seed=seed)
    results = {}
    for name, kwargs in (("initializer", {"refine": False}), ("refined", {"refiner": refiner})):
        path = out / name / clip.gt.name
        path.parent.mkdir(parents=True, exist_ok=True)
        refine_video(clip.video, boxes, out=path, initializer=init, frame_base=1, seq_name=clip.gt.stem,
                     device="cpu", **kwargs)
        results[name] = evaluate_posetrack([clip.gt], [path], tracking=True)
    table = format_table([("initializer", results["initializer"]), ("+ PoseFix", results["refined"])])
    res = BoxDemoOutputs(initializer=results["initializer"], refined=results["refined"], table=table, boxes=boxes)
    res.table += f"\n+ PoseFix - initializer AP Total: {res.gain():+.1f}"
    write_bytes_atomic(out / "table.txt", (res.table + "\n").encode())
    return res
