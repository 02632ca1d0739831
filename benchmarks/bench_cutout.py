"""
Benchmark of `m31clusters.cutout.Cutout` stamp extraction.

Run by hand::

    python benchmarks/bench_cutout.py                 # full benchmark (36 CCDs, ~2.7 GB temp)
    python benchmarks/bench_cutout.py --nccd 4        # smaller field

1. Single 2048 x 4612 float32 image (a MegaCam CCD, memory-mapped FITS): 20,000
   stamps of 64 x 64 at random positions, against a Python loop over
   `astropy.nddata.Cutout2D` (``mode="partial"``, ``fill_value=nan``) in the same
   run, checking that every pixel is identical.
2. A synthetic 2-band multi-extension field laid out like MegaCam (4 rows x 9
   columns of 2048 x 4612 CCDs with chip gaps, each with its own TAN WCS around a
   common tangent point), written to a temporary directory: stamps per second
   through `Cutout.iter_from_images` and peak memory (tracemalloc peak of Python
   allocations, which include numpy arrays, and the growth of the process's peak
   RSS).
"""

import argparse
import resource
import shutil
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_skycoord

from m31clusters.cutout import Cutout
from m31clusters.exceptions import OffImageWarning
from m31clusters.utils import _stamps

NX, NY = 2048, 4612  # MegaCam CCD: NAXIS1 = 2048 columns, NAXIS2 = 4612 rows
SCALE = 0.187 / 3600.0
RA0, DEC0 = 10.6847, 41.2690


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ccd_wcs(col, row, gap_x=80, gap_y=80, ncols=9, nrows=4):
    """TAN WCS of CCD (col, row) of a MegaCam-like mosaic around (RA0, DEC0)."""
    # lower-left pixel of this CCD in the mosaic's global pixel frame
    gx = col * (NX + gap_x)
    gy = row * (NY + gap_y)
    cx = (ncols * NX + (ncols - 1) * gap_x) / 2.0
    cy = (nrows * NY + (nrows - 1) * gap_y) / 2.0
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA0, DEC0]
    w.wcs.crpix = [cx - gx + 0.5, cy - gy + 0.5]
    w.wcs.cd = [[-SCALE, 0.0], [0.0, SCALE]]
    return w


