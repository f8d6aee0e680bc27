"""The budget guard: from the first files on, the run predicts its total time from its own rate. If that crosses
the budget minus a safety margin, the remaining files switch to the fastest configuration the encoders declare
(``Capabilities.fastest_options``; BirdNET: its single centre window, half the encoder cost), said in the log
and in the profile. If the prediction still crosses it (measured afresh on the new plan), an ensemble drops its
costliest encoder (``Capabilities.cost``) with the heads on it, then the next, as long as one member is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

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
    switched: dict = field(default_factory=dict)  # the first switch
    steps: list = field(default_factory=list)  # every switch, in order
    exhausted: bool = False  # nothing cheaper is left
    _stream_bytes: int = 0  # bytes done when the current plan started
    _stream_files: int = 0
    _last_stream_s: float = 0.0

    @property
    def limit_s(self) -> float:
        return (self.budget_min - self.margin_min) * 60

    def update(self, job: FileJob, run_elapsed: float, stream_elapsed: float) -> bool:
        """Record one finished file; True when the prediction crosses the budget and a cheaper plan may exist.

        The rate is the current plan's own (``stream_elapsed`` restarts with each plan), measured over at least
        ``after_files`` files of it."""
        if stream_elapsed < self._last_stream_s:  # a new plan started streaming
            self._stream_bytes, self._stream_files = self.done_bytes, self.done_files
        self._last_stream_s = stream_elapsed
        self.done_bytes += job.size
        self.done_files += 1
        rate = stream_elapsed / max(self.done_bytes - self._stream_bytes, 1)
        self.predicted_s = run_elapsed + rate * (self.total_bytes - self.done_bytes)
        return (
            self.enabled
            and not self.exhausted
            and self.done_files - self._stream_files >= self.after_files
            and self.done_bytes < self.total_bytes
            and self.predicted_s > self.limit_s
        )

    def switch(self, plan: Plan) -> Plan | None:
        """Record the switch from ``plan`` and return the plan for the remaining files (None: nothing cheaper is
        left, go on as is): the encoders' fastest options first, then the ensemble without its costliest
        member."""
        faster = plan.fastest() or drop_costliest(plan)
        step = {
            "after_files": self.done_files,
            "predicted_min": round(self.predicted_s / 60, 2),
            "limit_min": round(self.limit_s / 60, 2),
            "from": plan.name,
            "to": faster.name if faster else None,
        }
        self.switched = self.switched or step
        self.steps.append(step)
        if faster is None:
            self.exhausted = True
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
            "steps": self.steps,
        }


def encoder_cost(plan: Plan, index: int) -> float:
    """The declared relative cost of one of the plan's encoders (``Capabilities.cost``; 1.0 if unknown)."""
    return float(getattr(plan.encoders[index].capabilities, "cost", 1.0))


def drop_costliest(plan: Plan) -> Plan | None:
    """The ensemble without its costliest encoder and the heads on it; None for a single encoder or
    passthrough (dropping would leave nothing to score with)."""
    if plan.passthrough is not None or len(plan.encoders) < 2:
        return None
    drop = max(range(len(plan.encoders)), key=lambda i: (encoder_cost(plan, i), i))
    keep = [i for i in range(len(plan.encoders)) if i != drop]
    heads = tuple((h, keep.index(i)) for h, i in plan.heads if i != drop)
    if not heads:
        return None
    return replace(plan, encoders=tuple(plan.encoders[i] for i in keep), heads=heads)
