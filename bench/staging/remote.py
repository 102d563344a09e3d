"""Parallel stage-in from a remote RSE: N files on a remote RSE (SITE_C_DAV, WebDAV over https;
or SITE_D_XRD, XRootD's root:// and https) made local at SITE_A by the Stager under each stage
policy, against a serial `rucio download` of the same files and `cp` of them. Every repetition
of every variant uses fresh DIDs (hard links to the same bytes), so nothing is at the
destination yet. `curl` reads the https PFNs (on SITE_D_XRD, XRootD's XrdHttp), whatever
protocol the RSE prefers for the Stager.

The Stager and `rucio download` are timed alike: each is a process of its own, timed from its
start to its exit, so both pay interpreter start, authentication and resolution of the DIDs
(the Stager in `stage_once.py`). `cp` and `curl` pay their process start only (`curl` is given
the PFNs)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from record import REMOTE_VS_CP, REMOTE_VS_SERIAL, Target, paired_ratios, spread

from datalake_core import site_transfer
from datalake_core.rucio_adapter import RucioAdapter
from staging import files, timeline
from staging.common import BIN, MiB, figure, median, paired_ratio, run, say, timed
from staging.common import drop_caches as drop
from staging.provider import Staging, settings

REMOTE = "SITE_C_DAV"  # the default remote RSE: WebDAV (WsgiDAV); SITE_D_XRD is XRootD
RESULT_NAMES = {"SITE_C_DAV": "staging_remote", "SITE_D_XRD": "staging_remote_xrootd"}
SITE = "SITE_A_DISK"
STAGE_ONCE = Path(__file__).resolve().with_name("stage_once.py")


class Rep:
    """One variant in one repetition: its DIDs, where their bytes went, and the clean-up."""

    def __init__(self, rucio: RucioAdapter, rse: str, tag: str, blobs: list[files.Blob],
                 dest: Path, register: bool) -> None:
        self.rucio = rucio
        self.rse = rse
        # Flat names: `rucio download` 41.5 fails on names with '/' (and still exits 0).
        self.names = [f"{tag}-f{i:03d}.dat" for i in range(len(blobs))]
        self.dids = files.dids(self.names)
        self.dest = dest
        dest.mkdir(parents=True)
        self.created = [dest]
        if register:
            self.created += files.register(rucio, rse, dict(zip(self.names, blobs,
                                                                    strict=True)))

    def check(self, total: int) -> None:
        """Every variant must have produced all the bytes (some tools fail and exit 0)."""
        got = [p for p in self.dest.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in got)
        if len(got) != len(self.names) or size != total:
            raise SystemExit(f"{self.dest}: {len(got)} files, {size} bytes; expected "
                             f"{len(self.names)} files, {total} bytes")

    def clean(self, rule_ids: list[str]) -> None:
        for rule_id in rule_ids:
            try:
                self.rucio.client.delete_replication_rule(rule_id, purge_replicas=True)
            except Exception as exc:  # the bytes are removed below either way
                say(f"  (rule {rule_id} not deleted: {type(exc).__name__})")
        site = files.rse_paths(self.rucio, SITE, self.names)
        files.remove([*self.created, *site.values()])


def measure(tmp: Path, env: dict[str, str], n_files: int, file_mib: int, repeat: int,
            policies: list[str], transfers: int, cold: bool, profile: bool = False,
            remote: str = REMOTE) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rucio = RucioAdapter()
    stamp = time.time_ns()
    say(f"writing {n_files} x {file_mib} MiB source files")
    blobs = [files.write_random(tmp / "src" / f"f{i:03d}.dat", file_mib * MiB)
             for i in range(n_files)]
    mount = files.rse_dir(rucio, SITE)
    endpoint = str(rucio.rse_attributes(SITE)["fts"]).split(",")[0]
    variants = ["cp", "rucio-serial", "curl", *policies]
    times: dict[str, list[float]] = {v: [] for v in variants}
    hows: dict[str, set[str]] = {p: set() for p in policies}
    steps: dict[str, list[dict[str, Any]]] = {p: [] for p in policies if p != "download"}
    dropped = True
    cli_env = {**os.environ, **env}

    def make(policy: str, job: Rep) -> Staging:
        staging = Staging(settings(Path(env["RUCIO_CONFIG"]), Path(env["CA_BUNDLE"]), SITE,
                                   mount, policy, "symlink", transfers), tmp / "journal")
        staging.resolve(job.dids)
        return staging

    def child(policy: str, job: Rep, log: Path) -> tuple[Path, Callable[[], object]]:
        """The Stager in a process of its own: its settings file, and the timed command."""
        spec = tmp / f"{job.dest.name}.settings.json"
        spec.write_text(json.dumps(settings(Path(env["RUCIO_CONFIG"]), Path(env["CA_BUNDLE"]),
                                            SITE, mount, policy, "symlink", transfers)))
        out = tmp / f"{job.dest.name}.out.json"
        cmd = [sys.executable, str(STAGE_ONCE), str(spec), str(out), str(job.dest),
               *(str(d) for d in job.dids)]
        return out, partial(run, cmd, env=cli_env, log=log)

    for rep in range(repeat):
        for v in variants if rep % 2 == 0 else variants[::-1]:
            job = Rep(rucio, remote, f"bench-staging-{stamp}-r{rep}-{v}", blobs,
                      tmp / f"r{rep}-{v}", register=v != "cp")
            log = tmp / f"{v}-r{rep}.log"
            out = None
            if v in policies:
                out, action = child(v, job, log)
            else:
                action = _action(v, job, blobs, cli_env, log, transfers)
            dropped = drop(cold) and dropped
            started = time.time()
            times[v].append(timed(action))
            say(f"  rep {rep + 1}/{repeat} {v:<13} {times[v][-1]:7.2f} s")
            job.check(sum(b.size for b in blobs))
            rules: list[str] = []
            if out is not None:
                done = json.loads(out.read_text())
                hows[v].update(done["hows"])
                rules = done["rules"]
                if v in steps:
                    steps[v].append(timeline.breakdown(
                        started, done["site_done"], endpoint, job.names, rucio,
                        rules or None, finished=started + times[v][-1]))
            job.clean(rules)
    profiles = {}
    for v in [p for p in policies if p != "rule"] if profile else []:
        job = Rep(rucio, remote, f"bench-staging-{stamp}-profile-{v}", blobs, tmp / f"profile-{v}",
                  register=True)
        staging = make(v, job)
        staging.profile_workers()
        drop(cold)
        staging.stage(job.dids, job.dest)
        profiles[v] = staging.profile_top()
        staging.close()
        job.clean(list(staging.stager.site.rules_created))
    shutil.rmtree(tmp / "src", ignore_errors=True)
    return _figures(times, n_files, file_mib, policies, steps, remote), {
        "files": n_files, "file_mib": file_mib, "repetitions": repeat,
        "remote_rse": remote, "site_rse": SITE, "max_concurrent_transfers": transfers,
        "page_cache": "dropped before each timed variant" if cold and dropped
        else "warm for all variants",
        "seconds": {v: [round(x, 3) for x in t] for v, t in times.items()},
        "seconds_spread": {v: spread(t) for v, t in times.items()},
        "how": {p: sorted(h) for p, h in hows.items()},
        "site_transfer_steps": {p: _median_steps(s) for p, s in steps.items()},
        "site_transfer_steps_each": steps,
        "rule_poll_s": site_transfer.RULE_POLL,
        "profile_tottime": profiles,
        "method": "each repetition runs every variant back to back (every other repetition "
                  "in reverse order) on fresh DIDs; serial = one `rucio download "
                  "--ndownloader 1` of all files; cp = one `cp` of all files; Stager: a "
                  "process of its own (bench/staging/stage_once.py) that authenticates, "
                  "resolves, requests all files, then one flush (one job's inputs); the "
                  "Stager and rucio download are timed from process start to exit",
    }


def _action(variant: str, job: Rep, blobs: list[files.Blob], cli_env: dict[str, str],
            log: Path, transfers: int) -> Callable[[], object]:
    if variant == "cp":
        return partial(run, ["cp", *(str(b.path) for b in blobs), str(job.dest)])
    if variant == "curl":
        # What the RSE's https endpoint delivers to a plain client at the Stager's concurrency.
        urls = files.pfns(job.rucio, job.rse, job.names, "https")
        outputs = [a for n in job.names for a in ("-o", str(job.dest / n), urls[n])]
        return partial(run, ["curl", "-sS", "--fail", "--cacert", cli_env["CA_BUNDLE"],
                             "--parallel", "--parallel-max", str(transfers), *outputs], log=log)
    assert variant == "rucio-serial", variant
    return partial(run, [str(BIN / "rucio"), "download", "--ndownloader", "1", "--no-subdir",
                         "--rses", job.rse, "--dir", str(job.dest),
                         *(str(d) for d in job.dids)], env=cli_env, log=log)


def refigure(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures again from a result's recorded repetitions (after a change to how they are
    derived, without measuring again)."""
    policies = [p for p in data["seconds"] if p not in ("cp", "rucio-serial", "curl")]
    return _figures(data["seconds"], data["files"], data["file_mib"], policies,
                    data["site_transfer_steps_each"], data.get("remote_rse", REMOTE))


