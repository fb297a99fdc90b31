"""What one job attempt will ask of memory, known before it runs, and how much it may have.

Torch-free, so the API can refuse at submit a spec that could never run on this host
(app.spec.check_spec), and the worker can name the cause when a job hits its ceiling.

The estimate is the peak of one training step, as parts that grow with the spec:
  baseline     the attempt process itself (Python, torch, pytorch-metric-learning, the CPU kernels)
  dataset      a bundled set decoded into one uint8 tensor (a resize goes through float32 once); folders
               and benchmarks are read from the memory-mapped cache (page cache, outside the ceiling)
  activations  the backbone's saved activations and their gradients, per image x batch
  evaluation   kNN similarity blocks, histograms and the inference batches of the backbone
  diagnostics  trainer.diagnostics.triplet_hardness: float, bool and int64 [B, B, B] cubes each step
  miner/loss   the tuples of pytorch-metric-learning: B = P x K images give B(K-1) positive pairs,
               B(B-K) negative pairs and B(K-1)(B-K) triplets; the triplet miners and the triplet
               and contrastive losses keep a few numbers per triplet (plus a uint8 [B, B, B] mask
               below 2^31 elements), NT-Xent a float matrix of positive x negative pairs
               (its pairs are made unique first, trainer.losses), circle and multi-similarity
               a few [B, B] matrices.
Per-element factors come from pytorch-metric-learning 2.9's code, calibrated against peak
memory measured by bench/job_memory.py (digits, split samples, 2 steps with the step-0 and final
evaluations, CPU, one thread; measured = VmHWM above the resident memory before training,
estimate = the total minus the baseline):

  loss, miner, P x K, backbone, image size       estimate   measured
  triplet semihard 5x16 cnn 8 (the defaults)       0.35 GB    0.26 GB
  triplet all 10x40 cnn 8                          1.77 GB    1.33 GB
  contrastive semihard 10x40 cnn 8                 1.77 GB    1.34 GB
  ntxent semihard 5x16 cnn 8 (unique pairs)        0.45 GB    0.37 GB
  ntxent none 8x20 cnn 8                           1.53 GB    1.38 GB
  multisimilarity multisimilarity 10x60 cnn 8      3.00 GB    3.12 GB
  circle none 10x60 cnn 8                          2.99 GB    3.11 GB
  triplet semihard 5x16 cnn 96                     1.27 GB    0.97 GB
  triplet semihard 4x8 resnet18 32                 1.58 GB    1.78 GB
Within -11% / +35% here; a refusal threshold (far above typical jobs), not a runtime guarantee:
the ceiling itself is enforced by trainer.memory whatever the estimate said.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import Settings
    from app.spec import JobSpec

GB = 1 << 30
MB = 1 << 20
BASELINE = 1200 * MB  # data segment of an idle attempt process (VmData after the imports: 0.9-1.1 GB)
EVALUATION = 300 * MB
HOST_SHARE = 0.8  # of the host's memory, split among its workers' devices, when EMBEDLAB_JOB_MEMORY_MB is 0
TRIPLET_MINERS = {"semihard", "hard", "all"}
# Bytes of saved activations + gradients per input pixel and image, by backbone (fp32, training).
ACTIVATION_BYTES_PER_PIXEL = {"cnn": 700, "resnet18": 7600, "resnet18-pretrained": 700}
# The same without gradients, for the evaluation's inference batches (the activations alive at once).
INFERENCE_BYTES_PER_PIXEL = {"cnn": 128, "resnet18": 1024, "resnet18-pretrained": 256}
# Backbones not measured yet (resnet50, ViTs, timm models) are estimated with resnet18's figures: a lower bound,
# so the submit check refuses only what would surely not fit; the attempt's memory ceiling catches the rest.
UNMEASURED = "resnet18"


DIAGNOSTICS_ADVICE = "try a smaller batch (classes_per_batch, samples_per_class): each step's diagnostics look at every (a, p, n) triplet"


@dataclass(frozen=True)
class Estimate:
    parts: dict[str, int]  # bytes of each part of one step's peak

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    @property
    def largest(self) -> str:
        return max((k for k in self.parts if k != "baseline"), key=self.parts.__getitem__)

    def describe(self) -> str:
        shown = sorted(((v, k) for k, v in self.parts.items() if v >= 10 * MB), reverse=True)
        return ", ".join(f"{k} {gb(v)}" for v, k in shown)


def gb(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB / 10 else f"{n / MB:.0f} MB"


def tuple_bytes(loss: str, miner: str, p: int, k: int) -> dict[str, int]:
    """Peak bytes of the miner's and the loss's tuple tensors for a P x K batch."""
    b = p * k
    pos, neg, triplets = b * (k - 1), b * (b - k), b * (k - 1) * (b - k)
    cube = b**3 if b**3 < 2**31 else 0  # the vectorised all-triplets mask (a loop above int32 elements)
    parts = {"miner": 0, "loss": 0}
    if miner in TRIPLET_MINERS:
        parts["miner"] = cube + 64 * triplets  # indices (3 x int64), distances, margins, masks
        mined_pairs = (pos, neg)  # their unique pairs, for NT-Xent
    elif miner == "multisimilarity":
        parts["miner"] = 40 * b * b
        mined_pairs = (pos, neg)
    else:
        mined_pairs = (pos, neg)
    gives_triplets = miner in TRIPLET_MINERS
    if loss == "triplet":
        parts["loss"] = 48 * triplets + (0 if gives_triplets else cube + 64 * triplets)
    elif loss == "contrastive":
        parts["loss"] = 48 * triplets if gives_triplets else 48 * (pos + neg)
    elif loss == "ntxent":
        parts["loss"] = 18 * mined_pairs[0] * mined_pairs[1]  # [pos, neg] float matrices, forward and backward
    else:  # circle, multisimilarity: [B, B] matrices
        parts["loss"] = 60 * b * b
    return parts


def dataset_bytes(spec: JobSpec, images: int, pixels: int) -> int:
    """A bundled set's tensor (13 bytes a pixel while it is resized through float32); 0 for folders and benchmarks:
    their decoded cache is memory-mapped read-only, page cache outside the attempt's ceiling."""
    from app.datasets import NATIVE_SIZE

    if spec.dataset not in NATIVE_SIZE:
        return 0
    return images * pixels * (13 if spec.image_size else 1)


