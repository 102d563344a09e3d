"""Put on PYTHONPATH of the Snakemake processes of a venv without this project (the Rucio plugin's):
counts every Rucio HTTP request with the project's own request counter, loaded from its file, so
that both providers are counted the same way."""

import importlib.util
import os

_COUNTER = os.environ.get("BENCH_REQUEST_COUNTER_MODULE")

if _COUNTER and os.environ.get("LOFAR_DATALAKE_COUNT_REQUESTS"):
    _spec = importlib.util.spec_from_file_location("_bench_request_counter", _COUNTER)
    if _spec is not None and _spec.loader is not None:
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
        # Imports rucio now; the Rucio plugin imports it at load time anyway.
        _module.install_if_requested()
