"""The report's head: which stores were explored and where the species predictions come from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from birdkit.explore.datasets import Dataset
from birdkit.explore.markdown import table
from birdkit.explore.options import ExploreOptions


def header(datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions, out: Path) -> str:
    rows = pd.DataFrame(
        {
            "encoder": [d.encoder for d in datasets],
            "split": [d.split for d in datasets],
            "store": [d.root.name for d in datasets],
            "recordings": [int(d.frame["file"].nunique()) for d in datasets],
            "windows": [len(d) for d in datasets],
            "hours": [float((d.frame["end_s"] - d.frame["start_s"]).sum() / 3600) for d in datasets],
            "embedding dim": [int(d.embeddings.shape[1]) for d in datasets],
            "logits": ["yes" if d.has_logits() else "no" for d in datasets],
        }
    )
    src = f"the **{source[0].encoder}** stores' logits" if source else "no store (none has logits)"
    return "\n".join(
        [
            f"# Exploration report: {out.name}",
            "",
            f"Stores explored (built in {{ELAPSED}} s; seed {opt.seed}):",
            "",
            table(rows, 2),
            f"Species predictions come from {src}, thresholded at σ(logit) > {opt.threshold:g} (equation (1)). "
            "A window's *label* is its folder species for train clips and otherwise its pseudo-label (the most "
            "likely predicted species).",
            "",
        ]
    )
