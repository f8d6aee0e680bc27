"""The CLI's one error path: a mistake the user can fix ends with exit status 2 and one line on stderr,
``birdkit CMD: error: ...`` naming the file and the fix, and no traceback (``cli/main.py`` catches
:class:`~birdkit.errors.BirdkitError` once; the command modules catch nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from birdkit.cli.main import main


def _fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``birdkit ARGV``; assert exit 2 and a single error line; return that line."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"birdkit {argv[0]}: error: "), err
    assert "Traceback" not in err and out == ""
    return lines[0]


def test_export_of_a_missing_model_folder(tmp_path, capsys):
    missing = tmp_path / "models" / "nope"
    line = _fails_cleanly(["export", str(missing), "--out", str(tmp_path / "ds")], capsys)
    assert f"{missing}: no card.json" in line and "birdkit train" in line
    assert not (tmp_path / "ds").exists()


def test_export_with_a_title_kaggle_refuses(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "card.json").write_text("{}")
    line = _fails_cleanly(["export", str(tmp_path / "m"), "--id", "me/birdkit-x", "--title", "abc"], capsys)
    assert "title must be a string of 6 to 50 characters" in line and "--title" in line


def test_compile_of_a_missing_saved_model(tmp_path, capsys):
    missing = tmp_path / "no_model"
    line = _fails_cleanly(["compile", str(missing), "--out", str(tmp_path / "x.tflite")], capsys)
    assert f"{missing}: not a TensorFlow SavedModel" in line and "saved_model.pb" in line
    assert not (tmp_path / "x.tflite").exists()


def test_compile_with_a_missing_labels_file(tmp_path, capsys):
    args = [
        "compile",
        str(tmp_path),
        "--out",
        str(tmp_path / "x.tflite"),
        "--labels",
        str(tmp_path / "l.txt"),
    ]
    line = _fails_cleanly(args, capsys)
    assert f"--labels {tmp_path / 'l.txt'}: no such file" in line


def test_kaggle_publish_of_a_folder_without_metadata(tmp_path, capsys):
    folder = tmp_path / "dataset"
    folder.mkdir()
    line = _fails_cleanly(["kaggle", "publish", str(folder), "--dry-run"], capsys)
    assert f"{Path(folder) / 'dataset-metadata.json'}: missing" in line and "birdkit export" in line


def test_kaggle_push_of_a_folder_without_metadata(tmp_path, capsys):
    line = _fails_cleanly(["kaggle", "push", "--dataset", str(tmp_path), "--dry-run"], capsys)
    assert f"{tmp_path / 'dataset-metadata.json'}: missing" in line
