"""Which evaluation is the best, the untrained baseline, and when patience runs out.

Validation only: the test part never reaches this module. Its state travels in the checkpoint,
so a resumed attempt goes on with the same best, baseline and count of evaluations without gain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.evidence import no_gain
from trainer.evaluate import RETRIEVAL

Scored = dict[str, Any]  # {"step": int, "metrics": {name, name_low, name_high}}


def scored(step: int, metrics: dict[str, float]) -> Scored:
    """The retrieval metrics and their intervals of one evaluation, as the job summary carries them."""
    names = [f"{m}{suffix}" for m in RETRIEVAL for suffix in ("", "_low", "_high")]
    return {"step": step, "metrics": {n: metrics[n] for n in names if n in metrics}}


@dataclass
class Selection:
    metric: str  # the spec's select_metric
    patience: int | None
    best: Scored | None = None
    baseline: Scored | None = None  # step 0: the untrained network
    since_best: int = 0  # evaluations in a row without a better metric
    stopped_early: dict[str, Any] | None = None

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Take an evaluation's validation metrics; True when it is the new best (strictly better)."""
        entry = scored(step, metrics)
        if step == 0:
            self.baseline = entry
        if self.best is None or metrics[self.metric] > self.best["metrics"][self.metric]:
            self.best, self.since_best = entry, 0
            return True
        self.since_best += 1
        return False

    @property
    def out_of_patience(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    def stop_early(self, step: int) -> str:
        assert self.best is not None
        reason = (
            f"no better validation {self.metric} in {self.since_best} evaluations since step {self.best['step']} "
            f"(patience {self.patience}); the best checkpoint is step {self.best['step']}"
        )
        self.stopped_early = {"step": step, "reason": reason}
        return reason

    def summary(self) -> dict[str, Any]:
        """The job summary's evidence keys (the test results are added at the end of the job)."""
        trained = self.best is not None and self.baseline is not None and (self.since_best > 0 or self.best["step"] > 0)
        return {
            "select_metric": self.metric,
            "best": self.best,
            "baseline": self.baseline,
            "stopped_early": self.stopped_early,
            "no_gain": no_gain(self.best, self.baseline, self.metric) if trained else None,
        }

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def restore(cls, metric: str, patience: int | None, state: dict[str, Any] | None) -> Selection:
        """From a checkpoint's state; a fresh one when the checkpoint has none or selected on another metric."""
        if not state or state.get("metric") != metric:
            return cls(metric, patience)
        return cls(**{**state, "patience": patience})
