"""
Benchmark of `m31clusters.photometry` on a full-size simulated PAndAS CCD.

Run by hand::

    python benchmarks/bench_photometry.py                        # everything (~5 min idle)
    python benchmarks/bench_photometry.py --reference-sources 3000   # old measure on a subset
    python benchmarks/bench_photometry.py --skip-full-deblend    # detection: limited deblend only

1. One 2048 x 4612 CCD of field m248 (the crowded disc), g and i, simulated
   once with `m31clusters.simulate.simulate_field` and cached in ``--cache``.
2. `detect_sources` on the i image: total time and the time of each stage, run
   through its private stage functions in the same order
   (background mesh, smoothing, segmentation, deblending, catalogue), with
   every segment deblended (the default) and with ``deblend_limit`` (only
   segments that can hold a source brighter than the limit); the detections
   brighter than the limit must be the same in both.  The deblending is also
   run through photutils' ``deblend_sources`` on the same segments (what
   ``_deblend_sources`` replaced): its time and whether the segmentation
   images are identical.
3. `measure` (both bands) at the detections: sources per second (wall clock
   and CPU time: the machine may be shared), peak memory (tracemalloc peak of
   Python allocations, numpy arrays included, in a second run), against the
   implementation it replaced (photutils aperture by aperture, kept in
   ``benchmarks/_measure_reference.py``), timed in the same run on the same
   positions (all, or the first ``--reference-sources``): the speed ratio,
   max |delta mag|, flags that differ, and the largest relative difference of
   the errors (the sky-mean term uses the number of annulus pixels kept by
   the clipping where photutils' exact-overlap area was used).
"""

import argparse
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits

from m31clusters.photometry import detect_sources, measure
from m31clusters.photometry import detection as _det
from m31clusters.photometry._image import _ZP_KEYS, _bad_pixels, _image, _pixel_scale

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure_reference as reference  # noqa: E402

FIELD = 248
SHAPE = (4612, 2048)


def _simulated(cache, seed):
    from m31clusters.simulate import simulate_field

    cache.mkdir(parents=True, exist_ok=True)
    paths = {b: cache / f"m{FIELD}_{b}.fit" for b in ("g", "i")}
    if not all(p.exists() for p in paths.values()):
        t = time.perf_counter()
        simulate_field(field=FIELD, n_ccds=1, ccd_shape=SHAPE, out_dir=cache, seed=seed,
                       progress=False, overwrite=True, catalog=False)
        print(f"simulated field m{FIELD}, one {SHAPE[1]} x {SHAPE[0]} CCD, in "
              f"{time.perf_counter() - t:.1f} s -> {cache}")
    return paths


class _Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self):
        w, c = time.perf_counter(), time.process_time()
        out = (w - self.wall, c - self.cpu)
        self.wall, self.cpu = w, c
        return out


def _detect_stages(hdu, deblend_limit, compare=False):
    """detect_sources' stages, timed one by one (the same calls, in the same order)."""
    times = {}
    clock = _Clock()
    data, wcs, nd_mask, meta = _image(hdu)
    bad = _bad_pixels(data, nd_mask)
    scale = _pixel_scale(wcs)
    sub, rms = _det._background(data, bad, 64, 3)
    times["background (Background2D)"] = clock.lap()
    k1, kernel = _det._kernel(3.5)
    convolved = _det._smooth(sub, k1)
    times["smoothing (separable Gaussian)"] = clock.lap()
    threshold = 5.0 * np.where(bad, np.inf, rms * np.sqrt(np.sum(kernel**2)))
    segm = _det._segment(convolved, threshold, bad, 5)
    times["segmentation"] = clock.lap()
    min_flux = None
    if deblend_limit is not None:
        zp = next(meta[k] for k in _ZP_KEYS if k in meta)
        min_flux = _det._DEBLEND_MARGIN * 10 ** (-0.4 * (deblend_limit - zp))
    labels = _det._deblend_labels(sub, segm, min_flux)
    n_seg = segm.n_labels
    n_deb = n_seg if labels is None else len(labels)
    whole = segm
    segm = _det._deblend(convolved, segm, 5, labels, False)
    times[f"deblending ({n_deb} of {n_seg} segments)"] = clock.lap()
    if compare:
        # photutils' deblend_sources on the same segments (what _deblend_sources replaced)
        from photutils.segmentation import deblend_sources

        multi = _det._multi_peaked(convolved, whole, labels)
        clock.lap()
        ref = deblend_sources(convolved, whole, 5, labels=multi, progress_bar=False)
        w_ref, c_ref = clock.lap()
        w, c = times[f"deblending ({n_deb} of {n_seg} segments)"]
        print(f"  deblending {len(multi)} multi-peaked segments: {w:.2f} s wall, {c:.2f} s "
              f"CPU; photutils deblend_sources {w_ref:.2f} s wall, {c_ref:.2f} s CPU "
              f"({c_ref / c:.1f}x the CPU); same segmentation image: "
              f"{np.array_equal(ref.data, segm.data)}")
    out = _det._catalog(sub, segm, convolved, bad, wcs, scale, {})
    times["catalogue (table)"] = clock.lap()
    return out, times


