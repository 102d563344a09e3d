"""Asking Rucio something as one account, in a short process of its own: Rucio's client reads
one configuration per process and the service serves many accounts. The caller's module is run
with `python -m MODULE CONFIG ACCOUNT`, its question as JSON on stdin, the account's password or
access token in its environment only (never on its command line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalake_core.job_auth import PASSWORD_ENV

if TYPE_CHECKING:
    from datalake_core.rucio_adapter import RucioAdapter


def ask(module: str, config: Path, account: str, question: Any, env: Mapping[str, str],
        timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run `module` as `account` (its secret among `env`); subprocess.TimeoutExpired past
    `timeout_s`."""
    return subprocess.run(
        [sys.executable, "-m", module, str(config), account], input=json.dumps(question),
        env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True, text=True,
        timeout=timeout_s, check=False)


def connect(argv: list[str] | tuple[str, ...]) -> RucioAdapter:
    """In the child: Rucio as the account its command line names, with the password from its
    environment, or else as its configuration says (`auth_type = oidc`: the token from
    `$BEARER_TOKEN` or the file `$BEARER_TOKEN_FILE` names)."""
    from datalake_core.rucio_adapter import RucioAdapter

    config, account = Path(argv[0]), argv[1]
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        return RucioAdapter.connect(config, account)
    return RucioAdapter.connect(config, account, "userpass", account, password)
