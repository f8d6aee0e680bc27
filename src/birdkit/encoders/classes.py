"""What an encoder file's outputs mean: which output is the embedding and which the logits, and the label file
that names each logit column (Perch v1's ``label.csv`` of eBird codes, Perch 2.0's of scientific names).

The label file is read in its own row order and never sorted: column ``i`` of the logits is row ``i`` of the
file. The species mapping (``base.species_index``) then looks each competition species up by eBird code first,
else by scientific name through the competition taxonomy. (The DS@GT code sorted the label index, which shifted
every species onto its neighbour's column; ``tests/test_encoders_classes.py`` pins the order.)
"""

from __future__ import annotations

import csv
from pathlib import Path

from birdkit.errors import OptionError

EMBEDDING_NAMES = ("embedding", "embeddings", "emb")
LOGITS_NAMES = ("logits", "label", "labels", "logit")
# header cells that name a label column (a row made only of these is a header, not a class)
_CODE_HEADERS = ("ebird2021", "ebird", "ebird_code", "species_code", "code", "primary_label")
_NAME_HEADERS = (
    "scientific_name",
    "sci_name",
    "scientific",
    "inat2024_fsd50k",
    "label",
    "labels",
    "name",
    "class",
)


def output_roles(outputs: list[str] | dict) -> dict[str, str]:
    """Which output is the embedding and which the logits, by name ("embedding", "logits" or "label")."""
    roles: dict[str, str] = {}
    for name in outputs:
        low = name.lower()
        if any(low == n or low.startswith(n + "_") for n in EMBEDDING_NAMES):
            roles.setdefault("embedding", name)
        elif any(low == n or low.startswith(n + "_") for n in LOGITS_NAMES):
            roles.setdefault("logits", name)
    return roles


def _is_header(row: list[str]) -> bool:
    return bool(row) and all(c.strip().lower() in _CODE_HEADERS + _NAME_HEADERS for c in row if c.strip())


def read_label_file(path: str | Path, n_classes: int | None = None) -> list[str]:
    """The class names of a label file, in file order: one per logit column.

    A CSV (or plain list) with an optional header. With several columns the eBird-code column is used when the
    header names one, else the scientific-name column, else the first. ``n_classes`` (the model's logit count)
    settles whether the first row is a header and is checked.
    """
    p = Path(path)
    if not p.is_file():
        raise OptionError(f"--labels {p}: no such file; give the label file that ships with the model")
    with open(p, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise OptionError(f"--labels {p}: empty")
    header: list[str] | None = None
    if n_classes is not None and len(rows) == n_classes + 1 or n_classes is None and _is_header(rows[0]):
        header, rows = [c.strip().lower() for c in rows[0]], rows[1:]
    if n_classes is not None and len(rows) != n_classes:
        raise OptionError(
            f"--labels {p}: {len(rows)} classes but the model has {n_classes} logits; give the label file "
            "of this model version"
        )
    col = 0
    if header and len(header) > 1:
        codes = [i for i, h in enumerate(header) if h in _CODE_HEADERS]
        names = [i for i, h in enumerate(header) if h in _NAME_HEADERS]
        col = (codes or names or [0])[0]
    return [r[col].strip() if col < len(r) else "" for r in rows]
