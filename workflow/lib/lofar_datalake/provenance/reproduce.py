"""`lofar-datalake reproduce <manifest>`: run the pipeline again, at another site, from a
provenance manifest alone, and compare the new products with the original ones (fetched from
the DataLake by the DIDs the manifest lists) under the same equivalence rules as `compare`.

The manifest may be a local file or the DID of one stored with the products
(`lofar:products/<run>/provenance.json`). Either way it is untrusted input: it is checked
whole (`untrusted`) before anything it describes is written or run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from datalake_core.checksums import sha256_of_file

from ..compare.at_site import config_of, make_readable, site_of
from ..compare.command import DEFAULT_RULES, ROOT, Comparison, judge
from ..compare.make_mirror import make_local_copy, provider_settings
from ..compare.runs import Run, run_snakemake
from ..compare.verdict import Verdict
from .untrusted import (
    UNREAD_DATA_DIR,
    ManifestError,
    check_config,
    check_path_keys,
    check_structure,
    checked_embedded,
    confined,
    did_path,
)

__all__ = ["ManifestError", "load_manifest", "main", "reproduction_config", "restore_embedded"]

# A manifest embeds small files (the observation sheet, the sky model, the truth); one far
# larger than any the pipeline writes is refused before it is read into memory.
MAX_MANIFEST_BYTES = 64 * 2**20


def load_manifest(source: str, out: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest from a file or a DID, its structure checked (see `untrusted`)."""
    path = Path(source)
    if not path.is_file():
        if ":" not in source:
            raise ManifestError(f"{source}: neither a file nor a DID (scope:name)")
        path = did_path(out / "manifest-copy", source, "manifest DID")
        make_local_copy([source], out / "manifest-copy", settings)
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: {size} bytes, more than a manifest may hold "
                            f"({MAX_MANIFEST_BYTES // 2**20} MiB); not read")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not JSON ({exc})") from None
    try:
        return check_structure(data)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None


def restore_embedded(manifest: Mapping[str, Any], target: Path) -> dict[str, str]:
    """Write the embedded files back, all checked first; config key -> new path."""
    restored = checked_embedded(manifest, target)
    restored.write()
    return restored.paths


def reproduction_config(manifest: Mapping[str, Any], out: Path, stamp: str,
                        inputs: Path | None = None) -> Path:
    """The config of the reproduction, written with the embedded files it names once the
    whole manifest has passed its checks (nothing is written for a manifest that fails)."""
    config = json.loads(json.dumps(manifest["config"]))
    check_config(config)
    if config.get("input_mode") != "datalake":
        raise ManifestError("the manifest is of a run on local files: only runs on DataLake "
                            "inputs can be reproduced elsewhere from their manifest")
    restored = checked_embedded(manifest, inputs or out / "inputs")
    for key, path in restored.paths.items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = path
    check_path_keys(config, restored.paths)
    config["local"]["data_dir"] = UNREAD_DATA_DIR
    originals(manifest, out)
    # Rucio files are immutable: the reproduction's products get their own names.
    config["datalake"]["products"] = f"{config['datalake']['products']}/reproduced-{stamp}"
    restored.write()
    written = out / "config.yaml"
    written.write_text(yaml.safe_dump(config, sort_keys=False))
    return written


def originals(manifest: Mapping[str, Any], out: Path) -> list[tuple[str, Path, Path, str]]:
    """The products stored in the DataLake: DID, where its copy is downloaded, where it goes
    in the original tree, its sha256 (all places checked to stay below `out`)."""
    found = []
    for i, item in enumerate(manifest.get("outputs", [])):
        if item.get("did"):
            copy = did_path(out / "original-copy", item["did"], f"outputs[{i}].did")
            dest = confined(out / "original", item["path"], f"outputs[{i}].path")
            found.append((item["did"], copy, dest, item["sha256"]))
    return found


def fetch_originals(manifest: Mapping[str, Any], out: Path, settings: Mapping[str, Any]) -> Path:
    """The original products, from the DataLake, checked against the manifest's sha256."""
    outputs = originals(manifest, out)
    if not outputs:
        raise ManifestError("the manifest lists no products stored in the DataLake")
    make_local_copy([did for did, *_ in outputs], out / "original-copy", settings)
    for did, source, dest, sha256 in outputs:
        if sha256_of_file(source) != sha256:
            raise ManifestError(f"{did}: the DataLake's copy differs from the manifest")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    return out / "original"


def main(args: argparse.Namespace) -> int:
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    site = site_of(args.profile)
    out = (args.out or (site.default_out("reproduce") if site else
                        Path(f"reproduce-{stamp}"))).resolve()
    if site is not None:
        site.check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = list(args.snakemake_args)
    settings = provider_settings(args.profile, extra)
    if site is not None:
        settings = {**settings, **site.plugin_settings()}
    manifest = load_manifest(args.manifest, out, settings)
    original_run = manifest.get("run", {})
    print(f"==> reproducing the run of {original_run.get('ended')} on {original_run.get('host')}"
          f" ({len(manifest.get('inputs', []))} inputs, {len(manifest.get('outputs', []))} "
          "products)", flush=True)
    # At a site, the restored sheet, sky model and truth go where its jobs can read them.
    inputs = site.readable_dir(out, "inputs") if site else out / "inputs"
    config = reproduction_config(manifest, out, stamp, inputs)
    if site is not None:
        make_readable(inputs)
    original = Run("original", fetch_originals(manifest, out, settings), exit_code=0)
    job = Comparison(out=out, snakemake_args=["-s", str(ROOT / "Snakefile"),
                                              "--configfile", str(config), *extra],
                     profile=args.profile, rules=args.rules, products="results",
                     description={"manifest": args.manifest},
                     # Only the products the original run stored can be compared.
                     only={o["path"].removeprefix("results/") for o in manifest["outputs"]
                           if o.get("did")})
    profile_args = ["--profile", str(site.profile if site else args.profile)] \
        if args.profile else []
    rerun = run_snakemake(Run("reproduction", out / "run"),
                          [*job.snakemake_args, *profile_args],
                          env=site.bind_env([inputs]) if site else None, site=site)
    verdict = Verdict(equivalent=False, notes=_input_notes(manifest, rerun.workdir))
    if site is not None:
        verdict.site = {"reproduction": site.describe(rerun.workdir, config_of(
            [*job.snakemake_args]))}
    return judge(job, original, rerun, verdict, rucio=None)


def _input_notes(manifest: Mapping[str, Any], workdir: Path) -> list[str]:
    from datalake_core.journal import InputEvent, read_journal

    used = {e.did: e for e in read_journal(workdir) if isinstance(e, InputEvent)}
    notes = []
    for item in manifest.get("inputs", []):
        now = used.get(item["did"])
        if now is not None and now.adler32 != item.get("adler32"):
            notes.append(f"input {item['did']}: adler32 {now.adler32} now, "
                         f"{item.get('adler32')} in the manifest")
    return notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="provenance.json of a run, or its DID (scope:name)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the run, the verdict and the report "
                             "(default: reproduce-<time>)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="Snakemake profile of the site reproducing the run")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES,
                        help="equivalence rules and tolerances (default: config/compare.yaml)")
