"""`explore`: embedding stores in, one Markdown report with PNG figures and CSV/Parquet tables out.

Sections: species frequency and call share (paper Table 1, Figure 2), co-occurrence by FP-growth (Table 2,
Figures 3 and 6, rules saved as a prior), 2-D maps per encoder (Figures 1 and 5) and k-means clusters scored
against folder labels and pseudo-labels, with spectrogram contact sheets (the self-supervised poster).
Everything random is seeded, so a report is reproducible from its stores and options.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from birdkit.explore import clusters as cl
from birdkit.explore import cooccurrence as co
from birdkit.explore import frequency as fq
from birdkit.explore import maps
from birdkit.explore.datasets import Dataset, by_recording, encoders, load_datasets, pseudo_labels
from birdkit.explore.errors import ExploreError
from birdkit.explore.markdown import image, table
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.store import labels

PAPER_CALL_SHARE = {"train": 0.62, "soundscape": 0.088}  # working notes, section 4
MAP_LEVELS = ("window", "recording")
MIN_SCORED = 10  # fewer labelled windows make purity and AMI noise (one window is always "pure")


@dataclass
class ExploreOptions:
    """Every knob of the report; recorded in summary.json next to the numbers it produced."""

    threshold: float = 0.5  # equation (1), the paper's 0.5
    top_n: int = 10  # rows of the frequency and itemset tables
    transactions: str = "recording"  # co-occurrence basket: recording or window
    min_support: float = 0.01
    min_count: int = 2  # support floor in transactions: a pattern seen once is not a pattern
    max_len: int | None = None
    min_confidence: float = 0.8  # the paper's (and mlxtend's) default
    projection: str = "pacmap"
    map_level: str = "window"
    map_top_n: int = 10
    map_max_points: int = 20_000
    clusters: int = 100
    cluster_sample: int = 50_000
    examples: int = 4  # spectrograms per cluster on the contact sheet
    data_dir: Path | None = None  # competition folder, for the contact sheet's audio
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ExploreError(f"--threshold {self.threshold}: must lie strictly between 0 and 1")
        if self.transactions not in co.LEVELS:
            raise ExploreError(f"--transactions {self.transactions!r}: choose one of {', '.join(co.LEVELS)}")
        if self.map_level not in MAP_LEVELS:
            raise ExploreError(f"--map-level {self.map_level!r}: choose one of {', '.join(MAP_LEVELS)}")
        if not 0.0 < self.min_confidence <= 1.0 or not 0.0 < self.min_support <= 1.0:
            raise ExploreError("--min-confidence and --min-support must lie in (0, 1]")
        if self.clusters < 2 or self.cluster_sample < 2:
            raise ExploreError("--clusters and --cluster-sample must be at least 2")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise ExploreError(f"--data-dir {self.data_dir}: not a folder; give the competition folder")
        maps.check_method(self.projection)


@dataclass
class ExploreResult:
    out: Path
    report: Path
    figures: list[Path]
    tables: list[Path]
    summary: dict
    seconds: float


@dataclass
class _Report:
    """Where the sections put their files and numbers."""

    out: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def save_table(self, df: pd.DataFrame, name: str) -> Path:
        path = self.out / name
        if name.endswith(".parquet"):
            atomic_write_bytes(path, _parquet_bytes(df))
        else:
            atomic_write_bytes(path, df.to_csv(index=False).encode())
        self.tables.append(path)
        return path


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def explore(paths: list[str | Path], out: str | Path, options: ExploreOptions | None = None) -> ExploreResult:
    """Write `report.md`, its figures, tables and `summary.json` to `out`."""
    opt = options or ExploreOptions()
    opt.check()
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = _Report(out)
    steps = ["load", "frequency", "co-occurrence", "maps", "clusters", "report"]
    bar = tqdm(total=len(steps), desc="explore", unit="step", disable=not opt.progress)
    timings: dict[str, float] = {}
    last = [t0]

    def step(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - last[0], 2)
        last[0] = now
        bar.update(1)

    bar.set_postfix_str("loading stores")
    datasets = load_datasets(paths)
    names = _common_names(opt.data_dir)
    source = _label_source(datasets)
    step("load")

    bar.set_postfix_str("species frequency")
    sections = [_header(datasets, source, opt, out)]
    y_hats = {d.split: d.predicted(opt.threshold) for d in source}
    sections.append(_frequency_section(rep, source, y_hats, opt, names))
    step("frequency")

    bar.set_postfix_str("co-occurrence (FP-growth)")
    sections.append(_cooccurrence_section(rep, source, y_hats, opt))
    step("co-occurrence")

    bar.set_postfix_str(f"maps ({opt.projection})")
    sections.append(_maps_section(rep, datasets, source, opt, names))
    step("maps")

    bar.set_postfix_str("k-means clusters")
    sections.append(_clusters_section(rep, datasets, source, opt))
    step("clusters")

    bar.set_postfix_str("writing report")
    seconds = time.perf_counter() - t0
    rep.summary.update(
        {
            "stores": [{"encoder": d.encoder, "split": d.split, "windows": len(d)} for d in datasets],
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opt).items()},
            "seconds": round(seconds, 1),
        }
    )
    rep.summary["options"].pop("data_dir", None)  # a local path; the report only says whether audio was used
    rep.summary["options"].pop("progress", None)
    step("report")
    rep.summary["timings_s"] = timings
    text = "\n".join(sections).replace("{ELAPSED}", f"{seconds:.1f}")
    report = out / "report.md"
    atomic_write_bytes(report, text.encode())
    atomic_write_json(out / "summary.json", _json_safe(rep.summary))
    bar.close()
    return ExploreResult(out, report, rep.figures, rep.tables, rep.summary, seconds)


# ---- shared helpers ----------------------------------------------------------------------------------------
def _label_source(datasets: list[Dataset]) -> list[Dataset]:
    """The stores whose logits label every section: the first encoder that has logits (the surrogate)."""
    for enc in encoders(datasets):
        group = [d for d in datasets if d.encoder == enc]
        if any(d.has_logits() for d in group):
            return group
    return []


def _common_names(data_dir: Path | None) -> dict[str, str]:
    """eBird code -> common name from the competition taxonomy, when a data folder with one is given."""
    if data_dir is None:
        return {}
    p = Path(data_dir) / "eBird_Taxonomy_v2021.csv"
    if not p.exists():
        return {}
    tax = pd.read_csv(p, usecols=["SPECIES_CODE", "PRIMARY_COM_NAME"])
    return dict(zip(tax["SPECIES_CODE"], tax["PRIMARY_COM_NAME"], strict=True))


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


def _is_soundscape(split: str) -> bool:
    return split != "train_audio"


def _reference(names: list[str]) -> str:
    """The dataset species are ranked by: the first soundscape split, as in the paper's Figure 2."""
    return next((n for n in names if _is_soundscape(n)), names[0])


