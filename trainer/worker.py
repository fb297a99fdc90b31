"""The worker: claim a job, train it, report; again.

One job at a time. A heartbeat thread renews the lease and brings back cancel requests;
the training loop checks the flags between steps, so cancel and SIGTERM act within a step.
The worker writes nothing to the database itself: every write goes through app.store,
carrying the lease token, and is refused once the lease was taken over.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid

import torch

from app.config import Settings
from app.spec import JobSpec
from app.store import joblogs, jobs, metrics, workers
from app.store.db import get_engine, init_db, is_sqlite
from trainer.errors import JobFailed, StopRequested
from trainer.train import train

log = logging.getLogger("embedlab.worker")
FLUSH_SECONDS = 0.5  # metric points reach the dashboard within this, plus the stream's poll


def resolve_device(requested: str) -> torch.device:
    """`auto` takes CUDA when present; workers started by `serve --workers N` spread over the visible GPUs."""
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        index = int(os.environ.get("EMBEDLAB_WORKER_INDEX", "0")) % torch.cuda.device_count()
        return torch.device(f"cuda:{index}")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"device {requested!r} asked for, but this machine has no CUDA device")
    return torch.device(requested)


class JobRun:
    """What the training loop sees of the outside world, for one attempt of one job."""

    def __init__(self, worker: "Worker", claim: jobs.Claim):
        self.worker, self.claim = worker, claim
        self.engine = worker.engine
        self.device = worker.device
        self.job_dir = worker.settings.job_dir(claim.job_id)
        self.stop_reason: str | None = None
        self.step = claim.step
        self._points: list[metrics.Point] = []
        self._last_flush = time.monotonic()
        self._rate: tuple[float, int] | None = None  # (time, step) at the previous heartbeat
        self.threads: int | None = None  # set by the heartbeat when threads are shared automatically
        self.trial = search_trial(self.engine, claim.job_id)  # a search's trial reports to its pruner

    # -- called by the training loop --
    def log(self, level: str, message: str) -> None:
        joblogs.add(self.engine, self.claim.job_id, self.claim.attempt, self.claim.token, level, message)

    def metric(self, name: str, step: int, value: float) -> None:
        self._points.append(metrics.Point(name, step, value, time.time()))
        self.step = max(self.step, step)
        if self.trial and self.trial.report(name, step, value) and self.stop_reason is None:
            self.stop_reason = "pruned"  # the next check stops the job

    def check(self, step: int) -> None:
        self.step = step
        if self.threads and self.threads != torch.get_num_threads():
            torch.set_num_threads(self.threads)
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()
        if self.worker.stopping.is_set() and self.stop_reason is None:
            self.stop_reason = "shutdown"
        if self.stop_reason:
            raise StopRequested(self.stop_reason)

    def still_owner(self) -> bool:
        return self.stop_reason != "lost" and jobs.owns(self.engine, self.claim.job_id, self.claim.token)

    def flush(self) -> None:
        points, self._points = self._points, []
        self._last_flush = time.monotonic()
        if points and not metrics.append(self.engine, self.claim.job_id, self.claim.attempt, self.claim.token, points):
            self.stop_reason = "lost"

    # -- called by the worker --

    def heartbeat(self) -> None:
        now = time.monotonic()
        rate = None
        if self._rate and now > self._rate[0] and self.step > self._rate[1]:
            rate = (self.step - self._rate[1]) / (now - self._rate[0])
        self._rate = (now, self.step)
        answer = jobs.heartbeat(self.engine, self.claim.job_id, self.claim.token, step=self.step, steps_per_second=rate,
                                lease_seconds=self.worker.settings.lease_seconds)
        if answer != "ok" and self.stop_reason != "lost":
            self.stop_reason = "lost" if answer == "lost" else "cancel"


class Worker:
    def __init__(self, settings: Settings, device: str = "auto", threads: int | None = None, worker_id: str | None = None):
        self.settings = settings
        self.engine = get_engine(settings.db_url)
        init_db(self.engine)
        self.device = resolve_device(device)
        # Fixed threads, or (None) a fair share of the host's cores among the workers busy on it,
        # revised at each heartbeat: one job alone gets every core, a packed sweep one each.
        self.fixed_threads = threads
        if threads:
            torch.set_num_threads(threads)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        # Which queued jobs this worker may take (by their `device` field).
        self.accepts = ("auto", "cpu", "cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))) if self.device.type == "cuda" else ("auto", "cpu")

    def install_signal_handlers(self) -> None:
        def on_term(signum, _frame) -> None:
            log.info("signal %s: finishing the current step, then requeueing", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    def run(self, *, max_jobs: int | None = None, exit_when_idle: bool = False, poll_seconds: float = 0.5) -> int:
        """Work until stopped; returns how many jobs ran."""
        from importlib.metadata import version

        if is_sqlite(self.engine) and (others := workers.other_hosts_alive(self.engine, socket.gethostname(), self.settings.lease_seconds)):
            raise SystemExit(f"SQLite is already used by workers on {', '.join(others)}: SQLite needs all workers on one host; "
                             "use PostgreSQL (EMBEDLAB_DATABASE_URL=postgresql+psycopg://...) for several hosts")
        workers.register(self.engine, self.id, host=socket.gethostname(), pid=os.getpid(), device=str(self.device), version=version("embedlab"))
        done = 0
        try:
            while not self.stopping.is_set() and (max_jobs is None or done < max_jobs):
                jobs.requeue_expired(self.engine)
                claim = jobs.claim(self.engine, self.id, devices=self.accepts, lease_seconds=self.settings.lease_seconds,
                                   run_device=str(self.device), max_running_per_user=self.settings.max_running_per_user)
                if claim is None:
                    workers.beat(self.engine, self.id, None)
                    if exit_when_idle:
                        break
                    self.stopping.wait(poll_seconds)
                    continue
                self.run_one(claim)
                done += 1
        finally:
            workers.stopped(self.engine, self.id)
        return done

    def share_of_cores(self) -> int:
        if self.fixed_threads:
            return self.fixed_threads
        busy = workers.busy_on_host(self.engine, socket.gethostname(), self.settings.lease_seconds)
        return max(1, (os.cpu_count() or 1) // max(1, busy))

    def run_one(self, claim: jobs.Claim) -> None:
        run = JobRun(self, claim)
        beating = threading.Event()

        workers.beat(self.engine, self.id, claim.job_id)
        run.threads = self.share_of_cores()
        torch.set_num_threads(run.threads)

        def heartbeat_loop() -> None:
            while not beating.wait(self.settings.heartbeat_seconds):
                try:
                    run.heartbeat()
                    workers.beat(self.engine, self.id, claim.job_id)
                    run.threads = self.share_of_cores()
                except Exception:  # a missed beat is retried; the lease has slack for it
                    log.exception("heartbeat failed")

        beater = threading.Thread(target=heartbeat_loop, name=f"heartbeat-{claim.job_id}", daemon=True)
        beater.start()
        job_id, token = claim.job_id, claim.token
        try:
            spec = JobSpec.model_validate(claim.spec)
            train(spec, run, self.settings)
            run.flush()
            jobs.finish(self.engine, job_id, token, "succeeded", step=spec.steps)
        except StopRequested as stop:
            run.flush()
            if stop.reason == "cancel":
                jobs.finish(self.engine, job_id, token, "cancelled", step=run.step)
            elif stop.reason == "pruned":  # kept: metrics, best and last checkpoints
                jobs.finish(self.engine, job_id, token, "pruned", step=run.step)
            elif stop.reason == "shutdown":
                jobs.release(self.engine, job_id, token, step=run.step)
            # "lost": another worker owns the job now; write nothing.
        except JobFailed as e:
            run.flush()
            run.log("error", str(e))
            jobs.finish(self.engine, job_id, token, "failed", error=str(e), step=run.step)
        except Exception as e:
            run.flush()
            reason = f"{type(e).__name__}: {e} (at step {run.step})"
            run.log("error", "".join(traceback.format_exception_only(e)).strip() + f"\n{traceback.format_exc(limit=-4)}")
            jobs.retry_or_fail(self.engine, job_id, token, error=reason, backoff_seconds=self.settings.retry_backoff_seconds)
        finally:
            beating.set()
            beater.join()
        if run.trial:
            run.trial.ended(self.settings)


def search_trial(engine, job_id: int):
    from app.search import TrialReporter

    return TrialReporter.for_job(engine, job_id)


def main(device: str = "auto", threads: int | None = None, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = Worker(Settings(), device=device, threads=threads)
    worker.install_signal_handlers()
    log.info("worker %s on %s, %d thread(s), database %s", worker.id, worker.device, torch.get_num_threads(), worker.settings.db_url)
    worker.run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
    return 0
