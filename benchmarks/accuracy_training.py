"""The training ablation (issue 12, items 3-4): the residual head with each training option alone, with soundscape
self-training, and the best combination, scored from stores (no notebook runs) on the `birdkit mix` set, where
every choice is made, and on minicomp's test soundscapes (reported only), raw and after the shipped file prior.

    python benchmarks/accuracy_training.py --work W --prepare ../shared/data/minicomp   # mix1, trainmix (~3 min)
    python benchmarks/accuracy_training.py --work W --seeds 0 1 2 3 4 --train-mix W/trainmix W/trainmix_emb
    python benchmarks/accuracy_training.py --work W/m1 --seeds 0 1 2 3 4 --mix-dir W/mix1 --mix-store W/mix1_emb \
        --train-mix W/trainmix W/trainmix_emb

The defaults read the round's precomputed stores (/tmp/round/cache/birdnet_*) and the demo's mix
(/tmp/demo_mc/validation and its store): the first `birdkit demo --data-dir ../shared/data/minicomp --out
/tmp/demo_mc` writes those.

Every head picks its epoch on labelled mix soundscapes (epoch 0, the zero correction, competes). Three columns
of mix scores: "mix", the head that chose its epoch on all the mix files, scored on them (in selection, as
`birdkit train --validation-store` reports it); "out of selection", the mix files split in two halves, the head
that chose its epoch on one half scoring the other half alone, averaged over the two halves (a variant with a
noisy validation curve gets no credit for its best-of-20 pick); "wins", the share of paired bootstrap resamples
of the files on which head + file prior beats passthrough + file prior (the demo's ship gate asks 90%). The
test column is the in-selection head's. Scores are means over seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from birdkit import metrics
from birdkit.heads import model as heads
from birdkit.heads.card import TrainConfig
from birdkit.heads.residual import store_base
from birdkit.heads.selftrain import self_train
from birdkit.heads.train import train_head
from birdkit.infer import postprocess
from birdkit.mix import mixed_clips
from birdkit.store import Embeddings, load
from birdkit.store.labels import LabelSpec

PRIOR = {"file_prior": 1.05, "prior_mode": "mul"}
BASE = TrainConfig(loss="bce", head="linear", epochs=20, lr=1e-3, labels=LabelSpec())
# name -> (config changes, self-training rounds (None: plain train_head), power)
VARIANTS: dict[str, tuple[dict, int | None, float]] = {
    "residual head (BCE, lr 1e-3, 20 epochs)": ({}, None, 1.0),
    "+ label smoothing 0.1": ({"label_smoothing": 0.1}, None, 1.0),
    "+ mixup 0.4": ({"mixup": 0.4}, None, 1.0),
    "+ feature noise 0.1": ({"feature_noise": 0.1}, None, 1.0),
    "+ weak negatives 0.1": ({"weak_negatives": 0.1}, None, 1.0),
    "+ weak negatives 0.5": ({"weak_negatives": 0.5}, None, 1.0),
    "+ balanced sampling": ({"balanced": True}, None, 1.0),
    "+ focal (gamma 2)": ({"loss": "focal"}, None, 1.0),
    "+ self-training (mixup 0.4 student, power 1)": ({"mixup": 0.4}, 2, 1.0),
    "+ self-training (mixup 0.4 student, power 2)": ({"mixup": 0.4}, 2, 2.0),
    "+ self-training (feature-noise 0.1 student, power 1)": ({"feature_noise": 0.1}, 2, 1.0),
    "+ self-training (feature-noise 0.1 student, power 2)": ({"feature_noise": 0.1}, 2, 2.0),
    "+ balanced + weak negatives 0.1": ({"balanced": True, "weak_negatives": 0.1}, None, 1.0),
    "+ balanced + weak negatives 0.1 + focal": ({"balanced": True, "weak_negatives": 0.1, "loss": "focal"}, None, 1.0),
    "+ balanced + weak negatives 0.1, self-training (feature-noise 0.1 student, power 2)": (
        {"balanced": True, "weak_negatives": 0.1, "feature_noise": 0.1}, 2, 2.0),
}  # fmt: skip


# with --train-mix: clips placed into soundscape background, labelled by the mixer, as extra training rows
TRAIN_MIX_VARIANTS: dict[str, tuple[dict, int | str | None, float]] = {
    "+ labelled training mix": ({}, "mix", 1.0),
    "+ balanced + weak negatives 0.1 + labelled training mix": ({"balanced": True, "weak_negatives": 0.1}, "mix", 1.0),
}  # fmt: skip


@dataclass
class FileScores:
    """Per-file probabilities of a labelled store with their labels: the competition score after a per-file
    post-processing spec, also on a resample of the files (what workflows/tune.py's Scored does on inference
    outputs; here on store rows, so no notebook run is needed)."""

    files: list[tuple[np.ndarray, np.ndarray]]  # (labels [n, S] bool, probs [n, S]) per file

    def score(self, spec: dict, pick: np.ndarray | None = None, fast: bool = False) -> float:
        """Macro ROC-AUC over species with a positive (scikit-learn's; ``fast``: the rank formula, equal up to
        rounding, for the bootstrap). A file drawn twice counts twice."""
        chosen = [self.files[i] for i in (range(len(self.files)) if pick is None else pick)]
        y = np.concatenate([f[0] for f in chosen])
        p = np.concatenate([postprocess.apply(spec, f[1]) for f in chosen])
        return (metrics.fast_competition_score if fast else metrics.competition_score)(y, p)


def file_scored(emb: Embeddings, probs: np.ndarray, truth: pd.DataFrame) -> FileScores:
    """A store's rows that have truth, grouped by file."""
    labels = dict(zip(truth["row_id"].astype(str), truth["labels"].astype(str), strict=True))
    frame = emb.frame.reset_index(drop=True)
    files = []
    for _, g in frame[frame["row_id"].astype(str).isin(labels)].groupby("file", sort=True):
        y = metrics.labels_matrix(pd.Series([labels[r] for r in g["row_id"].astype(str)]), list(emb.species))
        files.append((np.asarray(y, dtype=bool), np.asarray(probs)[g.index.to_numpy()]))
    return FileScores(files)


