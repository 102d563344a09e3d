"""A Snakemake workflow with 20 DataLake inputs spread over three RSEs, under each stage policy;
the DataLake afterwards shows what the policy implies (rules, registered replicas, or nothing)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from datalake_core.journal import read_events
from datalake_core.site_transfer import RULE_COMMENT

pytestmark = pytest.mark.integration

SNAKEFILE = Path(__file__).parents[1] / "workflow" / "storage" / "Snakefile"
SITE = "SITE_A_DISK"
N = 20


def _seed_spread(seed, unique: str):
    names = [f"{unique}/SB{i:03d}.dat" for i in range(N)]
    return (seed(names[0:7], "SITE_A_DISK") + seed(names[7:14], "SITE_B_DISK")
            + seed(names[14:], "SITE_C_DAV"))


def _expected_summary(files) -> str:
    return "".join(
        f"{Path(f.did.name).stem} {len(f.data)} {zlib.adler32(f.data) & 0xFFFFFFFF:08x}\n"
        for f in sorted(files, key=lambda f: f.did.name))


@pytest.fixture()
def run_policy(datalake_args, run_snakemake, client_env, unique, tmp_path):
    def run(policy: str, *extra: str, n: int = N):
        return _run(run_snakemake, datalake_args, tmp_path, client_env, unique, policy, *extra,
                    n=n)

    return run


def _run(run_snakemake, datalake_args, tmp_path: Path, env, unique: str, policy: str,
         *extra: str, n: int = N):
    args = [*datalake_args, "--storage-datalake-site-rse", SITE,
            "--storage-datalake-stage-policy", policy,
            "--storage-datalake-max-concurrent-transfers", "4",
            "--storage-datalake-stage-timeout", "180", *extra,
            "--config", f"prefix={unique}", f"count={n}"]
    result = run_snakemake(tmp_path, SNAKEFILE, args, env)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _site_state(rucio, files) -> tuple[set[str], list[dict]]:
    replicas = rucio.list_replicas([f.did for f in files])
    at_site = {r["name"] for r in replicas if r["states"].get(SITE) == "AVAILABLE"}
    rules = [r for f in files for r in rucio.list_did_rules(f.did)
             if r["rse_expression"] == SITE and r["account"] == rucio.account]
    return at_site, rules


@pytest.mark.parametrize("policy", ["download", "rule", "fts"])
def test_twenty_inputs_on_three_rses(policy, rucio, seed, unique, run_policy, tmp_path):
    files = _seed_spread(seed, unique)
    result = run_policy(policy)
    assert (tmp_path / "summary.txt").read_text() == _expected_summary(files)

    at_site, rules = _site_state(rucio, files)
    names = {f.did.name for f in files}
    remote = {f.did.name for f in files if f.rse != SITE}
    if policy == "download":
        assert at_site == names - remote, "download must not add replicas at the site"
        assert rules == []
    elif policy == "rule":
        assert at_site == names
        ruled = {r["name"] for r in rules}
        assert ruled == remote, "rules for exactly the files that were not at the site"
        assert all(r["state"] == "OK" and r["expires_at"] is not None for r in rules)
        assert rucio.client.get_replication_rule(rules[0]["id"])["comments"] == RULE_COMMENT
        # Stage-ahead: all 13 went in the first batch, though only two jobs ran at a time.
        assert "rules for 13 files to SITE_A_DISK" in result.stderr
    else:
        assert at_site == names, "FTS copies must be registered as replicas at the site"
        assert rules == [], "policy fts makes no rules"
    # Files already at the site were linked, not copied.
    assert "symlink from SITE_A_DISK" in result.stderr


def test_rerun_fetches_nothing_again(seed, unique, run_policy, tmp_path):
    files = _seed_spread(seed, unique)
    run_policy("download", "--keep-storage-local-copies")
    (tmp_path / "summary.txt").unlink()
    for out in (tmp_path / "checked").iterdir():
        out.unlink()
    again = run_policy("download", "--keep-storage-local-copies")
    assert "Retrieving from storage" not in again.stderr
    assert (tmp_path / "summary.txt").read_text() == _expected_summary(files)


def test_corrupt_replica_is_skipped_for_a_good_one(testbed, rucio, seed, unique, run_policy,
                                                   tmp_path):
    # The same file registered on the site RSE and on SITE_C; the site's copy is then damaged.
    names = [f"{unique}/SB{i:03d}.dat" for i in range(2)]
    good = seed(names, "SITE_C_DAV")
    damaged = _same_bytes_on(testbed, rucio, good, SITE)
    damaged[0].write_bytes(bytes(b ^ 0xFF for b in good[0].data))
    result = run_policy("download", n=2)
    assert "adler32 mismatch" in result.stderr and "skipped" in result.stderr
    assert (tmp_path / "summary.txt").read_text() == _expected_summary(good)

    # Never used: the damaged file was read from SITE_C, the intact one from the site.
    events = read_events(tmp_path)
    used = {e["did"]: e["rse"] for e in events if e["event"] == "input"}
    assert used == {str(good[0].did): "SITE_C_DAV", str(good[1].did): SITE}
    # Reported, not declared: one journal entry, and a command for an operator.
    [bad] = [e for e in events if e["event"] == "bad_replica"]
    assert (bad["did"], bad["rse"], bad["pfn"]) == (str(good[0].did), SITE,
                                                   f"file://{damaged[0]}")
    assert bad["reason"].startswith("adler32 mismatch")
    assert _replica_states(rucio, good[0].did) == {SITE: "AVAILABLE", "SITE_C_DAV": "AVAILABLE"}
    assert Path(bad["lfn_list"]).read_text() == good[0].did.name + "\n"
    [hint] = [line for line in result.stderr.splitlines() if "replica state update bad" in line]
    command = shlex.split(hint[hint.index("rucio replica state update bad"):])
    # The pipeline's account may not declare bad replicas; the testbed's root account (an
    # operator) runs the command exactly as logged.
    operator = {**os.environ, "RUCIO_CONFIG": str(testbed.layout.server_config)}
    command[0] = str(Path(sys.executable).with_name(command[0]))
    declared = subprocess.run(command, env=operator, capture_output=True, text=True, timeout=120)
    assert declared.returncode == 0 and "cannot be declared" not in declared.stdout, declared
    assert _replica_states(rucio, good[0].did) == {SITE: "BAD", "SITE_C_DAV": "AVAILABLE"}
    assert _replica_states(rucio, good[1].did) == {SITE: "AVAILABLE", "SITE_C_DAV": "AVAILABLE"}


def _replica_states(rucio, did) -> dict[str, str]:
    [replica] = rucio.list_replicas([did])
    return dict(replica["states"])


def test_unknown_did_fails_before_any_job(datalake_args, run_snakemake, unique, client_env,
                                          tmp_path):
    args = [*datalake_args, "--config", f"prefix={unique}/nothing-here", "count=2"]
    result = run_snakemake(tmp_path, SNAKEFILE, args, client_env)
    assert result.returncode != 0
    assert "MissingInputException" in result.stderr
    assert f"datalake://lofar/{unique}/nothing-here/SB000.dat" in result.stderr
    assert not (tmp_path / "checked").exists(), "no job may have run"


def _same_bytes_on(testbed, rucio, files, rse: str) -> list[Path]:
    """Register copies of already seeded files on another RSE too; returns their paths."""
    from rucio.rse import rsemanager

    info = rucio.rse_info(rse)
    pfns = rsemanager.lfns2pfns(info, [f.did.as_dict() for f in files], operation="write",
                                scheme="file")
    paths = []
    for f in files:
        path = Path(pfns[str(f.did)].removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
        paths.append(path)
    rucio.add_replicas(rse, [{"scope": f.did.scope, "name": f.did.name, "bytes": len(f.data),
                              "adler32": f"{zlib.adler32(f.data) & 0xFFFFFFFF:08x}"}
                             for f in files])
    return paths


def test_https_replicas_are_read_with_verified_tls_or_from_a_mount(testbed, seed, unique,
                                                                   run_policy, tmp_path):
    files = seed([f"{unique}/SB{i:03d}.dat" for i in range(2)], "SITE_C_DAV")
    over_https = run_policy("download", n=2)
    assert over_https.stderr.count("via https from SITE_C_DAV") == 2
    (tmp_path / "summary.txt").unlink()
    for out in (tmp_path / "checked").iterdir():
        out.unlink()
    mounted = run_policy("download", "--storage-datalake-mounts",
                         f"SITE_C_DAV={testbed.layout.rse_dir('SITE_C_DAV')}", n=2)
    assert mounted.stderr.count("via copy from SITE_C_DAV") == 2
    assert (tmp_path / "summary.txt").read_text() == _expected_summary(files)
