"""Encoders by name. Each lives in its own module and is imported only when asked for."""

from __future__ import annotations

from typing import Any

from birdkit.encoders.base import Encoder, competition_logits, species_index, unmapped

__all__ = ["Encoder", "ENCODERS", "get_encoder", "competition_logits", "species_index", "unmapped"]

# name -> "module:Class"; Perch, EnCodec and the self-supervised encoder register here as they land.
ENCODERS: dict[str, str] = {
    "birdnet": "birdkit.encoders.birdnet:BirdNET",
    # a compiled Perch-style graph (5 s at 32 kHz -> embedding, logits); needs model_path=...
    "perch": "birdkit.encoders.tflite_encoder:TFLiteEncoder",
}


def get_encoder(name: str, **options: Any) -> Encoder:
    """Build the encoder called ``name`` with its options."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    import importlib

    mod, cls = ENCODERS[name].split(":")
    return getattr(importlib.import_module(mod), cls)(**options)
