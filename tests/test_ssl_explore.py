"""`birdkit explore` on a surrogate store (the placeholder, which has logits) and an SSL store of the synthetic
competition: the output-space comparison (with the mel baseline and the linear probe) and the attention section."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdkit.cli.main import main
from birdkit.explore import spaces as sp
from birdkit.ssl.attention import call_mask, otsu, time_iou


@pytest.fixture(scope="module")
def ssl_stores(synthetic_comp, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ssl_explore")
    argv = [
        "ssl",
        "pretrain",
        str(synthetic_comp),
        "--splits",
        "test_soundscapes",
        "--out",
        str(tmp / "model"),
    ]
    assert main([*argv, "--size", "tiny", "--epochs", "1", "--batch-size", "8", "--no-progress"]) == 0
    for split in ("train_audio", "test_soundscapes"):
        embed = [
            "embed",
            str(synthetic_comp),
            "--encoder",
            "ssl",
            "--model",
            str(tmp / "model"),
            "--split",
            split,
        ]
        assert main([*embed, "--out", str(tmp / split)]) == 0
    return tmp


@pytest.mark.slow
def test_explore_compares_spaces_and_draws_attention(
    ssl_stores, placeholder_train_store, placeholder_test_store, synthetic_comp, tmp_path
):
    stores = [
        placeholder_train_store,
        placeholder_test_store,
        ssl_stores / "train_audio",
        ssl_stores / "test_soundscapes",
    ]
    out = tmp_path / "report"
    argv = [
        "explore",
        *map(str, stores),
        "--out",
        str(out),
        "--data-dir",
        str(synthetic_comp),
        "--no-progress",
    ]
    assert main(argv) == 0
    text = (out / "report.md").read_text()
    assert "## 5. Output spaces compared" in text and "## 6. Attention" in text
    summary = json.loads((out / "summary.json").read_text())
    spaces = {(r["space"], r["labels vs"]) for r in summary["spaces"]}
    for space in ("placeholder", "ssl", sp.BASELINE):
        assert (space, "folder species") in spaces
    for r in summary["spaces"]:
        assert 0 <= r["purity"] <= 1 and r["purity"] >= r["random purity"] - 0.05
    # the placeholder's logits are its own band energies: its space separates the synthetic species
    probe = {(r["space"], r["labels vs"]): r["probe accuracy"] for r in summary["spaces"]}
    assert probe["placeholder", "folder species"] > 0.5
    att = summary["attention"]
    assert att["windows"] > 0 and set(att["iou"]) >= {"energy mask (baseline)", "every column (baseline)"}
    assert "attention received" in att["window_iou"]
    assert (out / "attention_sheet.png").stat().st_size > 10_000


def test_call_mask_keeps_the_fewest_patches_holding_the_mass():
    roll = np.array([[[0.5, 0.2], [0.2, 0.1]]])
    assert call_mask(roll, 0.5).sum() == 1 and call_mask(roll, 0.6).sum() == 2 and call_mask(roll, 1.0).all()
    assert time_iou(np.array([1, 1, 0, 0], bool), np.array([0, 1, 1, 0], bool)) == pytest.approx(1 / 3)
    v = np.concatenate([np.zeros(50), np.ones(50)])
    assert 0 < otsu(v) < 1


def test_probe_is_scored_on_unseen_recordings():
    """A space that only fingerprints recordings (one random vector per file) must not score as species-aware."""
    rng = np.random.default_rng(0)
    files = np.repeat(np.arange(40), 5)
    species = np.array([f"s{i % 4}" for i in files], dtype=object)
    fingerprint = rng.standard_normal((40, 16))[files]
    signal = np.eye(4)[files % 4] * 3 + rng.standard_normal((200, 4)) * 0.1
    assert sp.probe(fingerprint, species, files)["accuracy"] < 0.5
    assert sp.probe(signal, species, files)["accuracy"] > 0.9


def test_attention_received_flags_the_windows_whose_columns_draw_the_attention():
    """Windows with a call: one frequency-time spot draws the attention; the rest: flat. The received-attention
    mask flags exactly the call windows and marks only the spot's columns."""
    from birdkit.explore.attention import score_masks
    from birdkit.ssl.attention import AttentionMaps

    n, gf, gt = 40, 4, 15
    bird = np.arange(n) % 4 == 0
    received = np.full((n, gf, gt), 1.0)
    received[bird, 1, 5:7] = 30.0
    received /= received.sum(axis=(1, 2), keepdims=True)
    spec = np.random.default_rng(0).standard_normal((n, 64, 240)).astype(np.float32)
    flat = np.full((n, gf, gt), 1 / (gf * gt))
    maps = AttentionMaps(spec, np.repeat(flat[:, None], 2, axis=1), flat, received)
    res, _ = score_masks(maps, bird)
    assert res.window_iou["attention received"] == 1.0
    assert res.iou["attention received: columns, windows by its peak"] == pytest.approx(2 / gt)


def test_every_space_is_compared_after_one_rule_so_scale_and_size_do_not_matter():
    """Rescaling a space's dimensions changes nothing (each is standardised); any space ends at COMPARE_DIMS."""
    rng = np.random.default_rng(0)
    files = np.repeat(np.arange(30), 4)
    species = np.array([f"s{i % 5}" for i in files], dtype=object)
    x = np.eye(5)[files % 5] @ rng.standard_normal((5, 64)) + 0.3 * rng.standard_normal((120, 64))
    scaled = x * rng.uniform(0.01, 100, 64)
    assert sp.reduce(x).shape == (120, sp.COMPARE_DIMS)
    df = sp.compare({"a": x, "b": scaled}, species, np.full(120, None, dtype=object), files, k=10)
    a, b = (df[df.space == n].iloc[0] for n in "ab")
    assert a["purity"] == pytest.approx(b["purity"]) and a["probe accuracy"] == pytest.approx(
        b["probe accuracy"]
    )
    assert a["purity"] > 0.9
