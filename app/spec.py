"""JobSpec: the validated contract of a job, shared by the API, the CLI and the trainer.

Static checks live on the model (types, ranges, unknown fields); `check_spec` adds the
checks that need the dataset or the disk, so a job that cannot train is refused at
submit time instead of failing on a worker minutes later.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.config import Settings
from app.datasets import Catalog, DatasetError, load_catalog, split_indices, trainable_classes

Loss = Literal["contrastive", "triplet", "circle", "multisimilarity", "ntxent"]
Miner = Literal["none", "semihard", "hard", "all", "multisimilarity"]

# Extra constructor arguments each loss accepts through `loss_params`, with their types.
# Explicit so a typo is refused at submit time rather than crashing a worker.
LOSS_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "contrastive": {"pos_margin": (int, float)},
    "triplet": {"swap": bool, "smooth_loss": bool},
    "circle": {"gamma": (int, float)},
    "multisimilarity": {"alpha": (int, float), "beta": (int, float), "base": (int, float)},
    "ntxent": {"temperature": (int, float)},
}
# Losses whose behaviour the `margin` field sets (the others ignore it, and the job log says so).
MARGIN_LOSSES = {"contrastive", "triplet", "circle"}
PRETRAINED_FILES = {"resnet18": "resnet18-f37072fd.pth"}

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("", max_length=200, description="Shown in the dashboard; generated when empty.")
    dataset: Literal["digits", "mnist5k", "imagefolder"] = Field("digits", description="Bundled set or a class-per-folder image folder.")
    dataset_path: str | None = Field(None, max_length=4096, description="Image folder inside EMBEDLAB_DATA_ROOTS (imagefolder only).")
    split: Literal["classes", "samples"] = Field("classes", description="Hold out classes (unseen at training) or samples of every class.")
    val_fraction: float = Field(0.5, gt=0, lt=1, description="Fraction of classes or samples held out for validation.")
    split_seed: int = Field(0, description="Seed of the `samples` split; independent of the training seed.")
    backbone: Literal["cnn", "resnet18"] = Field("cnn", description="Small conv net, or torchvision's ResNet-18.")
    pretrained: bool = Field(False, description="Start from ImageNet weights (only when present on disk).")
    embedding_dim: int = Field(128, ge=2, le=4096, description="Size of the embedding vector.")
    normalize: bool = Field(True, description="L2-normalise embeddings (distances on the unit sphere).")
    image_size: int | None = Field(None, ge=8, le=512, description="Resize images to this square size; native size when empty.")
    loss: Loss = Field("triplet", description="pytorch-metric-learning loss.")
    margin: float = Field(0.2, ge=0, le=100, allow_inf_nan=False, description="Triplet margin, contrastive negative margin, circle m.")
    loss_params: dict[str, Any] = Field(default_factory=dict, description="Other constructor arguments of the loss.")
    miner: Miner = Field("semihard", description="Which tuples of a batch the loss sees.")
    classes_per_batch: int = Field(5, ge=2, le=1000, description="P: classes in each batch.")
    samples_per_class: int = Field(16, ge=2, le=1000, description="K: images of each class in each batch.")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFloat = Field(0.001, le=10, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    steps: int = Field(300, ge=1, le=10_000_000, description="Training steps (batches).")
    eval_every: int = Field(100, ge=1, description="Evaluate on the validation split every this many steps, and at the end.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of weights and batch sampling.")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$", description="auto picks CUDA when the worker has it.")
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first.")

    @field_validator("val_fraction", "margin", "lr", "weight_decay", mode="before")
    @classmethod
    def _number_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        allowed = LOSS_PARAMS[self.loss]
        for key, value in self.loss_params.items():
            if key not in allowed:
                raise SpecError("loss_params", f"{self.loss} does not take {key!r}; it takes {', '.join(allowed) or 'nothing'}")
            if not isinstance(value, allowed[key]) or (allowed[key] != bool and isinstance(value, bool)):
                raise SpecError("loss_params", f"{key!r} must be a number" if allowed[key] != bool else f"{key!r} must be true or false")
        if self.dataset == "imagefolder" and not self.dataset_path:
            raise SpecError("dataset_path", "required when dataset is 'imagefolder'")
        if self.dataset != "imagefolder" and self.dataset_path:
            raise SpecError("dataset_path", f"only used with dataset 'imagefolder', not {self.dataset!r}")
        if not self.name:
            margin = f" m={self.margin:g}" if self.loss in MARGIN_LOSSES else ""
            self.name = f"{self.loss}{margin} {self.dataset}"
        return self

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.samples_per_class


class SpecError(ValueError):
    """A spec refused for a reason that names one field (rendered as a 422 by the API)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def pretrained_weights_path(settings: Settings, backbone: str) -> Path | None:
    """Local ImageNet weights for `backbone`: EMBEDLAB_HOME/weights or torch's hub cache. Never downloaded."""
    filename = PRETRAINED_FILES.get(backbone)
    if filename is None:
        return None
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    for candidate in (settings.home_path / "weights" / filename, torch_home / "hub" / "checkpoints" / filename):
        if candidate.is_file():
            return candidate
    return None


def check_spec(spec: JobSpec, settings: Settings) -> Catalog:
    """Checks that need the dataset or the disk; raises SpecError naming the field."""
    try:
        catalog = load_catalog(spec.dataset, spec.dataset_path, settings.data_root_paths)
    except DatasetError as e:
        raise SpecError(e.field, e.reason) from None
    train_idx, _ = split_indices(catalog.labels, spec.split, spec.val_fraction, spec.split_seed)
    usable = len(trainable_classes(catalog.labels[train_idx], spec.samples_per_class))
    if spec.classes_per_batch > usable:
        raise SpecError(
            "classes_per_batch",
            f"{spec.classes_per_batch} classes per batch, but only {usable} training classes of {spec.dataset!r} "
            f"have at least samples_per_class={spec.samples_per_class} images",
        )
    if spec.pretrained:
        if spec.backbone not in PRETRAINED_FILES:
            raise SpecError("pretrained", f"no pretrained weights exist for backbone {spec.backbone!r}")
        if pretrained_weights_path(settings, spec.backbone) is None:
            raise SpecError(
                "pretrained",
                f"weights for {spec.backbone} are not on this machine; put {PRETRAINED_FILES[spec.backbone]} "
                f"in {settings.home_path / 'weights'} (embedlab never downloads)",
            )
    return catalog
