"""Inference on the synthetic competition with the placeholder encoder (no BirdNET, no ../shared): the config, the
plan, float64 probabilities without ties up to the written file, and the same file whatever the scheduling."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdkit.competition import Competition
from birdkit.encoders import EncoderOutputs
from birdkit.encoders.placeholder import Placeholder
from birdkit.errors import OptionError
from birdkit.infer import (
    InferConfig,
    InferError,
    SubmissionError,
    check_submission,
    make_plan,
    run_inference,
    sigmoid,
)
from birdkit.infer.files import FileJob, FileResult
from birdkit.infer.submission import assemble, write_submission


class HighLogits(Placeholder):
    """Logits 17.5 and 18.0 on alternate rows for every class: sure calls that float32 would both round to 1."""

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        out = super().embed(chunks)
        logits = np.where(np.arange(len(out))[:, None] % 2 == 0, 17.5, 18.0) * np.ones_like(out.logits)
        return EncoderOutputs(out.embeddings, logits)


def test_sigmoid_keeps_sure_calls_apart():
    assert np.float32(sigmoid(np.float32(17.5))) == 1.0  # why it must stay float64
    p = sigmoid(np.array([17.5, 18.0, 29.0, 30.0], dtype=np.float32))
    assert p.dtype == np.float64 and len(set(p.tolist())) == 4 and p.max() < 1.0


def test_assembled_and_written_probabilities_stay_distinct(tmp_path):
    species = ["a", "b"]
    jobs = [FileJob(0, str(tmp_path / "x.ogg"), 1)]
    probs = sigmoid(np.array([[17.5, 0.0], [18.0, 0.0]]))
    results = {0: FileResult(jobs[0], ["x_5", "x_10"], probs)}
    row_ids, assembled, errors = assemble(jobs, results, species, {})
    assert errors == [] and assembled.dtype == np.float64
    write_submission(tmp_path / "s.csv", row_ids, assembled, species)
    written = pd.read_csv(tmp_path / "s.csv")
    a, b = written["a"]
    assert a != b and a < b < 1.0
    np.testing.assert_array_equal(written[species].to_numpy(), probs)


def test_logits_near_18_are_written_distinct_end_to_end(synthetic_comp, tmp_path):
    r = run_inference(InferConfig(synthetic_comp, tmp_path / "s.csv", passthrough=f"{__name__}:HighLogits",
                                  progress=False))  # fmt: skip
    assert r.error is None and r.errors == []
    written = pd.read_csv(tmp_path / "s.csv")
    values = written.iloc[:, 1:].to_numpy()
    mapped = ~written.columns[1:].isin(r.unmapped)
    assert set(np.unique(values[:, mapped])) == {sigmoid(17.5), sigmoid(18.0)}
    assert values.max() < 1.0


def test_the_file_is_the_same_however_it_is_scheduled(synthetic_comp, tmp_path):
    """One process with decoding ahead, inline decoding, and worker processes: byte-identical files."""
    base = InferConfig(synthetic_comp, split="train_audio", passthrough="placeholder", progress=False)
    runs = {
        "ahead": replace(base, out=tmp_path / "a.csv", workers=1),
        "inline": replace(base, out=tmp_path / "b.csv", workers=1, overlap=False),
        "workers": replace(base, out=tmp_path / "c.csv", workers=2),
    }
    results = {k: run_inference(c) for k, c in runs.items()}
    assert results["workers"].profile.workers == 2 and results["ahead"].profile.config["overlap"] is True
    assert results["inline"].profile.config["overlap"] is False
    files = {k: c.out.read_bytes() for k, c in runs.items()}
    assert files["ahead"] == files["inline"] == files["workers"]
    assert results["ahead"].frame.iloc[:, 1:].to_numpy().dtype == np.float64
    assert results["ahead"].plan["name"] == "placeholder passthrough"


def test_plan_species_mapping_is_made_once_in_the_parent(synthetic_comp):
    comp = Competition(synthetic_comp)
    plan, built = make_plan(comp, passthrough="placeholder")
    assert plan.species == tuple(comp.species) and not hasattr(plan, "data_dir")
    assert sorted(i for i in plan.species_index if i >= 0) == list(range(len(built[0].classes)))
    assert plan.unmapped == [] and plan.fastest() is None  # the placeholder declares no faster options


def test_bad_options_and_encoders_say_what_to_do(synthetic_comp, tmp_path):
    for bad in ({"workers": -1}, {"limit": -2}, {"budget_min": 0}, {"guard_after": 0}, {"batch_size": 0}):
        with pytest.raises(OptionError):
            InferConfig(synthetic_comp, **bad)
    with pytest.raises(InferError, match="neither built in"):
        make_plan(Competition(synthetic_comp), passthrough="nosuchencoder")
    (tmp_path / "s.csv").write_text("a good submission\n")
    with pytest.raises(InferError, match="nothing to score with"):
        run_inference(InferConfig(synthetic_comp, tmp_path / "s.csv", fallback=False, progress=False))
    assert (tmp_path / "s.csv").read_text() == "a good submission\n"  # without fallback: left as it was
    r = run_inference(InferConfig(synthetic_comp, tmp_path / "s.csv", fallback=True, progress=False))
    assert "nothing to score with" in r.error and len(r.frame) == 24  # with it (Kaggle): the prior-only file


def test_a_card_that_is_not_one_names_the_file(tmp_path):
    from birdkit.heads.runner import ModelsError, load_models

    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "x.tflite").write_bytes(b"")
    (tmp_path / "heads" / "x.json").write_text('{"name": "x", "species": ["a"]}')  # no encoder, shape, head
    with pytest.raises(ModelsError, match=r"x\.json: not a model card"):
        load_models(tmp_path)
    (tmp_path / "heads" / "x.json").write_text(
        '{"name": "x", "species": [], "encoder": {"name": "placeholder"}, "embedding_dim": 64, "head": {}}'
    )
    with pytest.raises(ModelsError, match="lists no species"):
        load_models(tmp_path)


# ---- issue 11: a failed or odd run never costs a good file or gives a silent wrong answer -------------------


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from birdkit.cli.main import main

    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def head_folders(synthetic_comp, tmp_path_factory):
    """Exported-layout folders with a linear placeholder head: for every species, for two, and a corrupt one."""
    from test_bad_inputs import _head_folder

    species = Competition(synthetic_comp).species
    root = tmp_path_factory.mktemp("heads")
    return {
        "ok": _head_folder(root / "ok", species),
        "partial": _head_folder(root / "partial", species[:2]),
        "corrupt": _head_folder(root / "corrupt", species, tflite=b"TFL3 cut short"),
    }


@pytest.mark.parametrize(
    "extra",
    [
        ["--models", "{tmp}/typo_dir"],
        ["--models", "{corrupt}"],
        ["--models", "{partial}"],
        ["--passthrough", "nosuchencoder"],
        ["--passthrough", "placeholder", "--workers", "0"],
        ["--passthrough", "placeholder", "--budget-min", "nan"],
    ],
    ids=["models-typo", "corrupt-head", "missing-species", "unknown-passthrough", "workers-0", "budget-nan"],
)
def test_a_failed_infer_leaves_the_good_submission_alone(
    synthetic_comp, head_folders, tmp_path, capsys, extra
):
    """Item 1: `cp good.csv keep.csv; birdkit infer ... --out keep.csv` that fails keeps keep.csv byte for byte."""
    good = tmp_path / "keep.csv"
    good.write_bytes((Path(synthetic_comp) / "sample_submission.csv").read_bytes())  # stands for a good file
    before = good.read_bytes()
    fmt = {
        "tmp": str(tmp_path),
        "corrupt": str(head_folders["corrupt"]),
        "partial": str(head_folders["partial"]),
    }
    argv = ["infer", "--data-dir", str(synthetic_comp), "--out", str(good), "--quiet"]
    rc, _, err = _cli(argv + [a.format(**fmt) for a in extra], capsys)
    assert rc == 2 and "Traceback" not in err and "error:" in err
    assert good.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_heads_for_another_species_list_are_refused_unless_allowed(
    synthetic_comp, head_folders, tmp_path, capsys
):
    """Item 2: a head lacking submission species is an error naming them; allowed, a loud warning and the prior."""
    species = Competition(synthetic_comp).species
    out = tmp_path / "s.csv"
    argv = ["infer", "--data-dir", str(synthetic_comp), "--models", str(head_folders["partial"]), "--out", str(out),
            "--quiet"]  # fmt: skip
    rc, _, err = _cli(argv, capsys)
    assert rc == 2 and not out.exists()
    assert all(s in err for s in species[2:]) and "--allow-missing-species" in err
    rc, _, err = _cli([*argv, "--allow-missing-species"], capsys)
    assert rc == 0 and "WARNING: 4 species no head predicts" in err and all(s in err for s in species[2:])
    df = check_submission(out, synthetic_comp)
    assert (df[species[2:]].nunique() == 1).all()  # the prior: one value per column
    assert (df[species[:2]].nunique() > 1).all()  # the head's own predictions
    r = run_inference(InferConfig(synthetic_comp, tmp_path / "nb.csv", models=head_folders["partial"],
                                  progress=False))  # fmt: skip
    assert r.error is None and r.missing_species == species[2:]  # the notebook's path scores what it can


def _comp_without_test_audio(synthetic_comp: Path, tmp_path: Path) -> Path:
    """The synthetic competition linked into ``tmp_path/comp``, with an empty test_soundscapes/ to fill."""
    root = tmp_path / "comp"
    root.mkdir()
    for e in Path(synthetic_comp).iterdir():
        if e.name != "test_soundscapes":
            (root / e.name).symlink_to(e)
    (root / "test_soundscapes").mkdir()
    return root


def _truncated_comp(synthetic_comp: Path, tmp_path: Path) -> tuple[Path, str]:
    """The synthetic competition with its first test soundscape cut to 30 s (sample_submission lists 60 s)."""
    import soundfile as sf

    root = _comp_without_test_audio(synthetic_comp, tmp_path)
    files = sorted((Path(synthetic_comp) / "test_soundscapes").iterdir())
    y, sr = sf.read(files[0])
    sf.write(root / "test_soundscapes" / files[0].name, y[: 30 * sr], sr)
    (root / "test_soundscapes" / files[1].name).symlink_to(files[1])
    return root, files[0].stem


def test_a_truncated_file_gets_exactly_the_listed_rows_and_is_reported(synthetic_comp, tmp_path, capsys):
    """Item 3: every row sample_submission.csv lists is present once; rows the audio lacks get the prior, said."""
    comp, stem = _truncated_comp(synthetic_comp, tmp_path)
    out = tmp_path / "s.csv"
    rc, _, err = _cli(["infer", "--data-dir", str(comp), "--passthrough", "placeholder", "--out", str(out),
                       "--quiet"], capsys)  # fmt: skip
    assert rc == 0
    assert stem in err and "6 listed rows get the prior" in err
    df = check_submission(out, comp)
    sample = pd.read_csv(comp / "sample_submission.csv")
    assert sorted(df["row_id"]) == sorted(sample["row_id"]) and not df["row_id"].duplicated().any()
    cut = df.set_index("row_id").loc[[f"{stem}_{s}" for s in range(35, 65, 5)]]
    assert (cut.nunique() == 1).all()  # the six missing rows: the prior


def test_check_submission_rejects_rows_short_of_the_listed_ones(synthetic_comp, tmp_path):
    """The kit's own check fails a file that has fewer rows for a file than sample_submission.csv lists."""
    comp, stem = _truncated_comp(synthetic_comp, tmp_path)
    out = tmp_path / "s.csv"
    run_inference(InferConfig(comp, out, passthrough="placeholder", progress=False))
    df = pd.read_csv(out)
    df[~df["row_id"].isin([f"{stem}_{s}" for s in range(35, 65, 5)])].to_csv(
        tmp_path / "short.csv", index=False
    )
    with pytest.raises(SubmissionError, match="differ from the 12 that sample_submission.csv lists"):
        check_submission(tmp_path / "short.csv", comp)


