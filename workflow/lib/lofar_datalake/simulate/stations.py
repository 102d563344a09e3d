"""LOFAR HBA station phase centres.

Positions are the ETRS89 phase centres published with the `lofarantpos` package (LOFAR antenna
position survey). ETRS89 and ITRF differ by well under a metre at LOFAR, far below what matters
for a simulated observation, so they are written to the ANTENNA table as ITRF.
"""

from __future__ import annotations

import numpy as np

# name: (x, y, z) in metres
HBA_STATIONS: dict[str, tuple[float, float, float]] = {
    "CS001HBA0": (3826896.631, 460979.131, 5064657.943),
    "CS002HBA0": (3826601.357, 460953.078, 5064880.876),
    "CS003HBA0": (3826471.744, 460999.814, 5064973.941),
    "CS004HBA0": (3826586.022, 460865.520, 5064900.301),
    "CS005HBA0": (3826701.556, 460988.926, 5064802.425),
    "CS006HBA0": (3826654.179, 461136.116, 5064824.683),
    "CS007HBA0": (3826479.111, 461083.396, 5064960.857),
    "CS011HBA0": (3826637.817, 461227.021, 5064828.874),
    "CS013HBA0": (3826319.350, 460855.801, 5065101.590),
    "CS017HBA0": (3826405.491, 461507.136, 5064977.823),
    "CS021HBA0": (3826463.898, 460532.770, 5065022.354),
    "CS024HBA0": (3827218.589, 461403.574, 5064378.530),
    "CS026HBA0": (3826418.623, 461805.513, 5064940.939),
    "CS028HBA0": (3825573.530, 461324.283, 5065618.779),
    "CS030HBA0": (3826041.973, 460323.050, 5065357.354),
    "CS031HBA0": (3826383.433, 460279.019, 5065105.590),
    "CS032HBA0": (3826864.658, 460451.600, 5064729.746),
    "CS101HBA0": (3825900.321, 461698.615, 5065338.957),
    "CS103HBA0": (3826331.986, 462758.750, 5064919.360),
    "CS201HBA0": (3826679.677, 461854.919, 5064741.120),
    "CS301HBA0": (3827442.908, 461050.523, 5064242.143),
    "CS302HBA0": (3827973.622, 459728.300, 5063975.040),
    "CS401HBA0": (3826796.148, 460158.570, 5064808.669),
    "CS501HBA0": (3825569.216, 460647.296, 5065682.768),
    "RS106HBA": (3829205.994, 469142.209, 5062180.742),
    "RS205HBA": (3831480.066, 463487.205, 5060989.643),
    "RS208HBA": (3847753.705, 466962.484, 5048396.983),
    "RS210HBA": (3877827.956, 467536.277, 5025445.321),
    "RS305HBA": (3828733.107, 454692.080, 5063850.055),
    "RS306HBA": (3829771.644, 452761.378, 5063242.921),
    "RS307HBA": (3837964.914, 449626.936, 5057357.324),
    "RS310HBA": (3845376.681, 413616.239, 5054796.080),
    "RS406HBA": (3818425.334, 452019.946, 5071817.384),
    "RS407HBA": (3811649.851, 453459.572, 5076728.693),
    "RS409HBA": (3824813.014, 426130.006, 5069251.494),
    "RS503HBA": (3824138.962, 459476.649, 5066858.318),
    "RS508HBA": (3797136.881, 463114.126, 5086651.028),
    "RS509HBA": (3783537.922, 450129.744, 5097865.889),
}

# Core stations spread over the ~2 km core plus the inner remote ring: every baseline length from
# ~0.3 to ~30 km is sampled, which a superterp-only core would not give.
DEFAULT_STATIONS: tuple[str, ...] = (
    "CS001HBA0",
    "CS002HBA0",
    "CS013HBA0",
    "CS024HBA0",
    "CS028HBA0",
    "CS103HBA0",
    "CS302HBA0",
    "RS106HBA",
    "RS205HBA",
    "RS305HBA",
    "RS307HBA",
    "RS503HBA",
)


def station_positions(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(n, 3) ITRF positions of the named stations, in the given order."""
    unknown = [n for n in names if n not in HBA_STATIONS]
    if unknown:
        raise ValueError(f"unknown LOFAR HBA station(s): {', '.join(unknown)}")
    return np.array([HBA_STATIONS[n] for n in names], dtype=float)
