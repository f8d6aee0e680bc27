"""Where Kaggle credentials are, found as the kaggle CLI finds them; only *where* is ever printed.

Looked for in kaggle 2.2.x's order: ``KAGGLE_API_TOKEN`` (the token or a path to it), ``~/.kaggle/access_token``,
OAuth credentials from ``kaggle auth login`` (``~/.kaggle/credentials.json``), then the legacy ``kaggle.json``
(``KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or ``~/.config/kaggle``) with ``KAGGLE_USERNAME``/``KAGGLE_KEY``
overriding its fields.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from birdkit.kaggle.errors import KaggleError

TOKEN_URL = "https://www.kaggle.com/settings/api"

log = logging.getLogger(__name__)


def readable_by_others(path: Path) -> bool:
    """Whether a credential file can be read by other users (group or world), as ``chmod 600`` prevents."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def _private(path: Path, home: Path) -> Path:
    """Warn (once per call) when a credential file is readable by other users; returns the path."""
    if readable_by_others(path):
        log.warning(
            "%s is readable by other users of this machine; fix: chmod 600 %s", _tilde(path, home), path
        )
    return path


@dataclass
class Credentials:
    """Where Kaggle credentials were found (never their values), or everything that was looked for."""

    method: str | None = (
        None  # "KAGGLE_API_TOKEN", "access_token", "oauth", "kaggle.json", "KAGGLE_USERNAME/KAGGLE_KEY"
    )
    source: str = ""
    username: str | None = None
    looked: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.method is not None

    def describe(self) -> str:
        if self:
            who = f" (user {self.username})" if self.username else ""
            return f"found: {self.method} at {self.source}{who}"
        return "missing: " + "; ".join(self.looked)


def _tilde(path: Path, home: Path) -> str:
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return str(path)


def _config_dir(env: Mapping[str, str], home: Path) -> Path:
    """kaggle.json's folder, as kaggle 2.2.x picks it."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"]).expanduser()
    legacy = home / ".kaggle"
    if sys.platform.startswith("linux") and not legacy.exists():
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    return legacy


def find_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> Credentials:
    """Look for Kaggle credentials where the kaggle CLI does; say where they are, or all that is missing."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    looked: list[str] = []
    cfg_path = _config_dir(env, home) / "kaggle.json"
    cfg: dict = {}
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text() or "{}")
        except ValueError:
            looked.append(f"{_tilde(cfg_path, home)} is not valid JSON")
    user = env.get("KAGGLE_USERNAME") or cfg.get("username")  # tokens do not name their owner locally
    token = env.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        p = Path(token).expanduser()
        if not p.exists() or p.read_text().strip():
            source = _tilde(_private(p, home), home) if p.exists() else "the environment"
            return Credentials("KAGGLE_API_TOKEN", source, user)
        looked.append(f"KAGGLE_API_TOKEN names {p} but that file is empty")
    else:
        looked.append("KAGGLE_API_TOKEN is not set")
    for name in ("access_token", "access_token.txt"):
        p = home / ".kaggle" / name
        if p.is_file() and p.read_text().strip():
            return Credentials("access_token", _tilde(_private(p, home), home), user)
    looked.append(f"{_tilde(home / '.kaggle' / 'access_token', home)} does not exist")
    oauth = home / ".kaggle" / "credentials.json"
    if oauth.is_file():
        return Credentials("oauth", _tilde(_private(oauth, home), home), user)
    if not cfg_path.is_file():
        looked.append(f"{_tilde(cfg_path, home)} does not exist")
    key = env.get("KAGGLE_KEY") or cfg.get("key")
    if user and key:
        from_file = cfg.get("username") and cfg.get("key")
        method = "kaggle.json" if from_file else "KAGGLE_USERNAME/KAGGLE_KEY"
        if cfg_path.is_file():
            _private(cfg_path, home)
        return Credentials(method, _tilde(cfg_path, home) if from_file else "the environment", str(user))
    if cfg_path.is_file():
        looked.append(
            f"{_tilde(cfg_path, home)} lacks "
            + " and ".join(k for k in ("username", "key") if not cfg.get(k))
        )
    if env.get("KAGGLE_USERNAME") and not key:
        looked.append("KAGGLE_USERNAME is set but KAGGLE_KEY is not")
    elif env.get("KAGGLE_KEY") and not user:
        looked.append("KAGGLE_KEY is set but KAGGLE_USERNAME is not")
    else:
        looked.append("KAGGLE_USERNAME/KAGGLE_KEY are not set")
    return Credentials(None, "", None, looked)


def require_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> Credentials:
    creds = find_credentials(env, home)
    if not creds:
        raise KaggleError(
            "no Kaggle credentials: " + "; ".join(creds.looked) + ". Fix: create an API token at "
            f"{TOKEN_URL} and either `export KAGGLE_API_TOKEN=<token>` or save it to ~/.kaggle/access_token "
            "(chmod 600); or run `kaggle auth login`; or put the legacy kaggle.json in ~/.kaggle/ (chmod 600)."
        )
    return creds
