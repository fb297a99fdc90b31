"""Weights come from a loopback HTTP server standing in for the publisher: they land once, and a
file whose sha256 does not start with the prefix in its name is refused, downloaded or on disk."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

from app import backbones, weights
from app.config import Settings
from app.spec import JobSpec
from trainer.errors import JobFailed
from trainer.nets import build_net


class WeightsHost:
    """http.server on 127.0.0.1 serving one folder, counting the requests it answers."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        host = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                host.requests.append(self.path)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def host(tmp_path: Path, monkeypatch) -> Iterator[WeightsHost]:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # never pick up a real cached file
    (tmp_path / "served").mkdir()
    h = WeightsHost(tmp_path / "served")
    yield h
    h.server.shutdown()


@pytest.fixture
def published_resnet18(host: WeightsHost, monkeypatch) -> dict:
    """A ResNet-18 state dict published under torchvision's naming rule (sha256 prefix in the name)."""
    state = torchvision.models.resnet18(weights=None).state_dict()
    tmp = host.root / "tmp.pth"
    torch.save(state, tmp)
    name = f"resnet18-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(host.root / name)
    monkeypatch.setitem(backbones.BUILTIN, "resnet18", dataclasses.replace(backbones.BUILTIN["resnet18"], weights_file=name))
    return {"name": name, "state": state}


def spec() -> JobSpec:
    return JobSpec.model_validate({"dataset": "digits", "backbone": "resnet18", "pretrained": True, "image_size": 32, "embedding_dim": 8})


def test_weights_land_once_and_load_into_the_net(home, host, published_resnet18):
    settings = Settings(home=home, weights_url=host.url)
    seen = []
    path = weights.fetch(settings, "resnet18", lambda done, total: seen.append((done, total)))
    assert path == home / "weights" / published_resnet18["name"] and path.is_file()
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size  # the progress reached the whole file
    assert weights.fetch(settings, "resnet18") == path
    net = build_net(spec(), 3, settings)  # a worker's first use: already here, checked, loaded
    assert len(host.requests) == 1, host.requests
    assert torch.equal(net.body.conv1.weight, published_resnet18["state"]["conv1.weight"])
    assert net.body.fc.out_features == 8
    assert [r["weights_present"] for r in weights.listing(settings) if r["name"] == "resnet18"] == [True]


def test_worker_fetches_missing_weights_on_first_use_unless_offline(home, host, published_resnet18):
    with pytest.raises(JobFailed, match="EMBEDLAB_OFFLINE"):
        build_net(spec(), 3, Settings(home=home, weights_url=host.url, offline=True))
    assert host.requests == []
    net = build_net(spec(), 3, Settings(home=home, weights_url=host.url))
    assert torch.equal(net.body.layer1[0].conv1.weight, published_resnet18["state"]["layer1.0.conv1.weight"])
    assert host.requests == [f"/{published_resnet18['name']}"]


def test_tampered_file_on_disk_is_refused_and_not_loaded(home, host, published_resnet18):
    settings = Settings(home=home, weights_url=host.url)
    path = weights.fetch(settings, "resnet18")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(JobFailed, match="fails its hash check"):
        build_net(spec(), 3, settings)


