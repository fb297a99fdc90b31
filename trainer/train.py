"""The training loop of one job, readable top to bottom.

Order of each step (fixed): batch, forward, mine, loss, finite check, backward, step,
log, evaluate when due (with a checkpoint), stop check. The worker supplies `run`: where
metrics and log lines go, the device, and whether to stop (cancel, SIGTERM, lease lost).
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
from app.datasets import split_indices, trainable_classes
from app.spec import MARGIN_LOSSES, JobSpec
from trainer import artifacts
from trainer.data import fixed_val_batches, load_images, pk_batches, to_float
from trainer.diagnostics import active_pairs, distance_histograms, distance_kind, triplet_hardness
from trainer.errors import JobFailed, StopRequested
from trainer.evaluate import batch_loss, embed, retrieval_metrics
from trainer.losses import build_loss
from trainer.nets import build_net
from trainer.project import keep_last_evaluation, project_for_explorer
from trainer.run import Run


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


def train(spec: JobSpec, run: Run, settings: Settings) -> dict[str, float]:
    seed_everything(spec.seed)
    device = run.device

    # Data: everything decoded once into memory; the split ignores the training seed.
    data = load_images(spec, settings, run.log)
    train_rows, val_rows = split_indices(data.labels.numpy(), spec.split, spec.val_fraction, spec.split_seed)
    train, val = data.subset(train_rows), data.subset(val_rows)
    usable = trainable_classes(train.labels.numpy(), spec.samples_per_class)
    left_out = len(np.unique(train.labels.numpy())) - len(usable)
    if left_out:
        run.log("info", f"{left_out} training class(es) have fewer than {spec.samples_per_class} images and are left out of batches")
        train = train.subset(np.flatnonzero(np.isin(train.labels.numpy(), usable)))
    if len(usable) < spec.classes_per_batch:
        raise JobFailed(f"only {len(usable)} training classes have {spec.samples_per_class} images; classes_per_batch is {spec.classes_per_batch}")
    if spec.loss not in MARGIN_LOSSES:
        run.log("info", f"{spec.loss} has no margin; the margin field is ignored")
    run.log("info", f"{len(train)} training images in {len(usable)} classes, {len(val)} validation images in {len(np.unique(val.labels.numpy()))} classes, on {device}")
    # Keep the whole dataset on the accelerator when there is one: no per-step copies.
    train_images = train.images.to(device) if device.type == "cuda" else train.images
    val_batches = fixed_val_batches(val.labels.numpy(), spec)

    # Model, optimizer, loss; resume from the last checkpoint of an earlier attempt.
    model = build_net(spec, data.images.shape[1], settings).to(device)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format  # faster convolutions on GPUs
    model = model.to(memory_format=memory_format)
    optimizer = make_optimizer(spec, model.parameters())
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
    batches = pk_batches(train.labels, spec, start)
    final: dict[str, float] = {}
    speed = Throughput()
    kind = distance_kind(spec.loss)
    distances = artifacts.load_json(run.job_dir / artifacts.DISTANCES) if start else None
    distances = distances or {"loss": spec.loss, "margin": spec.margin, "kind": kind, "evaluations": []}

    def save_checkpoint(step: int) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "spec": spec_json, "step": step, "metrics": dict(final)}
        artifacts.save_checkpoint(run.job_dir, state, run.still_owner)

    evaluated: dict[str, object] = {}  # the last evaluation of this attempt: what a cancelled job keeps

    def evaluate(step: int) -> None:
        speed.pause()
        emb = embed(model, val.images, device)
        evaluated.update(step=step, embeddings=emb)
        final.update(retrieval_metrics(emb, val.labels, spec.normalize))
        vloss = batch_loss(model, loss_fn, miner, val.images, val.labels, val_batches, device)
        if vloss is not None:
            final["loss"] = vloss
        for name, value in final.items():
            run.metric(f"val/{name}", step, value)
        if speed.images:
            run.metric("train/images_per_second", step, speed.rate)
        hist = distance_histograms(emb, val.labels, kind, seed=spec.split_seed)
        run.metric("val/distance_overlap", step, hist["overlap"])
        distances["evaluations"] = [e for e in distances["evaluations"] if e["step"] < step] + [{"step": step, **hist}]
        artifacts.save_json(run.job_dir / artifacts.DISTANCES, distances, run.still_owner)
        save_checkpoint(step)
        if step == spec.steps:
            run.flush()  # the last points reach the charts now, not after the layout below
            run.phase("saving embeddings")
            artifacts.save_embeddings(run.job_dir, emb.numpy(), val.labels.numpy(), val.indices, run.still_owner)
            if spec.explorer:
                project_for_explorer(run, spec, settings, model, val, emb, train)  # 2-D layout + training sample for the explorer
        speed.resume()

    if start == 0:
        evaluate(0)
    model.train()
    for step in range(start + 1, spec.steps + 1):
        rows = torch.from_numpy(next(batches))
        x = to_float(train_images[rows], device).contiguous(memory_format=memory_format)
        y = train.labels[rows].to(device, non_blocking=True)
        with autocast(spec, device):
            emb = model(x).float()
        tuples = miner(emb, y) if miner else None
        loss = loss_fn(emb, y, tuples) if tuples is not None else loss_fn(emb, y)
        value = loss.item()
        if not math.isfinite(value):
            raise JobFailed(f"loss became {value} at step {step}; lower the learning rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        speed.images += len(rows)

        run.metric("train/loss", step, value)
        for name, fraction in triplet_hardness(emb.detach(), y, spec.margin, kind).items():
            run.metric(f"train/{name}", step, fraction)
        if (active := active_pairs(emb.detach(), y, spec.loss, spec.margin, spec.loss_params.get("pos_margin", 0.0))) is not None:
            run.metric("train/active_pairs", step, active)
        if step % spec.eval_every == 0 or step == spec.steps:
            evaluate(step)
        try:
            run.check(step)
        except StopRequested as stop:
            if stop.reason == "shutdown":  # the next attempt resumes exactly here
                save_checkpoint(step)
            elif stop.reason == "cancel":
                keep_last_evaluation(run, spec, settings, model, val, train, step, evaluated)
            raise
    return final
