"""Backbone names, pretrained weights and image sizes are checked at submit: a 422 naming the field."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def post(client: TestClient, body: dict):
    return client.post("/api/jobs", json={"dataset": "digits", **body})


def fields(r) -> dict[str, str]:
    return {d["field"]: d["reason"] for d in r.json()["detail"]}


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"backbone": "resnet5"}, "backbone", "did you mean resnet50, resnet18"),
        ({"backbone": "vgg16"}, "backbone", "timm:<model>"),
        ({"backbone": "timm:convnext_tiniy"}, "backbone", "did you mean convnext_tiny"),
        ({"backbone": "cnn", "pretrained": True}, "pretrained", "no pretrained weights exist for backbone 'cnn'"),
        ({"backbone": "vit_b_16"}, "image_size", "8 is not a multiple of 16"),
        ({"backbone": "vit_b_16", "image_size": 40}, "image_size", "try 48"),
        ({"backbone": "vit_b_16", "pretrained": True, "image_size": 64}, "image_size", "take 224x224"),
        ({"backbone": "timm:vit_tiny_patch16_224", "image_size": 40}, "image_size", "multiple of 16"),
        ({"augment": "heavy"}, "augment", "standard"),
        ({"lr_schedule": "step"}, "lr_schedule", "cosine"),
        ({"warmup_steps": -1}, "warmup_steps", "greater than or equal to 0"),
        ({"head_lr_multiplier": 0}, "head_lr_multiplier", "greater than 0"),
        ({"grad_clip": True}, "grad_clip", "number"),
    ],
)
def test_bad_backbone_fields_are_a_422_naming_the_field(client, body, field, words):
    r = post(client, body)
    assert r.status_code == 422, r.text
    assert words in fields(r).get(field, ""), r.json()


def test_new_backbones_and_training_fields_are_accepted(client):
    r = post(
        client,
        {
            "backbone": "resnet50",
            "image_size": 32,
            "augment": "standard",
            "lr_schedule": "cosine",
            "warmup_steps": 10,
            "head_lr_multiplier": 10,
            "grad_clip": 1.0,
            "freeze_bn": True,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["lr_schedule"] == "cosine" and r.json()["spec"]["head_lr_multiplier"] == 10
    assert post(client, {"backbone": "timm:vit_tiny_patch16_224", "image_size": 32}).status_code == 201
    # An online server takes pretrained jobs whose weights are not here yet: the worker fetches them on first use.
    assert post(client, {"backbone": "resnet18", "pretrained": True, "image_size": 32}).status_code == 201


def test_offline_server_refuses_missing_weights_naming_the_file_and_the_command(home):
    with TestClient(create_app(Settings(home=home, offline=True, demo=False))) as client:
        r = post(client, {"backbone": "resnet50", "pretrained": True, "image_size": 32})
        assert r.status_code == 422, r.text
        reason = fields(r)["pretrained"]
        assert "resnet50-11ad3fa6.pth" in reason and "embedlab weights fetch resnet50" in reason and "EMBEDLAB_OFFLINE" in reason
        listed = {b["name"]: b for b in client.get("/api/backbones").json()["backbones"]}
        assert listed["resnet50"]["weights_present"] is False and listed["cnn"]["pretrained_available"] is False
        # Once the file is there (any valid name), the job is accepted offline.
        (home / "weights").mkdir()
        (home / "weights" / "resnet50-11ad3fa6.pth").write_bytes(b"placed by hand")
        assert client.get("/api/backbones").json()["backbones"][2]["weights_present"] is True
        assert post(client, {"backbone": "resnet50", "pretrained": True, "image_size": 32}).status_code == 201


def test_spec_validation_stays_torch_free():
    code = (
        "import sys, app.main, app.spec, app.weights; from app.spec import JobSpec; "
        "JobSpec.model_validate({'backbone': 'resnet50', 'pretrained': True}); assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
