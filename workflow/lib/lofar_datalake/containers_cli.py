"""`lofar-datalake containers`: list, convert and build the pipeline's images."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from . import container_sandbox, containers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="containers_action", required=True)
    ls = sub.add_parser("list", help="images named in a config, with their recipes' tool versions")
    ls.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    df = sub.add_parser("dockerfile", help="the family's recipe as a Dockerfile (Docker/Podman)")
    df.add_argument("family")
    df.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    bd = sub.add_parser(
        "build",
        help="build the family's image: a SIF (*.sif, with Apptainer) or a sandbox directory "
        "(with Apptainer, or without it by debootstrap + chroot as root)",
    )
    bd.add_argument("family")
    bd.add_argument("--output", type=Path, required=True, help="the .sif or directory to write")
    bd.add_argument("--fakeroot", action="store_true", help="pass --fakeroot to apptainer build")
    bd.add_argument(
        "--cache", type=Path, default=None,
        help="where the Debian base of sandbox builds is kept "
        "(default /var/cache/lofar-datalake/debootstrap)",
    )  # fmt: skip
    every = sub.add_parser(
        "build-all",
        help="build every family's sandbox image into DIR under a versioned name and print "
        "the `containers:` block for config.yaml",
    )
    every.add_argument("--dir", type=Path, required=True, help="where the images go")
    every.add_argument("--cache", type=Path, default=None, help="as for build")
    ins = sub.add_parser("inspect", help="labels of a sandbox image: tool versions and digests")
    ins.add_argument("image", type=Path)


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


def _build_all(directory: Path, cache: Path | None) -> int:
    try:
        built = containers.build_all(directory, cache)
    except (RuntimeError, containers.RecipeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("containers:")
    for family, path in built.items():
        print(f'  {family}: "{path}"')
    return 0


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
    elif args.containers_action == "build-all":
        return _build_all(args.dir, args.cache)
    elif args.containers_action == "inspect":
        labels = container_sandbox.read_labels(args.image)
        if not labels:
            print(f"error: {args.image} is not a sandbox image with labels", file=sys.stderr)
            return 1
        print(json.dumps(labels, indent=2))
    else:
        try:
            labels = containers.build(
                args.family, args.output, fakeroot=args.fakeroot, cache=args.cache
            )
        except (RuntimeError, containers.RecipeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if labels:
            print(json.dumps(labels, indent=2))
    return 0