def _print_stages(title, times, n):
    total_w = sum(t[0] for t in times.values())
    total_c = sum(t[1] for t in times.values())
    print(f"\n{title}: {n} sources, {total_w:.1f} s wall, {total_c:.1f} s CPU")
    for name, (w, c) in times.items():
        print(f"  {name:42s} {w:7.2f} s wall {c:7.2f} s CPU  ({100 * c / total_c:4.1f}% of CPU)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/m31clusters_bench_photometry"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reference-sources", type=int, default=None,
                        help="time the old measure on the first N sources only (default all)")
    parser.add_argument("--deblend-limit", type=float, default=21.5,
                        help="i magnitude for the limited-deblend detection (default 21.5)")
    parser.add_argument("--skip-full-deblend", action="store_true",
                        help="do not run detection with every segment deblended")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # OffImageWarning at the CCD edges, FITS header cards

    paths = _simulated(args.cache, args.seed)
    hdul = {b: fits.open(p) for b, p in paths.items()}
    images = {b: h[1] for b, h in hdul.items()}
    for hdu in images.values():
        _ = hdu.data  # read the pixels before timing

    # --- detection
    full = None
    if not args.skip_full_deblend:
        full, times = _detect_stages(images["i"], None, compare=True)
        _print_stages("detect_sources stages, every segment deblended (the default)", times,
                      len(full))
    clock = _Clock()
    limited = detect_sources(images["i"], nsigma=5, deblend_limit=args.deblend_limit * u.mag)
    w, c = clock.lap()
    print(f"\ndetect_sources(deblend_limit={args.deblend_limit} mag): {len(limited)} sources, "
          f"{w:.1f} s wall, {c:.1f} s CPU")
    _, times = _detect_stages(images["i"], args.deblend_limit)
    _print_stages(f"  stages, deblend_limit={args.deblend_limit} mag", times, len(limited))
    if full is not None:
        from scipy.spatial import cKDTree

        zp = images["i"].header["MAGZPT"]
        bright = np.asarray(full["flux"]) >= 10 ** (-0.4 * (args.deblend_limit - zp))
        d, _ = cKDTree(np.column_stack([limited["x"], limited["y"]])).query(
            np.column_stack([full["x"], full["y"]]))
        print(f"  detections with segment flux brighter than i = {args.deblend_limit}: "
              f"{np.count_nonzero(bright)}, at the same position (< 1e-6 pix) with the "
              f"limited deblending: {np.count_nonzero(bright & (d < 1e-6))}")
    positions = (full if full is not None else limited)["coord"]

    # --- measure, new
    n = len(positions)
    clock = _Clock()
    new = measure(images, positions)
    w_new, c_new = clock.lap()
    tracemalloc.start()
    measure(images, positions)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\nmeasure (g and i, {n} positions): {w_new:.2f} s wall, {c_new:.2f} s CPU = "
          f"{n / w_new:.0f} sources/s wall, {n / c_new:.0f} sources/s CPU; tracemalloc peak "
          f"{peak / 2**20:.0f} MiB; process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")

    # --- measure, old (photutils aperture by aperture)
    m = n if args.reference_sources is None else min(n, args.reference_sources)
    clock = _Clock()
    old = reference.measure(images, positions[:m])
    w_old, c_old = clock.lap()
    print(f"reference measure ({m} positions): {w_old:.1f} s wall, {c_old:.1f} s CPU = "
          f"{m / w_old:.0f} sources/s wall, {m / c_old:.0f} sources/s CPU")
    print(f"speed ratio new / reference: {(n / w_new) / (m / w_old):.1f}x wall, "
          f"{(n / c_new) / (m / c_old):.1f}x CPU")
    for band in images:
        a = np.asarray(old[f"{band}mag"], float)
        b = np.asarray(new[f"{band}mag"][:m], float)
        same_nan = np.array_equal(np.isfinite(a), np.isfinite(b))
        fin = np.isfinite(a) & np.isfinite(b)
        flags = np.count_nonzero(np.asarray(old[f"{band}flag"])
                                 != np.asarray(new[f"{band}flag"][:m]))
        ea = np.asarray(old[f"e_{band}flux"], float)
        eb = np.asarray(new[f"e_{band}flux"][:m], float)
        efin = np.isfinite(ea) & np.isfinite(eb)
        print(f"  {band}: max |dmag| {np.max(np.abs(a[fin] - b[fin])):.2e} over {fin.sum()} "
              f"magnitudes (same NaNs: {same_nan}); flags that differ: {flags} of {m}; "
              f"max relative error difference {np.max(np.abs(ea[efin] / eb[efin] - 1)):.2e}")
    for col in ("CI", "FWHM"):
        a = np.asarray(old[col], float)
        b = np.asarray(new[col][:m], float)
        fin = np.isfinite(a) & np.isfinite(b)
        print(f"  {col}: max |difference| {np.max(np.abs(a[fin] - b[fin])):.2e} (same NaNs: "
              f"{np.array_equal(np.isfinite(a), np.isfinite(b))})")
    for h in hdul.values():
        h.close()


if __name__ == "__main__":
    main()
