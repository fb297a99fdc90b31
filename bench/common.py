"""What the benchmarks share: the plain reference loop run as it is, and embedlab jobs run by real workers.

Every embedlab side runs in fresh processes against a throwaway EMBEDLAB_HOME, like the
reference script, so both pay their own start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "pml_loop.py"
# The reference mines semi-hard triplets for triplet loss and uses no miner for the others.
REFERENCE_MINER = {"triplet": "semihard", "circle": "none", "contrastive": "none"}


def reference(loss: str = "triplet", margin: float = 0.2, steps: int = 300, arch: str = "cnn") -> dict:
    """../shared/reference/pml_loop.py as it is; its JSON line (train_img_per_s, MAP@R, ...)."""
    out = subprocess.run(
        [sys.executable, str(REFERENCE), loss, str(margin), str(steps), arch],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def home_env(home: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "EMBEDLAB_HOME": home, "EMBEDLAB_DEMO": "false", **extra}


@contextlib.contextmanager
def served(env: dict[str, str], workers: int = 0, timeout: float = 60, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real `embedlab serve` with `workers` workers in `env` (on a free port unless given), answering before the
    block starts; (url, process)."""
    import httpx

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/api/jobs", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {timeout:.0f} s (exit code {server.poll()})")
            time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def run_python(code: str, env: dict[str, str], *args: str, memory: dict[str, int] | None = None) -> str:
    """A snippet in a fresh interpreter in the checkout; its last line of output. With `memory`, the peaks of its
    process tree's resident memory (any one process's anonymous and file-backed MB, /proc sampled every 0.1 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    sampler = None
    if memory is not None:
        sampler = threading.Thread(target=sample_memory, args=(proc, memory), daemon=True)
        sampler.start()
    stdout, stderr = proc.communicate()
    if sampler is not None:
        sampler.join()
    if proc.returncode:
        raise RuntimeError(stderr[-2000:])
    return stdout.strip().splitlines()[-1]


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        try:
            todo += [int(c) for task in Path(f"/proc/{p}/task").iterdir() for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return tree


def sample_memory(proc: subprocess.Popen, peaks: dict[str, int]) -> None:
    """RssAnon (the process's own memory) and RssFile (memory-mapped files: page cache, shared and reclaimable)."""
    peaks.update(anon_mb=0, file_mb=0)
    while proc.poll() is None:
        for pid in process_tree(proc.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for key, field in (("anon_mb", "RssAnon:"), ("file_mb", "RssFile:")):
                if field in status:
                    peaks[key] = max(peaks[key], int(status.split(field)[1].split()[0]) // 1024)
        time.sleep(0.1)


def run_in_worker(
    home: str, spec: dict, devices: int = 1, threads: int = 0, memory: dict[str, int] | None = None, **extra_env: str
) -> dict:
    """One job through the real worker (offering `devices` ranks; `threads` torch threads, 0: the worker's share of the
    cores) in a fresh process: status, train/images_per_second, peak RSS (the worker's or its attempt process's, whichever
    is larger), the CPU seconds of the worker and its attempts' processes (ranks included), and the summary metrics;
    `memory`: see run_python."""
    code = (
        "import json,sys,resource; from app.config import Settings; from app.spec import JobSpec; from app.store import jobs, metrics;"
        "from app.store.db import get_engine, init_db; s=Settings(); e=get_engine(s.db_url); init_db(e);"
        "j=jobs.submit(e, JobSpec.model_validate(json.loads(sys.argv[1])));"
        f"from trainer.worker import Worker; Worker(s, devices={devices}, threads={threads or None}).run(max_jobs=1, exit_when_idle=True);"
        "r=jobs.get(e, j.id); ser=metrics.series(e, j.id, ['train/images_per_second']);"
        "print(json.dumps({'status': r.status, 'error': r.error, 'train_img_per_s': (ser['train/images_per_second']['value'] or [0])[-1],"
        "'peak_rss_mb': max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024,"
        "'cpu_s': sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime')),"
        "'job_id': j.id, **r.summary}))"
    )
    return json.loads(run_python(code, home_env(home, EMBEDLAB_DATA_ROOTS="/", **extra_env), json.dumps(spec), memory=memory))


def run_sweeps(home: str, sweeps: list[dict], workers: int) -> tuple[float, list[dict]]:
    """Queue the sweeps, start `workers` worker processes that exit when the queue is empty; seconds taken and the jobs."""
    env = home_env(home)
    run_python(
        "import json,sys; from app.config import Settings; from app.spec import SweepSpec, check_sweep; from app.store import sweeps;"
        "from app.store.db import get_engine, init_db; s=Settings(); e=get_engine(s.db_url); init_db(e)\n"
        "for raw in json.loads(sys.argv[1]):\n"
        "    sw=SweepSpec.model_validate(raw); sweeps.create(e, sw, check_sweep(sw, s), owner='bench', max_attempts=1)\n"
        "print('queued')",
        env,
        json.dumps(sweeps),
    )
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--exit-when-idle"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.wait()
    took = time.perf_counter() - t0
    jobs = json.loads(
        run_python(
            "import json; from app.config import Settings; from app.store import jobs; from app.store.db import get_engine;"
            "print(json.dumps([{'spec': j.spec, 'status': j.status, 'error': j.error, 'summary': j.summary} "
            "for j in jobs.list_jobs(get_engine(Settings().db_url), limit=1000)[0]]))",
            env,
        )
    )
    return took, jobs
