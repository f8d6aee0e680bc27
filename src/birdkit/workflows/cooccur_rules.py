"""Co-occurrence rules for the prior `birdkit tune --cooccurrence STORE` weighs (infer/cooccur.py applies them).

Mined here, in the workflows, with the exploratory report's FP-growth (explore/cooccurrence.py, mlxtend): the
inference path only ever reads the resulting numbers from the dataset's ``postprocess.json``, so neither
mlxtend nor the explore stage is imported on Kaggle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from birdkit.errors import OptionError


def mine_rules(
    stores: list[Any],
    threshold: float = 0.5,
    min_confidence: float = 0.5,
    min_count: int = 2,
    exclude_files: set[str] | frozenset[str] = frozenset(),
) -> list[list]:
    """Co-occurrence rules [species i, species j, confidence] from soundscape pseudo-labels: each store's (a path
    or loaded) surrogate logits thresholded (equation 1), one transaction per recording, FP-growth (the
    exploratory report's :func:`birdkit.explore.cooccurrence.mine`); single-species antecedents and consequents
    only.
    ``exclude_files``: recordings to leave out (the clips a `birdkit mix` validation set drew from)."""
    from birdkit.explore.cooccurrence import mine, transactions
    from birdkit.store.labels import predicted
    from birdkit.store.shards import Embeddings, load

    baskets = []
    for path in stores:
        emb = path if isinstance(path, Embeddings) else load(path)
        if not np.isfinite(emb.logits).any():
            raise OptionError(
                f"--cooccurrence {path}: the store has no classifier logits to pseudo-label with"
            )
        keep = ~emb.frame["file"].isin(exclude_files).to_numpy()
        y_hat = predicted(emb.logits[keep], threshold)
        baskets.append(transactions(y_hat, list(emb.species), emb.frame["file"].to_numpy()[keep]))
    tx = pd.concat(baskets, ignore_index=True).eq(True)  # a species missing from one store: False there
    mined = mine(tx, min_support=0.0, min_count=min_count, max_len=2, min_confidence=min_confidence)
    rules: dict[tuple[str, str], float] = {}
    for a, c, conf in mined.rules[["antecedents", "consequents", "confidence"]].itertuples(index=False):
        if len(a) == 1 and len(c) == 1:
            rules[(a[0], c[0])] = max(rules.get((a[0], c[0]), 0.0), round(float(conf), 4))
    return [[a, c, conf] for (a, c), conf in sorted(rules.items())]
