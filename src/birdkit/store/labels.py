"""Pseudo multi-labels, the paper's equations (1)-(4) as pure functions on arrays, and the labels file.

ŷ         = σ(logits) > p_threshold                       (1)  species the surrogate lacks: logit -inf -> 0
1_call(ŷ) = any species predicted in the window             (2)
1_species = one-hot of the clip's folder species            (3)  optionally with its secondary labels
ŷ_species = ŷ ∨ (1_call(ŷ) ∧ 1_species)                     (4)  soundscape windows have no folder: ŷ only

How the folder species is used is one of three modes (``LabelSpec.folder``):

``call``  equation (4), the paper's ŷ_species: the folder species only on windows where the surrogate hears a call.
``none``  ŷ alone (equation (1)), what soundscapes get anyway.
``all``   ŷ ∨ 1_species: every window of a train clip gets its folder species, call or not. Not in the paper; it is
          the common weak-label baseline, and the only mode that labels species the surrogate has never heard of
          (the synthetic demo's species, whose ŷ is always empty).

``labels.parquet`` sits next to the embeddings: ``row_id``, ``file`` and ``labels`` (space-separated codes, the same
format as ``test_labels_5s.csv``), with the spec, species order and threshold in the Parquet key-value metadata.
"""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import expit

from birdkit.errors import OptionError
from birdkit.io import atomic_write_bytes
from birdkit.store import Embeddings, StoreError

LABELS_FILE = "labels.parquet"
_META_KEY = b"birdkit.store.labels"
FOLDER_MODES = ("call", "none", "all")


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


@dataclass(frozen=True)
class LabelSpec:
    """How labels are made; recorded in labels.parquet and in every model card."""

    threshold: float = 0.5
    folder: str = "call"  # call: ŷ_species (eq. 4); none: ŷ; all: ŷ ∨ 1_species (weak labels)
    secondary: bool = False  # 1_species also holds the clip's secondary_labels

    def __post_init__(self) -> None:
        if self.folder not in FOLDER_MODES:
            raise OptionError(
                f"folder mode {self.folder!r} (--folder-labels): choose one of {', '.join(FOLDER_MODES)}"
            )
        if not 0.0 < self.threshold < 1.0:
            raise OptionError(f"threshold {self.threshold} (--threshold): must lie strictly between 0 and 1")

    @property
    def name(self) -> str:
        """Short name for tables: y_hat, y_species or y_weak (+secondary)."""
        base = {"none": "y_hat", "call": "y_species", "all": "y_weak"}[self.folder]
        return base + ("+secondary" if self.secondary and self.folder != "none" else "")

    def to_dict(self) -> dict:
        return asdict(self)


def _secondary(frame: pd.DataFrame) -> list[list[str]]:
    out = []
    for v in frame["secondary_labels"]:
        out.append([] if v is None else [str(s) for s in v])
    return out


def make_labels(
    logits: np.ndarray, frame: pd.DataFrame, species: list[str], spec: LabelSpec | None = None
) -> np.ndarray:
    """Labels bool [n, S] for store rows. Rows without a primary_label (soundscapes) get ŷ whatever the mode."""
    spec = spec or LabelSpec()
    y_hat = predicted(logits, spec.threshold)
    if spec.folder == "none":
        return y_hat
    primary = [
        None if (p is None or (isinstance(p, float) and np.isnan(p))) else str(p)
        for p in frame["primary_label"]
    ]
    onehot = folder_onehot(primary, species, _secondary(frame) if spec.secondary else None)
    if spec.folder == "call":
        return with_species(y_hat, onehot)
    return y_hat | onehot


def labels_for(emb: Embeddings, spec: LabelSpec | None = None) -> np.ndarray:
    """``make_labels`` for a loaded store."""
    return make_labels(emb.logits, emb.frame, emb.species, spec)


@dataclass
class LabelSummary:
    """What `birdkit label` prints: how much signal the labels carry, and where they carry none."""

    windows: int
    windows_with_call: int  # 1_call(ŷ): the surrogate alone hears something
    windows_labelled: int  # at least one label after the folder rule
    per_species: dict[str, int]  # windows labelled with each species
    never_labelled: list[str]

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self, top: int = 0) -> str:
        """Human summary; ``top`` > 0 lists only the most labelled species."""
        lines = [
            f"{self.windows} windows, {self.windows_with_call} with a call by the surrogate "
            f"({_pct(self.windows_with_call, self.windows)}), {self.windows_labelled} with at least one label",
        ]
        counts = sorted(((n, s) for s, n in self.per_species.items() if n), key=lambda t: (-t[0], t[1]))
        shown = counts[:top] if top else counts
        lines.append(f"labels per species ({len(counts)} species labelled):")
        lines += textwrap.wrap(
            ", ".join(f"{s} {n}" for n, s in shown), 100, initial_indent="  ", subsequent_indent="  "
        )
        if len(shown) < len(counts):
            lines.append(f"  ... {len(counts) - len(shown)} more")
        if self.never_labelled:
            lines.append(
                f"{len(self.never_labelled)} species never labelled: {' '.join(self.never_labelled)}"
            )
        else:
            lines.append("every species gets at least one label")
        return "\n".join(lines)


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


def summarize(labels: np.ndarray, species: list[str], y_hat: np.ndarray | None = None) -> LabelSummary:
    """Counts for a label matrix; ``y_hat`` (equation 1) gives the call count, else the labels themselves do."""
    labels = np.asarray(labels, dtype=bool)
    calls = has_call(labels if y_hat is None else y_hat)
    counts = labels.sum(axis=0)
    return LabelSummary(
        windows=int(labels.shape[0]),
        windows_with_call=int(calls.sum()),
        windows_labelled=int(labels.any(axis=1).sum()),
        per_species={s: int(n) for s, n in zip(species, counts, strict=True)},
        never_labelled=[s for s, n in zip(species, counts, strict=True) if n == 0],
    )


