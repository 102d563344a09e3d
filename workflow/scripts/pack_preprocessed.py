"""Rule pack_preprocessed: an averaged subband as a deterministic tar."""

from pathlib import Path

from lofar_datalake.pipeline.jobs import logged
from lofar_datalake.pipeline.pack import pack_ms

sm = snakemake  # noqa: F821 (injected by Snakemake)
with logged(sm.log[0]):
    archive = pack_ms(Path(sm.input[0]), Path(sm.output[0]))
    print(f"packed {sm.input[0]} -> {archive} ({archive.stat().st_size} bytes)")
