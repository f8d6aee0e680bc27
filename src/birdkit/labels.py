"""Pseudo multi-labels, the paper's equations (1)-(4) as pure functions on arrays.

ŷ         = σ(logits) > p_threshold                       (1)  species the surrogate lacks: logit -inf -> 0
1_call(ŷ) = any species predicted in the window             (2)
1_species = one-hot of the clip's folder species            (3)  optionally with its secondary labels
ŷ_species = ŷ ∨ (1_call(ŷ) ∧ 1_species)                     (4)  soundscape windows have no folder: ŷ only
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def predicted(logits: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Equation (1): thresholded surrogate predictions, bool [n, S]."""
    return expit(np.asarray(logits, dtype=np.float32)) > threshold


def has_call(y_hat: np.ndarray) -> np.ndarray:
    """Equation (2): does the window contain any predicted species, bool [n]."""
    return np.asarray(y_hat, dtype=bool).any(axis=1)


def folder_onehot(
    primary: list[str | None], species: list[str], secondary: list[list[str]] | None = None
) -> np.ndarray:
    """Equation (3): bool [n, S] with the folder species (and optionally secondary labels) of each window."""
    pos = {s: j for j, s in enumerate(species)}
    out = np.zeros((len(primary), len(species)), dtype=bool)
    for i, p in enumerate(primary):
        if p is not None and p in pos:
            out[i, pos[p]] = True
        if secondary is not None:
            for s in secondary[i]:
                if s in pos:
                    out[i, pos[s]] = True
    return out


def with_species(y_hat: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Equation (4): ŷ ∨ (1_call(ŷ) ∧ 1_species)."""
    y_hat = np.asarray(y_hat, dtype=bool)
    return y_hat | (has_call(y_hat)[:, None] & np.asarray(onehot, dtype=bool))
