"""Kaggle, through its own command-line tool: credentials (:mod:`.credentials`), running ``kaggle``
(:mod:`.cli`), the competition download (:mod:`.download`, whose ``download`` is not re-exported here: it
would hide the module), dataset metadata and publishing (:mod:`.datasets`), the submission notebook
(:mod:`.kernels`). The ``kaggle`` package itself is never imported."""

from birdkit.kaggle.cli import COMPETITION
from birdkit.kaggle.credentials import Credentials, find_credentials, require_credentials
from birdkit.kaggle.datasets import dataset_metadata, publish, validate_dataset_metadata
from birdkit.kaggle.errors import KaggleError
from birdkit.kaggle.kernels import DEFAULT_KERNEL_TITLE, push

__all__ = [
    "COMPETITION",
    "DEFAULT_KERNEL_TITLE",
    "Credentials",
    "KaggleError",
    "dataset_metadata",
    "find_credentials",
    "publish",
    "push",
    "require_credentials",
    "validate_dataset_metadata",
]
