"""The training loop of one job, readable top to bottom.

Order of each step (fixed): batch, forward, mine, loss, finite check, backward, step,
log, evaluation when due, stop check. An evaluation is named steps: `evaluate` (validation
only; returns the metrics), `record` (chart points), `keep_checkpoints` (last and best, the
selection). At the end: the locked test part (`score_test`, once per checkpoint), then the
exports from the best checkpoint (`export_best`). The worker supplies `run`: where metrics
and log lines go, the device, and whether to stop (cancel, SIGTERM, lease lost).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from app.config import Settings
from app.datasets import trainable_classes
from app.distance import job_distance
from app.spec import MARGIN_LOSSES, JobSpec, job_split
from trainer import artifacts, ranks, schedule
from trainer.augment import augment_batch
from trainer.data import ImageData, fixed_val_batches, load_images, pk_batches, to_float
from trainer.diagnostics import active_pairs, distance_histograms, triplet_hardness
from trainer.errors import JobFailed, StopRequested
from trainer.evaluate import Scores, batch_loss, embed, score
from trainer.losses import build_loss
from trainer.nets import build_net
from trainer.project import keep_last_evaluation, project_for_explorer
from trainer.run import Run
from trainer.selection import Scored, Selection, scored


@dataclass
class Throughput:
    """Images per second of training: evaluation is paused out; logging, flushes and heartbeats count."""

    seconds: float = 0.0
    images: int = 0
    since: float = field(default_factory=time.perf_counter)

    def pause(self) -> None:
        self.seconds += time.perf_counter() - self.since

    def resume(self) -> None:
        self.since = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # pytorch-metric-learning's samplers draw from numpy's global state
    torch.manual_seed(seed)


def autocast(spec: JobSpec, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for the forward pass (the loss runs in fp32 on the cast-back embeddings)."""
    wanted = spec.precision == "bf16" or (spec.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if wanted else contextlib.nullcontext()


def make_optimizer(spec: JobSpec, params) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    cls = torch.optim.AdamW if spec.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=spec.lr, weight_decay=spec.weight_decay)


@dataclass
class Evaluation:
    """One evaluation on the validation part: what the charts, the selection and the checkpoints need."""

    step: int
    metrics: dict[str, float]  # retrieval metrics with their intervals, and the validation loss
    scores: Scores
    embeddings: torch.Tensor
    histograms: dict


