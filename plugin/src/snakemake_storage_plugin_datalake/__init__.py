"""Snakemake storage plugin `datalake`: Rucio DIDs as workflow inputs and outputs.

Queries are `datalake://<scope>/<name>`. Rucio itself is imported only when the DataLake is
first used, so loading the plugin costs Snakemake's start-up next to nothing.
"""

from .provider import StorageObject, StorageProvider
from .settings import StorageProviderSettings

__all__ = ["StorageObject", "StorageProvider", "StorageProviderSettings"]
