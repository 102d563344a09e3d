"""A simulated LOFAR HBA observation with known truth (sky, gains, RFI).

Entry point: `observation.simulate(SimulationParams(...), out_dir)`.
"""
