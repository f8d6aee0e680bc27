"""`explore`: embedding stores in, one Markdown report with PNG figures and CSV/Parquet tables out.

Sections: species frequency and call share (paper Table 1, Figure 2), co-occurrence by FP-growth (Table 2,
Figures 3 and 6, rules saved as a prior), 2-D maps per encoder (Figures 1 and 5), k-means clusters scored
against folder labels and pseudo-labels, with spectrogram contact sheets (the self-supervised poster), output
spaces compared side by side with a mel-spectrogram baseline and a linear probe, and the attention maps of a
self-supervised (`ssl`) encoder with their call mask scored against the surrogate.
Everything random is seeded, so a report is reproducible from its stores and options.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from birdkit.explore.datasets import label_source, load_datasets
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.attention import attention_section
from birdkit.explore.sections.clusters import clusters_section
from birdkit.explore.sections.cooccurrence import cooccurrence_section
from birdkit.explore.sections.frequency import frequency_section
from birdkit.explore.sections.header import header
from birdkit.explore.sections.maps import maps_section
from birdkit.explore.sections.output import ReportOutput
from birdkit.explore.sections.spaces import spaces_section
from birdkit.io import atomic_write_bytes, atomic_write_json

__all__ = ["ExploreOptions", "ExploreResult", "explore"]


@dataclass
class ExploreResult:
    out: Path
    report: Path
    figures: list[Path]
    tables: list[Path]
    summary: dict
    seconds: float


def explore(paths: list[str | Path], out: str | Path, options: ExploreOptions | None = None) -> ExploreResult:
    """Write `report.md`, its figures, tables and `summary.json` to `out`."""
    opt = options or ExploreOptions()
    opt.check()
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = ReportOutput(out)
    steps = ["load", "frequency", "co-occurrence", "maps", "clusters", "spaces", "attention", "report"]
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
    source = label_source(datasets)
    step("load")

    bar.set_postfix_str("species frequency")
    sections = [header(datasets, source, opt, out)]
    y_hats = {d.split: d.predicted(opt.threshold) for d in source}
    sections.append(frequency_section(rep, source, y_hats, opt, names))
    step("frequency")

    bar.set_postfix_str("co-occurrence (FP-growth)")
    sections.append(cooccurrence_section(rep, source, y_hats, opt))
    step("co-occurrence")

    bar.set_postfix_str(f"maps ({opt.projection})")
    sections.append(maps_section(rep, datasets, source, opt, names))
    step("maps")

    bar.set_postfix_str("k-means clusters")
    sections.append(clusters_section(rep, datasets, source, opt))
    step("clusters")

    bar.set_postfix_str("output spaces")
    sections.append(spaces_section(rep, datasets, source, opt))
    step("spaces")

    bar.set_postfix_str("attention maps")
    sections.append(attention_section(rep, datasets, source, opt))
    step("attention")

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


def _common_names(data_dir: Path | None) -> dict[str, str]:
    """eBird code -> common name from the competition taxonomy, when a data folder with one is given."""
    if data_dir is None:
        return {}
    p = Path(data_dir) / "eBird_Taxonomy_v2021.csv"
    if not p.exists():
        return {}
    tax = pd.read_csv(p, usecols=["SPECIES_CODE", "PRIMARY_COM_NAME"])
    return dict(zip(tax["SPECIES_CODE"], tax["PRIMARY_COM_NAME"], strict=True))


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
