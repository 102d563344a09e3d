"""Stage-in benchmarks of the `datalake` provider's Stager, driven from Python (built from the
plugin's settings as the provider builds it), on the local DataLake:

- `site`:   a file already on the site RSE (posix, through the mount map), made available in
            each link mode, vs `cp` of the same file (goal <= 1.1x cp; ~0 with a link);
- `remote`: N files on a remote RSE (WebDAV SITE_C_DAV, then XRootD SITE_D_XRD, each measured
            apart) staged in parallel under each stage policy, vs a serial
            `rucio download` (goal >= 4x; both timed as processes of their own, from start to
            exit: interpreter, authentication and resolution included for both) and vs `cp`
            of the same files (goal >= 0.5x), with where the time of the `rule` policy goes.

The page cache is dropped before every timed variant (root only; otherwise it says so). Medians
of repetitions; ratios are medians of per-repetition ratios. About 8 minutes with the defaults
(1 GiB; 32 x 64 MiB; 3 repetitions; per remote RSE), mostly the serial `rucio download`; 2
with --quick. Results: bench/results/staging_site.json, staging_remote.json (SITE_C_DAV),
staging_remote_xrootd.json (SITE_D_XRD), with machine, load and commit.

    .venv/bin/lofar-datalake testbed up
    .venv/bin/python bench/bench_staging.py [site|remote|all] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from record import RESULTS, Provenance
from staging import remote, site
from staging.common import client_env, say, write_results

from datalake_core.settings import default
from lofar_datalake_testbed.layout import default_dir


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=("site", "remote", "all"), default="all")
    parser.add_argument("--testbed", type=Path, default=default_dir(),
                        help="directory of a running testbed (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, 3 repetitions: to try the benchmark out")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default: 3)")
    parser.add_argument("--site-mib", type=int, default=1024,
                        help="size of the file at the site in MiB (default: %(default)s)")
    parser.add_argument("--modes", default="symlink,symlink+size,hardlink+size,copy",
                        help="link modes, +size for a size-only check of the site replica "
                             "(default: %(default)s)")
    parser.add_argument("--files", type=int, default=32,
                        help="remote files (default: %(default)s)")
    parser.add_argument("--file-mib", type=int, default=64,
                        help="size of each remote file in MiB (default: %(default)s)")
    parser.add_argument("--remote-rses", default=",".join(remote.RESULT_NAMES),
                        help="remote RSEs to stage from, each measured apart into its own "
                             "result (default: %(default)s)")
    parser.add_argument("--policies", default="download,fts,rule",
                        help="stage policies (default: %(default)s)")
    parser.add_argument("--transfers", type=int, default=default("max_concurrent_transfers"),
                        help="--storage-datalake-max-concurrent-transfers (default: "
                             "%(default)s, the plugin's default)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="do not drop the page cache between variants")
    parser.add_argument("--profile", action="store_true",
                        help="one more run of each link mode and of the download and fts "
                             "policies with the Stager's worker threads under cProfile")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="scratch directory, best on the RSEs' file system (hard links); "
                             "default: the system's temporary directory")
    parser.add_argument("--refigure", action="store_true",
                        help="measure nothing: derive the remote figures again from the "
                             "repetitions recorded in OUT/staging_remote.json")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory of the JSON results (default: %(default)s)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.site_mib, args.files, args.file_mib = 3, 64, 4, 8
    if args.repeat < 3:
        parser.error("--repeat: a median needs at least 3 repetitions")
    return args


def main() -> int:
    args = parse_args()
    if args.refigure:
        for rse in args.remote_rses.split(","):
            path = args.out / f"{remote.RESULT_NAMES[rse]}.json"
            data = json.loads(path.read_text())
            data["figures"] = remote.refigure(data)
            data["figures_derived_again"] = dt.datetime.now(dt.UTC).isoformat(
                timespec="seconds")
            path.write_text(json.dumps(data, indent=1, default=str) + "\n")
            _print(data["figures"])
        return 0
    env = client_env(args.testbed)
    cold = not args.warm_cache
    with tempfile.TemporaryDirectory(prefix="bench-staging-", dir=args.scratch) as name:
        tmp = Path(name)
        if args.part in ("site", "all"):
            say(f"== stage-in at the site: {args.site_mib} MiB, {args.repeat} repetitions")
            provenance = Provenance()
            figures, details = site.measure(tmp / "site", env, args.site_mib, args.repeat,
                                            args.modes.split(","), cold, args.profile)
            _print(figures)
            for mode, lines in details["profile_tottime"].items():
                print(f"profile of {mode} (tottime):\n    " + "\n    ".join(lines))
            write_results(args.out / "staging_site.json", "staging_site", figures, provenance,
                          **details)
        if args.part in ("remote", "all"):
            for rse in args.remote_rses.split(","):
                _remote(args, tmp / f"remote-{rse}", env, rse, cold)
    return 0


def _remote(args: argparse.Namespace, tmp: Path, env: dict[str, str], rse: str,
            cold: bool) -> None:
    say(f"== parallel stage-in from {rse}: {args.files} x {args.file_mib} MiB, "
        f"{args.repeat} repetitions")
    provenance = Provenance()
    figures, details = remote.measure(tmp, env, args.files, args.file_mib, args.repeat,
                                      args.policies.split(","), args.transfers, cold,
                                      args.profile, remote=rse)
    _print(figures)
    for policy, steps in details["site_transfer_steps"].items():
        print(f"policy {policy}: where the site transfer's time goes (median s):")
        for step, seconds in steps.items():
            print(f"    {step:<48} {seconds:6.2f}")
    for policy, lines in details["profile_tottime"].items():
        print(f"profile of the worker threads, policy {policy} (tottime):\n    "
              + "\n    ".join(lines))
    name = remote.RESULT_NAMES[rse]
    write_results(args.out / f"{name}.json", name, figures, provenance, **details)


def _print(figures: list[dict[str, object]]) -> None:
    for f in figures:
        met = {True: "met", False: "NOT met", None: ""}[f["met"]]  # type: ignore[index]
        goal = f["goal"]["text"] if f["goal"] else "-"  # type: ignore[index]
        ratio = f"{f['ratio']}x" if f["ratio"] is not None else "-"
        print(f"{f['figure']}\n    {f['value']} {f['unit']} vs {f['baseline_name']} "
              f"{f['baseline']} {f['unit']}: {ratio} ({f['ratio_means']}); goal {goal} {met}")


if __name__ == "__main__":
    sys.exit(main())
