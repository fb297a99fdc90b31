"""Learning-rate schedule, the embedding head's learning rate, gradient clipping.

The rate is a pure function of the step (linear warm-up, then constant or cosine to 0 at the last
step), set on every parameter group before each optimizer step: a resumed job continues on the
same curve without any scheduler state in the checkpoint. Each group keeps its own base rate
(`base_lr`: lr, or lr x head_lr_multiplier for the head).
"""

from __future__ import annotations

import math

import torch

from app.spec import JobSpec


def param_groups(model: torch.nn.Module, spec: JobSpec) -> list[dict]:
    """Backbone and head parameter groups (frozen parameters left out)."""
    prefix = getattr(model, "head_prefix", "")
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if prefix and name.startswith(prefix) else body).append(p)
    groups = [{"params": body, "lr": spec.lr, "base_lr": spec.lr}]
    if head:
        groups.append({"params": head, "lr": spec.lr * spec.head_lr_multiplier, "base_lr": spec.lr * spec.head_lr_multiplier})
    return [g for g in groups if g["params"]]


def lr_factor(spec: JobSpec, step: int) -> float:
    """Multiplier of the base rate at `step` (1-based, the step about to be taken)."""
    if spec.warmup_steps and step <= spec.warmup_steps:
        return step / spec.warmup_steps
    if spec.lr_schedule == "cosine":
        span = max(1, spec.steps - spec.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * (step - spec.warmup_steps) / span))
    return 1.0


def before_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, spec: JobSpec, step: int) -> None:
    """Between backward and optimizer.step(): clip the gradients, set this step's learning rates."""
    if spec.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
    factor = lr_factor(spec, step)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
