"""Encoders by name: the one place a name (or a "module:Class" path) becomes an encoder class.

Each encoder lives in its own module and is imported only when asked for, so the Kaggle side never imports
the torch or TensorFlow an encoder it does not use would need.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from birdkit.encoders.base import Encoder
from birdkit.errors import OptionError

# name -> "module:Class"
ENCODERS: dict[str, str] = {
    "birdnet": "birdkit.encoders.birdnet:BirdNET",
    # Perch v1 or 2.0 from the user's file (.onnx, or .tflite from `birdkit compile`); needs model_path=...
    "perch": "birdkit.encoders.perch:Perch",
    # any graph compiled by `birdkit compile` (NAME.tflite + NAME.json sidecar); needs model_path=...
    "tflite": "birdkit.encoders.tflite:TFLiteEncoder",
    # any ONNX encoder on onnxruntime (audio [B, samples] -> embedding, logits); needs model_path=...
    "onnx": "birdkit.encoders.onnx:ONNXEncoder",
    # EnCodec 24 kHz from its checkpoint (torch; no logits); needs model_path=...
    "encodec": "birdkit.encoders.encodec:EncodecEncoder",
    # our own self-supervised encoder (birdkit ssl pretrain); needs model_path=...
    "ssl": "birdkit.encoders.ssl:SSLEncoder",
    # deterministic and tiny: for tests and dry runs without any model file
    "placeholder": "birdkit.encoders.placeholder:Placeholder",
}


# The registered encoder that runs every `birdkit compile` graph shipped as encoders/<name>.tflite + <name>.json,
# whatever name the heads know it by (package/export.py and infer/plan.py use this, never a class path).
COMPILED = "tflite"
# What an exported encoders/<name>/ folder may hold as its model, in the order one is picked.
MODEL_SUFFIXES = (".tflite", ".onnx", ".th", ".pt")


def exported_model(folder: Path) -> Path | None:
    """The model file of an exported ``encoders/<name>/`` folder: a .tflite (the fp32 one when there are several
    variants), else a .onnx, else a torch checkpoint; None when it holds none."""
    for suffix in MODEL_SUFFIXES:
        found = sorted(folder.glob(f"*{suffix}"))
        if found:
            fp32 = [g for g in found if "fp32" in g.name.lower()]
            return (fp32 or found)[0]
    return None


def resolve(name: str) -> type:
    """The encoder class for a registered name or a "module:Class" path."""
    target = ENCODERS.get(name, name)
    if ":" not in target:
        raise OptionError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))} (or module:Class)")
    mod, cls = target.split(":", 1)
    try:
        return getattr(importlib.import_module(mod), cls)
    except (ImportError, AttributeError) as exc:
        raise OptionError(f"encoder {name!r}: cannot import {target} ({exc})") from exc


def get_encoder(name: str, **options: Any) -> Encoder:
    """Build the encoder called ``name`` with its options."""
    return resolve(name)(**options)


def accepts(name: str, option: str) -> bool:
    """Whether the encoder's constructor takes ``option``."""
    return option in inspect.signature(resolve(name)).parameters


def option_default(name: str, option: str) -> Any:
    """The constructor's default for ``option``."""
    return inspect.signature(resolve(name)).parameters[option].default
