"""Section 4's contact sheets: spectrograms of the windows nearest each cluster's centre."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from birdkit.explore import clusters as cl
from birdkit.explore.markdown import image
from birdkit.explore.options import ExploreOptions
from birdkit.explore.sections.output import ReportOutput, pct, slug


def contact_sheets(rep: ReportOutput, sheets: dict, opt: ExploreOptions) -> list[str]:
    from birdkit.explore import contact_sheet as cs

    head = ["### Contact sheets", ""]
    if opt.data_dir is None:
        return [
            *head,
            "_Skipped: the stores keep file names relative to their split folder, not the audio itself. Give "
            "`--data-dir COMPETITION_FOLDER` to draw example spectrograms per cluster._",
            "",
        ]
    data_dir = Path(opt.data_dir)
    plans: dict[str, list[tuple[int, str, list]]] = {}
    refs: list[cs.WindowRef] = []
    missing: set[str] = set()
    for enc, (c, group, tab, _lab) in sheets.items():
        frame = pd.concat([d.frame for d in group], ignore_index=True)
        paths = [data_dir / s / f for s, f in zip(frame["split"], frame["file"], strict=True)]
        exists = {p: p.exists() for p in set(paths)}
        missing.update(str(p.parent.relative_to(data_dir)) for p, ok in exists.items() if not ok)
        ok = np.array([exists[p] for p in paths], dtype=bool)
        ex = cl.examples(c, opt.examples, ok)
        order = tab.sort_values(["call_share", "windows"], ascending=[False, False])
        plan = []
        for r in order.itertuples(index=False):
            wr = [
                cs.WindowRef(paths[i], float(frame["start_s"].iat[i]), float(frame["end_s"].iat[i]))
                for i in ex[r.cluster]
            ]
            refs += wr
            maj = f" · {r.majority} {pct(r.purity)}" if r.majority else ""
            plan.append((r.cluster, f"c{r.cluster} · {r.windows} win · call {pct(r.call_share)}{maj}", wr))
        plans[enc] = plan
    specs = cs.window_spectrograms(sorted(set(refs), key=lambda r: (str(r.path), r.start_s)), opt.progress)
    lines = [
        *head,
        f"The {opt.examples} windows nearest each cluster centre, clusters ordered by call share (song first, "
        "silence last), on one dB scale:",
        "",
    ]
    if missing:
        lines += [f"_Audio not found under the data folder for: {', '.join(sorted(missing)[:5])}._", ""]
    for enc, plan in plans.items():
        tiles = [cs.Tile(title, [specs.get(r) for r in wr]) for _c, title, wr in plan]
        pages = cs.plot_contact_sheets(tiles, rep.out / f"contact_{slug(enc)}", f"{enc} clusters")
        rep.figures += pages
        lines += [f"**{enc}**:", ""] + [
            image(p.name, f"{enc} contact sheet {i}") for i, p in enumerate(pages, 1)
        ]
    return lines
