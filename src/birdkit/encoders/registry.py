"""Encoders by name: the one place a name (or a "module:Class" path) becomes an encoder class.

Each encoder lives in its own module and is imported only when asked for, so the Kaggle side never imports
the torch or TensorFlow an encoder it does not use would need.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from birdkit.encoders.base import Encoder
from birdkit.errors import OptionError

# name -> "module:Class"; Perch, EnCodec and the self-supervised encoder register here as they land.
ENCODERS: dict[str, str] = {
    "birdnet": "birdkit.encoders.birdnet:BirdNET",
    # a compiled Perch-style graph (5 s at 32 kHz -> embedding, logits); needs model_path=...
    "perch": "birdkit.encoders.tflite:TFLiteEncoder",
    # our own self-supervised encoder (birdkit ssl pretrain); needs model_path=...
    "ssl": "birdkit.encoders.ssl:SSLEncoder",
    # deterministic and tiny: for tests and dry runs without any model file
    "placeholder": "birdkit.encoders.placeholder:Placeholder",
}


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
