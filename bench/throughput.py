"""Throughput against plain references measured in the same run.

Sections (run all, or name some):
  folder    one image-folder job: the worker against torchvision ImageFolder + DataLoader
  pipeline  batch delivery: the decoded cache against ImageFolder + DataLoader decoding; first-job decode cost
  eval      embeddings + retrieval metrics of 10,000 images against a per-batch loop with AccuracyCalculator defaults
  sweep     8 triplet jobs (margins 0.1-0.8, mnist5k, cnn, 300 steps) on 2 workers against the reference script run 8 times
  memory    peak RSS of a worker on a 20,000-image folder job, and RSS across 20 consecutive jobs
  bigfolder a 50,000-image folder: peak resident memory (anonymous and memory-mapped) and time to the first step,
            cold (the first job decodes the folder) and warm (the cache memory-mapped); --quick: 200 images
The one-job mnist5k ratio is bench/train_overhead.py.

Usage: .venv/bin/python bench/throughput.py [section ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import home_env, reference, run_in_worker, run_python, run_sweeps  # noqa: E402


def make_folder(root: Path, classes: int, per_class: int, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for i in range(per_class):
            noisy = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / f"c{c:02d}" / f"{i}.jpg", quality=90)
    return root


def plain_imagefolder_loop(folder: Path, steps: int, size: int, workers: int = 2) -> dict:
    """What a user writes by hand: ImageFolder + DataLoader + the same model, loss and miner as pml_loop.py."""
    import torch
    import torchvision
    from pytorch_metric_learning import samplers

    from trainer.nets import EmbeddingNet, small_cnn

    torch.manual_seed(0)
    np.random.seed(0)
    tf = torchvision.transforms.Compose([torchvision.transforms.Resize((size, size)), torchvision.transforms.ToTensor()])
    ds = torchvision.datasets.ImageFolder(str(folder), transform=tf)
    targets = np.array(ds.targets)
    train_idx = np.flatnonzero(targets < len(ds.classes) // 2)
    train = torch.utils.data.Subset(ds, train_idx)
    sampler = samplers.MPerClassSampler(targets[train_idx], m=16, batch_size=80, length_before_new_iter=steps * 80)
    loader = torch.utils.data.DataLoader(train, batch_size=80, sampler=sampler, drop_last=True, num_workers=workers)
    return {"img_per_s": triplet_loop_rate(EmbeddingNet(small_cnn(3, 128), True), loader), "dataloader_workers": workers}


def triplet_loop_rate(model, batches) -> float:
    """Images per second of a plain Adam + semi-hard triplet loop (pml_loop.py's) over (images, labels) batches."""
    import torch
    from pytorch_metric_learning import losses, miners

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn, miner = losses.TripletMarginLoss(margin=0.2), miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    t0, n = time.perf_counter(), 0
    for xb, yb in batches:
        emb = model(xb)
        loss = loss_fn(emb, yb, miner(emb, yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(xb)
    return n / (time.perf_counter() - t0)


def section_folder() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "data", classes=10, per_class=300)
        spec = {
            "dataset": "imagefolder",
            "dataset_path": str(folder),
            "image_size": 32,
            "steps": 200,
            "eval_every": 100,
            "classes_per_batch": 5,
            "samples_per_class": 16,
            "loss": "triplet",
            "margin": 0.2,
            "miner": "semihard",
        }
        home = str(Path(tmp) / "home")
        run_in_worker(home, {**spec, "steps": 1})  # fill the decoded cache, as any earlier job on this folder would
        ours = run_in_worker(home, spec)
        plain = plain_imagefolder_loop(folder, 200, 32)
        return {
            "worker_img_per_s": round(ours["train_img_per_s"], 1),
            "imagefolder_dataloader_img_per_s": round(plain["img_per_s"], 1),
            "ratio": round(ours["train_img_per_s"] / plain["img_per_s"], 2),
            "target": 0.97,
        }


def section_pipeline() -> dict:
    import torch
    import torchvision
    from pytorch_metric_learning import samplers

    from app.datasets import load_catalog
    from trainer.image_cache import decoded_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "data", classes=10, per_class=300, size=64)
        catalog = load_catalog("imagefolder", str(folder), [Path(tmp)])
        t0 = time.perf_counter()
        decoded_folder(catalog, 64, Path(tmp) / "cache", lambda *_: None)
        first_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        images, kept = decoded_folder(catalog, 64, Path(tmp) / "cache", lambda *_: None)
        reuse = time.perf_counter() - t0
        labels = catalog.labels[kept]
        batches = 100
        sampler = samplers.MPerClassSampler(labels, m=16, batch_size=80, length_before_new_iter=batches * 80)
        idx = np.fromiter(iter(sampler), dtype=np.int64)
        t0 = time.perf_counter()
        for b in range(batches):
            rows = torch.from_numpy(idx[b * 80 : (b + 1) * 80])
            torch.from_numpy(images)[rows].float().div_(255)
        cached_rate = batches * 80 / (time.perf_counter() - t0)
        tf = torchvision.transforms.Compose([torchvision.transforms.Resize((64, 64)), torchvision.transforms.ToTensor()])
        ds = torchvision.datasets.ImageFolder(str(folder), transform=tf)
        sampler = samplers.MPerClassSampler(np.array(ds.targets), m=16, batch_size=80, length_before_new_iter=batches * 80)
        loader = torch.utils.data.DataLoader(ds, batch_size=80, sampler=sampler, num_workers=2)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        decode_rate = batches * 80 / (time.perf_counter() - t0)
        return {
            "images": len(kept),
            "first_job_decode_s": round(first_decode, 2),
            "later_jobs_open_s": round(reuse, 3),
            "cached_batches_img_per_s": round(cached_rate),
            "imagefolder_dataloader_img_per_s": round(decode_rate),
            "ratio": round(cached_rate / decode_rate, 1),
            "target": 5,
        }


def section_eval() -> dict:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from app.datasets import bundled_arrays
    from app.distance import Distance
    from trainer.evaluate import RETRIEVAL, embed, retrieval_metrics
    from trainer.nets import EmbeddingNet, small_cnn

    labels, raw = bundled_arrays("mnist5k")
    images = torch.from_numpy(np.concatenate([raw, raw[:, ::-1]])).unsqueeze(1).contiguous()  # 10,000 images
    labels_t = torch.from_numpy(np.concatenate([labels, labels]))
    torch.manual_seed(0)
    model = EmbeddingNet(small_cnn(1, 128), True)
    model.eval()

    def plain_path() -> tuple[dict, float, float]:
        t0 = time.perf_counter()
        with torch.no_grad():
            loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels_t), batch_size=64)
            emb = torch.cat([model(x.float() / 255) for x, _ in loader])
        t1 = time.perf_counter()
        return AccuracyCalculator(include=RETRIEVAL).get_accuracy(emb, labels_t), t1 - t0, time.perf_counter() - t1

    def our_path() -> tuple[dict, float, float]:
        t0 = time.perf_counter()
        emb = embed(model, images, torch.device("cpu"))
        t1 = time.perf_counter()
        return retrieval_metrics(emb, labels_t, Distance("l2", normalized=True)), t1 - t0, time.perf_counter() - t1

    runs: dict[str, list] = {"plain": [], "ours": []}
    for i in range(3):  # alternated, so both sides share the machine's drift
        for name, path in [("plain", plain_path), ("ours", our_path)] if i % 2 == 0 else [("ours", our_path), ("plain", plain_path)]:
            runs[name].append(path())
    (plain, *_), (ours, *_) = runs["plain"][0], runs["ours"][0]

    def median_s(name: str, part: int) -> float:
        return round(statistics.median(r[part] for r in runs[name]), 2)

    plain_s, ours_s = median_s("plain", 1) + median_s("plain", 2), median_s("ours", 1) + median_s("ours", 2)
    same = all(abs(plain[k] - ours[k]) < 1e-6 for k in RETRIEVAL)
    return {
        "images": len(images),
        "plain_s": round(plain_s, 2),
        "ours_s": round(ours_s, 2),
        "speedup": round(plain_s / ours_s, 2),
        "target": 2,
        "embed_s": {"plain": median_s("plain", 1), "ours": median_s("ours", 1)},
        "knn_and_metrics_s": {"plain": median_s("plain", 2), "ours": median_s("ours", 2)},
        "identical_metrics": same,
        "plain": {k: round(v, 6) for k, v in plain.items()},
        "ours": {k: round(v, 6) for k, v in ours.items()},
    }


