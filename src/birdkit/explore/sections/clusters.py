"""Section 4: k-means clusters of each encoder's windows, scored against folder species and pseudo-labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from birdkit.explore import clusters as cl
from birdkit.explore.datasets import Dataset, encoders, labels_and_calls
from birdkit.explore.markdown import table
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.contact_sheets import contact_sheets
from birdkit.explore.sections.output import ReportOutput, pct, slug

MIN_SCORED = 10  # fewer labelled windows make purity and AMI noise (one window is always "pure")


def clusters_section(
    rep: ReportOutput, datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions
) -> str:
    lines = ["## 4. Clusters", ""]
    encs = encoders(datasets)
    scores: list[dict] = []
    sheets: dict[str, tuple[cl.Clustering, list[Dataset], pd.DataFrame, np.ndarray]] = {}
    rep.summary["clusters"] = {}
    for enc in tqdm(encs, desc="k-means", unit="encoder", disable=not opt.progress, leave=False):
        group = [d for d in datasets if d.encoder == enc]
        x = np.concatenate([d.embeddings for d in group])
        lab_calls = [labels_and_calls(d, source, opt.threshold) for d in group]
        lab = np.concatenate([lc[0] for lc in lab_calls])
        call = np.concatenate([lc[1] for lc in lab_calls])
        split = np.concatenate([np.full(len(d), d.split, dtype=object) for d in group])
        k = cl.choose_k(min(len(x), opt.cluster_sample), opt.clusters)
        c = cl.kmeans(x, k, opt.cluster_sample, opt.seed)
        enc_scores = {}
        train = split == "train_audio"
        for scope, mask in (
            ("train windows vs folder species", train),
            ("soundscape windows with a call vs pseudo-labels", ~train & call),
            ("all labelled windows", np.ones(len(x), dtype=bool)),
        ):
            if not mask.any() or (scope.startswith("all") and (train.all() or not train.any())):
                continue
            s = cl.score(lab[mask], c.assignments[mask], opt.seed)
            if s["windows"] < MIN_SCORED:
                continue
            enc_scores[scope] = s
            scores.append({"encoder": enc, "windows scored": scope, "k": c.k, **s})
        tab = cl.cluster_table(c.assignments, lab, call, split, c.k)
        rep.save_table(tab, f"clusters_{slug(enc)}.csv")
        rep.summary["clusters"][enc] = {"k": c.k, "fitted": c.fitted, "windows": len(x), "scores": enc_scores}
        sheets[enc] = (c, group, tab, lab)
    adaptive = (
        f"k = min({opt.clusters}, windows fitted // {cl.MIN_PER_CLUSTER}), at least 2, so small stores do not get "
        "mostly single-window clusters"
    )
    lines += [
        f"K-means on L2-normalised embeddings in their full dimension, fitted on a seeded random subsample of at "
        f"most {opt.cluster_sample} windows of all the encoder's stores together, then every window assigned; "
        f"{adaptive}. Purity: share of windows whose label is their cluster's majority label; the random "
        "baseline permutes the cluster assignments (same sizes) 20 times. AMI: adjusted mutual information "
        "(0 = chance). Windows of one train clip share its folder label, so train purity also rewards grouping "
        f"windows by recording. Groups with fewer than {MIN_SCORED} labelled windows are not scored.",
        "",
    ]
    if scores:
        df = pd.DataFrame(scores)
        df["random purity"] = [
            f"{m:.3f} ± {s:.3f}" for m, s in zip(df["random_purity"], df["random_purity_sd"], strict=True)
        ]
        df = df[["encoder", "windows scored", "k", "windows", "labels", "purity", "random purity", "ami"]]
        lines += [table(df.rename(columns={"ami": "AMI"}), 3)]
    for enc, (c, _group, tab, _lab) in sheets.items():
        order = tab.sort_values(["call_share", "windows"], ascending=[False, False])
        # the quietest clusters, largest first: big silent/noise clusters matter more than stray windows
        quiet = tab.sort_values(["call_share", "windows"], ascending=[True, False]).head(10)
        show = order if c.k <= 24 else pd.concat([order.head(10), quiet])
        lines += [
            f"**{enc}**: {c.k} clusters ({c.fitted} windows fitted). "
            + (
                "All clusters"
                if c.k <= 24
                else "The 10 clusters with the highest and the 10 with the lowest call share"
            )
            + f", by call share (full table: `clusters_{slug(enc)}.csv`):",
            "",
            table(show.assign(call_share=[pct(v) for v in show["call_share"]]), 2),
        ]
    lines += contact_sheets(rep, sheets, opt)
    return "\n".join(lines)
