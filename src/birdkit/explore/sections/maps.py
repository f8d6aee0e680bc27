"""Section 3: 2-D maps of each encoder's embeddings and logits, per dataset and side by side."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from birdkit.explore import maps
from birdkit.explore.datasets import Dataset, by_recording, encoders, labels_and_calls
from birdkit.explore.markdown import image
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.output import ReportOutput, slug


def _subsample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def maps_section(
    rep: ReportOutput, datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions, names: dict
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
        lab, _ = labels_and_calls(dd, src, opt.threshold)
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
            rep.out / f"map_{slug(enc)}.png",
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
