"""Section 6: the self-supervised encoder's attention (the poster's segmentation), scored against the surrogate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from birdkit import store
from birdkit.competition import Competition
from birdkit.explore import attention as at
from birdkit.explore.datasets import Dataset, _key
from birdkit.explore.markdown import table
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.output import ReportOutput, pct

SHEET_ROWS = 6


def attention_section(
    rep: ReportOutput, datasets: list[Dataset], source: list[Dataset], opt: ExploreOptions
) -> str:
    ssl = [d for d in datasets if d.encoder.split("#")[0] == "ssl" and not d.is_train]
    if not ssl or opt.data_dir is None or not source:
        return ""
    from birdkit.ssl.artifacts import build_encoder, load_weights

    lines = ["## 6. Attention of the self-supervised encoder", ""]
    described = store.load(ssl[0].root).meta.encoder
    recorded = (described.get("options") or {}).get("model_path") or described.get("model_path")
    folder = Path(str(recorded or "."))  # the model folder, or one of its files (encoder.json since TFLite)
    weights = (folder if folder.is_dir() else folder.parent) / "encoder.pt"
    if not recorded or not weights.is_file():
        return "\n".join([*lines, "The SSL store names no model folder with encoder.pt here; no maps.", ""])
    encoder = build_encoder(load_weights(weights))
    comp = Competition(opt.data_dir)
    src = {d.split: d for d in source}
    frames, waves, bird, prob = [], [], [], []
    for d in ssl:
        s = src.get(d.split)
        if s is None:
            continue
        fr = d.frame.sort_values(["file", "start_s"]).reset_index(drop=True)
        idx = _key(s.frame).get_indexer(_key(fr))
        y = s.predicted(opt.threshold)
        p = 1 / (1 + np.exp(-np.nan_to_num(s.logits, neginf=-50.0)))
        bird.append(np.where(idx >= 0, y[np.maximum(idx, 0)].any(axis=1), False))
        prob.append(np.where(idx >= 0, p[np.maximum(idx, 0)].max(axis=1), 0.0))
        waves.append(at.soundscape_waves(fr, comp.path(d.split)))
        frames.append(fr)
    if not frames:
        return ""
    from birdkit.ssl.attention import attention_maps

    maps = attention_maps(encoder, np.concatenate(waves))
    b, pr = np.concatenate(bird), np.concatenate(prob)
    res, flag = at.score_masks(maps, b)
    rep.summary["attention"] = {"windows": res.windows, "iou": res.iou, "window_iou": res.window_iou}
    rows = [{"mask": k, "IoU over time": v} for k, v in res.iou.items()]
    rows += [{"mask": f"{k} (window level)", "IoU over time": v} for k, v in res.window_iou.items()]
    order = np.argsort(-pr)
    pick = [
        int(i)
        for i in np.concatenate([order[: SHEET_ROWS // 2], order[::-1][: SHEET_ROWS - SHEET_ROWS // 2]])
    ]
    allf = pd.concat(frames, ignore_index=True)
    names = [f"{f} {s:g}s" for f, s in zip(allf["file"], allf["start_s"], strict=True)]
    titles = [f"{names[i]}\nBirdNET {pr[i]:.2f}, flag {'yes' if flag[i] else 'no'}" for i in pick]
    sheet = at.contact_sheet(maps, pick, titles, rep.out / "attention_sheet.png")
    rep.figures.append(sheet)
    lines += [
        f"{res.windows} soundscape windows; {source[0].encoder} hears a call in {pct(res.bird_share)} of them. "
        "The call mask keeps the fewest patches holding half of the class token's rolled-out attention; a window "
        "counts as holding a call when the patches it attends to are louder than its median patch by more than "
        f"an Otsu threshold over all windows (attended contrast; {pct(res.ssl_flagged)} of windows), or, the "
        "second variant, when its attention is concentrated (top 10% of patches' share above Otsu). The third "
        "mask reads the attention each patch receives from every token of the last layer: a window holds a call "
        "when its most-attended column is above Otsu over windows, and the mask keeps its columns above Otsu "
        "over all columns. IoU over time is measured on patch columns (~0.32 s) "
        "against the surrogate's call windows (a 5 s resolution: a masked column inside a call window counts as "
        "a hit, an unmasked one as a miss). Baselines: the loudest columns (Otsu on log-mel energy) and "
        "marking everything.",
        "",
        table(pd.DataFrame(rows), 3),
        "",
        "Top rows: the windows BirdNET is surest of; bottom rows: the ones it is least sure of.",
        "",
        "![attention](attention_sheet.png)",
        "",
    ]
    return "\n".join(lines)
