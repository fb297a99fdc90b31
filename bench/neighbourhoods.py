"""Two embeddings of the same items compared (GET /api/neighbourhoods and its panels, POST /api/neighbourhoods/selection),
through a real `embedlab serve`, at the sizes a user brings.

    PYTHONPATH=$PWD .venv/bin/python bench/neighbourhoods.py --sizes 100000,300000

Two fabricated collections of N points (tests/e2e/fabricate.py: the same item ids and clustered 16-d vectors, no import,
no UMAP; B's vectors moved a little, those of the first tenth of the items by six times as much), then, timed from the
client: the first comparison (both sides' k-nearest sets searched: exact to 200,000 points, HNSW past it,
app.explorer.changed), the same again (the server's cache), the side-by-side layouts, and three selections compared with
the rest (the explorer's "Open comparison"): a random tenth, the moved tenth (which should read "changed more"), a random
half, with their answers' sizes and verdicts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.explorer import served  # noqa: E402


def timed(call):
    t = time.perf_counter()
    r = call()
    assert r.status_code == 200, r.text[:500]
    return time.perf_counter() - t, r


def bench(n: int, k: int) -> None:
    import httpx

    from tests.e2e.fabricate import fabricate_collection

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        moved = n // 10
        scale = np.where(np.arange(n) < moved, 0.3, 0.05)[:, None]  # row i is item i
        a, _ = fabricate_collection(home, n, seed=1, images=4)
        b, _ = fabricate_collection(home, n, seed=1, images=4, x_map=lambda X: X + np.random.default_rng(5).normal(size=X.shape) * scale)
        print(f"{n:,} points: two collections fabricated in {time.perf_counter() - t:.0f} s")
        with served(home) as (url, _), httpx.Client(base_url=url, timeout=3600) as client:
            q = {"a": f"collection:{a}", "b": f"collection:{b}", "k": k}
            first, r = timed(lambda: client.get("/api/neighbourhoods", params={**q, "limit": 2000}))
            again, _ = timed(lambda: client.get("/api/neighbourhoods", params={**q, "limit": 2000}))
            print(
                f"  first comparison (k = {k}) {first:.1f} s, mean change {r.json()['mean_change']:.3f}; again (cached) {again * 1000:.0f} ms"
            )
            panels, r = timed(lambda: client.get("/api/neighbourhoods/layouts", params=q))
            print(f"  side-by-side layouts {panels * 1000:.0f} ms, {len(r.content) / 1e6:.2f} MB")
            rng = np.random.default_rng(0)
            picks = {
                "a random tenth": rng.choice(n, n // 10, replace=False),
                "the moved tenth": np.arange(moved),
                "a random half": rng.choice(n, n // 2, replace=False),
            }
            for what, rows in picks.items():
                chosen = np.sort(rows).tolist()
                took, r = timed(lambda chosen=chosen: client.post("/api/neighbourhoods/selection", params=q, json={"indices": chosen}))
                s = r.json()["selection"]
                print(
                    f"  {what} ({len(chosen):,}): {took * 1000:.0f} ms, answer {len(r.content) / 1e6:.2f} MB; mean change "
                    f"{s['selection']['mean_change']:.3f} vs {s['rest']['mean_change']:.3f}, difference {s['difference']:+.4f} "
                    f"(random selections: within +-{s['noise']:.4f}): {s['verdict']}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,300000")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for n in [int(s) for s in args.sizes.split(",")]:
        bench(n, args.k)


if __name__ == "__main__":
    main()
