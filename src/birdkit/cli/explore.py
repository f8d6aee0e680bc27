"""`birdkit explore EMB_DIR... --out reports/NAME`: embedding stores -> Markdown report with figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdkit.cli.options import out_folder, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore",
        help="report on embedding stores: species frequency, co-occurrence, maps, clusters, output spaces",
        description="Species frequency and call share, FP-growth co-occurrence and rules, PaCMAP/UMAP maps and "
        "k-means clusters of one or more embedding stores (any encoders, any splits); with --data-dir, output spaces "
        "compared against a mel-spectrogram baseline, and an SSL store's attention maps; as report.md + PNGs.",
    )
    p.add_argument("stores", nargs="+", metavar="EMB_DIR", help="store folders written by `birdkit embed`")
    p.add_argument("--out", required=True, help="report folder (created; files in it are replaced)")
    p.add_argument("--data-dir", default=None, help="competition folder: audio for the contact sheets, names")
    p.add_argument("--threshold", type=float, default=0.5, help="σ(logit) threshold for a prediction (0.5)")
    p.add_argument(
        "--top-n", type=positive_int, default=10, help="rows of the frequency and itemset tables (10)"
    )
    g = p.add_argument_group("co-occurrence")
    g.add_argument("--transactions", default="recording", choices=["recording", "window"], help="basket unit")
    g.add_argument("--min-support", type=float, default=0.01, help="FP-growth minimum support (0.01)")
    g.add_argument("--min-count", type=int, default=2, help="minimum transactions for an itemset (2)")
    g.add_argument("--max-len", type=int, default=None, help="largest itemset size (no limit)")
    g.add_argument("--min-confidence", type=float, default=0.8, help="association rule confidence (0.8)")
    g = p.add_argument_group("maps")
    g.add_argument("--projection", default="pacmap", choices=["pacmap", "umap"], help="umap needs umap-learn")
    g.add_argument("--map-level", default="window", choices=["window", "recording"])
    g.add_argument("--map-top-n", type=positive_int, default=10, help="species coloured per map (10)")
    g.add_argument("--map-max-points", type=int, default=20_000, help="seeded subsample per map (20000)")
    g = p.add_argument_group("clusters")
    g.add_argument("--clusters", type=int, default=100, help="k-means k, lowered on small stores (100)")
    g.add_argument("--cluster-sample", type=int, default=50_000, help="windows k-means is fitted on (50000)")
    g.add_argument(
        "--examples", type=int, default=4, help="spectrograms per cluster on the contact sheet (4)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.explore.report import ExploreOptions, explore

    out_folder(args.out)

    opt = ExploreOptions(
        threshold=args.threshold,
        top_n=args.top_n,
        transactions=args.transactions,
        min_support=args.min_support,
        min_count=args.min_count,
        max_len=args.max_len,
        min_confidence=args.min_confidence,
        projection=args.projection,
        map_level=args.map_level,
        map_top_n=args.map_top_n,
        map_max_points=args.map_max_points,
        clusters=args.clusters,
        cluster_sample=args.cluster_sample,
        examples=args.examples,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        seed=args.seed,
        progress=not args.no_progress,
    )
    r = explore(args.stores, args.out, opt)
    print(f"{r.report}: {len(r.figures)} figures, {len(r.tables)} tables in {r.seconds:.1f} s")
    for ds, share in r.summary.get("call_share", {}).items():
        print(f"  {ds}: {100 * share:.1f}% of windows with a call")
    for enc, c in r.summary.get("clusters", {}).items():
        for scope, s in c["scores"].items():
            print(
                f"  {enc} k={c['k']} {scope}: purity {s['purity']:.3f} "
                f"(random {s['random_purity']:.3f}), AMI {s['ami']:.3f}"
            )
    return 0
