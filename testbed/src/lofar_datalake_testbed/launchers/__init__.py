"""`apptainer` for machines without Apptainer: runs sandbox images with Podman (the testbed's
Slurm site and the site tests put this directory first on PATH)."""
