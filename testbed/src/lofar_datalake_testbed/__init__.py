"""The local DataLake: a real Rucio server, daemons, WebDAV storage and an FTS3-REST service on
loopback. Used by `make demo` and the tests; never imported by production code."""
