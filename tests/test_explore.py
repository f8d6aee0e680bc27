"""`birdkit explore`: FP-growth tables against a hand-made example, cluster scores, figures that are real images,
and the whole report end to end on small synthetic stores (with audio for the contact sheet)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdkit.explore import clusters as cl
from birdkit.explore import cooccurrence as co
from birdkit.explore.errors import ExploreError

SPECIES = ["a", "b", "c", "d"]
# Five recordings with a call, one without; d is never predicted.
BASKETS = [["a", "b"], ["a", "b", "c"], ["a", "c"], ["b"], ["a", "b"], []]


def _onehot(baskets: list[list[str]], species: list[str] = SPECIES) -> np.ndarray:
    return np.array([[s in b for s in species] for b in baskets], dtype=bool)


def assert_real_png(path: Path, min_w: int = 300, min_h: int = 200) -> None:
    """A figure file that is an image of some size with visible content, not a blank canvas."""
    from PIL import Image

    assert path.exists() and path.stat().st_size > 5_000, path
    with Image.open(path) as im:
        w, h = im.size
        px = np.asarray(im.convert("L"), dtype=np.float32)
    assert w >= min_w and h >= min_h, (path, w, h)
    assert px.std() > 10, f"{path}: nearly uniform image (std {px.std():.1f})"
    assert (px < 128).mean() > 0.005, f"{path}: almost no dark pixels (no text or marks)"


# ---- FP-growth against a hand-made example -----------------------------------------------------------------
def test_transactions_drop_empty_baskets_and_unseen_species() -> None:
    tx = co.transactions(_onehot(BASKETS), SPECIES)
    assert list(tx.columns) == ["a", "b", "c"]
    assert len(tx) == 5


def test_transactions_by_recording_take_the_union_of_windows() -> None:
    windows = _onehot([["a"], ["b"], [], ["c"], []])
    tx = co.transactions(windows, SPECIES, groups=np.array(["r1", "r1", "r1", "r2", "r3"]))
    assert tx.to_dict("records") == [{"a": True, "b": True, "c": False}, {"a": False, "b": False, "c": True}]


def test_frequent_itemsets_match_hand_counts() -> None:
    m = co.mine(co.transactions(_onehot(BASKETS), SPECIES), min_support=0.4, min_count=1, min_confidence=0.8)
    got = {items: int(n) for items, n in zip(m.itemsets["items"], m.itemsets["count"], strict=True)}
    # Counted by hand over the five non-empty baskets; support >= 0.4 means at least 2 of 5.
    assert got == {("a",): 4, ("b",): 4, ("a", "b"): 3, ("c",): 2, ("a", "c"): 2}
    assert m.n_transactions == 5
    assert list(m.itemsets["count"]) == sorted(m.itemsets["count"], reverse=True)
    table = co.itemset_table(m, 3)
    assert list(table["items"]) == ["[a]", "[b]", "[a, b]"]
    assert list(table["transactions"]) == [4, 4, 3]
    assert np.allclose(table["support"], [0.8, 0.8, 0.6])


def test_association_rules_match_hand_computed_confidence_and_lift() -> None:
    m = co.mine(co.transactions(_onehot(BASKETS), SPECIES), min_support=0.4, min_count=1, min_confidence=0.8)
    # a->b and b->a have confidence 3/4 < 0.8; c->a has 2/2 = 1 with lift 1 / P(a) = 1 / 0.8; a->c is 2/4.
    assert len(m.rules) == 1
    r = m.rules.iloc[0]
    assert (r["antecedents"], r["consequents"]) == (("c",), ("a",))
    assert r["count"] == 2
    assert r["confidence"] == pytest.approx(1.0)
    assert r["lift"] == pytest.approx(1.25)
    assert r["support"] == pytest.approx(0.4)
    looser = co.mine(
        co.transactions(_onehot(BASKETS), SPECIES), min_support=0.4, min_count=1, min_confidence=0.7
    )
    assert {
        (a, c) for a, c in zip(looser.rules["antecedents"], looser.rules["consequents"], strict=True)
    } == {
        (("c",), ("a",)),
        (("a",), ("b",)),
        (("b",), ("a",)),
    }


def test_min_count_floor_stops_one_off_patterns() -> None:
    tx = co.transactions(_onehot([["a", "b", "c"]]), SPECIES)
    m = co.mine(tx, min_support=0.01, min_count=2)
    assert m.itemsets.empty and m.rules.empty  # one transaction would otherwise make every subset a rule
    m = co.mine(co.transactions(_onehot(BASKETS), SPECIES), min_support=0.01, min_count=3)
    assert m.min_support == pytest.approx(3 / 5)
    assert set(m.itemsets["count"]) >= {3} and m.itemsets["count"].min() >= 3


def test_rules_saved_as_flat_records(tmp_path: Path) -> None:
    m = co.mine(co.transactions(_onehot(BASKETS), SPECIES), min_support=0.2, min_count=1, min_confidence=0.8)
    flat = co.rules_records({"soundscape": m.rules})
    assert set(co.RULE_COLUMNS) <= set(flat.columns) and (flat["dataset"] == "soundscape").all()
    flat.to_csv(tmp_path / "rules.csv", index=False)
    back = pd.read_csv(tmp_path / "rules.csv")
    assert ("b c", "a") in set(zip(back["antecedents"], back["consequents"], strict=True))  # {b,c} -> a: 1/1
    g = co.rule_graph(m.rules)
    assert ("c", "a") in g.edges and all(len(e) == 2 for e in g.edges)  # only single-species antecedents


# ---- cluster scores ----------------------------------------------------------------------------------------
def test_purity_and_ami_by_hand() -> None:
    labels = np.array(["a", "a", "b", "b", None, "c"], dtype=object)
    clusters = np.array([0, 0, 1, 0, 1, 2])
    # cluster 0: a a b -> 2, cluster 1: b -> 1 (None ignored), cluster 2: c -> 1; 4 of 5 labelled windows.
    assert cl.purity(labels, clusters) == pytest.approx(0.8)
    assert cl.ami(np.array(["a", "a", "b", "b"], dtype=object), np.array([1, 1, 0, 0])) == pytest.approx(1.0)


def test_random_purity_is_far_below_a_perfect_clustering() -> None:
    labels = np.repeat(np.array([f"s{i}" for i in range(10)], dtype=object), 20)
    perfect = np.repeat(np.arange(10), 20)
    s = cl.score(labels, perfect, seed=0)
    assert s["purity"] == 1.0 and s["ami"] == pytest.approx(1.0)
    assert s["random_purity"] < 0.35
    assert cl.random_purity(labels, perfect, seed=0) == cl.random_purity(labels, perfect, seed=0)


def test_choose_k_adapts_to_small_stores() -> None:
    assert cl.choose_k(1_000_000) == 100
    assert cl.choose_k(200) == 200 // cl.MIN_PER_CLUSTER
    assert cl.choose_k(3) == 2


def test_kmeans_is_seeded_and_subsamples() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(c, 0.05, size=(40, 8)) for c in np.eye(8)[:4]])
    a = cl.kmeans(x, 4, max_fit=100, seed=3)
    b = cl.kmeans(x, 4, max_fit=100, seed=3)
    assert a.fitted == 100 and len(a.assignments) == 160
    assert np.array_equal(a.assignments, b.assignments)
    truth = np.repeat(np.array(list("wxyz"), dtype=object), 40)
    assert cl.purity(truth, a.assignments) == 1.0
    ex = cl.examples(a, 3)
    assert all(len(v) == 3 and (a.assignments[v] == c).all() for c, v in ex.items())


# ---- figures -----------------------------------------------------------------------------------------------
def test_figures_are_real_images(tmp_path: Path) -> None:
    from birdkit.explore import frequency as fq
    from birdkit.explore import maps
    from birdkit.explore.contact_sheet import Tile, plot_contact_sheets, spectrogram_db

    freq = pd.DataFrame(
        {"train_audio": [30, 20, 5, 0], "unlabeled_soundscapes": [1, 9, 0, 4]}, index=["aa", "bb", "cc", "dd"]
    )
    assert fq.reference_order(freq, "unlabeled_soundscapes") == ["bb", "dd", "aa", "cc"]
    assert_real_png(fq.plot_ranked_frequency(freq, "unlabeled_soundscapes", tmp_path / "f.png", "freq"))

    mined = {"x": co.mine(co.transactions(_onehot(BASKETS), SPECIES), 0.2, 1, None, 0.6)}
    assert_real_png(co.plot_itemset_sizes(mined, tmp_path / "sizes.png", "recording"))
    assert_real_png(co.plot_rule_graphs({"x": mined["x"].rules}, tmp_path / "graph.png", 0.6, 0))

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(60, 2))
    lab = np.array(["aa"] * 20 + ["bb"] * 20 + [None] * 20, dtype=object)
    panel = maps.Panel("p", xy, lab)
    assert_real_png(maps.plot_grid([[panel, panel]], tmp_path / "m.png", "maps", 5, {"aa": "Alpha"}))

    t = np.arange(5 * 32_000) / 32_000
    song = (0.3 * np.sin(2 * np.pi * (3000 + 800 * np.sin(2 * np.pi * 3 * t)) * t)).astype(np.float32)
    tiles = [Tile("song", [spectrogram_db(song)] * 2), Tile("silence", [spectrogram_db(song * 0), None])]
    (page,) = plot_contact_sheets(tiles, tmp_path / "sheet", "sheet", ncols=2)
    assert_real_png(page, min_w=400, min_h=150)


def test_projection_is_seeded_and_skips_tiny_inputs() -> None:
    from birdkit.explore import maps

    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(c, 0.1, size=(30, 12)) for c in (0.0, 3.0)]).astype(np.float32)
    x[:, 5] = -np.inf  # a species the surrogate lacks: dropped, not propagated
    a, b = maps.project(x, "pacmap", seed=4), maps.project(x, "pacmap", seed=4)
    assert a is not None and a.shape == (60, 2) and np.isfinite(a).all()
    assert np.array_equal(a, b)
    assert maps.project(x[: maps.MIN_POINTS - 1], "pacmap") is None


def test_umap_without_the_package_names_the_pip_command() -> None:
    from birdkit.explore import maps

    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ExploreError, match="pip install umap-learn"):
            maps.check_method("umap")
    else:
        pytest.skip("umap-learn is installed here")


# ---- end to end on synthetic stores ------------------------------------------------------------------------
N_SPECIES = 5


def _write_store(root: Path, split: str, files: list, encoder: str = "fake") -> None:
    from birdkit.store import EmbeddingStore, StoreMeta

    st = EmbeddingStore(root)
    st.open(
        StoreMeta(
            encoder={"name": encoder},
            embedding_dim=files[0].embeddings.shape[1],
            species=[f"sp{i}" for i in range(N_SPECIES)],
            split=split,
        )
    )
    st.write_shard(files)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Train clips of five species (well separated embeddings, confident logits) and two soundscapes, with audio."""
    from birdkit.audio import write_audio
    from birdkit.store import FileRows

    root = tmp_path_factory.mktemp("synthetic")
    data = root / "comp"
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N_SPECIES, 16)) * 3
    train, sound = [], []
    for s in range(N_SPECIES):
        for j in range(3):
            n = 4
            logits = np.full((n, N_SPECIES), -6.0, dtype=np.float32)
            logits[:3, s] = 4.0  # three windows with a call, the last silent
            if s == 1:
                logits[:2, 2] = 3.0  # sp1 and sp2 sing together: a co-occurrence to mine
            rel = f"sp{s}/sp{s}_{j}.wav"
            train.append(
                FileRows(
                    rel,
                    "train_audio",
                    [f"sp{s}_{j}_{5 * (i + 1)}" for i in range(n)],
                    (centres[s] + rng.normal(0, 0.3, (n, 16))).astype(np.float32),
                    logits,
                    f"sp{s}",
                )
            )
            (data / "train_audio" / f"sp{s}").mkdir(parents=True, exist_ok=True)
            t = np.arange(n * 5 * 8000) / 8000
            write_audio(data / "train_audio" / rel, (0.2 * np.sin(2 * np.pi * 500 * (s + 1) * t)), 8000)
    for k in range(2):
        n = 10
        logits = np.full((n, N_SPECIES), -6.0, dtype=np.float32)
        logits[: 3 + k, k] = 2.0
        sound.append(
            FileRows(
                f"sc{k}.wav",
                "unlabeled_soundscapes",
                [f"sc{k}_{5 * (i + 1)}" for i in range(n)],
                (centres[k] + rng.normal(0, 1.0, (n, 16))).astype(np.float32),
                logits,
            )
        )
        (data / "unlabeled_soundscapes").mkdir(parents=True, exist_ok=True)
        write_audio(data / "unlabeled_soundscapes" / f"sc{k}.wav", rng.normal(0, 0.01, n * 5 * 8000), 8000)
    _write_store(root / "emb_train", "train_audio", train)
    _write_store(root / "emb_sound", "unlabeled_soundscapes", sound)
    return root / "emb_train", root / "emb_sound", data


