"""Augmented and pretrained-style input against torchvision's ImageFolder + DataLoader, ratios in one run.

Sections (run all, or name some):
  augmented  a worker's resnet18 job at 64 px with augment "standard" against ImageFolder + DataLoader with the
             same transforms (RandomResizedCrop scale 0.16-1, ratio 3/4-4/3, flip, ImageNet normalisation) and
             as many loader workers as cores, same model, loss and miner. Target: >= 1.0x images/s.
  pipeline   batch delivery at 224 px, pretrained-style (ImageNet normalisation), cores loader workers:
             evaluation batches from the decoded cache (stored at 256, centre crop) against ImageFolder + DataLoader
             decoding each batch (Resize 256, CenterCrop 224). Target: >= 5x. Also the augmented batches
             (per-batch crop/flip from the cache against RandomResizedCrop + flip in the loader).
--quick shrinks everything to check the script runs (no meaningful numbers); --rounds N (3) and --steps N (20,
the augmented section's steps per round) trade precision for time on a loaded machine.

Usage: .venv/bin/python bench/augment.py [--quick] [--rounds N] [--steps N] [section ...]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import run_in_worker  # noqa: E402
from bench.throughput import make_folder, triplet_loop_rate  # noqa: E402

QUICK = "--quick" in sys.argv


def option(name: str, default: int) -> int:
    """`--name N` from the command line."""
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


CORES = os.cpu_count() or 1
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def train_transforms(size: int):
    from torchvision import transforms as T

    return T.Compose(
        [T.RandomResizedCrop(size, scale=(0.16, 1.0), ratio=(3 / 4, 4 / 3)), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]
    )


def plain_augmented_loop(folder: Path, spec: dict, steps: int) -> float:
    """What a user writes by hand, with embedlab's network for the same spec so only the input path differs."""
    import torch
    import torchvision
    from pytorch_metric_learning import samplers

    from app.config import Settings
    from app.spec import JobSpec
    from trainer.nets import build_net

    torch.manual_seed(0)
    ds = torchvision.datasets.ImageFolder(str(folder), transform=train_transforms(spec["image_size"]))
    targets = np.array(ds.targets)
    train_idx = np.flatnonzero(targets < len(ds.classes) // 2)
    batch = spec["classes_per_batch"] * spec["samples_per_class"]
    sampler = samplers.MPerClassSampler(
        targets[train_idx], m=spec["samples_per_class"], batch_size=batch, length_before_new_iter=steps * batch
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, train_idx),
        batch_size=batch,
        sampler=sampler,
        drop_last=True,
        num_workers=CORES,
        persistent_workers=False,
    )
    model = build_net(JobSpec.model_validate(spec), 3, Settings())
    model.input_stage = None  # the loader already normalised
    it = iter(loader)
    next(it)  # worker start-up is not throughput (embedlab's first step is not timed either)
    return triplet_loop_rate(model, it)