def _key(frame: pd.DataFrame) -> pd.Index:
    return pd.MultiIndex.from_arrays([frame["file"].astype(str), frame["start_s"].astype(np.float64)])


def _labels_and_calls(ds: Dataset, source: list[Dataset], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: folder species or pseudo-label (None: no call), and whether the surrogate hears a call.

    A store without logits (e.g. a general audio encoder) borrows the surrogate's predictions for the same
    windows, matched on file and start, as the paper labels EnCodec windows with the Bird Vocalization model.
    """
    src = next((s for s in source if s.split == ds.split), None)
    if ds.has_logits() or src is None:
        y_hat = ds.predicted(threshold)
        pseudo = pseudo_labels(ds.logits, y_hat, ds.species)
    else:
        if ds.level == "recording" and src.level != "recording":
            src = by_recording(src)
        idx = _key(src.frame).get_indexer(_key(ds.frame))
        y_src = src.predicted(threshold)
        pseudo_src = pseudo_labels(src.logits, y_src, src.species)
        y_hat = np.where((idx >= 0)[:, None], y_src[np.maximum(idx, 0)], False)
        pseudo = np.where(idx >= 0, pseudo_src[np.maximum(idx, 0)], None)
    folder = ds.frame["primary_label"].to_numpy(dtype=object)
    has_folder = np.array([isinstance(v, str) and v != "" for v in folder])
    return np.where(has_folder, folder, pseudo), labels.has_call(y_hat)


def _json_safe(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if math.isnan(float(obj)) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _pct(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


# ---- sections ----------------------------------------------------------------------------------------------
def _header(datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions, out: Path) -> str:
    rows = pd.DataFrame(
        {
            "encoder": [d.encoder for d in datasets],
            "split": [d.split for d in datasets],
            "store": [d.root.name for d in datasets],
            "recordings": [int(d.frame["file"].nunique()) for d in datasets],
            "windows": [len(d) for d in datasets],
            "hours": [float((d.frame["end_s"] - d.frame["start_s"]).sum() / 3600) for d in datasets],
            "embedding dim": [int(d.embeddings.shape[1]) for d in datasets],
            "logits": ["yes" if d.has_logits() else "no" for d in datasets],
        }
    )
    src = f"the **{source[0].encoder}** stores' logits" if source else "no store (none has logits)"
    return "\n".join(
        [
            f"# Exploration report: {out.name}",
            "",
            f"Stores explored (built in {{ELAPSED}} s; seed {opt.seed}):",
            "",
            table(rows, 2),
            f"Species predictions come from {src}, thresholded at σ(logit) > {opt.threshold:g} (equation (1)). "
            "A window's *label* is its folder species for train clips and otherwise its pseudo-label (the most "
            "likely predicted species).",
            "",
        ]
    )


def _frequency_section(
    rep: _Report, source: list[Dataset], y_hats: dict[str, np.ndarray], opt: ExploreOptions, names: dict
) -> str:
    lines = ["## 1. Species frequency", ""]
    if not source:
        return "\n".join([*lines, "No store has logits, so there are no species predictions to count.", ""])
    shares = []
    truth = _labelled_call_share(source, opt.data_dir)
    for d in source:
        n, k, share = fq.call_share(y_hats[d.split])
        paper = PAPER_CALL_SHARE["soundscape" if _is_soundscape(d.split) else "train"]
        row = {"dataset": d.split, "windows": n, "with a call": k, "share": _pct(share), "paper": _pct(paper)}
        if truth:
            row["ground truth"] = _pct(truth[d.split]) if d.split in truth else ""
        shares.append(row)
    rep.summary["call_share"] = {s["dataset"]: s["with a call"] / max(1, s["windows"]) for s in shares}
    if truth:
        rep.summary["call_share_ground_truth"] = truth
    freq = pd.DataFrame({d.split: fq.species_counts(y_hats[d.split], d.species) for d in source})
    ref = _reference(list(freq.columns))
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


def _cooccurrence_section(
    rep: _Report, source: list[Dataset], y_hats: dict[str, np.ndarray], opt: ExploreOptions
) -> str:
    level = opt.transactions
    lines = ["## 2. Co-occurrence (FP-growth)", ""]
    if not source:
        return "\n".join([*lines, "No store has logits: nothing to mine.", ""])
    mined: dict[str, co.Mined] = {}
    for d in source:
        groups = d.frame["file"].to_numpy() if level == "recording" else None
        tx = co.transactions(y_hats[d.split], d.species, groups)
        mined[d.split] = co.mine(tx, opt.min_support, opt.min_count, opt.max_len, opt.min_confidence)
    overview = pd.DataFrame(
        {
            "dataset": list(mined),
            f"{level}s with a call": [m.n_transactions for m in mined.values()],
            # blank where fewer transactions than --min-count exist: nothing can be frequent there
            "min support used": [
                m.min_support if m.n_transactions >= opt.min_count else float("nan") for m in mined.values()
            ],
            "frequent itemsets": [len(m.itemsets) for m in mined.values()],
            "of size ≥ 2": [int((m.itemsets["size"] > 1).sum()) for m in mined.values()],
            f"rules (conf ≥ {opt.min_confidence:g})": [len(m.rules) for m in mined.values()],
            f"mean species per {level}": [
                float(m.basket_sizes.mean()) if len(m.basket_sizes) else float("nan") for m in mined.values()
            ],
        }
    )
    lines += [
        f"A transaction is the set of species predicted in one {level} (only {level}s with at least one call). "
        f"Support floor: max({opt.min_support:g}, {opt.min_count} / transactions)"
        + (f", itemsets up to {opt.max_len} species" if opt.max_len else "")
        + ".",
        "",
        table(overview, 4),
    ]
    if not any((m.itemsets["size"] > 1).any() for m in mined.values()):
        lines += [
            f"_No species pair reaches the support floor in any dataset: at σ > {opt.threshold:g} the surrogate "
            f"rarely predicts two species in one {level}. A lower `--threshold`"
            + (" or `--transactions recording`" if level == "window" else "")
            + " finds more co-occurrence (and more false positives)._",
            "",
        ]
    for ds, m in mined.items():
        lines += [
            f"Top {opt.top_n} frequent itemsets in **{ds}** (the paper's Table 2):",
            "",
            table(co.itemset_table(m, opt.top_n), 4),
        ]
    itemsets = pd.concat(
        [
            m.itemsets.assign(dataset=ds, items=[" ".join(i) for i in m.itemsets["items"]])[
                ["dataset", "items", "size", "count", "support"]
            ]
            for ds, m in mined.items()
        ],
        ignore_index=True,
    )
    rep.save_table(itemsets, "itemsets.csv")
    rules = {ds: m.rules for ds, m in mined.items()}
    flat = co.rules_records(rules)
    rep.save_table(flat, "rules.csv")
    rep.save_table(flat, "rules.parquet")
    rep.summary["cooccurrence"] = {
        ds: {
            "transactions": m.n_transactions,
            "itemsets": len(m.itemsets),
            "rules": len(m.rules),
            "top_itemsets": [
                [list(i), int(c)]
                for i, c in zip(
                    m.itemsets["items"][: opt.top_n], m.itemsets["count"][: opt.top_n], strict=True
                )
            ],
        }
        for ds, m in mined.items()
    }
    sizes = co.plot_itemset_sizes(mined, rep.out / "itemset_sizes.png", level)
    graph = co.plot_rule_graphs(rules, rep.out / "rules_graph.png", opt.min_confidence, opt.seed)
    rep.figures += [sizes, graph]
    lines += ["Distribution of itemset sizes (the paper's Figure 3):", "", image(sizes.name, "itemset sizes")]
    top_rules = flat.head(opt.top_n).copy()
    lines += [
        f"Association rules at confidence ≥ {opt.min_confidence:g} (the paper's Figure 6: single-species "
        "antecedents, an edge to each consequent species). All rules, for use as a co-occurrence prior: "
        "`rules.csv` / `rules.parquet` (antecedents and consequents space-separated).",
        "",
        table(top_rules, 3)
        if len(top_rules)
        else "_No rule reaches the confidence threshold on these stores._\n",
        image(graph.name, "association rule graph"),
    ]
    return "\n".join(lines)


def _subsample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _maps_section(
    rep: _Report, datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions, names: dict
) -> str:
    level = opt.map_level
    lines = [
        "## 3. Embedding maps",
        "",
        f"{maps.DISPLAY[opt.projection]} projections (seed {opt.seed}) of per-{level} "
        + ("embeddings" if level == "window" else "mean embeddings and max logits (as the paper's Figure 5)")
        + f". Each panel colours its {opt.map_top_n} most frequent labels (folder species for train, pseudo-labels "
        f"for soundscapes); other species are mid grey, {level}s without a call light grey. At most "
        f"{opt.map_max_points} points per panel (seeded subsample).",
        "",
    ]
    embedded: dict[tuple[str, str], maps.Panel] = {}
    encs = encoders(datasets)
    src = [by_recording(s) for s in source] if level == "recording" else source
    views = {id(d): by_recording(d) if level == "recording" else d for d in datasets}
    jobs = [(d, space) for d in datasets for space in ("embeddings", "logits")]
    for d, space in tqdm(jobs, desc="maps", unit="map", disable=not opt.progress, leave=False):
        dd = views[id(d)]
        if space == "logits" and maps.finite_columns(dd.logits).shape[1] == 0:
            continue
        lab, _ = _labels_and_calls(dd, src, opt.threshold)
        idx = _subsample(len(dd), opt.map_max_points, opt.seed)
        x = dd.embeddings if space == "embeddings" else dd.logits
        dim = maps.finite_columns(x).shape[1]
        xy = maps.project(x[idx], opt.projection, opt.seed)
        title = f"{d.split}: {d.encoder} {space} ({dim}-d), {len(idx)} {level}s"
        embedded[d.encoder, d.split, space] = maps.Panel(title, xy, lab[idx])
    for enc in encs:
        rows = [
            [p for (e, s, _sp), p in embedded.items() if e == enc and s == d.split]
            for d in datasets
            if d.encoder == enc
        ]
        rows = [r for r in rows if r]
        if not rows:
            continue
        path = maps.plot_grid(
            rows,
            rep.out / f"map_{_slug(enc)}.png",
            f"{enc}: {maps.DISPLAY[opt.projection]} maps by dataset",
            opt.map_top_n,
            names,
        )
        rep.figures.append(path)
        lines += [
            f"**{enc}** (rows: datasets; columns: embeddings, logits):",
            "",
            image(path.name, f"{enc} maps"),
        ]
    if len(encs) > 1:
        splits = list(dict.fromkeys(d.split for d in datasets))
        grid = [
            [
                embedded.get((e, s, "embeddings"), maps.Panel(f"{s}: {e}", None, np.array([]), "no store"))
                for e in encs
            ]
            for s in splits
        ]
        path = maps.plot_grid(
            grid, rep.out / "map_compare.png", "Encoders side by side (embeddings)", opt.map_top_n, names
        )
        rep.figures.append(path)
        lines += [
            "Encoders side by side (rows: datasets; columns: encoders):",
            "",
            image(path.name, "encoder comparison"),
        ]
    return "\n".join(lines)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _clusters_section(
    rep: _Report, datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions
) -> str:
    lines = ["## 4. Clusters", ""]
    encs = encoders(datasets)
    scores: list[dict] = []
    sheets: dict[str, tuple[cl.Clustering, list[Dataset], pd.DataFrame, np.ndarray]] = {}
    rep.summary["clusters"] = {}
    for enc in tqdm(encs, desc="k-means", unit="encoder", disable=not opt.progress, leave=False):
        group = [d for d in datasets if d.encoder == enc]
        x = np.concatenate([d.embeddings for d in group])
        lab_calls = [_labels_and_calls(d, source, opt.threshold) for d in group]
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
        rep.save_table(tab, f"clusters_{_slug(enc)}.csv")
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
            + f", by call share (full table: `clusters_{_slug(enc)}.csv`):",
            "",
            table(show.assign(call_share=[_pct(v) for v in show["call_share"]]), 2),
        ]
    lines += _contact_sheets(rep, sheets, opt)
    return "\n".join(lines)


def _contact_sheets(rep: _Report, sheets: dict, opt: ExploreOptions) -> list[str]:
    from birdkit.explore import contact_sheet as cs

    head = ["### Contact sheets", ""]
    if opt.data_dir is None:
        return [
            *head,
            "_Skipped: the stores keep file names relative to their split folder, not the audio itself. Give "
            "`--data-dir COMPETITION_FOLDER` to draw example spectrograms per cluster._",
            "",
        ]
    data_dir = Path(opt.data_dir)
    plans: dict[str, list[tuple[int, str, list]]] = {}
    refs: list[cs.WindowRef] = []
    missing: set[str] = set()
    for enc, (c, group, tab, _lab) in sheets.items():
        frame = pd.concat([d.frame for d in group], ignore_index=True)
        paths = [data_dir / s / f for s, f in zip(frame["split"], frame["file"], strict=True)]
        exists = {p: p.exists() for p in set(paths)}
        missing.update(str(p.parent.relative_to(data_dir)) for p, ok in exists.items() if not ok)
        ok = np.array([exists[p] for p in paths], dtype=bool)
        ex = cl.examples(c, opt.examples, ok)
        order = tab.sort_values(["call_share", "windows"], ascending=[False, False])
        plan = []
        for r in order.itertuples(index=False):
            wr = [
                cs.WindowRef(paths[i], float(frame["start_s"].iat[i]), float(frame["end_s"].iat[i]))
                for i in ex[r.cluster]
            ]
            refs += wr
            maj = f" · {r.majority} {_pct(r.purity)}" if r.majority else ""
            plan.append((r.cluster, f"c{r.cluster} · {r.windows} win · call {_pct(r.call_share)}{maj}", wr))
        plans[enc] = plan
    specs = cs.window_spectrograms(sorted(set(refs), key=lambda r: (str(r.path), r.start_s)), opt.progress)
    lines = [
        *head,
        f"The {opt.examples} windows nearest each cluster centre, clusters ordered by call share (song first, "
        "silence last), on one dB scale:",
        "",
    ]
    if missing:
        lines += [f"_Audio not found under the data folder for: {', '.join(sorted(missing)[:5])}._", ""]
    for enc, plan in plans.items():
        tiles = [cs.Tile(title, [specs.get(r) for r in wr]) for _c, title, wr in plan]
        pages = cs.plot_contact_sheets(tiles, rep.out / f"contact_{_slug(enc)}", f"{enc} clusters")
        rep.figures += pages
        lines += [f"**{enc}**:", ""] + [
            image(p.name, f"{enc} contact sheet {i}") for i, p in enumerate(pages, 1)
        ]
    return lines
