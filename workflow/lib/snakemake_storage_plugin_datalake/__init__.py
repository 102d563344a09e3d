"""Snakemake storage plugin `datalake`: Rucio DIDs as workflow inputs and outputs."""
