"""The post-processing ablation (issue 12, items 2, 5, 6): passthrough, + file prior, + smoothing, +
co-occurrence prior, residual heads with their blend weight, an ensemble of two heads (mean vs rank mean), and
`birdkit tune`'s combination; every choice made on the `birdkit mix` set, a second mix set (other clips, other
backgrounds) and the test labels read only to print their columns. A paired bootstrap over the mix files
compares the tuned combinations with passthrough + file prior.

    python benchmarks/accuracy_postprocess.py --data-dir ../shared/data/minicomp --validation VAL \
        [--holdout VAL2] --heads DATASET --tag NAME --work W [--cooccurrence STORE ...] [--exclude-mixed]

``--heads``: an exported dataset with two (or more) heads (`birdkit export`) trained without the mix sets'
clips; each head alone is the dataset restricted to it. ``--cooccurrence``: stores whose pseudo-labels give the
rules (unlabeled and test soundscapes, training clips less the mix sets' with ``--exclude-mixed``). The models
score the audio once; their raw outputs are cached under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np

from birdkit.infer import postprocess as pp
from birdkit.infer.ensemble import Member, Raw, combine, fit_rank
from birdkit.infer.postprocess import describe
from birdkit.workflows.tune import (
    KERNELS,
    PRIOR_RANGE,
    Scored,
    TuneResult,
    mine_rules,
    paired_wins,
    score_raw,
    search,
)


def scored(work: Path, key: str, folder: str, models: str | None, passthrough: str | None) -> Scored:
    """Raw outputs, cached under ``work`` (the models score the audio once)."""
    path = work / f"scored_{key}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    s = score_raw(folder, models, passthrough)
    path.write_bytes(pickle.dumps(s))
    return s


def only(s: Scored, heads: list[str], rules: list | None = None) -> Scored:
    """The same outputs restricted to some heads (an ensemble of fewer)."""
    files = [(ids, Raw([m for m in raw.members if m.name in heads], raw.passthrough)) for ids, raw in s.files]
    return Scored(s.species, files, s.truth, list(rules if rules is not None else s.rules))


def grid(val: Scored, cands: list[dict]) -> dict:
    """The best of a few candidate specs on validation (first wins ties: put the simplest first)."""
    scores = [(val.score(c), -i) for i, c in enumerate(cands)]
    return cands[-max(scores)[1]]


def prior_grid() -> list[dict]:
    return [{}] + [
        {"file_prior": round(a * 0.05, 2), "prior_mode": m}
        for m, (lo, hi) in PRIOR_RANGE.items()
        for a in range(int(lo / 0.05) + 1, int(hi / 0.05) + 1)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--validation", required=True, help="the mix set every choice is made on")
    ap.add_argument(
        "--holdout", default=None, help="a second mix set (other clips, other seed): reported only"
    )
    ap.add_argument("--heads", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--tag", default="two", help="cache key of the heads' raw outputs under --work")
    ap.add_argument("--cooccurrence", nargs="*", default=[])
    ap.add_argument("--exclude-mixed", action="store_true", help="leave the mix sets' clips out of the rules")
    ap.add_argument("--threshold", type=float, default=0.3)
    ap.add_argument("--min-count", type=int, default=1)
    ap.add_argument("--trials", type=int, default=60)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    from birdkit.mix import mixed_clips

    sets = {"val": args.validation, "test": args.data_dir}
    if args.holdout:
        sets["holdout"] = args.holdout
    held: set[str] = set()
    if args.exclude_mixed:
        for k in ("val", "holdout"):
            held |= set(mixed_clips(sets[k])) if k in sets else set()
    rules = (
        mine_rules(args.cooccurrence, args.threshold, min_count=args.min_count, exclude_files=held)
        if args.cooccurrence
        else []
    )
    pt = {k: only(scored(work, f"pt_{k}", d, None, "birdnet"), [], rules) for k, d in sets.items()}
    hd = {k: scored(work, f"{args.tag}_{k}", d, args.heads, None) for k, d in sets.items()}
    names = hd["val"].heads
    rows: list[tuple[str, dict[str, Scored], dict]] = []
    pv = pt["val"]
    rows.append(("BirdNET passthrough", pt, {}))
    prior = grid(pv, prior_grid())
    rows.append(("passthrough + file prior (grid)", pt, prior))
    recipe = {"file_prior": 1.05, "prior_mode": "mul"}
    rows.append(("passthrough + file prior mul 1.05 (the current recipe)", pt, recipe))
    rows.append(("passthrough + smoothing (grid)", pt, grid(pv, [{}] + [{"kernel": k} for k in KERNELS[1:]])))
    if rules:
        co = [{}] + [{"cooccur": {"weight": b / 20, "rules": rules}} for b in range(1, 21)]
        rows.append((f"passthrough + co-occurrence prior ({len(rules)} rules, grid)", pt, grid(pv, co)))
        rows.append(
            ("passthrough + file prior + co-occurrence (grid)", pt, grid(pv, [{**prior, **c} for c in co]))
        )
    tuned_pt = search(pv, args.trials)
    rows.append(("passthrough, tuned (Optuna)", pt, tuned_pt.best))
    for h in names:
        one = {k: only(v, [h], rules) for k, v in hd.items()}
        rows.append((f"residual head {h}", one, {}))
        blends = [{}] + [{"blend": w / 10} for w in range(0, 16) if w != 10]
        rows.append((f"residual head {h} + blend (grid)", one, grid(one["val"], blends)))
        rows.append((f"residual head {h}, tuned (Optuna)", one, search(one["val"], args.trials).best))
    ens = {k: only(v, names, rules) for k, v in hd.items()}
    label = " + ".join(names)
    rows.append((f"ensemble {label}: mean", ens, {}))
    rank = {"ensemble": "rank", "rank": fit_rank([raw for _, raw in ens["val"].files])}
    rows.append((f"ensemble {label}: rank mean", ens, rank))
    tuned = search(ens["val"], args.trials)
    rows.append((f"ensemble {label}, tuned (Optuna)", ens, tuned.best))

    cols = [k for k in ("val", "holdout", "test") if k in sets]
    heads_ = {
        "val": "mix validation",
        "holdout": "second mix set",
        "test": f"{Path(args.data_dir).name} test",
    }
    print(
        "| model and post-processing | chosen on the mix set | " + " | ".join(heads_[c] for c in cols) + " |"
    )
    print("| --- | --- | " + " | ".join("---:" for _ in cols) + " |")
    out = []
    for label, data, spec in rows:
        sc = {c: data[c].score(spec) for c in cols}
        print(f"| {label} | {describe(spec)} | " + " | ".join(f"{sc[c]:.4f}" for c in cols) + " |")
        out.append({"row": label, "spec": {k: v for k, v in spec.items() if k != "rank"}, **sc})
    wins = {}
    for c in [c for c in ("val", "holdout") if c in sets]:
        base = TuneResult(prior, 0.0, 0.0, scored=pt[c])
        for name, r, data in (("ensemble tuned", tuned, ens), ("passthrough tuned", tuned_pt, pt)):
            mine = TuneResult(r.best, 0.0, 0.0, scored=data[c])
            wins[f"{name} vs passthrough + file prior ({c})"] = paired_wins(mine, base, resamples=200)
    print("\npaired bootstrap over the mix files (200 resamples), share of wins:")
    for k, v in wins.items():
        print(f"  {k}: {v:.1%}")
    print("\ncomponents of the ensemble's tuning (best trial on / off, choice without it):")
    for c in tuned.components:
        print(f"  {c}")
    print("\nper-file cost of the tuned ensemble's combination + post-processing (numpy):")
    spec = pp.bind(tuned.best if "ensemble" in tuned.best else {**tuned.best, **rank}, ens["val"].species)
    raw = ens["val"].files[0][1]
    for n_chunks in (24, 48):
        big = Raw(
            [
                Member(
                    m.name,
                    np.tile(m.values, (2, 1))[:n_chunks],
                    m.is_logits,
                    None if m.base is None else np.tile(m.base, (2, 1))[:n_chunks],
                )
                for m in raw.members
            ]
        )
        t = []
        for _ in range(200):
            t1 = time.perf_counter()
            pp.apply(spec, combine(spec, big))
            t.append(time.perf_counter() - t1)
        print(f"  {n_chunks} chunks: median {1e3 * np.median(t):.2f} ms ({pp.describe(spec)})")
    print(f"\n{time.perf_counter() - t0:.0f} s; rules: {len(rules)}")
    (work / f"accuracy_postprocess_{args.tag}.json").write_text(
        json.dumps({"rows": out, "wins": wins, "components": tuned.components, "rules": rules}, indent=1)
    )


if __name__ == "__main__":
    main()
