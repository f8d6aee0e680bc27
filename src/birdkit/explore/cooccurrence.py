"""Species co-occurrence: FP-growth frequent itemsets (Table 2), their sizes (Figure 3) and association rules
(Figure 6), saved as data so a later stage can use them as a co-occurrence prior.

A transaction is the set of species predicted in one recording (default; the paper counts itemsets per recording,
"four to six species per recording") or in one 5 s window. Transactions with no species carry no co-occurrence
and are left out, so support is a share of transactions *with a call*.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from birdkit.explore.figures import message_axes, plt, save

LEVELS = ("recording", "window")
RULE_COLUMNS = [
    "antecedents",
    "consequents",
    "count",
    "support",
    "confidence",
    "lift",
    "antecedent support",
    "consequent support",
]
MAX_GRAPH_EDGES = 120


def transactions(y_hat: np.ndarray, species: list[str], groups: np.ndarray | None = None) -> pd.DataFrame:
    """Bool basket table: a row per window, or per group (species predicted in any of its windows).

    Only rows with at least one species and columns of species predicted at least once are kept.
    """
    df = pd.DataFrame(np.asarray(y_hat, dtype=bool), columns=list(species))
    if groups is not None:
        df = df.groupby(np.asarray(groups), sort=True).any()
    df = df.loc[df.any(axis=1), df.any(axis=0)]
    return df.reset_index(drop=True)


@dataclass
class Mined:
    """FP-growth result for one dataset."""

    n_transactions: int
    min_support: float  # the effective one, after the min_count floor
    itemsets: pd.DataFrame  # items (tuple, sorted), size, count, support
    rules: pd.DataFrame  # RULE_COLUMNS; antecedents/consequents are sorted tuples
    basket_sizes: np.ndarray  # species per transaction


def _empty_itemsets() -> pd.DataFrame:
    return pd.DataFrame({"items": pd.Series([], dtype=object), "size": [], "count": [], "support": []})


def _empty_rules() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series([], dtype=object if c.endswith("cedents") else float) for c in RULE_COLUMNS}
    )


def mine(
    tx: pd.DataFrame,
    min_support: float = 0.01,
    min_count: int = 2,
    max_len: int | None = None,
    min_confidence: float = 0.8,
) -> Mined:
    """Frequent itemsets and rules at `min_confidence`.

    The support floor is max(min_support, min_count / n): on small datasets a pattern seen once is not a pattern,
    and a one-transaction dataset would otherwise turn every subset into a rule of confidence 1.
    """
    from mlxtend.frequent_patterns import association_rules, fpgrowth

    n = len(tx)
    sizes = tx.sum(axis=1).to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    floor = max(float(min_support), (min_count / n) if n else 1.0)
    if n == 0 or floor > 1.0 or tx.shape[1] == 0:
        return Mined(n, min(floor, 1.0), _empty_itemsets(), _empty_rules(), sizes)
    raw = fpgrowth(tx.astype(bool), min_support=floor, use_colnames=True, max_len=max_len)
    if raw.empty:
        return Mined(n, floor, _empty_itemsets(), _empty_rules(), sizes)
    items = [tuple(sorted(s)) for s in raw["itemsets"]]
    itemsets = pd.DataFrame(
        {
            "items": items,
            "size": [len(i) for i in items],
            "count": np.rint(raw["support"].to_numpy() * n).astype(np.int64),
            "support": raw["support"].to_numpy(),
        }
    )
    itemsets["_key"] = [" ".join(i) for i in items]
    itemsets = itemsets.sort_values(["count", "size", "_key"], ascending=[False, True, True]).drop(
        columns="_key"
    )
    rules = _empty_rules()
    if (itemsets["size"] > 1).any():
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # mlxtend warns about metrics (zhangs, certainty) that divide by zero
            r = association_rules(raw, num_itemsets=n, metric="confidence", min_threshold=min_confidence)
        if not r.empty:
            r = r.assign(
                antecedents=[tuple(sorted(s)) for s in r["antecedents"]],
                consequents=[tuple(sorted(s)) for s in r["consequents"]],
                count=np.rint(r["support"].to_numpy() * n).astype(np.int64),
            )[RULE_COLUMNS]
            r["_a"] = [" ".join(a) for a in r["antecedents"]]
            r["_c"] = [" ".join(c) for c in r["consequents"]]
            rules = r.sort_values(
                ["confidence", "lift", "support", "_a", "_c"], ascending=[False, False, False, True, True]
            ).drop(columns=["_a", "_c"])
    return Mined(n, floor, itemsets.reset_index(drop=True), rules.reset_index(drop=True), sizes)


def itemset_table(m: Mined, n: int) -> pd.DataFrame:
    """Top-n itemsets as the paper's Table 2: items in brackets, and their count."""
    top = m.itemsets.head(n)
    return pd.DataFrame(
        {
            "items": ["[" + ", ".join(i) + "]" for i in top["items"]],
            "transactions": top["count"].astype(int).to_numpy(),
            "support": top["support"].round(4).to_numpy(),
        }
    )


