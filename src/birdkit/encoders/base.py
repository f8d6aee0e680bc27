"""The encoder interface and the competition-species mapping every encoder shares.

An encoder turns 5 s chunks at its own sample rate into one embedding and one logit vector per chunk.
Its logits are over its own classes; ``species_index`` maps the competition's eBird codes onto them through
the taxonomy (scientific name, then common name), and ``competition_logits`` fills species the encoder lacks
with -inf, so their sigmoid is 0: "never predicted", as the paper does.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

from birdkit.competition import Competition

log = logging.getLogger(__name__)

UNMAPPED_LOGIT = float("-inf")


@runtime_checkable
class Encoder(Protocol):
    name: str
    version: str
    sample_rate: int
    embedding_dim: int
    classes: list[str]  # names of the logit columns, "Scientific name_Common name" style

    def embed(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[n, 5 * sample_rate] float32 -> (embeddings [n, D] float32, logits [n, len(classes)] float32)."""
        ...

    def describe(self) -> dict:
        """What to record beside the embeddings: name, version, window scheme, runtime."""
        ...


def species_index(
    classes: list[str], competition: Competition, species: list[str] | None = None
) -> np.ndarray:
    """For each competition species, the index of its class in ``classes``, or -1 when the encoder lacks it."""
    species = species if species is not None else competition.species
    tax = competition.taxonomy.set_index("SPECIES_CODE")
    by_sci: dict[str, int] = {}
    by_common: dict[str, int] = {}
    for i, c in enumerate(classes):
        sci, _, common = c.partition("_")
        by_sci.setdefault(sci.strip().lower(), i)
        by_common.setdefault(common.strip().lower(), i)
        by_common.setdefault(c.strip().lower(), i)  # encoders whose classes are eBird codes
    out = np.full(len(species), -1, dtype=np.int64)
    for j, code in enumerate(species):
        if code.lower() in by_common:
            out[j] = by_common[code.lower()]
            continue
        if code not in tax.index:
            continue
        row = tax.loc[code]
        sci = str(row["SCI_NAME"]).strip().lower()
        common = str(row["PRIMARY_COM_NAME"]).strip().lower()
        out[j] = by_sci.get(sci, by_common.get(common, -1))
    return out


def unmapped(species: list[str], index: np.ndarray) -> list[str]:
    """Species the encoder cannot predict: reported, never silently dropped."""
    return [s for s, i in zip(species, index, strict=True) if i < 0]


def competition_logits(logits: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Encoder logits [n, C] -> competition-species logits [n, S], -inf where the encoder lacks the species."""
    out = np.full((logits.shape[0], len(index)), UNMAPPED_LOGIT, dtype=np.float32)
    ok = index >= 0
    out[:, ok] = logits[:, index[ok]]
    return out
