"""The one error the explore stage raises for things a user can fix (a missing package, mismatched stores)."""

from __future__ import annotations

from birdkit.errors import BirdkitError


class ExploreError(BirdkitError):
    """A problem with the explore inputs or options; the message names it and the fix."""
