"""The one error base class. It imports nothing, so every module may raise a subclass of it.

A :class:`BirdkitError` is an error the user can fix: its message names the file and the fix. The CLI catches
it once (``cli/main.py``) and prints the message without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class BirdkitError(Exception):
    """An error the user can fix; the message says which file and what to do."""


class OptionError(BirdkitError, ValueError):
    """A command-line option or config value that cannot work; the message names the option and the choices."""
