"""What the trainer tests share: the Run protocol in memory and a tiny colour image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.config import Settings
from trainer.errors import StopRequested


class LocalRun:
    """The Run protocol in memory; `stop_at` plays a SIGTERM after that step."""

    def __init__(self, job_dir: Path, stop_at: int | None = None):
        self.device, self.job_dir, self.stop_at = torch.device("cpu"), job_dir, stop_at
        self.logs: list[str] = []
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.summary: dict = {}

    def log(self, level: str, message: str) -> None:
        self.logs.append(message)

    def metric(self, name: str, step: int, value: float) -> None:
        self.metrics.setdefault(name, []).append((step, value))

    def check(self, step: int) -> None:
        if step == self.stop_at:
            raise StopRequested("shutdown")

    def still_owner(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def summarize(self, entries: dict) -> None:
        self.summary.update(entries)

    def phase(self, text: str | None) -> None:
        pass


@pytest.fixture
def folder_settings(home: Path) -> Settings:
    """4 classes x 6 colour images of 20 px in the home's data root."""
    rng = np.random.default_rng(0)
    root = home / "datasets" / "tiny"
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return Settings(home=home, offline=True)
