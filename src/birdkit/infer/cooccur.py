"""The co-occurrence prior: association rules "where species i calls, species j calls too" reshape one file's
probabilities. Numpy, per file, a few microseconds.

Rules (antecedent i, consequent j, confidence c) are mined with FP-growth on pseudo-labels of soundscapes, one
transaction per recording (`birdkit tune --cooccurrence STORE`); only single-species antecedents and consequents
are kept, so the prior is a small table of species codes and numbers. For each species j of a file:

    boost_j = min(1, b * max over rules i -> j of c * max_file(p_i))
    p'_j    = 1 - (1 - p_j) (1 - boost_j)          (a noisy-or: p' >= p, stays in [0, 1], keeps every order)

so a species whose partner is heard loudly somewhere in the file is raised in the whole file, most where it is
already likely, and never above 1 (a clipped sum would tie the top chunks). ``b`` = 0 is off.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check(spec: Any, errors: list[str]) -> dict[str, Any]:
    """``{"weight": b, "rules": [[i, j, c], ...]}`` normalised; empty when off. Problems go to ``errors``."""
    if not spec:
        return {}
    if not isinstance(spec, dict):
        errors.append("cooccur: give {'weight': b, 'rules': [[species_i, species_j, confidence], ...]}")
        return {}
    b = float(spec.get("weight") or 0.0)
    if not 0.0 <= b <= 1.0:
        errors.append(f"cooccur weight {b}: must lie in [0, 1] (0: off)")
        return {}
    rules = []
    for r in spec.get("rules") or []:
        ok = isinstance(r, list | tuple) and len(r) == 3 and all(isinstance(x, str) for x in r[:2])
        if not ok or not 0.0 < float(r[2]) <= 1.0:
            errors.append(f"cooccur rule {r!r}: give [species_i, species_j, confidence in (0, 1]]")
            return {}
        rules.append([str(r[0]), str(r[1]), float(r[2])])
    if b == 0.0 or not rules:
        return {}
    return {"weight": b, "rules": rules}


def bind(spec: dict[str, Any], species: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The spec with its rules as column numbers of this species order (``index``); rules naming a species
    outside the submission are dropped."""
    col = {s: j for j, s in enumerate(species)}
    index = [[col[i], col[j], c] for i, j, c in spec["rules"] if i in col and j in col and i != j]
    return {**spec, "index": index}


def apply(spec: dict[str, Any], probs: np.ndarray) -> np.ndarray:
    """One file's probabilities [n, S] after the prior (``spec`` bound to the columns by :func:`bind`)."""
    if "index" not in spec:
        raise ValueError("co-occurrence rules not bound to the columns: call postprocess.bind(spec, species)")
    index = spec["index"]
    if not index or len(probs) == 0:
        return probs
    i, j, c = (np.asarray(v) for v in zip(*index, strict=True))
    with np.errstate(all="ignore"):
        top = np.nan_to_num(np.max(probs, axis=0), nan=0.0)  # a column no model predicts adds nothing
    boost = np.zeros(probs.shape[1], dtype=np.float64)
    np.maximum.at(boost, j.astype(np.int64), c.astype(np.float64) * top[i.astype(np.int64)])
    boost = np.minimum(1.0, float(spec["weight"]) * boost)
    up = boost > 0  # columns no rule raises stay exactly as they were
    out = np.array(probs, dtype=np.float64)
    out[:, up] = 1.0 - (1.0 - out[:, up]) * (1.0 - boost[up])
    return out
