"""Self-profiling: per-stage timers and the run record (:mod:`.measure`), the Table 7 layout (:mod:`.table`)."""

from birdkit.profile.measure import (
    BUDGET_MIN,
    SOUNDSCAPE_S,
    STAGES,
    TEST_FILES,
    Profile,
    StageTimes,
    cpu_seconds,
    peak_rss_mb,
    usable_cores,
)
from birdkit.profile.table import stages_from, table, write_profiles

__all__ = [
    "BUDGET_MIN",
    "SOUNDSCAPE_S",
    "STAGES",
    "TEST_FILES",
    "Profile",
    "StageTimes",
    "cpu_seconds",
    "peak_rss_mb",
    "stages_from",
    "table",
    "usable_cores",
    "write_profiles",
]
