"""A table of bad inputs across every command, each run through ``birdkit.cli.main.main`` in-process: the exit
code, one ``birdkit CMD: error:`` line naming the file or option (and, where the row says, the fix), and no
traceback. Everything runs on the synthetic competition, the placeholder encoder and tiny stores.

Rows marked ``OTHER`` belong to commands another issue owns; those that fail today are expected failures
(``xfail``, not strict; the one that would run for minutes is skipped) so the table shows them until fixed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from birdkit.cli.main import COMMANDS, main
from birdkit.competition import Competition
from birdkit.encoders import get_encoder


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]
    says: tuple[str, ...] = ()  # substrings of the error line (after formatting with the context)
    rc: int = 2
    other: str | None = None  # a row of another issue's command that fails today: owner and what happens
    slow: bool = False


def R(id: str, argv: str, *says: str, rc: int = 2, other: str | None = None, slow: bool = False) -> Row:
    return Row(id, tuple(argv.split()), tuple(says), rc, other, slow)


def _head_folder(
    root: Path, species: list[str], tflite: bytes | None = None, card: str | None = None
) -> Path:
    """An exported-layout folder: one linear head on the placeholder encoder, for ``species``."""
    torch = pytest.importorskip("torch")
    from birdkit.package.convert import head_to_tflite

    d = get_encoder("placeholder").embedding_dim
    lin = torch.nn.Linear(d, len(species))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (len(species), d))))
    (root / "heads").mkdir(parents=True)
    graph = tflite if tflite is not None else head_to_tflite(torch.nn.Sequential(lin).eval(), d)
    (root / "heads" / "lin.tflite").write_bytes(graph)
    c = {"name": "lin", "species": species, "encoder": {"name": "placeholder"}, "embedding_dim": d,
         "head": {"kind": "linear", "in_dim": d, "out_dim": len(species)}}  # fmt: skip
    (root / "heads" / "lin.json").write_text(card if card is not None else json.dumps(c))
    return root


def variant(comp: Path, out: Path, files: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A competition folder that links to ``comp``'s entries, with some files replaced (or dropped)."""
    files = files or {}
    out.mkdir(parents=True)
    for entry in comp.iterdir():
        if entry.name not in drop and entry.name not in files:
            (out / entry.name).symlink_to(entry)
    for name, content in files.items():
        (out / name).write_text(content)
    return out


