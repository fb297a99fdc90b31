"""The data-parallel ranks of one job attempt (`devices: N`): torch.distributed and pytorch-metric-learning's wrappers.

Rank 0 is the attempt process itself (trainer.worker forks it under the memory ceiling) and the only one that
writes: metrics, checkpoints and artifacts go through the job's Run, with the lease checks every write has.
Ranks 1..N-1 are forked from it by torch.multiprocessing before CUDA is initialised; they train and write
nothing (QuietRun). The gradients are averaged by DistributedDataParallel; the loss and the miner see the
gathered global batch (DistributedLossWrapper / DistributedMinerWrapper), which is what makes a large batch's
negatives from the other ranks count.

The ranks agree through rank 0 at every step: it draws the global PK batch and broadcasts it (each rank keeps
its 1/N of the classes, K images each), and after the step it broadcasts whether to stop (cancel, shutdown,
lease lost, patience). A rank that dies breaks the next collective on the others (Gloo and NCCL report the
closed peer); one that hangs is given up on after `collective_timeout_seconds` (init_process_group's
`timeout`). Either way rank 0 raises, ends the other ranks, and the attempt fails naming the rank and, when the
rank raised, its reason (each rank writes it to a file of the attempt before it exits); the worker retries it, and
the retry resumes from the last checkpoint. A rank out of memory fails the job at once, as rank 0 out of memory does:
the same spec would run out again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper, DistributedMinerWrapper, all_gather_embeddings_and_labels

from app.config import Settings
from app.lifeline import die_with_parent
from app.spec import JobSpec
from trainer import memory
from trainer.errors import JobFailed, StopRequested

STOPS = (None, "cancel", "lost", "shutdown", "pruned")  # StopRequested reasons, as broadcast codes


class RankDied(RuntimeError):
    """Another rank of the attempt ended or stopped answering: the attempt fails (and is retried) on every rank."""


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def lead() -> bool:
    """Rank 0, or the only process: the one that evaluates and writes."""
    return rank() == 0


def rank_devices(first: torch.device, count: int) -> list[torch.device]:
    """The devices of `count` ranks: N CPU processes, or N consecutive GPUs from `first`."""
    if first.type != "cuda":
        return [first] * count
    start = first.index or 0
    if start + count > torch.cuda.device_count():
        raise SystemExit(f"{count} devices from {first} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return [torch.device(f"cuda:{start + i}") for i in range(count)]


class QuietRun:
    """The Run of ranks 1..N-1: rank 0 writes for the job and decides when to stop (`check` below)."""

    def __init__(self, device: torch.device, job_dir: Path):
        self.device, self.job_dir = device, job_dir
        self.step = 0  # for the reason this rank reports if it fails

    def log(self, level: str, message: str) -> None:
        return None  # rank 0 writes it

    def metric(self, name: str, step: int, value: float) -> None:
        return None  # rank 0 writes it

    def check(self, step: int) -> None:
        self.step = step  # rank 0 checks, and broadcasts the stop

    def still_owner(self) -> bool:
        return False

    def flush(self) -> None:
        return None  # rank 0 writes it

    def summarize(self, entries: dict[str, Any]) -> None:
        return None  # rank 0 writes it

    def phase(self, text: str | None) -> None:
        return None  # rank 0 writes it


def _broadcast(values: torch.Tensor) -> torch.Tensor:
    """Rank 0's `values` on every rank (NCCL moves only GPU tensors)."""
    if dist.get_backend() == "nccl":
        on = values.to(torch.device("cuda", torch.cuda.current_device()))
        dist.broadcast(on, 0)
        return on.cpu()
    dist.broadcast(values, 0)
    return values


def share_batch(draw: Callable[[], np.ndarray], size: int) -> np.ndarray:
    """The global batch's rows: drawn by rank 0 (exactly as a one-process job draws it), sent to the others."""
    if world() == 1:
        return draw()
    rows = torch.from_numpy(draw()) if lead() else torch.empty(size, dtype=torch.int64)
    return _broadcast(rows).numpy()


def my_part(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Positions in the global PK batch of this rank's classes: the r-th 1/N of its classes, K images each."""
    if world() == 1:
        return np.arange(len(rows))
    _, first = np.unique(labels, return_index=True)
    classes = labels[np.sort(first)]
    share = len(classes) // world()
    mine = classes[rank() * share : (rank() + 1) * share]
    return np.flatnonzero(np.isin(labels, mine))


def agreed(flag: bool) -> bool:
    """Rank 0's `flag` (whether patience ran out) on every rank."""
    if world() == 1:
        return flag
    return bool(_broadcast(torch.tensor([int(flag)], dtype=torch.int64))[0])


def check(run: Any, step: int) -> None:
    """run.check on rank 0, its answer on every rank: all ranks stop at the same step, none waits in a collective."""
    if world() == 1:
        run.check(step)
        return
    code = 0
    try:
        run.check(step)
    except StopRequested as stop:
        code = STOPS.index(stop.reason)
    code = int(_broadcast(torch.tensor([code], dtype=torch.int64))[0])
    if code:
        raise StopRequested(STOPS[code])


def data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """What the training step calls: DistributedDataParallel over `model` (which keeps its own state_dict keys)."""
    if world() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """BatchNorm statistics over the global batch on GPUs (SyncBatchNorm has no CPU kernel: there each rank's own)."""
    if world() == 1 or device.type != "cuda":
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def gathering(loss_fn: Any, miner: Any) -> tuple[Any, Any]:
    """The training step's loss and miner over the gathered global batch (the validation loss keeps the plain ones)."""
    if world() == 1:
        return loss_fn, miner
    from trainer.losses import UniquePairs

    if isinstance(miner, UniquePairs):
        miner = UniquePairs(DistributedMinerWrapper(miner.miner))
    elif miner is not None:
        miner = DistributedMinerWrapper(miner)
    return DistributedLossWrapper(loss_fn), miner


def gathered(emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch's embeddings and labels (the batch diagnostics measure the batch the loss saw)."""
    if world() == 1:
        return emb, labels
    others, other_labels = all_gather_embeddings_and_labels(emb, labels)
    return torch.cat([emb, others]), torch.cat([labels, other_labels])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank_: int, count: int, port: int, device: torch.device, timeout_seconds: float) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank_,
        world_size=count,
        timeout=timedelta(seconds=timeout_seconds),
    )