def _goal(target: Target) -> dict[str, object]:
    return target.as_dict()


def _median_steps(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in (runs[0].get("steps_s", {}) if runs else {})]
    return {k: round(median([r["steps_s"][k] for r in runs if k in r.get("steps_s", {})]), 2)
            for k in keys}


def _figures(times: dict[str, list[float]], n: int, mib: int, policies: list[str],
             steps: dict[str, list[dict[str, Any]]], remote: str) -> list[dict[str, Any]]:
    total = n * mib
    what = f"{n} x {mib} MiB from {remote}"
    serial, cp = times["rucio-serial"], times["cp"]
    out = []
    for p in policies:
        t = times[p]
        aims = p != "rule"
        out.append(figure(
            f"parallel stage-in, {what}, policy {p}: speed-up over serial rucio download",
            median(t), "s", baseline=median(serial), baseline_name="serial rucio download",
            ratio=paired_ratio(serial, t), ratio_means="serial / policy",
            goal=_goal(REMOTE_VS_SERIAL) if aims else None, values=t, baseline_values=serial,
            ratios=paired_ratios(serial, t),
            note=f"{total / median(t):.0f} MiB/s; both timed from process start (auth and "
                 f"resolution included)"))
        out.append(figure(
            f"parallel stage-in, {what}, policy {p}: throughput relative to cp",
            median(t), "s", baseline=median(cp), baseline_name="cp of the same files",
            ratio=paired_ratio(cp, t), ratio_means="cp / policy (throughput ratio)",
            goal=_goal(REMOTE_VS_CP) if aims else None, values=t, baseline_values=cp,
            ratios=paired_ratios(cp, t),
            note=f"cp {total / median(cp):.0f} MiB/s"))
    curl = times["curl"]
    for p in (p for p in policies if p != "rule"):
        out.append(figure(
            f"parallel stage-in, {what}, policy {p}: time relative to curl (same endpoint, "
            f"same concurrency)", median(times[p]), "s", baseline=median(curl),
            baseline_name="curl, parallel", ratio=paired_ratio(times[p], curl),
            ratio_means="policy / curl", values=times[p], baseline_values=curl,
            ratios=paired_ratios(times[p], curl),
            note=f"curl {total / median(curl):.0f} MiB/s (given the PFNs: no auth, no "
                 f"resolution)"))
    out.append(figure(
        f"curl of the same files (same endpoint, same concurrency, given the PFNs): speed-up "
        f"over serial rucio download, {what}", median(curl), "s", baseline=median(serial),
        baseline_name="serial rucio download", ratio=paired_ratio(serial, curl),
        ratio_means="serial / curl", values=curl, baseline_values=serial,
        ratios=paired_ratios(serial, curl), note="what the storage endpoint gives any client"))
    waits = {p: [_waiting(r) for r in steps.get(p, []) if "steps_s" in r]
             for p in ("rule", "fts")}
    if waits["rule"] and len(waits["rule"]) == len(waits["fts"]):
        # Paired: the rule and fts runs of the same repetition.
        added = [r - f for r, f in zip(waits["rule"], waits["fts"], strict=True)]
        out.append(figure(
            f"policy rule: latency added outside the copy (Rucio daemons, polling), {what}",
            median(added), "s", baseline=median(waits["fts"]),
            baseline_name="policy fts: waits outside the copy", values=added,
            baseline_values=waits["fts"],
            note=f"rule waits {median(waits['rule']):.1f} s: submission, Rucio marking the "
                 f"rules OK, provider poll ({site_transfer.RULE_POLL:g} s)"))
    return out


def _waiting(run: dict[str, Any]) -> float:
    """The seconds of a site transfer not spent copying: before FTS has the job, between FTS
    finishing and the provider seeing the files at the site."""
    return sum(max(0.0, v) for k, v in run["steps_s"].items()
               if "copying" not in k and "made local" not in k and "queued" not in k)
