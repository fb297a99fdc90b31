"""The worker: claim jobs for its free devices, train them, report; again.

A worker offers N devices (`--devices N`: N GPUs, or N CPU processes) and runs attempts whose device counts sum
to at most N: two 1-device jobs at once on 2 devices, or one 2-device job. Each attempt trains in a process the
worker forks, under a memory ceiling (trainer.memory): a job that needs more fails with the reason instead of
taking the worker down, and the other attempts and the worker go on. The worker keeps each attempt's lease: the
attempt's heartbeat thread renews it and brings back cancel requests, passed to the attempt through shared memory
with the step and the thread count; the training loop checks them between steps, so cancel and SIGTERM act
within a step. Every database write goes through app.store, carrying the lease token, and is refused once the
lease was taken over.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
import uuid

import torch

from app import costs
from app.config import Settings
from app.lifeline import die_with_parent
from app.spec import JobSpec
from app.store import joblogs, jobs, metrics, workers
from app.store.db import get_engine, init_db, is_sqlite
from trainer import memory, ranks
from trainer.diskspace import DiskGuard
from trainer.errors import JobFailed, StopRequested
from trainer.train import train

log = logging.getLogger("embedlab.worker")
FLUSH_SECONDS = 0.5  # metric points reach the dashboard within this, plus the stream's poll
PHASE_BYTES = 100  # the jobs row's phase column is String(100)
# Attempts are forked from the worker: its CUDA checks must not initialise CUDA (NVML answers instead).
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
STOP_REASONS = (None, "cancel", "lost", "shutdown", "pruned")  # stop_reason, as a code in shared memory


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

    def __init__(self, worker: Worker, claim: jobs.Claim, devices: list[torch.device]):
        self.worker, self.claim = worker, claim
        self.engine = worker.engine
        self.devices = devices  # this attempt's, one per rank, none shared with another attempt of the worker
        self.device = devices[0]
        self.job_dir = worker.settings.job_dir(claim.job_id)
        # Seen by the worker and the attempt process it forks: step, stop reason, threads.
        self._shared = multiprocessing.RawArray("q", 3)
        self._phase = multiprocessing.RawArray("c", PHASE_BYTES)  # what the job does after its steps, for the heartbeat
        self.trial = search_trial(self.engine, claim.job_id)  # a search's trial reports to its pruner
        self.step = claim.step
        self._points: list[metrics.Point] = []
        self._last_flush = time.monotonic()
        self._rate: tuple[float, int] | None = None  # (time, step) at the previous heartbeat
        self.ranks = len(devices)  # the attempt's processes share its cores

    @property
    def step(self) -> int:
        return self._shared[0]

    @step.setter
    def step(self, value: int) -> None:
        self._shared[0] = value

    @property
    def stop_reason(self) -> str | None:
        return STOP_REASONS[self._shared[1]]

    @stop_reason.setter
    def stop_reason(self, value: str | None) -> None:
        self._shared[1] = STOP_REASONS.index(value)

    @property
    def threads(self) -> int | None:
        """Set by the heartbeat when threads are shared automatically."""
        return self._shared[2] or None

    @threads.setter
    def threads(self, value: int | None) -> None:
        self._shared[2] = value or 0

    def share(self) -> int:
        """Threads of one rank: the attempt's cores split among its ranks."""
        return max(1, (self.threads or 1) // self.ranks)

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
        if self.threads and self.share() != torch.get_num_threads():
            torch.set_num_threads(self.share())
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()
        if self.worker.stopping.is_set() and self.stop_reason is None:
            self.stop_reason = "shutdown"
        if self.stop_reason:
            raise StopRequested(self.stop_reason)

    def phase(self, text: str | None) -> None:
        """Carried to the jobs row by the worker's next heartbeat ("laying out embeddings: 40%")."""
        self._phase.value = (text or "").encode()[: PHASE_BYTES - 1]

    def still_owner(self) -> bool:
        return self.stop_reason != "lost" and jobs.owns(self.engine, self.claim.job_id, self.claim.token)

    def flush(self) -> None:
        points, self._points = self._points, []
        self._last_flush = time.monotonic()
        if points and not metrics.append(self.engine, self.claim.job_id, self.claim.attempt, self.claim.token, points):
            self.stop_reason = "lost"

    def summarize(self, entries: dict) -> None:
        if not jobs.update_summary(self.engine, self.claim.job_id, self.claim.token, entries):
            self.stop_reason = "lost"

    # -- called by the worker --

    def heartbeat(self) -> None:
        now = time.monotonic()
        rate = None
        if self._rate and now > self._rate[0] and self.step > self._rate[1]:
            rate = (self.step - self._rate[1]) / (now - self._rate[0])
        self._rate = (now, self.step)
        answer = jobs.heartbeat(
            self.engine,
            self.claim.job_id,
            self.claim.token,
            step=self.step,
            steps_per_second=rate,
            lease_seconds=self.worker.settings.lease_seconds,
            phase=self._phase.value.decode(errors="ignore") or None,
        )
        if answer != "ok" and self.stop_reason != "lost":
            self.stop_reason = "lost" if answer == "lost" else "cancel"


class Attempt:
    """One job's attempt on some of the worker's devices: its process, forked from its own thread, and its own
    heartbeat thread renewing its lease. Attempts share nothing else, so one that fails, runs out of memory or is
    cancelled leaves the others running."""

    def __init__(self, worker: Worker, claim: jobs.Claim, slots: list[int]):
        self.worker, self.claim, self.slots = worker, claim, slots  # slots: indices into worker.devices
        self.run = JobRun(worker, claim, [worker.devices[i] for i in slots])
        self.exitcode: list[int | None] = []  # empty: the process never started
        self._beating = threading.Event()
        self._runner = threading.Thread(target=self._fork_and_wait, name=f"attempt-{claim.job_id}")
        self._beater = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{claim.job_id}", daemon=True)
        self.ceiling = 0

    def start(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._runner.start()
        self._beater.start()

    def alive(self) -> bool:
        return self._runner.is_alive()

    def stop_beating(self) -> None:
        self._beating.set()
        self._beater.join()

    def _fork_and_wait(self) -> None:
        # fork: the attempt starts at once, with what the worker holds (settings; patched functions in tests).
        # From a fresh thread: OpenMP's thread pool belongs to the thread that ran parallel regions, and an
        # attempt forked from that one (a process that trained before: a test) hangs at its first; this
        # thread also outlives the attempt, as the kernel sends the parent-death signal when it ends.
        with self.worker.fork_lock:  # no other thread of the worker is inside the database client meanwhile
            process = multiprocessing.get_context("fork").Process(
                target=self.worker.attempt, args=(self.run, self.ceiling, os.getpid()), name=f"job-{self.claim.job_id}"
            )
            process.start()
        process.join()
        self.exitcode.append(process.exitcode)

    def _heartbeat_loop(self) -> None:
        while not self._beating.wait(self.worker.settings.heartbeat_seconds):
            try:
                with self.worker.fork_lock:
                    self.run.heartbeat()
                    self.run.threads = self.worker.threads_for(self.run)
            except Exception:  # a missed beat is retried; the lease has slack for it
                log.exception("heartbeat of job %d failed", self.claim.job_id)


class Worker:
    def __init__(
        self, settings: Settings, device: str = "auto", threads: int | None = None, worker_id: str | None = None, devices: int = 1
    ):
        self.settings = settings
        self.engine = get_engine(settings.db_url)
        init_db(self.engine)
        self.device = resolve_device(device)
        # What this worker's attempts share out: N CPU processes, or N consecutive GPUs from `device`.
        self.devices = ranks.rank_devices(self.device, devices)
        self.attempts: list[Attempt] = []  # running now, each holding its own of the devices
        # Held while an attempt forks and around the worker's own database calls, so that no attempt starts
        # with a lock of the database client that another thread of the worker held at that instant.
        self.fork_lock = threading.Lock()
        self._next_beat = 0.0
        self.done = 0  # attempts that ended in this run()
        # Fixed threads split among the devices its attempts hold, or (None) a fair share of the host's cores
        # among the devices busy on it, revised at each heartbeat: one job alone gets every core, a packed sweep one each.
        self.fixed_threads = threads
        if threads:
            torch.set_num_threads(threads)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.disk = DiskGuard(settings, self.stopping, log)
        # Which queued jobs this worker may take (by their `device` field).
        self.accepts = (
            ("auto", "cpu", "cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count())))
            if self.device.type == "cuda"
            else ("auto", "cpu")
        )

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
            raise SystemExit(
                f"SQLite is already used by workers on {', '.join(others)}: SQLite needs all workers on one host; "
                "use PostgreSQL (EMBEDLAB_DATABASE_URL=postgresql+psycopg://...) for several hosts"
            )
        self.disk.retrying(
            lambda: workers.register(
                self.engine,
                self.id,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=str(self.device),
                devices=len(self.devices),
                version=version("embedlab"),
            ),
            "register the worker",
        )
        self.done = 0
        try:
            while True:
                self.reap()
                if self.stopping.is_set():
                    self.shut_down()  # SIGTERM: each attempt checkpoints and requeues its job
                    if not self.attempts:
                        break
                else:
                    free = self.free_slots() if max_jobs is None or self.done + len(self.attempts) < max_jobs else []
                    if free and not self.disk.may_claim():
                        continue  # it waited out a delay: the disk a job filled has no more room yet
                    if free and self.claim_and_start(free):
                        continue  # at once: there may be devices left for another job
                    if not self.attempts and (exit_when_idle or (max_jobs is not None and self.done >= max_jobs)):
                        break
                self.beat()
                if self.stopping.is_set():
                    time.sleep(0.2)  # the attempts are stopping: look again soon
                else:
                    self.stopping.wait(poll_seconds)
        finally:
            self.shut_down()  # the loop raised: the attempts still running requeue their jobs
            try:
                workers.stopped(self.engine, self.id)
            except Exception as e:  # on a full disk the worker shows as lost once its heartbeat is old: true enough
                if (reason := self.disk.reason(e)) is None:
                    raise
                log.warning("could not record that the worker stopped: %s", reason)
        return self.done

    def shut_down(self) -> None:
        for attempt in self.attempts:
            if attempt.run.stop_reason is None:
                attempt.run.stop_reason = "shutdown"

    def free_slots(self) -> list[int]:
        held = {i for attempt in self.attempts for i in attempt.slots}
        return [i for i in range(len(self.devices)) if i not in held]

    def claim_and_start(self, free: list[int]) -> bool:
        """Claim a job for the free devices and start it on the first of them; whether one started."""
        claim = self.disk.retrying(lambda: self.poll(free), "poll the queue")
        if claim is None:
            return False
        self.start(claim, free[: int(claim.spec.get("devices", 1))])  # as poll named them
        return True

    def start(self, claim: jobs.Claim, slots: list[int]) -> None:
        with self.fork_lock:
            attempt = Attempt(self, claim, slots)
            self.attempts.append(attempt)
            attempt.run.threads = self.threads_for(attempt.run)
            # Per process: each device an idle or busy worker on the host offers is one attempt process at most.
            ceiling = costs.ceiling(self.settings, workers.slots_on_host(self.engine, socket.gethostname(), self.settings.lease_seconds))
        attempt.start(ceiling)
        self._next_beat = 0.0

    def reap(self) -> None:
        """The attempts whose process ended: what their ending says, and their devices are free again."""
        for attempt in [a for a in self.attempts if not a.alive()]:
            attempt.stop_beating()
            self.attempts.remove(attempt)
            try:
                with self.fork_lock:
                    self.ended(attempt)
            except Exception as e:  # the database is full: the outcome waits until it can be stored
                if (reason := self.disk.reason(e)) is None:
                    raise
                self.disk.retrying(
                    lambda c=attempt.claim, r=reason: self.record_failure(c, r), f"record that job {attempt.claim.job_id} failed"
                )
            self.done += 1
            self._next_beat = 0.0

    def ended(self, attempt: Attempt) -> None:
        run = attempt.run
        if attempt.exitcode != [0]:
            self.attempt_died(run, attempt.exitcode[0] if attempt.exitcode else None)
        elif (row := jobs.get(self.engine, run.claim.job_id)) is not None and row.status == "failed":
            self.disk.job_ended(row.error)  # the attempt's process filled the disk: this worker waits for room
        if run.trial:
            run.trial.ended(self.settings)  # the study hears how the trial ended; the search may ask for the next

    def beat(self) -> None:
        """The worker is alive (every heartbeat, and when its attempts change), with the first job it runs."""
        if time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + self.settings.heartbeat_seconds
        try:
            with self.fork_lock:
                workers.beat(self.engine, self.id, min((a.claim.job_id for a in self.attempts), default=None))
        except Exception:  # a missed beat is retried; the lease has slack for it
            log.exception("worker heartbeat failed")

    def record_failure(self, claim: jobs.Claim, reason: str) -> None:
        with self.fork_lock:
            joblogs.add(self.engine, claim.job_id, claim.attempt, claim.token, "error", reason)
            jobs.finish(self.engine, claim.job_id, claim.token, "failed", error=reason)

    def poll(self, free: list[int]) -> jobs.Claim | None:
        """Requeue expired leases, then claim a job that fits the free devices (named by the job's device count)."""
        with self.fork_lock:
            jobs.requeue_expired(self.engine)
            return jobs.claim(
                self.engine,
                self.id,
                devices=self.accepts,
                lease_seconds=self.settings.lease_seconds,
                run_device={n: self.run_device(free[:n]) for n in range(1, len(free) + 1)},
                max_running_per_user=self.settings.max_running_per_user,
                free_devices=len(free),
                all_devices=len(self.devices),
            )

    def run_device(self, slots: list[int]) -> str:
        """What an attempt on these of the worker's devices runs on: "cpu", "cpu x2", "cuda:1", "cuda:0,1"."""
        if self.device.type != "cuda":
            return str(self.device) + (f" x{len(slots)}" if len(slots) > 1 else "")
        return "cuda:" + ",".join(str(self.devices[i].index) for i in slots)

    def threads_for(self, run: JobRun) -> int:
        return self.share_per_device() * run.ranks

    def share_per_device(self) -> int:
        """Threads per device an attempt holds (one per rank): the worker's fixed threads among the devices its
        attempts hold, or the host's cores among the devices that running jobs hold on it."""
        if self.fixed_threads:
            return max(1, self.fixed_threads // max(1, sum(len(a.slots) for a in list(self.attempts))))
        busy = workers.devices_busy_on_host(self.engine, socket.gethostname(), self.settings.lease_seconds)
        return max(1, (os.cpu_count() or 1) // max(1, busy))

    def attempt(self, run: JobRun, ceiling: int, worker_pid: int) -> None:
        """One attempt of one job, in the forked process: train, then write how it ended."""
        die_with_parent(signal.SIGKILL, worker_pid)
        self.engine.dispose(close=False)  # the worker's pooled connections stay the worker's
        claim = run.claim
        job_id, token = claim.job_id, claim.token
        spec = JobSpec.model_validate(claim.spec)
        threads = run.share()
        # The other ranks are forked first: before CUDA is initialised here, which a fork would not survive.
        group = ranks.Ranks(spec, self.settings, run.devices, run.job_dir, threads, ceiling) if spec.devices > 1 else None
        if run.device.type == "cuda":
            torch.cuda.init()  # the driver's own reservations come before the cap
        memory.limit(ceiling)
        torch.set_num_threads(threads)
        out_of_memory: str | None = None
        try:
            with group or contextlib.nullcontext():
                train(spec, run, self.settings)
            run.flush()
            jobs.finish(self.engine, job_id, token, "succeeded", step=run.step)  # below spec.steps when stopped early
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
            if memory.is_out_of_memory(e):
                memory.lend_headroom()
                out_of_memory = memory.out_of_memory_reason(e, spec, run.step, ceiling)
            elif full := self.disk.job_failed(e):  # another attempt would fill the disk again: fail now, naming it
                run.log("error", full)
                jobs.finish(self.engine, job_id, token, "failed", error=full, step=run.step)
            else:
                run.flush()
                reason = f"{type(e).__name__}: {e} (at step {run.step})"
                run.log("error", "".join(traceback.format_exception_only(e)).strip() + f"\n{traceback.format_exc(limit=-4)}")
                jobs.retry_or_fail(self.engine, job_id, token, error=reason, backoff_seconds=self.settings.retry_backoff_seconds)
        if out_of_memory:  # past the except block, whose traceback held the step's tensors
            run.flush()
            run.log("error", out_of_memory)
            jobs.finish(self.engine, job_id, token, "failed", error=out_of_memory, step=run.step)  # not retried: it would fail again

    def attempt_died(self, run: JobRun, exitcode: int | None) -> None:
        """The attempt process ended without writing an outcome (a signal, a crash) or never started: retry the job."""
        claim = run.claim
        if not jobs.owns(self.engine, claim.job_id, claim.token):
            return
        if exitcode is None:
            cause = "could not be started"
        elif exitcode < 0:
            name = signal.Signals(-exitcode).name
            cause = f"was killed by {name}" + (
                " (the kernel's out-of-memory killer sends it when the host runs out of memory)" if name == "SIGKILL" else ""
            )
        else:
            cause = f"exited with code {exitcode}"
        reason = f"the training process {cause} at step {run.step}"
        log.warning("job %d: %s", claim.job_id, reason)
        run.log("error", reason)
        jobs.retry_or_fail(self.engine, claim.job_id, claim.token, error=reason, backoff_seconds=self.settings.retry_backoff_seconds)


def search_trial(engine, job_id: int):
    from app.search import TrialReporter

    return TrialReporter.for_job(engine, job_id)


def main(
    device: str = "auto", threads: int | None = None, max_jobs: int | None = None, exit_when_idle: bool = False, devices: int = 1
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = Worker(Settings(), device=device, threads=threads, devices=devices)
    worker.install_signal_handlers()
    log.info("worker %s on %s, %d thread(s), database %s", worker.id, worker.device, torch.get_num_threads(), worker.settings.db_url)
    worker.run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
    return 0
