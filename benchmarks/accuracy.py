"""The accuracy ablation (issue 12), in the paper's style: each component on and off, scored on the mixed
validation set (where every choice is made) and on the competition's labelled test soundscapes (reported only).

    python benchmarks/accuracy.py --data-dir ../shared/data/minicomp --work /tmp/acc \
        [--head-dataset demo_out/dataset] [--trials 40]

Every post-processing parameter is chosen on the `birdkit mix` set; the test labels are read only to print the
right-hand column. ``--head-dataset``: an exported head (e.g. `birdkit demo`'s) to ablate beside passthrough.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from birdkit.infer.postprocess import describe
from birdkit.mix import MixConfig, mix
from birdkit.workflows.tune import score_raw, search


def ablate(name: str, val, test, trials: int, seed: int) -> list[dict]:
    """Rows for one model: raw, each lever alone (chosen on validation with the other off), both."""
    full = search(val, trials, seed).best
    smooth_only = {k: v for k, v in full.items() if k == "kernel"}
    prior_only = {k: v for k, v in full.items() if k != "kernel"}
    best_kernel = search_subset(val, trials, seed, "kernel")
    best_prior = search_subset(val, trials, seed, "prior")
    rows = []
    for label, spec in [
        ("raw", {}),
        ("smoothing only (own tuning)", best_kernel),
        ("file prior only (own tuning)", best_prior),
        ("tuned: smoothing part", smooth_only),
        ("tuned: prior part", prior_only),
        ("tuned: both", full),
    ]:
        rows.append(
            {
                "model": name,
                "post-processing": f"{label}: {describe(spec)}",
                "validation": val.score(spec),
                "test": test.score(spec) if test is not None else None,
                "spec": spec,
            }
        )
    return rows


def search_subset(val, trials: int, seed: int, lever: str) -> dict:
    """The best spec using one lever only (a grid: the same candidates the tuner draws from)."""
    from birdkit.workflows.tune import KERNELS, PRIOR_RANGE

    if lever == "kernel":
        cands = [{"kernel": k} for k in KERNELS]
    else:
        cands = [
            {"file_prior": round(a * 0.05, 2), "prior_mode": m}
            for m, (lo, hi) in PRIOR_RANGE.items()
            for a in range(int(lo / 0.05), int(hi / 0.05) + 1)
        ]
    scored = [(val.score(c), -i, c) for i, c in enumerate(cands)]
    return max(scored)[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--head-dataset", default=None)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mix-seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(args.work)
    val_dir = work / f"mix_seed{args.mix_seed}"
    t0 = time.perf_counter()
    if not (val_dir / "test_labels_5s.csv").exists():
        mix(args.data_dir, val_dir, MixConfig(seed=args.mix_seed))
    has_test = (Path(args.data_dir) / "test_labels_5s.csv").exists()
    models = [("BirdNET passthrough", None, "birdnet")]
    if args.head_dataset:
        models.append(("head (" + Path(args.head_dataset).name + ")", args.head_dataset, None))
    rows = []
    for name, ds, pt in models:
        val = score_raw(val_dir, ds, pt)
        test = score_raw(args.data_dir, ds, pt) if has_test else None
        rows += ablate(name, val, test, args.trials, args.seed)
    print(
        f"| model | post-processing (chosen on the mix set) | mix validation | {Path(args.data_dir).name} test |"
    )
    print("| --- | --- | ---: | ---: |")
    for r in rows:
        t = f"{r['test']:.4f}" if r["test"] is not None else "-"
        print(f"| {r['model']} | {r['post-processing']} | {r['validation']:.4f} | {t} |")
    print(f"\n{time.perf_counter() - t0:.0f} s; validation: {val_dir}")
    (work / f"accuracy_seed{args.mix_seed}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