def section_sweep() -> dict:
    margins = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    t0 = time.perf_counter()
    for m in margins:
        reference("triplet", m, 300)
    sequential = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as home:
        # A server that has run any job before has its datasets cached and UMAP compiled (Numba's cache is under
        # EMBEDLAB_HOME): one 5-step job, untimed, stands for that.
        run_sweeps(home, [{"base": {"dataset": "mnist5k", "steps": 5}, "grid": {"margin": [0.2]}}], workers=1)
        packed, jobs = run_sweeps(
            home, [{"base": {"dataset": "mnist5k", "steps": 300, "eval_every": 300}, "grid": {"margin": margins}}], workers=2
        )
    return {
        "jobs": len(margins),
        "reference_sequential_s": round(sequential, 1),
        "embedlab_2_workers_s": round(packed, 1),
        "ratio": round(packed / sequential, 2),
        "target": 0.7,
        "succeeded": sum(j["status"] == "succeeded" for j in jobs) - 1,
    }


def section_memory() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "data", classes=20, per_class=1000, size=32)
        home = str(Path(tmp) / "home")
        spec = {"dataset": "imagefolder", "dataset_path": str(folder), "image_size": 64, "steps": 50, "eval_every": 50}
        big = run_in_worker(home, spec)
        code = (
            "import json; from app.config import Settings; from app.spec import JobSpec; from app.store import jobs;"
            "from app.store.db import get_engine, init_db; s=Settings(); e=get_engine(s.db_url); init_db(e);"
            "from trainer.worker import Worker; w=Worker(s, threads=2); rss=[]\n"
            "for i in range(20):\n"
            "    jobs.submit(e, JobSpec(dataset='mnist5k', steps=30, eval_every=30)); w.run(max_jobs=1, exit_when_idle=True)\n"
            "    rss.append(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024)\n"
            "print(json.dumps(rss))"
        )
        rss = json.loads(run_python(code, home_env(home)))
        return {
            "folder_images": 20_000,
            "folder_job_peak_rss_mb": round(big["peak_rss_mb"]),
            "status": big["status"],
            "rss_mb_after_each_of_20_jobs": rss,
            "growth_mb_job5_to_job20": rss[-1] - rss[4],
        }


