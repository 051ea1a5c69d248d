"""The training run config: frozen dataclasses read from YAML by `config.load_config` (strict keys).

A run config nests the network (`config.ModelConfig`, embedded in every checkpoint) and the training sections:
data, optimiser, schedule, initialisation, validation and runtime. `load_train_config(path, overrides)` reads a
recipe such as `configs/coco_r152_384x288.yaml` with `key=value` overrides (`optim.lr=1e-4`); the merged config is
saved beside the outputs as `config.yaml` so a run can be repeated exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from posefix_video.config import ModelConfig, load_config
from posefix_video.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Training and validation data.

    Attributes:
        kind: "coco" (COCO-format keypoint file + image folder; PoseTrack18 converted to COCO format uses this too)
            or "posetrack" (a folder of per-video PoseTrack18 JSON files + the image root).
        train_ann: training annotations (COCO: one JSON file; posetrack: a folder of per-video JSON files).
        train_images: image root that the annotation `file_name`s are relative to.
        val_ann: validation annotations (same kinds as train_ann); empty disables validation.
        val_images: image root of the validation annotations.
        val_inputs: validation input poses to refine (COCO results JSON, or a folder of PoseTrack18 files with the
            GT files' names); empty means poses synthesised once from the ground truth with the PoseFix error
            statistics (seeded by runtime.seed, kept in <out>/val_inputs_synth/; validation.py).
        train_inputs: cached estimator results on the training images (the reference's `test_on_trainset`), used for
            unlabeled joints; empty means unlabeled joints are absent from the input (documented shift).
        batch_size: global batch (all processes together); each process gets batch_size / world_size.
        num_workers: DataLoader workers per process.
        scale_factor: scale augmentation s = clip(1 + scale_factor * N(0,1), 1 - scale_factor, 1 + scale_factor).
        rotation_factor: rotation augmentation r = clip(rotation_factor * N(0,1), -2 rf, 2 rf) degrees.
        rotation_prob: probability of rotating at all.
        flip_prob: probability of a horizontal flip.
        image_bank: folder of a decode-once image bank of the train and val images (`python -m
            pipelines.build_image_bank`; docs/training_data.md); empty: decode each sample's JPEG.
        blank_inputs: probability per training person that input joints are blanked as trackers blank them
            (confidence, whole limbs, random; augment.blank_like_trackers). 0: the reference's synthesis.
        low_res: probability per training crop of the low-resolution augmentation (persons 30-100 px tall).
    """

    kind: Literal["coco", "posetrack"] = "coco"
    train_ann: str = ""
    train_images: str = ""
    val_ann: str = ""
    val_images: str = ""
    val_inputs: str = ""
    train_inputs: str = ""
    batch_size: int = 32
    num_workers: int = 8
    scale_factor: float = 0.3
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5
    image_bank: str = ""
    blank_inputs: float = 0.0
    low_res: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        for name in ("rotation_prob", "flip_prob", "blank_inputs", "low_res"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"data.{name} must lie in [0, 1], got {p}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam and weight decay.

    Attributes:
        lr: base learning rate for the global batch (5e-4 for 32 in the paper); not rescaled automatically.
        betas: Adam betas.
        eps: Adam epsilon (1e-8 as TF's Adam).
        weight_decay: decay strength (1e-5 in the paper).
        weight_decay_mode: "l2_conv" adds weight_decay * sum(w^2) / 2 over convolution kernels to the loss, as the
            reference (slim l2_regularizer; BatchNorm and biases are not decayed); "adam" uses Adam's own
            weight_decay on every parameter (torch semantics: added to the gradient).
        grad_clip: clip the global gradient norm to this value; 0 disables (the reference does not clip).
    """

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-5
    weight_decay_mode: Literal["l2_conv", "adam"] = "l2_conv"
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Epochs and the step schedule (MultiStepLR, milestones in epochs).

    Attributes:
        epochs: total epochs.
        milestones: epochs after which the learning rate is multiplied by `gamma`.
        gamma: the factor (0.1).
    """

    epochs: int = 140
    milestones: tuple[int, ...] = (90, 120)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"schedule.epochs must be at least 1, got {self.epochs}")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"schedule.milestones must be increasing, got {list(self.milestones)}")


