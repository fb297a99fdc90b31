"""Backbones and the embedding head.

`cnn` sees the stored images as they are. Every other backbone gets them the way ImageNet
networks expect: three channels (grey replicated), a centre crop at the job's image size when
the stored images are larger (evaluation: resize, then centre crop), then the weights'
mean/std normalisation. That stage is part of the net, so training, evaluation and the explorer
see the same input (uploads too: trainer/inference.py decodes them at the stored size).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from app import weights
from app.backbones import TIMM_PREFIX, effective_image_size, is_timm, patch_size
from app.config import Settings
from app.spec import JobSpec
from trainer.errors import JobFailed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_STEM_BELOW = 128  # ResNets from scratch on small images: a 3x3 stem without the first downsampling


def small_cnn(in_channels: int, dim: int) -> nn.Module:
    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(in_channels, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, dim))


class InputStage(nn.Module):
    """Images (N, C, H, W), H and W >= size, as uint8 from the cache or [0, 1] floats from augmentation ->
    centre crop at size; with mean/std: RGB (grey replicated), normalised. The cnn gets the crop alone.
    uint8 is cropped before it is converted, and scaled and normalised in one pass: evaluation batches
    then cost a third of converting the whole stored image first (bench/augment.py pipeline)."""

    def __init__(self, size: int, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None):
        super().__init__()
        self.size = size
        self.rgb = mean is not None
        # Not persistent: checkpoints stay the backbone's weights alone.
        self.register_buffer("mean", torch.tensor(mean or (0.0,) * 3).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0,) * 3).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h > self.size or w > self.size:
            top, left = (h - self.size) // 2, (w - self.size) // 2
            x = x[..., top : top + self.size, left : left + self.size]
        if self.rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.dtype == torch.uint8:
            x = x.float()  # the crop alone, a new tensor: scaled in place below
            if not self.rgb:
                return x.div_(255.0)
            return x.mul_(1.0 / (255.0 * self.std)).sub_(self.mean / self.std)
        if not self.rgb:
            return x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def torchvision_weights(settings: Settings, backbone: str) -> dict:
    """The checked ImageNet state dict: from disk, or fetched now unless EMBEDLAB_OFFLINE is set."""
    try:
        path = weights.local_path(settings, backbone)
        path = weights.verified(path) if path is not None else weights.fetch(settings, backbone)
    except weights.WeightsError as e:
        raise JobFailed(f"pretrained weights for {backbone}: {e}") from None
    return torch.load(path, map_location="cpu", weights_only=True)


def torchvision_body(spec: JobSpec, size: int, settings: Settings, weights_wanted: bool = True) -> tuple[nn.Module, str]:
    """(body, name of its head) with the head producing `embedding_dim`."""
    import torchvision

    state = torchvision_weights(settings, spec.backbone) if spec.pretrained and weights_wanted else None
    if spec.backbone == "vit_b_16":
        net = torchvision.models.vit_b_16(weights=None, image_size=size)
        if state is not None:
            net.load_state_dict(state)
        net.heads = nn.Linear(net.hidden_dim, spec.embedding_dim)
        return net, "heads"
    net = getattr(torchvision.models, spec.backbone)(weights=None)
    if state is not None:
        net.load_state_dict(state)
    elif size < SMALL_STEM_BELOW and not spec.pretrained:  # a pretrained net keeps ImageNet's stem
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Linear(net.fc.in_features, spec.embedding_dim)
    return net, "fc"


def timm_body(spec: JobSpec, size: int, settings: Settings, weights_wanted: bool = True) -> tuple[nn.Module, str, tuple, tuple]:
    import timm

    name = spec.backbone[len(TIMM_PREFIX) :]
    kwargs: dict = {"num_classes": spec.embedding_dim}
    if patch_size(spec.backbone):
        kwargs["img_size"] = size  # ViTs: timm resamples the position embeddings of pretrained weights
    if spec.pretrained and weights_wanted:
        try:
            file = weights.fetch_timm(settings, spec.backbone)
        except weights.WeightsError as e:
            raise JobFailed(str(e)) from None
        kwargs["pretrained_cfg_overlay"] = {"file": str(file)}
    net = timm.create_model(name, pretrained=spec.pretrained and weights_wanted, **kwargs)
    cfg = net.pretrained_cfg
    return net, net.default_cfg.get("classifier", "head"), tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


class EmbeddingNet(nn.Module):
    def __init__(self, body: nn.Module, normalize: bool, input_stage: InputStage | None = None, head: str = "", freeze_bn: bool = False):
        super().__init__()
        self.body = body
        self.normalize = normalize
        self.input_stage = input_stage
        self.head_prefix = f"body.{head}." if head else ""  # the embedding head's parameters (head_lr_multiplier)
        self.freeze_bn = freeze_bn
        if freeze_bn:
            for m in self.batch_norms():
                m.requires_grad_(False)

    def batch_norms(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> EmbeddingNet:
        super().train(mode)
        if self.freeze_bn:  # running statistics stay as loaded
            for m in self.batch_norms():
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_stage is not None:
            x = self.input_stage(x)
        e = self.body(x)
        return nn.functional.normalize(e, dim=1) if self.normalize else e


def build_net(spec: JobSpec, in_channels: int, settings: Settings, weights_wanted: bool = True) -> EmbeddingNet:
    """The job's net; `weights_wanted=False`: its architecture alone, for a checkpoint to fill (no ImageNet weights
    read or fetched, so an offline server without them still answers queries on a pretrained job)."""
    size = effective_image_size(spec.dataset, spec.image_size, spec.pretrained)
    if spec.backbone == "cnn":
        body = small_cnn(in_channels, spec.embedding_dim)
        return EmbeddingNet(body, spec.normalize, InputStage(size), str(len(body) - 1), spec.freeze_bn)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if is_timm(spec.backbone):
        body, head, mean, std = timm_body(spec, size, settings, weights_wanted)
    else:
        body, head = torchvision_body(spec, size, settings, weights_wanted)
    return EmbeddingNet(body, spec.normalize, InputStage(size, mean, std), head, spec.freeze_bn)