def _rank_main(
    i: int,
    spec: JobSpec,
    settings: Settings,
    devices: list[torch.device],
    port: int,
    job_dir: Path,
    parent: int,
    threads: int,
    ceiling: int,
    reports: Path,
) -> None:
    """Rank i + 1: train with the others, write nothing but why it failed; a stop agreed with rank 0 ends it cleanly."""
    from trainer.train import train

    die_with_parent(signal.SIGKILL, parent)
    device = devices[i + 1]
    if device.type == "cuda":
        torch.cuda.init()
    memory.limit(ceiling)
    torch.set_num_threads(threads)
    _join(i + 1, len(devices), port, device, settings.collective_timeout_seconds)
    run = QuietRun(device, job_dir)
    try:
        with contextlib.suppress(StopRequested):  # the stop rank 0 agreed: a clean end
            train(spec, run, settings)
    except Exception as e:
        oom = memory.is_out_of_memory(e)
        why = f"ran {memory.out_of_memory_reason(e, spec, run.step, ceiling)}" if oom else f"raised {type(e).__name__}: {e}"
        _report(reports, i + 1, oom, why)
        raise
    finally:
        dist.destroy_process_group()


def _report(reports: Path, rank_: int, out_of_memory: bool, why: str) -> None:
    """A rank's reason for rank 0, written whole (renamed into place) before the rank exits."""
    part = reports / f"{rank_}.part"
    part.write_text(f"{int(out_of_memory)}{why}")
    part.rename(reports / str(rank_))


class Ranks:
    """Ranks 1..N-1 of one attempt, forked at once (before CUDA); `with` makes this process rank 0 of the group."""

    def __init__(self, spec: JobSpec, settings: Settings, devices: list[torch.device], job_dir: Path, threads: int, ceiling: int):
        self.spec, self.settings, self.devices = spec, settings, devices
        self.port = free_port()
        self.reports = Path(tempfile.mkdtemp(prefix="embedlab-ranks-"))  # why a rank failed, one file each
        self.out_of_memory = False
        self.context = mp.start_processes(
            _rank_main,
            args=(spec, settings, devices, self.port, job_dir, os.getpid(), threads, ceiling, self.reports),
            nprocs=len(devices) - 1,
            join=False,
            start_method="fork",
        )

    def __enter__(self) -> Ranks:
        _join(0, len(self.devices), self.port, self.devices[0], self.settings.collective_timeout_seconds)
        return self

    def ended(self) -> str | None:
        """How the first rank that ended abnormally ended, if one did: "rank 1 of 2 was killed by SIGKILL",
        "rank 1 of 2 raised ValueError: ...", "rank 1 of 2 ran out of memory at step 7: ..."."""
        for i, process in enumerate(self.context.processes):
            code = process.exitcode
            if code:
                report = self.reports / str(i + 1)
                if report.is_file():
                    text = report.read_text()
                    self.out_of_memory, cause = text[0] == "1", text[1:]
                else:
                    cause = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                return f"rank {i + 1} of {len(self.devices)} {cause}"
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: Any) -> bool:
        try:
            if error is None:
                for process in self.context.processes:  # they end right after the last step; rank 0 then tests and exports
                    process.join(self.settings.collective_timeout_seconds)
                if died := self.ended():
                    raise RankDied(f"{died} after the last step")
                return False
            for process in self.context.processes:
                process.join(0.5)  # a rank that raised has its exit code by now
            died = self.ended()
            own = isinstance(error, (JobFailed, StopRequested)) or memory.is_out_of_memory(error)  # rank 0's reason stands
            if died and not own:  # rank 0's error is the collective the dead rank broke
                if self.out_of_memory:  # not retried: it would run out again
                    raise JobFailed(died) from error
                raise RankDied(f"{died}; the attempt fails on every rank") from error
            if isinstance(error, RuntimeError) and "timed out" in str(error).lower():
                raise RankDied(
                    f"a rank did not answer within collective_timeout_seconds={self.settings.collective_timeout_seconds:g}; "
                    "the attempt fails on every rank"
                ) from error
            return False
        finally:
            for process in self.context.processes:
                if process.is_alive():
                    process.kill()
                process.join()
            dist.destroy_process_group()
            shutil.rmtree(self.reports, ignore_errors=True)
