"""
Benchmark: writing and reading a 1e5-row candidate catalogue as CDS.

Compares `Catalog.write_cds` with astropy's own MRT writer
(``Table.write(format="ascii.mrt")``, the obvious alternative, which writes
a similar ReadMe-plus-data file but checks nothing) on the same table, and
`Catalog.read_cds` (which checks every record against the ReadMe first)
with plain ``astropy.io.ascii.read(format="cds")``.
Also writes and reads a 1e5-source PAndAS ``.ascd`` file.  Run by hand::

    python benchmarks/bench_catalog.py [nrows]
"""

import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import ascii as astropy_ascii
from astropy.table import Table

from m31clusters.catalog import Catalog
from m31clusters.geometry import M31_CENTER
from m31clusters.io.cds.read import _check_data, _data_lines, parse_readme
from m31clusters.io.pandas_ascd import read_pandas_ascd, write_pandas_ascd


def candidates(n, seed=0):
    rng = np.random.default_rng(seed)
    coord = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                             rng.uniform(0.05, 2.2, n) * u.deg)
    imag = rng.uniform(12.74, 21, n)
    imag[rng.random(n) < 0.01] = np.nan
    rbc = np.where(rng.random(n) < 0.1, [f"B{k:03d}" for k in range(n)], "")
    return Catalog.from_candidates(
        coord, gmag=rng.uniform(13.5, 21, n), e_gmag=rng.uniform(0.001, 0.03, n), imag=imag,
        e_imag=rng.uniform(0.001, 0.5, n), conf=rng.uniform(0.669, 1, n),
        score=rng.integers(3, 5, n), names={"RBC": list(rbc)})


def timed(func, *args, **kwargs):
    """(result, seconds, peak MiB): timed without tracemalloc (which slows Python
    code several times), then run again under tracemalloc for the peak memory."""
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    dt = time.perf_counter() - t0
    if "overwrite" in kwargs or func.__name__.startswith("write"):
        kwargs["overwrite"] = True
    tracemalloc.start()
    func(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak / 2**20


def main(n=100_000):
    t0 = time.perf_counter()
    cat = candidates(n)
    print(f"built {n} candidates in {time.perf_counter() - t0:.2f} s "
          "(PAndAS field + Rproj from m31clusters.geometry)")
    d = Path(tempfile.mkdtemp())
    kw = {"title": "Benchmark candidates", "authors": ["Doe J."]}
    (_, data), dt, peak = timed(cat.write_cds, d / "ReadMe", d / "table.dat", **kw)
    size = data.stat().st_size / 2**20
    print(f"write_cds:            {dt:6.2f} s  {n / dt:9.0f} rows/s  peak {peak:6.1f} MiB  "
          f"({size:.1f} MiB data file)")
    # astropy's MRT writer is very slow on SkyCoord columns (389 s for 1e5
    # rows on 2 shared cores), so compare on 1e4 rows.
    m = min(n, 10_000)
    small = cat[:m]
    t0 = time.perf_counter()
    small.write_cds(d / "ReadMe.small", d / "small.dat", **kw)
    dt_small = time.perf_counter() - t0
    plain = Table(small)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        plain.write(d / "mrt.txt", format="ascii.mrt")
        dt_mrt = time.perf_counter() - t0
    print(f"on {m} rows: write_cds {dt_small:.2f} s, astropy ascii.mrt {dt_mrt:.2f} s "
          f"-> write_cds / mrt time ratio {dt_small / dt_mrt:.3f}")
    _, dt_r, peak_r = timed(Catalog.read_cds, d / "ReadMe")
    print(f"read_cds:             {dt_r:6.2f} s  {n / dt_r:9.0f} rows/s  peak {peak_r:6.1f} MiB")
    _, dt_a, peak_a = timed(astropy_ascii.read, str(d / "table.dat"),
                            readme=str(d / "ReadMe"), format="cds")
    print(f"astropy ascii cds:    {dt_a:6.2f} s  {n / dt_a:9.0f} rows/s  peak {peak_a:6.1f} MiB"
          f"   -> read_cds / astropy ratio {dt_r / dt_a:.2f}")
    # The part of read_cds that checks every record against the ReadMe.
    info = parse_readme(d / "ReadMe")
    (name, lrecl, records), = [f for f in info["files"] if f[0] == "table.dat"]
    t0 = time.perf_counter()
    _check_data(d / "table.dat", _data_lines(d / "table.dat"), info["tables"][0], records, lrecl)
    dt_c = time.perf_counter() - t0
    print(f"  of which the record checks: {dt_c:6.2f} s ({100 * dt_c / dt_r:.0f} % of read_cds)")

    rng = np.random.default_rng(1)
    src = Table({name: rng.uniform(0, 100, n) for name in
                 ["RA", "Dec", "xg", "yg", "g", "dg", "xi", "yi", "i", "di", "ia"]})
    for name in ["iccd", "ig", "ii", "field"]:
        src[name] = rng.integers(-9, 36, n)
    _, dt_w, peak_w = timed(write_pandas_ascd, src, d / "m001p.ascd", overwrite=False)
    _, dt_rd, peak_rd = timed(read_pandas_ascd, d / "m001p.ascd")
    print(f"write_pandas_ascd:    {dt_w:6.2f} s  {n / dt_w:9.0f} rows/s  peak {peak_w:6.1f} MiB")
    print(f"read_pandas_ascd:     {dt_rd:6.2f} s  {n / dt_rd:9.0f} rows/s  peak {peak_rd:6.1f} MiB")


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000)