def first_step_timing(home: str, job_id: int) -> dict:
    """Seconds from the job's start to its first training step, and the part of it before the data was ready."""
    from sqlalchemy import select

    from app.config import Settings
    from app.store import joblogs, jobs
    from app.store.db import get_engine
    from app.store.models import Metric

    engine = get_engine(Settings(home=home).db_url)
    started = jobs.get(engine, job_id).started_at.timestamp()
    with engine.connect() as conn:
        first = conn.execute(
            select(Metric.wall_time).where(Metric.job_id == job_id, Metric.name == "train/loss", Metric.step == 1)
        ).scalar_one()
    ready = next(line["created_at"].timestamp() for line in joblogs.lines(engine, job_id) if "training images in" in line["message"])
    return {"to_first_step_s": round(first - started, 1), "data_ready_s": round(ready - started, 1)}


def section_bigfolder() -> dict:
    """A 50,000-image folder (500 classes of 100 JPEGs, 48 px) and a cnn job at 32 px with augment "standard":
    the first job decodes the folder into the cache (cold), the second memory-maps it (warm)."""
    classes, per_class = (20, 10) if "--quick" in sys.argv else (500, 100)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = make_folder(Path(tmp) / "data", classes=classes, per_class=per_class, size=48)
        generated_s = time.perf_counter() - t0
        home = str(Path(tmp) / "home")
        spec = {
            "dataset": "imagefolder",
            "dataset_path": str(folder),
            "image_size": 32,
            "augment": "standard",
            "steps": 20,
            "eval_every": 10_000,
            "explorer": False,
            "classes_per_batch": 8,
            "samples_per_class": 8,
        }
        out: dict = {"images": classes * per_class, "generated_s": round(generated_s, 1)}
        for run in ("cold", "warm"):
            memory: dict[str, int] = {}
            got = run_in_worker(home, spec, memory)
            assert got["status"] == "succeeded", got
            out[run] = {**first_step_timing(home, got["job_id"]), "peak_rss_mb": round(got["peak_rss_mb"]), **memory}
        cache = sum(f.stat().st_size for f in (Path(home) / "cache").rglob("images.npy"))
        out["cache_mb"] = round(cache / 2**20)
        out["jpeg_mb"] = round(sum(f.stat().st_size for f in folder.rglob("*.jpg")) / 2**20)
        return out


SECTIONS = {
    "folder": section_folder,
    "pipeline": section_pipeline,
    "eval": section_eval,
    "sweep": section_sweep,
    "memory": section_memory,
    "bigfolder": section_bigfolder,
}

if __name__ == "__main__":
    for name in [a for a in sys.argv[1:] if not a.startswith("--")] or list(SECTIONS):
        print(json.dumps({name: SECTIONS[name]()}), flush=True)
