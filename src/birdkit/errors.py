"""The errors a user can fix: the CLI prints their message (which names the file and the fix), no traceback."""

from __future__ import annotations

from birdkit.audio import AudioError
from birdkit.competition import CompetitionError
from birdkit.compile import CompileError
from birdkit.explore.errors import ExploreError
from birdkit.export import ExportError
from birdkit.kaggle import KaggleError
from birdkit.store import StoreError

UserError = (
    AudioError,
    CompetitionError,
    StoreError,
    ExportError,
    CompileError,
    KaggleError,
    ExploreError,
    FileNotFoundError,
)
