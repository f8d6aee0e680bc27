"""How the encoder pools its last block's tokens into one embedding (torch-free: the CLI and cards use it).

``band`` (the default) averages each frequency row of patches over time and concatenates the rows, so the
embedding keeps *where in frequency* a sound is, which a mean over all patches blurs (k-means purity on
minicomp's folder species 0.79 against 0.68: benchmarks/RESULTS.md). ``cls+mean`` is what models made before the
option used; ``mean`` is the plain mean patch token.
"""

from __future__ import annotations

from birdkit.errors import OptionError

POOLS = ("band", "cls+mean", "mean")
DEFAULT_POOL = "band"
LEGACY_POOL = "cls+mean"  # what a weights file without a "pool" entry was exported with


def check_pool(pool: str | None) -> str:
    """The pooling a weights file asks for (``None``: one written before the option, so ``cls+mean``)."""
    pool = LEGACY_POOL if pool is None else pool
    if pool not in POOLS:
        raise OptionError(f"--pool {pool!r}: choose one of {', '.join(POOLS)}")
    return pool


def pooled_dim(pool: str, dim: int, rows: int) -> int:
    """Embedding size for token width ``dim`` and ``rows`` frequency rows of patches."""
    return {"band": rows * dim, "cls+mean": 2 * dim, "mean": dim}[check_pool(pool)]
