"""Connecting to Rucio, and what a failed connection or login means for the user.

Rucio's client reports an unreachable server as `ServerConnectionException` (after printing one
ERROR line per attempt), a server that stops answering as a bare `requests` timeout, and refused
credentials as `CannotAuthenticate`. Here they become DataLakeErrors saying which server, which
account and auth type, what was being done, and what to check; passwords never appear in them.

Credentials given explicitly (a password from the environment, say) are also put into Rucio's
in-memory configuration: Rucio makes clients of its own inside uploads and downloads, and those
read nothing else.

In token mode (auth type `oidc`) the client presents the WLCG bearer token an agent keeps fresh
(`bearer_token`): it is discovered again before every call and put into the client, so a token
renewed during a run is used from the next call on. Rucio's own answer to a missing, expired or
refused oidc token is an interactive browser login; here it is never started (`no_browser_login`)
and the error says which token was found where, and how to renew it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import bearer_token
from .errors import DataLakeError, RucioAuthError, RucioUnavailable

log = logging.getLogger(__name__)

# Rucio's own default; a server that accepts connections but never answers holds a call this long.
RUCIO_DEFAULT_TIMEOUT = 600
TOKEN_MODE = "oidc"  # noqa: S105  (Rucio's auth type for bearer tokens)


@dataclass(frozen=True)
class Endpoint:
    """Who talks to which Rucio server: what an error message needs to say what to check."""

    host: str
    account: str
    auth_type: str
    config: str
    timeout: float | None
    secrets: tuple[str, ...] = ()  # never shown, even if a message from elsewhere holds one

    @classmethod
    def configured(cls, account: str | None, auth_type: str | None, timeout: float | None,
                   secrets: tuple[str, ...] = ()) -> Endpoint:
        from rucio.common.config import config_get

        def conf(option: str, env: str = "") -> str:
            found = os.environ.get(env) if env else None
            return str(found or config_get("client", option, raise_exception=False,
                                           default=None, check_config_table=False) or "?")

        return cls(conf("rucio_host"), account or conf("account", "RUCIO_ACCOUNT"),
                   auth_type or configured_auth_type() or "?",
                   os.environ.get("RUCIO_CONFIG", "Rucio's default rucio.cfg"), timeout, secrets)

    def explain(self, exc: BaseException, what: str, last_error: str | None) -> Exception | None:
        """A DataLakeError for a connection or authentication failure, else None."""
        import requests
        from rucio.common.exception import (
            CannotAuthenticate,
            ConfigNotFound,
            MissingClientParameter,
            NoAuthInformation,
            ServerConnectionException,
        )

        check = (f"check that it runs and is reachable from this machine (rucio_host in "
                 f"{self.config}), then run again")
        if isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectionError):
            return RucioUnavailable(self._clean(
                f"Rucio server {self.host} did not answer within "
                f"{self.timeout or RUCIO_DEFAULT_TIMEOUT:.0f} s "
                f"({what}; --storage-datalake-rucio-timeout); {check}"))
        if isinstance(exc, ServerConnectionException | requests.RequestException):
            text = last_error or str(exc)
            reason = _short_reason(text)
            if _CLIENT_CERT_UNUSABLE.search(text):
                return RucioAuthError(self._clean(
                    f"Rucio at {self.host} did not authenticate account {self.account} (auth "
                    f"type {self.auth_type}): its client certificate could not be loaded "
                    f"({reason}); check {self._credentials()}"))
            if _SERVER_CERT_REFUSED.search(text):
                check = (f"check that the server's certificate is issued by a CA in ca_cert (in "
                         f"{self.config}) or $X509_CERT_DIR, then run again")
            return RucioUnavailable(self._clean(
                f"Rucio server {self.host} could not be reached ({what}: {reason}); {check}"))
        if isinstance(exc, CannotAuthenticate | NoAuthInformation | MissingClientParameter):
            detail = str(exc).partition("Details: ")[2] or str(exc)
            return RucioAuthError(self._clean(
                f"Rucio at {self.host} did not authenticate account {self.account} (auth type "
                f"{self.auth_type}): {detail}; check {self._credentials()}"))
        if isinstance(exc, ConfigNotFound):
            return DataLakeError(f"no Rucio configuration found ({self.config}); set "
                                 "--storage-datalake-rucio-config or RUCIO_CONFIG")
        return None

    def _credentials(self) -> str:
        if self.auth_type == "userpass":
            return ("the user name and the password (SNAKEMAKE_STORAGE_DATALAKE_PASSWORD, or "
                    f"`password` in the [client] section of {self.config})")
        if self.auth_type == "x509_proxy":
            return ("the X.509 proxy ($X509_USER_PROXY, or client_x509_proxy in "
                    f"{self.config}): that it exists, is readable and has not expired")
        if self.auth_type == TOKEN_MODE:
            return self._token_credentials()
        return f"the {self.auth_type} credentials in {self.config}"

    def _token_credentials(self) -> str:
        try:
            found = bearer_token.discover()
        except RucioAuthError as exc:
            return str(exc)
        what = found.describe() if found else "the bearer token (none found now)"
        return (f"{what}: that it has not expired, that its audience includes this Rucio "
                f"server's and that its identity is mapped to account {self.account}; "
                f"{bearer_token.RENEW}")

    def _clean(self, text: str) -> str:
        text = bearer_token.redact(" ".join(text.split()))  # one line
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


# What urllib3 and OpenSSL say when the client's own certificate (the X.509 proxy) cannot be
# used, and when the server's certificate is not trusted (Rucio is reached over https).
_CLIENT_CERT_UNUSABLE = re.compile(r"PEM lib|Could not find the TLS (?:certificate|key) file|"
                                   r"KEY_VALUES_MISMATCH|\[X509")
_SERVER_CERT_REFUSED = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed")


def _short_reason(text: str) -> str:
    """`Connection refused` or `certificate verify failed: ...` rather than urllib3's three
    nested reprs."""
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found[-1].strip()
    tls = re.findall(r"\[(?:SSL|X509)(?:: [A-Z_]+)?\] ([^(')]+)", text)
    if tls:
        return tls[-1].strip()
    return text if len(text) < 200 else text[:200] + "…"


class _RucioLog(logging.Logger):
    """The Rucio client's logger: its ERROR lines (one per failed attempt) are not printed but
    kept, so the error raised afterwards can say what the last attempt met; the rest goes on
    to this module's logger."""

    def __init__(self) -> None:
        super().__init__("lofar_datalake.rucio_client", logging.DEBUG)
        self.propagate = False
        self.last_error: str | None = None

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.last_error = record.getMessage()
        elif log.isEnabledFor(record.levelno):
            log.handle(record)


