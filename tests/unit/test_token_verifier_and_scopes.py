"""servers/bearer.py: the WLCG storage-scope rules, and the token checks against keys of our own
(the issuer's discovery and JWKS answered in-process; tests/integration/test_token_auth.py runs
the real issuer)."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from lofar_datalake_testbed.servers import bearer
from lofar_datalake_testbed.servers.bearer import CREATE, MODIFY, READ, Need

ISSUER = "https://127.0.0.1:9999"
AUDIENCE = "https://127.0.0.1:8443"


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/", "/"),
        ("", "/"),
        ("/data/x", "/data/x"),
        ("//data///x/", "/data/x"),
        ("/data/./x", "/data/x"),
        ("/data/../etc/x", "/etc/x"),
        ("/..", None),
        ("/data/../../x", None),
    ],
)
def test_paths_are_normalised_and_never_lead_above_the_root(path, normal):
    assert bearer.normalise(path) == normal


@pytest.mark.parametrize(
    ("prefix", "path", "covered"),
    [
        ("/", "/anything/at/all", True),
        ("/data", "/data", True),
        ("/data", "/data/x/y", True),
        ("/data", "/database", False),
        ("/data", "/dat", False),
        ("/data/x", "/data", False),
    ],
)
def test_a_scope_path_covers_whole_segments_only(prefix, path, covered):
    assert bearer.covers(prefix, path) is covered


@pytest.mark.parametrize(
    ("method", "exists", "wanted"),
    [
        ("GET", True, [Need("/d/f", (READ,))]),
        ("HEAD", True, [Need("/d/f", (READ,))]),
        ("OPTIONS", True, [Need("/d/f", (READ,))]),
        ("PROPFIND", True, [Need("/d/f", (READ,))]),
        ("PUT", False, [Need("/d/f", (CREATE, MODIFY))]),
        ("MKCOL", False, [Need("/d/f", (CREATE, MODIFY))]),
        ("PUT", True, [Need("/d/f", (MODIFY,))]),
        ("DELETE", True, [Need("/d/f", (MODIFY,))]),
        ("PROPPATCH", True, [Need("/d/f", (MODIFY,))]),
        ("LOCK", True, [Need("/d/f", (MODIFY,))]),
        ("UNLOCK", True, [Need("/d/f", (MODIFY,))]),
        ("BREW", False, [Need("/d/f", (MODIFY,))]),  # unknown methods are treated as writes
    ],
)
def test_what_each_method_needs(method, exists, wanted):
    assert bearer.needs(method, "/d/f", exists=exists) == wanted


def test_move_needs_modify_at_both_ends_and_copy_reads_its_source():
    assert bearer.needs("MOVE", "/a", exists=True, destination="/b") == [
        Need("/a", (MODIFY,)),
        Need("/b", (MODIFY,)),
    ]
    assert bearer.needs("COPY", "/a", exists=True, destination="/b") == [
        Need("/a", (READ,)),
        Need("/b", (MODIFY,)),
    ]


def test_destination_headers_are_urls_or_paths_normalised():
    assert bearer.destination_path("https://127.0.0.1:1/data/a%20b") == "/data/a b"
    assert bearer.destination_path("/data/../x") == "/x"
    assert bearer.destination_path("https://h/../../x") is None


@pytest.mark.parametrize(
    ("scope", "method", "exists", "refused"),
    [
        ("storage.read:/", "GET", True, None),
        ("storage.read:/", "PUT", False, "storage.create:/data/f or storage.modify:/data/f"),
        ("storage.create:/data", "PUT", False, None),
        ("storage.create:/data", "PUT", True, "storage.modify:/data/f"),  # no overwriting
        ("storage.create:/data", "GET", True, "storage.read:/data/f"),
        ("storage.modify:/data", "PUT", True, None),
        ("storage.modify:/data/", "DELETE", True, None),
        ("storage.modify:/database", "DELETE", True, "storage.modify:/data/f"),
        ("storage.modify:/data/f/g", "DELETE", True, "storage.modify:/data/f"),
        ("openid storage.read:/x storage.modify:/", "DELETE", True, None),
        ("storage.modify:data", "DELETE", True, "storage.modify:/data/f"),  # not a path
        ("storage.modify:/../data", "DELETE", True, "storage.modify:/data/f"),
        ("storage.stage:/", "GET", True, "storage.read:/data/f"),
        ("", "GET", True, "storage.read:/data/f"),
    ],
)
def test_scopes_grant_what_they_name_under_their_path(scope, method, exists, refused):
    need = bearer.missing_scope(scope, bearer.needs(method, "/data/f", exists=exists))
    assert (None if need is None else str(need)) == refused


def test_a_move_out_of_the_granted_path_is_refused():
    wanted = bearer.needs("MOVE", "/data/f", exists=True, destination="/other/f")
    assert str(bearer.missing_scope("storage.modify:/data", wanted)) == "storage.modify:/other/f"


def test_the_bearer_header_is_found_whatever_its_case():
    assert bearer.bearer_token({"HTTP_AUTHORIZATION": "bearer abc"}) == "abc"
    assert bearer.bearer_token({"HTTP_AUTHORIZATION": "Bearer"}) == ""
    assert bearer.bearer_token({"HTTP_AUTHORIZATION": "Basic abc"}) is None
    assert bearer.bearer_token({}) is None


# --- the verifier, with keys of our own -----------------------------------------------------


@pytest.fixture()
def verifier(key, monkeypatch) -> bearer.Verifier:
    published = KeySet([key]).as_dict(private=False)
    fetched = []

    def answer(self, url):
        fetched.append(url)
        if url.endswith("/.well-known/openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        return published

    monkeypatch.setattr(bearer.Verifier, "_get_json", answer)
    made = bearer.Verifier(ISSUER, [AUDIENCE], leeway=0)
    made.fetched = fetched  # type: ignore[attr-defined]
    return made


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": [AUDIENCE],
        "scope": "storage.read:/",
        "wlcg.ver": "1.0",
        "iat": now,
        "exp": now + 60,
        "jti": "j1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: RSAKey, claims: dict, alg: str = "RS256", **header) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "at+jwt", **header}, claims, key)


def test_a_good_token_gives_its_claims(verifier, key):
    assert verifier.verify(_sign(key, _claims()))["sub"] == "alice"
    assert verifier.verify(_sign(key, _claims(aud=AUDIENCE)))["sub"] == "alice"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": ISSUER + "/"}, "claims are not acceptable"),
        ({"iss": None}, "lacks the claim(s) iss"),
        ({"exp": -5}, "expired"),
        ({"exp": None}, "lacks the claim(s) exp"),
        ({"nbf": 600}, "not acceptable"),
        ({"iat": 600}, "not acceptable"),
        ({"aud": ["https://elsewhere"]}, "not meant for this service"),
        ({"aud": bearer.ANY_AUDIENCE}, "not meant for this service"),  # not configured here
        ({"aud": None}, "not meant for this service"),
        ({"wlcg.ver": None}, "wlcg.ver"),
        ({"sub": None}, "lacks the claim(s) sub"),
    ],
)
def test_tokens_with_unacceptable_claims_are_refused(verifier, key, changes, reason):
    """Times are given in seconds from now: the parameters are made at collection, the test
    may run much later in a long session."""
    now = int(time.time())
    changes = {k: now + v if k in ("exp", "nbf", "iat") and v is not None else v
               for k, v in changes.items()}
    token = _sign(key, _claims(**changes))
    with pytest.raises(bearer.InvalidToken, match=reason.replace("(", r"\(").replace(")", r"\)")):
        verifier.verify(token)


def test_the_any_audience_counts_only_where_configured(key, verifier, monkeypatch):
    token = _sign(key, _claims(aud=[bearer.ANY_AUDIENCE]))
    monkeypatch.setattr(verifier, "audiences", frozenset({AUDIENCE, bearer.ANY_AUDIENCE}))
    assert verifier.verify(token)["sub"] == "alice"


def test_unsigned_foreign_and_tampered_tokens_are_refused(verifier, key):
    good = _sign(key, _claims())
    header, payload, signature = good.split(".")
    with pytest.raises(bearer.InvalidToken, match="alg 'none'"):
        verifier.verify(f"eyJhbGciOiJub25lIn0.{payload}.")
    stranger = RSAKey.generate_key(2048, private=True)
    stranger.ensure_kid()
    with pytest.raises(bearer.InvalidToken, match="does not publish"):
        verifier.verify(_sign(stranger, _claims()))
    # Another key claiming the issuer's kid: the signature fails.
    forged = jwt.encode({"alg": "RS256", "kid": key.kid}, _claims(sub="root"), stranger)
    with pytest.raises(bearer.InvalidToken, match="signature does not verify"):
        verifier.verify(forged)
    with pytest.raises(bearer.InvalidToken, match="alg 'HS256'"):
        verifier.verify(jwt.encode({"alg": "HS256"}, _claims(), OctKey.generate_key(256)))
    with pytest.raises(bearer.InvalidToken, match="not a signed JWT"):
        verifier.verify("not.a-jwt")
    with pytest.raises(bearer.InvalidToken, match="signature"):
        verifier.verify(f"{header}.{payload}.{signature[:-4]}AAAA")


def test_keys_are_fetched_once_and_again_for_an_unknown_kid_at_most_so_often(
    verifier, key, monkeypatch
):
    verifier.verify(_sign(key, _claims()))
    verifier.verify(_sign(key, _claims()))
    assert len(verifier.fetched) == 2  # discovery, then the keys, once
    stranger = RSAKey.generate_key(2048, private=True)
    stranger.ensure_kid()
    for _ in range(3):
        with pytest.raises(bearer.InvalidToken):
            verifier.verify(_sign(stranger, _claims()))
    assert len(verifier.fetched) == 2  # within REFETCH_AFTER of the last fetch: none
    monkeypatch.setattr(bearer, "REFETCH_AFTER", 0.0)
    with pytest.raises(bearer.InvalidToken):
        verifier.verify(_sign(stranger, _claims()))
    assert verifier.fetched[-1].endswith("/jwks") and len(verifier.fetched) == 3


def test_reasons_never_repeat_the_token(verifier, key):
    token = _sign(key, _claims(exp=int(time.time()) - 5))
    with pytest.raises(bearer.InvalidToken) as refused:
        verifier.verify(token)
    assert token not in str(refused.value)
    for part in token.split("."):
        assert part not in str(refused.value)
