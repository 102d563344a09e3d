"""Helpers of `bench/bench_resolution.py`: seeding, the Rucio plugin's venv, timed dry runs,
profiling."""
