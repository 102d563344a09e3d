"""A loopback stand-in for an FTS3 server: speaks the FTS3 REST API and moves the bytes with
gfal2, as FTS does.

No real FTS can be installed on the testbed machine, yet Rucio's conveyor and the `fts3` client
must run unchanged, so this service implements the part of the API they use (jobs, files,
cancel, priority, whoami, delegation) over https on 127.0.0.1, with jobs kept in SQLite, and
hands each copy to Debian's gfal2 in a helper process (mover.py, gfal_copy.py), the part
`fts_url_copy` plays in FTS.
"""
