"""
Benchmark: simulated stamps and fields.

Run by hand::

    python benchmarks/bench_simulate.py            # 10,000 stamps + one full field
    python benchmarks/bench_simulate.py --stamps 2000 --ccds 4   # quicker

Prints stamps per second (1 and 2 worker processes), the time and peak
memory of one 36-CCD 2048 x 4612 PAndAS field, and, measured in the same
run, the obvious alternatives: real-space rendering of each object on its
own box (stamps) and full-frame rendering of each star (fields).
"""

import argparse
import math
import resource
import tempfile
import time
import tracemalloc

import numpy as np

from m31clusters.simulate import PANDAS, simulate_field, simulate_stamps
from m31clusters.simulate._common import psf_box_radius, render_point_box
from m31clusters.simulate.profiles import add_box, render_extended, split_position


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _naive_stamps(n, size=64, seed=0):
    """The obvious alternative: every star evaluated (5x5 sub-pixels) on its own
    33 x 33 box, every extended object FFT-convolved on its own box."""
    rng = np.random.default_rng(seed)
    fwhm = PANDAS.fwhm_pixels("i")
    r = psf_box_radius(fwhm)
    for _ in range(n):
        img = np.zeros((size + 2 * r, size + 2 * r))
        for _star in range(rng.poisson(60)):
            x, y = rng.uniform(0, size + 2 * r, 2)
            (ix,), (fx,) = split_position([x])
            (iy,), (fy,) = split_position([y])
            add_box(img, 100.0 * render_point_box(fwhm, 3.0, r, fx, fy), int(ix), int(iy))
        for _obj in range(2):
            box = render_extended("sersic", 1.0, 3.0, 0.7, 0.3, 1e4, fwhm, 3.0)
            add_box(img, box, size // 2 + r, size // 2 + r)


def bench_stamps(n):
    print(f"--- simulate_stamps: {n} stamps of 64x64x2 ---")
    t0 = time.perf_counter()
    simulate_stamps(200, seed=0, progress=False)  # warm the caches
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    cut, _ = simulate_stamps(n, seed=1, progress=False)
    t1 = time.perf_counter() - t0
    tracemalloc.start()
    small, _ = simulate_stamps(500, seed=2, progress=False)
    peak = tracemalloc.get_traced_memory()[1] / 2**20 - small.data.nbytes / 2**20
    tracemalloc.stop()
    print(f"1 process : {t1:7.1f} s  {n / t1:7.0f} stamps/s  (working memory beyond the output "
          f"{peak:.0f} MiB for 500 stamps; output {cut.data.nbytes / 2**20:.0f} MiB; "
          f"warm-up 200 in {warm:.1f} s)")
    t0 = time.perf_counter()
    cut2, _ = simulate_stamps(n, seed=1, progress=False, n_jobs=2)
    t2 = time.perf_counter() - t0
    same = np.array_equal(cut.data, cut2.data)
    print(f"2 processes: {t2:7.1f} s  {n / t2:7.0f} stamps/s  (identical to 1 process: {same})")
    m = max(50, n // 100)
    t0 = time.perf_counter()
    _naive_stamps(m)
    tn = (time.perf_counter() - t0) / m
    print(f"alternative (per-object real-space boxes, i band only): {1 / tn:7.0f} stamps/s; "
          f"Fourier synthesis is {tn / (t1 / n):.1f}x faster per stamp (both bands vs one)")
    return n / t1, n / t2


def bench_field(n_ccds, field):
    print(f"--- simulate_field: field {field}, {n_ccds} CCDs of 2048 x 4612 ---")
    rss0 = _rss_mib()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        sim = simulate_field(field=field, n_ccds=n_ccds, out_dir=d, seed=1, progress=True)
        dt = time.perf_counter() - t0
        kinds, counts = np.unique(sim.truth["kind"], return_counts=True)
    objects = dict(zip(kinds.tolist(), counts.tolist(), strict=True))
    print(f"time {dt:.1f} s ({dt / n_ccds:.1f} s per CCD); peak RSS {_rss_mib():.0f} MiB "
          f"(before: {rss0:.0f} MiB); objects {objects}; "
          f"catalogue {len(sim.catalog)} rows")
    # Alternative: each star rendered over the whole CCD (the obvious full-frame approach).
    from m31clusters.simulate.profiles import add_points

    ny, nx = 4612, 2048
    fwhm = PANDAS.fwhm_pixels("i")
    rng = np.random.default_rng(0)
    k = 5
    yy, xx = np.mgrid[0:ny, 0:nx]
    t0 = time.perf_counter()
    img = np.zeros((ny, nx))
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / 3) - 1))
    for _ in range(k):
        x, y = rng.uniform(0, nx), rng.uniform(0, ny)
        r2 = ((xx - x) ** 2 + (yy - y) ** 2) / alpha**2
        img += 100 * 2 / (math.pi * alpha**2) * (1 + r2) ** -3
    t_full = (time.perf_counter() - t0) / k
    m = 20000
    img = np.zeros((ny, nx))
    t0 = time.perf_counter()
    add_points(img, rng.uniform(0, nx, m), rng.uniform(0, ny, m), np.full(m, 100.0), fwhm, 3.0,
               psf_box_radius(fwhm))
    t_box = (time.perf_counter() - t0) / m
    print(f"per star: postage box {t_box * 1e6:.1f} us vs full frame {t_full * 1e3:.0f} ms "
          f"({t_full / t_box:.0f}x)")
    return dt


