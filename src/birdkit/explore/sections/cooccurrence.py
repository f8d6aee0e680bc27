"""Section 2: co-occurrence by FP-growth, itemsets and association rules (the paper's Table 2, Figures 3, 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdkit.explore import cooccurrence as co
from birdkit.explore.datasets import Dataset
from birdkit.explore.markdown import image, table
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.output import ReportOutput


def cooccurrence_section(
    rep: ReportOutput, source: list[Dataset], y_hats: dict[str, np.ndarray], opt: ExploreOptions
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
