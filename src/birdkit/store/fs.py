"""Where a store lives: a local folder, or a URL on a shared file system or object store (``file://``,
``s3://``, ``gs://``, any ``fsspec`` protocol whose package is installed).

Local folders keep the strongest guarantees: a file is written under a temporary name, fsynced and renamed
into place, and the store lock is created with ``O_EXCL``. An object store has no rename, but an object
appears only once its upload completes, which gives readers the same all-or-nothing view.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from birdkit.errors import OptionError
from birdkit.io import atomic_write_bytes


class StoreFS:
    """One store folder on one file system; every name below is relative to the folder."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        try:
            fs, path = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as exc:
            raise OptionError(
                f"--out {text}: cannot open this location ({exc}); install the fsspec package for its "
                "protocol (s3fs for s3://, gcsfs for gs://) or give a local folder"
            ) from exc
        self.fs = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.path = path.rstrip("/") or "/"
        # what messages and readers show: a Path for a local folder, the URL otherwise
        self.root: str | Path = (
            (Path(text) if "://" not in text else Path(path)) if self.local else text.rstrip("/")
        )

    def __str__(self) -> str:
        return str(self.root)

    def join(self, name: str) -> str:
        return f"{self.path}/{name}"

    def exists(self, name: str = "") -> bool:
        return self.fs.exists(self.join(name) if name else self.path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def mkdir(self) -> None:
        self.fs.makedirs(self.path, exist_ok=True)

    def names(self, pattern: str) -> list[str]:
        """Names in the folder matching a glob pattern, sorted."""
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.glob(self.join(pattern)))

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.join(name))

    def write_atomic(self, name: str, data: bytes) -> None:
        """All or nothing: a reader, or a run killed halfway, never sees part of the file."""
        if self.local:
            atomic_write_bytes(self.join(name), data)
        else:
            self.fs.pipe_file(self.join(name), data)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Create ``name`` only if it does not exist; False if it does. Atomic on a local or NFS folder; on an
        object store an existence check then a write, which two writers starting in the same instant can race."""
        if not self.local:
            if self.fs.exists(self.join(name)):
                return False
            self.fs.pipe_file(self.join(name), data)
            return True
        try:
            fd = os.open(self.join(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return True

    def remove(self, name: str) -> None:
        if self.fs.exists(self.join(name)):
            self.fs.rm_file(self.join(name))

    def move_aside(self, name: str, folder: str) -> str:
        """Move ``name`` into the subfolder ``folder`` (kept for inspection, out of every glob)."""
        self.fs.makedirs(self.join(folder), exist_ok=True)
        dest = f"{folder}/{name}.{uuid.uuid4().hex[:6]}"
        self.fs.mv(self.join(name), self.join(dest))
        return dest
