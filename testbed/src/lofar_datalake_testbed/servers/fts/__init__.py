"""A loopback stand-in for an FTS3 server: speaks the FTS3 REST API and really copies the bytes.

No real FTS can be installed on the testbed machine, yet Rucio's conveyor and the `fts3` client
must run unchanged, so this service implements the part of the API they use (jobs, files,
cancel, priority, whoami, delegation) over plain http on 127.0.0.1, with jobs kept in SQLite.
"""
