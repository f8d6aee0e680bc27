"""Encoders: the contract (:mod:`.base`), the registry (:mod:`.registry`), one module per encoder."""

from __future__ import annotations

from birdkit.encoders.base import (
    Capabilities,
    Encoder,
    EncoderOutputs,
    competition_logits,
    species_index,
    unmapped,
)
from birdkit.encoders.registry import ENCODERS, accepts, get_encoder, option_default, resolve

__all__ = [
    "ENCODERS",
    "Capabilities",
    "Encoder",
    "EncoderOutputs",
    "accepts",
    "competition_logits",
    "get_encoder",
    "option_default",
    "resolve",
    "species_index",
    "unmapped",
]
