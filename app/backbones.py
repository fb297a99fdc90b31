"""The backbones a job may name, torch-free: the API validates specs without importing torch.

torchvision's are listed here with their ImageNet weight files (the file name carries the first
hex digits of the file's sha256, torchvision's own convention). Any timm model is accepted as
`timm:<name>`; its names are checked against `timm.list_models` (imported lazily, on the first
timm spec only).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass

from app.datasets import DEFAULT_FOLDER_SIZE, NATIVE_SIZE

TIMM_PREFIX = "timm:"
PRETRAINED_FOLDER_SIZE = 224  # what ImageNet weights were trained at


@dataclass(frozen=True)
class Backbone:
    name: str
    description: str
    weights_file: str | None = None  # torchvision's ImageNet weights, None: none published
    patch: int | None = None  # the image side must be a multiple of it (ViT)
    pretrained_size: int | None = None  # pretrained weights fix the image side (no position-embedding resampling)


BUILTIN: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("cnn", "small conv net (3 conv blocks), trained from scratch"),
        Backbone("resnet18", "torchvision ResNet-18", "resnet18-f37072fd.pth"),
        Backbone("resnet50", "torchvision ResNet-50 (IMAGENET1K_V2 weights)", "resnet50-11ad3fa6.pth"),
        Backbone("vit_b_16", "torchvision ViT-B/16", "vit_b_16-c867db91.pth", patch=16, pretrained_size=224),
    )
}


class BackboneError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def is_timm(name: str) -> bool:
    return name.startswith(TIMM_PREFIX)


@functools.cache
def timm_models(pretrained: bool = False) -> frozenset[str]:
    import timm  # imports torch: only when a spec names a timm model

    return frozenset(timm.list_models(pretrained=pretrained))


@functools.cache
def timm_pretrained_models() -> frozenset[str]:
    """Architecture names (no `.tag`) that have published weights."""
    return frozenset(n.split(".")[0] for n in timm_models(pretrained=True))


def close_matches(name: str, choices) -> str:
    found = difflib.get_close_matches(name, list(choices), n=5, cutoff=0.6)
    return f"; did you mean {', '.join(found)}?" if found else ""


def effective_image_size(dataset: str, image_size: int | None, pretrained: bool) -> int:
    """The side the network sees: the spec's, else the bundled set's own, else 224 for pretrained image-folder jobs (64 otherwise)."""
    if image_size:
        return image_size
    if dataset in NATIVE_SIZE:
        return NATIVE_SIZE[dataset]
    return PRETRAINED_FOLDER_SIZE if pretrained else DEFAULT_FOLDER_SIZE  # image folders and benchmarks


def patch_size(backbone: str) -> int | None:
    if is_timm(backbone):
        m = re.search(r"patch(\d+)", backbone)
        return int(m.group(1)) if m else None
    return BUILTIN[backbone].patch


def check_backbone(backbone: str, pretrained: bool, size: int) -> None:
    """Raises BackboneError naming the field when the backbone, its weights or the image size cannot work."""
    if is_timm(backbone):
        model = backbone[len(TIMM_PREFIX) :]
        if model not in timm_models():
            raise BackboneError("backbone", f"timm has no model {model!r}" + close_matches(model, timm_models()))
        if pretrained and model not in timm_pretrained_models():
            raise BackboneError("pretrained", f"timm publishes no pretrained weights for {model!r}")
    else:
        if backbone not in BUILTIN:
            names = [*BUILTIN, "timm:<model>"]
            raise BackboneError(
                "backbone", f"unknown backbone {backbone!r}; choose one of {', '.join(names)}" + close_matches(backbone, BUILTIN)
            )
        spec = BUILTIN[backbone]
        if pretrained and spec.weights_file is None:
            raise BackboneError("pretrained", f"no pretrained weights exist for backbone {backbone!r}")
        if pretrained and spec.pretrained_size and size != spec.pretrained_size:
            raise BackboneError(
                "image_size",
                f"{backbone}'s pretrained weights take {spec.pretrained_size}x{spec.pretrained_size} "
                f"images, not {size}; set image_size to {spec.pretrained_size}",
            )
    patch = patch_size(backbone)
    if patch and size % patch:
        up = math.ceil(size / patch) * patch
        raise BackboneError(
            "image_size", f"{backbone} cuts images into {patch}x{patch} patches: {size} is not a multiple of {patch} (try {up})"
        )
