"""
Benchmark: geometry functions on 1e6 positions.

Run by hand: ``python benchmarks/bench_geometry.py``.  Prints the time per
call for m31clusters and for the obvious astropy alternative
(``SkyCoord.separation``) measured in the same run.
"""

import time

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from m31clusters.geometry import (
    M31_CENTER,
    deprojected_radius,
    pandas_field,
    projected_radius,
)


def _best(func, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def main(n=1_000_000, seed=0):
    rng = np.random.default_rng(seed)
    c = M31_CENTER.directional_offset_by(
        rng.uniform(0, 360, n) * u.deg, np.sqrt(rng.uniform(0, 16, n)) * u.deg
    )
    c = SkyCoord(c.ra, c.dec)
    t_proj = _best(lambda: projected_radius(c))
    t_astropy = _best(lambda: 785 * u.kpc * np.tan(c.separation(M31_CENTER)))
    t_deproj = _best(lambda: deprojected_radius(c))
    t_field = _best(lambda: pandas_field(c))
    print(f"n = {n:,} positions within 4 deg of M31")
    print(f"projected_radius      {t_proj:8.3f} s  ({n / t_proj:,.0f} /s)")
    print(f"astropy separation    {t_astropy:8.3f} s  (ratio {t_astropy / t_proj:.1f}x)")
    print(f"deprojected_radius    {t_deproj:8.3f} s  ({n / t_deproj:,.0f} /s)")
    print(f"pandas_field          {t_field:8.3f} s  ({n / t_field:,.0f} /s)")


if __name__ == "__main__":
    main()
