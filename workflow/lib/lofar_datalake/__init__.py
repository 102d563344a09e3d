"""LOFAR imaging on Rucio/FTS DataLake data: package code behind the Snakemake workflow."""

__version__ = "0.1.0"