def rules_records(rules: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All datasets' rules as one flat table (space-separated species) for CSV/Parquet."""
    frames = []
    for ds, r in rules.items():
        f = r.copy()
        f.insert(0, "dataset", ds)
        f["antecedents"] = [" ".join(a) for a in f["antecedents"]]
        f["consequents"] = [" ".join(c) for c in f["consequents"]]
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["dataset", *RULE_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    out["count"] = out["count"].astype(np.int64)
    return out


def plot_itemset_sizes(mined: dict[str, Mined], path: Path, level: str) -> Path:
    """Figure 3: normalised sizes of the frequent itemsets, next to the species per transaction they come from."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = list(mined)
    width = 0.8 / max(1, len(names))
    for ax, what in zip(axes, ("itemsets", "baskets"), strict=True):
        sizes = {
            ds: (m.itemsets["size"].to_numpy(dtype=np.int64) if what == "itemsets" else m.basket_sizes)
            for ds, m in mined.items()
        }
        top = max((int(s.max()) for s in sizes.values() if len(s)), default=0)
        if top == 0:
            message_axes(ax, "no frequent itemsets" if what == "itemsets" else "no transaction with a call")
        else:
            x = np.arange(1, top + 1)
            for i, (ds, s) in enumerate(sizes.items()):
                share = np.bincount(s, minlength=top + 1)[1:] / max(1, len(s))
                ax.bar(x + (i - (len(names) - 1) / 2) * width, share, width, label=f"{ds} (n={len(s)})")
            ax.set_xticks(x)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("share")
            ax.legend()
            ax.grid(axis="y", alpha=0.3)
        if what == "itemsets":
            ax.set_xlabel("itemset size (species)")
            ax.set_title("Sizes of frequent itemsets (FP-growth)")
        else:
            ax.set_xlabel(f"species predicted per {level} with a call")
            ax.set_title(f"Species per {level} (transactions)")
    fig.suptitle(f"Co-occurrence: itemset sizes per dataset ({level} transactions)")
    fig.tight_layout()
    return save(fig, path)


def rule_graph(rules: pd.DataFrame) -> nx.DiGraph:
    """Figure 6's graph: rules with one species as antecedent, an edge to each consequent species.

    An edge reached by several rules keeps its highest confidence.
    """
    g = nx.DiGraph()
    for a, cs, conf, lift in rules[["antecedents", "consequents", "confidence", "lift"]].itertuples(
        index=False
    ):
        if len(a) != 1:
            continue
        for c in cs:
            old = g.get_edge_data(a[0], c)
            if old is None or conf > old["confidence"]:
                g.add_edge(a[0], c, confidence=float(conf), lift=float(lift))
    return g


def plot_rule_graphs(rules: dict[str, pd.DataFrame], path: Path, min_confidence: float, seed: int) -> Path:
    """One directed graph per dataset; edge width and colour show confidence (one scale for all panels)."""
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    names = list(rules) or ["(no dataset)"]
    cmap = LinearSegmentedColormap.from_list("confidence", ["#9ecae1", "#08306b"])
    norm = Normalize(min_confidence, 1.0)
    fig, axes = plt.subplots(
        1, len(names), figsize=(6.0 * len(names) + 1, 6), squeeze=False, layout="constrained"
    )
    for ax, ds in zip(axes[0], names, strict=True):
        g = rule_graph(rules[ds]) if ds in rules else nx.DiGraph()
        if g.number_of_edges() == 0:
            message_axes(ax, f"no rule with a single-species antecedent\nat confidence ≥ {min_confidence:g}")
            ax.set_title(ds)
            continue
        note = ""
        if g.number_of_edges() > MAX_GRAPH_EDGES:
            keep = sorted(g.edges(data=True), key=lambda e: (-e[2]["confidence"], -e[2]["lift"], e[0], e[1]))
            g = nx.DiGraph()
            g.add_edges_from(keep[:MAX_GRAPH_EDGES])
            note = f", strongest {MAX_GRAPH_EDGES} edges"
        pos = nx.spring_layout(g, seed=seed, k=1.5 / np.sqrt(max(1, g.number_of_nodes())))
        conf = [d["confidence"] for _, _, d in g.edges(data=True)]
        nx.draw_networkx_nodes(g, pos, ax=ax, node_size=1100, node_color="#fdf1d6", edgecolors="#b07a1a")
        nx.draw_networkx_labels(g, pos, ax=ax, font_size=8)
        nx.draw_networkx_edges(
            g,
            pos,
            ax=ax,
            edge_color=conf,
            edge_cmap=cmap,
            edge_vmin=min_confidence,
            edge_vmax=1.0,
            width=[1 + 2.5 * float(norm(c)) for c in conf],
            arrowsize=16,
            node_size=1100,
            connectionstyle="arc3,rad=0.08",
        )
        ax.margins(0.15)
        ax.set_title(f"{ds}: {g.number_of_edges()} edges, {g.number_of_nodes()} species{note}")
        ax.axis("off")
    fig.colorbar(
        plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=axes[0].tolist(), shrink=0.5, label="confidence"
    )
    fig.suptitle(
        f"Association rules (confidence ≥ {min_confidence:g}): antecedent species → consequent species"
    )
    return save(fig, path)
