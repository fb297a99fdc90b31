"""JobSpec: the validated contract of a job, shared by the API, the CLI and the trainer.

Static checks live on the model (types, ranges, unknown fields); `check_spec` adds the
checks that need the dataset or the disk, so a job that cannot train is refused at
submit time instead of failing on a worker minutes later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import costs, weights
from app.backbones import BackboneError, check_backbone, effective_image_size
from app.config import Settings
from app.datasets import BUNDLED, Catalog, DatasetError, Split, load_catalog, resolve_inside_roots, split_indices, trainable_classes
from app.files import weights_dir
from app.text import JsonText, Text

Loss = Literal["contrastive", "triplet", "circle", "multisimilarity", "ntxent"]
Miner = Literal["none", "semihard", "hard", "all", "multisimilarity"]
Retrieval = Literal["precision_at_1", "r_precision", "mean_average_precision_at_r"]

# Extra constructor arguments each loss accepts through `loss_params`, with the ranges in which
# pytorch-metric-learning's loss is finite and means what it says. Explicit so a typo or a value
# that can never train is refused at submit time rather than failing a worker three times.
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ContrastiveParams(_Params):
    pos_margin: Annotated[Finite, Field(ge=0, le=100, description="Distance under which positive pairs cost nothing; below `margin`")]


class TripletParams(_Params):
    swap: bool
    smooth_loss: bool


class CircleParams(_Params):
    # The loss scales with gamma (the paper uses 32-512); 10^300 overflows to an infinite loss.
    gamma: Annotated[Finite, Field(gt=0, le=10_000, description="Scale factor")]


class MultiSimilarityParams(_Params):
    # The library divides by alpha and beta.
    alpha: Annotated[Finite, Field(gt=0, le=10_000)]
    beta: Annotated[Finite, Field(gt=0, le=10_000)]
    base: Annotated[Finite, Field(ge=-1, le=1, description="Cosine similarity the pairs are weighed around")]


class NTXentParams(_Params):
    # Similarities are divided by it: 0 is NaN, a negative one inverts the objective,
    # and under 10^-4 the softmax is one-hot (SimCLR uses 0.05-1).
    temperature: Annotated[Finite, Field(ge=1e-4, le=100)]


LOSS_PARAM_MODELS: dict[str, type[_Params]] = {
    "contrastive": ContrastiveParams,
    "triplet": TripletParams,
    "circle": CircleParams,
    "multisimilarity": MultiSimilarityParams,
    "ntxent": NTXentParams,
}
# Name -> Python type of each parameter (what the job form describes).
LOSS_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    loss: {name: bool if f.annotation is bool else (int, float) for name, f in model.model_fields.items()}
    for loss, model in LOSS_PARAM_MODELS.items()
}
# Losses whose behaviour the `margin` field sets (the others ignore it, and the job log says so).
MARGIN_LOSSES = {"contrastive", "triplet", "circle"}

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text = Field("", max_length=200, description="Shown in the dashboard; generated when empty.")
    dataset: Literal["digits", "mnist5k", "imagefolder", "cub200", "cars196", "sop"] = Field(
        "digits",
        description="Bundled set, a class-per-folder image folder, or a benchmark (CUB-200-2011, Cars-196, SOP) in its own layout.",
    )
    dataset_path: Text | None = Field(None, max_length=4096, description="Image folder or benchmark copy inside EMBEDLAB_DATA_ROOTS.")
    split: Literal["classes", "samples"] = Field("classes", description="Hold out classes (unseen at training) or samples of every class.")
    val_fraction: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Fraction of classes or samples in the validation part (what chooses: curves, best checkpoint, sweeps).",
    )
    test_fraction: float = Field(
        0.2, ge=0, lt=1, description="Fraction of classes or samples in the locked test part, scored only at the end; 0: no test part."
    )
    folds: int | None = Field(
        None,
        ge=2,
        le=20,
        description="Cross-validation: split the non-test classes (or samples) into this many folds; "
        "`fold` picks the one validated on (sweep `fold` for all k). Replaces val_fraction.",
    )
    fold: int = Field(0, ge=0, le=19, description="Which fold validates when `folds` is set.")
    split_seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the `samples` split; independent of the training seed.")
    backbone: Text = Field("cnn", max_length=200, description="cnn, resnet18, resnet50, vit_b_16 or timm:<model> (GET /api/backbones).")
    pretrained: bool = Field(False, description="Start from ImageNet weights (fetched once into EMBEDLAB_HOME/weights).")
    embedding_dim: int = Field(128, ge=2, le=4096, description="Size of the embedding vector.")
    normalize: bool = Field(
        True,
        description="L2-normalise embeddings (the net's output, so the stored ones); every loss measures on normalised embeddings either way.",
    )
    image_size: int | None = Field(
        None,
        ge=8,
        le=512,
        description="Side of the square images the net sees; native size when empty (224 for pretrained image-folder jobs).",
    )
    augment: Literal["none", "standard"] = Field(
        "none", description="standard: random resized crop (scale 0.16-1, ratio 3/4-4/3) and horizontal flip of each training image."
    )
    loss: Loss = Field("triplet", description="pytorch-metric-learning loss.")
    margin: float = Field(0.2, ge=0, le=100, allow_inf_nan=False, description="Triplet margin, contrastive negative margin, circle m.")
    loss_params: Annotated[dict[str, Any], JsonText] = Field(default_factory=dict, description="Other constructor arguments of the loss.")
    miner: Miner = Field("semihard", description="Which tuples of a batch the loss sees.")
    classes_per_batch: int = Field(5, ge=2, le=1000, description="P: classes in each batch.")
    samples_per_class: int = Field(16, ge=2, le=1000, description="K: images of each class in each batch.")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="torch.optim optimizer (sgd with momentum 0.9).")
    lr: PositiveFloat = Field(0.001, le=10, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, allow_inf_nan=False, description="L2 penalty on the weights (decoupled with adamw).")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="After warm-up: constant, or cosine decay to 0 at the last step."
    )
    warmup_steps: int = Field(0, ge=0, le=10_000_000, description="Steps of linear warm-up from 0 to lr.")
    head_lr_multiplier: PositiveFloat = Field(1.0, le=1000, description="Learning rate of the embedding head = lr x this.")
    grad_clip: float | None = Field(
        None, gt=0, le=1e6, allow_inf_nan=False, description="Clip the gradients' global L2 norm to this (none: no clipping)."
    )
    freeze_bn: bool = Field(False, description="BatchNorm layers keep their (pretrained) statistics and affine weights.")
    steps: int = Field(300, ge=1, le=10_000_000, description="Training steps (batches).")
    eval_every: int = Field(100, ge=1, le=10_000_000, description="Evaluate on the validation split every this many steps, and at the end.")
    select_metric: Retrieval = Field("mean_average_precision_at_r", description="Validation metric that picks the best checkpoint.")
    patience: int | None = Field(
        None, ge=1, le=100_000, description="Stop after this many evaluations without a better select_metric; empty: never."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of weights and batch sampling.")
    explorer: bool = Field(
        True,
        description="At the end, lay out the validation embeddings with UMAP for the embedding explorer "
        "(seconds per job); off saves that time in a big sweep.",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast for the forward pass; auto: bf16 on CUDA, fp32 on CPU."
    )
    device: Text = Field("auto", pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$", description="auto picks CUDA when the worker has it.")
    devices: int = Field(
        1,
        ge=1,
        le=64,
        description="Data-parallel ranks on one worker (GPUs, or CPU processes with Gloo); the loss and miner see the "
        "gathered global batch, each rank classes_per_batch / devices of its classes.",
    )
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first.")

    @field_validator("val_fraction", "test_fraction", "margin", "lr", "weight_decay", "head_lr_multiplier", "grad_clip", mode="before")
    @classmethod
    def _number_not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        check_loss_params(self.loss, self.loss_params, self.margin)
        if self.val_fraction + self.test_fraction >= 1 and not self.folds:
            raise SpecError(
                "test_fraction",
                f"val_fraction {self.val_fraction:g} + test_fraction {self.test_fraction:g} leave no training part; keep the sum below 1",
            )
        if not self.folds and self.fold:
            raise SpecError("fold", "only used with `folds` (cross-validation)")
        if self.folds and self.fold >= self.folds:
            raise SpecError("fold", f"fold {self.fold} does not exist with folds={self.folds}; choose 0 to {self.folds - 1}")
        if self.dataset not in BUNDLED and not self.dataset_path:
            raise SpecError("dataset_path", f"required when dataset is {self.dataset!r}")
        if self.dataset in BUNDLED and self.dataset_path:
            raise SpecError("dataset_path", f"only used with image folders and benchmarks, not {self.dataset!r}")
        try:
            check_backbone(self.backbone, self.pretrained, effective_image_size(self.dataset, self.image_size, self.pretrained))
        except BackboneError as e:
            raise SpecError(e.field, e.reason) from None
        if self.classes_per_batch % self.devices:
            raise SpecError(
                "classes_per_batch",
                f"{self.classes_per_batch} classes per batch do not split over devices={self.devices}: each rank draws "
                f"whole classes (classes_per_batch / devices x samples_per_class); pick a multiple of {self.devices}",
            )
        if not self.name:
            margin = f" m={self.margin:g}" if self.loss in MARGIN_LOSSES else ""
            self.name = f"{self.loss}{margin} {self.dataset}"
        return self

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.samples_per_class


def check_loss_params(loss: str, params: dict[str, Any], margin: float) -> None:
    """Names, types and ranges of `loss_params`; raises SpecError naming `loss_params.<name>`."""
    from pydantic import ValidationError

    allowed = LOSS_PARAMS[loss]
    for key, value in params.items():
        if key not in allowed:
            raise SpecError("loss_params", f"{loss} does not take {key!r}; it takes {', '.join(allowed) or 'nothing'}")
        if allowed[key] is not bool and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SpecError(f"loss_params.{key}", f"{key!r} must be a number")
    try:
        LOSS_PARAM_MODELS[loss].model_validate(params)
    except ValidationError as e:
        given = [x for x in e.errors() if x["type"] != "missing"]  # every parameter is optional: the library has defaults
        if not given:
            return
        err = given[0]
        key = str(err["loc"][0])
        reason = f"{key!r} must be true or false" if err["type"] == "bool_type" else f"{key!r} of {loss}: {err['msg']}"
        if err["type"] == "finite_number":
            reason = f"{key!r} must be a finite number, not {err['input']}"
        raise SpecError(f"loss_params.{key}", reason) from None
    if loss == "contrastive" and params.get("pos_margin", 0) >= margin > 0:
        raise SpecError(
            "loss_params.pos_margin", f"pos_margin {params['pos_margin']:g} must be below margin {margin:g} (the negative margin)"
        )


class SpecError(ValueError):
    """A spec refused for a reason that names one field (rendered as a 422 by the API)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_spec(spec: JobSpec, settings: Settings) -> Catalog:
    """Checks that need the dataset or the disk; raises SpecError naming the field."""
    try:
        catalog = load_catalog(spec.dataset, spec.dataset_path, settings.data_root_paths)
    except DatasetError as e:
        raise SpecError(e.field, e.reason) from None
    if catalog.root is not None:
        spec.dataset_path = str(catalog.root)  # stored resolved: what was typed never reaches a page
    try:
        train_idx = job_split(catalog.labels, spec, catalog.official_test).train
    except DatasetError as e:
        raise SpecError(e.field, e.reason) from None
    usable = len(trainable_classes(catalog.labels[train_idx], spec.samples_per_class))
    if spec.classes_per_batch > usable:
        raise SpecError(
            "classes_per_batch",
            f"{spec.classes_per_batch} classes per batch, but only {usable} training classes of {spec.dataset!r} "
            f"have at least samples_per_class={spec.samples_per_class} images",
        )
    if problem := costs.refusal(spec, catalog.num_images, settings):  # memory: refused here rather than failed on a worker
        raise SpecError(*problem)
    if spec.pretrained and settings.offline and not weights.present(settings, spec.backbone):
        where = (
            f"{weights.weights_filename(spec.backbone)} is not in {weights_dir(settings.home_path)}"
            if spec.backbone in weights.BUILTIN
            else f"its timm weights are not in {weights.hf_cache(settings)}"
        )
        raise SpecError(
            "pretrained",
            f"this server is offline (EMBEDLAB_OFFLINE) and {where}; run "
            f"`embedlab weights fetch {spec.backbone}` on a machine with network and copy it there",
        )
    return catalog


