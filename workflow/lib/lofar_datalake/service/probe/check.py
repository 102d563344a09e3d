"""The probe workflow's one job (probe/Snakefile): the probe file's content checked against the
sha256 the service wrote it with, then the product written; run by Snakemake's `script:`."""

import hashlib
from typing import Any

sm: Any = globals()["snakemake"]  # injected by Snakemake

data = open(sm.input[0], "rb").read()
found = hashlib.sha256(data).hexdigest()
if found != sm.params.sha256:
    raise SystemExit(f"the probe file read {len(data)} bytes with sha256 {found}, not the "
                     f"{sm.params.sha256} the service wrote")
line = f"{sm.params.site} read {len(data)} bytes, sha256 {found}\n"
for path in (sm.output[0], sm.log[0]):
    with open(path, "w") as out:
        out.write(line)
