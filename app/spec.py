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
from app.files import weights_dir

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
    normalize: bool = Field(True, description="L2-normalise embeddings (the net's output, so the stored ones); every loss measures on normalised embeddings either way.")
    image_size: int | None = Field(None, ge=8, le=512, description="Resize images to this square size; native size when empty.")
    loss: Loss = Field("triplet", description="pytorch-metric-learning loss.")
    margin: float = Field(0.2, ge=0, le=100, allow_inf_nan=False, description="Triplet margin, contrastive negative margin, circle m.")
    loss_params: dict[str, Any] = Field(default_factory=dict, description="Other constructor arguments of the loss.")
    miner: Miner = Field("semihard", description="Which tuples of a batch the loss sees.")
    classes_per_batch: int = Field(5, ge=2, le=1000, description="P: classes in each batch.")
    samples_per_class: int = Field(16, ge=2, le=1000, description="K: images of each class in each batch.")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="torch.optim optimizer (sgd with momentum 0.9).")
    lr: PositiveFloat = Field(0.001, le=10, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, allow_inf_nan=False, description="L2 penalty on the weights (decoupled with adamw).")
    steps: int = Field(300, ge=1, le=10_000_000, description="Training steps (batches).")
    eval_every: int = Field(100, ge=1, description="Evaluate on the validation split every this many steps, and at the end.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of weights and batch sampling.")
    explorer: bool = Field(True, description="At the end, lay out the validation embeddings with UMAP for the embedding explorer "
                                             "(seconds per job); off saves that time in a big sweep.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="bf16 autocast for the forward pass; auto: bf16 on CUDA, fp32 on CPU.")
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
    for candidate in (weights_dir(settings.home_path) / filename, torch_home / "hub" / "checkpoints" / filename):
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
                f"in {weights_dir(settings.home_path)} (embedlab never downloads)",
            )
    return catalog


MAX_SWEEP_JOBS = 200
NOT_AXES = {"name", "seed"}  # the name is generated per run; seeds have their own list


class SweepSpec(BaseModel):
    """A base job spec, grid axes over any of its fields, and the seeds each grid point runs with."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("", max_length=200)
    base: dict[str, Any] = Field(default_factory=dict, description="Job spec fields shared by every run.")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Field -> values; one run per combination and seed.")
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(default_factory=lambda: [0], min_length=1, max_length=50)

    @model_validator(mode="after")
    def _grid(self) -> "SweepSpec":
        for axis, values in self.grid.items():
            if axis not in JobSpec.model_fields or axis in NOT_AXES:
                hint = "use `seeds` for seeds" if axis == "seed" else f"not a job spec field ({', '.join(sorted(set(JobSpec.model_fields) - NOT_AXES))})"
                raise SpecError(f"grid.{axis}", hint)
            if not values:
                raise SpecError(f"grid.{axis}", "needs at least one value")
            if len({repr(v) for v in values}) != len(values):
                raise SpecError(f"grid.{axis}", "repeats a value")
        count = self.job_count
        if count > MAX_SWEEP_JOBS:
            sizes = " x ".join(f"{len(v)} {k}" for k, v in self.grid.items())
            raise SpecError("grid", f"this sweep makes {count} jobs ({sizes} x {len(self.seeds)} seeds); the limit is {MAX_SWEEP_JOBS}")
        if not self.name:
            self.name = "sweep " + ", ".join(self.grid) if self.grid else "sweep"
        return self

    @property
    def job_count(self) -> int:
        count = len(self.seeds)
        for values in self.grid.values():
            count *= len(values)
        return count

    def expand(self) -> list[JobSpec]:
        """One JobSpec per grid point and seed; errors name the sweep field at fault (base.x or grid.x)."""
        import itertools

        axes = list(self.grid)
        specs = []
        for combo in itertools.product(*(self.grid[a] for a in axes)):
            point = dict(zip(axes, combo))
            for seed in self.seeds:
                label = " ".join(f"{a}={v}" for a, v in point.items())
                fields = {**self.base, **point, "seed": seed, "name": f"{self.name}: {label} seed={seed}".strip()[:200]}
                specs.append(job_of(fields, point, "grid", f"run {label or 'base'}"))
        return specs


def check_sweep(sweep: SweepSpec, settings: Settings) -> list[JobSpec]:
    specs = sweep.expand()
    check_each(specs, sweep.grid, "grid", "run", settings)
    return specs


def job_of(fields: dict[str, Any], varied: dict[str, Any], prefix: str, where: str) -> JobSpec:
    """A sweep's run or a search's trial: an error names `<prefix>.<field>` for a varied field, else `base.<field>`."""
    from pydantic import ValidationError

    try:
        return JobSpec.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        cause = (err.get("ctx") or {}).get("error")
        field = cause.field if isinstance(cause, SpecError) else ".".join(str(p) for p in err["loc"]) or "base"
        reason = cause.reason if isinstance(cause, SpecError) else err["msg"]
        raise SpecError(f"{prefix}.{field}" if field.split(".")[0] in varied else f"base.{field}", f"{reason} (in {where})") from None


def check_each(specs: list[JobSpec], varied: dict[str, Any], prefix: str, what: str, settings: Settings) -> None:
    """check_spec on each distinct spec (seeds and names aside); an error names the sweep's or search's field."""
    checked: set[str] = set()
    for spec in specs:
        key = spec.model_dump_json(exclude={"name", "seed"})
        if key in checked:
            continue
        checked.add(key)
        try:
            check_spec(spec, settings)
        except SpecError as e:
            raise SpecError(f"{prefix}.{e.field}" if e.field.split(".")[0] in varied else f"base.{e.field}", f"{e.reason} (in {what} {spec.name})") from None