def interleaved(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each side once per round, the order reversed every other round, so both share the machine's drift."""
    got: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        for name in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            got[name].append(sides[name]())
    return got


def summary(rates: dict[str, list[float]], ours: str, theirs: str) -> dict:
    """Medians, every round's value, and the ratio of medians with the per-round ratios' range."""
    per_round = [a / b for a, b in zip(rates[ours], rates[theirs], strict=True)]
    return {
        **{f"{k}_img_per_s": round(statistics.median(v), 1) for k, v in rates.items()},
        "rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "ratio": round(statistics.median(rates[ours]) / statistics.median(rates[theirs]), 2),
        "round_ratios": [round(x, 2) for x in per_round],
    }


def section_augmented() -> dict:
    steps, rounds = (3, 1) if QUICK else (option("--steps", 20), option("--rounds", 3))
    with tempfile.TemporaryDirectory() as tmp:
        # Small validation and test parts: their evaluations are not timed, only waited for.
        folder = make_folder(Path(tmp) / "data", classes=10, per_class=20, size=96)
        spec = {
            "dataset": "imagefolder",
            "dataset_path": str(folder),
            "backbone": "resnet18",
            "image_size": 64,
            "augment": "standard",
            "steps": steps,
            "eval_every": 10_000,
            "explorer": False,
            "classes_per_batch": 4,
            "samples_per_class": 8,
            "loss": "triplet",
            "margin": 0.2,
            "miner": "semihard",
        }
        home = str(Path(tmp) / "home")
        run_in_worker(home, {**spec, "steps": 1})  # fill the decoded cache, as any earlier job on this folder would

        def ours() -> float:
            got = run_in_worker(home, spec)
            assert got["status"] == "succeeded", got
            return got["train_img_per_s"]

        rates = interleaved({"worker": ours, "imagefolder_dataloader": lambda: plain_augmented_loop(folder, spec, steps)}, rounds)
        return {
            **summary(rates, "worker", "imagefolder_dataloader"),
            "steps_per_round": steps,
            "dataloader_workers": CORES,
            "target": 1.0,
        }


def section_pipeline() -> dict:
    import torch
    import torchvision
    from pytorch_metric_learning import samplers

    from app.datasets import load_catalog
    from app.spec import JobSpec
    from trainer.augment import augment_batch
    from trainer.data import stored_size, to_float
    from trainer.image_cache import decoded_folder
    from trainer.nets import IMAGENET_MEAN, IMAGENET_STD, InputStage

    batches, batch = (3, 16) if QUICK else (40, 64)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "data", classes=8, per_class=10 if QUICK else 100, size=320)
        spec = JobSpec.model_validate(
            {"dataset": "imagefolder", "dataset_path": str(folder), "backbone": "resnet50", "pretrained": True, "augment": "standard"}
        )
        catalog = load_catalog("imagefolder", str(folder), [Path(tmp)])
        stored = stored_size(spec)
        decoded_folder(catalog, stored, Path(tmp) / "cache", lambda *_: None)
        images, kept = decoded_folder(catalog, stored, Path(tmp) / "cache", lambda *_: None)
        sampler = samplers.MPerClassSampler(catalog.labels[kept], m=8, batch_size=batch, length_before_new_iter=batches * batch)
        idx = np.fromiter(iter(sampler), dtype=np.int64)
        stage = InputStage(224, IMAGENET_MEAN, IMAGENET_STD)
        source = torch.from_numpy(images)

        def cached(augmented: bool) -> float:
            t0 = time.perf_counter()
            for b in range(batches):
                x = source[torch.from_numpy(idx[b * batch : (b + 1) * batch])]  # uint8, as the training loop gathers it
                x = stage(augment_batch(to_float(x, torch.device("cpu")), spec, b + 1) if augmented else x)
                assert x.shape == (batch, 3, 224, 224)
            return batches * batch / (time.perf_counter() - t0)

        def decoding(transform) -> float:
            ds = torchvision.datasets.ImageFolder(str(folder), transform=transform)
            sampler = samplers.MPerClassSampler(np.array(ds.targets), m=8, batch_size=batch, length_before_new_iter=batches * batch)
            it = iter(torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=CORES))
            next(it)  # loader start-up is not delivery: the first batch is not timed
            t0 = time.perf_counter()
            for _ in it:
                pass
            return (batches - 1) * batch / (time.perf_counter() - t0)

        from torchvision import transforms as T

        evaluation = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
        rounds = 1 if QUICK else option("--rounds", 3)
        augmented_tf = T.Compose([T.Resize(256), train_transforms(224)])
        rates = interleaved(
            {
                "eval_cached": lambda: cached(False),
                "eval_decoding": lambda: decoding(evaluation),
                "augmented_cached": lambda: cached(True),
                "augmented_decoding": lambda: decoding(augmented_tf),
            },
            rounds,
        )
        ev, aug = summary(rates, "eval_cached", "eval_decoding"), summary(rates, "augmented_cached", "augmented_decoding")
        return {
            "images": len(kept),
            "stored_px": stored,
            "batches_per_round": f"{batches} x {batch}",
            "dataloader_workers": CORES,
            **{k: v for k, v in {**ev, **aug}.items() if k.endswith("_img_per_s")},
            "rounds": {**ev["rounds"], **aug["rounds"]},
            "eval_ratio": ev["ratio"],
            "eval_round_ratios": ev["round_ratios"],
            "augmented_ratio": aug["ratio"],
            "augmented_round_ratios": aug["round_ratios"],
            "target": 5,
        }


SECTIONS = {"augmented": section_augmented, "pipeline": section_pipeline}

if __name__ == "__main__":
    wanted = [a for a in sys.argv[1:] if a in SECTIONS] or list(SECTIONS)
    for name in wanted:
        print(json.dumps({name: SECTIONS[name]()}), flush=True)
