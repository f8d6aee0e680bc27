"""The command-line options that choose and configure an encoder, shared by every command that builds one.

Each flag maps to one constructor option; an option the chosen encoder does not take is refused with the
encoders that do take it, and files named by a flag must exist, so a typo stops the run before any audio is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from birdkit.encoders.registry import ENCODERS, accepts
from birdkit.errors import OptionError

# flag -> (argparse dest, constructor option, whether it names a file that must exist)
FLAGS: dict[str, tuple[str, str, bool]] = {
    "--windows": ("windows", "windows", False),
    "--model": ("model", "model_path", True),
    "--labels": ("labels", "labels", True),
    "--input": ("input_name", "input_name", False),
    "--embedding": ("embedding_name", "embedding_name", False),
    "--logits": ("logits_name", "logits_name", False),
    "--bandwidth": ("bandwidth", "bandwidth", False),
    "--features": ("features", "features", False),
    "--precision": ("precision", "precision", False),
}


# flag -> (metavar, type, help); each maps to a constructor option through FLAGS
HELP: dict[str, tuple[str | None, type, str]] = {
    "--windows": (
        None,
        str,
        "BirdNET window scheme: paper (default), centre (half the cost) or three ([0,3] [1,4] [2,5] s)",
    ),
    "--model": (
        "PATH",
        str,
        "the model file (perch: a Perch 2.0 .onnx, or a .tflite from `birdkit compile`; encodec: the 24 kHz "
        "checkpoint .th; ssl: the folder from `birdkit ssl pretrain`; onnx/tflite: any encoder file)",
    ),
    "--labels": ("CSV", str, "label file naming the logit columns, in order"),
    "--input": ("NAME", str, "ONNX input tensor name"),
    "--embedding": ("NAME", str, "embedding output name"),
    "--logits": ("NAME", str, "logits output name"),
    "--bandwidth": (None, float, "EnCodec bandwidth in kbps: 1.5 or 3.0"),
    "--features": (None, str, "EnCodec embedding: latent (default) or codes (the paper's)"),
    "--precision": (
        None,
        str,
        "BirdNET opt-in precision mode: exact (default), fft32, int8 or int8+fft32 (benchmarks/RESULTS.md)",
    ),
}


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--encoder NAME`` and the options that configure it."""
    g = parser.add_argument_group("encoder")
    g.add_argument("--encoder", default="birdnet", help=f"encoder: {', '.join(ENCODERS)}, or module:Class")
    for flag, (dest, _, _) in FLAGS.items():
        metavar, kind, text = HELP[flag]
        g.add_argument(flag, dest=dest, type=kind, default=None, metavar=metavar, help=text)


def encoder_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options for the encoder from parsed arguments (only those the user gave), checked: each must
    be one the encoder takes, and each file it names must exist."""
    name = getattr(args, "encoder", None) or "birdnet"
    out: dict[str, Any] = {}
    for flag, (dest, option, is_file) in FLAGS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if not accepts(name, option):
            takers = [n for n in ENCODERS if _accepts(n, option)]
            raise OptionError(
                f"{flag}: encoder {name!r} takes no such option; drop it, or use an encoder that does "
                f"({', '.join(takers) or 'none'})"
            )
        if is_file and not Path(value).exists():
            raise OptionError(f"{flag} {value}: no such file; give the path of the file you downloaded")
        out[option] = str(value) if is_file else value
    return out


def _accepts(name: str, option: str) -> bool:
    try:
        return accepts(name, option)
    except OptionError:  # an encoder whose module cannot be imported here
        return False
