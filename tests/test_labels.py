"""The pseudo-label equations on hand-made arrays, and labels.parquet next to a store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdkit.cli.main import main
from birdkit.store import EmbeddingStore, FileRows, StoreError, StoreMeta, load
from birdkit.store import labels as L

SPECIES = ["a", "b", "c"]
INF = np.inf


def test_predicted_thresholds_sigmoid_and_never_predicts_missing_species():
    logits = np.array([[0.1, -0.1, -INF], [3.0, 0.0, -INF]], dtype=np.float32)
    assert L.predicted(logits).tolist() == [[True, False, False], [True, False, False]]
    # σ(3) = 0.953: above 0.9, below 0.96
    assert L.predicted(logits, 0.9).tolist() == [[False, False, False], [True, False, False]]
    assert not L.predicted(logits, 0.96).any()


def test_has_call_is_any_species():
    y = np.array([[0, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=bool)
    assert L.has_call(y).tolist() == [False, True, True]


def test_folder_onehot_primary_secondary_unknown_and_none():
    primary = ["a", None, "zzz", "c"]
    secondary = [["b", "unknown"], ["a"], [], []]
    assert L.folder_onehot(primary, SPECIES).astype(int).tolist() == [
        [1, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 1],
    ]
    with_sec = L.folder_onehot(primary, SPECIES, secondary).astype(int).tolist()
    assert with_sec == [[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_with_species_adds_folder_species_only_where_a_call_is_heard():
    y_hat = np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=bool)
    onehot = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)
    # row 0: no call -> stays empty; row 1: call of b -> gets a too; row 2: a already there
    assert L.with_species(y_hat, onehot).astype(int).tolist() == [[0, 0, 0], [1, 1, 0], [1, 0, 0]]


def _frame(primary: list, secondary: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame({"primary_label": primary, "secondary_labels": secondary})


def test_make_labels_modes_and_soundscapes_get_y_hat_only():
    logits = np.array(
        [
            [-5, -5, -5],  # train clip of a, silent window
            [-5, 5, -5],  # train clip of a, surrogate hears b
            [-5, 5, -5],  # soundscape window, surrogate hears b
            [-5, -5, -5],  # soundscape window, silent
        ],
        dtype=np.float32,
    )
    frame = _frame(["a", "a", None, None], [["c"], ["c"], [], []])
    none = L.make_labels(logits, frame, SPECIES, L.LabelSpec(folder="none")).astype(int).tolist()
    call = L.make_labels(logits, frame, SPECIES, L.LabelSpec(folder="call")).astype(int).tolist()
    weak = L.make_labels(logits, frame, SPECIES, L.LabelSpec(folder="all")).astype(int).tolist()
    sec = (
        L.make_labels(logits, frame, SPECIES, L.LabelSpec(folder="call", secondary=True)).astype(int).tolist()
    )
    assert none == [[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert call == [[0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert weak == [[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert sec == [[0, 0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0]]


def test_label_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="folder mode"):
        L.LabelSpec(folder="everything")
    with pytest.raises(ValueError, match="threshold"):
        L.LabelSpec(threshold=1.0)
    assert L.LabelSpec().name == "y_species"
    assert L.LabelSpec(folder="none", secondary=True).name == "y_hat"


def test_summarize_counts_calls_labels_and_never_labelled_species():
    y_hat = np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=bool)
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)
    s = L.summarize(labels, SPECIES, y_hat)
    assert (s.windows, s.windows_with_call, s.windows_labelled) == (3, 1, 2)
    assert s.per_species == {"a": 2, "b": 1, "c": 0}
    assert s.never_labelled == ["c"]
    assert "1 species never labelled: c" in s.format()


def _store(root, species=SPECIES):
    """Two train clips whose stems collide (row_ids repeat across folders) and a soundscape."""
    st = EmbeddingStore(root)
    st.open(StoreMeta(encoder={"name": "toy"}, embedding_dim=2, species=species, split="train_audio"))
    rng = np.random.default_rng(0)
    files = [
        FileRows(
            "a/x.ogg",
            "train_audio",
            ["x_5", "x_10"],
            rng.random((2, 2)),
            np.array([[5, -5, -5], [-5, -5, -5]]),
            "a",
            ["c"],
        ),
        FileRows(
            "b/x.ogg",
            "train_audio",
            ["x_5", "x_10"],
            rng.random((2, 2)),
            np.array([[-5, -5, -5], [-5, -5, 5]]),
            "b",
        ),
        FileRows("s.ogg", "train_audio", ["s_5"], rng.random((1, 2)), np.array([[-5, 5, -INF]]), None),
    ]
    st.write_shard(files)
    return load(root)


def test_labels_file_round_trip_keyed_by_file_and_row(tmp_path):
    emb = _store(tmp_path / "emb")
    path, summary = L.label_store(emb, L.LabelSpec(folder="call", secondary=True))
    assert path == tmp_path / "emb" / L.LABELS_FILE
    y, meta = L.read_labels(load(tmp_path / "emb"))
    by_row = {
        (f, r): row.astype(int).tolist()
        for f, r, row in zip(emb.frame["file"], emb.frame["row_id"], y, strict=True)
    }
    assert by_row[("a/x.ogg", "x_5")] == [1, 0, 1]  # call -> folder a + secondary c
    assert by_row[("a/x.ogg", "x_10")] == [0, 0, 0]  # no call
    assert by_row[("b/x.ogg", "x_10")] == [0, 1, 1]  # same row_id, other file: its own labels
    assert by_row[("s.ogg", "s_5")] == [0, 1, 0]  # no folder: ŷ only
    assert meta["spec"] == {"threshold": 0.5, "folder": "call", "secondary": True}
    assert summary.never_labelled == []
    assert not list((tmp_path / "emb").glob("*.tmp"))


def test_read_labels_refuses_a_stale_file(tmp_path):
    emb = _store(tmp_path / "emb")
    with pytest.raises(StoreError, match="birdkit label"):
        L.read_labels(emb)
    L.label_store(emb)
    # the store grows after labelling: the file no longer covers it
    EmbeddingStore(tmp_path / "emb").write_shard(
        [FileRows("c/y.ogg", "train_audio", ["y_5"], np.zeros((1, 2)), np.zeros((1, 3)), "c")]
    )
    with pytest.raises(StoreError, match="do not match the store"):
        L.read_labels(load(tmp_path / "emb"))


def test_cli_label_writes_and_prints_summary(tmp_path, capsys):
    _store(tmp_path / "emb")
    assert main(["label", str(tmp_path / "emb"), "--no-folder-labels"]) == 0
    out = capsys.readouterr().out
    assert "5 windows, 3 with a call by the surrogate" in out
    assert "1 species never labelled" not in out and "every species gets at least one label" in out
    y, meta = L.read_labels(load(tmp_path / "emb"))
    assert meta["spec"]["folder"] == "none"
    assert y.sum() == 3


def test_cli_label_rejects_a_bad_threshold_naming_the_option(tmp_path, capsys):
    _store(tmp_path / "emb")
    assert main(["label", str(tmp_path / "emb"), "--threshold", "1.0"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert not (tmp_path / "emb" / L.LABELS_FILE).exists()


@pytest.mark.parametrize("mode", ["call", "all"])
def test_label_a_placeholder_store_of_the_synthetic_competition(
    placeholder_train_store, tmp_path, mode, capsys
):
    """Real logits from real (synthetic) audio, no ../shared: the file holds the equations' labels, row for row."""
    import shutil

    root = tmp_path / "emb"
    shutil.copytree(placeholder_train_store, root)  # the session store stays unlabelled
    assert main(["label", str(root), "--folder-labels", mode]) == 0
    assert f"folder labels: {mode}" in capsys.readouterr().out
    emb = load(root)
    y, meta = L.read_labels(emb)
    spec = L.LabelSpec(folder=mode)
    assert np.array_equal(y, L.make_labels(emb.logits, emb.frame, emb.species, spec))
    assert meta["encoder"] == emb.meta.encoder and meta["spec"]["folder"] == mode
    folder = L.folder_onehot(list(emb.frame["primary_label"]), emb.species)
    if mode == "all":  # every train window carries its folder species
        assert (y >= folder).all()
    else:  # the folder species only where the surrogate hears a call
        calls = L.has_call(L.predicted(emb.logits))
        assert np.array_equal(y & folder, folder & calls[:, None])