def test_cli_writes_the_full_report(synthetic, tmp_path: Path) -> None:
    from birdkit.cli.main import main

    train, sound, data = synthetic
    out = tmp_path / "report"
    argv = ["explore", str(train), str(sound), "--out", str(out), "--data-dir", str(data), "--no-progress"]
    assert main(argv) == 0
    text = (out / "report.md").read_text()
    for heading in (
        "## 1. Species frequency",
        "## 2. Co-occurrence",
        "## 3. Embedding maps",
        "## 4. Clusters",
    ):
        assert heading in text
    for name in (
        "species_frequency.png",
        "itemset_sizes.png",
        "rules_graph.png",
        "map_fake.png",
        "contact_fake-1.png",
    ):
        assert f"]({name})" in text
        assert_real_png(out / name)
    summary = json.loads((out / "summary.json").read_text())
    # 12 of 20 train windows have a call... per clip 3 of 4 windows: 75%; soundscapes 3/10 and 4/10.
    assert summary["call_share"]["train_audio"] == pytest.approx(0.75)
    assert summary["call_share"]["unlabeled_soundscapes"] == pytest.approx(7 / 20)
    # sp1 and sp2 are predicted together in all three sp1 clips; sp2 also alone in its own three.
    top = {tuple(items): n for items, n in summary["cooccurrence"]["train_audio"]["top_itemsets"]}
    assert top[("sp1", "sp2")] == 3 and top[("sp2",)] == 6
    rules = pd.read_csv(out / "rules.csv")
    assert ("sp1", "sp2") in set(zip(rules["antecedents"], rules["consequents"], strict=True))
    assert pd.read_parquet(out / "rules.parquet").shape == rules.shape
    scores = summary["clusters"]["fake"]["scores"]["train windows vs folder species"]
    assert scores["purity"] == 1.0 and scores["purity"] > scores["random_purity"] + 0.5
    assert summary["clusters"]["fake"]["k"] == cl.choose_k(80)
    assert "data_dir" not in summary["options"]  # no local paths in the outputs


