"""Each backbone builds, trains 5 steps and resumes from its checkpoint (tiny images, in process)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from app.config import Settings
from app.spec import JobSpec
from tests.trainer.conftest import LocalRun
from trainer import artifacts
from trainer.errors import StopRequested
from trainer.nets import build_net
from trainer.train import train


def job(settings: Settings, **fields) -> JobSpec:
    # Parts within each class: four classes are too few for class-disjoint parts of two classes each.
    return JobSpec.model_validate(
        {
            "dataset": "imagefolder",
            "dataset_path": str(settings.home_path / "datasets" / "tiny"),
            "split": "samples",
            "classes_per_batch": 2,
            "samples_per_class": 2,
            "embedding_dim": 8,
            "steps": 5,
            "eval_every": 5,
            "explorer": False,
            "miner": "none",
            "augment": "standard",
            "lr_schedule": "cosine",
            "warmup_steps": 2,
            "head_lr_multiplier": 10,
            "grad_clip": 1.0,
            **fields,
        }
    )


@pytest.mark.parametrize("backbone, size", [("cnn", 16), ("resnet18", 16), ("resnet50", 16), ("timm:vit_tiny_patch16_224", 32)])
def test_backbone_trains_five_steps_and_resumes(folder_settings, tmp_path, backbone, size):
    spec = job(folder_settings, backbone=backbone, image_size=size)
    job_dir = tmp_path / "job"
    with pytest.raises(StopRequested):
        train(spec, LocalRun(job_dir, stop_at=3), folder_settings)
    assert artifacts.load_checkpoint(job_dir)["step"] == 3
    run = LocalRun(job_dir)
    final = train(spec, run, folder_settings)
    assert "resumed from the checkpoint at step 3" in run.logs
    assert [s for s, _ in run.metrics["train/loss"]] == [4, 5]
    assert all(np.isfinite(v) for _, v in run.metrics["train/loss"])
    assert 0.0 <= final["precision_at_1"] <= 1.0
    ckpt = artifacts.load_checkpoint(job_dir)
    assert ckpt["step"] == 5
    # The head learns at lr x 10, and the cosine schedule ends at 0.
    groups = ckpt["optimizer"]["param_groups"]
    assert [g["base_lr"] for g in groups] == [spec.lr, spec.lr * 10] and all(g["lr"] == pytest.approx(0.0, abs=1e-12) for g in groups)


def test_vit_b_16_takes_one_step(folder_settings):
    """torchvision's ViT-B/16 (86M parameters): one forward/backward on a batch of 2 at 32 px, from 1-channel input."""
    spec = job(folder_settings, backbone="vit_b_16", image_size=32)
    net = build_net(spec, 3, folder_settings)
    x = torch.rand(2, 1, 37, 37)  # stored a little above image_size, grey: the input stage crops and replicates
    emb = net(x)
    assert emb.shape == (2, 8) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    emb.sum().backward()
    assert net.body.heads.weight.grad is not None and net.body.conv_proj.weight.grad is not None


def test_freeze_bn_keeps_running_statistics(folder_settings):
    net = build_net(job(folder_settings, backbone="resnet18", image_size=16, freeze_bn=True), 3, folder_settings)
    before = net.body.bn1.running_mean.clone()
    net.train()
    net(torch.rand(4, 3, 18, 18))
    assert torch.equal(net.body.bn1.running_mean, before) and not net.body.bn1.weight.requires_grad


def test_a_benchmark_layout_trains_on_its_official_split(home, tmp_path):
    """A CUB-200-2011 miniature (classes 1-6, 101, 102): train and validation come from classes 1-100, the locked test part is 101-200."""
    root = home / "datasets" / "CUB_200_2011"
    rng = np.random.default_rng(0)
    lines, labels = [], []
    for n, (c, i) in enumerate(((c, i) for c in (1, 2, 3, 4, 5, 6, 101, 102) for i in range(4)), start=1):
        rel = f"{c:03d}.Bird/{i}.jpg"
        (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "images" / rel)
        lines.append(f"{n} {rel}")
        labels.append(f"{n} {c}")
    (root / "images.txt").write_text("\n".join(lines))
    (root / "image_class_labels.txt").write_text("\n".join(labels))
    settings = Settings(home=home, offline=True)
    spec = JobSpec.model_validate(
        {
            "dataset": "cub200",
            "dataset_path": str(root),
            "classes_per_batch": 2,
            "samples_per_class": 2,
            "steps": 5,
            "eval_every": 5,
            "explorer": False,
            "image_size": 16,
            "augment": "standard",
        }
    )
    run = LocalRun(tmp_path / "job")
    train(spec, run, settings)
    assert any(
        "16 training images in 4 classes, 8 validation images in 2 classes, 8 test images in 2 classes" in line for line in run.logs
    ), run.logs
    with np.load(tmp_path / "job" / artifacts.EMBEDDINGS) as stored:
        assert sorted(set(stored["labels"].tolist())) == [4, 5]  # validation: the last official training classes (5, 6)
