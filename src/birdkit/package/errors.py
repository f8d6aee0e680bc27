"""What packaging raises when a model, an encoder or a dataset folder cannot be made as asked."""

from __future__ import annotations

from birdkit.errors import BirdkitError


class ExportError(BirdkitError):
    """An export that cannot be made as asked; the message names the file and the fix."""


class CompileError(BirdkitError):
    """A SavedModel that cannot be compiled as asked; the message names the folder and the fix."""
