"""Species frequency in train versus soundscape windows (the paper's Table 1 and Figure 2) and call share.

Counts are windows with the species predicted (equation (1)); the ranked plot uses relative frequency (a species'
share of all detections of its dataset, on a log axis) so datasets of very different sizes and call densities
overlay; a species a dataset never predicts is a gap in its line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from birdkit.explore.figures import message_axes, plt, save
from birdkit.store import labels


def species_counts(y_hat: np.ndarray, species: list[str]) -> pd.Series:
    """Windows in which each species is predicted."""
    return pd.Series(np.asarray(y_hat, dtype=bool).sum(axis=0), index=list(species), dtype=np.int64)


def call_share(y_hat: np.ndarray) -> tuple[int, int, float]:
    """(windows, windows with at least one call, share) — equation (2) averaged."""
    n = int(len(y_hat))
    k = int(labels.has_call(y_hat).sum()) if n else 0
    return n, k, (k / n if n else float("nan"))


def reference_order(freq: pd.DataFrame, reference: str) -> list[str]:
    """Species ranked by the reference dataset's count, ties broken by the total over all datasets, then name."""
    key = pd.DataFrame({"ref": freq[reference], "total": freq.sum(axis=1), "name": freq.index})
    key = key.sort_values(["ref", "total", "name"], ascending=[False, False, True])
    return list(key.index)


def top_n_table(freq: pd.DataFrame, n: int) -> pd.DataFrame:
    """Side-by-side top-n species per dataset (Table 1): rank, then a species and a count column per dataset.

    Species never predicted in a dataset are left out of its column rather than listed with count 0.
    """
    cols: dict[str, list] = {"rank": list(range(1, n + 1))}
    for ds in freq.columns:
        s = freq[ds][freq[ds] > 0]
        s = s.iloc[np.lexsort((s.index.to_numpy(dtype=str), -s.to_numpy()))][:n]
        cols[f"{ds}"] = list(s.index) + [""] * (n - len(s))
        cols[f"{ds} windows"] = pd.array(
            [int(v) for v in s.to_numpy()] + [None] * (n - len(s)), dtype="Int64"
        )
    return pd.DataFrame(cols)


def plot_ranked_frequency(freq: pd.DataFrame, reference: str, path: Path, title: str) -> Path:
    """Relative frequency of every detected species, ranked by the reference (soundscape) dataset (Figure 2)."""
    detected = freq[freq.sum(axis=1) > 0]
    width = min(22.0, max(7.0, 0.2 * len(detected) + 2))
    fig, ax = plt.subplots(figsize=(width, 4.6))
    if detected.empty:
        message_axes(ax, "no species predicted in any dataset at this threshold")
    else:
        order = reference_order(detected, reference)
        x = np.arange(len(order))
        markers = "osD^v<>"
        for i, ds in enumerate(detected.columns):
            total = detected[ds].sum()
            # A zero is a gap in the line: on a log axis it has no place.
            rel = (detected.loc[order, ds] / max(1, total)).replace(0, np.nan)
            lw = 2.0 if ds == reference else 1.2
            ax.plot(
                x, rel, marker=markers[i % len(markers)], ms=4, lw=lw, label=f"{ds} ({int(total)} detections)"
            )
        ax.set_xticks(x)
        ax.set_xticklabels(order, rotation=90, fontsize=7 if len(order) <= 80 else 5)
        ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_yscale("log")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(loc="upper right")
    ax.set_xlabel(f"species, ranked by frequency in {reference}")
    ax.set_ylabel("relative frequency (share of detections, log)")
    ax.set_title(title)
    return save(fig, path)
