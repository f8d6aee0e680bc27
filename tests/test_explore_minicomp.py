"""`birdkit explore` on minicomp's real BirdNET embeddings: the report the issue asks for, and clusters that are
clearly better than chance."""

from __future__ import annotations

import json

import pytest
from test_explore import assert_real_png

pytestmark = pytest.mark.shared


def test_minicomp_report(minicomp, minicomp_train_store, minicomp_test_store, tmp_path) -> None:
    from birdkit.cli.main import main

    out = tmp_path / "minicomp"
    argv = ["explore", str(minicomp_train_store), str(minicomp_test_store), "--out", str(out)]
    assert main([*argv, "--data-dir", str(minicomp), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())

    # Focal training clips are far denser in calls than field soundscapes (paper: 62% vs 8.8%).
    share = summary["call_share"]
    assert share["train_audio"] > 0.3 and share["train_audio"] > 5 * share["test_soundscapes"]
    assert len(summary["top_species"]["train_audio"]) == 10

    c = summary["clusters"]["birdnet"]
    assert c["k"] == 100  # ~1000 windows: the adaptive rule keeps the poster's 100
    s = c["scores"]["train windows vs folder species"]
    assert s["windows"] > 500 and s["labels"] >= 50
    assert s["purity"] > 0.6 and s["purity"] > 2.5 * s["random_purity"], s
    assert s["ami"] > 0.5, s

    # the output-space comparison: BirdNET against the plain mel-spectrogram baseline on the same windows
    spaces = {(r["space"], r["labels vs"]): r for r in summary["spaces"]}
    bn, mel = spaces["birdnet", "folder species"], spaces["mel-pca", "folder species"]
    assert bn["windows"] == mel["windows"] > 500
    assert bn["probe accuracy"] > 2 * mel["probe accuracy"] and bn["purity"] > mel["purity"], (bn, mel)

    text = (out / "report.md").read_text()
    figures = ["species_frequency.png", "itemset_sizes.png", "rules_graph.png", "map_birdnet.png"]
    figures += sorted(p.name for p in out.glob("contact_birdnet-*.png"))
    assert len(figures) >= 6  # 100 clusters: three contact-sheet pages
    for name in figures:
        assert f"]({name})" in text
        assert_real_png(out / name, min_w=600, min_h=300)
