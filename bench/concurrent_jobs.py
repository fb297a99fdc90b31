"""Two 1-device jobs on one worker: a 2-device worker running them at once against a 1-device worker running them
in turn (the same worker code, `--devices 2` against `--devices 1`), alternating rounds to share the machine's drift.

Each job is mnist5k's cnn triplet job with the default 5 x 16 batch, seeds 0 and 1, evaluated at steps 0 and the end.
Threads are the worker's automatic share: one job alone gets every core, two at once one share each (cores per
device busy on the host). Prints per round: the wall-clock seconds for both jobs, the CPU seconds of the attempts'
processes, and the load average before the round.

Usage: .venv/bin/python bench/concurrent_jobs.py [--steps 150] [--rounds 2]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings  # noqa: E402
from app.spec import JobSpec  # noqa: E402
from app.store import jobs  # noqa: E402
from app.store.db import get_engine, init_db  # noqa: E402
from trainer.worker import Worker  # noqa: E402


def both_jobs(steps: int, devices: int) -> tuple[float, float]:
    """Wall-clock and attempts' CPU seconds for the two jobs on a worker offering `devices`."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), demo=False)
        engine = get_engine(settings.db_url)
        init_db(engine)
        spec = dict(dataset="mnist5k", steps=steps, eval_every=steps, explorer=False, test_fraction=0.0)
        ids = [jobs.submit(engine, JobSpec(**spec, seed=seed)).id for seed in (0, 1)]
        before, start = os.times(), time.monotonic()
        Worker(settings, devices=devices).run(exit_when_idle=True)
        wall, after = time.monotonic() - start, os.times()
        for job_id in ids:
            if (row := jobs.get(engine, job_id)).status != "succeeded":
                raise RuntimeError(row.error)
        return wall, (after.children_user + after.children_system) - (before.children_user + before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for devices in (1, 2):
            load = os.getloadavg()[0]
            wall, cpu = both_jobs(args.steps, devices)
            how = "at once (--devices 2)" if devices == 2 else "in turn (--devices 1)"
            print(f"{how}: {wall:.1f} s, attempts' CPU {cpu:.1f} s, load average before {load:.1f}", flush=True)


if __name__ == "__main__":
    main()
