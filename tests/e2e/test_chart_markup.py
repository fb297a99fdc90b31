"""No user string is ever markup in a chart: Plotly reads a subset of HTML in legend names, titles and
hover text, so job names, dataset paths and class folder names carrying tags must show as typed.

A sweep varies `dataset_path` over two image folders whose names (and class folder names) are markup,
one typed with a path through a link tag that resolves back to the folder; Chromium reads the legends.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.e2e.conftest import screenshot, wait_js
from trainer.worker import Worker

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "embedlab-tests" / "numba"))

LINK = "<a href=https:evil.example target=_blank><b>Your session expired"  # a file name cannot hold "/"
BIG = '<span style="font-size:60px">big'
CLASSES = [BIG, "<b>bold", "<i>x &amp; y &lt;", "plain"]
JOB = {
    "dataset": "imagefolder",
    "split": "samples",
    "val_fraction": 0.5,
    "classes_per_batch": 3,
    "samples_per_class": 4,
    "steps": 10,
    "eval_every": 10,
    "image_size": 16,
}
# Elements Plotly makes from pseudo-HTML: <a> for links, styled tspans for <b>, <i> and <span style>.
MARKUP = "svg a, svg tspan[style*='font-weight'], svg tspan[style*='font-style'], svg tspan[style*='60px']"


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(60 * c, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def legend_texts(page, div: str) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll('#{div} .legendtext')].map((t) => t.textContent)")


def markup_in(page, div: str) -> list[str]:
    return page.evaluate(
        f"[...document.querySelectorAll('#{div}')].flatMap((d) => [...d.querySelectorAll(\"{MARKUP}\")]).map((e) => e.outerHTML)"
    )


def test_markup_in_names_paths_and_class_folders_shows_literally(procs, settings, page):
    roots = settings.data_root_paths[0]
    first, second = make_folder(roots / LINK), make_folder(roots / "<i>second")
    url = procs.server()
    typed = f"{first}/<a href=https://evil.example target=_blank><b>Your session expired - sign in again</b></a>/../../../.."
    sweep = {"name": "<b>sweep</b> <img src=x>", "base": {**JOB, "explorer": False}, "grid": {"dataset_path": [typed, str(second)]}}
    made = httpx.post(f"{url}/api/sweeps", json=sweep, timeout=30)
    assert made.status_code == 201, made.text
    job = httpx.post(f"{url}/api/jobs", json={**JOB, "dataset_path": str(first), "name": f"{BIG} job"}, timeout=30).json()
    Worker(settings, threads=2).run(max_jobs=3, exit_when_idle=True)  # same EMBEDLAB_HOME as the server

    detail = httpx.get(f"{url}/api/sweeps/{made.json()['id']}").json()
    assert [j["status"] for j in detail["job_list"]] == ["succeeded", "succeeded"], detail["job_list"]
    assert [j["spec"]["dataset_path"] for j in detail["job_list"]] == [str(first.resolve()), str(second.resolve())]  # stored resolved

    page.goto(f"{url}/sweeps/{made.json()['id']}")
    wait_js(page, "document.querySelectorAll('#loss-overlay .legendtext').length === 2")
    expected = [f"dataset_path={first.resolve()} seed=0", f"dataset_path={second.resolve()} seed=0"]
    assert legend_texts(page, "loss-overlay") == expected
    assert legend_texts(page, "hardness-overlay") == expected
    assert markup_in(page, "loss-overlay") == [] and markup_in(page, "hardness-overlay") == []
    wait_js(page, "document.getElementById('layouts-status').textContent.length > 0")
    screenshot(page, "sweep-markup-literal")

    # The check above can fail: the same name unescaped becomes a link and bold text in Plotly's SVG.
    control = page.evaluate(
        """async (name) => {
        const div = document.createElement("div"); div.id = "control"; document.body.append(div);
        await Plotly.newPlot(div, [{ x: [1], y: [1], name }, { x: [2], y: [2], name: "other" }], { showlegend: true });
        return [...div.querySelectorAll("svg a")].map((a) => a.textContent);
    }""",
        expected[0],
    )
    assert len(control) == 1 and control[0].startswith("Your session expired"), control

    page.goto(f"{url}/jobs/{job['id']}/explore")
    wait_js(page, "document.getElementById('explorer').dataset.ready === 'true'", 120)
    wait_js(page, "document.querySelectorAll('#classes tbody tr').length > 0", 120)
    # The explorer draws points with WebGL (no text in the scatter); class names appear in its table, as typed.
    shown = page.evaluate("[...document.querySelectorAll('#classes tbody tr')].map((r) => r.cells[0].textContent)")
    assert all(any(name in cell for cell in shown) for name in CLASSES), shown  # "&amp;" shows as typed, not as "&"
    assert markup_in(page, "explorer") == []
    assert page.locator(".name").first.inner_text() == f"{BIG} job"
    screenshot(page, "explorer-markup-literal")
    # Runs on two different folders share no images: the sweep's layouts answer 409, which its page says in words.
    assert [e for e in page.errors if "409 (Conflict)" not in e] == []
