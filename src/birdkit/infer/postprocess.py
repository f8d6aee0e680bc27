"""Post-processing of one file's chunk probabilities, in the one inference path (CLI and notebook alike).

``spec`` comes from the plan (what the exported model cards or the dataset's ``postprocess.json`` say), so the
notebook applies exactly what was validated. An empty spec changes nothing.

Every lever is numpy, a few microseconds per file, and chosen by `birdkit tune` on a labelled (or `birdkit mix`)
validation set, never on the test labels. Per file, in this order:

``neighbour_max`` d >= 0: each chunk's logit raised to its neighbours' lowered by d, where theirs is higher. The
                budget guard adds it with BirdNET's one-window fallback (a call at a chunk's edge, missed by its
                centre window, is heard by the neighbour's); not tuned.
``kernel``      neighbour smoothing of each species' chunk scores with these weights (odd length, normalised,
                edges padded with the edge chunk): a call rarely sits in one 5 s chunk alone.
``file_prior``  a in [0, 1): p' = (1 - a) p + a max_file(p) (``prior_mode`` "add"), or p' = p max_file(p)^a
                ("mul"): a species heard loudly somewhere in the file is likelier in its quiet chunks too.
``cooccur``     the co-occurrence prior (infer/cooccur.py): rules "i calls -> j calls" raise j where i is heard.

Before them, per chunk, the scorer combines the models (infer/ensemble.py): ``blend`` (each head pulled towards
its encoder's own classifier) and ``ensemble`` ("mean" or "rank", with its ``rank`` tables).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.errors import OptionError
from birdkit.infer import cooccur, ensemble

FILE = "postprocess.json"  # beside heads/ and encoders/ in an exported dataset: applies to every plan
KEYS = ("neighbour_max", "kernel", "file_prior", "prior_mode", "blend", "ensemble", "rank", "cooccur")
PRIOR_MODES = ("add", "mul")


def check(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The spec, validated and normalised (kernel as floats, defaults dropped); OptionError says what is wrong."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise OptionError(f"post-processing {unknown}: unknown keys; known are {', '.join(KEYS)}")
    out: dict[str, Any] = {}
    kernel = spec.get("kernel")
    if kernel is not None and list(kernel) not in ([], [1], [1.0]):
        k = [float(w) for w in kernel]
        if len(k) % 2 != 1 or min(k) < 0 or sum(k) <= 0 or not all(np.isfinite(k)):
            raise OptionError(
                f"post-processing kernel {kernel}: give an odd number of weights >= 0 (e.g. [1, 2, 1])"
            )
        out["kernel"] = k
    prior = float(spec.get("file_prior") or 0.0)
    mode = spec.get("prior_mode", "add")
    if mode not in PRIOR_MODES:
        raise OptionError(f"post-processing prior_mode {mode!r}: choose one of {', '.join(PRIOR_MODES)}")
    if not (0.0 <= prior < 1.0 or (mode == "mul" and 0.0 <= prior <= 4.0)):
        raise OptionError(f"post-processing file_prior {prior}: must lie in [0, 1) (mode add)")
    if prior > 0:
        out["file_prior"] = prior
        out["prior_mode"] = mode
    if spec.get("neighbour_max") is not None:
        drop = float(spec["neighbour_max"])
        if not (np.isfinite(drop) and drop >= 0):
            raise OptionError(f"post-processing neighbour_max {drop}: give a logit drop >= 0 (e.g. 1)")
        out["neighbour_max"] = drop
    errors: list[str] = []
    out.update(ensemble.check(spec, errors))
    co = cooccur.check(spec.get("cooccur"), errors)
    if errors:
        raise OptionError("post-processing " + "; ".join(errors))
    if co:
        out["cooccur"] = co
    return out


def bind(spec: dict[str, Any], species: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The spec for this species order: the co-occurrence rules as column numbers (what :func:`apply` reads)."""
    if not spec.get("cooccur"):
        return spec
    return {**spec, "cooccur": cooccur.bind(spec["cooccur"], species)}


def smooth(probs: np.ndarray, kernel: list[float]) -> np.ndarray:
    """Each column convolved with the normalised kernel along the chunks, edges padded with the edge chunk."""
    w = np.asarray(kernel, dtype=np.float64)
    w = w / w.sum()
    k = len(w) // 2
    if k == 0 or len(probs) == 0:
        return probs
    pad = np.pad(probs, ((k, k), (0, 0)), mode="edge")
    return sum(w[j] * pad[j : j + len(probs)] for j in range(len(w)))


def neighbour_max(probs: np.ndarray, drop: float) -> np.ndarray:
    """Each chunk's logit as the max of its own and its two neighbours' lowered by ``drop`` (in logit space,
    so the drop means the same at every level); NaN columns stay NaN."""
    if len(probs) < 2:
        return probs
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(probs) - np.log1p(-probs)
    out = z.copy()
    out[1:] = np.fmax(out[1:], z[:-1] - drop)
    out[:-1] = np.fmax(out[:-1], z[1:] - drop)
    out[np.isnan(z)] = np.nan
    return ensemble.sigmoid(out)


def file_prior(probs: np.ndarray, a: float, mode: str = "add") -> np.ndarray:
    if len(probs) == 0 or a <= 0:
        return probs
    with np.errstate(all="ignore"):
        top = np.max(probs, axis=0, keepdims=True)  # NaN columns (no model) stay NaN
    if mode == "mul":
        return probs * top**a
    return (1.0 - a) * probs + a * top


def apply(spec: dict[str, Any], probs: np.ndarray) -> np.ndarray:
    """One file's probabilities [n_chunks, S] (NaN where no model predicts a species) after post-processing."""
    if not spec:
        return probs
    p = np.asarray(probs, dtype=np.float64)
    if spec.get("neighbour_max") is not None:
        p = neighbour_max(p, float(spec["neighbour_max"]))
    if spec.get("kernel"):
        p = smooth(p, spec["kernel"])
    if spec.get("file_prior"):
        p = file_prior(p, float(spec["file_prior"]), spec.get("prior_mode", "add"))
    if spec.get("cooccur"):
        p = cooccur.apply(spec["cooccur"], p)
    return p


def describe(spec: dict[str, Any]) -> str:
    if not spec:
        return "none"
    parts = []
    if spec.get("neighbour_max") is not None:
        parts.append(f"neighbour max (drop {spec['neighbour_max']:g})")
    if spec.get("kernel"):
        parts.append("smoothing " + "-".join(f"{w:g}" for w in spec["kernel"]))
    if spec.get("file_prior"):
        parts.append(f"file prior {spec['file_prior']:g} ({spec.get('prior_mode', 'add')})")
    if spec.get("cooccur"):
        co = spec["cooccur"]
        parts.append(f"co-occurrence prior {co['weight']:g} ({len(co['rules'])} rules)")
    if "blend" in spec:
        parts.append(f"blend {spec['blend']:g}")
    if spec.get("ensemble") == "rank":
        parts.append("rank mean")
    return ", ".join(parts) or "none"


def read(folder: str | Path) -> dict[str, Any] | None:
    """``postprocess.json`` of an exported dataset, validated; None when the folder has none."""
    p = Path(folder) / FILE
    if not p.exists():
        return None
    try:
        return check(json.loads(p.read_text()))
    except (ValueError, OptionError) as exc:
        raise OptionError(f"{p}: {exc}; write it again with `birdkit tune --apply {folder}`") from exc
