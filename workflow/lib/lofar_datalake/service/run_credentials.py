"""A researcher's Rucio identity in the processes the service starts for them, the same way for
all of them (a run, a site-health probe, intake's questions to Rucio): their Rucio password
through the process's environment (userpass), or, for a researcher with a token client, an
access token from the DataLake's issuer (token_client.py), in a private file `BEARER_TOKEN_FILE`
names for a run and its processes, in the environment of the service's own short processes.
Nothing secret is ever on a command line, and a token client's secret never leaves the service:
a run holds only the short-lived token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datalake_core.bearer_token import TOKEN_ENV, TOKEN_FILE_ENV
from datalake_core.job_auth import PASSWORD_ENV

from .model import Researcher
from .researchers import secret
from .token_client import RUCIO_SCOPES, Issuer, RunToken, TokenError, fetch


@dataclass(frozen=True)
class RunCredentials:
    env: dict[str, str]  # for the run's environment: a password, or where the token is
    secrets: list[str]  # what no output shown to anyone may hold (grows as a token is renewed)


@contextlib.contextmanager
def for_run(issuer: Issuer | None, researcher: Researcher, token_file: Path,
            owner: str | None, run_log: Path | None = None) -> Iterator[RunCredentials]:
    """The credentials of one run while it lasts: a token is fetched on entry (TokenError or
    OSError when there is none), kept fresh, and its file removed on exit."""
    if researcher.token_client is None:
        password = secret(researcher)
        yield RunCredentials({PASSWORD_ENV: password}, [password])
        return
    with RunToken(_known(issuer, researcher), researcher, token_file, owner, run_log) as token:
        yield RunCredentials({TOKEN_FILE_ENV: str(token_file)}, token.values)


def for_service(issuer: Issuer | None, researcher: Researcher) -> dict[str, str]:
    """The environment of a short process of the service's own asking Rucio as the researcher
    (as_account.py): their password, or a token for Rucio only."""
    if researcher.token_client is None:
        return {PASSWORD_ENV: secret(researcher)}
    return {TOKEN_ENV: fetch(_known(issuer, researcher), researcher, RUCIO_SCOPES).value}


def _known(issuer: Issuer | None, researcher: Researcher) -> Issuer:
    if issuer is None:  # `serve` refuses to start so; a programming error otherwise
        raise TokenError(f"researcher {researcher.name} has a token client, but the service "
                         "was given no issuer (--oidc-issuer)")
    return issuer