def test_rows_listed_for_a_missing_file_get_the_prior_and_are_reported(synthetic_comp, tmp_path, capsys):
    comp, stem = _truncated_comp(synthetic_comp, tmp_path)
    (comp / "test_soundscapes" / f"{stem}.ogg").unlink()
    out = tmp_path / "s.csv"
    rc, _, err = _cli(["infer", "--data-dir", str(comp), "--passthrough", "placeholder", "--out", str(out),
                       "--quiet"], capsys)  # fmt: skip
    assert rc == 1 and f"{stem}: listed in sample_submission.csv but no audio file" in err
    df = check_submission(out, comp)
    assert len(df) == len(pd.read_csv(comp / "sample_submission.csv"))


def test_files_sharing_a_name_are_refused_or_scored_once(synthetic_comp, tmp_path, capsys):
    """Item 3: a.ogg and a.wav would repeat row ids: the CLI refuses; the notebook's path scores the first."""
    import shutil

    root = _comp_without_test_audio(synthetic_comp, tmp_path)
    for f in sorted((Path(synthetic_comp) / "test_soundscapes").iterdir()):
        shutil.copy(f, root / "test_soundscapes" / f.name)
    first = sorted((root / "test_soundscapes").iterdir())[0]
    shutil.copy(first, first.with_suffix(".wav"))
    rc, _, err = _cli(["infer", "--data-dir", str(root), "--passthrough", "placeholder", "--out",
                       str(tmp_path / "s.csv"), "--quiet"], capsys)  # fmt: skip
    assert rc == 2 and "used twice" in err and first.stem in err and not (tmp_path / "s.csv").exists()
    r = run_inference(InferConfig(root, tmp_path / "nb.csv", passthrough="placeholder", progress=False))
    assert not r.frame["row_id"].duplicated().any()
    assert [e["file"] for e in r.errors] == [str(first.with_suffix(".wav"))]


