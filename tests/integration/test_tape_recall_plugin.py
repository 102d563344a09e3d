"""The storage plugin over inputs whose only replicas are on tape (LTA_TAPE): Rucio recalls them
(rules on the staging area LTA_STAGING, conveyor-stager, FTS bring-online) within the site's
recall window, jobs read them from the staging area, rules go once files are local and pins
last no longer than the recall lifetime; with the rule policy Rucio recalls them straight to the
site's RSE and no pin is left after the run; a file lost on tape fails with a message naming
it, the tape RSE and FTS's reason, and a run resumed after a kill recalls nothing twice. Counts
come from FTS's job records, the tape library's pins and the run's journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tape_recall_support import (
    most_staging_at_once,
    on_tape,
    recall_rules,
    released,
    staging_records,
    summary_of,
)

from datalake_core.journal import read_events
from lofar_datalake_testbed.layout import TAPE_RSE
from lofar_datalake_testbed.servers import tape

pytestmark = pytest.mark.integration

SITE = "SITE_A_DISK"
SNAKEFILE = Path(__file__).parents[1] / "workflow" / "storage" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _names(unique: str, n: int) -> list[str]:
    return [f"{unique}/SB{i:03d}.dat" for i in range(n)]


def _args(datalake_args, unique: str, n: int, *extra: str) -> list[str]:
    return [*datalake_args, "--storage-datalake-stage-timeout", "240", *extra,
            "--config", f"prefix={unique}", f"count={n}"]


def _recalls(workdir: Path, action: str) -> list[dict]:
    return [e for e in read_events(workdir) if e["event"] == "recall" and e["action"] == action]


def test_a_workflow_over_tape_inputs_recalls_them_through_rucio_and_gets_the_right_products(
        testbed, rucio, unique, datalake_args, run_snakemake, client_env, tmp_path):
    files = on_tape(testbed, rucio, _names(unique, 5))
    lifetime = 600

    done = run_snakemake(tmp_path, SNAKEFILE, _args(
        datalake_args, unique, 5, "--storage-datalake-recall-lifetime", str(lifetime)),
        client_env)

    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "summary.txt").read_text() == summary_of(files)
    # Rucio recalled each file once (one staging-only FTS file record each) and the plugin
    # read it from the staging area, then deleted its recall rule.
    records = staging_records(testbed, files)
    assert Counter(r["source_surl"] for r in records) == Counter(f.url for f in files)
    assert all(r["source_surl"] == r["dest_surl"] and r["file_state"] == "FINISHED"
               for r in records)
    assert "from LTA_STAGING" in done.stderr and "tape recall: 5 online, 0 pending" in done.stderr
    # Snakemake's default (ilp) scheduler: the run is told what starts jobs in recall order.
    assert "--scheduler greedy" in done.stderr
    rules = recall_rules(rucio, files)
    assert len(rules) == 5 and all(released(r) for r in rules)
    requested = _recalls(tmp_path, "requested")
    assert sorted(f for e in requested for f in e["files"]) == sorted(str(f.did) for f in files)
    assert all(e["tape_rse"] == TAPE_RSE for e in requested)
    assert sorted(f for e in _recalls(tmp_path, "online") for f in e["files"]) == sorted(
        str(f.did) for f in files)
    # A staging area's pin lasts its rule's lifetime (Rucio's reaper releases none): no longer.
    root = testbed.layout.rse_dir(TAPE_RSE)
    pins = [e for f in files for e in tape.read_pins(root, f.relative).values()]
    assert len(pins) == 5 and all(e <= time.time() + lifetime for e in pins)


def test_with_the_rule_policy_files_are_recalled_to_the_site_and_nothing_stays_pinned(
        testbed, rucio, unique, datalake_args, run_snakemake, client_env, tmp_path):
    files = on_tape(testbed, rucio, _names(unique, 4))

    done = run_snakemake(tmp_path, SNAKEFILE, _args(
        datalake_args, unique, 4, "--storage-datalake-site-rse", SITE,
        "--storage-datalake-stage-policy", "rule"), client_env)

    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "summary.txt").read_text() == summary_of(files)
    # One transfer from tape to the site per file (bring-online, then the copy), no
    # staging-only job, and FTS released each pin once the file was copied.
    records = staging_records(testbed, files)
    assert Counter(r["source_surl"] for r in records) == Counter(f.url for f in files)
    assert all(r["file_state"] == "FINISHED" and r["dest_surl"] != r["source_surl"]
               for r in records)
    root = testbed.layout.rse_dir(TAPE_RSE)
    assert {f.relative: tape.state(root, f.relative) for f in files} == {
        f.relative: tape.NEARLINE for f in files}, "a pin outlived the run"
    assert all(not tape.read_pins(root, f.relative) for f in files)
    assert {e["staging_rse"] for e in _recalls(tmp_path, "requested")} == {SITE}
    for replica in rucio.list_replicas(list(f.did for f in files)):
        assert replica["states"].get(SITE) == "AVAILABLE"
    assert not recall_rules(rucio, files), "nothing was recalled to the staging area"


def test_the_recall_window_bounds_files_per_request_and_in_flight(
        testbed, rucio, unique, datalake_args, run_snakemake, client_env, tmp_path):
    files = on_tape(testbed, rucio, _names(unique, 8))

    done = run_snakemake(tmp_path, SNAKEFILE, _args(
        datalake_args, unique, 8, "--storage-datalake-recall-files-per-request", "2",
        "--storage-datalake-recall-files-in-flight", "3"), client_env)

    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "summary.txt").read_text() == summary_of(files)
    requested = _recalls(tmp_path, "requested")
    assert all(len(e["files"]) <= 2 for e in requested) and len(requested) >= 4
    # From FTS's records: never more than 3 files between bring-online and online.
    records = staging_records(testbed, files)
    assert len(records) == 8
    assert most_staging_at_once(records) <= 3


def test_a_file_lost_on_tape_fails_its_job_with_the_file_the_tape_rse_and_ftss_reason(
        testbed, rucio, unique, datalake_args, run_snakemake, client_env, tmp_path):
    files = on_tape(testbed, rucio, _names(unique, 3))
    lost = files[1]
    tape.mark_lost(testbed.layout.rse_dir(TAPE_RSE), lost.relative)

    done = run_snakemake(tmp_path, SNAKEFILE, _args(datalake_args, unique, 3), client_env)

    assert done.returncode != 0
    message = next(line for line in done.stderr.splitlines()
                   if "recall from tape RSE" in line and lost.did.name in line)
    assert TAPE_RSE in message and "file lost on tape" in message
    failed = _recalls(tmp_path, "failed")
    assert [list(e["failed"]) for e in failed] == [[str(lost.did)]]
    assert "password" not in done.stderr.lower()


def test_a_run_resumed_after_a_kill_recalls_nothing_twice(
        testbed, rucio, unique, datalake_args, client_env, tmp_path):
    n = 6
    files = on_tape(testbed, rucio, _names(unique, n))
    command = [SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(tmp_path), "--cores", "2",
               *_args(datalake_args, unique, n)]
    first = subprocess.Popen(command, cwd=tmp_path, env=client_env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _recalls(tmp_path, "requested") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _recalls(tmp_path, "requested"), "the first run requested no recall"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert not (tmp_path / "summary.txt").exists()
    subprocess.run([*command, "--unlock"], cwd=tmp_path, env=client_env, capture_output=True,
                   timeout=120, check=True)
    started = time.time()

    again = subprocess.run([*command, "--rerun-incomplete"], cwd=tmp_path, env=client_env,
                           capture_output=True, text=True, timeout=300)

    assert again.returncode == 0, again.stderr[-4000:]
    assert (tmp_path / "summary.txt").read_text() == summary_of(files)
    records = staging_records(testbed, files)
    assert Counter(r["source_surl"] for r in records) == Counter(f.url for f in files), (
        "each file recalled once over both runs")
    requested = _recalls(tmp_path, "requested")
    before = {f for e in requested if e["time"] < started for f in e["files"]}
    resumed = [e for e in requested if e["time"] >= started]
    # The kill may come between two requests of the window: files the first run had not
    # requested yet get rules of their own now, those it had requested reuse its rules.
    again_asked = sum(len([f for f in e["files"] if f in before]) for e in resumed)
    assert sum(e["reused"] for e in resumed) >= again_asked
    assert all(released(r) for r in recall_rules(rucio, files))
