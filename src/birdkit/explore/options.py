"""Every knob of the exploration report, checked before any store is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from birdkit.errors import OptionError
from birdkit.explore import cooccurrence as co
from birdkit.explore import maps

MAP_LEVELS = ("window", "recording")


@dataclass
class ExploreOptions:
    """Every knob of the report; recorded in summary.json next to the numbers it produced."""

    threshold: float = 0.5  # equation (1), the paper's 0.5
    top_n: int = 10  # rows of the frequency and itemset tables
    transactions: str = "recording"  # co-occurrence basket: recording or window
    min_support: float = 0.01
    min_count: int = 2  # support floor in transactions: a pattern seen once is not a pattern
    max_len: int | None = None
    min_confidence: float = 0.8  # the paper's (and mlxtend's) default
    projection: str = "pacmap"
    map_level: str = "window"
    map_top_n: int = 10
    map_max_points: int = 20_000
    clusters: int = 100
    cluster_sample: int = 50_000
    examples: int = 4  # spectrograms per cluster on the contact sheet
    data_dir: Path | None = None  # competition folder, for the contact sheet's audio
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise OptionError(f"--threshold {self.threshold}: must lie strictly between 0 and 1")
        if self.transactions not in co.LEVELS:
            raise OptionError(f"--transactions {self.transactions!r}: choose one of {', '.join(co.LEVELS)}")
        if self.map_level not in MAP_LEVELS:
            raise OptionError(f"--map-level {self.map_level!r}: choose one of {', '.join(MAP_LEVELS)}")
        if not 0.0 < self.min_confidence <= 1.0 or not 0.0 < self.min_support <= 1.0:
            raise OptionError("--min-confidence and --min-support must lie in (0, 1]")
        if self.clusters < 2 or self.cluster_sample < 2:
            raise OptionError("--clusters and --cluster-sample must be at least 2")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise OptionError(f"--data-dir {self.data_dir}: not a folder; give the competition folder")
        maps.check_method(self.projection)
