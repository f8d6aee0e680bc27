"""The paper's experiment grids (Tables 3-5), run with ``train_head``, written as one results table.

Grids (each crossed with the label modes, by default ŷ and ŷ_species):

``loss``       linear head, BCE and ASL (defaults)                                   Table 3
``asl``        256-unit hidden layer, ASL with γ+ ∈ {0, 1} x γ- ∈ {0, 2, 4}           Table 4
``sigmoidf1``  linear head, sigmoidF1 with S ∈ {-1, -15, -30} x E ∈ {0, 1}          section 5.4.3
``encoders``   every store given (one per encoder), linear head, BCE / ASL / sigmoidF1  Table 5

The first three run on the first store. A configuration two grids share runs once and lists both grids.
``results.csv`` and ``results.md`` are rewritten (atomically) after every run, so a stopped sweep keeps what it did.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from birdkit.errors import OptionError
from birdkit.heads.card import TrainConfig
from birdkit.heads.losses import loss_params
from birdkit.heads.train import train_head
from birdkit.io import atomic_write_bytes
from birdkit.store import Embeddings, StoreError, load
from birdkit.store.labels import FOLDER_MODES, LabelSpec

log = logging.getLogger(__name__)

GRIDS = ("loss", "asl", "sigmoidf1", "encoders")
LABEL_MODES = ("none", "call")


@dataclass
class RunConfig:
    """One training run of a sweep."""

    store: int  # index into the stores given
    loss: str
    params: dict
    head: str
    hidden: int | None
    label_mode: str
    grids: list[str] = field(default_factory=list)

    def key(self) -> tuple:
        return (
            self.store,
            self.loss,
            tuple(sorted(self.params.items())),
            self.head,
            self.hidden,
            self.label_mode,
        )

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """``base`` (the optimisation options) with this run's head, loss and labels; the paper's plain heads
        (random start, no residual over the encoder's logits), so the grids reproduce its tables."""
        return replace(
            base,
            loss=self.loss,
            loss_params=self.params,
            head=self.head,
            hidden=self.hidden,
            labels=LabelSpec(folder=self.label_mode),
            init="random",
            residual="off",
        )


def _runs_for(grid: str, n_stores: int, label_modes: Sequence[str]) -> list[RunConfig]:
    out: list[RunConfig] = []
    for mode in label_modes:
        if grid == "loss":
            out += [RunConfig(0, loss, {}, "linear", None, mode) for loss in ("bce", "asl")]
        elif grid == "asl":
            out += [
                RunConfig(0, "asl", {"gamma_neg": gn, "gamma_pos": gp}, "mlp", 256, mode)
                for gp in (0.0, 1.0)
                for gn in (0.0, 2.0, 4.0)
            ]
        elif grid == "sigmoidf1":
            out += [
                RunConfig(0, "sigmoidf1", {"S": s, "E": e}, "linear", None, mode)
                for s in (-1.0, -15.0, -30.0)
                for e in (0.0, 1.0)
            ]
        elif grid == "encoders":
            out += [
                RunConfig(i, loss, {}, "linear", None, mode)
                for i in range(n_stores)
                for loss in ("bce", "asl", "sigmoidf1")
            ]
        else:
            raise OptionError(f"--grids {grid!r}: unknown grid; choose from {', '.join(GRIDS)}")
    return out


def plan(
    grids: Sequence[str], n_stores: int = 1, label_modes: Sequence[str] = LABEL_MODES
) -> list[RunConfig]:
    """The runs of the chosen grids, in grid order, each distinct configuration once."""
    for mode in label_modes:
        if mode not in FOLDER_MODES:
            raise OptionError(f"--label-modes {mode!r}: choose from {', '.join(FOLDER_MODES)}")
    runs: dict[tuple, RunConfig] = {}
    for grid in grids:
        for r in _runs_for(grid, n_stores, label_modes):
            # Normalise: a grid naming a loss's default value is the same run as one naming none.
            r.params = {k: v for k, v in r.params.items() if loss_params(r.loss).get(k) != v}
            runs.setdefault(r.key(), r).grids.append(grid)
    return list(runs.values())


def _run_name(encoder: str, r: RunConfig) -> str:
    params = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in sorted(r.params.items()))
    head = r.head if r.hidden is None else f"{r.head}{r.hidden}"
    name = "_".join(p for p in (encoder, head, r.loss, params, LabelSpec(folder=r.label_mode).name) if p)
    return re.sub(r"[^A-Za-z0-9_.+-]", "", name)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4f}"
    return "" if v is None else str(v)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


