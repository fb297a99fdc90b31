"""An uploaded image is embedded as training and evaluation saw it: decoded at the stored size, then centre-cropped."""

from __future__ import annotations

import io

import numpy as np

from app.datasets import load_catalog
from tests.trainer.conftest import LocalRun
from tests.trainer.test_backbones_train import job
from trainer import artifacts, inference
from trainer.data import image_size, stored_size
from trainer.train import train


def test_upload_of_a_dataset_file_embeds_as_its_evaluation_did(folder_settings, tmp_path):
    # resnet18 at 16 px: images are stored at 19 px and the net's input stage crops the centre 16.
    spec = job(folder_settings, backbone="resnet18", image_size=16, head_lr_multiplier=1, lr_schedule="constant", warmup_steps=0)
    assert stored_size(spec) > image_size(spec)
    job_dir = tmp_path / "job"
    train(spec, LocalRun(job_dir), folder_settings)
    with np.load(job_dir / artifacts.EMBEDDINGS) as stored:
        embeddings, indices = stored["embeddings"], stored["indices"]
    files = load_catalog(spec.dataset, spec.dataset_path, folder_settings.data_root_paths).files
    for row in (0, len(indices) - 1):
        upload = io.BytesIO(files[int(indices[row])].read_bytes())
        got = inference.embed_image(job_dir, folder_settings, upload)
        np.testing.assert_allclose(got, embeddings[row], atol=1e-4)
