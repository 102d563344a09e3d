"""`datalake://<scope>/<name>` queries: parsing and validation with precise reasons.

Names may contain `/`. Only Rucio's allowed characters are accepted, and nothing that a file
system would reinterpret (`..`, `.`, empty segments, absolute names): the name also becomes the
local path of the staged copy, and Snakemake puts that path unquoted into shell commands, so a
space, `;`, `$` or a backtick must never get through.
"""

from __future__ import annotations

import re

from .errors import QueryError
from .rucio_adapter import Did

SCHEME = "datalake://"
SCOPE_MAX = 25  # Rucio's scope column length
NAME_MAX = 250  # Rucio's name column length
_SCOPE_RE = re.compile(r"[A-Za-z0-9._-]+")
_NAME_RE = re.compile(r"[/A-Za-z0-9._-]+")
# Snakemake wildcards (`{sample}`, `{sb,\d+}`) may appear in queries before they are expanded.
_WILDCARD_RE = re.compile(r"\{[^{}]*(?:\{\d+(?:,\d+)?\}[^{}]*)*\}")


def has_wildcards(query: str) -> bool:
    return bool(_WILDCARD_RE.search(query))


def validation_error(query: str) -> str | None:
    """None if `query` is valid (wildcards allowed), else the reason it is not."""
    if not query.startswith(SCHEME):
        return f"must start with {SCHEME} (got {query[:20]!r})"
    # A wildcard stands for something valid: replace it by a neutral character before checking.
    rest = _WILDCARD_RE.sub("x", query[len(SCHEME):])
    scope, sep, name = rest.partition("/")
    if not scope:
        return "the scope is empty; expected datalake://<scope>/<name>"
    if not sep or not name:
        return "the name is empty; expected datalake://<scope>/<name>"
    if len(scope) > SCOPE_MAX:
        return f"the scope is longer than {SCOPE_MAX} characters"
    if not _SCOPE_RE.fullmatch(scope) or set(scope) == {"."}:
        return f"the scope {scope!r} may only contain A-Z a-z 0-9 . _ - (and is not '.' or '..')"
    if name.startswith("/"):
        return "the name is absolute (starts with '/')"
    if len(name) > NAME_MAX:
        return f"the name is longer than {NAME_MAX} characters"
    bad = sorted({c for c in name if not _NAME_RE.fullmatch(c)})
    if bad:
        return (f"the name contains {' '.join(repr(c) for c in bad)}, not allowed in a DID name "
                "(only A-Z a-z 0-9 / . _ -)")
    for segment in name.split("/"):
        if segment == "":
            return "the name has an empty path segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"the name has a {segment!r} path segment (no relative paths)"
    return None


def parse(query: str) -> Did:
    """The DID a concrete (wildcard-free) query names."""
    if has_wildcards(query):
        raise QueryError(f"{query}: still contains wildcards")
    reason = validation_error(query)
    if reason is not None:
        raise QueryError(f"{query}: {reason}")
    scope, _, name = query[len(SCHEME):].partition("/")
    return Did(scope, name)


def to_query(did: Did) -> str:
    return f"{SCHEME}{did.scope}/{did.name}"
