"""Stage-in of a file already at the site: one big replica on the site RSE, read through the
mount map, made available by the Stager in each link mode, against `cp` of the same file."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from record import SITE_COPY, paired_ratios, spread

from datalake_core.checksums import adler32_of_file
from datalake_core.rucio_adapter import Did, RucioAdapter
from staging import files
from staging.common import MiB, figure, goal, median, paired_ratio, run, say, timed
from staging.common import drop_caches as drop
from staging.provider import Staging, settings

SITE = "SITE_A_DISK"
LINK_GOAL = 0.1  # x cp: "about nothing" (the project's own aim for links, not the issue's)


def _variant(name: str, replica: Path, did: Did, dest: Path, make: Callable[[str], Staging],
             hows: list[str]) -> Callable[[], object]:
    if name == "cp":
        return lambda: run(["cp", str(replica), str(dest / "copy")])
    if name == "adler32":
        return lambda: adler32_of_file(replica)
    staging = make(name.removeprefix("stager-"))
    return lambda: hows.extend(staging.stage([did], dest))


def measure(tmp: Path, env: dict[str, str], size_mib: int, repeat: int, modes: list[str],
            cold: bool, profile: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rucio = RucioAdapter()
    name = f"bench/staging/{time.time_ns()}/site-{size_mib}MiB.dat"
    replica = files.rse_paths(rucio, SITE, [name])[name]
    blob = files.write_random(replica, size_mib * MiB)  # in place: it is at the site already
    rucio.add_replicas(SITE, [{"scope": files.SCOPE, "name": name, "bytes": blob.size,
                               "adler32": blob.adler32}])
    did = Did(files.SCOPE, name)
    mount = files.rse_dir(rucio, SITE)
    say(f"site replica {did} ({size_mib} MiB) at {replica}")

    made: list[Staging] = []

    def make(mode: str) -> Staging:
        made.append(Staging(settings(Path(env["RUCIO_CONFIG"]), Path(env["CA_BUNDLE"]), SITE,
                                     mount, "download", mode, 4), tmp / "journal"))
        made[-1].resolve([did])  # done while Snakemake builds the DAG, not part of stage-in
        return made[-1]

    variants = ["cp", *(f"stager-{m}" for m in modes), "adler32"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    hows: list[str] = []
    dropped = True
    try:
        for rep in range(repeat):
            for v in variants if rep % 2 == 0 else variants[::-1]:
                dest = tmp / f"site-r{rep}-{v}"
                dest.mkdir(parents=True)
                action = _variant(v, replica, did, dest, make, hows)
                dropped = drop(cold) and dropped
                times[v].append(timed(action))
                shutil.rmtree(dest)
                say(f"  rep {rep + 1}/{repeat} {v:<16} {times[v][-1]:7.3f} s")
        profiles = {}
        for v in variants[1:-1] if profile else []:
            dest = tmp / f"site-profile-{v}"
            dest.mkdir(parents=True)
            staging = make(v.removeprefix("stager-"))
            drop(cold)
            staging.profile_workers()
            staging.stage([did], dest)
            profiles[v] = staging.profile_top()
            shutil.rmtree(dest)
    finally:
        replica.unlink(missing_ok=True)
        for staging in made:
            staging.close()

    cp = times["cp"]
    size = f"{size_mib / 1024:g} GiB" if size_mib >= 1024 else f"{size_mib} MiB"
    figures = []
    for mode in modes:
        t = times[f"stager-{mode}"]
        link, _, check = mode.partition("+")
        verified = check in ("", "adler32")  # the target is for a verified stage-in
        figures.append(figure(
            f"stage-in of a {size} file at the site, link mode {link}"
            + (" (adler32 verified)" if link == "copy"
               else f" (replica checked first: {check or 'adler32'})"),
            median(t), "s", baseline=median(cp), baseline_name="cp of the same file",
            ratio=paired_ratio(t, cp), ratio_means="stager / cp", values=t, baseline_values=cp,
            ratios=paired_ratios(t, cp),
            goal=SITE_COPY.as_dict() if verified
            else goal("ratio", "<=", LINK_GOAL, f"~0 (<= {LINK_GOAL}x cp; project's aim, "
                      f"no checksum)"),
            note=f"{size_mib / median(t):.0f} MiB/s"))
    figures.append(figure(
        f"  of which adler32 of the {size} replica (what a link mode spends)",
        median(times["adler32"]), "s", baseline=median(cp), baseline_name="cp of the same file",
        ratio=paired_ratio(times["adler32"], cp), ratio_means="adler32 / cp",
        values=times["adler32"], baseline_values=cp, ratios=paired_ratios(times["adler32"], cp)))
    details = {
        "size_mib": size_mib, "repetitions": repeat, "site_rse": SITE, "mount": str(mount),
        "page_cache": "dropped before each timed variant" if cold and dropped
        else "warm for all variants (could not drop it)" if cold else "warm for all variants",
        "seconds": {v: [round(x, 4) for x in t] for v, t in times.items()},
        "seconds_spread": {v: spread(t, 4) for v, t in times.items()},
        "how": sorted({str(h) for h in hows}),
        "profile_tottime": profiles,
        "method": "each repetition runs cp, the Stager in each link mode and a bare adler32 of "
                  "the replica back to back (every other repetition in reverse order); the "
                  "Stager's resolution and authentication are done beforehand, as during DAG "
                  "building, and `cp` pays only its process start: neither side is timed with "
                  "authentication or resolution",
    }
    return figures, details