def job_split(labels, spec: JobSpec, official_test=None) -> Split:
    """The job's train / validation / test parts (app.datasets.split_indices with the spec's fields). A benchmark's
    official test classes (`official_test`, a mask over `labels`) are its locked test part when splitting by class."""
    if official_test is not None and spec.split == "classes":
        from app.benchmarks import official_parts

        return Split(*official_parts(labels, official_test, spec.val_fraction, spec.folds, spec.fold))
    return split_indices(labels, spec.split, spec.val_fraction, spec.test_fraction, spec.split_seed, spec.folds, spec.fold)


MAX_SWEEP_JOBS = 200
NOT_AXES = {"name", "seed"}  # the name is generated per run; seeds have their own list


class SweepSpec(BaseModel):
    """A base job spec, grid axes over any of its fields, and the seeds each grid point runs with."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Text = Field("", max_length=200)
    base: Annotated[dict[str, Any], JsonText] = Field(default_factory=dict, description="Job spec fields shared by every run.")
    grid: Annotated[dict[str, list[Any]], JsonText] = Field(
        default_factory=dict, description="Field -> values; one run per combination and seed."
    )
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(default_factory=lambda: [0], min_length=1, max_length=50)

    @model_validator(mode="after")
    def _grid(self) -> SweepSpec:
        for axis, values in self.grid.items():
            if axis not in JobSpec.model_fields or axis in NOT_AXES:
                hint = (
                    "use `seeds` for seeds"
                    if axis == "seed"
                    else f"not a job spec field ({', '.join(sorted(set(JobSpec.model_fields) - NOT_AXES))})"
                )
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


def _resolve_sweep_paths(sweep: SweepSpec, settings: Settings) -> None:
    """`dataset_path` in the base and the grid replaced by the folder it resolves to (stored and shown so)."""

    def resolve(value: Any, field: str) -> Any:
        if not isinstance(value, str) or not value:
            return value  # the job spec's own validation names what is wrong
        try:
            return str(resolve_inside_roots(value, settings.data_root_paths))
        except DatasetError as e:
            raise SpecError(field, e.reason) from None

    if "dataset_path" in sweep.base:
        sweep.base["dataset_path"] = resolve(sweep.base["dataset_path"], "base.dataset_path")
    if "dataset_path" in sweep.grid:
        values = [resolve(v, "grid.dataset_path") for v in sweep.grid["dataset_path"]]
        if len({repr(v) for v in values}) != len(values):
            raise SpecError("grid.dataset_path", "two values name the same folder")
        sweep.grid["dataset_path"] = values


def check_sweep(sweep: SweepSpec, settings: Settings) -> list[JobSpec]:
    _resolve_sweep_paths(sweep, settings)
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
            raise SpecError(
                f"{prefix}.{e.field}" if e.field.split(".")[0] in varied else f"base.{e.field}", f"{e.reason} (in {what} {spec.name})"
            ) from None