def estimate(spec: JobSpec, images: int) -> Estimate:
    """One step's peak memory for `spec` on a dataset of `images` images."""
    from app.datasets import DEFAULT_FOLDER_SIZE, NATIVE_SIZE

    size = spec.image_size or NATIVE_SIZE.get(spec.dataset, DEFAULT_FOLDER_SIZE)
    channels = 1 if spec.dataset in ("digits", "mnist5k") else 3  # folders and benchmarks decode to RGB, the bundled sets are grey
    b = spec.batch_size
    pixels = channels * size * size
    backbone = f"{spec.backbone}-pretrained" if spec.backbone == "resnet18" and spec.pretrained else spec.backbone
    backbone = backbone if backbone in ACTIVATION_BYTES_PER_PIXEL else UNMEASURED
    parts = {
        "baseline": BASELINE,
        "dataset": dataset_bytes(spec, images, pixels),
        "activations": (ACTIVATION_BYTES_PER_PIXEL[backbone] * size * size + 8 * pixels) * b,
        # kNN similarity blocks and histograms; inference batches of trainer.evaluate.inference_batch images
        "evaluation": EVALUATION
        + 8 * 2048 * images
        + INFERENCE_BYTES_PER_PIXEL[backbone] * size * size * max(64, min(1024, 2**21 // (size * size))),
        "diagnostics": 13 * b**3,  # float gaps, bool masks and the int64 sums over them
        **tuple_bytes(spec.loss, spec.miner, spec.classes_per_batch, spec.samples_per_class),
    }
    return Estimate(parts)


def host_memory() -> int:
    """Bytes of memory this host gives us: physical memory, or less where a cgroup limits it."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            value = limit.read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total


def ceiling(settings: Settings, slots_on_host: int = 1) -> int:
    """Bytes one attempt process (a job, or one rank of it) may use: the setting, or a fair share of the host
    among the devices its workers offer (each is one such process at most)."""
    if settings.job_memory_mb:
        return settings.job_memory_mb * MB
    return int(host_memory() * HOST_SHARE) // max(1, slots_on_host)


def refusal(spec: JobSpec, images: int, settings: Settings) -> tuple[str, str] | None:
    """(field, reason) when the estimate is over what a job may use on this host (alone on it); else None.

    Alone: the API does not know how many workers will share the host when the job runs; a job
    over its share then fails at its first step with the reason (trainer.memory)."""
    cost, limit = estimate(spec, images), ceiling(settings)
    if cost.total <= limit:
        return None
    largest = cost.largest
    batch = f"a {spec.classes_per_batch} x {spec.samples_per_class} batch (classes_per_batch x samples_per_class)"
    if largest in ("miner", "loss"):
        field, advice = ("miner" if largest == "miner" else "classes_per_batch"), advice_for(spec)
    elif largest == "diagnostics":
        field, advice = "classes_per_batch", DIAGNOSTICS_ADVICE
    elif largest == "activations":
        field = "image_size" if spec.image_size else "classes_per_batch"
        advice = "lower image_size or the batch size" + (", or use backbone 'cnn'" if spec.backbone != "cnn" else "")
    else:
        field, advice = ("image_size" if spec.image_size else "dataset"), "lower image_size or use a smaller dataset"
    size = f"{spec.image_size}x{spec.image_size}" if spec.image_size else "native size"
    reason = (
        f"loss {spec.loss!r} with miner {spec.miner!r} on {batch}, backbone {spec.backbone!r} at {size}, needs about {gb(cost.total)} "
        f"({cost.describe()}), over the {gb(limit)} a job may use here (EMBEDLAB_JOB_MEMORY_MB); {advice}"
    )
    return field, reason


def advice_for(spec: JobSpec) -> str:
    """What to change when the tuples of the loss and miner are what does not fit."""
    tips = ["a smaller batch (classes_per_batch, samples_per_class)"]
    if spec.miner in TRIPLET_MINERS or (spec.loss in ("triplet", "contrastive") and spec.miner == "none"):
        tips.append(
            "miner 'multisimilarity' (pairs, not triplets)"
            if spec.loss != "triplet"
            else "loss 'multisimilarity' or 'circle' (pairs, not triplets)"
        )
    if spec.loss == "ntxent":
        tips.append("loss 'multisimilarity' or 'circle' ([B, B] matrices instead of NT-Xent's positive x negative pairs)")
    return "try " + ", or ".join(tips)
