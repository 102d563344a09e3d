"""A simulated LOFAR HBA observation with known truth (sky, gains,
bandpass, clock offsets, differential TEC, RFI, and optionally the station beam).

Entry point: `observation.simulate(SimulationParams(...), out_dir)`.
"""
