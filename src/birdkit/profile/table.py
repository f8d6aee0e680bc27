"""The profile table (the paper's Table 7 layout) and profile records on disk."""

from __future__ import annotations

from pathlib import Path

from birdkit.io import atomic_write_json
from birdkit.profile.measure import STAGES, Profile, StageTimes


def stages_from(times: StageTimes) -> dict[str, dict[str, float]]:
    return {
        k: {"wall_s": round(times.wall[k], 4), "cpu_s": round(times.cpu.get(k, 0.0), 4)}
        for k in STAGES
        if k in times.wall
    }


def table(profiles: list[Profile]) -> str:
    """The paper's Table 7 layout, plus CPU seconds per soundscape and the core count behind the figures."""
    head = "| Name | Profile (sec) | Rate (sec/4m) | Test Estimate (hours) | CPU (sec/4m) | Cores | Budget |"
    rule = "|---|---:|---:|---:|---:|---:|---|"
    rows = [
        f"| {p.name} | {p.wall_s:.1f} | {p.rate_s_per_4min:.2f} | {p.test_estimate_h:.2f} | "
        f"{p.cpu_s_per_4min:.2f} | {p.cores} | {'ok' if p.within_budget else 'over'} |"
        for p in profiles
    ]
    return "\n".join([head, rule, *rows])


def write_profiles(path: str | Path, profiles: list[Profile]) -> Path:
    """Profiles as JSON (one object for one run, a list for several), written atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    obj = profiles[0].to_dict() if len(profiles) == 1 else [x.to_dict() for x in profiles]
    atomic_write_json(p, obj)
    return p
