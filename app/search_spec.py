"""SearchSpec: a base job spec, a space over its numeric fields and choices, a budget, a sampler and a pruner.

Static checks live on the model; `check_search` adds the ones that need the server's settings or the dataset,
so a search that cannot run is refused at submit time with the field named.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.config import Settings
from app.spec import JobSpec, SpecError, check_each, job_of

NOT_SEARCHED = {"name", "seed"}  # the name is generated per trial; seeds have their own list
SELECT_DEFAULT = "mean_average_precision_at_r"
Choice = str | int | float | bool


class Range(BaseModel):
    """A numeric interval; `points` makes it a grid (for the grid sampler): evenly spaced, or log-spaced with `log`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    low: float
    high: float
    log: bool = False
    points: int | None = Field(None, ge=2, le=1000)


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("", max_length=200)
    base: dict[str, Any] = Field(default_factory=dict, description="Job spec fields shared by every trial.")
    space: dict[str, Range | list[Choice]] = Field(description="Field -> {low, high, log} or a list of choices.")
    trials: int = Field(16, ge=1, description="Budget: how many trials the sampler proposes.")
    parallel: int = Field(2, ge=1, le=256, description="How many trials may be queued or running at once.")
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["asha", "hyperband", "median", "none"] = "asha"
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [0], min_length=1, max_length=20, description="Training seeds each trial runs with (one job each)."
    )
    sampler_seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the sampler's own randomness.")

    @model_validator(mode="after")
    def _space(self) -> SearchSpec:
        if not self.space:
            raise SpecError("space", "needs at least one field to search")
        for name, dim in self.space.items():
            field = f"space.{name}"
            if name not in JobSpec.model_fields or name in NOT_SEARCHED:
                hint = "use `seeds` for seeds" if name == "seed" else "not a job spec field"
                raise SpecError(field, hint)
            if isinstance(dim, list):
                if not dim:
                    raise SpecError(field, "needs at least one choice")
                if len({repr(v) for v in dim}) != len(dim):
                    raise SpecError(field, "repeats a choice")
                continue
            kind = numeric_kind(name)
            if kind is None:
                raise SpecError(field, f"{name} is not numeric: give a list of choices instead of a range")
            if not (math.isfinite(dim.low) and math.isfinite(dim.high)):
                raise SpecError(field, "low and high must be finite numbers")
            if dim.low >= dim.high:
                raise SpecError(field, f"empty or inverted range: low {dim.low:g} must be below high {dim.high:g}")
            if dim.log and dim.low <= 0:
                raise SpecError(f"{field}.low", "a log range must stay above 0")
            if kind is int and not (float(dim.low).is_integer() and float(dim.high).is_integer()):
                raise SpecError(field, f"{name} is an integer field: low and high must be integers")
        if self.sampler == "grid":
            for name, dim in self.space.items():
                if isinstance(dim, Range) and dim.points is None:
                    raise SpecError(f"space.{name}.points", "the grid sampler needs a number of points for each range")
        if not self.name:
            self.name = "search " + ", ".join(self.space)
        return self

    @property
    def select_metric(self) -> str:
        return str(self.base.get("select_metric") or SELECT_DEFAULT)

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's values per field."""
        out: dict[str, list[Any]] = {}
        for name, dim in self.space.items():
            if isinstance(dim, list):
                out[name] = list(dim)
                continue
            assert dim.points is not None
            values = np.geomspace(dim.low, dim.high, dim.points) if dim.log else np.linspace(dim.low, dim.high, dim.points)
            out[name] = sorted({int(round(v)) for v in values}) if numeric_kind(name) is int else [float(v) for v in values]
        return out

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def job_spec(self, params: dict[str, Any], seed: int, label: str) -> JobSpec:
        """The trial's job: base + params + seed; errors name the search field at fault."""
        fields = {**self.base, **params, "seed": seed, "name": f"{self.name}: {label} seed={seed}".strip()[:200]}
        return job_of(fields, params, "space", f"trial {label}")


def numeric_kind(name: str) -> type | None:
    """int or float for a numeric JobSpec field (bool is not numeric), else None."""
    annotation = JobSpec.model_fields[name].annotation
    return annotation if annotation in (int, float) else None


def corners(search: SearchSpec) -> list[dict[str, Any]]:
    """The extreme points of the space: every trial lies between them, so checking them checks the bounds."""
    lows = {n: (d[0] if isinstance(d, list) else _typed(n, d.low)) for n, d in search.space.items()}
    points = [lows]
    for name, dim in search.space.items():
        for value in dim[1:] if isinstance(dim, list) else [_typed(name, dim.high)]:
            points.append({**lows, name: value})
    return points


def _typed(name: str, value: float) -> int | float:
    return int(value) if numeric_kind(name) is int else float(value)


def check_search(search: SearchSpec, settings: Settings) -> list[JobSpec]:
    """Settings, bounds and dataset checks; returns the corner trials' specs (not submitted)."""
    limit = settings.max_search_trials
    if search.trials * len(search.seeds) > limit:
        raise SpecError(
            "trials",
            f"{search.trials} trials x {len(search.seeds)} seeds = {search.trials * len(search.seeds)} jobs; "
            f"this server allows {limit} per search (EMBEDLAB_MAX_SEARCH_TRIALS)",
        )
    if search.sampler == "grid" and search.trials > search.grid_size():
        raise SpecError("trials", f"the grid has {search.grid_size()} points; ask for at most that many trials")
    specs = [search.job_spec(p, search.seeds[0], " ".join(f"{k}={v}" for k, v in p.items())) for p in corners(search)]
    if search.pruner != "none":
        # The corners hold the worst pair (the highest eval_every with the fewest steps); the field named is the searched one.
        searched = [f"space.{n}" for n in ("eval_every", "steps") if n in search.space]
        for spec in specs:
            if spec.eval_every >= spec.steps:
                raise SpecError(
                    searched[0] if searched else "base.eval_every",
                    f"the {search.pruner} pruner decides at evaluations: eval_every ({spec.eval_every}) must be "
                    f"below steps ({spec.steps}) in every trial, or use pruner 'none'",
                )
    select = search.select_metric
    if select not in ("precision_at_1", "r_precision", "mean_average_precision_at_r"):
        raise SpecError("base.select_metric", f"unknown selection metric {select!r}")
    check_each(specs, search.space, "space", "trial", settings)
    return specs
