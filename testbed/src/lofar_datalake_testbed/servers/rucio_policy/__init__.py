"""The testbed DataLake's Rucio permission policy (a Rucio policy package).

A production DataLake gives a user account its scope and quotas on named RSEs, never `admin`.
Rucio's generic policy, though, lets a non-admin register replicas only on RSEs whose names end in
SCRATCHDISK/USERDISK/LOCALGROUPDISK and delete no rule at all, not even its own; a DataLake
operator closes that gap with a policy package of their own. This one changes three
answers of the generic policy and keeps every other (see `permission.py`). The Rucio server and
daemons load it through `[policy] package` in the server configuration (rucio_config.py).
"""

# Rucio refuses to load a policy package written for other (major) versions.
SUPPORTED_VERSION = [">=41", "<42"]
