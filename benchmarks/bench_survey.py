"""
Benchmark of m31clusters.survey.run_survey: serial vs a 2-worker Dask LocalCluster.

Part 1 (speed): each field is simulated with `m31clusters.simulate.simulate_field`
(the 4 central CCDs, each 1/4 of a MegaCam CCD on a side by default, written
as multi-extension g and i FITS stacks plus the PAndAS-format catalogue),
then the catalogue sources are cut from the stacks with
`Cutout.from_images` in chunks (`iter_chunks`) and a concentration index
stands in for the classifier.  The same 8 fields run serially
(``scheduler="synchronous"``), on Dask's threaded scheduler with 2 threads,
and on a 1- and a 2-worker ``LocalCluster`` (processes, 1 thread each):
wall time, fields per second, speed-up, and peak resident memory (VmHWM)
of each worker.

Part 2 (memory): a synthetic CPU-bound field (3000x3000 image, 10^4
sources, detection, 32x32 stamps, FFT per stamp) on a 2-worker
``LocalCluster``, with stamps in chunks of 256 and with the whole field at
once: peak memory per worker shows what the chunking buys.

Run by hand:  python benchmarks/bench_survey.py [--fields 8] [--ccd 1153 512]
"""

import argparse
import os
import resource
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table
from scipy import ndimage

from m31clusters.survey import iter_chunks, run_survey

STAMP = 32
PIXSCALE = 0.187 / 3600  # deg / pixel (MegaCam)


def field_job(field, size=3000, n_sources=10000, chunk_size=256):
    """Synthetic per-field job: image -> detections -> stamps (chunked) -> table."""
    rng = np.random.default_rng(field)
    image = rng.normal(100.0, 5.0, (size, size)).astype(np.float32)
    xy = rng.uniform(STAMP, size - STAMP, (n_sources, 2))
    flux = 10 ** rng.uniform(2.5, 4.5, n_sources)
    points = np.zeros_like(image)
    np.add.at(points, (xy[:, 1].astype(int), xy[:, 0].astype(int)), flux)
    image += ndimage.gaussian_filter(points, rng.uniform(1.2, 2.5))
    smooth = ndimage.gaussian_filter(image, 1.5)
    peaks = (smooth == ndimage.maximum_filter(smooth, 7)) & (smooth > 110.0)
    y, x = np.nonzero(peaks)
    inside = (x >= STAMP) & (x < size - STAMP) & (y >= STAMP) & (y < size - STAMP)
    x, y = x[inside], y[inside]
    h = STAMP // 2
    rr = np.hypot(*np.mgrid[-h:h, -h:h])
    conf = np.empty(x.size)
    for sl in iter_chunks(x.size, chunk_size):
        # (chunk, 32, 32) stamps: memory set by the chunk size, not the field
        idx_y = y[sl, None, None] + np.arange(-h, h)[None, :, None]
        idx_x = x[sl, None, None] + np.arange(-h, h)[None, None, :]
        stamps = image[idx_y, idx_x].astype(np.float64) - 100.0
        # a little per-stamp work, standing in for the classifier
        spectra = np.abs(np.fft.rfft2(stamps))
        total = stamps.sum(axis=(1, 2))
        inner = (stamps * (rr < 3)).sum(axis=(1, 2))
        ratio = np.where(total > 0, inner / np.maximum(total, 1e-9), 0.0)
        conf[sl.start:sl.stop] = np.clip(ratio, 0, 1) * (spectra[:, 0, 0] > 0)
    # Fields overlap by 10 percent along RA.
    ra0 = 10.0 + field * 0.9 * size * PIXSCALE
    return Table({"ra": (ra0 + x * PIXSCALE) * u.deg, "dec": (41.0 + y * PIXSCALE) * u.deg,
                  "Conf": conf, "PAndAS": np.full(x.size, field)})


def simulated_job(field, root, ccd_shape=(1153, 512), chunk_size=256):
    """simulate_field -> stacks on disk -> stamps of the catalogue sources -> table."""
    from astropy.coordinates import SkyCoord

    from m31clusters.cutout import Cutout
    from m31clusters.exceptions import OffImageWarning
    from m31clusters.simulate import simulate_field

    # A few catalogue sources sit in CCD gaps in one band: their stamps are masked.
    warnings.simplefilter("ignore", OffImageWarning)

    out = Path(root) / f"m{field:03d}"
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate_field(field, n_ccds=4, ccd_shape=tuple(ccd_shape), out_dir=out, seed=field,
                         overwrite=True, progress=False)
    cat = sim.catalog
    coord = SkyCoord(cat["RA"], cat["Dec"], unit="deg")
    h = STAMP // 2
    rr = np.hypot(*np.mgrid[-h:h, -h:h])
    conf = np.zeros(len(cat))
    for sl in iter_chunks(len(cat), chunk_size):
        cut = Cutout.from_images(sim.images, coord[sl], size=STAMP, progress=False)
        i_band = np.where(cut.mask[..., 1], 0.0, cut.data[..., 1]).astype(np.float64)
        total = i_band.sum(axis=(1, 2))
        inner = (i_band * (rr < 3)).sum(axis=(1, 2))
        conf[sl] = np.clip(np.where(total > 0, inner / np.maximum(total, 1e-9), 0.0), 0, 1)
    return Table({"coord": coord, "gmag": cat["g"], "imag": cat["i"], "Conf": conf,
                  "PAndAS": np.full(len(cat), field)})