class GuardedClient:
    """Rucio's client with connection and authentication failures (Rucio's own exceptions and
    the `requests` ones it lets through) turned into DataLakeError: the server, the call, and
    what to check, instead of a traceback. Results that are generators are guarded while they
    are consumed too. Every other exception passes unchanged."""

    def __init__(self, client: Any, endpoint: Endpoint, rucio_log: _RucioLog | None,
                 settings: dict[str, Any] | None = None) -> None:
        self.__dict__.update(raw=client, _endpoint=endpoint, _log=rucio_log,
                             _settings=settings or {},
                             _tokens=endpoint.auth_type == TOKEN_MODE)

    def share_settings(self) -> None:
        """Put this client's explicit settings into Rucio's configuration again, for the
        clients Rucio makes itself (any Rucio code may have re-read the file meanwhile)."""
        _share_with_rucio(self._settings)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.guard(name):
                result = attr(*args, **kwargs)
            return self._consume(result, name) if isinstance(result, Iterator) else result

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.raw, name, value)

    @contextlib.contextmanager
    def guard(self, what: str, present_token: bool = True) -> Iterator[None]:
        """Failures inside explained. A call starts here: in token mode the current token is
        presented first (`present_token`; not between the items of a generator)."""
        if self._log is not None:
            self._log.last_error = None  # what Rucio logs from here on belongs to this call
        try:
            if present_token and self._tokens:
                self.present(bearer_token.current())
            yield
        except Exception as exc:
            last = self._log.last_error if self._log is not None else None
            translated = self._endpoint.explain(exc, what, last)
            if translated is None:
                raise
            raise translated from None

    def present(self, token: bearer_token.BearerToken) -> None:
        """Where Rucio's client (and the upload and download clients made from it) reads the
        token it sends (rucio-clients 41.5: `BaseClient.auth_token`, `.headers`)."""
        self.raw.auth_token = token.value
        self.raw.headers["X-Rucio-Auth-Token"] = token.value

    def _consume(self, items: Iterator[Any], what: str) -> Iterator[Any]:
        while True:
            with self.guard(what, present_token=False):
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item


def client_x509_proxy() -> str | None:
    """The X.509 proxy a client presents (to FTS), found as Rucio's client finds its own:
    $X509_USER_PROXY, else `client_x509_proxy` in the Rucio configuration."""
    from rucio.common.config import config_get

    found = os.environ.get("X509_USER_PROXY") or config_get(
        "client", "client_x509_proxy", raise_exception=False, default=None)
    return str(found) if found else None