@pytest.fixture(scope="module")
def ctx(synthetic_comp, placeholder_train_store, tmp_path_factory) -> dict[str, str]:
    w = tmp_path_factory.mktemp("bad")
    comp = Path(synthetic_comp)
    species = Competition(comp).species
    sample = (comp / "sample_submission.csv").read_text()
    header, *lines = sample.splitlines()
    store = w / "store"
    shutil.copytree(placeholder_train_store, store)
    (w / "a_file").write_text("not a folder\n")
    (w / "a_dir").mkdir()
    (w / "empty_dir").mkdir()
    (w / "x.json").mkdir()
    # models: good, partial (2 of 6 species), corrupt graph, broken card, card without species
    _head_folder(w / "models_ok", species)
    _head_folder(w / "models_partial", species[:2])
    _head_folder(w / "models_corrupt", species, tflite=b"TFL3 truncated")
    _head_folder(w / "models_badcard", species, card="{not json")
    _head_folder(w / "models_nospecies", species, card=json.dumps({"name": "lin", "encoder": {"name": "x"}}))
    (w / "models_empty" / "heads").mkdir(parents=True)
    # competitions with one thing wrong
    variant(comp, w / "c_empty_sample", {"sample_submission.csv": ""})
    variant(comp, w / "c_dup_cols", {"sample_submission.csv": f"{header},{species[0]}\n"})
    variant(comp, w / "c_no_row_id", {"sample_submission.csv": header.replace("row_id", "id") + "\n"})
    variant(comp, w / "c_only_row_id", {"sample_submission.csv": "row_id\n"})
    variant(comp, w / "c_no_test", drop=("test_soundscapes",))
    (w / "c_empty_test").mkdir()
    for e in comp.iterdir():
        if e.name != "test_soundscapes":
            (w / "c_empty_test" / e.name).symlink_to(e)
    (w / "c_empty_test" / "test_soundscapes").mkdir()
    (w / "c_same_stem").mkdir()
    for e in comp.iterdir():
        if e.name != "test_soundscapes":
            (w / "c_same_stem" / e.name).symlink_to(e)
    (w / "c_same_stem" / "test_soundscapes").mkdir()
    first = sorted((comp / "test_soundscapes").iterdir())[0]
    shutil.copy(first, w / "c_same_stem" / "test_soundscapes" / first.name)
    shutil.copy(first, w / "c_same_stem" / "test_soundscapes" / (first.stem + ".wav"))
    variant(comp, w / "c_no_labels", drop=("test_labels_5s.csv",))
    # submissions to score
    sub = w / "sub.csv"
    sub.write_text(sample)
    (w / "sub_short.csv").write_text("\n".join([header, *lines[:-3]]) + "\n")
    (w / "sub_dup.csv").write_text("\n".join([header, *lines, lines[0]]) + "\n")
    (w / "sub_text.csv").write_text(
        "\n".join([header, *[ln.replace("0.0", "abc", 1) for ln in lines]]) + "\n"
    )
    (w / "sub_no_row_id.csv").write_text("\n".join([header.replace("row_id", "rid"), *lines]) + "\n")
    (w / "sub_cols.csv").write_text("\n".join([header + ",extra", *[ln + ",0" for ln in lines]]) + "\n")
    (w / "sub_empty.csv").write_text("")
    (w / "truth_no_labels.csv").write_text("row_id,x\n" + "\n".join(f"{ln.split(',')[0]},a" for ln in lines))
    # a damaged store
    broken = w / "store_badmeta"
    shutil.copytree(placeholder_train_store, broken)
    meta = broken / "_meta.json"
    meta.write_text(meta.read_text()[:20])
    shard = w / "store_badshard"
    shutil.copytree(placeholder_train_store, shard)
    for p in sorted(shard.glob("*.parquet"))[:1]:
        p.write_bytes(p.read_bytes()[:100])
    # a trained-model folder with a broken card and a truncated head.pt
    (w / "trained_badcard").mkdir()
    (w / "trained_badcard" / "card.json").write_text("{broken")
    (w / "trained_badcard" / "head.pt").write_bytes(b"\x80\x02trunc")
    # a real trained head (one epoch on the placeholder store), and a copy with its head.pt truncated
    trained = w / "trained"
    args = [
        "train",
        str(store),
        "--out",
        str(trained),
        "--epochs",
        "1",
        "--folder-labels",
        "all",
        "--monitor",
        "loss",
    ]
    assert main(args) == 0
    shutil.copytree(trained, w / "trained_badpt")
    pt = w / "trained_badpt" / "head.pt"
    pt.write_bytes(pt.read_bytes()[:64])
    return {"w": str(w), "comp": str(comp), "store": str(store), "sub": str(sub)}


