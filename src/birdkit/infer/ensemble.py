"""How the models of a plan become one probability per chunk and species: the blend of each head with its
encoder's own classifier, then the ensemble of heads (mean or rank mean). Numpy, per chunk.

The scorer, `birdkit tune` and so the CLI and the notebook all call :func:`combine` on the same :class:`Raw`
outputs, so what tune validated is what inference writes.

``blend`` w      each head's logits z are pulled towards its encoder's own logits b: z' = b + w (z - b). For a
                 residual head (z = b + correction) that is b + w * correction; for a plain head it is the blend
                 (1 - w) b + w z in logit space (a probability-space blend would let a confident head swamp the
                 encoder). w = 1 is the head alone, w = 0 passthrough. Species the encoder lacks keep z.
``ensemble``     "mean" (default): the mean of the heads' probabilities. "rank": the rank mean. Ranks within a
                 file would be useless for the metric (ROC-AUC per species over *all* files: a species absent from
                 a file would still get its top ranks there) and impossible in the scorer (it sees bundles of
                 files and blocks of a streamed file), so each head's logit is replaced by its rank among the
                 validation outputs (`birdkit tune` fits the ranks' quantile table, pooled over species) and the
                 ranks are averaged on a common scale: each head's quantiles are mapped onto the heads' mean
                 quantiles (slope 1 beyond the table's ends, so no tie is made), averaged, and passed through the
                 sigmoid. A head's order is kept exactly; only the heads' scales are made comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ENSEMBLES = ("mean", "rank")
BLEND_RANGE = (0.0, 2.0)
# quantile levels of the rank tables: spaced in logit(level), fine in both tails, where positives live
RANK_LEVELS = 1.0 / (1.0 + np.exp(-np.linspace(-8.0, 8.0, 33)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float64 sigmoid, kept float64 up to the written file: in float32 every logit above ~17 rounds to exactly 1
    (sigmoid(17.5) == 1.0f) and those rows would tie."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1.0 - 1e-15)
    return np.log(p) - np.log1p(-p)


@dataclass
class Member:
    """One head's outputs on the submission columns [n, S], NaN where the head lacks a species, and its encoder's
    own logits under them (``base``, NaN where the encoder lacks the species; None: no classifier)."""

    name: str
    values: np.ndarray
    is_logits: bool = True
    base: np.ndarray | None = None

    def logits(self) -> np.ndarray:
        return self.values if self.is_logits else logit(self.values)

    def probs(self) -> np.ndarray:
        return sigmoid(self.values) if self.is_logits else np.asarray(self.values, dtype=np.float64)


@dataclass
class Raw:
    """A batch of chunks before combination: the heads' outputs, or (passthrough) the encoder's own logits on
    the submission columns (-inf where it lacks a species: it scores 0)."""

    members: list[Member] = field(default_factory=list)
    passthrough: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.passthrough) if self.passthrough is not None else len(self.members[0].values)

    def rows(self, sel: slice | np.ndarray) -> Raw:
        """The same outputs on some rows (one file of a bundle)."""
        members = [
            Member(m.name, m.values[sel], m.is_logits, None if m.base is None else m.base[sel])
            for m in self.members
        ]
        return Raw(members, None if self.passthrough is None else self.passthrough[sel])


def blended(m: Member, w: float) -> np.ndarray:
    """The member's logits pulled towards its encoder's: b + w (z - b), z where there is no b."""
    z = m.logits()
    if m.base is None or w == 1.0:
        return z
    return np.where(np.isnan(m.base), z, m.base + w * (z - m.base))


def _rank_map(z: np.ndarray, knots: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Monotone map of one head's logits onto the reference scale: through its quantile table, slope 1 outside."""
    out = np.interp(z, knots, ref)
    out = np.where(z < knots[0], ref[0] + (z - knots[0]), out)
    return np.where(z > knots[-1], ref[-1] + (z - knots[-1]), out)


def combine(spec: dict[str, Any], raw: Raw) -> np.ndarray:
    """Probabilities [n, S] float64 (NaN where no head predicts a species) of a batch, as the spec says."""
    if raw.passthrough is not None:
        return sigmoid(raw.passthrough)  # -inf (species the encoder lacks) -> 0
    n, s = raw.members[0].values.shape
    w = float(spec.get("blend", 1.0))
    if spec.get("ensemble", "mean") == "rank":
        table = spec["rank"]
        ref = np.asarray(table["reference"], dtype=np.float64)
        mapped = [_rank_map(blended(m, w), np.asarray(table["heads"][m.name]), ref) for m in raw.members]
        with np.errstate(invalid="ignore"):
            return sigmoid(_nanmean(mapped, n, s))
    if w == 1.0:
        return _nanmean([m.probs() for m in raw.members], n, s)
    return _nanmean([sigmoid(blended(m, w)) for m in raw.members], n, s)


def _nanmean(arrays: list[np.ndarray], n: int, s: int) -> np.ndarray:
    total = np.zeros((n, s), dtype=np.float64)
    count = np.zeros((n, s), dtype=np.int64)
    for a in arrays:
        ok = ~np.isnan(a)
        total[ok] += a[ok]
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[count == 0] = np.nan
    return out


def fit_rank(raws: list[Raw], blend: float = 1.0) -> dict[str, Any]:
    """The rank tables (``spec["rank"]``) from validation outputs: each head's logit quantiles pooled over chunks
    and species, strictly increasing, and their mean as the common scale."""
    names = [m.name for m in raws[0].members]
    heads = {}
    for i, name in enumerate(names):
        z = np.concatenate([blended(r.members[i], blend).ravel() for r in raws])
        z = z[np.isfinite(z)]
        q = np.quantile(z, RANK_LEVELS) if len(z) else np.linspace(-8.0, 8.0, len(RANK_LEVELS))
        heads[name] = q + 1e-9 * np.arange(len(q))  # ties in the data (a constant column) -> still increasing
    ref = np.mean(list(heads.values()), axis=0)
    return {
        "reference": [float(v) for v in ref],
        "heads": {k: [float(v) for v in q] for k, q in heads.items()},
    }


def check(spec: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    """The blend/ensemble keys of a post-processing spec, normalised (defaults dropped); problems go to
    ``errors`` for the caller to raise."""
    out: dict[str, Any] = {}
    w = spec.get("blend")
    if w is not None:
        w = float(w)
        if not BLEND_RANGE[0] <= w <= BLEND_RANGE[1]:
            errors.append(
                f"blend {w}: must lie in [{BLEND_RANGE[0]:g}, {BLEND_RANGE[1]:g}] (1: the head alone)"
            )
        elif w != 1.0:
            out["blend"] = w
    mode = spec.get("ensemble", "mean")
    if mode not in ENSEMBLES:
        errors.append(f"ensemble {mode!r}: choose one of {', '.join(ENSEMBLES)}")
    elif mode == "rank":
        table = spec.get("rank") or {}
        heads = table.get("heads") or {}
        ref = table.get("reference") or []
        ok = bool(heads) and all(
            len(q) == len(ref) >= 2 and np.all(np.diff(q) > 0) for q in [ref, *heads.values()]
        )
        if not ok:
            errors.append(
                "ensemble 'rank' needs its rank tables (increasing quantiles per head): run `birdkit tune`"
            )
        else:
            out["ensemble"] = "rank"
            out["rank"] = {
                "reference": [float(v) for v in ref],
                "heads": {k: list(q) for k, q in heads.items()},
            }
    return out
