"""The memory ceiling of one job attempt, and the reason a job gives when it reaches it.

Each attempt runs in a process its worker forks (trainer.worker), with RLIMIT_DATA set to the
ceiling (app.costs.ceiling). Past it, the allocation that would cross it fails inside that
process: torch raises at the very step, naming the bytes it asked for, and the job fails with
that reason while the worker goes on. Without it, the kernel's OOM killer takes the worker (or a
neighbour) and the retries repeat the kill.

Why an rlimit: it needs no privilege and works in any container; the failure is synchronous, so
the job can say which part of the step asked for how much. cgroup v2's memory.max needs a
delegated, writable cgroup (this machine's containers have cgroup v1 memory, not writable for
processes), and a cgroup past its limit OOM-kills instead of failing the allocation. RLIMIT_DATA
rather than RLIMIT_AS: it counts private writable memory (heap, anonymous maps: what tensors use),
not the address space that shared libraries and CUDA reserve (3+ GB for an idle torch process).
GPU memory is outside any rlimit: CUDA's own out-of-memory error ends the job the same way.
"""

from __future__ import annotations

import re
import resource
import traceback

import torch

from app.costs import DIAGNOSTICS_ADVICE, MB, advice_for, gb, tuple_bytes
from app.spec import JobSpec

HEADROOM = 256 * MB  # above the soft limit, lent back to report the failure


def limit(ceiling: int) -> None:
    """Cap this process's data segment at `ceiling` bytes (soft), keeping HEADROOM for the report."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    top = ceiling + HEADROOM if hard == resource.RLIM_INFINITY else min(hard, ceiling + HEADROOM)
    resource.setrlimit(resource.RLIMIT_DATA, (min(ceiling, top), top))


def lend_headroom() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))


def is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(e, RuntimeError) and bool(re.search(r"can't allocate memory|not enough memory|out of memory", str(e)))


def asked_bytes(e: BaseException) -> float | None:
    """The size of the allocation that failed, from torch's message (CPU: bytes; CUDA: GiB/MiB)."""
    text = str(e)
    if m := re.search(r"allocate (\d+) bytes", text):
        return float(m.group(1))
    if m := re.search(r"Tried to allocate ([\d.]+) ([KMG]i)?B", text):
        return float(m.group(1)) * {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, None: 1}[m.group(2)]
    return None


# Innermost first: the first of these found in the traceback names the part that asked.
PARTS = (
    ("pytorch_metric_learning/miners", "the miner ({miner})"),
    ("pytorch_metric_learning/losses", "the loss ({loss})"),
    ("trainer/losses.py", "the miner ({miner})"),
    ("trainer/diagnostics.py", "the batch diagnostics (triplet hardness over every triplet)"),
    ("torch/nn/modules", "the forward pass (backbone {backbone} at {size})"),
    ("torch/autograd", "the backward pass (backbone {backbone} at {size})"),
    ("torch/_tensor.py", "the backward pass (backbone {backbone} at {size})"),
    ("trainer/data.py", "loading the dataset"),
    ("trainer/image_cache.py", "loading the dataset"),
    ("trainer/evaluate.py", "the evaluation"),
    ("trainer/project.py", "the explorer layout"),
)


def out_of_memory_reason(e: BaseException, spec: JobSpec, step: int, ceiling: int) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    files = [f.filename.replace("\\", "/") for f in reversed(frames)]
    part = next((label for f in files for marker, label in PARTS if marker in f), "training")
    size = f"{spec.image_size}x{spec.image_size}" if spec.image_size else "native size"
    part = part.format(miner=spec.miner, loss=spec.loss, backbone=spec.backbone, size=size)
    names = {f.name for f in frames}
    if "evaluate" in names:
        when = f"at the evaluation of step {step}"
    elif "load_images" in names:
        when = "while loading the dataset"
    else:
        when = f"at step {step if 'triplet_hardness' in names else step + 1}"
    gpu = isinstance(e, torch.OutOfMemoryError)
    asked = asked_bytes(e)
    batch = f"the {spec.classes_per_batch} x {spec.samples_per_class} batch (classes_per_batch x samples_per_class)"
    needed = f"{part} asked for {gb(asked)} at once" if asked else f"{part} needed more"
    tuples = tuple_bytes(spec.loss, spec.miner, spec.classes_per_batch, spec.samples_per_class)
    if (key := "loss" if "loss" in part else "miner" if "miner" in part else None) and tuples[key] >= (asked or 0):
        needed += f" (it needs about {gb(tuples[key])} in all)"
    where = "the GPU's free memory" if gpu else f"this job's memory limit of {gb(ceiling)} (EMBEDLAB_JOB_MEMORY_MB)"
    if "diagnostics" in part:
        advice = DIAGNOSTICS_ADVICE
    elif "miner" in part or "loss" in part:
        advice = advice_for(spec)
    elif "pass" in part:
        advice = "try a smaller batch or image_size, or backbone 'cnn'"
    elif "dataset" in part:
        advice = "try a smaller image_size or dataset"
    else:
        advice = "try a smaller val_fraction or batch"
    return f"out of {'GPU ' if gpu else ''}memory {when}: {needed} for {batch}, over {where}; {advice}"
