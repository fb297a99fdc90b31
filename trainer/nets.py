"""Backbones and the embedding head."""
from __future__ import annotations

import torch
import torch.nn as nn

from app.config import Settings
from app.spec import JobSpec, pretrained_weights_path
from trainer.errors import JobFailed


def small_cnn(in_channels: int, dim: int) -> nn.Module:
    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(in_channels, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, dim))


def resnet18(in_channels: int, dim: int, weights_path: str | None) -> nn.Module:
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    if weights_path:
        net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        if in_channels != 3:  # grey images: sum the RGB filters so the pretrained stem still applies
            w = net.conv1.weight.data.sum(dim=1, keepdim=True)
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            net.conv1.weight.data.copy_(w)
    else:  # small images: a 3x3 stem without the first downsampling
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Linear(512, dim)
    return net


class EmbeddingNet(nn.Module):
    def __init__(self, body: nn.Module, normalize: bool):
        super().__init__()
        self.body = body
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.body(x)
        return nn.functional.normalize(e, dim=1) if self.normalize else e


def build_net(spec: JobSpec, in_channels: int, settings: Settings) -> EmbeddingNet:
    if spec.backbone == "cnn":
        body = small_cnn(in_channels, spec.embedding_dim)
    else:
        path = None
        if spec.pretrained:
            found = pretrained_weights_path(settings, spec.backbone)
            if found is None:
                raise JobFailed(f"pretrained weights for {spec.backbone} are not on this worker")
            path = str(found)
        body = resnet18(in_channels, spec.embedding_dim, path)
    return EmbeddingNet(body, spec.normalize)
