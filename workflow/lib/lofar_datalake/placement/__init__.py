"""Where each part of a run should go: the placement planner behind `lofar-datalake plan`.

A run's subbands are preprocessed at several sites, each near its data, and the calibration and
imaging at one; an integer program picks the sites that move the fewest bytes and finish soonest,
by weights the user sets, within each site's cores, disk and readable storage.
"""
