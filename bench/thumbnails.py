"""Thumbnails of huge images: a real `embedlab serve`, a folder of 8k x 8k images, parallel requests.

    .venv/bin/python bench/thumbnails.py                 # 6 PNGs + 2 JPEGs of 7999 x 7999, 8 requests at once
    .venv/bin/python bench/thumbnails.py --images 12 --parallel 12

Reports the server's resident memory before, its peak (VmHWM) over the cold round, the latency
of each request when the thumbnail must be decoded (cold) and when it is in the on-disk cache,
and the cache's size on disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import served  # noqa: E402


def big_image(side: int, seed: int) -> Image.Image:  # noqa: F821 - PIL imported lazily
    from PIL import Image

    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rng = np.random.default_rng(seed)
    rgb = np.empty((side, side, 3), dtype=np.uint8)
    for c in range(3):  # smooth (a reasonable file size) but different per image and channel
        rgb[..., c] = (np.add.outer(ramp * rng.uniform(0.2, 1), ramp * rng.uniform(0.2, 1)) % 256).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def round_trip(client, urls: list[str], parallel: int) -> list[float]:
    def one(url: str) -> float:
        start = time.perf_counter()
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", (url, r.status_code, r.text[:200])
        return (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, urls))


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8, help="images in the folder (a quarter of them JPEG)")
    parser.add_argument("--side", type=int, default=7999)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "embedlab-bench-huge-images",
        help="where the images are written (kept: a second run reuses them)",
    )
    args = parser.parse_args()

    root = args.data / f"{args.images}x{args.side}"
    if len(list(root.rglob("*.*"))) != args.images:
        t0 = time.perf_counter()
        for i in range(args.images):
            folder = root / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            im = big_image(args.side, i)
            if i % 4 == 3:
                im.save(folder / f"{i}.jpg", quality=90)
            else:
                im.save(folder / f"{i}.png", compress_level=1)
        print(f"{args.images} images written in {time.perf_counter() - t0:.0f} s")
    print(f"{args.images} images of {args.side} x {args.side} ({sum(f.stat().st_size for f in root.rglob('*.*')) / 2**20:.0f} MB on disk)")

    from app.config import Settings
    from app.spec import JobSpec
    from app.store import jobs
    from app.store.db import get_engine, init_db

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, demo=False, data_roots=str(root))
        engine = get_engine(settings.db_url)
        init_db(engine)
        # Stored directly: the thumbnails need only the job's spec (a handful of images is too few to pass the API's checks).
        job = jobs.submit(engine, JobSpec(dataset="imagefolder", dataset_path=str(root), steps=1, classes_per_batch=2, samples_per_class=2))
        engine.dispose()

        env = {
            **os.environ,
            "EMBEDLAB_HOME": str(home),
            "EMBEDLAB_DEMO": "false",
            "EMBEDLAB_DATA_ROOTS": str(root),
            "PYTHONPATH": str(ROOT),
        }
        with served(env) as (url, server), httpx.Client(base_url=url, timeout=120) as client:
            urls = [f"/api/jobs/{job.id}/images/{i}" for i in range(args.images)]
            before = memory_kb(server.pid, "VmRSS")
            cold = round_trip(client, urls, args.parallel)
            peak = memory_kb(server.pid, "VmHWM")
            cached = round_trip(client, urls, args.parallel)
            after = memory_kb(server.pid, "VmRSS")
        cache = sum(f.stat().st_size for f in (home / "cache" / "thumbnails").rglob("*.png"))
    print(f"server RSS before {before / 1024:.0f} MB, peak {peak / 1024:.0f} MB, after {after / 1024:.0f} MB")
    print(f"cold ({args.parallel} at once): median {np.median(cold):.0f} ms, max {max(cold):.0f} ms")
    print(f"cached: median {np.median(cached):.1f} ms, max {max(cached):.1f} ms")
    print(f"thumbnail cache: {args.images} files, {cache / 1024:.0f} KB")


if __name__ == "__main__":
    main()
