"""The one inference path: competition soundscapes -> ``submission.csv``, profiled, inside the CPU budget.

``birdkit infer`` and ``notebooks/inference.ipynb`` both call :func:`run_inference` with an
:class:`InferConfig`. The package reads as the path a chunk takes:

- :mod:`.plan`: what scores a chunk (exported heads on their encoders, or an encoder's own logits), decided once.
- :mod:`.scorer`: one process's interpreters for a plan: chunks -> probabilities (float64), the models combined
  by :mod:`.ensemble` (blend with the encoder's own classifier, mean or rank mean).
- :mod:`.postprocess`: per file, what the dataset's ``postprocess.json`` says (neighbour max, smoothing, file
  prior, the :mod:`.cooccur` prior).
- :mod:`.files`, :mod:`.schedule`: the files, bundled, decoded ahead or in worker processes, scored.
- :mod:`.guard`: the budget guard that switches to the encoders' fastest options (and the post-processing they declare) when the run would overrun.
- :mod:`.submission`: rows assembled with the prior where nothing was scored, written, checked.
- :mod:`.run`: the run itself, and its profile.
"""

from __future__ import annotations

from birdkit.infer.files import FileJob, FileResult, file_jobs
from birdkit.infer.guard import GUARD_AFTER_FILES, SAFETY_MARGIN_MIN, BudgetGuard
from birdkit.infer.plan import EncoderSpec, InferError, Plan, make_plan
from birdkit.infer.run import InferConfig, InferResult, run_inference
from birdkit.infer.schedule import Bundle, bundles
from birdkit.infer.scorer import Scorer, sigmoid
from birdkit.infer.submission import (
    SubmissionError,
    assemble,
    check_submission,
    fallback_row_ids,
    write_submission,
)

__all__ = [
    "GUARD_AFTER_FILES",
    "SAFETY_MARGIN_MIN",
    "BudgetGuard",
    "Bundle",
    "EncoderSpec",
    "FileJob",
    "FileResult",
    "InferConfig",
    "InferError",
    "InferResult",
    "Plan",
    "Scorer",
    "SubmissionError",
    "assemble",
    "bundles",
    "check_submission",
    "fallback_row_ids",
    "file_jobs",
    "make_plan",
    "run_inference",
    "sigmoid",
    "write_submission",
]