def encode(labels: np.ndarray, species: list[str]) -> list[str]:
    """Bool matrix -> space-separated codes per row (the test_labels_5s.csv format)."""
    sp = np.asarray(species, dtype=object)
    return [" ".join(sp[row]) for row in np.asarray(labels, dtype=bool)]


def decode(codes: pd.Series | list[str], species: list[str]) -> np.ndarray:
    """Space-separated codes -> bool matrix in ``species`` order (unknown codes are dropped)."""
    from birdkit.metrics import labels_matrix

    return labels_matrix(pd.Series(list(codes), dtype=object), species).astype(bool)


def write_labels(
    emb: Embeddings,
    labels: np.ndarray,
    spec: LabelSpec,
    summary: LabelSummary | None = None,
    surrogate: dict | None = None,
) -> Path:
    """Write ``labels.parquet`` next to the store's shards, atomically."""
    labels = np.asarray(labels, dtype=bool)
    if labels.shape != (len(emb), len(emb.species)):
        raise ValueError(
            f"labels shape {labels.shape} != store rows x species {(len(emb), len(emb.species))}"
        )
    table = pa.table(
        {
            "row_id": pa.array(emb.frame["row_id"].astype(str).tolist(), pa.string()),
            "file": pa.array(emb.frame["file"].astype(str).tolist(), pa.string()),
            "labels": pa.array(encode(labels, emb.species), pa.string()),
        }
    )
    meta = {
        "spec": spec.to_dict(),
        "species": emb.species,
        "encoder": emb.meta.encoder,
        # whose logits made the labels: None for the store's own encoder, else the surrogate store's
        "surrogate": surrogate,
        "summary": (summary or summarize(labels, emb.species)).to_dict(),
    }
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    path = Path(emb.root) / LABELS_FILE
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_labels(emb: Embeddings) -> tuple[np.ndarray, dict]:
    """Labels of a store from its ``labels.parquet``, aligned with ``emb.frame``; plus the metadata written."""
    path = Path(emb.root) / LABELS_FILE
    if not path.exists():
        raise StoreError(f"{path}: no labels yet; run `birdkit label {emb.root}` first")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise StoreError(
            f"{path}: not written by `birdkit label`; delete it and run `birdkit label {emb.root}`"
        )
    meta = json.loads(raw)
    if meta.get("species") != emb.species:
        raise StoreError(f"{path}: written for another species list; run `birdkit label {emb.root}` again")
    frame = table.to_pandas()
    # Keyed by (file, row_id): row_ids come from file stems, which two folders may share.
    by_id = dict(zip(zip(frame["file"], frame["row_id"], strict=True), frame["labels"], strict=True))
    keys = list(zip(emb.frame["file"].astype(str), emb.frame["row_id"].astype(str), strict=True))
    missing = [k[1] for k in keys if k not in by_id]
    if missing or len(frame) != len(emb):
        raise StoreError(
            f"{path}: its rows do not match the store ({len(frame)} labelled vs {len(emb)} embedded, "
            f"e.g. missing {missing[:3]}); run `birdkit label {emb.root}` again"
        )
    labels = decode([by_id[k] for k in keys], emb.species)
    return labels, meta


def surrogate_logits(emb: Embeddings, surrogate: Embeddings) -> np.ndarray:
    """The surrogate store's logits [n, S] for each row of ``emb``, joined by (file, row_id): the paper's best
    configuration trains on one encoder's embeddings with another encoder's pseudo-labels."""
    where = f"--surrogate {surrogate.root}"
    if surrogate.species != emb.species:
        raise StoreError(
            f"{where}: made for another species list than {emb.root}; embed both from one competition"
        )
    if not np.isfinite(surrogate.logits).any():
        raise StoreError(
            f"{where}: its encoder ({surrogate.meta.encoder_name}) has no logits for any competition species; "
            "choose a surrogate with a classifier (birdnet, perch)"
        )
    keys = pd.MultiIndex.from_arrays(
        [surrogate.frame["file"].astype(str), surrogate.frame["row_id"].astype(str)]
    )
    want = pd.MultiIndex.from_arrays([emb.frame["file"].astype(str), emb.frame["row_id"].astype(str)])
    pos = keys.get_indexer(want)
    if (pos < 0).any():
        missing = [want[i][1] for i in np.flatnonzero(pos < 0)[:3]]
        raise StoreError(
            f"{where}: lacks {(pos < 0).sum()} of the {len(emb)} rows of {emb.root} (e.g. {missing}); embed the "
            f"same split with the surrogate's encoder (`birdkit embed ... --out {surrogate.root}`), it resumes"
        )
    return surrogate.logits[pos]


def label_store(
    emb: Embeddings, spec: LabelSpec | None = None, surrogate: Embeddings | None = None
) -> tuple[Path, LabelSummary]:
    """Make, summarize and write the labels of a store: what `birdkit label` does. ``surrogate``: another
    store whose logits make the labels (joined by row), instead of the store's own."""
    spec = spec or LabelSpec()
    logits = emb.logits if surrogate is None else surrogate_logits(emb, surrogate)
    labels = make_labels(logits, emb.frame, emb.species, spec)
    summary = summarize(labels, emb.species, predicted(logits, spec.threshold))
    source = (
        None if surrogate is None else {"store": Path(surrogate.root).name, "encoder": surrogate.meta.encoder}
    )
    return write_labels(emb, labels, spec, summary, surrogate=source), summary