TABLE_COLUMNS = {
    "grids": "Grid",
    "encoder": "Encoder",
    "head": "Head",
    "loss": "Loss",
    "hyperparameters": "Hyperparameters",
    "labels": "Labels",
    "val_f1": "Val F1",
    "val_roc_auc": "Val AU-ROC",
    "val_map": "Val mAP",
    "test_roc_auc": "Test AU-ROC",
    "best_epoch": "Best epoch",
    "seconds": "Seconds",
}


def write_results(rows: list[dict], out: Path, title: str = "birdkit sweep") -> None:
    df = pd.DataFrame(rows)
    atomic_write_bytes(out / "results.csv", df.to_csv(index=False).encode())
    cols = [c for c in TABLE_COLUMNS if c in df.columns and not (c == "test_roc_auc" and df[c].isna().all())]
    table = df[cols].copy()
    table["seconds"] = table["seconds"].map(lambda v: f"{v:.1f}")
    md = f"# {title}\n\n" + to_markdown(table.rename(columns=TABLE_COLUMNS))
    atomic_write_bytes(out / "results.md", md.encode())


def run_sweep(
    stores: Sequence[str | Path | Embeddings],
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    grids: Sequence[str] = GRIDS,
    label_modes: Sequence[str] = LABEL_MODES,
    tests: Sequence[str | Path | Embeddings] = (),
    truth: pd.DataFrame | None = None,
    max_runs: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the grids and write ``out/results.{csv,md}`` and each run's model under ``out/models/``.

    ``config``: the optimisation options every run shares (epochs, lr, seed, ...); each grid point sets its
    head, loss and labels on top. ``tests``: stores of held-out windows with ground truth ``truth``, matched to
    the training stores by encoder; each run is then also scored on them (the stand-in for the paper's
    leaderboard columns).
    """
    base = config or TrainConfig()
    out = Path(out)
    if not stores:
        raise OptionError("give at least one embedding store")
    runs = plan(grids, len(stores), label_modes)  # bad grids or modes fail before any store is read
    if max_runs is not None:
        runs = runs[:max_runs]
    embs = [s if isinstance(s, Embeddings) else load(s) for s in stores]
    test_embs = [t if isinstance(t, Embeddings) else load(t) for t in tests]
    if test_embs and truth is None:
        raise OptionError("--test-store needs --truth (row_id, labels), e.g. test_labels_5s.csv")
    test_for: dict[int, Embeddings] = {}
    for i, e in enumerate(embs):
        match = [t for t in test_embs if t.meta.encoder == e.meta.encoder]
        if test_embs and not match:
            raise StoreError(
                f"{e.root}: no test store with its encoder among {[str(t.root) for t in test_embs]}"
            )
        if match:
            test_for[i] = match[0]
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    bar = tqdm(runs, desc="sweep", unit="run", disable=not progress)
    for r in bar:
        emb = embs[r.store]
        encoder = emb.meta.encoder_name
        name = _run_name(encoder, r)
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        card = train_head(
            emb,
            out / "models" / name,
            r.train_config(base),
            test=(test_for[r.store], truth) if r.store in test_for else None,
            name=name,
            progress=False,
        )
        val, test = card.metrics.get("val", {}), card.metrics.get("test", {})
        params = {k: v for k, v in card.loss.items() if k != "name"}
        rows.append(
            {
                "name": name,
                "grids": ",".join(r.grids),
                "encoder": encoder,
                "store": str(emb.root),
                "head": r.head if r.hidden is None else f"{r.head} {r.hidden}",
                "loss": r.loss,
                "hyperparameters": " ".join(
                    f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                ),
                "labels": LabelSpec(folder=r.label_mode).name,
                "val_f1": val.get("f1"),
                "val_roc_auc": val.get("roc_auc"),
                "val_map": val.get("map"),
                "test_roc_auc": test.get("roc_auc"),
                "test_f1": test.get("f1"),
                "best_epoch": card.metrics["best_epoch"],
                "seconds": round(time.perf_counter() - t0, 2),
                "model": str(out / "models" / name),
            }
        )
        write_results(rows, out)
    return pd.DataFrame(rows)
