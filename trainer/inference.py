"""Embedding an uploaded image with a job's checkpoint (imported lazily by the API: this module loads torch).

The preprocessing is the training one: trainer.data.decode_image (any mode -> RGB, bilinear
resize to the job's stored size, trainer.data.stored_size), then grey when the job's images were
grey (the bundled datasets); the net's input stage then applies evaluation's centre crop to
image_size and its normalisation, so an upload of a dataset image embeds as that image did.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from app.config import Settings
from app.spec import JobSpec
from trainer import artifacts
from trainer.data import decode_image, stored_size
from trainer.evaluate import embed
from trainer.nets import EmbeddingNet, build_net

MAX_MODELS = 2  # checkpoints kept in memory by the API process
_lock = threading.Lock()
_models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()


class NoCheckpoint(LookupError):
    """The job has no checkpoint (yet)."""


@dataclass
class LoadedModel:
    net: EmbeddingNet
    spec: JobSpec
    in_channels: int
    size: int  # the stored side: the net's input stage crops it to image_size


def _in_channels(state: dict[str, torch.Tensor]) -> int:
    """The first convolution's input channels: 1 for grey datasets, 3 for colour ones."""
    return next(int(t.shape[1]) for t in state.values() if t.ndim == 4)


def checkpoint_name(job_dir: Path, which: str = "best") -> str:
    """The best checkpoint unless `which` is "final" (or the job has no best yet, as one from before best checkpoints)."""
    return artifacts.BEST_CHECKPOINT if which == "best" and (job_dir / artifacts.BEST_CHECKPOINT).is_file() else artifacts.CHECKPOINT


def load_model(job_dir: Path, settings: Settings, which: str = "best") -> LoadedModel:
    """The job's trained net (best checkpoint by default) in eval mode, cached by checkpoint file and modification time."""
    name = checkpoint_name(job_dir, which)
    path = job_dir / name
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise NoCheckpoint(f"{job_dir.name} has no checkpoint") from None
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    ckpt = artifacts.load_checkpoint(job_dir, name)  # weights_only=True: tensors and plain containers only
    if ckpt is None:
        raise NoCheckpoint(f"{job_dir.name} has no checkpoint")
    spec = JobSpec.model_validate(ckpt["spec"])
    channels = _in_channels(ckpt["model"])
    net = build_net(spec, channels, settings, weights_wanted=False)  # the checkpoint holds every weight
    net.load_state_dict(ckpt["model"])
    net.eval()
    loaded = LoadedModel(net, spec, channels, stored_size(spec))
    with _lock:
        _models[key] = loaded
        while len(_models) > MAX_MODELS:
            _models.popitem(last=False)
    return loaded


def preprocess(file: BinaryIO, model: LoadedModel) -> torch.Tensor:
    """uint8 (1, C, H, W), as the training images were stored."""
    rgb = decode_image(file, model.size)  # (3, size, size)
    if model.in_channels == 1:
        # ITU-R 601-2 luma, PIL's "L" conversion: a grey image round-trips exactly
        grey = (rgb[0].astype(np.uint32) * 299 + rgb[1].astype(np.uint32) * 587 + rgb[2].astype(np.uint32) * 114 + 500) // 1000
        array = grey.astype(np.uint8)[None]
    else:
        array = rgb
    return torch.from_numpy(np.ascontiguousarray(array))[None]


def embed_image(job_dir: Path, settings: Settings, file: BinaryIO, which: str = "best") -> np.ndarray:
    """The embedding (float32, 1-D) of one image file under the job's best (or final) model."""
    model = load_model(job_dir, settings, which)
    return embed(model.net, preprocess(file, model), torch.device("cpu"))[0].numpy().astype(np.float32)
