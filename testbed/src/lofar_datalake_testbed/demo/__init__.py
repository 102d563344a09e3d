"""The demo: `lofar-datalake demo` (pipeline or transfers only) and `compare --demo`, on the
local DataLake. The only code besides the tests that starts the testbed."""
