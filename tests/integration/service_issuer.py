"""The service's registrations at the testbed's issuer, as the DataLake's operators make them:
its own client for people's logins, and researchers' token clients for their runs, with the
Rucio identities their tokens map to (not a test module)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rucio_accounts import add_oidc_identity

if TYPE_CHECKING:
    from service_support import Researcher, Service


def register_oidc_client(testbed, service: Service) -> str:
    """The service's client at the testbed's issuer, as its operator registers it (redirect URI
    exactly its callback), the secret in a private file, and serve's options naming them."""
    from lofar_datalake_testbed.issuer_accounts import add_client
    from lofar_datalake_testbed.tokens import issuer_url

    client_id = f"lofar-datalake-service-{secrets.token_hex(4)}"
    secret = secrets.token_urlsafe(32)
    secret_file = service.etc / "oidc-client.secret"
    secret_file.touch(0o600)
    secret_file.write_text(secret)
    add_client(testbed.layout, client_id, secret, [f"{service.url}/login/oidc/callback"])
    service.args += ["--oidc-issuer", issuer_url(testbed.layout.ports()),
                     "--oidc-client-id", client_id, "--oidc-client-secret-file", str(secret_file)]
    return client_id


def give_token_client(testbed, researcher: Researcher, entry: dict, account: str) -> None:
    """Instead of their Rucio password, a token client at the testbed's issuer, registered with
    what their runs do, its secret in a private file (now `researcher.credential`), and the
    identity mapping its tokens to their account, as the DataLake's operators set it up."""
    researcher.credential.unlink()
    researcher.credential = researcher.credential.with_name(f"{researcher.name}.client-secret")
    researcher.credential.touch(0o600)
    researcher.credential.write_text(secrets.token_urlsafe(24))
    researcher.token_client = f"{account}-runs"
    register_token_client(testbed, researcher, entry["scopes"])
    add_oidc_identity(testbed, account, researcher.token_client)
    del entry["credential"]
    entry["token_client"] = {"id": researcher.token_client,
                             "secret_file": str(researcher.credential)}


def register_token_client(testbed, researcher: Researcher, scopes: Sequence[str], *,
                          without: Sequence[str] = (), lifetime: int = 3600) -> None:
    """(Re-)register the researcher's client: Rucio's `openid profile`, reading the storage
    paths of `scopes`, creating and modifying below the first (their own; Rucio's hash lfn2pfn
    keeps `user.x:f` below /user/x), less the scopes `without`, for Rucio, the FTS service and
    the storage, its tokens living `lifetime` seconds."""
    from lofar_datalake_testbed import tokens

    def path(scope: str) -> str:
        return "/" + (scope.replace(".", "/") if scope.startswith(("user", "group")) else scope)

    allowed = ["openid", "profile", *(f"storage.read:{path(s)}" for s in scopes),
               f"storage.create:{path(scopes[0])}", f"storage.modify:{path(scopes[0])}"]
    tokens.register_token_client(
        testbed.layout, researcher.token_client, researcher.credential.read_text(),
        scopes=[s for s in allowed if s not in without], lifetime=lifetime,
        audiences=[tokens.RUCIO_AUDIENCE, *tokens.service_audiences(testbed.layout.ports())])


def token_options(testbed) -> list[str]:
    """serve's options for the researchers' token clients: the testbed's issuer, and the
    audiences of Rucio, the FTS service and every storage (no catch-all audience)."""
    from lofar_datalake_testbed import tokens

    ports = testbed.layout.ports()
    audiences = [tokens.RUCIO_AUDIENCE, *tokens.service_audiences(ports)]
    return ["--oidc-issuer", tokens.issuer_url(ports),
            *(a for audience in audiences for a in ("--token-audience", audience))]