def ccd_layout(nccd):
    ncols = 9 if nccd >= 9 else nccd
    nrows = int(np.ceil(nccd / ncols))
    return [(k % ncols, k // ncols) for k in range(nccd)], ncols, nrows


def write_field(path, nccd, band_offset, base):
    cells, ncols, nrows = ccd_layout(nccd)
    fits.PrimaryHDU().writeto(path)
    with fits.open(path, mode="append") as hdul:
        for k, (col, row) in enumerate(cells):
            hdr = ccd_wcs(col, row, ncols=ncols, nrows=nrows).to_header()
            hdr["EXTNAME"] = f"ccd{k:02d}"
            # distinct values per CCD and band so a stamp from the wrong CCD shows
            hdul.append(fits.ImageHDU(base + np.float32(1000 * k + band_offset), header=hdr))
            hdul.flush()


def bench_single(tmp, n, size, seed):
    print(f"== single image {NX}x{NY} float32, {n} stamps of {size}x{size} ==")
    rng = np.random.default_rng(seed)
    data = rng.normal(1000.0, 10.0, size=(NY, NX)).astype(np.float32)
    w = ccd_wcs(4, 1)
    path = Path(tmp) / "ccd.fits"
    fits.PrimaryHDU(data, header=w.to_header()).writeto(path)
    del data
    xy = np.column_stack([rng.uniform(-0.49, NX - 0.51, n), rng.uniform(-0.49, NY - 0.51, n)])
    with fits.open(path, memmap=True) as hdul:
        arr = hdul[0].data  # memory map
        _ = float(arr.sum())  # warm the page cache for both methods alike

        t_loop = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            ref = [
                Cutout2D(arr, (x, y), size, mode="partial", fill_value=np.nan).data
                for x, y in xy
            ]
            t_loop = min(t_loop, time.perf_counter() - t0)

        # the same output as ours: one (N, H, W) array (Cutout2D returns views)
        t0 = time.perf_counter()
        stacked = np.stack(ref)
        t_stack = time.perf_counter() - t0 + t_loop
        del stacked

        # WCS-aware: SkyCoord positions, each stamp with its WCS (like ours)
        sky = pixel_to_skycoord(xy[:, 0], xy[:, 1], w, origin=0)
        t0 = time.perf_counter()
        for k in range(n):
            Cutout2D(arr, sky[k], size, wcs=w, mode="partial", fill_value=np.nan)
        t_wcs = time.perf_counter() - t0

        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            cut = Cutout.from_images(
                {"g": hdul[0]}, xy, size=size, bands=("g",), pixel_band="g", progress=False
            )
            best = min(best, time.perf_counter() - t0)
        # the same with one thread (the default uses every core available)
        saved, _stamps._MAX_THREADS = _stamps._MAX_THREADS, 1
        try:
            best1 = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                cut1 = Cutout.from_images(
                    {"g": hdul[0]}, xy, size=size, bands=("g",), pixel_band="g",
                    progress=False,
                )
                best1 = min(best1, time.perf_counter() - t0)
        finally:
            _stamps._MAX_THREADS = saved
        same_threads = np.array_equal(cut1.data, cut.data, equal_nan=True) and np.array_equal(
            cut1.mask, cut.mask)
        del cut1
        # floor: writing the output bytes once (fresh array, one thread), no gather
        t_floor = np.inf
        src = np.ones((n, size, size), dtype=np.float32)
        for _ in range(3):
            t0 = time.perf_counter()
            dst = np.empty_like(src)
            np.copyto(dst, src)
            t_floor = min(t_floor, time.perf_counter() - t0)
        del src, dst
        same = all(
            np.array_equal(r, cut.data[i, :, :, 0], equal_nan=True)
            and np.array_equal(np.isnan(r), cut.mask[i, :, :, 0])
            for i, r in enumerate(ref)
        )
        t_sky = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            cut_sky = Cutout.from_images({"g": hdul[0]}, sky, size=size, bands=("g",),
                                         progress=False)
            t_sky = min(t_sky, time.perf_counter() - t0)
        same_sky = np.array_equal(cut_sky.data, cut.data, equal_nan=True)
    print(f"(a) Cutout2D loop, pixel positions (views; best of 3): {t_loop:7.3f} s "
          f"({n / t_loop:8.0f} stamps/s)")
    print(f"(b) (a) + np.stack into one (N, H, W) array          : {t_stack:7.3f} s "
          f"({n / t_stack:8.0f} stamps/s)")
    print(f"(c) Cutout2D loop, SkyCoord + wcs (stamp WCS too)     : {t_wcs:7.3f} s "
          f"({n / t_wcs:8.0f} stamps/s)")
    print(f"Cutout.from_images, pixel positions (best of 3)       : {best:7.3f} s "
          f"({n / best:8.0f} stamps/s)")
    print(f"Cutout.from_images, pixel positions, 1 thread         : {best1:7.3f} s "
          f"({n / best1:8.0f} stamps/s)")
    print(f"floor: one-thread copy of the output's bytes ({n * size * size * 4 / 1e6:.0f} MB)"
          f"  : {t_floor:7.3f} s")
    print(f"Cutout.from_images, SkyCoord positions (best of 3)    : {t_sky:7.3f} s "
          f"({n / t_sky:8.0f} stamps/s)")
    print(f"speed-up: vs (a) {t_loop / best:.1f}x, vs (b) {t_stack / best:.1f}x, "
          f"SkyCoord vs (c) {t_wcs / t_sky:.1f}x")
    print(f"   1 thread: vs (a) {t_loop / best1:.1f}x, vs (b) {t_stack / best1:.1f}x; "
          f"the floor alone is (a) / {t_loop / t_floor:.1f}")
    print(f"identical pixels and mask (vs Cutout2D): {same}; SkyCoord input gives the same "
          f"stamps: {same_sky}; 1 thread gives the same: {same_threads}")
    return t_loop / best, same


def bench_field(tmp, nccd, n, size, chunk, seed):
    cells, ncols, nrows = ccd_layout(nccd)
    print(f"== 2-band field: {nccd} CCD extensions of {NX}x{NY} float32 "
          f"({ncols} x {nrows} layout, 80-pixel gaps) ==")
    rng = np.random.default_rng(seed)
    base = rng.normal(1000.0, 10.0, size=(NY, NX)).astype(np.float32)
    paths = {}
    t0 = time.perf_counter()
    for b, off in (("g", 0), ("i", 500)):
        paths[b] = Path(tmp) / f"m999_{b}.fit"
        write_field(paths[b], nccd, off, base)
    del base
    size_gb = sum(p.stat().st_size for p in paths.values()) / 1e9
    print(f"wrote {size_gb:.2f} GB in {time.perf_counter() - t0:.1f} s")
    # random positions over the mosaic footprint (some fall in chip gaps)
    w0 = ccd_wcs(0, 0, ncols=ncols, nrows=nrows)
    gx = rng.uniform(0, ncols * (NX + 80) - 80, n)
    gy = rng.uniform(0, nrows * (NY + 80) - 80, n)
    coords = pixel_to_skycoord(gx, gy, w0, origin=0)
    coords = SkyCoord(coords.ra, coords.dec, frame="icrs")
    images = {b: str(p) for b, p in paths.items()}

    def run(positions, trace):
        n_done = n_empty = 0
        sample = None
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        c0 = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffImageWarning)
            for part in Cutout.iter_from_images(
                images, positions, size=size, chunk_size=chunk, progress=False
            ):
                n_done += len(part)
                n_empty += int(np.count_nonzero(part.valid_fraction.max(axis=1) == 0))
                if sample is None:  # keep one stamp (a copy) for the spot check
                    k = int(np.flatnonzero(part.valid_fraction[:, 0] == 1)[0])
                    sample = (part.positions[k], part.data[k, :, :, 0].copy())
                del part
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        peak = 0
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return n_done, n_empty, dt, cpu, peak, sample

    # throughput (files already in the page cache after writing them)
    rss0 = maxrss_mb()
    n_done, n_empty, dt, cpu, _, sample = run(coords, trace=False)
    rss_growth = maxrss_mb() - rss0
    print(f"{n_done} sources, chunk_size={chunk}: {dt:.2f} s wall = {n_done / dt:.0f} "
          f"stamps/s (2 bands each); {n_empty} in gaps/off-field (fully masked)")
    print(f"CPU time {cpu:.2f} s = {n_done / cpu:.0f} stamps per CPU-second "
          f"(wall time suffers when the machine is shared)")
    # memory, on a shorter run under tracemalloc
    sub = coords[: min(n, 6 * chunk)]
    _, _, _, _, peak, _ = run(sub, trace=True)
    chunk_mb = chunk * size * size * 2 * (4 + 1) / 1e6
    print(f"peak traced memory {peak / 1e6:.0f} MB over {len(sub)} sources (one output chunk, "
          f"data + mask: {chunk_mb:.0f} MB)")
    print(f"peak RSS grew by {rss_growth:.0f} MB during the throughput run over "
          f"{size_gb:.2f} GB of files (RSS also counts memory-mapped file pages touched, "
          f"which the OS can drop)")
    # spot-check one stamp against Cutout2D on the right CCD
    pos, stamp = sample
    with fits.open(paths["g"], memmap=True) as hdul:
        ok = False
        for h in hdul[1:]:
            w = WCS(h.header)
            x, y = w.world_to_pixel(pos)
            if 32 < x < NX - 32 and 32 < y < NY - 32:
                ref = Cutout2D(h.data, pos, size, wcs=w, mode="partial", fill_value=np.nan)
                ok = np.array_equal(ref.data, stamp)
                break
    print(f"spot check against Cutout2D on the containing CCD: {ok}")
    return n_done / dt, peak


def bench_normalize(n, size, seed, n_loop=200):
    """Each normalisation on n two-band stamps; zscale against astropy per stamp."""
    from astropy.visualization import ZScaleInterval

    print(f"== normalisation of {n} stamps of {size}x{size}x2 (float32) ==")
    rng = np.random.default_rng(seed)
    data = rng.normal(1000.0, 10.0, size=(n, size, size, 2)).astype(np.float32)
    data[:, size // 2, size // 2, :] += 500.0  # a bright pixel per stamp
    cut = Cutout(data, bands=("g", "i"))
    for method in ("asinh", "zscale", "percentile", "standardize", "none"):
        t0 = time.perf_counter()
        out = cut.normalize(method)
        dt = time.perf_counter() - t0
        print(f"  {method:12s} {dt:7.3f} s  ({n / dt:9.0f} stamps/s)")
        if method == "zscale":
            interval = ZScaleInterval()
            t0 = time.perf_counter()
            limits = [[interval.get_limits(data[i, :, :, b].ravel()) for b in range(2)]
                      for i in range(n_loop)]
            dt_loop = (time.perf_counter() - t0) * n / n_loop
            ref = np.clip((data[:n_loop] - np.array(limits)[:, None, None, :, 0])
                          / np.diff(np.array(limits), axis=-1)[:, None, None, :, 0], 0, 1)
            agree = np.allclose(out.data[:n_loop], ref, atol=1e-5)
            print(f"  {'':12s} astropy ZScaleInterval per stamp and band: {dt_loop:7.3f} s "
                  f"(extrapolated from {n_loop}); {dt_loop / dt:.0f}x; same values: {agree}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="stamps for the single-image test")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--nccd", type=int, default=36)
    p.add_argument("--nfield", type=int, default=200_000, help="sources for the field test")
    p.add_argument("--chunk", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-field", action="store_true")
    p.add_argument("--n-normalize", type=int, default=5000,
                   help="stamps for the normalisation test (0: skip it)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_cutout_")
    try:
        bench_single(tmp, args.n, args.size, args.seed)
        if args.n_normalize:
            bench_normalize(args.n_normalize, args.size, args.seed)
        if not args.skip_field:
            bench_field(tmp, args.nccd, args.nfield, args.size, args.chunk, args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