def test_limit_minus_one_is_refused_not_wrapped(synthetic_comp, tmp_path, capsys):
    rc, _, err = _cli(["infer", "--data-dir", str(synthetic_comp), "--passthrough", "placeholder", "--limit", "-1",
                       "--out", str(tmp_path / "s.csv")], capsys)  # fmt: skip
    assert rc == 2 and "--limit" in err and not (tmp_path / "s.csv").exists()
    with pytest.raises(OptionError, match="--limit -1"):
        InferConfig(synthetic_comp, limit=-1)


def test_a_worker_killed_by_a_file_is_not_a_silent_prior(synthetic_comp, tmp_path, capsys):
    """Item 6: the file that kills its worker every time is named on stderr and the exit code says so."""
    import soundfile as sf
    import test_infer_workers as tw

    clips = sorted(Competition(synthetic_comp).audio_files("train_audio")[:10], key=lambda p: p.name)
    poison = tmp_path / f"{clips[0].stem}_poison.wav"
    sf.write(
        poison, np.full(5 * tw.SAMPLE_RATE, tw.POISON, dtype=np.float32), tw.SAMPLE_RATE, subtype="PCM_16"
    )
    comp = tw.comp_of(tmp_path, synthetic_comp, [*clips, poison])
    rc, out, err = _cli(["infer", "--data-dir", str(comp), "--passthrough", f"{tw.__name__}:KillOnPoison",
                         "--workers", "2", "--out", str(tmp_path / "s.csv"), "--quiet"], capsys)  # fmt: skip
    assert rc == 1 and poison.name in err and "died" in err and "got the prior" in err
    check_submission(tmp_path / "s.csv", comp)
