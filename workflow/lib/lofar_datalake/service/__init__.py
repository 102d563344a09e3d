"""`lofar-datalake serve`: workflow testing as a service. A researcher submits a Snakemake
workflow, its config, the DIDs it reads and a site; the service queues it, runs `compare` at
that site with the researcher's own DataLake identity, and shows the verdict in a browser and
as JSON."""
