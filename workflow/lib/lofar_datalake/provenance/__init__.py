"""Provenance manifests of pipeline runs, and reproducing a run from one."""
