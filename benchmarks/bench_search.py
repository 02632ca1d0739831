"""
Speed of the cluster search (`m31clusters.survey.search_field` / ``m31clusters search``).

On a simulated PAndAS field (default: field m248, the disc field nearest
M31's centre, 36 CCDs of 4612 x 2048 pixels in g and i, with its
``m248p.ascd`` catalogue; or the stacks in ``--stacks``), measured here:

1. **with the catalogue** (in a fresh process): sources from the ascd
   catalogue, cuts, stamps and classification of the sources that pass
   (target <= 3 min per field on 2 cores);
2. **with detection**: ``search_fields`` on ``--workers`` local Dask worker
   processes (the command's default), which run the field's CCDs (detection
   on each i CCD, photometry in g and i) as tasks of their own, then cuts and
   classification (target <= 15 min); the seconds of work summed over the
   stages are what one process would spend doing one CCD after the other;
3. **peak memory** of one process searching one field, then two fields in a
   row (target <= 4 GB, independent of the number of fields), and of the
   detection run's workers;
4. **scaling**: two fields with ``search_fields`` on 1 and on 2 local worker
   processes, with the catalogue (the full field twice) and with detection
   (``--scaling-ccds`` CCDs each), the model loaded in every worker before
   the clock starts (target >= 1.6x); and with the catalogue, one worker
   restricted to one CPU against two workers on two (the workers are those
   ``search_fields`` makes: each restricted to its own share of the CPUs);

with the per-stage table (read, detect, measure, cut, classify, write) and an
extrapolation to the paper's 30 kpc search (the PAndAS fields whose centre
lies within 30 kpc of M31, 36 CCDs each) on this machine and on a 16-core
node (assuming the per-field time measured here and workers scaling as
measured from 1 to 2).

The simulation itself is not timed (it is cached in ``--workdir``).  On a
busy machine use ``--n-ccds 4`` (the per-field figures are then scaled to 36
CCDs and labelled so).

Run by hand::

    python benchmarks/bench_search.py [--n-ccds 36] [--workdir DIR]
    python benchmarks/bench_search.py --stacks DIR   # e.g. a full m266 field
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELD = 248
FULL_CCDS = 36


def _peak_rss_gb():
    """Peak resident memory of this process (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _simulate(workdir, n_ccds, shape):
    from m31clusters.simulate import simulate_field

    d = Path(workdir) / f"m{FIELD}_{n_ccds}x{shape[0]}x{shape[1]}"
    done = d / "done"
    if not done.exists():
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        simulate_field(field=FIELD, n_ccds=n_ccds, ccd_shape=shape, out_dir=d, seed=1,
                       overwrite=True, progress=True)
        (d / f"m{FIELD}_truth.ecsv").unlink()
        done.write_text(f"{time.perf_counter() - t:.1f}")
    return d


def _child(mode, d, field, n_fields):
    """One measurement in this (fresh) process; prints a JSON line."""
    from m31clusters.survey import search_field

    images = {"g": d / f"m{field}_g.fit", "i": d / f"m{field}_i.fit"}
    catalog = d / f"m{field}p.ascd" if mode == "catalogue" else None
    out = []
    for _ in range(n_fields):
        t = time.perf_counter()
        found = search_field(images, catalog)
        out.append({"wall": time.perf_counter() - t, "timings": found.timings,
                    "counts": found.counts})
    print(json.dumps({"mode": mode, "fields": out, "peak_rss_gb": _peak_rss_gb()}))


def _run_child(mode, d, field, n_fields=1):
    cmd = [sys.executable, __file__, "--_child", mode, "--_dir", str(d),
           "--_field", field, "--_n", str(n_fields)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def _cluster(workers, cpus=None):
    """
    The local cluster ``search_fields`` makes (*workers* spawned single-threaded
    processes, each restricted to its share of the CPUs), the model loaded in
    each.  With *cpus*, the workers share only the first *cpus* CPUs.
    """
    from m31clusters.survey._run import _make_client
    from m31clusters.survey.search import _load_model

    every = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, sorted(every)[:cpus])  # inherited by the spawned workers
    try:
        client, cluster = _make_client(workers, None)
    finally:
        os.sched_setaffinity(0, every)
    client.run(_load_model, None)  # warm: the shipped model in every worker
    return cluster, client


def _worker_peak_gb(client):
    return max(client.run(_peak_rss_gb).values())


def _search(fields, workers, out_dir, cpus=None):
    """search_fields on *workers* local processes (warm): wall time, result, peak memory."""
    from m31clusters.survey import search_fields

    cluster, client = _cluster(workers, cpus)
    with cluster, client:
        t = time.perf_counter()
        res = search_fields(fields, out_dir, scheduler=cluster.scheduler_address)
        wall = time.perf_counter() - t
        peak = _worker_peak_gb(client)
    return wall, res, peak


def _subset(d, field, n_ccds, out):
    """Copies of the first *n_ccds* CCDs of the field's stacks (for the detection scaling)."""
    from astropy.io import fits

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for band in "gi":
        paths[band] = out / f"m{field}_{band}.fit"
        if not paths[band].exists():
            with fits.open(d / f"m{field}_{band}.fit", memmap=True) as hdul:
                fits.HDUList([h.copy() for h in hdul[: n_ccds + 1]]).writeto(paths[band])
    return paths


def _fields_within(radius_kpc):
    from m31clusters.geometry import pandas_fields

    f = pandas_fields()
    col = "Rproj" if "Rproj" in f.colnames else "rproj"
    return int((f[col] < radius_kpc).sum())


def _stage_table(label, timings, scale):
    rows = [f"  {k:9s} {v * scale:8.1f} s" for k, v in timings.items()]
    total = sum(timings.values()) * scale
    return f"{label}\n" + "\n".join(rows) + f"\n  {'total':9s} {total:8.1f} s"


def _catalogue_timings(d, field, scale, note):
    """Sections 1 and 3: the search with the catalogue in fresh processes."""
    cat1 = _run_child("catalogue", d, field, n_fields=2)
    first, second = cat1["fields"]
    print(f"\n1. with the catalogue (one process): {second['counts']['sources']} sources, "
          f"{second['counts']['passed_cuts']} pass the cuts, "
          f"{second['counts']['candidates']} candidates")
    print(f"   first field in a process {first['wall']:.1f} s (model load, JIT), "
          f"next {second['wall']:.1f} s -> {second['wall'] * scale:.0f} s per 36-CCD field"
          f"{note}  (target <= 180 s)")
    print(_stage_table("   stages, second field:", second["timings"], scale))
    print(f"\n3. peak memory of one process: 2 fields in a row {cat1['peak_rss_gb']:.2f} GB")
    one = _run_child("catalogue", d, field, n_fields=1)
    print(f"   1 field {one['peak_rss_gb']:.2f} GB (target <= 4 GB, independent of fields)")

    return second


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n-ccds", type=int, default=FULL_CCDS)
    parser.add_argument("--ccd-shape", type=int, nargs=2, default=(4612, 2048))
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "m31clusters-bench-search"))
    parser.add_argument("--stacks", type=Path,
                        help="a directory with a field's stacks m###_g.fit, m###_i.fit and "
                        "its m###p.ascd (default: simulate m248 in --workdir)")
    parser.add_argument("--workers", type=int, default=2,
                        help="local worker processes of the detection run")
    parser.add_argument("--scaling-ccds", type=int, default=4,
                        help="CCDs per field of the detection scaling run")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--skip-catalogue", action="store_true",
                        help="skip the runs with the catalogue (sections 1, 3 and their scaling)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_dir", help=argparse.SUPPRESS)
    parser.add_argument("--_field", help=argparse.SUPPRESS)
    parser.add_argument("--_n", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(args._child, Path(args._dir), args._field, args._n)
        return
    os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp())
    if args.stacks:
        d = args.stacks
        (gpath,) = sorted(d.glob("m*_g.fit"))
        field = gpath.name[1:4]
        from astropy.io import fits

        with fits.open(gpath, memmap=True) as hdul:
            n_ccds = len(hdul) - 1
            shape = hdul[1].shape
    else:
        d = _simulate(args.workdir, args.n_ccds, tuple(args.ccd_shape))
        field, n_ccds, shape = f"{FIELD:03d}", args.n_ccds, tuple(args.ccd_shape)
    scale = FULL_CCDS / n_ccds
    note = "" if scale == 1 else f" (measured on {n_ccds} CCDs, scaled x{scale:g} to 36)"
    spec = {"g": d / f"m{field}_g.fit", "i": d / f"m{field}_i.fit",
            "catalog": d / f"m{field}p.ascd"}
    print(f"field m{field}: {n_ccds} CCDs of {tuple(shape)}, cpus {os.cpu_count()}")

    second = None
    if not args.skip_catalogue:
        second = _catalogue_timings(d, field, scale, note)

    det_wall = det_work = None
    if not args.skip_detection:
        from m31clusters.survey import SEARCH_STAGES

        with tempfile.TemporaryDirectory() as tmp:
            nodet = {int(field): {"g": spec["g"], "i": spec["i"]}}
            det_wall, res, peak = _search(nodet, args.workers, Path(tmp) / "det")
        det_work = sum(res.timings[k] for k in SEARCH_STAGES)
        print(f"\n2. with detection (search_fields, {args.workers} local worker processes, "
              f"the field's CCDs spread over them): {res.counts['sources']} sources detected, "
              f"{res.counts['passed_cuts']} pass the cuts; {det_wall:.1f} s wall -> "
              f"{det_wall * scale:.0f} s per 36-CCD field{note}  (target <= 900 s); "
              f"peak memory of a worker {peak:.2f} GB")
        print(f"   work summed over the stages {det_work:.1f} s (one CCD after the other in "
              f"one process); {det_work / det_wall:.2f}x on {args.workers} workers")
        print(_stage_table("   stages (seconds of work):",
                           {k: res.timings[k] for k in SEARCH_STAGES}, scale))
        print(f"   write {res.timings.get('write', 0):.1f} s")

    ratio_cat = ratio_det = ratio_core = u1 = None
    if not args.skip_scaling:
        print("\n4. scaling: two fields on local worker processes (warm: model loaded)")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if not args.skip_catalogue:
                two = {"a": spec, "b": spec}
                w1, _, _ = _search(two, 1, tmp / "c1")
                w2, _, _ = _search(two, 2, tmp / "c2")
                ratio_cat = w1 / w2
                # The same with one CPU per worker: 1 worker on 1 CPU against 2 on 2.
                u1, _, _ = _search(two, 1, tmp / "u1", cpus=1)
                ratio_core = u1 / w2
                print(f"   with the catalogue: 1 worker {w1:.1f} s, 2 workers {w2:.1f} s: "
                      f"{ratio_cat:.2f}x  (target >= 1.6x)")
                print(f"   with the catalogue, one CPU per worker: 1 worker on 1 CPU "
                      f"{u1:.1f} s, 2 workers on 2 CPUs {w2:.1f} s: {ratio_core:.2f}x")
            sub = _subset(d, field, args.scaling_ccds, tmp / "sub")
            two = {"a": sub, "b": sub}
            v1, _, _ = _search(two, 1, tmp / "d1")
            v2, _, _ = _search(two, 2, tmp / "d2")
            ratio_det = v1 / v2
            print(f"   with detection ({args.scaling_ccds} CCDs per field): 1 worker {v1:.1f} s, "
                  f"2 workers {v2:.1f} s: {ratio_det:.2f}x  (target >= 1.6x)")

    n30 = _fields_within(30)
    print(f"\n5. the paper's 30 kpc search: {n30} fields with their centre within 30 kpc")
    if second is not None:
        per_field = second["wall"] * scale
        print(f"   with catalogues, {per_field:.0f} s per field in one process: one worker "
              f"{n30 * per_field / 3600:.2f} h")
    if ratio_cat:
        eff = ratio_core / 2
        print(f"   this machine (2 workers, {ratio_cat:.2f}x): "
              f"{n30 * per_field / ratio_cat / 3600:.2f} h; 16-core node (16 one-CPU workers "
              f"at the {eff:.0%} efficiency measured from 1 to 2, {u1 / 2:.0f} s per field on "
              f"one CPU): {n30 * (u1 / 2) / (16 * eff) / 3600:.2f} h")
    if det_wall:
        work = det_work * scale
        eff = (ratio_det or det_work / det_wall) / 2
        print(f"   with detection, {work:.0f} s of work per field: this machine "
              f"({args.workers} workers) {n30 * det_wall * scale / 3600:.2f} h; 16-core node "
              f"(16 workers at {eff:.0%} efficiency): {n30 * work / (16 * eff) / 3600:.2f} h")


if __name__ == "__main__":
    main()
