"""What the Kaggle side raises when a step cannot go on."""

from __future__ import annotations

from birdkit.errors import BirdkitError


class KaggleError(BirdkitError):
    """A Kaggle step that cannot go on; the message says what is missing and how to fix it."""