ROWS: list[Row] = [
    # ---- infer -------------------------------------------------------------------------------------------
    R("infer-missing-data-dir", "infer --data-dir {w}/nope --out {w}/o.csv", "{w}/nope", "not a folder"),
    R("infer-data-dir-is-file", "infer --data-dir {w}/a_file --out {w}/o.csv", "a_file", "not a folder"),
    R("infer-models-typo", "infer --data-dir {comp} --models {w}/typo_dir --out {w}/o.csv", "typo_dir"),
    R("infer-models-is-file", "infer --data-dir {comp} --models {w}/a_file --out {w}/o.csv", "a_file"),
    R(
        "infer-models-no-heads",
        "infer --data-dir {comp} --models {w}/models_empty --out {w}/o.csv",
        "models_empty",
        "no exported heads",
    ),
    R("infer-no-models", "infer --data-dir {comp} --out {w}/o.csv", "nothing to score with", "--passthrough"),
    R(
        "infer-corrupt-head",
        "infer --data-dir {comp} --models {w}/models_corrupt --out {w}/o.csv",
        "models_corrupt",
        "export it again",
    ),
    R(
        "infer-broken-card",
        "infer --data-dir {comp} --models {w}/models_badcard --out {w}/o.csv",
        "lin.json",
        "re-export",
    ),
    R(
        "infer-card-without-species",
        "infer --data-dir {comp} --models {w}/models_nospecies --out {w}/o.csv",
        "lin.json",
        "not a model card",
    ),
    R(
        "infer-missing-species",
        "infer --data-dir {comp} --models {w}/models_partial --out {w}/o.csv",
        "4 of the 6 submission species",
        "--allow-missing-species",
    ),
    R(
        "infer-unknown-passthrough",
        "infer --data-dir {comp} --passthrough foo --out {w}/o.csv",
        "'foo'",
        "neither built in",
    ),
    R(
        "infer-workers-0",
        "infer --data-dir {comp} --passthrough placeholder --workers 0",
        "--workers",
        "1 or more",
    ),
    R("infer-workers-neg", "infer --data-dir {comp} --passthrough placeholder --workers -1", "--workers"),
    R("infer-workers-text", "infer --data-dir {comp} --passthrough placeholder --workers two", "--workers"),
    R("infer-limit-neg", "infer --data-dir {comp} --passthrough placeholder --limit -1", "--limit"),
    R("infer-limit-0", "infer --data-dir {comp} --passthrough placeholder --limit 0", "--limit", "1 or more"),
    R("infer-budget-0", "infer --data-dir {comp} --passthrough placeholder --budget-min 0", "--budget-min"),
    R(
        "infer-budget-nan",
        "infer --data-dir {comp} --passthrough placeholder --budget-min nan",
        "--budget-min",
    ),
    R(
        "infer-budget-inf",
        "infer --data-dir {comp} --passthrough placeholder --budget-min inf",
        "--budget-min",
    ),
    R(
        "infer-budget-neg",
        "infer --data-dir {comp} --passthrough placeholder --budget-min -3",
        "--budget-min",
    ),
    R(
        "infer-out-folder",
        "infer --data-dir {comp} --passthrough placeholder --out {w}/a_dir",
        "--out",
        "is a folder",
        "submission.csv",
    ),
    R(
        "infer-out-under-file",
        "infer --data-dir {comp} --passthrough placeholder --out {w}/a_file/s.csv",
        "--out",
        "parent",
    ),
    R(
        "infer-profile-folder",
        "infer --data-dir {comp} --passthrough placeholder --out {w}/o.csv --profile {w}/a_dir",
        "--profile",
        "is a folder",
    ),
    R(
        "infer-bad-split",
        "infer --data-dir {comp} --passthrough placeholder --split trainaudio",
        "trainaudio",
        "choose one of",
    ),
    R(
        "infer-empty-sample",
        "infer --data-dir {w}/c_empty_sample --passthrough placeholder --out {w}/o.csv",
        "sample_submission.csv",
        "the file is empty",
    ),
    R(
        "infer-dup-columns",
        "infer --data-dir {w}/c_dup_cols --passthrough placeholder --out {w}/o.csv",
        "sample_submission.csv",
        "repeated",
    ),
    R(
        "infer-no-row-id",
        "infer --data-dir {w}/c_no_row_id --passthrough placeholder --out {w}/o.csv",
        "sample_submission.csv",
        "row_id",
    ),
    R(
        "infer-only-row-id",
        "infer --data-dir {w}/c_only_row_id --passthrough placeholder --out {w}/o.csv",
        "sample_submission.csv",
        "no species",
    ),
    R(
        "infer-no-test-folder",
        "infer --data-dir {w}/c_no_test --passthrough placeholder --out {w}/o.csv",
        "test_soundscapes",
        "missing",
    ),
    R(
        "infer-empty-test-folder",
        "infer --data-dir {w}/c_empty_test --passthrough placeholder --out {w}/o.csv",
        "test_soundscapes",
        "no audio files",
    ),
    R(
        "infer-same-stem",
        "infer --data-dir {w}/c_same_stem --passthrough placeholder --out {w}/o.csv",
        "used twice",
        "rename",
    ),
    R("infer-missing-arg", "infer --passthrough placeholder", "--data-dir"),
    R(
        "infer-windows-bogus",
        "infer --data-dir {comp} --passthrough birdnet --windows bogus --out {w}/o.csv",
        "bogus",
        slow=True,
    ),
    # ---- score -------------------------------------------------------------------------------------------
    R("score-missing-file", "score {w}/nope.csv --data-dir {comp}", "nope.csv", "no such submission"),
    R("score-no-truth", "score {sub}", "--data-dir", "--truth"),
    R("score-truth-missing", "score {sub} --truth {w}/nope.csv", "--truth", "nope.csv"),
    R("score-no-labels-file", "score {sub} --data-dir {w}/c_no_labels", "test_labels_5s.csv", "--truth"),
    R(
        "score-empty-submission",
        "score {w}/sub_empty.csv --data-dir {comp}",
        "sub_empty.csv",
        "not a readable",
    ),
    R("score-short-submission", "score {w}/sub_short.csv --data-dir {comp}", "sub_short.csv", "lacks rows"),
    R("score-duplicate-rows", "score {w}/sub_dup.csv --data-dir {comp}", "sub_dup.csv", "repeats"),
    R("score-text-values", "score {w}/sub_text.csv --data-dir {comp}", "sub_text.csv", "non-numeric"),
    R("score-no-row-id", "score {w}/sub_no_row_id.csv --truth {comp}/test_labels_5s.csv", "row_id"),
    R("score-other-columns", "score {w}/sub_cols.csv --data-dir {comp}", "sub_cols.csv", "species columns"),
    R("score-threshold-2", "score {sub} --data-dir {comp} --threshold 2", "--threshold", "between 0 and 1"),
    R("score-threshold-text", "score {sub} --data-dir {comp} --threshold high", "--threshold"),
    R("score-truth-no-labels", "score {sub} --truth {w}/truth_no_labels.csv", "labels column"),
    R("score-out-folder", "score {sub} --data-dir {comp} --out {w}/a_dir", "--out", "is a folder"),
    R("score-missing-data-dir", "score {sub} --data-dir {w}/nope", "{w}/nope", "not a folder"),
    # ---- profile -----------------------------------------------------------------------------------------
    R("profile-files-0", "profile --data-dir {comp} --files 0", "--files", "1 or more"),
    R("profile-files-neg", "profile --data-dir {comp} --files -3", "--files"),
    R("profile-files-text", "profile --data-dir {comp} --files many", "--files"),
    R("profile-workers-0", "profile --data-dir {comp} --workers 0", "--workers"),
    R("profile-out-is-file", "profile --data-dir {comp} --out {w}/a_file", "--out", "is a file"),
    R("profile-out-json-folder", "profile --data-dir {comp} --out {w}/x.json", "--out", "is a folder", rc=2),
    R("profile-table-folder", "profile --data-dir {comp} --out {w}/p --table {w}/a_dir", "--table"),
    R("profile-unknown-only", "profile --data-dir {comp} --out {w}/p --only nonsense", "--only", "nonsense"),
    R("profile-missing-data-dir", "profile --data-dir {w}/nope --out {w}/p", "{w}/nope", "not a folder"),
    # ---- export (package: issue 10's; the CLI's options: this one) -----------------------------------------
    R("export-missing-folder", "export {w}/nope --out {w}/ds", "nope", "birdkit train"),
    R("export-trained-folder-is-file", "export {w}/a_file --out {w}/ds", "a_file"),
    R("export-short-title", "export {w}/trained --out {w}/ds --id me/birdkit-x --title abc", "--title"),
    R(
        "export-broken-card",
        "export {w}/trained_badcard --out {w}/ds",
        "card.json",
    ),
    R(
        "export-truncated-head",
        "export {w}/trained_badpt --out {w}/ds",
        "head.pt",
    ),
    R("export-out-is-file", "export {w}/trained --out {w}/a_file", "--out", "is a file"),
    R(
        "export-bad-id",
        "export {w}/trained --out {w}/ds --id not/a/valid/id",
        "--id",
    ),
    R(
        "export-missing-compiled",
        "export {w}/trained --out {w}/ds --encoder placeholder={w}/nope.tflite",
        "nope.tflite",
    ),
    R(
        "export-missing-parity-store",
        "export {w}/trained --out {w}/ds --parity-store {w}/nope",
        "nope",
    ),
    # ---- compile -----------------------------------------------------------------------------------------
    R("compile-missing-saved-model", "compile {w}/nope --out {w}/x.tflite", "nope", "saved_model.pb"),
    R("compile-missing-labels", "compile {w}/a_dir --out {w}/x.tflite --labels {w}/l.txt", "--labels"),
    R("compile-bad-quantize", "compile {w}/a_dir --out {w}/x.tflite --quantize int3", "--quantize"),
    R("compile-sample-rate-0", "compile {w}/a_dir --out {w}/x.tflite --sample-rate 0", "--sample-rate"),
    R("compile-sample-rate-text", "compile {w}/a_dir --out {w}/x.tflite --sample-rate fast", "--sample-rate"),
    R("compile-check-chunks-0", "compile {w}/a_dir --out {w}/x.tflite --check-chunks 0", "--check-chunks"),
    R("compile-out-folder", "compile {w}/a_dir --out {w}/a_dir", "--out", "is a folder"),
    R("compile-check-missing", "compile {w}/a_dir --out {w}/x.tflite --check {w}/nope.ogg", "--check"),
    R(
        "compile-bad-select-ops",
        "compile {w}/a_dir --out {w}/x.tflite --select-tf-ops maybe",
        "--select-tf-ops",
    ),
    R("compile-no-out", "compile {w}/a_dir", "--out"),
    # ---- kaggle ------------------------------------------------------------------------------------------
    R(
        "kaggle-publish-no-metadata",
        "kaggle publish {w}/empty_dir --dry-run",
        "dataset-metadata.json",
        "birdkit export",
    ),
    R("kaggle-publish-missing", "kaggle publish {w}/nope --dry-run", "nope"),
    R("kaggle-push-no-metadata", "kaggle push --dataset {w}/empty_dir --dry-run", "dataset-metadata.json"),
    R(
        "kaggle-push-missing-notebook",
        "kaggle push --dataset {w}/empty_dir --notebook {w}/nb.ipynb --dry-run",
        "empty_dir",
    ),
    R("kaggle-no-subcommand", "kaggle", "kaggle_command"),
    R("kaggle-bad-subcommand", "kaggle upload", "upload"),
    # ---- embed (the Dask/store issue) ----------------------------------------------------------------------
    R("embed-unknown-encoder", "embed {comp} --out {w}/e1 --encoder foo", "foo"),
    R("embed-missing-data-dir", "embed {w}/nope --out {w}/e2 --encoder placeholder", "nope"),
    R("embed-bad-split", "embed {comp} --out {w}/e3 --split train", "--split"),
    R(
        "embed-workers-0",
        "embed {comp} --out {w}/e4 --encoder placeholder --workers 0",
        "--workers",
    ),
    R(
        "embed-workers-neg",
        "embed {comp} --out {w}/e5 --encoder placeholder --workers -1",
        "--workers",
    ),
    R(
        "embed-shard-files-0",
        "embed {comp} --out {w}/e6 --encoder placeholder --shard-files 0",
        "--shard-files",
    ),
    R("embed-out-is-file", "embed {comp} --out {w}/a_file --encoder placeholder", "a_file"),
    R(
        "embed-limit-neg",
        "embed {comp} --out {w}/e7 --encoder placeholder --limit -1",
        "--limit",
    ),
    R(
        "embed-windows-bogus",
        "embed {comp} --out {w}/e8 --windows bogus",
        "bogus",
        slow=True,
    ),
    R(
        "embed-truncated-meta",
        "embed {comp} --out {w}/store_badmeta --encoder placeholder",
        "_meta.json",
    ),
    R("embed-bad-engine", "embed {comp} --out {w}/e9 --engine spark", "--engine"),
    # ---- label (the encoders issue) -----------------------------------------------------------------------
    R("label-missing-store", "label {w}/nope", "nope"),
    R("label-threshold-2", "label {store} --threshold 2", "--threshold"),
    R("label-threshold-nan", "label {store} --threshold nan", "--threshold"),
    R("label-bad-folder-labels", "label {store} --folder-labels some", "--folder-labels"),
    R("label-missing-surrogate", "label {store} --surrogate {w}/nope", "nope"),
    R("label-truncated-meta", "label {w}/store_badmeta", "_meta.json"),
    R("label-truncated-shard", "label {w}/store_badshard", "parquet"),
    R("label-top-neg", "label {store} --top -1", "--top"),
    # ---- train (the accuracy issue) -----------------------------------------------------------------------
    R("train-missing-store", "train {w}/nope --out {w}/m1", "nope"),
    R("train-no-out", "train {store}", "--out"),
    R(
        "train-out-is-file",
        "train {store} --out {w}/a_file",
        "a_file",
    ),
    R("train-param-text", "train {store} --out {w}/m2 --param gamma_pos=abc", "gamma_pos"),
    R("train-param-unknown", "train {store} --out {w}/m3 --param nosuch=1", "nosuch"),
    R("train-param-no-equals", "train {store} --out {w}/m4 --param gamma_pos", "--param"),
    R("train-threads-neg", "train {store} --out {w}/m5 --threads -2", "--threads"),
    R("train-threads-0", "train {store} --out {w}/m6 --threads 0", "--threads"),
    R("train-batch-0", "train {store} --out {w}/m7 --batch-size 0", "--batch-size"),
    R("train-batch-neg", "train {store} --out {w}/m8 --batch-size -5", "--batch-size"),
    R("train-epochs-0", "train {store} --out {w}/m9 --epochs 0", "--epochs"),
    R("train-epochs-neg", "train {store} --out {w}/m10 --epochs -1", "--epochs"),
    R("train-lr-0", "train {store} --out {w}/m11 --lr 0", "--lr"),
    R(
        "train-val-fraction",
        "train {store} --out {w}/m12 --val-fraction 1.5",
        "--val-fraction",
    ),
    R("train-dropout", "train {store} --out {w}/m13 --dropout 2", "--dropout"),
    R("train-hidden-0", "train {store} --out {w}/m14 --head mlp --hidden 0", "--hidden"),
    R("train-bad-loss", "train {store} --out {w}/m15 --loss hinge", "--loss"),
    R(
        "train-truth-missing",
        "train {store} --out {w}/m16 --test-store {store} --truth {w}/nope.csv",
        "nope.csv",
    ),
    R("train-truncated-meta", "train {w}/store_badmeta --out {w}/m17", "_meta.json"),
    R("train-truncated-shard", "train {w}/store_badshard --out {w}/m18", "parquet"),
    R("train-patience-neg", "train {store} --out {w}/m19 --patience -1", "--patience"),
    # ---- sweep, tune, explore, demo, mix, ssl ---------------------------------------------------------------
    R("sweep-missing-store", "sweep {w}/nope --out {w}/s1", "nope"),
    R("sweep-bad-grid", "sweep {store} --out {w}/s2 --grids nosuch", "--grids"),
    R(
        "sweep-max-runs-0",
        "sweep {store} --out {w}/s3 --max-runs 0",
        "--max-runs",
    ),
    R(
        "sweep-bad-label-mode",
        "sweep {store} --out {w}/s4 --label-modes some",
        "--label-modes",
    ),
    R(
        "tune-missing-folder",
        "tune {w}/nope --passthrough placeholder --out {w}/t1",
        "nope",
    ),
    R(
        "tune-trials-0",
        "tune {comp} --passthrough placeholder --trials 0 --out {w}/t2",
        "--trials",
    ),
    R("tune-missing-models", "tune {comp} --models {w}/nope --out {w}/t3", "nope"),
    R(
        "tune-cooccurrence-threshold-2",
        "tune {comp} --passthrough placeholder --cooccurrence {store} --cooccurrence-threshold 2 --out {w}/t4",
        "--cooccurrence-threshold",
    ),
    R("explore-missing-store", "explore {w}/nope --out {w}/x1", "nope"),
    R("explore-threshold-2", "explore {store} --out {w}/x2 --threshold 2", "--threshold"),
    R("explore-clusters-0", "explore {store} --out {w}/x3 --clusters 0", "--clusters"),
    R(
        "explore-top-n-0",
        "explore {store} --out {w}/x4 --top-n 0",
        "--top-n",
    ),
    R(
        "explore-out-is-file",
        "explore {store} --out {w}/a_file",
        "a_file",
    ),
    R(
        "explore-bad-projection",
        "explore {store} --out {w}/x5 --projection tsne",
        "--projection",
    ),
    R("explore-truncated-shard", "explore {w}/store_badshard --out {w}/x6", "parquet"),
    R("demo-missing-data-dir", "demo --data-dir {w}/nope --out {w}/d1", "nope"),
    R(
        "demo-workers-0",
        "demo --out {w}/d2 --workers 0",
        "--workers",
    ),
    R(
        "demo-out-is-file",
        "demo --out {w}/a_file",
        "a_file",
    ),
    R("mix-files-0", "mix {comp} --out {w}/mx1 --files 0", "--files"),
    R("mix-seconds-0", "mix {comp} --out {w}/mx2 --seconds 0", "--seconds"),
    R("mix-bad-range", "mix {comp} --out {w}/mx3 --species 5,2", "--species"),
    R("mix-holdout-2", "mix {comp} --out {w}/mx4 --holdout 2", "--holdout"),
    R("ssl-no-subcommand", "ssl", "ssl"),
    R(
        "selftrain-no-validation",
        "selftrain {store} --out {w}/st1 --soundscapes {store}",
        "--validation-store",
    ),
    R(
        "selftrain-power-0",
        "selftrain {store} --out {w}/st2 --soundscapes {store} --validation-store {store} --power 0",
        "--power",
    ),
    R(
        "selftrain-rounds-0",
        "selftrain {store} --out {w}/st3 --soundscapes {store} --validation-store {store} --rounds 0",
        "--rounds",
    ),
    R("train-mixup-negative", "train {store} --out {w}/tm --mixup -1", "--mixup"),
    R("train-label-smoothing-1", "train {store} --out {w}/ts --label-smoothing 1", "--label-smoothing"),
    R("no-command", "", "command"),
    R("unknown-command", "frobnicate", "frobnicate"),
]


