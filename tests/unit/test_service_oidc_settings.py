"""Logging in through an OpenID issuer, the parts that need no issuer: the researchers file's
`oidc_subject`, and `serve`'s OpenID options (the secret from a private file, never the
command line)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lofar_datalake.service import command, oidc, researchers
from lofar_datalake.service.researchers import ResearchersFileError

SUBJECT = "0b6f2b8e-8d2a-4a53-9d1e-3f8c2a1d7e55"


def person(credential: Path, **fields: object) -> dict[str, object]:
    return {"rucio_account": "alice", "scopes": ["user.alice"], "credential": str(credential),
            **fields}


def error(data: object) -> str:
    with pytest.raises(ResearchersFileError) as caught:
        researchers.parse(data)
    return str(caught.value)


def test_an_oidc_subject_alone_is_a_researcher_without_a_password(credential: Path) -> None:
    alice = researchers.parse({"researchers": {
        "alice": person(credential, oidc_subject=SUBJECT)}})["alice"]
    assert alice.oidc_subject == SUBJECT
    assert alice.password_hash == ""
    assert not researchers.verify(alice, "")
    assert not researchers.verify(alice, "anything")


def test_a_researcher_may_have_both_a_password_and_a_subject(credential: Path) -> None:
    alice = researchers.parse({"researchers": {"alice": person(
        credential, oidc_subject=SUBJECT,
        password_hash=researchers.hash_password("her login"))}})["alice"]
    assert alice.oidc_subject == SUBJECT
    assert researchers.verify(alice, "her login")


def test_a_researcher_needs_a_password_hash_or_an_oidc_subject(credential: Path) -> None:
    assert error({"researchers": {"alice": person(credential)}}) == (
        "researchers.alice: missing password_hash or oidc_subject (how they log in: a "
        "password, the OpenID issuer, or both)")
    assert error({"researchers": {"alice": {"oidc_subject": SUBJECT}}}) == (
        "researchers.alice: missing rucio_account, scopes")


@pytest.mark.parametrize("subject", ["", 42, None, "a\nb", "é", "x" * 256, ["sub"]])
def test_a_malformed_oidc_subject_is_named(credential: Path, subject: object) -> None:
    assert error({"researchers": {"alice": person(credential, oidc_subject=subject)}}
                 ).startswith("researchers.alice.oidc_subject: must be the `sub` the OpenID "
                              "issuer gives them: 1 to 255 printable ASCII characters, got ")


def test_one_subject_names_one_researcher(credential: Path) -> None:
    assert error({"researchers": {
        "alice": person(credential, oidc_subject=SUBJECT),
        "bob": person(credential, oidc_subject=SUBJECT)}}) == (
        f"researchers.bob.oidc_subject: '{SUBJECT}' already names researchers.alice; one "
        "person, one entry")


def test_a_misspelt_key_lists_oidc_subject_among_the_known(credential: Path) -> None:
    assert "known: credential, limits, oidc_subject, password_hash" in error(
        {"researchers": {"alice": person(credential, oidc_sub=SUBJECT)}})


def test_the_example_researchers_file_is_valid_apart_from_its_credential_path() -> None:
    import yaml

    example = Path(__file__).resolve().parents[2] / "config" / "researchers.example.yaml"
    entries = yaml.safe_load(example.read_text())["researchers"]
    assert any("oidc_subject" in e and "password_hash" not in e for e in entries.values())
    message = error(yaml.safe_load(example.read_text()))
    assert ".credential: cannot read /etc/lofar-datalake/" in message  # not on this machine


def serve_args(tmp_path: Path, **given: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--researchers", str(tmp_path / "r.yaml")])
    for name, value in given.items():
        setattr(args, name, value)
    return args


def test_researchers_without_a_password_need_the_issuer(tmp_path: Path,
                                                        credential: Path) -> None:
    known = researchers.parse({"researchers": {
        "alice": person(credential, oidc_subject=SUBJECT),
        "bob": person(credential, password_hash=researchers.hash_password("his"))}})
    with pytest.raises(ValueError, match=r"^researchers alice have no password_hash and log in "
                                         r"through the OpenID issuer: give --oidc-issuer"):
        command.oidc_provider(serve_args(tmp_path), known, tmp_path / "ca.pem")
    del known["alice"]
    assert command.oidc_provider(serve_args(tmp_path), known, tmp_path / "ca.pem") is None


def test_the_client_secret_comes_from_a_private_file_only(tmp_path: Path) -> None:
    secret = tmp_path / "client.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(ValueError, match=r"readable by others \(mode 0o644\); make it 0600"):
        oidc.read_secret(secret)
    secret.chmod(0o600)
    assert oidc.read_secret(secret) == "s3cret"
    secret.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        oidc.read_secret(secret)
    with pytest.raises(ValueError, match=r"cannot read .*: No such file or directory"):
        oidc.read_secret(tmp_path / "missing")
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert not [a for a in parser._actions if "secret" in a.dest and a.dest != (
        "oidc_client_secret_file")]  # no option takes a secret itself


@pytest.mark.parametrize(("issuer", "client_id", "secret", "message"), [
    ("", "svc", True, "--oidc-issuer: the issuer's URL is needed"),
    ("http://127.0.0.1:1", "svc", True, "--oidc-issuer http://127.0.0.1:1: must be an https://"),
    ("https://127.0.0.1:1", "", True, "--oidc-client-id: the service's client id"),
    ("https://127.0.0.1:1", "svc", False, "--oidc-client-secret-file: the file holding"),
])
def test_incomplete_oidc_options_are_named(tmp_path: Path, issuer: str, client_id: str,
                                           secret: bool, message: str) -> None:
    path = tmp_path / "client.secret"
    path.write_text("s3cret")
    path.chmod(0o600)
    with pytest.raises(ValueError, match=f"^{message}"):
        oidc.configure(issuer, client_id, path if secret else None, tmp_path / "ca.pem")


def test_the_id_token_must_name_the_issuer_and_this_client() -> None:
    provider = oidc.Provider("https://127.0.0.1:1", "svc", "s3cret", Path("ca.pem"))
    options = oidc.claims_options(provider)
    assert options["iss"] == {"essential": True, "values": ["https://127.0.0.1:1"]}
    assert options["aud"] == {"essential": True, "values": ["svc"]}
    assert "s3cret" not in repr(provider)