def configured_auth_type() -> str | None:
    """The auth type Rucio's client uses when none is passed to it: $RUCIO_AUTH_TYPE, else
    `auth_type` in its configuration (which `new_client` sets to an explicit one)."""
    from rucio.common.config import config_get
    from rucio.common.exception import ConfigNotFound

    try:
        found = os.environ.get("RUCIO_AUTH_TYPE") or config_get(
            "client", "auth_type", raise_exception=False, default=None, check_config_table=False)
    except ConfigNotFound:
        return None
    return str(found) if found else None


def uses_tokens() -> bool:
    """Whether this process authenticates with a WLCG bearer token (token mode)."""
    return configured_auth_type() == TOKEN_MODE


OIDC_LOGIN = "_BaseClient__get_token_oidc"  # Rucio's interactive oidc login (name-mangled)


def no_browser_login() -> None:
    """Rucio's client, given no oidc token or a refused one (401), starts an interactive login
    (a URL to open in a browser, then a prompt). The token comes from an agent here: instead,
    the error says what was found and how to renew it. Applies to the clients Rucio makes
    itself too. Replaces `BaseClient.__get_token_oidc` (name-mangled; rucio-clients 41.5.1)."""
    from rucio.client.baseclient import BaseClient

    setattr(BaseClient, OIDC_LOGIN, _refuse_browser_login)


def _refuse_browser_login(client: Any) -> bool:
    from rucio.common.exception import CannotAuthenticate

    token = bearer_token.current()  # none, or expired: that error
    if token.value == getattr(client, "auth_token", None):
        raise CannotAuthenticate("the server refused the bearer token")
    # Renewed since this client read it (Rucio would write the new one to its token file).
    raise CannotAuthenticate("the server refused the bearer token presented, which has been "
                             "renewed since: run again")


def wrap(client: Any, timeout: float | None = None) -> GuardedClient:
    """Guard a client made elsewhere (its account and host as it has them)."""
    if isinstance(client, GuardedClient):
        return client
    endpoint = Endpoint.configured(getattr(client, "account", None),
                                   getattr(client, "auth_type", None), timeout)
    host = getattr(client, "host", None)
    if host:
        endpoint = Endpoint(str(host), endpoint.account, endpoint.auth_type, endpoint.config,
                            timeout)
    if endpoint.auth_type == TOKEN_MODE:
        no_browser_login()
    return GuardedClient(client, endpoint, None)


def new_client(account: str | None, auth_type: str | None, creds: dict[str, Any] | None,
               timeout: float | None) -> GuardedClient:
    """A Rucio client (it authenticates at once), failures explained like those of its calls."""
    from rucio.client import Client
    from rucio.common.exception import RucioException

    secrets = tuple(str(v) for k, v in (creds or {}).items() if k == "password" and v)
    settings = {"account": account, "auth_type": auth_type, **(creds or {})}
    _share_with_rucio(settings)
    endpoint = Endpoint.configured(account, auth_type, timeout, secrets)
    rucio_log = _RucioLog()
    if endpoint.auth_type == TOKEN_MODE:
        no_browser_login()
        bearer_token.current()  # none, or expired: say so before Rucio tries anything
    try:
        client = Client(account=account, auth_type=auth_type, creds=creds,
                        timeout=timeout or RUCIO_DEFAULT_TIMEOUT, logger=rucio_log)
    except Exception as exc:
        translated = endpoint.explain(exc, "authenticating", rucio_log.last_error)
        if translated is not None:
            raise translated from None
        if isinstance(exc, RucioException):
            # The message may quote the configuration; only the class name is safe to show.
            raise DataLakeError(f"cannot connect to Rucio at {endpoint.host} as account "
                                f"{endpoint.account}: {type(exc).__name__}") from None
        raise
    endpoint = Endpoint(str(client.host), str(client.account or endpoint.account),
                         str(client.auth_type or endpoint.auth_type), endpoint.config, timeout,
                         secrets)
    return GuardedClient(client, endpoint, rucio_log, settings)


def _share_with_rucio(settings: dict[str, Any]) -> None:
    """Rucio makes clients of its own, from its configuration alone (e.g. rsemanager's RSE
    lookup inside every upload and download). Credentials given here must be in that
    configuration too, or those clients log in as someone else, or not at all when the password
    came from the environment. Only this process's in-memory copy changes, never the file."""
    from rucio.common.config import get_config
    from rucio.common.exception import ConfigNotFound

    try:
        config = get_config()
    except ConfigNotFound:
        return  # the client below says so
    if not config.has_section("client"):
        return
    for option in ("account", "auth_type", "username", "password"):
        value = settings.get(option)
        if value is not None:
            # The parser interpolates `%`; escaped, the value reads back as given.
            config.set("client", option, str(value).replace("%", "%%"))
    if settings.get("auth_type") and "RUCIO_AUTH_TYPE" in os.environ:
        os.environ["RUCIO_AUTH_TYPE"] = str(settings["auth_type"])  # it wins over the file