def _params() -> list:
    out = []
    for row in ROWS:
        marks = []
        if row.slow:
            marks.append(pytest.mark.slow)
        if row.other and "skipped here" in row.other:
            marks.append(pytest.mark.skip(reason=f"fails today, owned elsewhere: {row.other}"))
        elif row.other:
            marks.append(pytest.mark.xfail(reason=f"fails today, owned elsewhere: {row.other}", strict=False))
        out.append(pytest.param(row, id=row.id, marks=marks))
    return out


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``birdkit ARGV`` in this process: (exit code, stdout, stderr); argparse's exits count as exit codes."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("row", _params())
def test_bad_input_fails_cleanly(row: Row, ctx: dict[str, str], capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # nothing a row writes by default lands in the checkout
    argv = [a.format(**ctx) for a in row.argv]
    before = {p: p.read_bytes() for p in Path(ctx["w"]).glob("*.csv")}
    rc, out, err = run_cli(argv, capsys)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert rc == row.rc, f"exit {rc}\n{err}"
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(lines) == 1, err
    line = lines[0][lines[0].index("birdkit") :]  # (after a progress bar left open: reported to its owner)
    known = argv and argv[0] in COMMANDS
    assert line.startswith(f"birdkit {argv[0]}: error: " if known else "birdkit: error: "), line
    for s in row.says:
        assert s.format(**ctx) in line, f"{s.format(**ctx)!r} not in {line!r}"
    assert {p: p.read_bytes() for p in before} == before  # no input was touched
    assert not list(Path(ctx["w"]).glob("**/.*.tmp"))  # and no temporary file left behind


def test_the_table_covers_every_command_with_over_a_hundred_rows():
    commands = {r.argv[0] for r in ROWS if r.argv}
    assert len(ROWS) >= 100
    assert {"infer", "score", "profile", "export", "compile", "kaggle", "embed", "label", "train", "sweep",
            "explore", "demo", "tune", "mix", "selftrain", "ssl"} <= commands  # fmt: skip


def test_no_traceback_for_an_unexpected_error_outside_verbose(ctx, capsys, monkeypatch):
    """A bug (any exception that is not a BirdkitError) is one line naming its type and exit code 1; under
    --verbose its traceback shows."""
    import birdkit.workflows.score as score

    def boom(*a, **k):
        raise ZeroDivisionError("deliberate")

    monkeypatch.setattr(score, "score_file", boom)
    rc, _, err = run_cli(["score", ctx["sub"], "--data-dir", ctx["comp"]], capsys)
    assert (
        rc == 1 and "Traceback" not in err and "ZeroDivisionError: deliberate" in err and "--verbose" in err
    )
    with pytest.raises(ZeroDivisionError):
        main(["--verbose", "score", ctx["sub"], "--data-dir", ctx["comp"]])


def test_os_errors_name_the_file():
    from birdkit.cli.main import describe

    msg = describe(FileNotFoundError(2, "No such file or directory", "/x/y.parquet"))
    assert msg.startswith("/x/y.parquet: No such file or directory") and "check the path" in msg


def test_the_leak_scan_finds_a_home_path_inside_a_sentence(tmp_path):
    """Export hardening: a card note written on another machine still names a home folder; it is caught."""
    from birdkit.package.scan import scan_for_secrets

    (tmp_path / "heads").mkdir()
    card = {"name": "x", "notes": "trained from data at /home/me/data/minicomp on my box"}
    (tmp_path / "heads" / "x.json").write_text(json.dumps(card))
    (tmp_path / "heads" / "y.json").write_text(
        json.dumps({"notes": r"data in C:\Users\ann\birds, on /kaggle/input"})
    )
    (tmp_path / "ok.json").write_text(
        json.dumps({"notes": "mounted at /kaggle/input/birdkit; see https://x.org/home/a"})
    )
    findings = scan_for_secrets(tmp_path, env={})
    assert any(f.startswith("heads/x.json:1: holds a home folder path") for f in findings), findings
    assert any(f.startswith("heads/y.json:1: holds a Windows user folder path") for f in findings), findings
    assert not [f for f in findings if f.startswith("ok.json")]
    assert all("/home/me" not in f for f in findings)  # the finding says where, not the value


def test_native_log_lines_are_dropped_and_everything_else_passes():
    """Quiet output: the fd-2 filter drops absl/TFLite INFO lines and keeps errors and progress bars."""
    import os
    import threading

    from birdkit.cli.quiet import _pump

    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    t = threading.Thread(target=_pump, args=(src_r, dst_w))
    t.start()
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1795989341.721622   31462 port.cc:153] oneDNN custom operations are on.\n",
        b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
        b"E0000 00:00:1795989341.721622   31462 foo.cc:1] a real error\n",
        b"birdkit infer: error: --out x: is a folder\n",
        b"infer:  50%|#####     | 1/2\r",
    ]
    os.write(src_w, b"".join(lines))
    os.close(src_w)
    t.join(5)
    os.close(dst_w)
    got = b""
    while chunk := os.read(dst_r, 65536):
        got += chunk
    os.close(dst_r)
    assert got == b"".join(lines[3:])


def test_the_console_command_prints_no_native_noise(synthetic_comp, tmp_path):
    """`birdkit infer` with a TFLite head, as a user runs it: no absl/XNNPACK lines unless --verbose."""
    import subprocess
    import sys

    pytest.importorskip("torch")
    models = _head_folder(tmp_path / "models", Competition(synthetic_comp).species)
    argv = [sys.executable, "-m", "birdkit.cli.main", "infer", "--data-dir", str(synthetic_comp), "--models",
            str(models), "--out", str(tmp_path / "s.csv"), "--quiet"]  # fmt: skip
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    for noise in ("XNNPACK", "I0000", "absl::InitializeLog", "is deprecated"):
        assert noise not in p.stderr, p.stderr
    assert "competition metric" in p.stdout


def test_the_shipped_kit_passes_its_own_leak_scan(tmp_path):
    """The patterns must not flag the kit's own source (scan.py ships in every export)."""
    from birdkit.package.layout import copy_package
    from birdkit.package.scan import scan_for_secrets

    copy_package(tmp_path / "birdkit")
    assert scan_for_secrets(tmp_path, env={}) == []
