"""
Speed of the cluster search (`m31clusters.survey.search_field` / ``m31clusters search``).

On a simulated PAndAS field (field m248, the disc field nearest M31's centre;
36 CCDs of 4612 x 2048 pixels in g and i, with its ``m248p.ascd`` catalogue),
measured here, each in its own process so that peak memory is that of the
mode alone:

1. **with the catalogue**: sources from ``m248p.ascd``, cuts, stamps and
   classification of the sources that pass (target <= 3 min per field on 2
   cores);
2. **with detection**: detection on each i CCD, photometry in g and i, cuts,
   classification (target <= 15 min);
3. **peak memory** of one process searching one field, then two fields in a
   row (target <= 4 GB, independent of the number of fields);
4. **scaling**: the same two fields with ``search_fields`` on 1 and on 2 local
   Dask worker processes (target >= 1.6x);

with the per-stage table (read, detect, measure, cut, classify, write) and an
extrapolation to the paper's 30 kpc search (the PAndAS fields whose centre
lies within 30 kpc of M31, 36 CCDs each) on this machine and on a 16-core
node (assuming the per-field time measured here and workers scaling as
measured from 1 to 2).

The simulation itself is not timed (it is cached in ``--workdir``).  On a
busy machine use ``--n-ccds 4`` (the per-field figures are then scaled to 36
CCDs and labelled so).

Run by hand:  python benchmarks/bench_search.py [--n-ccds 36] [--workdir DIR]
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


def _child(mode, d, n_fields):
    """One measurement in this (fresh) process; prints a JSON line."""
    from m31clusters.survey import search_field

    images = {"g": d / f"m{FIELD}_g.fit", "i": d / f"m{FIELD}_i.fit"}
    catalog = d / f"m{FIELD}p.ascd" if mode == "catalogue" else None
    out = []
    for _ in range(n_fields):
        t = time.perf_counter()
        found = search_field(images, catalog)
        out.append({"wall": time.perf_counter() - t, "timings": found.timings,
                    "counts": found.counts})
    print(json.dumps({"mode": mode, "fields": out, "peak_rss_gb": _peak_rss_gb()}))


def _run_child(mode, d, n_fields=1):
    cmd = [sys.executable, __file__, "--_child", mode, "--_dir", str(d),
           "--_n", str(n_fields)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def _scaling(d, workers, out_dir):
    """
    Two fields (the same stacks under two keys) on *workers* local processes.

    Returns the wall time of a cold run (starting the workers, loading the
    model in each) and of a warm one (the same workers again: steady state).
    """
    import dask
    from distributed import LocalCluster

    from m31clusters.survey import search_fields

    spec = {"g": d / f"m{FIELD}_g.fit", "i": d / f"m{FIELD}_i.fit",
            "catalog": d / f"m{FIELD}p.ascd"}
    t = time.perf_counter()
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    with cluster:
        search_fields({"a": spec, "b": spec}, out_dir / "cold",
                      scheduler=cluster.scheduler_address)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        res = search_fields({"a": spec, "b": spec}, out_dir / "warm",
                            scheduler=cluster.scheduler_address)
        warm = time.perf_counter() - t
        # the per-field tasks alone (no merge, no products): 4 fields
        from distributed import Client

        from m31clusters.survey.search import _search_one

        task = {"g": str(spec["g"]), "i": str(spec["i"]), "catalog": str(spec["catalog"]),
                "field": None, "options": {"model": None}}
        with Client(cluster) as client:
            t = time.perf_counter()
            client.gather([client.submit(_search_one, task, pure=False) for _ in range(4)])
            raw = time.perf_counter() - t
    return cold, warm, raw, res


def _fields_within(radius_kpc):
    from m31clusters.geometry import pandas_fields

    f = pandas_fields()
    col = "Rproj" if "Rproj" in f.colnames else "rproj"
    return int((f[col] < radius_kpc).sum())


def _stage_table(label, timings, scale):
    rows = [f"  {k:9s} {v * scale:8.1f} s" for k, v in timings.items()]
    return f"{label}\n" + "\n".join(rows) + f"\n  {'total':9s} {sum(timings.values()) * scale:8.1f} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n-ccds", type=int, default=FULL_CCDS)
    parser.add_argument("--ccd-shape", type=int, nargs=2, default=(4612, 2048))
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "m31clusters-bench-search"))
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_dir", help=argparse.SUPPRESS)
    parser.add_argument("--_n", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(args._child, Path(args._dir), args._n)
        return
    os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp())
    d = _simulate(args.workdir, args.n_ccds, tuple(args.ccd_shape))
    scale = FULL_CCDS / args.n_ccds
    note = "" if scale == 1 else f" (measured on {args.n_ccds} CCDs, scaled x{scale:g} to 36)"
    print(f"field m{FIELD}: {args.n_ccds} CCDs of {tuple(args.ccd_shape)}, cpus {os.cpu_count()}")

    cat1 = _run_child("catalogue", d, n_fields=2)
    first, second = cat1["fields"]
    print(f"\n1. with the catalogue: {second['counts']['sources']} sources, "
          f"{second['counts']['passed_cuts']} pass the cuts, "
          f"{second['counts']['candidates']} candidates")
    print(f"   first field in a process {first['wall']:.1f} s (model load, JIT), "
          f"next {second['wall']:.1f} s -> {second['wall'] * scale:.0f} s per 36-CCD field"
          f"{note}  (target <= 180 s)")
    print(_stage_table("   stages, second field:", second["timings"], scale))
    print(f"\n3. peak memory of one process: 2 fields in a row {cat1['peak_rss_gb']:.2f} GB")
    one = _run_child("catalogue", d, n_fields=1)
    print(f"   1 field {one['peak_rss_gb']:.2f} GB (target <= 4 GB, independent of fields)")

    if not args.skip_detection:
        det = _run_child("detection", d)
        f = det["fields"][0]
        print(f"\n2. with detection: {f['counts']['sources']} sources detected, "
              f"{f['counts']['passed_cuts']} pass the cuts; {f['wall']:.1f} s -> "
              f"{f['wall'] * scale:.0f} s per 36-CCD field{note}  (target <= 900 s); "
              f"peak {det['peak_rss_gb']:.2f} GB")
        print(_stage_table("   stages:", f["timings"], scale))

    if not args.skip_scaling:
        with tempfile.TemporaryDirectory() as tmp:
            c1, t1, raw1, _ = _scaling(d, 1, Path(tmp) / "one")
            c2, t2, raw2, r2 = _scaling(d, 2, Path(tmp) / "two")
        print("\n4. two fields (catalogue) with search_fields on local worker processes:")
        print(f"   warm (workers started, model loaded): 1 worker {t1:.1f} s, 2 workers "
              f"{t2:.1f} s: {t1 / t2:.2f}x  (target >= 1.6x)")
        print(f"   cold (starting the workers, loading the model in each): 1 worker {c1:.1f} s, "
              f"2 workers {c2:.1f} s: {c1 / c2:.2f}x")
        print(f"   write stage {r2.timings.get('write', 0):.1f} s")
        print(f"   the per-field tasks alone (4 fields, warm): 1 worker {raw1:.1f} s, 2 workers "
              f"{raw2:.1f} s: {raw1 / raw2:.2f}x")
    else:
        t1 = t2 = None

    n30 = _fields_within(30)
    per_field = second["wall"] * scale
    speedup2 = (t1 / t2) if t2 else None
    print(f"\n5. the paper's 30 kpc search: {n30} fields with their centre within 30 kpc, "
          f"{per_field:.0f} s per field with catalogues (one process):")
    print(f"   one worker: {n30 * per_field / 3600:.2f} h")
    if speedup2 is not None and speedup2 > 1:
        eff = speedup2 / 2
        print(f"   this machine (2 workers, {speedup2:.2f}x): "
              f"{n30 * per_field / speedup2 / 3600:.2f} h; 16-core node (16 workers at the "
              f"{eff:.0%} efficiency measured from 1 to 2): "
              f"{n30 * per_field / (16 * eff) / 3600:.2f} h")
    else:
        print("   2-worker speed-up not measured (or below 1: a machine busy with other "
              f"work); with ideal scaling: 2 workers {n30 * per_field / 2 / 3600:.2f} h, "
              f"16 workers {n30 * per_field / 16 / 3600:.2f} h")


if __name__ == "__main__":
    main()
