"""Making the local copy a comparison runs against: the workflow's input DIDs downloaded from
the DataLake with the provider's own logic (best replica, adler32 verified, real copies, never
links into storage), laid out as `<dir>/<scope>/<name>` with the catalogue's checksums in
index.json — the layout `--storage-datalake-local-copy` reads."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from datalake_core.mirror import load_index, save_index
from datalake_core.resolver import Resolver
from datalake_core.rucio_adapter import DataLakeError, Did, RucioAdapter
from datalake_core.settings import (
    CLI_PREFIX,
    SETTINGS,
    LinkMode,
    ProviderConfig,
    StagePolicy,
)
from datalake_core.staging import Stager

PREFIX = CLI_PREFIX
FLAGS = tuple(s.name for s in SETTINGS if s.kind is bool)

log = logging.getLogger("lofar_datalake.compare")


def provider_settings(profile: Path | None, args: Sequence[str]) -> dict[str, Any]:
    """The `datalake` plugin settings a Snakemake run with this profile and these extra
    arguments would get (later ones win, as in Snakemake), secrets from the environment."""
    raw: dict[str, Any] = {}
    if profile is not None and (profile / "config.yaml").is_file():
        for key, value in (yaml.safe_load((profile / "config.yaml").read_text()) or {}).items():
            if str(key).startswith(PREFIX[2:]):
                # As Snakemake reads profile values: environment variables expanded.
                value = os.path.expandvars(value) if isinstance(value, str) else value
                raw[str(key)[len(PREFIX) - 2 :].replace("-", "_")] = value
    items = list(args)
    for i, item in enumerate(items):
        if not item.startswith(PREFIX):
            continue
        name = item[len(PREFIX) :].replace("-", "_")
        if name in FLAGS:
            raw[name] = True
        elif i + 1 < len(items):
            raw[name] = items[i + 1]
    for setting in SETTINGS:
        if setting.env_name is None or setting.internal:
            continue
        value = os.environ.get(setting.env_name)
        # Secrets come only from the environment; the others as in Snakemake, where the
        # variable stands in for an option not given.
        if value and (setting.secret or setting.name not in raw):
            raw[setting.name] = value
    return raw


def connect(cfg: ProviderConfig) -> RucioAdapter:
    return RucioAdapter.connect(
        cfg.rucio_config, cfg.account, cfg.auth_type, cfg.username, cfg.password
    )


def lazy_rucio(cfg: ProviderConfig) -> Callable[[], RucioAdapter]:
    """A Rucio client made on first use and kept (a comparison may need none)."""
    return functools.cache(lambda: connect(cfg))


def copy_path(root: Path, did: Did) -> Path:
    """`<root>/<scope>/<name>`, refused unless it stays below `root`: the DIDs may come from
    files fetched from the DataLake (a provenance manifest), where anyone with write access to
    the scope could have put them."""
    relative = Path(did.scope, did.name)
    path = root / relative
    if (not did.scope or not did.name or relative.is_absolute() or ".." in relative.parts
            or "\0" in str(relative) or not path.resolve().is_relative_to(root.resolve())):
        raise DataLakeError(f"{did}: its local copy would not be below {root}")
    return path


def make_local_copy(dids: Sequence[str], root: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Download `dids` into `root`; files already there with the catalogue's checksum stay."""
    cfg = replace(
        ProviderConfig.parse(dict(settings)),
        stage_policy=StagePolicy.DOWNLOAD,
        link_mode=LinkMode.COPY,
        local_copy=None,
    )
    parsed = [Did(*d.split(":", 1)) for d in dids]
    for did in parsed:
        copy_path(root, did)
    rucio = lazy_rucio(cfg)
    resolver = Resolver(rucio)
    stager = Stager(cfg, resolver, rucio, log, stage_ahead=None)
    for did in parsed:
        resolver.register(did)
    root.mkdir(parents=True, exist_ok=True)
    index = load_index(root)
    started, moved = time.time(), 0
    print(f"==> local copy of {len(parsed)} input files in {root}", flush=True)
    try:
        futures = [(did, stager.request(did, copy_path(root, did))) for did in parsed]
        stager.flush()
        for did, future in futures:
            staged = future.result()
            info = resolver.get(did)
            if info is None:
                raise DataLakeError(f"{did}: not in the DataLake")
            index[str(did)] = {"bytes": info.bytes, "adler32": info.adler32, "md5": info.md5}
            if staged.moved:
                moved += info.bytes
    finally:
        stager.close()
        save_index(root, index)
    wall = time.time() - started
    print(f"    {len(parsed)} files, {moved / 2**20:.1f} MiB copied in {wall:.1f} s", flush=True)
    return {"files": len(parsed), "bytes": moved, "wall_s": wall}