@dataclass(frozen=True)
class LossConfig:
    """The training loss (train/losses.py `build_criterion`).

    Attributes:
        kind: "auto" (PoseFix's loss for a PoseFix model, `heatmap_mse` for a top-down one: model.pose_input
            false), "posefix" (softmax cross-entropy + L1 on soft-argmax coordinates) or "heatmap_mse" (Simple
            Baselines: MSE against Gaussian target heatmaps; decoded by argmax + quarter-cell shift).
            docs/training.md gives the measurement behind the top-down default.
        target_sigma: sigma in output cells of the `heatmap_mse` targets (2 as Simple Baselines).
    """

    kind: Literal["auto", "posefix", "heatmap_mse"] = "auto"
    target_sigma: float = 2.0

    def __post_init__(self) -> None:
        if self.target_sigma <= 0:
            raise ConfigError(f"loss.target_sigma must be positive, got {self.target_sigma}")


@dataclass(frozen=True)
class InitConfig:
    """Where the weights start.

    Attributes:
        imagenet: a local torchvision ResNet state dict (.pth) for the backbone (RGB kernel copied into conv1[:, :3]);
            empty means random initialisation.
        checkpoint: a previous PoseFix checkpoint whose every weight is reused (COCO -> PoseTrack fine-tuning);
            overrides `imagenet`. Its model config must match `model` except for `layout`.
    """

    imagenet: str = ""
    checkpoint: str = ""


@dataclass(frozen=True)
class ValidationConfig:
    """Validation during training.

    Attributes:
        every: validate after every this many epochs (and after the last); 0 disables.
        metric: "auto" (COCO OKS AP for data.kind coco with a coco17 layout, PoseTrack AP otherwise),
            "coco_ap", "posetrack_ap" or "loss" (validation loss only; lower is better).
        flip_test: refine with the flip test as at inference.
        max_samples: quick-check cap (0 = all): COCO AP refines and scores only the first images holding this many
            persons; PoseTrack AP only the first this many videos; the loss metric ignores it.
    """

    every: int = 10
    metric: Literal["auto", "coco_ap", "posetrack_ap", "loss"] = "auto"
    flip_test: bool = True
    max_samples: int = 0


@dataclass(frozen=True)
class RuntimeConfig:
    """Device, precision and bookkeeping.

    Attributes:
        device: "auto" (cuda when available), "cuda" or "cpu". Under torchrun each process uses cuda:LOCAL_RANK.
        precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" or "fp32".
        channels_last: NHWC memory format on CUDA.
        sync_bn: convert BatchNorm to SyncBatchNorm under DistributedDataParallel.
        seed: the one seed of the run (initialisation, sampler order, augmentation and synthesis).
        deterministic: torch.use_deterministic_algorithms and no cudnn benchmark (bit-exact resume on CPU).
        log_every: iterations between console/JSON-lines log lines.
        keep_every: also keep `epoch_NNN.pth` every this many epochs (0: only last.pth and best.pth).
    """

    device: Literal["auto", "cuda", "cpu"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    channels_last: bool = True
    sync_bn: bool = False
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    keep_every: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """A complete training run. See configs/*.yaml for the recipes."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    init: InitConfig = field(default_factory=InitConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if any(m >= self.schedule.epochs for m in self.schedule.milestones):
            raise ConfigError(
                f"schedule.milestones {list(self.schedule.milestones)} must lie below schedule.epochs "
                f"{self.schedule.epochs}"
            )
        if self.model.pose_input and self.loss.kind == "heatmap_mse":
            raise ConfigError("loss.kind heatmap_mse is for top-down models (model.pose_input: false); PoseFix "
                              "models train with loss.kind posefix (or auto)")

    @property
    def loss_kind(self) -> str:
        """The loss actually used ("auto" resolved by model.pose_input)."""
        if self.loss.kind != "auto":
            return self.loss.kind
        return "posefix" if self.model.pose_input else "heatmap_mse"


def load_train_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
    """Reads a training recipe (YAML) with `key=value` overrides; unknown keys raise ConfigError naming them."""
    return load_config(TrainConfig, path, overrides)
