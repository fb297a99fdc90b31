"""resnet50 at 224 px with augment "standard" on a GPU: embedlab's worker against a plain fp32 PyTorch loop.

The plain side is what a user writes by hand: torchvision ImageFolder with RandomResizedCrop (scale 0.16-1,
ratio 3/4-4/3), a horizontal flip and ImageNet normalisation in a DataLoader (as many workers as cores,
pinned memory), fp32, the same network, loss (triplet, margin 0.2, semi-hard miner), optimizer, sampler
and steps. embedlab's side is a real worker on the same folder (decoded cache filled by an earlier job,
as on any server that has seen the folder): bf16 autocast, channels_last, data resident on the device,
augmentation on the device. Both score MAP@R and P@1 on the same locked test classes (embedlab's split),
evaluated by resize 256 and centre crop 224. Target: >= 2x the images per second at equal MAP@R.

Runs offline: the folder is generated (classes of noisy copies of a random base image, 320 px JPEGs).
--pretrained starts both sides from ImageNet weights already in EMBEDLAB_HOME/weights (`embedlab weights
fetch resnet50` beforehand, where there is network); without it both train from scratch.

Usage: python bench/gpu_augment.py [--steps N] [--pretrained] [--quick] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.augment import MEAN, STD, train_transforms  # noqa: E402
from bench.common import run_in_worker  # noqa: E402
from bench.throughput import make_folder  # noqa: E402

CORES = os.cpu_count() or 1


def plain_fp32(folder: Path, spec: dict, home: str) -> dict:
    """The hand-written loop in fp32 on the spec's device; images/s after the loader's first batch, then MAP@R on the test part."""
    import torch
    import torchvision
    from pytorch_metric_learning import losses, miners, samplers
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from torchvision import transforms as T

    from app.config import Settings
    from app.datasets import load_catalog
    from app.spec import JobSpec, job_split
    from trainer.nets import build_net

    job = JobSpec.model_validate(spec)
    torch.manual_seed(job.seed)
    np.random.seed(job.seed)
    device = torch.device(spec["device"])
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    train_ds = torchvision.datasets.ImageFolder(str(folder), transform=train_transforms(224))
    targets = np.array(train_ds.targets)
    catalog = load_catalog("imagefolder", str(folder), [folder.parent])
    assert np.array_equal(targets, catalog.labels), "ImageFolder and embedlab number the images alike"
    parts = job_split(targets, job)
    batch = job.classes_per_batch * job.samples_per_class
    sampler = samplers.MPerClassSampler(
        targets[parts.train], m=job.samples_per_class, batch_size=batch, length_before_new_iter=job.steps * batch
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(train_ds, parts.train),
        batch_size=batch,
        sampler=sampler,
        drop_last=True,
        num_workers=CORES,
        pin_memory=device.type == "cuda",
    )
    model = build_net(job, 3, Settings(home=home)).to(device)
    model.input_stage = None  # the loader normalised
    opt = torch.optim.Adam(model.parameters(), lr=job.lr, weight_decay=job.weight_decay)
    loss_fn = losses.TripletMarginLoss(margin=job.margin)
    miner = miners.TripletMarginMiner(margin=job.margin, type_of_triplets="semihard")
    model.train()
    it = iter(loader)
    timed, t0 = 0, None
    for step, (xb, yb) in enumerate(it):
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        emb = model(xb)
        loss = loss_fn(emb, yb, miner(emb, yb))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 0:
            sync()
            t0 = time.perf_counter()  # loader start-up and CUDA warm-up are not throughput
        else:
            timed += len(xb)
    sync()
    rate = timed / (time.perf_counter() - t0)

    evaluation = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    test_ds = torch.utils.data.Subset(torchvision.datasets.ImageFolder(str(folder), transform=evaluation), parts.test)
    model.eval()
    with torch.no_grad():
        emb = torch.cat(
            [model(x.to(device)).float().cpu() for x, _ in torch.utils.data.DataLoader(test_ds, batch_size=128, num_workers=CORES)]
        )
    calc = AccuracyCalculator(include=("mean_average_precision_at_r", "precision_at_1"), k="max_bin_count")
    scores = calc.get_accuracy(emb, torch.as_tensor(targets[parts.test]))
    return {"img_per_s": rate, **scores}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--pretrained", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny folder, batch and 3 steps: checks the script runs")
    ap.add_argument("--device", default="cuda", help="cpu: check the script on a machine without a GPU (--quick)")
    args = ap.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench/gpu_augment.py needs a CUDA device")
    classes, per_class, steps, p, k = (8, 6, 3, 4, 2) if args.quick else (64, 60, args.steps, 16, 4)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "data", classes=classes, per_class=per_class, size=320)
        home = os.environ.get("EMBEDLAB_HOME") if args.pretrained else None
        home = home or str(Path(tmp) / "home")
        spec = {
            "dataset": "imagefolder",
            "dataset_path": str(folder),
            "backbone": "resnet50",
            "pretrained": args.pretrained,
            "image_size": 224,
            "augment": "standard",
            "steps": steps,
            "eval_every": steps,
            "explorer": False,
            "classes_per_batch": p,
            "samples_per_class": k,
            "loss": "triplet",
            "margin": 0.2,
            "miner": "semihard",
            "device": args.device,
        }
        run_in_worker(home, {**spec, "steps": 1}, EMBEDLAB_OFFLINE="true")  # the decoded cache, as any earlier job fills it
        ours = run_in_worker(home, spec, EMBEDLAB_OFFLINE="true")
        assert ours["status"] == "succeeded", ours
        plain = plain_fp32(folder, spec, home)
        test = ours["test"]["final"]["metrics"]
        print(
            json.dumps(
                {
                    "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
                    "images": classes * per_class,
                    "steps": steps,
                    "batch": p * k,
                    "pretrained": args.pretrained,
                    "embedlab_img_per_s": round(ours["train_img_per_s"], 1),
                    "plain_fp32_img_per_s": round(plain["img_per_s"], 1),
                    "ratio": round(ours["train_img_per_s"] / plain["img_per_s"], 2),
                    "target": 2.0,
                    "map_at_r": {
                        "embedlab": test["mean_average_precision_at_r"],
                        "plain_fp32": round(plain["mean_average_precision_at_r"], 4),
                    },
                    "p_at_1": {"embedlab": test["precision_at_1"], "plain_fp32": round(plain["precision_at_1"], 4)},
                    "embedlab_test_metrics": test,
                }
            )
        )


if __name__ == "__main__":
    main()
