"""The workers page in Chromium shows the free space of EMBEDLAB_HOME (a real 8 MB tmpfs here), and warns when it runs low;
and what each worker offers and runs."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import screenshot
from tests.e2e.test_dashboard import real_errors, wait_js

pytestmark = pytest.mark.e2e


def test_the_workers_page_shows_the_free_space_of_the_home_disk(procs, env, small_disk, page):
    procs.env = {**env, "EMBEDLAB_HOME": str(small_disk.path)}
    url = procs.server(workers=0)
    page.goto(url + "/workers")
    wait_js(page, "document.getElementById('home-disk').textContent.includes('free of')")
    text = page.locator("#home-disk").inner_text()
    assert text.startswith("EMBEDLAB_HOME: ") and text.endswith(" free of 8.4 MB"), text  # 8 MiB, in decimal units
    assert float(text.split(": ")[1].split(" MB")[0]) > 6

    small_disk.fill()
    wait_js(page, "document.getElementById('home-disk').textContent.includes('low')")  # the page refreshes every 3 s
    text = page.locator("#home-disk").inner_text()
    assert text.startswith("EMBEDLAB_HOME: 0 B free of 8.4 MB") and "disk full" in text, text
    assert page.locator("#home-disk").get_attribute("class") == "error-box"
    screenshot(page, "workers-disk-full")
    assert real_errors(page) == []


def test_the_workers_page_shows_the_devices_a_worker_offers_and_its_jobs(procs, page):
    url = procs.server(workers=0)
    procs.worker("--devices", "2")
    page.goto(url + "/workers")
    wait_js(page, "document.querySelector('#workers-table tbody').textContent.includes('alive')")
    row = page.locator("#workers-table tbody tr").first
    assert row.locator("td").nth(3).inner_text() == "2 CPU processes"
    assert row.locator("td").nth(6).inner_text() == "idle"
    spec = {"dataset": "digits", "steps": 100_000, "eval_every": 1000, "classes_per_batch": 4, "samples_per_class": 8, "explorer": False}
    ids = [httpx.post(f"{url}/api/jobs", json=spec, timeout=30).json()["id"] for _ in range(2)]
    wait_js(page, "document.querySelectorAll('#workers-table tbody td:nth-child(7) a').length === 2")  # refreshed every 3 s
    assert row.locator("td").nth(6).inner_text() == f"job {ids[0]} on cpu, job {ids[1]} on cpu"
    assert row.locator("td").nth(6).locator("a").first.get_attribute("href") == f"/jobs/{ids[0]}"
    assert real_errors(page) == []
