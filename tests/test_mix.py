"""`birdkit mix`: training clips in real background at known times, 5 s labels that follow from where they went."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from birdkit.competition import Competition
from birdkit.errors import OptionError
from birdkit.mix import CONFIG, SOURCES, MixConfig, holdout_files, mix, mixed_clips


@pytest.fixture(scope="module")
def mixed(synthetic_comp, tmp_path_factory):
    out = tmp_path_factory.mktemp("mix") / "val"
    table = mix(synthetic_comp, out, MixConfig(files=3, seconds=30, holdout=0.5, seed=1))
    return out, table


def test_mix_is_a_labelled_competition_folder(mixed, synthetic_comp):
    out, table = mixed
    comp = Competition(out)
    assert comp.species == Competition(synthetic_comp).species
    files = comp.audio_files("test_soundscapes")
    assert [f.stem for f in files] == ["mix_000", "mix_001", "mix_002"]
    truth = comp.test_labels()
    assert len(truth) == 3 * 6 and truth["row_id"].iloc[0] == "mix_000_5"
    assert len(table) >= 3 and (out / SOURCES).exists()


def test_labels_follow_the_sources(mixed):
    out, table = mixed
    truth = Competition(out).test_labels().set_index("row_id")["labels"]
    for _, s in table.iterrows():
        t0, t1 = s.start_s, s.start_s + 3.0
        for c in range(6):
            overlap = min(t1, 5 * (c + 1)) - max(t0, 5 * c)
            labels = truth[f"{s.file}_{5 * (c + 1)}"].split()
            if overlap >= 1.0:
                assert s.species in labels
    labelled = {(r, sp) for r, v in truth.items() for sp in v.split()}
    placed = {(f"{s.file}_", s.species) for _, s in table.iterrows()}
    assert {
        (r.rsplit("_", 1)[0] + "_", sp) for r, sp in labelled
    } <= placed  # nothing labelled that was not put


def test_clips_come_from_the_holdout_only_and_training_can_leave_them_out(mixed, synthetic_comp):
    out, table = mixed
    held = mixed_clips(out)
    assert set(table["clip"]) <= held
    pools = holdout_files(Competition(synthetic_comp), 0.5, 1)
    assert held == {c for files in pools.values() for c in files}
    for sp, files in pools.items():  # every species keeps a recording to train on
        total = sum(1 for f in Competition(synthetic_comp).audio_files("train_audio") if f.parent.name == sp)
        assert len(files) < total
    assert json.loads((out / CONFIG).read_text())["seed"] == 1


def test_same_seed_same_mix(synthetic_comp, tmp_path, mixed):
    table = mix(synthetic_comp, tmp_path / "again", MixConfig(files=3, seconds=30, holdout=0.5, seed=1))
    pd.testing.assert_frame_equal(table, mixed[1])


@pytest.mark.parametrize(
    "kw, word",
    [({"files": 0}, "--files"), ({"seconds": 2}, "--seconds"), ({"snr_db": (5.0, 1.0)}, "--snr-db"),
     ({"holdout": 0.0}, "--holdout"), ({"species": (0, 2)}, "--species")],
)  # fmt: skip
def test_bad_options_are_refused(kw, word):
    with pytest.raises(OptionError, match=word):
        MixConfig(**kw)


def test_no_background_is_refused_with_the_reason(synthetic_comp, tmp_path):
    import shutil

    comp = tmp_path / "comp"
    shutil.copytree(synthetic_comp, comp, ignore=shutil.ignore_patterns("unlabeled_soundscapes"))
    with pytest.raises(OptionError, match="unlabeled_soundscapes"):
        mix(comp, tmp_path / "out", MixConfig(files=1, seconds=10))


def test_cli_mix(synthetic_comp, tmp_path, capsys):
    from birdkit.cli.main import main

    assert (
        main(["mix", str(synthetic_comp), "--out", str(tmp_path / "m"), "--files", "2", "--seconds", "10"])
        == 0
    )
    assert "2 soundscapes" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["mix", str(synthetic_comp), "--out", str(tmp_path / "m2"), "--snr-db", "3"])
    assert exc.value.code == 2 and "LO,HI" in capsys.readouterr().err