def test_cli_refuses_a_download_that_fails_its_hash(home, host):
    (host.root / "resnet18-f37072fd.pth").write_bytes(b"not the published file" * 1000)
    env = {
        **os.environ,
        "EMBEDLAB_HOME": str(home),
        "EMBEDLAB_WEIGHTS_URL": host.url,
        "EMBEDLAB_OFFLINE": "false",
        "TORCH_HOME": str(host.root.parent / "torch-home"),
    }
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "weights", "fetch", "resnet18", "resnt50"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed its hash check" in r.stderr and "nothing was saved" in r.stderr
    assert "unknown backbone 'resnt50'" in r.stderr and "resnet50" in r.stderr
    assert not any((home / "weights").iterdir())
    listed = subprocess.run(
        [sys.executable, "-m", "app.cli", "weights", "list"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "resnet18" in listed and "missing" in listed and "no published weights" in listed


class Hub:
    """A loopback Hugging Face hub serving one file: HEAD gives the ETag it publishes (the sha256 of `published`),
    GET gives `served` (a file altered on the way when they differ)."""

    COMMIT = "0" * 40

    def __init__(self, repo: str, filename: str, published: bytes, served: bytes):
        self.requests: list[str] = []
        path, etag = f"/{repo}/resolve/main/{filename}", hashlib.sha256(published).hexdigest()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if self.path != path:
                    self.send_error(404)
                    return
                self.send_response(200)
                for name, value in (("X-Repo-Commit", hub.COMMIT), ("X-Linked-Etag", f'"{etag}"'), ("Content-Length", len(served))):
                    self.send_header(name, str(value))
                self.end_headers()
                if body:
                    self.wfile.write(served)

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


TIMM = "timm:test_resnet"  # a tiny timm CNN with published hub weights


@pytest.fixture
def timm_weights(tmp_path: Path) -> dict:
    """The file timm's hub would publish for test_resnet, as bytes, and its source state dict."""
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("test_resnet").state_dict()
    save_file(state, tmp_path / "model.safetensors")
    cfg = timm.get_pretrained_cfg("test_resnet")
    return {"repo": cfg.hf_hub_id, "bytes": (tmp_path / "model.safetensors").read_bytes(), "state": state}


def serve(timm_weights: dict, served: bytes | None = None) -> Hub:
    return Hub(timm_weights["repo"], "model.safetensors", timm_weights["bytes"], served or timm_weights["bytes"])


def timm_spec() -> JobSpec:
    return JobSpec.model_validate({"dataset": "digits", "backbone": TIMM, "pretrained": True, "image_size": 32, "embedding_dim": 8})


def test_timm_weights_land_once_checked_against_the_hubs_hash(home, timm_weights):
    hub = serve(timm_weights)
    settings = Settings(home=home, hub_url=hub.url)
    path = weights.fetch(settings, TIMM)
    assert path.is_relative_to(home / "weights" / "hf") and path.resolve().name == hashlib.sha256(timm_weights["bytes"]).hexdigest()
    net = build_net(timm_spec(), 3, settings)  # a worker's first use: in the cache, checked, loaded
    assert [r.split()[0] for r in hub.requests] == ["HEAD", "GET"], hub.requests
    stem = next(k for k in timm_weights["state"] if k.endswith(".weight"))
    assert torch.equal(net.body.state_dict()[stem], timm_weights["state"][stem])
    assert weights.present(settings, TIMM)
    hub.server.shutdown()


def test_timm_download_altered_on_the_way_is_refused_and_not_kept(home, timm_weights):
    altered = bytearray(timm_weights["bytes"])
    altered[-10] ^= 0xFF  # same size: the hub client's own size check passes
    hub = serve(timm_weights, bytes(altered))
    settings = Settings(home=home, hub_url=hub.url)
    with pytest.raises(JobFailed, match="failed its hash check.*nothing was saved"):
        build_net(timm_spec(), 3, settings)
    assert not [p for p in (home / "weights" / "hf").rglob("*") if p.is_file() and p.parent.name in ("blobs", "snapshots")]
    assert not list((home / "weights" / "hf").rglob("model.safetensors"))
    hub.server.shutdown()


def test_timm_file_tampered_on_disk_is_refused_and_not_loaded(home, timm_weights):
    hub = serve(timm_weights)
    settings = Settings(home=home, hub_url=hub.url)
    blob = weights.fetch(settings, TIMM).resolve()
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(JobFailed, match="fails its hash check"):
        build_net(timm_spec(), 3, Settings(home=home, hub_url=hub.url, offline=True))
    assert len(hub.requests) == 2  # refused from the cache, not downloaded again behind the user's back
    hub.server.shutdown()


def test_a_pretrained_jobs_net_is_rebuilt_for_its_checkpoint_offline_without_the_imagenet_weights(home, host, published_resnet18):
    """What an upload query on a finished pretrained job does: the architecture alone, filled from the checkpoint."""
    trained = build_net(spec(), 3, Settings(home=home, weights_url=host.url)).eval()
    for f in (home / "weights").iterdir():
        f.unlink()
    rebuilt = build_net(spec(), 3, Settings(home=home, weights_url=host.url, offline=True), weights_wanted=False)
    rebuilt.load_state_dict(trained.state_dict())  # the same layers: ImageNet's stem kept at 32 px
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(rebuilt.eval()(x), trained(x))
    assert len(host.requests) == 1  # the first build's fetch, none since
    build_net(timm_spec(), 3, Settings(home=home, offline=True), weights_wanted=False)  # timm: no hub asked either
