"""The one error the explore stage raises for things a user can fix (a missing package, mismatched stores)."""

from __future__ import annotations


class ExploreError(Exception):
    """A problem with the explore inputs or options; the message names it and the fix."""
