"""The encoder interface and the competition-species mapping every encoder shares.

An encoder turns 5 s chunks at its own sample rate into one embedding and one logit vector per chunk.
Its logits are over its own classes; ``species_index`` maps the competition's eBird codes onto them through
the taxonomy (scientific name, then common name), and ``competition_logits`` fills species the encoder lacks
with -inf, so their sigmoid is 0: "never predicted", as the paper does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from birdkit.competition import Competition

log = logging.getLogger(__name__)

UNMAPPED_LOGIT = float("-inf")


@dataclass
class EncoderOutputs:
    """What an encoder gives for ``n`` chunks of 5 s, one row per chunk.

    ``embeddings``  [n, D] float32: the chunk embedding (for BirdNET the mean over its windows).
    ``logits``      [n, C] float32 over ``encoder.classes`` (for BirdNET the max over its windows), or None for
                    an encoder without a classifier (EnCodec, a self-supervised encoder).
    """

    embeddings: np.ndarray
    logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [n, D], got shape {list(self.embeddings.shape)}")
        if self.logits is not None:
            self.logits = np.asarray(self.logits, dtype=np.float32)
            if self.logits.ndim != 2 or self.logits.shape[0] != self.embeddings.shape[0]:
                raise ValueError(
                    f"logits must be [n, C] with n = {self.embeddings.shape[0]}, got {list(self.logits.shape)}"
                )

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def logits_or_empty(self) -> np.ndarray:
        """Logits, or an [n, 0] array for an encoder without classes."""
        return self.logits if self.logits is not None else np.zeros((len(self), 0), np.float32)


@dataclass(frozen=True)
class Capabilities:
    """What an encoder declares about itself, so that no other stage special-cases it by name.

    ``fastest_options``  constructor options of its cheapest configuration (the budget guard switches to them).
    ``fastest_postprocess``  post-processing that recovers part of what the fastest options lose (infer/postprocess.py
                         keys, e.g. BirdNET's neighbour max for its one-window scheme), added by the guard with them.
    ``variants``         labelled option sets that run the same model another way, for `birdkit profile`
                         (BirdNET: its fast path and its full graph).
    ``cost``             CPU time per second of audio relative to BirdNET's (1.0): the budget guard drops the
                         costliest member of an ensemble first. Paper-scale estimates (Table 7), refined by
                         `birdkit profile` on the machine that matters.
    """

    fastest_options: dict[str, Any] = field(default_factory=dict)
    fastest_postprocess: dict[str, Any] = field(default_factory=dict)
    variants: tuple[tuple[str, dict[str, Any]], ...] = (("", {}),)
    cost: float = 1.0
    logits: bool = True  # whether it has a classifier (EnCodec and the SSL encoder do not: no passthrough)


@runtime_checkable
class Encoder(Protocol):
    name: str
    version: str
    sample_rate: int
    embedding_dim: int
    classes: list[str]  # names of the logit columns, "Scientific name_Common name" style or eBird codes
    capabilities: Capabilities

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        """[n, 5 * sample_rate] float32 chunks -> one embedding (and logit) row per chunk."""
        ...

    def describe(self) -> dict:
        """What defines its numbers, recorded beside the embeddings: name, version, window scheme, runtime."""
        ...

    @classmethod
    def export_files(cls, **options: Any) -> dict[str, Path]:
        """Files an exported Kaggle dataset must carry to rebuild this encoder (name in the folder -> path),
        for the options it would be built with; a class method, so exporting never builds an interpreter."""
        ...


def check_chunks(chunks: np.ndarray, n_samples: int, where: str) -> np.ndarray:
    """``chunks`` as float32 [n, n_samples], or a ValueError naming the model and the shape it expects."""
    chunks = np.asarray(chunks, dtype=np.float32)
    if chunks.ndim != 2 or chunks.shape[1] != n_samples:
        raise ValueError(f"{where}: expects chunks [n, {n_samples}], got {list(chunks.shape)}")
    return chunks


def encoder_name(value: object, default: str = "birdnet") -> str:
    """The encoder's name from what a store or card records (a ``describe()`` dict, or a bare name).

    The one parser of that field; ``default`` is for records written before the field existed (every one of
    those was BirdNET's).
    """
    if isinstance(value, dict):
        return str(value.get("name") or default)
    return str(value) if value else default


def species_index(
    classes: list[str], competition: Competition, species: list[str] | None = None
) -> np.ndarray:
    """For each competition species, the index of its class in ``classes``, or -1 when the encoder lacks it.

    A class named by the species' eBird code wins (Perch v1's label file); else its scientific name through the
    taxonomy ("Sci name_Common name" as BirdNET names classes, or a bare scientific name as Perch 2.0 does);
    else its common name. ``classes`` is taken in its own order: index i is logit column i.
    """
    species = species if species is not None else competition.species
    tax = competition.taxonomy.set_index("SPECIES_CODE")
    by_label: dict[str, int] = {}
    by_sci: dict[str, int] = {}
    by_common: dict[str, int] = {}
    for i, c in enumerate(classes):
        sci, _, common = c.partition("_")
        by_label.setdefault(c.strip().lower(), i)
        by_sci.setdefault(sci.strip().lower(), i)
        if common:
            by_common.setdefault(common.strip().lower(), i)
    out = np.full(len(species), -1, dtype=np.int64)
    for j, code in enumerate(species):
        if code.lower() in by_label:
            out[j] = by_label[code.lower()]
            continue
        if code not in tax.index:
            continue
        row = tax.loc[code]
        sci = str(row["SCI_NAME"]).strip().lower()
        common = str(row["PRIMARY_COM_NAME"]).strip().lower()
        out[j] = by_sci.get(sci, by_common.get(common, by_label.get(common, -1)))
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