def field_job_unchunked(field, size=3000, n_sources=10000):
    return field_job(field, size=size, n_sources=n_sources, chunk_size=10**9)


def _maxrss_mib():
    """Peak resident memory of this process (MiB).

    VmHWM from /proc on Linux: ru_maxrss would also count the RSS of the
    parent at the fork that spawned the worker (Linux keeps it across exec).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_up():
    import m31clusters.crossmatch  # noqa: F401
    import m31clusters.cutout  # noqa: F401
    import m31clusters.simulate  # noqa: F401


def _check(run):
    if run.failed:
        key = next(iter(run.failed))
        raise RuntimeError(f"field {key} failed:\n{run.tracebacks[key]}")
    return run


def run_cluster(func, fields, n_workers, out):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(_warm_up)  # workers are up, with the modules imported, before the clock
        t0 = time.perf_counter()
        run = run_survey(func, fields, out, client=client, progress=False)
        wall = time.perf_counter() - t0
        _check(run)
        rss = sorted(client.run(_maxrss_mib).values())
    return run, wall, rss


def _speed(job, fields, tmp):
    t0 = time.perf_counter()
    serial = _check(run_survey(job, fields, f"{tmp}/serial", scheduler="synchronous",
                               progress=False))
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    _check(run_survey(job, fields, f"{tmp}/threads", scheduler="threads", n_workers=2,
                      progress=False))
    t_threads = time.perf_counter() - t0
    dask2, t_dask2, rss2 = run_cluster(job, fields, 2, f"{tmp}/dask2")
    _, t_dask1, rss1 = run_cluster(job, fields, 1, f"{tmp}/dask1")
    # Serial again at the end: on a shared machine the load changes.
    t0 = time.perf_counter()
    _check(run_survey(job, fields, f"{tmp}/serial2", scheduler="synchronous", progress=False))
    t_serial2 = time.perf_counter() - t0
    assert len(serial.catalog) == len(dask2.catalog)
    n_rows = sum(serial.records[f]["rows"] for f in fields)
    n = len(fields)
    print(f"  {n_rows} sources, {len(serial.catalog)} after de-duplication")
    print(f"  serial (synchronous)      : {t_serial:7.2f} s  {n / t_serial:5.2f} fields/s"
          f"  (again at the end: {t_serial2:.2f} s)")
    t_serial = min(t_serial, t_serial2)
    print(f"  Dask threads, 2 threads   : {t_threads:7.2f} s  {n / t_threads:5.2f} fields/s"
          f"  speed-up vs serial x{t_serial / t_threads:.2f}")
    print(f"  LocalCluster, 1 worker    : {t_dask1:7.2f} s  {n / t_dask1:5.2f} fields/s"
          f"  peak memory {rss1[0]:.0f} MiB")
    print(f"  LocalCluster, 2 workers   : {t_dask2:7.2f} s  {n / t_dask2:5.2f} fields/s"
          f"  speed-up vs serial x{t_serial / t_dask2:.2f}, vs 1 worker x{t_dask1 / t_dask2:.2f}"
          f"  peak memory per worker " + ", ".join(f"{r:.0f}" for r in rss2) + " MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--ccd", type=int, nargs=2, default=(1153, 512),
                        help="simulated CCD shape (ny, nx); PAndAS has 4612 2048")
    parser.add_argument("--size", type=int, default=3000, help="synthetic image size")
    args = parser.parse_args()
    fields = list(range(207, 207 + args.fields))
    from functools import partial

    tmp = tempfile.mkdtemp(prefix="bench-survey-")
    try:
        print(f"Part 1: {len(fields)} fields from simulate_field (4 CCDs of "
              f"{args.ccd[0]}x{args.ccd[1]} pixels, g and i), stamps in chunks of 256")
        _speed(partial(simulated_job, root=f"{tmp}/stacks", ccd_shape=args.ccd), fields,
               f"{tmp}/sim")
        print(f"Part 2: {len(fields)} synthetic fields of {args.size}x{args.size} pixels, "
              "2-worker LocalCluster")
        _, t_chunk, rss_chunk = run_cluster(partial(field_job, size=args.size), fields, 2,
                                            f"{tmp}/chunked")
        _, t_whole, rss_whole = run_cluster(partial(field_job_unchunked, size=args.size),
                                            fields, 2, f"{tmp}/whole")
        print(f"  stamps in chunks of 256 : {t_chunk:6.2f} s, peak memory per worker "
              + ", ".join(f"{r:.0f}" for r in rss_chunk) + " MiB")
        print(f"  whole field at once     : {t_whole:6.2f} s, peak memory per worker "
              + ", ".join(f"{r:.0f}" for r in rss_whole) + " MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}, CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    main()
