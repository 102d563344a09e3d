"""The testbed's servers (Rucio bootstrap, PostgreSQL, WebDAV, the FTS service, a Rucio poller).

They run from the testbed's own venv (server_env.py), never from the user's environment: only
the standard library, the server packages and `..layout`/`..rucio_config` are imported here.
"""
