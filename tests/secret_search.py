"""Searching files for a planted secret (not a test module): shared by the secret tests of
the integration and site suites (pytest puts this directory on sys.path for tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def files_containing(secret: str, roots: Iterable[Path], skip: Iterable[Path] = ()) -> list[Path]:
    """Every file under `roots` (recursively, symlinks not followed) whose bytes hold `secret`,
    except those in `skip` (the credential files that must hold it)."""
    needle = secret.encode()
    skipped = set(skip)
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                if path in skipped or path.is_symlink() or not path.is_file():
                    continue
                try:
                    if needle in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found
