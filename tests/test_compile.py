"""`birdkit compile`: a Perch-shaped SavedModel (5 s at 32 kHz in; embedding and logits out) -> TFLite.

Perch cannot be downloaded here, so the tests build a small SavedModel with the same signature (STFT front end,
log-mel, strided convolutions, pooled embedding, logits), compile it with the real converter and run it with the
real TFLite runtime on real audio from the minicomp, against the SavedModel's own outputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from standins import StandInSpec, build_standin_encoder

from birdkit.audio import load_chunks
from birdkit.package import check as ck
from birdkit.package import compile as bc

pytestmark = pytest.mark.shared

SR = 32_000


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return build_standin_encoder(tmp_path_factory.mktemp("standin") / "saved_model")


@pytest.fixture(scope="module")
def chunks(minicomp):
    """12 real 5 s chunks at 32 kHz from a minicomp test soundscape (an odd count: the last batch is padded)."""
    f = sorted((minicomp / "test_soundscapes").glob("*.ogg"))[0]
    return load_chunks(f, SR).chunks[20:32]


@pytest.fixture(scope="module")
def compiled(standin, tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    return {q: bc.compile_saved_model(standin, out / f"standin_{q}.tflite", quantize=q) for q in bc.QUANTIZE}


@pytest.fixture(scope="module")
def reference(standin, chunks):
    ref, _ = ck.run_saved_model(standin, chunks)
    return ref


def test_standin_has_perchs_signature(compiled):
    card = json.loads(compiled["none"].path.with_suffix(".json").read_text())
    assert card["input"] == {"name": "inputs", "shape": [-1, 5 * SR]}
    assert card["sample_rate"] == SR and card["window_s"] == 5.0
    assert card["roles"] == {"embedding": "embedding", "logits": "logits"}
    assert card["outputs"] == {"embedding": [-1, 128], "logits": [-1, 64]}
    assert card["select_tf_ops"] is False and card["flex_ops"] == []
    assert card["sha256"] == bc.sha256_bytes(compiled["none"].path.read_bytes())
    assert "/" not in card["source"]  # the SavedModel's folder name, never a local path


def test_float_tflite_matches_the_saved_model(compiled, chunks, reference):
    got = ck.run_signature(compiled["none"].path, chunks, batch_size=8)
    acc = ck.agreement(reference, got, {"embedding": "embedding", "logits": "logits"})
    # float32 TFLite vs TensorFlow: summation order only
    for name in ("embedding", "logits"):
        scale = float(np.abs(reference[name]).max())
        assert acc[name]["max_abs"] <= 1e-4 * max(1.0, scale), (name, acc[name])
    assert acc["embedding"]["min_cosine"] > 0.99999
    assert acc["logits"]["top1_agree"] == 1.0


def test_dynamic_range_quantisation_shrinks_and_stays_close(compiled, chunks, reference):
    f, q = compiled["none"], compiled["dynamic"]
    assert q.size < 0.5 * f.size  # int8 weights
    got = ck.run_signature(q.path, chunks, batch_size=8)
    acc = ck.agreement(reference, got, {"embedding": "embedding", "logits": "logits"})
    assert acc["embedding"]["max_abs"] > 1e-5  # it really is quantised, not the float graph again
    assert acc["embedding"]["min_cosine"] > 0.99
    assert acc["logits"]["rel_l2"] < 0.05
    assert acc["logits"]["top1_agree"] >= 0.9


def test_check_reports_accuracy_and_speed(standin, compiled, chunks):
    c = ck.check_compiled(standin, compiled["dynamic"].path, chunks, batch_size=4, repeats=1)
    assert c["rows"] == len(chunks)
    assert set(c["accuracy"]) == {"embedding", "logits"}
    assert c["seconds_per_chunk"]["tflite"] > 0 and c["seconds_per_chunk"]["saved_model"] > 0
    ck.record_check(compiled["dynamic"].path, c)
    assert "check" in json.loads(compiled["dynamic"].path.with_suffix(".json").read_text())


def test_tflite_encoder_embeds_like_the_saved_model(compiled, chunks, reference):
    from birdkit.encoders.tflite import TFLiteEncoder

    enc = TFLiteEncoder(compiled["none"].path, batch_size=5)  # 12 chunks: batches 5, 5, 2 (+3 padding)
    assert (enc.sample_rate, enc.embedding_dim, len(enc.classes)) == (SR, 128, 64)
    out = enc.embed(chunks)
    emb, logits = out.embeddings, out.logits
    np.testing.assert_allclose(emb, reference["embedding"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, reference["logits"], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="expects chunks"):
        enc.embed(chunks[:, :1000])


def test_select_tf_ops_only_where_needed(tmp_path):
    """An op with no TFLite builtin (bicubic resize): `never` fails naming the fix, `auto` falls back to
    SELECT_TF_OPS and records the Flex ops it needs."""
    sm = build_standin_encoder(tmp_path / "sm", StandInSpec(select_op=True, channels=(4,), n_classes=8))
    with pytest.raises(bc.CompileError, match="select-tf-ops auto"):
        bc.compile_saved_model(sm, tmp_path / "never.tflite", select_tf_ops="never")
    r = bc.compile_saved_model(sm, tmp_path / "auto.tflite")
    assert r.select_tf_ops and r.flex_ops == ["FlexResizeBicubic"]
    card = json.loads((tmp_path / "auto.json").read_text())
    assert card["select_tf_ops"] is True and card["outputs"]["embedding"] == [-1, 128]
    from birdkit.encoders.tflite import TFLiteEncoder

    try:
        enc = TFLiteEncoder(r.path, batch_size=2)
    except RuntimeError as exc:  # this machine's interpreters have no Flex delegate: say so, plainly
        assert "Flex delegate" in str(exc) and "FlexResizeBicubic" in str(exc)
    else:  # an interpreter with Flex (e.g. Kaggle's TensorFlow): it must then agree with the SavedModel
        x = np.random.default_rng(0).normal(size=(2, 5 * SR)).astype(np.float32)
        ref, _ = ck.run_saved_model(sm, x)
        np.testing.assert_allclose(enc.embed(x).embeddings, ref["embedding"], atol=1e-4, rtol=1e-4)


def test_compile_errors_name_the_folder_and_fix(tmp_path, standin):
    with pytest.raises(bc.CompileError, match="not a TensorFlow SavedModel"):
        bc.compile_saved_model(tmp_path, tmp_path / "x.tflite")
    with pytest.raises(bc.CompileError, match="no signature 'nope'"):
        bc.compile_saved_model(standin, tmp_path / "x.tflite", signature="nope")
    with pytest.raises(bc.CompileError, match="must end in .tflite"):
        bc.compile_saved_model(standin, tmp_path / "x.bin")


def test_compile_cli_with_check(standin, minicomp, tmp_path, capsys):
    from birdkit.cli.main import main

    f = sorted((minicomp / "test_soundscapes").glob("*.ogg"))[0]
    out = tmp_path / "enc" / "perch.tflite"
    rc = main(
        [
            "compile",
            str(standin),
            "--out",
            str(out),
            "--quantize",
            "dynamic",
            "--check",
            str(f),
            "--check-chunks",
            "4",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "quantize dynamic" in text and "select TF ops: none" in text and "min_cosine" in text
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["name"] == "perch" and card["quantize"] == "dynamic" and card["check"]["rows"] == 4


def test_export_ships_a_compiled_encoder(compiled, tmp_path, minicomp):
    """A head on a compiled encoder: export copies encoders/<name>.tflite and its card beside the head."""
    import torch

    from birdkit.heads.model import build_head, head_spec
    from birdkit.package.export import ExportError, export

    species = ["amecro", "amerob", "bkcchi"]
    model = tmp_path / "models" / "on_perch"
    model.mkdir(parents=True)
    spec = head_spec("linear", 128, len(species))
    torch.save(build_head(spec).state_dict(), model / "head.pt")
    card = {
        "name": "on_perch",
        "species": species,
        "encoder": {"name": "perch"},
        "embedding_dim": 128,
        "head": spec,
    }
    (model / "card.json").write_text(json.dumps(card))
    with pytest.raises(ExportError, match="birdkit compile"):
        export([model], tmp_path / "ds0", dataset_id="someone/birdkit-models")
    r = export(
        [model],
        tmp_path / "ds",
        dataset_id="someone/birdkit-models",
        encoders={"perch": compiled["none"].path},
    )
    assert r.encoders == ["perch"]
    assert (tmp_path / "ds" / "encoders" / "perch.tflite").read_bytes() == compiled["none"].path.read_bytes()
    side = json.loads((tmp_path / "ds" / "encoders" / "perch.json").read_text())
    assert side["embedding_dim"] == 128 and side["roles"]["embedding"] == "embedding"
    assert not (tmp_path / "ds" / "encoders" / "birdnet").exists()  # no head needs BirdNET
