"""Glue for the workflow's scripts: a job's output goes to its log."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(log: str) -> Iterator[Path]:
    """Send the job's Python output and any traceback to `log` (the tools append to it too)."""
    path = Path(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    with path.open("a", buffering=1) as fh, contextlib.redirect_stdout(fh):
        old_stderr, sys.stderr = sys.stderr, fh
        try:
            yield path
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            sys.stderr = old_stderr
