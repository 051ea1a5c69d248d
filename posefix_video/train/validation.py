"""AP validation of a refiner during training: refine held-out input poses and score them like a user would.

PoseTrack (`validate_posetrack`): every per-video input prediction file (e.g. the tracker simulator's output,
`make_synthetic track`) is refined on its frames with `refine_video` (the inference path), written to a work folder
and scored against the GT file of the same name with poseval's AP (`eval.evaluate_posetrack`, no tracking).

COCO (`validate_coco`): a COCO keypoint results file is refined on the validation images, written as a results file
and scored with COCO's OKS AP (`eval.evaluate_coco`).

Both return the refined AP as "score" (higher is better) and the AP of the unrefined inputs as "input_ap", so the
metrics log shows what refinement gains. `build_ap_validation` maps a TrainConfig to one of them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posefix_video.atomic import atomic_open
from posefix_video.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

_VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
SYNTH_INPUTS = "val_inputs_synth"  # folder in the run directory for inputs synthesised from the GT


# ---------------------------------------------------------------------------------------------------------------
# PoseTrack


def _network_only(refiner: Any, video: bool) -> dict:
    """Options that measure the network itself (no per-joint safeguard, the input's scores, as the reference's
    evaluation) for a `Refiner`; other refiners (test stubs) take no options."""
    from posefix_video.net.refiner import Refiner

    if not isinstance(refiner, Refiner):
        return {}
    return {"safeguard": False, "scores": "input"} if video else {"safeguard": None}


def find_video_frames(frames_root: str | os.PathLike, gt_file: str | os.PathLike, name: str) -> Path:
    """The frames of video `name`: the folder of the GT's first `file_name` under `frames_root` (the PoseTrack
    image root, as data.val_images), else `<frames_root>/<name>/` or a video file `<frames_root>/<name>.<ext>`.

    Raises:
        InputError: none of these exists (names the GT file and the places tried).
    """
    root = Path(frames_root)
    tried = []
    try:
        with open(gt_file, encoding="utf-8") as f:
            images = json.load(f).get("images") or []
        file_name = images[0].get("file_name") if images and isinstance(images[0], dict) else None
    except (OSError, ValueError, AttributeError):
        file_name = None
    if file_name:
        folder = root / Path(file_name).parent
        if folder.is_dir():
            return folder
        tried.append(str(folder))
    if (root / name).is_dir():
        return root / name
    tried.append(str(root / name))
    for ext in _VIDEO_EXTS:
        if (root / (name + ext)).is_file():
            return root / (name + ext)
    raise InputError(gt_file, f"no frames for video {name} under data.val_images {root} (tried {', '.join(tried)} "
                              f"and {name}.mp4 etc.)")


def posetrack_pairs(gt_dir: str | os.PathLike, inputs_dir: str | os.PathLike,
                    max_videos: int = 0) -> list[tuple[Path, Path]]:
    """(GT file, input file) pairs: every `*.json` of `inputs_dir` with the GT file of the same name.

    Raises:
        InputError: a folder is missing or empty, or an input file has no GT file of the same name.
    """
    gt_dir, inputs_dir = Path(gt_dir), Path(inputs_dir)
    if not gt_dir.is_dir():
        raise InputError(gt_dir, "data.val_ann: PoseTrack GT folder not found")
    if not inputs_dir.is_dir():
        raise InputError(inputs_dir, "data.val_inputs: folder of per-video input prediction files not found")
    inputs = sorted(inputs_dir.glob("*.json"))
    if not inputs:
        raise InputError(inputs_dir, "data.val_inputs: no *.json prediction files in this folder")
    if max_videos > 0:
        inputs = inputs[:max_videos]
    pairs = []
    for p in inputs:
        gt = gt_dir / p.name
        if not gt.is_file():
            raise InputError(p, f"no GT file of the same name in data.val_ann {gt_dir}")
        pairs.append((gt, p))
    return pairs


def validate_posetrack(refiner: Any, pairs: list[tuple[Path, Path]], frames_root: str | os.PathLike, *,
                       work_dir: str | os.PathLike | None = None, batch_size: int = 64,
                       input_ap: float | None = None) -> dict[str, float]:
    """Refines every input file on its video's frames and scores the outputs with poseval's AP.

    Args:
        refiner: a `Refiner` (or anything with `.layout` and `.refine_records`, as `refine_video` takes).
        pairs: (GT file, input prediction file) per video, from `posetrack_pairs`.
        frames_root: the image root (data.val_images); see `find_video_frames`.
        work_dir: where the temporary refined files go (a fresh temporary folder inside it, removed afterwards).
        batch_size: persons per refiner call.
        input_ap: the AP Total of the unrefined inputs, when already known (computed otherwise).

    Returns:
        {"ap_total", "ap_head", ..., "ap_ankl" (percent, refined), "input_ap" (percent), "score" (= ap_total)}.
    """
    from posefix_video.eval.posetrack import evaluate_posetrack
    from posefix_video.video.refine_video import refine_video

    gts = [g for g, _ in pairs]
    if input_ap is None:
        input_ap = evaluate_posetrack(gts, [p for _, p in pairs], tracking=False).groups("ap")["Total"]
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="val_posetrack_", dir=work_dir) as tmp:
        outs = []
        for gt, pred in pairs:
            frames = find_video_frames(frames_root, gt, pred.stem)
            out = Path(tmp) / pred.name
            refine_video(frames, pred, out=out, refiner=refiner, batch_size=batch_size, decoder="pyav",
                         **_network_only(refiner, video=True))
            outs.append(out)
        result = evaluate_posetrack(gts, outs, tracking=False)
    groups = result.groups("ap")
    metrics = {f"ap_{k.lower()}": v for k, v in groups.items()}
    return {**metrics, "input_ap": float(input_ap), "score": metrics["ap_total"]}


# ---------------------------------------------------------------------------------------------------------------
# COCO


def load_coco_inputs(results_json: str | os.PathLike, gt: dict, num_joints: int,
                     max_samples: int = 0) -> dict[Any, list[dict]]:
    """COCO keypoint results grouped by image_id (input order kept), on images of the GT only.

    Raises:
        InputError: not a results list, a record without image_id/keypoints/score, wrong keypoint count, or an
            image_id missing from the GT (names the file and the record).
    """
    try:
        with open(results_json, encoding="utf-8") as f:
            results = json.load(f)
    except FileNotFoundError:
        raise InputError(results_json, "data.val_inputs: COCO results file not found") from None
    except ValueError as e:
        raise InputError(results_json, f"not valid JSON ({e})") from None
    if not isinstance(results, list):
        raise InputError(results_json, "expected a COCO keypoint results list")
    image_ids = {img["id"] for img in gt["images"]}
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, dict) or not {"image_id", "keypoints", "score"} <= r.keys():
            raise InputError(results_json, "a result needs image_id, keypoints and score", where)
        if len(r["keypoints"]) != 3 * num_joints:
            raise InputError(results_json, f"{len(r['keypoints'])} keypoint numbers, expected {3 * num_joints}",
                             where)
        if r["image_id"] not in image_ids:
            raise InputError(results_json, f"image_id {r['image_id']} is not in the validation GT", where)
        by_image[r["image_id"]].append(r)
    if max_samples > 0:
        capped, n = {}, 0
        for k, rs in by_image.items():
            if n >= max_samples:
                break
            capped[k] = rs
            n += len(rs)
        by_image = capped
    return dict(by_image)


def refine_coco_results(refiner: Any, by_image: dict[Any, list[dict]], image_paths: dict[Any, Path], *,
                        images_per_call: int = 16) -> list[dict]:
    """Refined copies of COCO results: each joint with a score > 0 moves, scores are kept (as the refiner does).

    Up to `images_per_call` images are decoded at a time (bounded memory) and those of equal size are refined in
    one `refine_arrays` call, so persons of several images share a forward pass. Output order: by call, then input
    order within a call.
    """
    J = refiner.layout.num_joints
    by_size: dict[tuple[int, int], list[tuple[Any, np.ndarray]]] = defaultdict(list)
    out: list[dict] = []

    def flush(items: list[tuple[Any, np.ndarray]]) -> None:
        frames = np.stack([im for _, im in items])
        recs = [(f, r) for f, (iid, _) in enumerate(items) for r in by_image[iid]]
        kp = np.array([r["keypoints"] for _, r in recs], dtype=np.float64).reshape(-1, J, 3)
        present = kp[..., 2] > 0
        res = refiner.refine_arrays(frames, np.array([f for f, _ in recs]), kp[..., :2], present,
                                    **_network_only(refiner, video=False))
        for (_, r), xy in zip(recs, res.keypoints):
            new = np.array(r["keypoints"], dtype=np.float64).reshape(J, 3)
            new[:, :2] = np.where(new[:, 2:3] > 0, xy, new[:, :2])
            out.append({**r, "keypoints": [float(v) for v in new.reshape(-1)]})

    for iid in by_image:
        path = image_paths[iid]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(path, f"validation image {iid} is missing or not a readable image")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        by_size[img.shape[:2]].append((iid, img))
        if sum(len(g) for g in by_size.values()) >= images_per_call:  # bounded memory whatever the size mix
            for group in by_size.values():
                flush(group)
            by_size.clear()
    for group in by_size.values():
        flush(group)
    return out


def validate_coco(refiner: Any, gt_json: str | os.PathLike, images_dir: str | os.PathLike,
                  results_json: str | os.PathLike, *, work_dir: str | os.PathLike | None = None,
                  max_samples: int = 0, input_ap: float | None = None) -> dict[str, float]:
    """Refines a COCO keypoint results file on the validation images and scores it with COCO OKS AP.

    Args:
        refiner: a `Refiner` (layout coco17).
        gt_json: COCO keypoint GT (data.val_ann); images_dir: its image folder (data.val_images).
        results_json: input poses (data.val_inputs), COCO keypoint results format.
        work_dir: where the temporary results files go (removed afterwards).
        max_samples: refine and score only the first images holding this many persons (0 = all).
        input_ap: AP of the unrefined inputs when already known.

    Returns:
        {"ap", "ap50", "ap75", "ar" (fractions as COCO prints them, refined), "input_ap", "score" (= ap)}.
    """
    from posefix_video.eval.coco import evaluate_coco

    try:
        with open(gt_json, encoding="utf-8") as f:
            gt = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(gt_json, f"data.val_ann: not a readable COCO GT file ({e})") from None
    if not isinstance(gt, dict) or "images" not in gt or "annotations" not in gt:
        raise InputError(gt_json, "data.val_ann: not a COCO GT file (needs images and annotations)")
    by_image = load_coco_inputs(results_json, gt, refiner.layout.num_joints, max_samples)
    if not by_image:
        raise InputError(results_json, "data.val_inputs: no results to refine")
    if max_samples > 0:  # score only the images refined
        keep = set(by_image)
        gt = {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
              "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    paths = {im["id"]: Path(images_dir) / im["file_name"] for im in gt["images"] if im["id"] in by_image}
    refined = refine_coco_results(refiner, by_image, paths)
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="val_coco_", dir=work_dir) as tmp:
        gt_path, inp_path, out_path = Path(tmp) / "gt.json", Path(tmp) / "inputs.json", Path(tmp) / "refined.json"
        for path, obj in ((gt_path, gt), (inp_path, [r for rs in by_image.values() for r in rs]),
                          (out_path, refined)):
            with atomic_open(path, "w") as f:
                json.dump(obj, f)
        if input_ap is None:
            input_ap = evaluate_coco(gt_path, inp_path)["AP"]
        stats = evaluate_coco(gt_path, out_path)
    metrics = {"ap": stats["AP"], "ap50": stats["AP50"], "ap75": stats["AP75"], "ar": stats["AR"]}
    return {**metrics, "input_ap": float(input_ap), "score": metrics["ap"]}


# ---------------------------------------------------------------------------------------------------------------
# inputs synthesised from the ground truth (data.val_inputs empty)


def synthesize_posetrack_inputs(gt_files: list[Path], out_dir: str | os.PathLike, seed: int) -> Path:
    """Per-video input files made from the GT with the PoseFix error synthesis only (the tracker simulator's
    "training" preset: no drift, misses or id switches), one per GT file, same names, into `out_dir`."""
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings, simulate_files

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    simulate_files(list(gt_files), out, TrackerSimSettings.training(), seed)
    return out


def synthesize_coco_inputs(gt_json: str | os.PathLike, images_dir: str | os.PathLike, layout: Any,
                           seed: int) -> list[dict]:
    """COCO keypoint results made from the GT with the PoseFix error synthesis (frame pixels, one batched call).

    Every labeled person becomes one result with score 1; synthesised joints get v = 1, zeroed ones (0, 0, 0).
    """
    from posefix_video.synthesis import synthesize_poses
    from posefix_video.train.data.coco import load_coco_persons

    persons = [p for p in load_coco_persons(gt_json, images_dir, layout) if p.valid.any()]
    if not persons:
        raise InputError(gt_json, "data.val_ann: no labeled person to synthesise validation inputs from")
    J = layout.num_joints
    M = max(p.near.shape[0] for p in persons)
    near = np.zeros((len(persons), M, J, 2))
    near_valid = np.zeros((len(persons), M, J), dtype=bool)
    for k, p in enumerate(persons):
        near[k, :p.near.shape[0]], near_valid[k, :p.near.shape[0]] = p.near, p.near_valid
    res = synthesize_poses(np.stack([p.keypoints for p in persons]), np.stack([p.valid for p in persons]), near,
                           near_valid, np.array([p.box[2] * p.box[3] for p in persons]),
                           np.array([p.overlap for p in persons]), layout, np.random.default_rng([seed, 8]))
    out = []
    for p, kp, ok in zip(persons, res.keypoints, res.valid):
        trip = np.concatenate([np.where(ok[:, None], kp, 0.0), ok[:, None].astype(np.float64)], axis=1)
        out.append({"image_id": p.image_id, "category_id": 1, "keypoints": [float(v) for v in trip.reshape(-1)],
                    "score": 1.0})
    return out


# ---------------------------------------------------------------------------------------------------------------
# TrainConfig -> validation callable


def build_ap_validation(cfg: Any, metric: str, device: Any) -> Callable[[Any, Path, int], dict[str, float]]:
    """The per-epoch AP validation of `cfg` ("coco_ap" or "posetrack_ap"): `(model, out_dir, epoch) -> metrics`.

    The inputs are checked now, before training starts. Each call builds a Refiner from `out_dir/last.pth` (the
    checkpoint just written, read exactly as at inference) with `cfg.validation.flip_test`. The input AP is
    computed on the first call and reused. With data.val_inputs empty, inputs are synthesised from the GT on the
    first call (seeded by runtime.seed) into `out_dir/val_inputs_synth/` and reused (also by a resumed run).

    Raises:
        ConfigError: the metric does not fit the model layout.
        InputError: a validation file or folder is missing.
    """
    from posefix_video.keypoints import get_layout
    from posefix_video.net.refiner import Refiner

    d, v = cfg.data, cfg.validation
    if metric == "coco_ap" and cfg.model.layout != "coco17":
        raise ConfigError(f"validation.metric coco_ap needs model.layout coco17, got {cfg.model.layout}")
    if metric == "posetrack_ap" and cfg.model.layout != "posetrack18":
        raise ConfigError(f"validation.metric posetrack_ap needs model.layout posetrack18, got {cfg.model.layout}")
    cache: dict[str, float] = {}

    def refiner_of(out_dir: Path) -> Any:
        return Refiner.from_checkpoint(out_dir / "last.pth", device=device, flip_test=v.flip_test,
                                       precision="fp32" if str(device).startswith("cpu") else "auto",
                                       batch_size=2 * max(1, d.batch_size))

    if metric == "posetrack_ap":
        if d.val_inputs:
            pairs = posetrack_pairs(d.val_ann, d.val_inputs, max_videos=v.max_samples)
        else:
            gts = sorted(Path(d.val_ann).glob("*.json")) if Path(d.val_ann).is_dir() else []
            if not gts:
                raise InputError(d.val_ann, "data.val_ann: PoseTrack GT folder not found or without *.json files")
            gts = gts[:v.max_samples] if v.max_samples > 0 else gts
            pairs = [(g, Path(SYNTH_INPUTS) / g.name) for g in gts]  # relative to the run folder, made lazily
        for gt, _ in pairs:
            find_video_frames(d.val_images, gt, gt.stem)

        def run_posetrack(model: Any, out_dir: Path, epoch: int) -> dict[str, float]:
            use = pairs
            if not d.val_inputs:
                folder = out_dir / SYNTH_INPUTS
                if not all((folder / g.name).is_file() for g, _ in pairs):
                    synthesize_posetrack_inputs([g for g, _ in pairs], folder, cfg.runtime.seed)
                use = [(g, folder / g.name) for g, _ in pairs]
            m = validate_posetrack(refiner_of(out_dir), use, d.val_images, work_dir=out_dir,
                                   batch_size=d.batch_size, input_ap=cache.get("input_ap"))
            cache["input_ap"] = m["input_ap"]
            return m

        return run_posetrack
    if metric != "coco_ap":
        raise ConfigError(f"unknown validation.metric {metric!r}")
    for path, what in ((d.val_ann, "data.val_ann"), (d.val_inputs, "data.val_inputs")):
        if path and not Path(path).is_file():
            raise InputError(path, f"{what}: file not found")
    if not Path(d.val_images).is_dir():
        raise InputError(d.val_images, "data.val_images: image folder not found")

    def run_coco(model: Any, out_dir: Path, epoch: int) -> dict[str, float]:
        inputs = d.val_inputs
        if not inputs:
            inputs = out_dir / SYNTH_INPUTS / "coco_results.json"
            if not inputs.is_file():
                results = synthesize_coco_inputs(d.val_ann, d.val_images, get_layout(cfg.model.layout),
                                                 cfg.runtime.seed)
                inputs.parent.mkdir(parents=True, exist_ok=True)
                with atomic_open(inputs, "w") as f:
                    json.dump(results, f)
        m = validate_coco(refiner_of(out_dir), d.val_ann, d.val_images, inputs, work_dir=out_dir,
                          max_samples=v.max_samples, input_ap=cache.get("input_ap"))
        cache["input_ap"] = m["input_ap"]
        return m

    return run_coco
