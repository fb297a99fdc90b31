"""What a job reports after its last step, while the dashboard would otherwise sit at "ETA 0 s".

The worker's heartbeat carries the latest phase text to the jobs row (JobRun.phase); here are
the words and the one source of a fine-grained fraction: UMAP's epochs, which it counts with
tqdm, written to a sink that turns "n/total" into a fraction instead of a terminal bar.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from trainer.run import Run

Report = Callable[[float], None]


def layout_reporter(run: Run, prefix: str = "") -> Report:
    """fraction -> run.phase("laying out embeddings: 40%")."""
    return lambda fraction: run.phase(f"{prefix}laying out embeddings: {round(100 * min(1.0, max(0.0, fraction)))}%")


class _EpochSink(io.TextIOBase):
    def __init__(self, report: Report):
        self.report = report

    def write(self, text: str) -> int:
        if (m := re.search(r"(\d+)/(\d+)", text)) and int(m[2]):
            self.report(int(m[1]) / int(m[2]))
        return len(text)


def umap_epochs(report: Report) -> dict[str, Any]:
    """UMAP constructor settings that report the share of optimisation epochs done (umap-learn's tqdm_kwds)."""
    return {"tqdm_kwds": {"disable": False, "file": _EpochSink(report), "bar_format": "{n}/{total}", "mininterval": 0.5}}
