"""The testbed issuer's password hashes (PBKDF2-SHA256): a password matches its own hash only,
and an unknown user costs a hash too."""

from __future__ import annotations

from lofar_datalake_testbed.servers.passwords import ITERATIONS, hash_password, verify_password


def test_a_password_matches_its_own_hash_only() -> None:
    stored = hash_password("correct horse", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horse ")
    assert hash_password("correct horse", iterations=1000) != stored  # salted


def test_no_hash_or_a_malformed_one_never_matches() -> None:
    assert not verify_password(None, "")
    assert not verify_password("", "")
    assert not verify_password("md5$1$x$y", "x")
    assert not verify_password("pbkdf2_sha256$many$x$y", "x")


def test_the_default_work_factor_is_owasps() -> None:
    assert ITERATIONS >= 600_000
    assert hash_password("p").split("$")[1] == str(ITERATIONS)
