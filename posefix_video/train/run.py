"""A training run from a `TrainConfig`: model, criterion, data, validation and `fit` wired together
(`run_training`, the body of `python -m pipelines.train`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from posefix_video.errors import CheckpointError, ConfigError, PosefixError
from posefix_video.train.engine import Criterion, Prepare, evaluate, fit
from posefix_video.train.loader import guard_loader, worker_loader_options
from posefix_video.train.runtime import DistInfo, init_distributed, seed_everything

logger = logging.getLogger(__name__)




# ---------------------------------------------------------------------------------------------------------------
# PoseFix wiring: TrainConfig -> model, criterion, data, fit


def posefix_prepare(*, sigma: float, ignored: tuple[int, ...], channels_last: bool, contract: Any = None) -> Prepare:
    """Batch -> (network input, (target cells, target valid)), built on the device.

    The batch is a dict as the training datasets return it, collated:
        image: (B, H, W, 3) uint8 RGB crops (or (B, 3, H, W));
        target_keypoints: (B, J, 2) ground truth in crop px; target_valid: (B, J) bool;
        input_keypoints: (B, J, 2) synthesised input pose in crop px; input_valid: (B, J) bool.
    Only uint8 crops and small float arrays cross the worker/IPC boundary; normalisation and heatmap rendering
    run on the device (performance.md A5), as the model's input contract says (`contract`, net/contract.py; None:
    ours), through the same `make_network_input` the refiner uses.
    """
    from posefix_video.net.heatmaps import crop_to_cells, make_network_input

    def prepare(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, tuple]:
        image = batch["image"].to(device, non_blocking=True)
        if image.shape[-1] == 3 and image.shape[1] != 3:
            image = image.permute(0, 3, 1, 2)
        x = make_network_input(image, batch["input_keypoints"].to(device, non_blocking=True),
                               batch["input_valid"].to(device, non_blocking=True), None if contract else sigma,
                               ignored, contract=contract)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = crop_to_cells(batch["target_keypoints"].to(device, non_blocking=True).float())
        return x, (target, batch["target_valid"].to(device, non_blocking=True))

    return prepare


def topdown_prepare(*, channels_last: bool) -> Prepare:
    """Batch -> (normalised image, (target cells, target valid)) for a top-down estimator (model.pose_input false).

    The same batch as `posefix_prepare` (the crops are cut from the ground-truth box with the same augmentation);
    only the image goes into the network: RGB, /255, ImageNet mean/std, as our own checkpoints' input contract
    says (`heatmaps.make_network_input` with no joint, so both model kinds share one normalisation).
    """
    from posefix_video.net.heatmaps import crop_to_cells, make_network_input

    def prepare(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, tuple]:
        image = batch["image"].to(device, non_blocking=True)
        if image.shape[-1] == 3 and image.shape[1] != 3:
            image = image.permute(0, 3, 1, 2)
        b = image.shape[0]
        x = make_network_input(image, image.new_zeros(b, 0, 2, dtype=torch.float32),
                               image.new_zeros(b, 0, dtype=torch.bool), 1.0)  # (B, 3, H, W)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = crop_to_cells(batch["target_keypoints"].to(device, non_blocking=True).float())
        return x, (target, batch["target_valid"].to(device, non_blocking=True))

    return prepare


def topdown_contract(model_cfg: Any, loss_kind: str = "heatmap_mse") -> dict[str, Any]:
    """The `input_contract` entry of a top-down checkpoint we train (net/contract.py), as TopDownEstimator reads it.

    Our crops are RGB, ImageNet mean/std in 0-255 units (`InputContract.ours`, what `topdown_prepare` feeds), and
    they are cut as Microsoft's SimpleBaseline cuts them (box centre x + w/2, aspect fix, x1.25, box centre -> crop
    centre W/2, cell i <-> crop pixel 4i), trained on Gaussian MSE targets: decoder "argmax_msra" (argmax +
    quarter-cell shift, mapped back through the same crop). A top-down model trained with the soft-argmax losses
    (loss.kind posefix, kept for comparison) says "soft_argmax", which the top-down estimator refuses.
    """
    from posefix_video.net.contract import InputContract

    decoder = "argmax_msra" if loss_kind == "heatmap_mse" else "soft_argmax"
    return InputContract.ours(model_cfg).replace(decoder=decoder).to_dict()


def init_weights(model: nn.Module, model_cfg: Any, *, imagenet: str = "", checkpoint: str = "") -> str:
    """Initialises `model` from a previous checkpoint (every weight reused) or ImageNet weights.

    A PoseFix checkpoint may start a top-down model (model.pose_input false): conv1's image kernels and every later
    weight but the output layer are reused.

    A COCO checkpoint initialises a PoseTrack model: the layouts differ but every tensor has the same shape (17
    slots), so slots 1-2 (COCO eyes) start as head_bottom/head_top and learn them. Everything else in the model
    config must match.

    Returns:
        What was done, for the log.
    """
    from posefix_video.net.checkpoint import load_checkpoint
    from posefix_video.net.weights import load_imagenet_weights

    if checkpoint:
        src_cfg, state, _ = load_checkpoint(checkpoint)
        diffs = [f for f in ("depth", "input_size", "width", "deconv_channels", "num_deconv")
                 if getattr(src_cfg, f) != getattr(model_cfg, f)]
        if model_cfg.pose_input and not src_cfg.pose_input:  # a top-down model has no pose kernels to give
            diffs.append("pose_input")
        if diffs:
            what = ", ".join(f"{f} {getattr(src_cfg, f)} vs {getattr(model_cfg, f)}" for f in diffs)
            raise CheckpointError(f"{checkpoint}: init.checkpoint was trained with a different network ({what})")
        if src_cfg.pose_input and not model_cfg.pose_input:
            # a PoseFix model starts a top-down one: the stem's image kernels and every later weight are reused;
            # the output layer, trained to read pose-conditioned features, starts afresh (as the reference head)
            state = {**state, "conv1.weight": state["conv1.weight"][:, :3]}
            fresh = model.state_dict()
            state.update({k: fresh[k] for k in ("final.weight", "final.bias")})
            model.load_state_dict(state)
            return f"PoseFix weights from {checkpoint} (image kernels of conv1, all but the output layer)"
        model.load_state_dict(state)
        return f"all weights from {checkpoint} (layout {src_cfg.layout} -> {model_cfg.layout})"
    if imagenet:
        loaded = load_imagenet_weights(model, imagenet)
        return f"{len(loaded)} backbone tensors from ImageNet weights {imagenet}"
    return "random initialisation"


def init_contract(model_cfg: Any, checkpoint: str = "") -> Any:
    """The input contract a training run feeds and writes: the init checkpoint's (fine-tuning an imported model
    keeps its channel order, mean/std and heatmap peak; the layout becomes the run's), else ours.

    Raises:
        ConfigError: the run's model.heatmap_sigma / model.bn_eps differ from the init checkpoint's contract (the
            message names the overrides to add).
    """
    from posefix_video.net.checkpoint import checkpoint_contract, load_checkpoint
    from posefix_video.net.contract import InputContract

    if not checkpoint:
        return InputContract.ours(model_cfg)
    src_cfg, _, ckpt = load_checkpoint(checkpoint)
    contract = checkpoint_contract(ckpt, src_cfg, checkpoint).replace(layout=model_cfg.layout)
    fixes = []
    if contract.sigma != model_cfg.input_sigma:
        fixes.append(f"model.heatmap_sigma={contract.sigma:g}")
    if contract.bn_eps != model_cfg.bn_eps:
        fixes.append(f"model.bn_eps={contract.bn_eps:g}")
    if fixes:
        raise ConfigError(f"init.checkpoint {checkpoint} was trained with another input-pose sigma or BN epsilon "
                          f"than this config's model; add the overrides {' '.join(fixes)}")
    return contract


def run_training(cfg: Any, out_dir: str | os.PathLike, *, resume: bool = False) -> dict[str, Any]:
    """Runs a TrainConfig end to end (one process, or one of torchrun's processes).

    Writes config.yaml (the merged config), metrics.jsonl, last.pth / best.pth (checkpoint.py format plus the
    training state, loadable by `Refiner.from_checkpoint`). config.yaml is written once the model, the training data
    and the validation inputs are built, so a run that fails on its inputs leaves no output behind.
    """
    from posefix_video.config import dump_config, to_dict
    from posefix_video.keypoints import get_layout
    from posefix_video.net.model import build_model
    from posefix_video.train.losses import build_criterion, conv_l2_penalty

    info = init_distributed(cfg.runtime.device)
    out = Path(out_dir)
    if cfg.runtime.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.runtime.seed)

    layout = get_layout(cfg.model.layout)
    model = build_model(cfg.model)
    logger.info("init: %s", init_weights(model, cfg.model, imagenet=cfg.init.imagenet,
                                         checkpoint=cfg.init.checkpoint))
    use_cuda = info.device.type == "cuda"
    channels_last = cfg.runtime.channels_last and use_cuda
    model = model.to(info.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    bf16 = cfg.runtime.precision == "bf16" or (cfg.runtime.precision == "auto" and use_cuda)
    criterion = build_criterion(cfg.loss_kind, joint_mask=torch.as_tensor(layout.used_mask),
                                target_sigma=cfg.loss.target_sigma).to(info.device)
    if cfg.model.pose_input:
        contract = init_contract(cfg.model, cfg.init.checkpoint)
        prepare = posefix_prepare(sigma=cfg.model.input_sigma, ignored=tuple(layout.ignored),
                                  channels_last=channels_last, contract=contract)
    else:
        prepare = topdown_prepare(channels_last=channels_last)
    train_set = build_dataset(cfg, split="train")
    validate = build_validation(cfg, criterion, prepare, info)
    if info.is_main:
        # only now that the data and validation inputs are known to be good: a run that fails on bad input
        # leaves no config.yaml (nor folder) behind that looks like a started run
        out.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out / "config.yaml")
    wd, mode = cfg.optim.weight_decay, cfg.optim.weight_decay_mode
    model_cfg = cfg.model

    def model_entry(bare: nn.Module) -> dict[str, Any]:
        # the entries checkpoint.save_checkpoint writes, so Refiner.from_checkpoint reads our training files
        from posefix_video.net.checkpoint import FORMAT, VERSION
        weights = {k: v.detach().cpu() for k, v in bare.state_dict().items()}
        entry = {"format": FORMAT, "version": VERSION, "model": weights, "model_config": to_dict(model_cfg),
                 "layout": model_cfg.layout}
        if not model_cfg.pose_input:
            entry["input_contract"] = topdown_contract(model_cfg, cfg.loss_kind)
        else:  # fine-tuning an imported model keeps its contract (init_contract)
            entry["input_contract"] = contract.to_dict()
        return entry

    h, w = cfg.model.input_size
    example = torch.zeros(1, model.in_channels, h, w)
    return fit(model=model, criterion=criterion, train_set=train_set, prepare=prepare, out_dir=out, dist_info=info,
               epochs=cfg.schedule.epochs, batch_size=cfg.data.batch_size, lr=cfg.optim.lr, betas=cfg.optim.betas,
               eps=cfg.optim.eps, adam_weight_decay=wd if mode == "adam" else 0.0,
               milestones=cfg.schedule.milestones, gamma=cfg.schedule.gamma, seed=cfg.runtime.seed,
               num_workers=cfg.data.num_workers, autocast_dtype=torch.bfloat16 if bf16 else None,
               extra_loss=(lambda m: conv_l2_penalty(m, wd)) if mode == "l2_conv" and wd > 0 else None,
               grad_clip=cfg.optim.grad_clip, sync_bn=cfg.runtime.sync_bn, model_entry=model_entry,
               config=to_dict(cfg), validate=validate,
               validate_every=cfg.validation.every, resume=resume, log_every=cfg.runtime.log_every,
               keep_every=cfg.runtime.keep_every, flops_example=example if use_cuda else None)


def build_dataset(cfg: Any, *, split: str) -> Dataset:
    """The COCO / PoseTrack training or validation dataset of `cfg.data` (posefix_video.train.data)."""
    try:
        from posefix_video.train import data as data_module
    except ImportError:
        raise PosefixError("posefix_video.train.data (the training datasets) is not available in this installation; "
                           "training needs it") from None
    builder = getattr(data_module, "build_dataset", None)
    if builder is None:
        raise PosefixError("posefix_video.train.data has no build_dataset(cfg, split=...) to build the training "
                           "data from")
    return builder(cfg, split=split)


def build_validation(cfg: Any, criterion: Criterion, prepare: Prepare,
                     info: DistInfo) -> Callable[[nn.Module, Path, int], dict[str, float]] | None:
    """The per-epoch validation callable of `cfg.validation` (None when disabled or without validation data).

    metric "loss": mean validation loss on the val split (score = -loss). "coco_ap" / "posetrack_ap": refine
    data.val_inputs with `Refiner.from_checkpoint(last.pth)` (exactly the inference path) and score them with
    COCO OKS AP / poseval AP Total (validation.py). Validation inputs are checked here, before training starts.
    `fit` calls it on rank 0 only, so it reduces nothing across processes.
    """
    if cfg.validation.every <= 0 or not cfg.data.val_ann:
        return None
    metric = cfg.validation.metric
    if not cfg.model.pose_input:
        # AP validation refines tracker inputs with a Refiner; a top-down model is validated by its loss
        if metric not in ("auto", "loss"):
            raise ConfigError(f"validation.metric {metric} refines poses with PoseFix; a top-down model "
                              "(model.pose_input false) is validated with validation.metric loss")
        metric = "loss"
    if metric == "auto":
        metric = "coco_ap" if cfg.data.kind == "coco" and cfg.model.layout == "coco17" else "posetrack_ap"
    if metric == "loss":
        val_set = build_dataset(cfg, split="val")
        loader = DataLoader(val_set, batch_size=max(1, cfg.data.batch_size // info.world_size),
                            num_workers=cfg.data.num_workers, **worker_loader_options(cfg.data.num_workers, val_set))

        def validate_loss(model: nn.Module, out_dir: Path, epoch: int) -> dict[str, float]:
            terms = evaluate(model, criterion, guard_loader(loader, "validation data"), device=info.device,
                             prepare=prepare, reduce=False)
            return {**terms, "score": -terms["loss"]}

        return validate_loss
    from posefix_video.train.validation import build_ap_validation

    return build_ap_validation(cfg, metric, info.device)
