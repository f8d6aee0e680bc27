"""2-D maps of embeddings and logits (the paper's Figures 1 and 5), coloured by species for the top-N species.

PaCMAP by default (it keeps local and global structure, as the paper chose); UMAP when `umap-learn` is installed.
Both are seeded, so the same store always draws the same map.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from birdkit.errors import OptionError
from birdkit.explore.errors import ExploreError
from birdkit.explore.figures import message_axes, plt, save

METHODS = ("pacmap", "umap")
DISPLAY = {"pacmap": "PaCMAP", "umap": "UMAP"}
MIN_POINTS = 12  # below this a neighbour graph is meaningless; the panel says so instead
NO_CALL = "no call"
OTHER = "other species"


def finite_columns(x: np.ndarray) -> np.ndarray:
    """Drop columns with any non-finite value (logits of species the surrogate lacks are -inf)."""
    return x[:, np.isfinite(x).all(axis=0)] if x.size else x


def check_method(method: str) -> None:
    """Fail before any work when the projection's package is missing."""
    if method not in METHODS:
        raise OptionError(f"--projection {method!r}: choose one of {', '.join(METHODS)}")
    if method == "umap":
        try:
            import umap  # noqa: F401
        except ImportError as exc:
            raise ExploreError(
                "the UMAP projection needs umap-learn, which is not installed: "
                "`.venv/bin/pip install umap-learn` (or use the default --projection pacmap)"
            ) from exc


def project(x: np.ndarray, method: str = "pacmap", seed: int = 0) -> np.ndarray | None:
    """[n, 2] coordinates, or None when there are too few points or no finite dimension."""
    x = finite_columns(np.asarray(x, dtype=np.float32))
    if len(x) < MIN_POINTS or x.shape[1] == 0:
        return None
    check_method(method)
    n_neighbors = int(min(10, len(x) - 2))
    if method == "umap":
        import umap

        with threadpool_limits(1):
            reducer = umap.UMAP(n_components=2, n_neighbors=max(2, n_neighbors), random_state=seed)
            return np.asarray(reducer.fit_transform(x), dtype=np.float32)
    # pacmap warns about the fixed random state and faiss logs its loading on every call; both would break the
    # progress bars, and the seed is stated in the report.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    logging.getLogger("pacmap.pacmap").setLevel(logging.ERROR)
    import numba
    import pacmap

    # One thread: pacmap's numba kernels give different maps at different thread counts, and on a busy 2-core
    # machine their spin-waiting cost 50x the CPU time of a single thread (17 s against 0.3 s on minicomp).
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1), contextlib.redirect_stdout(io.StringIO()):
            reducer = pacmap.PaCMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed)
            return np.asarray(reducer.fit_transform(x, init="pca"), dtype=np.float32)
    finally:
        numba.set_num_threads(threads)


@dataclass
class Panel:
    """One scatter: its title, coordinates (None: too few points) and a label per point (None: no call)."""

    title: str
    xy: np.ndarray | None
    labels: np.ndarray
    note: str = ""


def top_species(labels: np.ndarray, n: int) -> list[str]:
    """The n most frequent labels, ties by name, so colours do not depend on row order."""
    counts = Counter(v for v in labels if isinstance(v, str))
    return [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def palette(names: list[str]) -> dict[str, tuple]:
    """One fixed colour per species across every panel of a report."""
    # tab10 first, then tab20's light shades: tab20's own order pairs near-identical hues side by side.
    # Greys are left out: they mean "other species" and "no call".
    tab10, tab20 = plt.get_cmap("tab10").colors, plt.get_cmap("tab20").colors
    colours = [c for i, c in enumerate(tab10) if i != 7] + [
        c for i, c in enumerate(tab20) if i % 2 and i != 15
    ]
    return {s: colours[i % len(colours)] for i, s in enumerate(names)}


def plot_grid(
    grid: list[list[Panel]],
    path: Path,
    title: str,
    top_n: int,
    names: dict[str, str] | None = None,
) -> Path:
    """Rows × columns of maps; each panel colours its own top-n species and greys the rest."""
    tops = [[top_species(p.labels, top_n) if p.xy is not None else [] for p in row] for row in grid]
    colours = palette(list(dict.fromkeys(s for row in tops for t in row for s in t)))
    nrows, ncols = len(grid), max(len(r) for r in grid)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.2 * ncols, 5.0 * nrows), squeeze=False)
    for i, row in enumerate(grid):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(row):
                ax.axis("off")
                continue
            p = row[j]
            if p.xy is None:
                message_axes(ax, p.note or f"fewer than {MIN_POINTS} points: no map")
                ax.set_title(p.title)
                continue
            lab = p.labels
            is_top = np.array([v in tops[i][j] for v in lab], dtype=bool)
            none = np.array([v is None for v in lab], dtype=bool)
            other = ~is_top & ~none
            if none.any():
                ax.scatter(
                    p.xy[none, 0], p.xy[none, 1], s=5, c="0.85", label=f"{NO_CALL} ({none.sum()})", lw=0
                )
            if other.any():
                ax.scatter(
                    p.xy[other, 0], p.xy[other, 1], s=7, c="0.6", label=f"{OTHER} ({other.sum()})", lw=0
                )
            for s in tops[i][j]:
                m = lab == s
                name = f"{s} – {names[s]}" if names and s in names else s
                ax.scatter(p.xy[m, 0], p.xy[m, 1], s=14, color=colours[s], label=f"{name} ({m.sum()})", lw=0)
            ax.set_title(p.title + (f"\n{p.note}" if p.note else ""))
            ax.set_xlabel("dimension 1")
            ax.set_ylabel("dimension 2")
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.6, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (5.0 * nrows)))
    return save(fig, path)
