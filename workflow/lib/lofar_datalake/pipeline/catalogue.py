"""Source finding with PyBDSF, and catalogues in the formats people use (FITS, CSV, sky model)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from astropy.table import Table

# Columns of the CSV catalogue, in PyBDSF's names and units (deg, Jy, Jy/beam).
CSV_COLUMNS = (
    "Source_id", "RA", "E_RA", "DEC", "E_DEC", "Total_flux", "E_Total_flux", "Peak_flux",
    "E_Peak_flux", "Maj", "Min", "PA", "S_Code", "Isl_rms",
)  # fmt: skip


def find_sources(
    image: Path,
    catalogue_fits: Path,
    catalogue_csv: Path,
    skymodel: Path,
    log: Path,
    settings: dict[str, Any],
) -> Table:
    """Run PyBDSF on `image` and write the source list as FITS, CSV and a DP3 sky model."""
    import bdsf  # heavy import, only in the job that needs it

    for out in (catalogue_fits, catalogue_csv, skymodel):
        out.parent.mkdir(parents=True, exist_ok=True)
    # PyBDSF writes its own log next to the image; keep it with the job's log instead.
    with log.open("a") as fh, contextlib.redirect_stdout(fh):
        img = bdsf.process_image(
            str(image),
            thresh_isl=float(settings.get("thresh_isl", 5.0)),
            thresh_pix=float(settings.get("thresh_pix", 7.0)),
            rms_box=settings.get("rms_box"),
            adaptive_rms_box=bool(settings.get("adaptive_rms_box", False)),
            quiet=True,
        )
        img.write_catalog(
            outfile=str(catalogue_fits), format="fits", catalog_type="srl", clobber=True
        )
        # One patch: a calibration against this model solves one direction, the whole field.
        img.write_catalog(
            outfile=str(skymodel), format="bbs", catalog_type="gaul", bbs_patches="single",
            clobber=True,
        )  # fmt: skip
    if not catalogue_fits.exists():  # PyBDSF writes nothing when it finds nothing
        Table(names=CSV_COLUMNS[:-2], dtype=[float] * 12).write(
            catalogue_fits, format="fits", overwrite=True
        )
        skymodel.write_text("FORMAT = Name, Type, Ra, Dec, I\n")
    bdsf_log = Path(f"{image}.pybdsf.log")
    if bdsf_log.exists():
        with log.open("a") as fh:
            fh.write(bdsf_log.read_text())
        with contextlib.suppress(OSError):
            os.remove(bdsf_log)
    table = read_catalogue(catalogue_fits)
    table[[c for c in CSV_COLUMNS if c in table.colnames]].write(
        catalogue_csv, format="csv", overwrite=True
    )
    return table


def read_catalogue(path: Path) -> Table:
    """A PyBDSF source list (FITS or our CSV); empty but well-formed if nothing was found."""
    if path.suffix == ".csv":
        return Table.read(path, format="csv")
    return Table.read(path)
