"""Self-profiling of the inference path: per-stage wall and CPU seconds, and the extrapolation to the test set.

Kaggle scores a notebook that must turn about 1,100 four-minute soundscapes into a submission within 120 minutes
on CPU. Every inference run therefore measures itself (stages: setup, decode, resample, encoder, head, writing),
and reports the rate in seconds per 4-minute soundscape and what that rate means for the hidden test set, in the
shape of the paper's Table 7 (name, profile seconds, rate sec/4m, test estimate hours).

Stage seconds are summed over processes (with several workers they add up to more than the wall time); the run's
own wall time and its CPU seconds over all processes (``getrusage``, self plus joined children) are what the
rate and the estimate come from.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

# The hidden test set and the limit the notebook runs against (BirdCLEF 2024).
TEST_FILES = 1100
SOUNDSCAPE_S = 240.0
BUDGET_MIN = 120.0
STAGES = ("setup", "decode", "resample", "encoder", "head", "writing")


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_seconds() -> float:
    """CPU seconds of this process plus its terminated, joined children (user + system)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its largest joined child, in MB (the larger of the two)."""
    scale = (
        1 / 1024 if sys.platform != "darwin" else 1 / 1024 / 1024
    )  # ru_maxrss: KB on Linux, bytes on macOS
    s = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(s, c) * scale


@dataclass
class StageTimes:
    """Wall and CPU seconds per stage, mergeable across files and processes.

    CPU is the process clock: the encoder's numpy front end multiplies through BLAS threads, which a thread
    clock would miss. (In a one-worker run the parent's clock also sees the next file being unpickled from the
    decode process, a few hundredths of a second per file.)
    """

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0

    def add(self, other: StageTimes | dict) -> None:
        o = other if isinstance(other, StageTimes) else StageTimes(**other)
        for k, v in o.wall.items():
            self.wall[k] = self.wall.get(k, 0.0) + v
        for k, v in o.cpu.items():
            self.cpu[k] = self.cpu.get(k, 0.0) + v

    def as_dict(self) -> dict:
        return {"wall": dict(self.wall), "cpu": dict(self.cpu)}


@dataclass
class Profile:
    """What one inference run measured about itself, and its extrapolation to the hidden test set."""

    name: str
    files: int
    failed_files: int
    rows: int
    audio_s: float
    wall_s: float  # the whole run: setup, all files, writing
    cpu_s: float  # over all processes of the run
    setup_s: float  # wall seconds before the first file could be scored (interpreters built)
    stages: dict[str, dict[str, float]]  # stage -> {"wall_s", "cpu_s"}
    cores: int
    workers: int
    config: dict = field(default_factory=dict)
    guard: dict = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    test_files: int = TEST_FILES
    budget_min: float = BUDGET_MIN

    @property
    def soundscapes(self) -> float:
        """Audio seen, in 4-minute soundscapes."""
        return self.audio_s / SOUNDSCAPE_S

    @property
    def rate_s_per_4min(self) -> float:
        """Wall seconds per 4-minute soundscape, setup excluded (it is paid once)."""
        return (self.wall_s - self.setup_s) / self.soundscapes if self.audio_s > 0 else float("nan")

    @property
    def cpu_s_per_4min(self) -> float:
        return self.cpu_s / self.soundscapes if self.audio_s > 0 else float("nan")

    @property
    def test_estimate_s(self) -> float:
        """Predicted wall seconds for the hidden test set on this machine: setup once, then the steady rate."""
        return self.setup_s + self.rate_s_per_4min * self.test_files

    @property
    def test_estimate_h(self) -> float:
        return self.test_estimate_s / 3600

    @property
    def within_budget(self) -> bool:
        return self.test_estimate_s <= self.budget_min * 60

    def to_dict(self) -> dict:
        """The JSON record: the measurements and the figures derived from them."""
        d = asdict(self)
        d.update(
            soundscapes_4min=self.soundscapes,
            rate_s_per_4min=self.rate_s_per_4min,
            cpu_s_per_4min=self.cpu_s_per_4min,
            test_estimate_s=self.test_estimate_s,
            test_estimate_h=self.test_estimate_h,
            within_budget=self.within_budget,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        """A record read back; the derived figures are recomputed, not trusted."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def stage_table(self) -> str:
        """Per-stage seconds, and CPU seconds per 4-minute soundscape."""
        lines = [f"{'stage':<10} {'wall s':>9} {'cpu s':>9} {'cpu s/4m':>9}"]
        for name in STAGES:
            s = self.stages.get(name)
            if not s:
                continue
            per = s["cpu_s"] / self.soundscapes if self.audio_s > 0 else float("nan")
            lines.append(f"{name:<10} {s['wall_s']:>9.2f} {s['cpu_s']:>9.2f} {per:>9.3f}")
        lines.append(f"{'total':<10} {self.wall_s:>9.2f} {self.cpu_s:>9.2f} {self.cpu_s_per_4min:>9.3f}")
        return "\n".join(lines)

    def summary(self) -> str:
        verdict = "within" if self.within_budget else "OVER"
        return (
            f"{self.files} files ({self.failed_files} unreadable), {self.audio_s / 60:.1f} min of audio, "
            f"{self.rows} rows in {self.wall_s:.1f} s on {self.cores} cores ({self.workers} workers): "
            f"{self.rate_s_per_4min:.2f} s per 4-min soundscape, {self.cpu_s_per_4min:.2f} CPU-s per 4 min; "
            f"{self.test_files} soundscapes would take {self.test_estimate_h:.2f} h, {verdict} the "
            f"{self.budget_min:.0f}-minute budget"
        )
