"""A job on two ranks (Gloo, CPU processes) through a real worker: the same loss as one process on the same global
batch, and a rank that dies fails the attempt on both ranks, the retry resuming from the last checkpoint."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from app.spec import JobSpec
from app.store import joblogs, jobs, metrics
from tests.conftest import free_port, wait_for
from trainer import ranks
from trainer.losses import LOSSES, MINERS, build_loss
from trainer.worker import Worker

# freeze_bn: on CPU each rank normalises with its own half-batch's statistics (SyncBatchNorm is GPU-only),
# so only with fixed statistics is the 2-rank forward the 1-process one, image for image.
SMALL = dict(dataset="digits", classes_per_batch=4, samples_per_class=8, explorer=False, freeze_bn=True, test_fraction=0.0)


def train_and_losses(settings, engine, spec: JobSpec, devices: int) -> tuple[dict, list[float]]:
    created = jobs.submit(engine, spec)
    Worker(settings, threads=2, devices=devices).run(max_jobs=1, exit_when_idle=True)
    done = jobs.get(engine, created.id)
    assert done.status == "succeeded", done.error
    return done, metrics.series(engine, created.id, ["train/loss"])["train/loss"]["value"]


def test_two_ranks_train_on_the_global_batch_as_one_process_does(settings, engine):
    one, one_loss = train_and_losses(settings, engine, JobSpec(**SMALL, steps=3, eval_every=3), devices=1)
    two, two_loss = train_and_losses(settings, engine, JobSpec(**SMALL, steps=3, eval_every=3, devices=2), devices=2)
    # Step 1: same weights, same global batch, the loss and miner over the gathered embeddings: the same loss.
    assert two_loss[0] == pytest.approx(one_loss[0], rel=1e-5)
    # Later steps differ only by the order the gradients were summed in.
    assert two_loss == pytest.approx(one_loss, rel=1e-3)
    assert two.summary["val/mean_average_precision_at_r"] == pytest.approx(one.summary["val/mean_average_precision_at_r"], abs=1e-3)
    assert two.run_device == "cpu x2" and one.run_device == "cpu"


def test_a_killed_rank_fails_the_attempt_on_every_rank_and_the_retry_resumes(settings, engine, monkeypatch, tmp_path):
    settings.collective_timeout_seconds = 30  # a hung rank would be given up on after this; a dead one is noticed at once
    marker = tmp_path / "killed"

    def die_once(self, step: int) -> None:  # rank 1's per-step check (QuietRun), patched before the worker forks
        if step == 6 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(ranks.QuietRun, "check", die_once)
    created = jobs.submit(engine, JobSpec(**SMALL, steps=10, eval_every=4, devices=2))
    Worker(settings, threads=2, devices=2).run(max_jobs=2)  # the first attempt, then its retry after the backoff
    done = jobs.get(engine, created.id)
    assert done.status == "succeeded" and done.attempts == 2, done.error
    log = [line["message"] for line in joblogs.lines(engine, created.id)]
    failed = next(m for m in log if "rank 1 of 2 was killed by SIGKILL" in m)
    assert "RankDied" in failed
    assert "resumed from the checkpoint at step 4" in log
    steps = metrics.series(engine, created.id, ["train/loss"])["train/loss"]["step"]
    assert steps[-1] == 10


def test_a_rank_that_raises_is_reported_with_its_exception(settings, engine, monkeypatch):
    def raise_at_6(self, step: int) -> None:  # rank 1's per-step check (QuietRun), patched before the worker forks
        if step == 6:
            raise ValueError("rank-side failure at step 6")

    monkeypatch.setattr(ranks.QuietRun, "check", raise_at_6)
    created = jobs.submit(engine, JobSpec(**SMALL, steps=10, eval_every=10, devices=2), max_attempts=1)
    Worker(settings, threads=2, devices=2).run(max_jobs=1)
    done = jobs.get(engine, created.id)
    assert done.status == "failed", done
    assert "RankDied: rank 1 of 2 raised ValueError: rank-side failure at step 6; the attempt fails on every rank" in done.error


def test_a_rank_out_of_memory_fails_the_job_with_the_reason_and_is_not_retried(settings, engine, monkeypatch):
    def allocate_at_6(self, step: int) -> None:
        self.step = step
        if step == 6:
            torch.empty(1 << 42, dtype=torch.uint8)  # 4 TiB: refused by the allocator, as a step too big for the memory ceiling is

    monkeypatch.setattr(ranks.QuietRun, "check", allocate_at_6)
    created = jobs.submit(engine, JobSpec(**SMALL, steps=10, eval_every=10, devices=2), max_attempts=3)
    Worker(settings, threads=2, devices=2).run(max_jobs=1)
    done = jobs.get(engine, created.id)
    assert done.status == "failed" and done.attempts == 1, done
    assert done.error.startswith("rank 1 of 2 ran out of memory at step 7: training asked for 4096.0 GB at once"), done.error
    assert "this job's memory limit" in done.error
    assert done.error in [line["message"] for line in joblogs.lines(engine, created.id)]


@pytest.mark.slow
def test_a_rank_that_stops_answering_fails_the_attempt_after_the_collective_timeout(settings, engine, monkeypatch, tmp_path):
    """A hung rank (SIGSTOP: alive, silent) is given up on after collective_timeout_seconds, and the retry resumes."""
    settings.collective_timeout_seconds = 10  # above rank 0's evaluations of digits on a busy machine
    marker = tmp_path / "stopped"

    def hang_once(self, step: int) -> None:
        if step == 6 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGSTOP)

    monkeypatch.setattr(ranks.QuietRun, "check", hang_once)
    created = jobs.submit(engine, JobSpec(**SMALL, steps=10, eval_every=4, devices=2))
    Worker(settings, threads=2, devices=2).run(max_jobs=2)
    done = jobs.get(engine, created.id)
    assert done.status == "succeeded" and done.attempts == 2, done.error
    log = [line["message"] for line in joblogs.lines(engine, created.id)]
    assert any("a rank did not answer within collective_timeout_seconds=10" in m for m in log), log
    assert "resumed from the checkpoint at step 4" in log


def test_a_shutdown_stops_both_ranks_at_one_step_and_the_next_worker_resumes_there(settings, engine):
    """SIGTERM's path: rank 0 hears it, both ranks stop after the same step, the checkpoint is that step's."""
    created = jobs.submit(engine, JobSpec(**SMALL, steps=150, eval_every=150, devices=2))
    worker = Worker(settings, threads=2, devices=2)

    def stop_when_training() -> None:
        wait_for(lambda: jobs.get(engine, created.id).step >= 3, 60, 0.1, "the job to train")
        worker.stopping.set()  # what the worker's SIGTERM handler does

    threading.Thread(target=stop_when_training, daemon=True).start()
    worker.run(max_jobs=1)
    stopped = jobs.get(engine, created.id)
    assert stopped.status == "queued" and 3 <= stopped.step < 150, stopped.error
    Worker(settings, threads=2, devices=2).run(max_jobs=1, exit_when_idle=True)
    done = jobs.get(engine, created.id)
    assert done.status == "succeeded", done.error
    assert f"resumed from the checkpoint at step {stopped.step}" in [line["message"] for line in joblogs.lines(engine, created.id)]


def _every_loss_and_miner_on_half_the_batch(rank: int, port: int) -> None:
    # Forked from the test process, whose earlier tests ran torch's OpenMP pool: a forked child entering a parallel
    # region of that pool hangs. The worker's ranks are forked from an attempt that has not computed yet.
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=timedelta(seconds=30))
    torch.manual_seed(0)
    emb, labels = F.normalize(torch.randn(32, 16), dim=1), torch.arange(8).repeat_interleave(4)
    mine = slice(rank * 16, (rank + 1) * 16)  # four classes of the eight, all their images
    for loss in LOSSES:
        for miner in MINERS:
            loss_fn, plain_miner = build_loss(JobSpec(loss=loss, miner=miner))
            whole = loss_fn(emb, labels, plain_miner(emb, labels)) if plain_miner else loss_fn(emb, labels)
            step_loss, step_miner = ranks.gathering(loss_fn, plain_miner)
            part, part_labels = emb[mine], labels[mine]
            tuples = step_miner(part, part_labels) if step_miner else None
            gathered = step_loss(part, part_labels, tuples) if tuples is not None else step_loss(part, part_labels)
            assert gathered.item() / 2 == pytest.approx(whole.item(), rel=1e-5, abs=1e-7), (loss, miner, rank)
    dist.destroy_process_group()


def test_every_loss_and_miner_sees_the_whole_batch_from_its_half():
    """No loss or miner of the spec needs refusing for devices > 1: each, wrapped, gives the one-process value on every rank."""
    mp.start_processes(_every_loss_and_miner_on_half_the_batch, args=(free_port(),), nprocs=2, start_method="fork")
