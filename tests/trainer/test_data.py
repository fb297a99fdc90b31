"""A job's parts of a memory-mapped folder are row numbers into the cache, not copies of its pixels."""

from __future__ import annotations

import numpy as np
import torch

from app.datasets import load_catalog
from app.files import cache_dir
from app.spec import JobSpec, job_split
from trainer.data import load_images
from trainer.image_cache import decode_image, decoded_folder


def test_parts_gather_from_the_cache_without_copying_it(folder_settings):
    spec = JobSpec.model_validate(
        {
            "dataset": "imagefolder",
            "dataset_path": str(folder_settings.home_path / "datasets" / "tiny"),
            "split": "samples",
            "image_size": 16,
            "augment": "standard",
        }
    )
    data = load_images(spec, folder_settings, lambda *_: None)
    parts = job_split(data.labels.numpy(), spec, data.official_test)
    train, val = data.subset(parts.train), data.subset(parts.val)
    small = train.subset(np.arange(0, len(train), 2))  # a part of a part (classes left out of batches)
    assert len(train) + len(val) + len(parts.test) == len(data) and len(small) == (len(train) + 1) // 2
    for part in (train, val, small):
        assert part.images.base.data_ptr() == data.images.base.data_ptr()  # the one memory map, shared
    # Read-only, so a shared mapping: page cache, which the attempt's RLIMIT_DATA ceiling does not count.
    cached, _ = decoded_folder(
        load_catalog(spec.dataset, spec.dataset_path, folder_settings.data_root_paths), 19, cache_dir(folder_settings.home_path), print
    )
    assert isinstance(cached, np.memmap) and cached.mode == "r" and not cached.flags.writeable
    files = load_catalog(spec.dataset, spec.dataset_path, folder_settings.data_root_paths).files
    rows = torch.tensor([0, len(small) - 1])
    for row, pixels in zip(rows.tolist(), small.images[rows], strict=True):
        assert np.array_equal(pixels.numpy(), decode_image(files[small.indices[row]], 19))  # augmented: stored 256/224 above 16
    assert small.images.shape == (len(small), 3, 19, 19)
    assert torch.equal(small.images.to(torch.device("cpu"), chunk=2), small.images[torch.arange(len(small))])