def bench_difficulty(n=300):
    """Separability of clusters from stars/blends by a concentration index vs magnitude."""
    from photutils.aperture import CircularAperture, aperture_photometry
    from scipy.stats import mannwhitneyu

    print(f"--- difficulty: AUC of F(r<5)/F(r<1.5) in i, clusters vs stars+blends, {n} stamps"
          " per bin, unsaturated stamps only ---")
    sat = PANDAS.saturation - PANDAS.sky_counts("i")
    for crowd in [(30.0, 300.0), (3000.0, 10000.0)]:
        line = []
        for mag in [(17, 18), (19, 20), (21, 22), (22, 23), (23, 24)]:
            cut, t = simulate_stamps(n, size=32, seed=0, mag_range=mag, crowding=crowd,
                                     progress=False,
                                     proportions={"cluster": 0.5, "star": 0.3, "blend": 0.2})
            x = 15.5 + cut.offsets[:, 0]
            y = 15.5 + cut.offsets[:, 1]
            conc = np.array([
                aperture_photometry(cut.data[k, :, :, 1], CircularAperture((x[k], y[k]), 5.0))[
                    "aperture_sum"][0]
                / aperture_photometry(cut.data[k, :, :, 1], CircularAperture((x[k], y[k]), 1.5))[
                    "aperture_sum"][0] for k in range(n)])
            ok = cut.data.max(axis=(1, 2, 3)) < 0.8 * sat
            lab = np.asarray(t["label"]) == 1
            a, b = conc[lab & ok], conc[~lab & ok]
            auc = mannwhitneyu(a, b).statistic / (a.size * b.size)
            line.append(f"{mag[0]}-{mag[1]}: {auc:.3f} ({ok.mean():.0%} unsat.)")
        print(f"crowding {crowd[0]:g}-{crowd[1]:g}/arcmin^2: " + "; ".join(line))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--stamps", type=int, default=10000)
    p.add_argument("--ccds", type=int, default=36)
    p.add_argument("--field", type=int, default=None, help="default: the field of M31's centre")
    p.add_argument("--difficulty", action="store_true", help="also measure class separability")
    args = p.parse_args()
    if args.difficulty:
        bench_difficulty()
    if args.stamps:
        bench_stamps(args.stamps)
    if args.ccds:
        bench_field(args.ccds, args.field)


if __name__ == "__main__":
    main()
