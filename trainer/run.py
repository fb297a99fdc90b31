"""The Run protocol: what a job writes through (the worker's JobRun implements it; tests pass their own).

It is the whole surface between the training code and the queue: metrics, log lines and the phase, the
device, the job's folder, whether this process still owns the job, and where to stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch


class Run(Protocol):
    device: torch.device
    job_dir: Path

    def log(self, level: str, message: str) -> None: ...
    def metric(self, name: str, step: int, value: float) -> None: ...
    def check(self, step: int) -> None: ...  # raises StopRequested
    def still_owner(self) -> bool: ...
    def flush(self) -> None: ...  # write buffered metric points now
    def summarize(self, entries: dict[str, Any]) -> None: ...  # merge the job's evidence (best, baseline, test) into its summary
    def phase(self, text: str | None) -> None: ...  # after the steps: what the job is doing ("laying out embeddings: 40%")
