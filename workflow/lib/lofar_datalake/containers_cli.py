"""`lofar-datalake containers`: list, convert and build the pipeline's images."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from . import containers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="containers_action", required=True)
    ls = sub.add_parser("list", help="images named in a config, with their recipes' tool versions")
    ls.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    df = sub.add_parser("dockerfile", help="the family's recipe as a Dockerfile (Docker/Podman)")
    df.add_argument("family")
    df.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    bd = sub.add_parser("build", help="build the family's SIF with apptainer")
    bd.add_argument("family")
    bd.add_argument("--output", type=Path, required=True, help="the .sif to write")
    bd.add_argument("--fakeroot", action="store_true", help="pass --fakeroot to apptainer build")


def _table(images: list[containers.Image]) -> str:
    rows = [("FAMILY", "IMAGE", "DIGEST", "CVMFS", "RECIPE", "VERSIONS")]
    for im in images:
        rows.append(
            (
                im.family,
                im.reference.partition("@")[0],
                im.digest[:19] + "…" if im.digest else "-",
                "yes" if im.cvmfs else "no",
                Path(im.recipe).name if im.recipe else "-",
                " ".join(f"{k}={v}" for k, v in im.versions.items()) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def run_containers(args: argparse.Namespace) -> int:
    if args.containers_action == "list":
        images = containers.list_images(args.config)
        print(json.dumps([asdict(i) for i in images], indent=2) if args.json else _table(images))
    elif args.containers_action == "dockerfile":
        text = containers.dockerfile(args.family)
        if args.output is None:
            print(text, end="")
        else:
            args.output.write_text(text)
    else:
        containers.build(args.family, args.output, fakeroot=args.fakeroot)
    return 0
