"""The budget guard: from the first files on, the run predicts its total time from its own rate. If that crosses
the budget minus a safety margin, the remaining files switch to the fastest configuration the encoders declare
(``Capabilities.fastest_options``; BirdNET: its single centre window, half the encoder cost), said in the log
and in the profile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from birdkit.infer.files import FileJob
from birdkit.infer.plan import Plan

log = logging.getLogger(__name__)

SAFETY_MARGIN_MIN = 20.0  # Kaggle's own start-up, a slower machine than the first files suggested, writing
GUARD_AFTER_FILES = 3


@dataclass
class BudgetGuard:
    """Predicts the run's total wall time from its own rate; says when to switch to the fastest plan."""

    total_bytes: int
    budget_min: float
    margin_min: float
    after_files: int = GUARD_AFTER_FILES
    enabled: bool = True
    done_bytes: int = 0
    done_files: int = 0
    predicted_s: float = float("nan")
    switched: dict = field(default_factory=dict)

    @property
    def limit_s(self) -> float:
        return (self.budget_min - self.margin_min) * 60

    def update(self, job: FileJob, run_elapsed: float, stream_elapsed: float) -> bool:
        """Record one finished file; True when the prediction crosses the budget and no switch happened yet."""
        self.done_bytes += job.size
        self.done_files += 1
        rate = stream_elapsed / max(self.done_bytes, 1)
        self.predicted_s = run_elapsed + rate * (self.total_bytes - self.done_bytes)
        return (
            self.enabled
            and not self.switched
            and self.done_files >= self.after_files
            and self.done_bytes < self.total_bytes
            and self.predicted_s > self.limit_s
        )

    def switch(self, plan: Plan) -> Plan | None:
        """Record the switch from ``plan`` and return the plan for the remaining files (None: already the
        fastest, go on as is)."""
        faster = plan.fastest()
        self.switched = {
            "after_files": self.done_files,
            "predicted_min": round(self.predicted_s / 60, 2),
            "limit_min": round(self.limit_s / 60, 2),
            "from": plan.name,
            "to": faster.name if faster else None,
        }
        if faster is None:
            log.warning(
                "budget guard: predicted %.1f min exceeds %.1f min, and %s is already the fastest "
                "configuration; going on",
                self.predicted_s / 60, self.limit_s / 60, plan.name,
            )  # fmt: skip
        else:
            log.warning(
                "budget guard: after %d files the run is predicted to take %.1f min, over the %.0f-minute budget "
                "less a %.0f-minute margin; switching the remaining files from %s to %s",
                self.done_files, self.predicted_s / 60, self.budget_min, self.margin_min,
                plan.name, faster.name,
            )  # fmt: skip
        return faster

    def record(self) -> dict:
        """What the profile says about the guard."""
        return {
            "budget_min": self.budget_min,
            "margin_min": self.margin_min,
            "predicted_min": round(self.predicted_s / 60, 3) if self.done_files else None,
            "switched": self.switched or None,
        }
