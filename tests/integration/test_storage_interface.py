"""The Snakemake storage plugin interface's own test suite, against the local DataLake."""

from __future__ import annotations

import time

import pytest
from snakemake_interface_storage_plugins.tests import TestStorageBase

from snakemake_storage_plugin_datalake import StorageProvider, StorageProviderSettings

pytestmark = pytest.mark.integration


class TestDataLakeStorage(TestStorageBase):
    __test__ = True
    retrieve_only = False
    store_only = False
    delete = True
    files_only = True

    @pytest.fixture(autouse=True)
    def _datalake(self, testbed, client_env):
        self.bed = testbed

    def get_storage_provider_cls(self) -> type[StorageProvider]:
        return StorageProvider

    def get_storage_provider_settings(self) -> StorageProviderSettings:
        return StorageProviderSettings(
            rucio_config=self.bed.layout.client_config,
            ca_bundle=self.bed.pki.ca_cert,
            site_rse="SITE_B_DISK",
            output_rse="SITE_A_DISK",
            output_rules="1:SITE_C_DAV:3600",
            output_metadata="project=interface-test",
        )

    def get_query(self, tmp_path) -> str:
        # One name per test: Rucio files are immutable, the suite stores "test" each time.
        if not hasattr(self, "_query"):
            self._query = f"datalake://lofar/tests/interface/{time.time_ns()}/test.txt"
        return self._query

    def get_query_not_existing(self, tmp_path) -> str:
        return f"datalake://lofar/tests/interface/{time.time_ns()}/missing.txt"
