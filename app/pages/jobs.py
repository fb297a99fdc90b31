"""HTML pages: server-rendered Jinja2 templates; the data comes from the JSON API.

The pages carry no inline script: what a script needs from the server travels in
data- attributes, and every page answers with a Content-Security-Policy that only
allows scripts from this origin.
"""

from __future__ import annotations

import importlib.util
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.deps import EngineDep, JobId
from app.pages.render import render
from app.spec import LOSS_PARAMS, MARGIN_LOSSES, JobSpec
from app.store import jobs

router = APIRouter(include_in_schema=False)

# Sections of the new-job form. A spec field missing here still shows, under "Other".
FORM_SECTIONS: dict[str, tuple[str, ...]] = {
    "Job": ("name",),
    "Data": ("dataset", "dataset_path", "split", "val_fraction", "test_fraction", "folds", "fold", "split_seed", "image_size"),
    "Loss": ("loss", "margin", "loss_params", "miner"),
    "Model": ("backbone", "pretrained", "embedding_dim", "normalize"),
    "Training": (
        "steps",
        "eval_every",
        "select_metric",
        "patience",
        "classes_per_batch",
        "samples_per_class",
        "optimizer",
        "lr",
        "weight_decay",
        "seed",
        "explorer",
    ),
    "Where it runs": ("device", "precision", "priority"),
}
DEVICE_SUGGESTIONS = ("auto", "cpu", "cuda", "cuda:0", "cuda:1")


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    return render(request, "jobs.html", {})


# -- new job form ------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    name: str
    kind: str  # select | checkbox | number | text | json
    value: Any  # what the input shows (the default, or the cloned job's value)
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    number_type: str = ""  # int | float
    optional: bool = False  # empty means null
    min: float | None = None
    max: float | None = None
    limits: str = ""  # "2 to 4096", for people

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    @property
    def default_text(self) -> str:
        if self.default is None or self.default == "":
            return "empty"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, dict):
            return json.dumps(self.default)
        return str(self.default)

    @property
    def input_value(self) -> str:
        if self.value is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.value, indent=None)
        return str(self.value)


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _limits(metadata: list[Any]) -> tuple[float | None, float | None, str]:
    low = high = None
    words = []
    for m in metadata:
        if isinstance(m, (Ge, Gt)):
            low = m.ge if isinstance(m, Ge) else m.gt
            words.insert(0, f"{'≥' if isinstance(m, Ge) else '>'} {_number(low)}")
        elif isinstance(m, (Le, Lt)):
            high = m.le if isinstance(m, Le) else m.lt
            words.append(f"{'≤' if isinstance(m, Le) else '<'} {_number(high)}")
        elif isinstance(m, MaxLen):
            words.append(f"at most {m.max_length} characters")
    inclusive = any(isinstance(m, Ge) for m in metadata) and any(isinstance(m, Le) for m in metadata)
    text = f"from {_number(low)} to {_number(high)}" if inclusive else " and ".join(words)
    return low, high, text


def form_field(name: str, value: Any) -> FormField:
    """One input for one JobSpec field, from its annotation, default, constraints and description."""
    info = JobSpec.model_fields[name]
    annotation, optional = info.annotation, False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation, optional = args[0], len(args) < len(typing.get_args(annotation))
    default = info.get_default(call_default_factory=True)
    low, high, limits = _limits(info.metadata)
    common = dict(name=name, value=value, default=default, help=info.description or "", optional=optional, limits=limits)
    if typing.get_origin(annotation) is typing.Literal:
        return FormField(kind="select", choices=tuple(str(c) for c in typing.get_args(annotation)), **common)
    if annotation is bool:
        return FormField(kind="checkbox", **common)
    if annotation in (int, float):
        return FormField(kind="number", number_type=annotation.__name__, min=low, max=high, **common)
    if typing.get_origin(annotation) is dict:
        return FormField(kind="json", **common)
    return FormField(kind="text", **common)


def form_sections(values: dict[str, Any]) -> list[tuple[str, list[FormField]]]:
    placed = {n for names in FORM_SECTIONS.values() for n in names}
    sections = [(title, [form_field(n, values[n]) for n in names if n in JobSpec.model_fields]) for title, names in FORM_SECTIONS.items()]
    other = [form_field(n, values[n]) for n in JobSpec.model_fields if n not in placed]
    return sections + ([("Other", other)] if other else [])


def clone_values(spec: dict[str, Any]) -> dict[str, Any]:
    """A job's spec as form values; a generated name is left empty so the clone's name follows its own settings."""
    values = {n: f.get_default(call_default_factory=True) for n, f in JobSpec.model_fields.items()}
    values.update({k: v for k, v in spec.items() if k in values})
    try:
        if JobSpec.model_validate({**values, "name": ""}).name == values["name"]:
            values["name"] = ""
    except ValidationError:
        pass  # an old spec that no longer validates: show it as it was, the API will say what is wrong
    return values


@router.get("/jobs/new", response_class=HTMLResponse)
async def new_job_page(
    request: Request,
    engine: EngineDep,
    clone: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Pre-fill with this job's spec")] = None,
) -> HTMLResponse:
    values = {n: f.get_default(call_default_factory=True) for n, f in JobSpec.model_fields.items()}
    source = None
    if clone is not None:
        source = await run_in_threadpool(jobs.get, engine, clone)
        if source is None:
            return render(request, "not_found.html", {"what": f"Job {clone}", "hint": "There is no job to clone with this id."}, 404)
        values = clone_values(source.spec)
    loss_params = {
        loss: {k: ("true or false" if t is bool else "number") for k, t in params.items()} for loss, params in LOSS_PARAMS.items()
    }
    return render(
        request,
        "job_new.html",
        {
            "sections": form_sections(values),
            "clone": source,
            "device_suggestions": DEVICE_SUGGESTIONS,
            "loss_params_json": json.dumps(loss_params),
            "margin_losses_json": json.dumps(sorted(MARGIN_LOSSES)),
        },
    )


# -- one job -----------------------------------------------------------------


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(job_id: JobId, request: Request, engine: EngineDep) -> HTMLResponse:
    job = await run_in_threadpool(jobs.get, engine, job_id)
    if job is None:
        return render(request, "not_found.html", {"what": f"Job {job_id}", "hint": "It may have been removed, or the link is wrong."}, 404)
    return render(request, "job.html", {"job": job})


# -- sign-in -----------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Annotated[str, Query(max_length=2000)] = "/") -> HTMLResponse:
    return render(request, "login.html", {"next": local_path(next)})


def local_path(target: str) -> str:
    """`target` when it is a path on this site, else "/": never an open redirect to another host.

    Browsers read a backslash as a slash and drop tabs and newlines from URLs, so
    "/\\evil.example" and "/<tab>/evil.example" would both lead to //evil.example.
    """
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(c < " " or c == "\x7f" for c in target):
        return "/"
    return target


# -- vendored JavaScript -------------------------------------------------------


def plotly_js_path() -> Path:
    spec = importlib.util.find_spec("plotly")
    assert spec is not None and spec.submodule_search_locations, "the plotly package is a dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


@router.get("/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly's JavaScript from the installed plotly package: pages never load a CDN."""
    return FileResponse(
        plotly_js_path(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
