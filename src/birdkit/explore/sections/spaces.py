"""Section 5: output spaces side by side: every encoder's embedding and the mel-spectrogram + PCA baseline, on
the windows all the stores share, scored by k-means purity/AMI and a linear probe against the folder species
and against the surrogate's pseudo-labels."""

from __future__ import annotations

import numpy as np

from birdkit.competition import Competition
from birdkit.explore import clusters as cl
from birdkit.explore import spaces as sp
from birdkit.explore.datasets import Dataset, _key, encoders, pseudo_labels
from birdkit.explore.markdown import table
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.output import ReportOutput


def aligned(datasets: list[Dataset]) -> list[tuple[str, dict[str, Dataset], np.ndarray]]:
    """Per split held by every encoder: its stores by encoder and, for each store, the row order that lines its
    windows up with the first encoder's (rows missing from any store are dropped)."""
    encs = encoders(datasets)
    out = []
    for split in dict.fromkeys(d.split for d in datasets):
        group = {d.encoder: d for d in datasets if d.split == split}
        if set(group) != set(encs):
            continue
        first = group[encs[0]]
        idx = {e: _key(d.frame).get_indexer(_key(first.frame)) for e, d in group.items()}
        keep = np.all([i >= 0 for i in idx.values()], axis=0)
        out.append((split, group, np.flatnonzero(keep)))
    return out


def spaces_section(
    rep: ReportOutput, datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions
) -> str:
    lines = ["## 5. Output spaces compared", ""]
    parts = aligned(datasets)
    if not parts or not source:
        return "\n".join(
            [*lines, "No split is held by every encoder with a surrogate's logits; nothing to compare.", ""]
        )
    encs = encoders(datasets)
    first = encs[0]
    src = {d.split: d for d in source}
    spaces: dict[str, list[np.ndarray]] = {e: [] for e in encs}
    folder, pseudo, files, frames, roots = [], [], [], [], []
    for split, group, keep in parts:
        base = group[first]
        fr = base.frame.iloc[keep].reset_index(drop=True)
        for e, d in group.items():
            idx = _key(d.frame).get_indexer(_key(fr))
            spaces[e].append(d.embeddings[idx])
        s = src.get(split)
        if s is not None:
            si = _key(s.frame).get_indexer(_key(fr))
            p = pseudo_labels(s.logits, s.predicted(opt.threshold), s.species)
            pseudo.append(np.where(si >= 0, p[np.maximum(si, 0)], None))
        else:
            pseudo.append(np.full(len(fr), None, dtype=object))
        lab = fr["primary_label"].to_numpy(dtype=object)
        folder.append(np.array([v if isinstance(v, str) and v else None for v in lab], dtype=object))
        files.append((split + "/" + fr["file"].astype(str)).to_numpy())
        frames.append(fr)
        if opt.data_dir is not None:
            roots.append(Competition(opt.data_dir).path(split))
    x = {e: np.concatenate(v) for e, v in spaces.items()}
    note = "no --data-dir, so no mel-spectrogram baseline"
    if opt.data_dir is not None:
        x[sp.BASELINE] = sp.mel_baseline(frames, roots)
        note = f"`{sp.BASELINE}`: mean log-mel (64 bands) of each window"
    n = len(next(iter(x.values())))
    k = cl.choose_k(n, opt.clusters)
    df = sp.compare(x, np.concatenate(folder), np.concatenate(pseudo), np.concatenate(files), k, opt.seed)
    rep.save_table(df, "spaces.csv")
    rep.summary["spaces"] = df.to_dict(orient="records")
    lines += [
        f"The {n} windows of {', '.join(p[0] for p in parts)} that every store holds, in each space: {note}. "
        f"Every space is standardised and reduced by PCA to {sp.COMPARE_DIMS} dimensions first (one rule for all). "
        f"K-means (k = {k}) on L2-normalised vectors; purity and AMI against the folder species (train windows) "
        f"and against {source[0].encoder}'s pseudo-labels (its most likely species, windows where it hears one). "
        f"Linear probe: logistic regression on the same vectors, accuracy on held-out recordings "
        f"({sp.PROBE_FOLDS} folds grouped by file; labels with fewer than {sp.MIN_CLASS} windows left out); "
        "`probe majority` is what always guessing the commonest label scores. Table: `spaces.csv`.",
        "",
        table(df, 3) if len(df) else "Too few labelled windows to score.",
        "",
    ]
    return "\n".join(lines)
