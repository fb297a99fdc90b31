"""The first visit of `make run`: `embedlab serve` on an empty home with its one worker, timed from start.

Reports when the first demo job has succeeded (and its validation MAP@R at step 0 and at the
end), and when the second one is training live. The host's load average is printed beside the
times: on a shared machine they grow with it.
Usage: .venv/bin/python bench/demo.py [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    home, port = tempfile.mkdtemp(prefix="embedlab-demo-"), free_port()
    env = {**os.environ, "EMBEDLAB_HOME": home, "EMBEDLAB_DEMO": "true"}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    times: dict[str, float] = {}
    try:
        while time.perf_counter() - started < args.timeout and len(times) < 3:
            time.sleep(0.5)
            try:
                listed = httpx.get(f"{url}/api/jobs?limit=10", timeout=10).json()["jobs"]
            except httpx.HTTPError:
                continue
            times.setdefault("server answers", time.perf_counter() - started)
            first, second = sorted(listed, key=lambda j: j["id"])[:2]
            if first["status"] == "succeeded":
                times.setdefault("first demo job succeeded", time.perf_counter() - started)
            if second["status"] == "running" and second["progress"]["step"] > 0:
                times.setdefault("second demo job training", time.perf_counter() - started)
        series = httpx.get(f"{url}/api/jobs/{first['id']}/metrics?names=val/mean_average_precision_at_r", timeout=10).json()["series"]
        mapr = series["val/mean_average_precision_at_r"]
    finally:
        server.terminate()
        server.wait(60)
    print(
        json.dumps(
            {
                "seconds": {k: round(v, 1) for k, v in times.items()},
                "first_job": first["name"],
                "map_at_r": dict(zip(mapr["step"], [round(v, 3) for v in mapr["value"]])),
                "load_average_1min_at_end": os.getloadavg()[0],
                "cores": os.cpu_count(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
