"""The last check before an export is published: no credential and no local path in any file of the folder.

Cards are scrubbed when copied, but a path or a key can hide anywhere (a note in a card, a sidecar, a source
file of the kit): this scan reads every file, text and binary, and names each finding without its value.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from birdkit.package.layout import package_source

_CREDENTIAL_FILES = {"kaggle.json", "access_token", "access_token.txt", "credentials.json", ".env", ".netrc"}
_KEY_PATTERNS = [
    ("a kaggle.json key", re.compile(rb'"key"\s*:\s*"[0-9a-f]{32}"')),
    ("a KAGGLE_KEY assignment", re.compile(rb"KAGGLE_KEY\s*[=:]\s*['\"]?[0-9a-fA-F]{32}")),
    ("a KAGGLE_API_TOKEN assignment", re.compile(rb"KAGGLE_API_TOKEN\s*[=:]\s*['\"]?[A-Za-z0-9_\-]{20,}")),
]
# Home folders of any user, on any machine (the card may have been written elsewhere), wherever they sit in a
# text: alone in a field or inside a sentence of a note.
_HOME_PATTERNS = [
    ("a home folder path", re.compile(rb"(?<![\w.~/-])/(?:home|Users)/[A-Za-z0-9._-]+(?=[/\\\s\"',;:)]|$)")),
    # (spelled in two pieces: this file ships in the export, and the scan reads it too)
    ("a root home folder path", re.compile(rb"(?<![\w.~/-])/ro" + rb"ot/[A-Za-z0-9._-]+")),
    (
        "a Windows user folder path",
        re.compile(rb"(?<![\w])[A-Za-z]:(?:\\\\|\\|/)Users(?:\\\\|\\|/)[^\\/\"'\s]+"),
    ),
]


def _secret_values(env: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Credential values that must never be exported: env secrets and the contents of Kaggle's token files."""
    found: list[tuple[str, bytes]] = []
    for k, v in env.items():
        if re.search(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", k, re.I) and len(v.strip()) >= 8:
            found.append((f"the value of ${k}", v.strip().encode()))
    home = Path(env.get("HOME") or Path.home())
    for p in (
        home / ".kaggle" / "access_token",
        home / ".kaggle" / "kaggle.json",
        home / ".config/kaggle/kaggle.json",
    ):
        try:
            text = p.read_text().strip()
        except OSError:
            continue
        if p.suffix == ".json":
            try:
                key = json.loads(text).get("key", "")
            except ValueError:
                key = ""
            if len(key) >= 8:
                found.append((f"the key in ~/{p.relative_to(home)}", key.encode()))
        elif len(text) >= 8:
            found.append((f"the token in ~/{p.relative_to(home)}", text.encode()))
    return found


def _local_paths(extra: Iterable[Path]) -> list[tuple[str, str]]:
    """Absolute local paths whose appearance in an exported file would leak this machine's layout."""
    paths = {
        "the home folder": Path.home(),
        "the package checkout": package_source().parent.parent,
        "the working directory": Path.cwd(),
        "the temp folder": Path(tempfile.gettempdir()),
    }
    for i, p in enumerate(extra):
        paths[f"the export folder ({i})"] = p
    out = []
    for label, p in paths.items():
        s = str(p.resolve()) if p.exists() else str(p)
        if len(s) > 1 and s not in ("/", "\\"):
            out.append((label, s))
            if str(p) != s:
                out.append((label, str(p)))
    return out


def scan_for_secrets(
    root: str | Path, env: Mapping[str, str] | None = None, extra_paths: Iterable[Path] = ()
) -> list[str]:
    """Every file under ``root`` (text and binary) that holds a credential value, a credential file name, or
    an absolute local path (home, checkout, working directory, temp); one line per finding, values not shown."""
    root = Path(root)
    env = os.environ if env is None else env
    secrets = _secret_values(env)
    paths = [
        (label, re.compile(re.escape(s.encode()) + rb"(?=[/\\\"'\s:]|$)"))
        for label, s in _local_paths(extra_paths)
    ]
    findings = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if p.name in _CREDENTIAL_FILES or p.suffix in (".pem", ".key"):
            findings.append(f"{rel}: a credential file")
            continue
        data = p.read_bytes()
        for label, value in secrets:
            if value in data:
                findings.append(f"{rel}: holds {label}")
        for label, pattern in _KEY_PATTERNS:
            if pattern.search(data):
                findings.append(f"{rel}: holds {label}")
        found_path = False
        for label, pattern in paths:
            m = pattern.search(data)
            if m:
                line = data.count(b"\n", 0, m.start()) + 1
                findings.append(f"{rel}:{line}: holds an absolute path under {label}")
                found_path = True
        for label, pattern in [] if found_path else _HOME_PATTERNS:
            m = pattern.search(data)
            if m:
                line = data.count(b"\n", 0, m.start()) + 1
                findings.append(f"{rel}:{line}: holds {label}")
                break
    return findings