def paired_wins(a: FileScores, b: FileScores, spec: dict, resamples: int = 200, seed: int = 0) -> float:
    """Share of bootstrap resamples of the files on which ``a`` beats ``b``, both with ``spec`` (ties: half),
    as workflows/tune.py's paired_wins."""
    rng = np.random.default_rng(seed)
    wins = 0.0
    for _ in range(resamples):
        pick = rng.integers(0, len(a.files), len(a.files))
        sa, sb = a.score(spec, pick, fast=True), b.score(spec, pick, fast=True)
        wins += 1.0 if sa > sb else 0.5 if sa == sb else 0.0
    return wins / resamples


def head_probs(folder: Path, emb: Embeddings) -> np.ndarray:
    head, card = heads.load_head(folder)
    logits = heads.predict_logits(head, emb.embeddings)
    return expit(logits + (store_base(emb) if heads.is_residual(card.head) else 0.0))


def fit_variant(
    out: Path, config: TrainConfig, rounds: int | str | None, power: float, data: dict, val
) -> list[Path]:
    """The model folder(s) of one fit: [plain] or [round0, round1, ..] of self-training (each kept for the table);
    ``rounds="mix"``: the clips plus a labelled training mix's windows (``--train-mix``) with their labels."""
    common = {"exclude_files": data["held"], "validation": val, "progress": False}
    if rounds == "mix":
        if not (out / "card.json").exists():
            train_head(data["train"], out, config, soundscapes=data["train_mix"], **common)
        return [out]
    if rounds is None:
        if not (out / "card.json").exists():
            train_head(data["train"], out, config, **common)
        return [out]
    self_train(data["train"], data["sound"], out, config, rounds=rounds, power=power, **common)
    return [out / f"round{r}" for r in range(rounds + 1)]