def train(spec: JobSpec, run: Run, settings: Settings) -> dict[str, float]:
    seed_everything(spec.seed)
    device = run.device

    # Data: everything decoded once into memory; the split ignores the training seed. The test part
    # stays untouched until `score_test` at the very end.
    data = load_images(spec, settings, run.log)
    parts = job_split(data.labels.numpy(), spec, data.official_test)
    train, val, test = data.subset(parts.train), data.subset(parts.val), data.subset(parts.test)
    usable = trainable_classes(train.labels.numpy(), spec.samples_per_class)
    left_out = len(np.unique(train.labels.numpy())) - len(usable)
    if left_out:
        run.log("info", f"{left_out} training class(es) have fewer than {spec.samples_per_class} images and are left out of batches")
        train = train.subset(np.flatnonzero(np.isin(train.labels.numpy(), usable)))
    if len(usable) < spec.classes_per_batch:
        raise JobFailed(
            f"only {len(usable)} training classes have {spec.samples_per_class} images; classes_per_batch is {spec.classes_per_batch}"
        )
    if spec.loss not in MARGIN_LOSSES:
        run.log("info", f"{spec.loss} has no margin; the margin field is ignored")
    run.log(
        "info",
        f"{len(train)} training images in {len(usable)} classes, {len(val)} validation images in {n_classes(val)} classes, "
        f"{len(test)} test images in {n_classes(test)} classes (scored once, at the end), on {device}",
    )
    # Keep the whole dataset on the accelerator when there is one: no per-step copies.
    train_images = train.images.to(device) if device.type == "cuda" else train.images
    val_batches = fixed_val_batches(val.labels.numpy(), spec)

    # Model, optimizer, loss; resume from the last checkpoint of an earlier attempt.
    model = ranks.sync_batchnorm(build_net(spec, data.images.shape[1], settings), device).to(device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format  # faster convolutions on GPUs
    model = model.to(memory_format=memory_format)
    optimizer = make_optimizer(spec, schedule.param_groups(model, spec))  # head group: lr x head_lr_multiplier
    loss_fn, miner = build_loss(spec)
    start = 0
    spec_json = spec.model_dump(mode="json")
    ckpt = artifacts.load_checkpoint(run.job_dir)
    if ckpt is not None and ckpt.get("spec") == spec_json and 0 < ckpt["step"] < spec.steps:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        seed_everything(spec.seed + start)
        run.log("info", f"resumed from the checkpoint at step {start}")
    forward = ranks.data_parallel(model, device)  # after the resume: every rank starts from rank 0's weights
    step_loss, step_miner = ranks.gathering(loss_fn, miner)  # the step's loss and miner see the global batch
    selection = Selection.restore(spec.select_metric, spec.patience, ckpt.get("selection") if start else None)
    batches = pk_batches(train.labels, spec, start)
    latest: dict[str, float] = dict(ckpt["metrics"]) if start else {}
    speed = Throughput()
    distance = job_distance(spec)  # the loss's own: evaluation, histograms and hardness all measure with it
    distances = artifacts.load_json(run.job_dir / artifacts.DISTANCES) if start else None
    distances = distances or {"loss": spec.loss, "margin": spec.margin, "kind": distance.measure, "evaluations": []}

    def save_checkpoint(step: int) -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "spec": spec_json,
            "step": step,
            "metrics": dict(latest),
            "selection": selection.state(),
        }
        artifacts.save_checkpoint(run.job_dir, state, run.still_owner)

    def evaluate(step: int) -> Evaluation:
        """Validation only: embed, score with intervals, loss, distance histograms. Writes nothing."""
        emb = embed(model, val.images, device)
        scores = score(emb, val.labels, distance, seed=spec.split_seed)
        metrics = dict(scores.metrics)
        if (vloss := batch_loss(model, loss_fn, miner, val.images, val.labels, val_batches, device)) is not None:
            metrics["loss"] = vloss
        return Evaluation(step, metrics, scores, emb, distance_histograms(emb, val.labels, distance, seed=spec.split_seed))

    def record(ev: Evaluation) -> None:
        """The evaluation's points for the charts, and its histograms for the distance chart."""
        latest.update(ev.metrics)
        for name, value in ev.metrics.items():
            run.metric(f"val/{name}", ev.step, value)
        if speed.images:
            run.metric("train/images_per_second", ev.step, speed.rate)
        run.metric("val/distance_overlap", ev.step, ev.histograms["overlap"])
        distances["evaluations"] = [e for e in distances["evaluations"] if e["step"] < ev.step] + [{"step": ev.step, **ev.histograms}]
        artifacts.save_json(run.job_dir / artifacts.DISTANCES, distances, run.still_owner)

    def keep_checkpoints(ev: Evaluation) -> None:
        """The last state always; the best one (and its per-query values) when select_metric improved."""
        if selection.update(ev.step, ev.metrics):
            best = {"model": model.state_dict(), "spec": spec_json, "step": ev.step, "metrics": dict(ev.metrics)}
            artifacts.save_checkpoint(run.job_dir, best, run.still_owner, name=artifacts.BEST_CHECKPOINT)
            artifacts.save_per_query(
                run.job_dir,
                val.indices[ev.scores.queries],
                ev.scores.per_query,
                {"step": ev.step, "seed": spec.seed, "bootstrap_seed": spec.split_seed},
                run.still_owner,
            )
        save_checkpoint(ev.step)
        run.summarize(selection.summary())

    evaluated: dict[str, object] = {}  # the last evaluation of this attempt: what a cancelled job keeps

    def evaluation(step: int) -> None:
        speed.pause()
        ev = evaluate(step)
        evaluated.update(step=step, embeddings=ev.embeddings)
        record(ev)
        keep_checkpoints(ev)
        speed.resume()

    def load_best(final_step: int) -> None:
        """Put the best checkpoint's weights in `model` (they are the model's own when the last step was the best)."""
        if selection.best is not None and selection.best["step"] != final_step:
            model.load_state_dict(artifacts.load_checkpoint(run.job_dir, artifacts.BEST_CHECKPOINT)["model"])

    def score_test_part(step: int) -> Scored:
        metrics = score(embed(model, test.images, device), test.labels, distance, seed=spec.split_seed).metrics
        for name, value in metrics.items():
            run.metric(f"test/{name}", step, value)
        return scored(step, metrics)

    def score_test(final_step: int) -> None:
        """The locked test part, read once per checkpoint: the final weights, then the best ones."""
        assert selection.best is not None
        best_step = selection.best["step"]
        results = {"final": score_test_part(final_step)}
        if best_step == final_step:
            results["best"] = results["final"]  # one checkpoint, scored once
        else:
            load_best(final_step)
            results["best"] = score_test_part(best_step)
        run.summarize({"test": results})
        run.log(
            "info",
            f"locked test part, scored once per checkpoint: {spec.select_metric} "
            f"{results['best']['metrics'][spec.select_metric]:.4f} at the best step {best_step}, "
            f"{results['final']['metrics'][spec.select_metric]:.4f} at the final step {final_step}",
        )

    def export_best(final_step: int) -> None:
        """Embeddings and the explorer's layout from the best checkpoint."""
        load_best(final_step)
        run.phase("saving embeddings")
        emb = embed(model, val.images, device)
        artifacts.save_embeddings(run.job_dir, emb.numpy(), val.labels.numpy(), val.indices, run.still_owner)
        if spec.explorer:
            project_for_explorer(run, spec, settings, model, val, emb, train)  # 2-D layout + training sample for the explorer

    lead = ranks.lead()  # rank 0 (or the only process) evaluates and writes; the other ranks only train
    if start == 0 and lead:
        evaluation(0)  # the untrained network: the baseline every later evaluation is compared with
    step = start
    model.train()
    while step < spec.steps and not ranks.agreed(selection.out_of_patience):
        step += 1
        batch = ranks.share_batch(lambda: next(batches), spec.batch_size)
        part = ranks.my_part(batch, train.labels.numpy()[batch])  # this rank's classes of the PK batch
        rows = torch.from_numpy(batch[part])
        x = train_images[rows].to(device, non_blocking=True)  # uint8: the net's input stage converts what it keeps
        if spec.augment != "none":
            x = augment_batch(to_float(x, device), spec, step, (part, len(batch)))
        x = x.contiguous(memory_format=memory_format)
        y = train.labels[rows].to(device, non_blocking=True)
        with autocast(spec, device):
            emb = forward(x).float()
        tuples = step_miner(emb, y) if step_miner else None
        loss = step_loss(emb, y, tuples) if tuples is not None else step_loss(emb, y)
        value = loss.item() / ranks.world()  # the wrapper scales by the ranks for DDP's gradient average
        if not math.isfinite(value):
            raise JobFailed(f"loss became {value} at step {step}; lower the learning rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        schedule.before_step(model, optimizer, spec, step)  # clipping, this step's learning rates
        optimizer.step()
        speed.images += len(batch)

        run.metric("train/loss", step, value)
        emb, y = ranks.gathered(emb.detach(), y)  # the diagnostics describe the batch the loss saw
        if lead:
            for name, fraction in triplet_hardness(emb, y, spec.margin, distance).items():
                run.metric(f"train/{name}", step, fraction)
            if (active := active_pairs(emb, y, spec.loss, spec.margin, distance, spec.loss_params.get("pos_margin", 0.0))) is not None:
                run.metric("train/active_pairs", step, active)
        if lead and (step % spec.eval_every == 0 or step == spec.steps):
            evaluation(step)
        try:
            ranks.check(run, step)  # rank 0's answer on every rank
        except StopRequested as stop:
            if stop.reason == "shutdown" and lead:  # the next attempt resumes exactly here
                save_checkpoint(step)
            elif stop.reason == "cancel" and lead:
                keep_last_evaluation(run, spec, settings, model, val, train, step, evaluated)
            raise

    if not lead:
        return latest

    if step < spec.steps:  # patience ran out (possibly in an earlier attempt)
        run.log("info", f"stopped early at step {step}: {selection.stop_early(step)}")
        run.summarize(selection.summary())
    # The end: the last points reach the charts now (not after the layout), then test, then exports.
    run.flush()
    if len(test):
        score_test(step)
        run.flush()
    export_best(step)
    return latest


def n_classes(part: ImageData) -> int:
    return len(np.unique(part.labels.numpy()))
