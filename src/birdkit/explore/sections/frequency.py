"""Section 1: species frequency and the share of windows with a call (the paper's Table 1 and Figure 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from birdkit.explore import frequency as fq
from birdkit.explore.datasets import Dataset
from birdkit.explore.markdown import image, table
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.output import ReportOutput, pct

PAPER_CALL_SHARE = {"train": 0.62, "soundscape": 0.088}  # working notes, section 4


def _labelled_call_share(source: list[Dataset], data_dir: Path | None) -> dict[str, float]:
    """Share of test_soundscapes windows with a call in test_labels_5s.csv, where the data folder has it.

    It shows how far the thresholded surrogate under- or over-counts calls in soundscapes.
    """
    test = next((d for d in source if d.split == "test_soundscapes"), None)
    if data_dir is None or test is None or not (Path(data_dir) / "test_labels_5s.csv").exists():
        return {}
    from birdkit.competition import Competition

    gt = Competition(data_dir).test_labels()
    calls = gt.set_index("row_id")["labels"].str.strip().ne("")
    found = test.frame["row_id"].map(calls).dropna()
    return {"test_soundscapes": float(found.mean())} if len(found) else {}


def is_soundscape(split: str) -> bool:
    return split != "train_audio"


def reference(names: list[str]) -> str:
    """The dataset species are ranked by: the first soundscape split, as in the paper's Figure 2."""
    return next((n for n in names if is_soundscape(n)), names[0])


def frequency_section(
    rep: ReportOutput, source: list[Dataset], y_hats: dict[str, np.ndarray], opt: ExploreOptions, names: dict
) -> str:
    lines = ["## 1. Species frequency", ""]
    if not source:
        return "\n".join([*lines, "No store has logits, so there are no species predictions to count.", ""])
    shares = []
    truth = _labelled_call_share(source, opt.data_dir)
    for d in source:
        n, k, share = fq.call_share(y_hats[d.split])
        paper = PAPER_CALL_SHARE["soundscape" if is_soundscape(d.split) else "train"]
        row = {"dataset": d.split, "windows": n, "with a call": k, "share": pct(share), "paper": pct(paper)}
        if truth:
            row["ground truth"] = pct(truth[d.split]) if d.split in truth else ""
        shares.append(row)
    rep.summary["call_share"] = {s["dataset"]: s["with a call"] / max(1, s["windows"]) for s in shares}
    if truth:
        rep.summary["call_share_ground_truth"] = truth
    freq = pd.DataFrame({d.split: fq.species_counts(y_hats[d.split], d.species) for d in source})
    ref = reference(list(freq.columns))
    out_freq = freq.copy()
    out_freq.insert(0, "species", out_freq.index)
    if names:
        out_freq.insert(1, "common name", [names.get(s, "") for s in out_freq.index])
    rep.save_table(out_freq.reset_index(drop=True), "species_frequency.csv")
    top = fq.top_n_table(freq, opt.top_n)
    rep.summary["top_species"] = {
        ds: [[s, int(c)] for s, c in zip(top[ds], top[f"{ds} windows"], strict=True) if s]
        for ds in freq.columns
    }
    detected = {ds: int((freq[ds] > 0).sum()) for ds in freq.columns}
    others = [c for c in freq.columns if c != "train_audio"]
    shift = ""
    if "train_audio" in freq.columns and others:
        only = int(((freq["train_audio"] > 0) & (freq[others].sum(axis=1) == 0)).sum())
        shift = (
            f"{only} species are predicted in train_audio and in no other dataset (the distribution shift). "
        )
    lines += [
        "Share of 5 s windows with at least one predicted species (equation (2)). The paper saw 62% of training "
        "and 8.8% of soundscape windows with a call (Bird Vocalization classifier, threshold 0.5)"
        + ("; ground truth: share of windows labelled with a call in test_labels_5s.csv" if truth else "")
        + ":",
        "",
        table(pd.DataFrame(shares)),
        f"Top {opt.top_n} species per dataset by the number of windows that predict them (the paper's Table 1):",
        "",
        table(top),
        "Species detected at least once: "
        + ", ".join(f"{ds} {k}" for ds, k in detected.items())
        + ". "
        + shift
        + "Full counts: `species_frequency.csv`.",
        "",
    ]
    path = fq.plot_ranked_frequency(
        freq,
        ref,
        rep.out / "species_frequency.png",
        f"Species frequency, ranked by {ref} (cf. paper Figure 2)",
    )
    lines.append(image(path.name, "ranked species frequency"))
    rep.figures.append(path)
    return "\n".join(lines)
