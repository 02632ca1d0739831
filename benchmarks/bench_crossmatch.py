"""
Benchmark: cross-matching and de-duplication at survey scale.

Run by hand: ``python benchmarks/bench_crossmatch.py [--small]``.  Prints

* `m31clusters.crossmatch.match` of 1e7 candidates against 1e4 references;
* `m31clusters.crossmatch.deduplicate` of 1e6 rows (about 30% of them
  repeated detections in overlapping fields, some chained);
* the same match against astropy's ``SkyCoord.match_to_catalog_sky`` on
  1e6 candidates, and the de-duplication against astropy's
  ``search_around_sky`` plus connected components, in the same run (time
  ratios and agreement).

Everything runs on one core (cKDTree with ``workers=1``).  Peak memory is
the process's maximum resident set size (``resource.getrusage``), printed
after each step.
"""

import argparse
import resource
import sys
import time

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters.crossmatch import deduplicate, match
from m31clusters.geometry import M31_CENTER


def _peak_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024**2 if sys.platform == "darwin" else rss / 1024


def _sky(rng, n, radius_deg=3.0):
    pa = rng.uniform(0, 2 * np.pi, n)
    r = np.deg2rad(radius_deg) * np.sqrt(rng.uniform(0, 1, n))
    # small-angle offsets about M31 are enough for a benchmark
    dec = M31_CENTER.dec.rad + r * np.cos(pa)
    ra = M31_CENTER.ra.rad + r * np.sin(pa) / np.cos(dec)
    return np.rad2deg(ra), np.rad2deg(dec)


def bench_match(n_cat, n_ref, rng, compare=True):
    ref_ra, ref_dec = _sky(rng, n_ref)
    cat_ra, cat_dec = _sky(rng, n_cat)
    # a tenth of the candidates lie within 1 arcsec of a reference object
    k = rng.integers(0, n_ref, n_cat // 10)
    cat_ra[: k.size] = ref_ra[k] + rng.normal(0, 0.3 / 3600, k.size)
    cat_dec[: k.size] = ref_dec[k] + rng.normal(0, 0.3 / 3600, k.size)
    ref = Table({"coord": SkyCoord(ref_ra, ref_dec, unit="deg"),
                 "name": np.char.add("R", np.arange(n_ref).astype(str))})
    cat = Table({"coord": SkyCoord(cat_ra, cat_dec, unit="deg")})
    t0 = time.perf_counter()
    out = match(cat, ref, radius=1 * u.arcsec, into="REF")
    t_match = time.perf_counter() - t0
    n_hit = int(np.count_nonzero(out["REF"] != ""))
    print(f"match {n_cat:.0e} x {n_ref:.0e}: {t_match:7.2f} s  ({n_cat / t_match:,.0f} rows/s), "
          f"{n_hit:,} matched, peak RSS {_peak_mb():,.0f} MB")
    if compare:
        t0 = time.perf_counter()
        idx, sep, _ = cat["coord"].match_to_catalog_sky(ref["coord"])
        t_astropy = time.perf_counter() - t0
        ok = sep <= 1 * u.arcsec
        agree = np.array_equal(np.where(ok, ref["name"][idx], ""), out["REF"])
        print(f"astropy match_to_catalog_sky, same input: {t_astropy:7.2f} s "
              f"(ratio astropy / m31clusters = {t_astropy / t_match:.2f}), "
              f"identical result: {agree}")
    return t_match


def bench_deduplicate(n, rng):
    n_src = int(n / 1.3)
    ra, dec = _sky(rng, n_src)
    extra = n - n_src
    k = rng.integers(0, n_src, extra)  # repeated detections, 0.3" scatter (chains possible)
    ra = np.r_[ra, ra[k] + rng.normal(0, 0.3 / 3600, extra) / np.cos(np.deg2rad(dec[k]))]
    dec = np.r_[dec, dec[k] + rng.normal(0, 0.3 / 3600, extra)]
    t = Table({"coord": SkyCoord(ra, dec, unit="deg"), "Conf": rng.uniform(0, 1, n),
               "PAndAS": rng.integers(200, 300, n)})
    t0 = time.perf_counter()
    out = deduplicate(t, radius=1 * u.arcsec)
    dt = time.perf_counter() - t0
    print(f"deduplicate {n:.0e} rows: {dt:7.2f} s  ({n / dt:,.0f} rows/s), "
          f"{len(out):,} unique (largest group {out['n_det'].max()}), "
          f"peak RSS {_peak_mb():,.0f} MB")
    # the obvious alternative: astropy's search_around_sky + connected components
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t0 = time.perf_counter()
    i1, i2, _, _ = t["coord"].search_around_sky(t["coord"], 1 * u.arcsec)
    n_groups, _ = connected_components(coo_matrix((np.ones(i1.size), (i1, i2)), shape=(n, n)))
    dt_astropy = time.perf_counter() - t0
    print(f"astropy search_around_sky + connected_components, same input: {dt_astropy:7.2f} s "
          f"(ratio astropy / m31clusters = {dt_astropy / dt:.2f}), "
          f"same number of groups: {n_groups == len(out)}")
    return dt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--small", action="store_true", help="1/10 of the sizes (quick check)")
    args = parser.parse_args(argv)
    scale = 10 if args.small else 1
    rng = np.random.default_rng(0)
    bench_match(1_000_000 // scale, 10_000, rng, compare=True)
    bench_match(10_000_000 // scale, 10_000, rng, compare=False)
    bench_deduplicate(1_000_000 // scale, rng)


if __name__ == "__main__":
    main()
