"""Product equivalence of two workflow runs, and the report of `lofar-datalake compare`."""