def test_cli_reports_user_errors(synthetic, tmp_path: Path, capsys) -> None:
    from birdkit.cli.main import main

    train, _sound, _data = synthetic
    assert main(["explore", str(train), str(train), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "second fake store of train_audio" in capsys.readouterr().err
    assert main(["explore", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "not an embedding store" in capsys.readouterr().err


def test_second_encoder_without_logits_borrows_labels_and_is_compared(synthetic, tmp_path: Path) -> None:
    """A general audio encoder has no bird logits: its windows take the surrogate's predictions (matched on file
    and start) and it is mapped and clustered beside the first encoder."""
    from birdkit import store
    from birdkit.explore.report import ExploreOptions, explore
    from birdkit.store import FileRows

    train, sound, _data = synthetic
    e = store.load(train)
    rot = np.linalg.qr(np.random.default_rng(5).normal(size=(16, 16)))[0].astype(np.float32)
    files = []
    for f, idx in e.frame.groupby("file").indices.items():
        rows = e.frame.iloc[idx]
        no_logits = np.full((len(idx), N_SPECIES), -np.inf, np.float32)
        emb = e.embeddings[idx] @ rot
        files.append(
            FileRows(f, "train_audio", list(rows["row_id"]), emb, no_logits, rows["primary_label"].iloc[0])
        )
    _write_store(tmp_path / "other", "train_audio", files, encoder="other")
    r = explore([tmp_path / "other", train, sound], tmp_path / "r", ExploreOptions(progress=False))
    assert [s["encoder"] for s in r.summary["stores"]] == ["other", "fake", "fake"]
    assert r.summary["call_share"]["train_audio"] == pytest.approx(
        0.75
    )  # from fake's logits, not other's -inf
    other = r.summary["clusters"]["other"]["scores"]["train windows vs folder species"]
    assert other["purity"] == 1.0
    assert_real_png(r.out / "map_compare.png")
    assert "## 4. Clusters" in (r.out / "report.md").read_text()
    assert (
        "Skipped" in (r.out / "report.md").read_text()
    )  # no --data-dir: the contact sheet says why it is absent


def test_report_on_placeholder_stores_of_the_synthetic_competition(
    synthetic_comp, placeholder_train_store, placeholder_test_store, tmp_path: Path
) -> None:
    """test_explore_minicomp's report with no ../shared: real stores of real audio (the synthetic competition
    through the placeholder encoder), contact sheets from that audio, the soundscapes' ground truth."""
    from birdkit.cli.main import main

    out = tmp_path / "placeholder"
    argv = ["explore", str(placeholder_train_store), str(placeholder_test_store), "--out", str(out)]
    assert main([*argv, "--data-dir", str(synthetic_comp), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["call_share"]) == {"train_audio", "test_soundscapes"}
    truth = summary["call_share_ground_truth"]["test_soundscapes"]  # test_labels_5s.csv: windows with a call
    assert 0.3 < truth < 1.0
    c = summary["clusters"]["placeholder"]
    assert c["windows"] == len(_store_frame(placeholder_train_store)) + len(
        _store_frame(placeholder_test_store)
    )
    s = c["scores"]["train windows vs folder species"]
    # band energies separate the synthetic call shapes: far better than chance (measured: 0.86 vs 0.44)
    assert s["labels"] == 6 and s["purity"] > 1.5 * s["random_purity"] and s["ami"] > 0.3, s
    text = (out / "report.md").read_text()
    for name in ("species_frequency.png", "itemset_sizes.png", "rules_graph.png", "map_placeholder.png"):
        assert f"]({name})" in text
        assert_real_png(out / name)
    sheets = sorted(out.glob("contact_placeholder-*.png"))
    assert sheets and all(f"]({p.name})" in text for p in sheets)
    assert_real_png(sheets[0])


def _store_frame(root: Path) -> pd.DataFrame:
    from birdkit import store

    return store.load(root).frame


def test_cli_names_a_bad_option(synthetic, tmp_path: Path, capsys) -> None:
    from birdkit.cli.main import main

    train, _sound, _data = synthetic
    argv = ["explore", str(train), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*argv, "--threshold", "1.5"]) == 2
    assert "--threshold 1.5: must lie strictly between 0 and 1" in capsys.readouterr().err
    assert main([*argv, "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "--data-dir" in capsys.readouterr().err and not (tmp_path / "r" / "report.md").exists()