def measure(
    head: FileScores, pt: FileScores, head_half: list[FileScores], pt_half: list[FileScores], test: FileScores
) -> dict:
    """A head's scores: on the whole mix set (in selection: its epoch was chosen there), the mean over the two
    halves of the mix files of the score of the head that chose its epoch on the other half (out of selection),
    raw and after the file prior; paired-bootstrap wins of head + prior over passthrough + prior (in selection:
    over all files; out of selection: the mean over halves); test, reported only."""
    return {
        "mix": head.score({}),
        "mix_prior": head.score(PRIOR),
        "wins": paired_wins(head, pt, PRIOR),
        "oos": float(np.mean([h.score({}) for h in head_half])),
        "oos_prior": float(np.mean([h.score(PRIOR) for h in head_half])),
        "oos_wins": float(
            np.mean([paired_wins(h, p, PRIOR) for h, p in zip(head_half, pt_half, strict=True)])
        ),
        "test": test.score({}),
        "test_prior": test.score(PRIOR),
    }


def prepare(data_dir: str, work: Path, demo_mix: str) -> None:
    """Build what the second run and ``--train-mix`` read: W/mix1 (a second validation mix, seed 1) and W/trainmix
    (48 soundscapes of the training clips left outside both mixes, through a folder of links), BirdNET-embedded."""
    from birdkit.mix import MixConfig, mix
    from birdkit.store.embed import embed_split

    if not (work / "mix1" / "test_labels_5s.csv").exists():
        mix(data_dir, work / "mix1", MixConfig(seed=1))
    held = mixed_clips(demo_mix) | mixed_clips(work / "mix1")
    src, farm = Path(data_dir).resolve(), work / "farm"
    if not farm.exists():
        farm.mkdir(parents=True)
        for f in src.iterdir():
            if f.name != "train_audio":
                (farm / f.name).symlink_to(f)
        for clip in sorted((src / "train_audio").glob("*/*")):
            rel = f"{clip.parent.name}/{clip.name}"
            if rel not in held:
                (farm / "train_audio" / clip.parent.name).mkdir(parents=True, exist_ok=True)
                (farm / "train_audio" / rel).symlink_to(clip)
    if not (work / "trainmix" / "test_labels_5s.csv").exists():
        mix(farm, work / "trainmix", MixConfig(seed=7, files=48, holdout=1.0))
    for name in ("mix1", "trainmix"):
        embed_split(work / name, "test_soundscapes", work / f"{name}_emb", progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/round/cache_12b")
    ap.add_argument("--train", default="/tmp/round/cache/birdnet_train")
    ap.add_argument("--test-store", default="/tmp/round/cache/birdnet_test")
    ap.add_argument("--soundscapes", default="/tmp/round/cache/birdnet_unlabeled")
    ap.add_argument("--mix-dir", default="/tmp/demo_mc/validation")
    ap.add_argument("--mix-store", default="/tmp/demo_mc/emb/validation")
    ap.add_argument("--truth", default="../shared/data/minicomp/test_labels_5s.csv")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="*", default=None, help="variant names (substrings) to run")
    ap.add_argument(
        "--train-mix",
        nargs=2,
        metavar=("MIX_DIR", "STORE"),
        help="a `birdkit mix` of training clips outside the validation mixes, and its store: adds the variants "
        "that train on its labelled windows beside the clips",
    )
    ap.add_argument("--extra", default=None, help="JSON {name: [config changes, rounds|null, power]} to add")
    ap.add_argument(
        "--prepare", metavar="DATA_DIR", help="build W/mix1 and W/trainmix (see prepare) and stop"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = Path(args.work)
    if args.prepare:
        prepare(args.prepare, work, args.mix_dir)
        return
    read = lambda p: pd.read_csv(p, dtype={"labels": str}, keep_default_na=False)  # noqa: E731
    data = {
        "train": load(args.train), "sound": load(args.soundscapes), "mix": load(args.mix_store),
        "test": load(args.test_store), "mix_truth": read(Path(args.mix_dir) / "test_labels_5s.csv"),
        "test_truth": read(args.truth), "held": mixed_clips(args.mix_dir),
    }  # fmt: skip
    mix_files = np.array(sorted(data["mix"].frame["file"].unique()))
    halves = [mix_files[0::2], mix_files[1::2]]
    row_file = dict(zip(data["mix"].frame["row_id"], data["mix"].frame["file"], strict=True))
    variants = dict(VARIANTS)
    if args.train_mix:
        tm_dir, tm_store = args.train_mix
        tm = load(tm_store)
        truth = read(Path(tm_dir) / "test_labels_5s.csv")
        labels = dict(zip(truth["row_id"], truth["labels"], strict=True))
        y = metrics.labels_matrix(pd.Series([labels[r] for r in tm.frame["row_id"]]), list(tm.species))
        data["train_mix"] = (tm, np.asarray(y, dtype=np.float32))
        variants.update(TRAIN_MIX_VARIANTS)
    if args.extra:
        variants.update({k: tuple(v) for k, v in json.loads(args.extra).items()})
    if args.only:
        variants = {k: v for k, v in variants.items() if any(s in k for s in args.only)}
    pt_mix, pt_test = expit(store_base(data["mix"])), expit(store_base(data["test"]))
    truths = [data["mix_truth"][data["mix_truth"]["row_id"].map(row_file).isin(h)] for h in halves]
    # out of selection: the head that chose its epoch on half h scores the other half's files, alone
    other = [truths[1], truths[0]]
    pt_all = file_scored(data["mix"], pt_mix, data["mix_truth"])
    pt_half = [file_scored(data["mix"], pt_mix, t) for t in other]
    test_pt = file_scored(data["test"], pt_test, data["test_truth"])
    results = {"BirdNET passthrough": [measure(pt_all, pt_all, pt_half, pt_half, test_pt)]}
    for name, (changes, rounds, power) in variants.items():
        for seed in args.seeds:
            config = replace(BASE, **changes, seed=seed)
            key = json.dumps([changes, rounds, power], sort_keys=True).encode()
            slug = f"{hashlib.sha256(key).hexdigest()[:10]}_s{seed}"
            full = fit_variant(
                work / slug / "full", config, rounds, power, data, (data["mix"], data["mix_truth"])
            )
            halves_fit = [
                fit_variant(work / slug / f"half{h}", config, rounds, power, data, (data["mix"], truths[h]))
                for h in range(2)
            ]
            for k, folder in enumerate(full):
                label = (
                    name
                    if not isinstance(rounds, int)
                    else f"{name}: round {k}" + (" (clips only)" if k == 0 else "")
                )
                head_all = file_scored(data["mix"], head_probs(folder, data["mix"]), data["mix_truth"])
                head_half = [
                    file_scored(data["mix"], head_probs(halves_fit[h][k], data["mix"]), other[h])
                    for h in range(2)
                ]
                test = file_scored(data["test"], head_probs(folder, data["test"]), data["test_truth"])
                results.setdefault(label, []).append(measure(head_all, pt_all, head_half, pt_half, test))
    table = []
    for label, runs in results.items():
        row = {
            "model": label,
            "seeds": len(runs),
            **{k: float(np.mean([r[k] for r in runs])) for k in runs[0]},
        }
        row["oos_prior_sd"] = float(np.std([r["oos_prior"] for r in runs]))
        table.append(row)
    print("| model | mix | mix + prior | wins | out of selection | + prior | wins | test | test + prior |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in table:
        print(f"| {r['model']} | {r['mix']:.4f} | {r['mix_prior']:.4f} | {r['wins']:.0%} | {r['oos']:.4f} | "
              f"{r['oos_prior']:.4f} ± {r['oos_prior_sd']:.4f} | {r['oos_wins']:.0%} | {r['test']:.4f} | "
              f"{r['test_prior']:.4f} |")  # fmt: skip
    print(f"\n{time.perf_counter() - t0:.0f} s, seeds {args.seeds}")
    out = work / ("ablation.json" if not args.only else f"ablation_{'_'.join(args.only)[:40]}.json")
    out.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
