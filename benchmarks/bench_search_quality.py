"""
Catalogue-level quality of the search (issue 15): purity, completeness and
calibration of the *written* candidate list at the survey's real base rate.

Recipe (the calls a user makes on real PAndAS stacks, on simulated fields):

1. training field(s): PAndAS field 266 (the PHAT field with most clusters)
   simulated with the real PHAT population placed at its real positions,
   magnitudes and sizes (``simulate_field(clusters=load_phat_clusters())``);
   sources found by ``detect_sources`` + ``measure`` (so the negatives are the
   stars, blends, galaxies, fragments, saturated stars and chip-edge stamps
   the search meets); ``build_training_set`` with the PHAT catalogue as
   positives inside the PHAT footprint, g < 21, spatially disjoint
   train/validation tiles;
2. network: ``wang2022`` on 32x32 g+i stamps, optionally pretrained on
   ``simulate_stamps``; a second round on the training set resampled so that
   the examples the first round gets wrong count ``--hard-factor`` times;
3. base rate: clusters per g < 21 source, counted on other simulated fields
   within 30 kpc (scene population, catalogue detections; never the test
   fields); ``calibrate`` (temperature + prior shift to that base rate) and
   ``select_threshold(base_rate=...)`` on the validation tiles;
4. test: other fields within 30 kpc (disc and outer, other seeds, the
   scene's own cluster population, never seen in training), the search's
   steps (detect, measure, g < 21, Rproj < 30 kpc, stamps mostly on the
   image, Conf >= threshold, ``merge_fragments``, ``deduplicate``), then
   ``evaluate_catalog`` against the truth: purity and completeness overall,
   by size, magnitude and field, false-positive types, and the ECE of
   ``Conf`` on the test sources;
5. the demo's default field through ``run_demo`` with the new model and with
   ``--before`` (e.g. the previously shipped one), evaluated the same way.

Run by hand (cached in ``--out``; takes ~30-60 min on 2 shared cores)::

    python benchmarks/bench_search_quality.py --out /tmp/bsq
    python benchmarks/bench_search_quality.py --out /tmp/bsq --demo-only --model M.zip

The speed benchmark of the search is ``bench_search.py``.
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
from astropy import units as u  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.table import Table, vstack  # noqa: E402

TRAIN_FIELDS = [(266, 101)]  # (field, seed), PHAT population
#: (field, seed, CCDs; None: --test-ccds), the scene's own population
TEST_FIELDS = [(249, 201, None), (265, 202, None), (233, 203, None), (256, 204, None),
               (248, 205, 6)]
RATE_FIELDS = [(228, 301), (257, 302), (254, 303), (214, 304), (232, 305)]
STAMP = 32
APERTURE = 1.5 * u.arcsec


def _log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# fields: simulation, detection and photometry (cached)
# ----------------------------------------------------------------------------


def detect_and_measure(images):
    """Detect on each i CCD and measure g and i there (the search's sources)."""
    from m31clusters.catalog import Catalog
    from m31clusters.exceptions import NoDetectionsWarning, OffImageWarning
    from m31clusters.geometry import pandas_field, projected_radius
    from m31clusters.photometry import detect_sources, measure

    tables = []
    with fits.open(images["g"]) as hg, fits.open(images["i"]) as hi:
        ext = [k for k, h in enumerate(hi) if h.is_image and h.header.get("NAXIS", 0) == 2]
        for ccd, k in enumerate(ext):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NoDetectionsWarning)
                found = detect_sources(hi[k])
            if len(found) == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OffImageWarning)
                phot = measure({"g": hg[k], "i": hi[k]}, found["coord"], aperture=APERTURE)
            phot["ccd"] = ccd
            phot["area"] = found["area"]
            tables.append(phot)
    src = Catalog(vstack(tables, metadata_conflicts="silent"))
    src["PAndAS"] = np.atleast_1d(pandas_field(src["coord"]))
    src["Rproj"] = projected_radius(src["coord"])
    return src


def field(out, fld, seed, n_ccds, ccd, clusters=None, detect=True):
    """Simulated field *fld* (cached in out/m###_s<seed>): images, truth, sources."""
    from m31clusters.simulate import simulate_field

    d = Path(out) / f"m{fld:03d}_s{seed}"
    truth_path = d / f"m{fld:03d}_truth.ecsv"
    src_path = d / "sources.ecsv"
    images = {b: d / f"m{fld:03d}_{b}.fit" for b in "gi"}
    if not truth_path.exists():
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        simulate_field(fld, n_ccds=n_ccds, ccd_shape=(ccd, ccd), seed=seed, out_dir=d,
                       clusters=clusters, overwrite=True)
        _log(f"simulated m{fld:03d} seed {seed} in {time.perf_counter() - t:.0f} s")
    truth = Table.read(truth_path)
    sources = None
    if detect:
        if not src_path.exists():
            t = time.perf_counter()
            sources = detect_and_measure(images)
            Table(sources).write(src_path, format="ascii.ecsv", overwrite=True)
            _log(f"m{fld:03d}: {len(sources)} sources in {time.perf_counter() - t:.0f} s")
        from m31clusters.catalog import Catalog

        sources = Catalog(Table.read(src_path, format="ascii.ecsv"))
    return images, truth, sources, d


def base_rate(out, n_ccds, ccd, mag_limit=21.0):
    """Clusters per g < 21 catalogue source on the RATE_FIELDS (scene population, in out/rate)."""
    from m31clusters.io.pandas_ascd import read_pandas_ascd

    n_cl = n_src = 0
    for fld, seed in RATE_FIELDS:
        _, truth, _, d = field(Path(out) / "rate", fld, seed, n_ccds, ccd, detect=False)
        cat = read_pandas_ascd(d / f"m{fld:03d}p.ascd")
        n_src += int(np.sum(np.asarray(cat["g"]) < mag_limit))
        t = truth[truth["on_ccd"] & (truth["kind"] == "cluster")]
        n_cl += int(np.sum(np.asarray(t["gmag"]) < mag_limit))
    return n_cl / n_src, n_cl, n_src


# ----------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------


def train(args, out, rate):
    """Training set by the recipe; fit, hard-example round, calibration, threshold."""
    from m31clusters.classifier import ClusterClassifier
    from m31clusters.datasets import in_phat_footprint, load_phat_clusters
    from m31clusters.training import build_training_set, train_classifier

    phat = load_phat_clusters()
    (fld, seed), = TRAIN_FIELDS
    images, truth, sources, _ = field(out, fld, seed, args.train_ccds, args.ccd, clusters=phat)
    ts = build_training_set(images, sources, phat, footprint=in_phat_footprint,
                            mag_limit=args.mag_limit, size=STAMP, splits=(0.7, 0.3, 0.0),
                            tile_size=1 * u.arcmin, seed=seed)
    _log(f"training set m{fld:03d}: {dict(ts.table.meta)}")
    clf = None
    t = time.perf_counter()
    if args.init:
        clf = ClusterClassifier.load(args.init)
    elif args.pretrain:
        from m31clusters.simulate import simulate_stamps

        clf = ClusterClassifier(args.architecture, input_shape=(STAMP, STAMP, 2),
                                bands=("g", "i"), normalization="asinh", seed=args.seed)
        st, tt = simulate_stamps(args.pretrain, size=STAMP, seed=args.seed,
                                 mag_range=(15.0, 21.5))
        clf.fit(st, tt["label"], epochs=args.pretrain_epochs, batch_size=64, seed=args.seed)
        _log(f"pretrained on {args.pretrain} simulated stamps in {time.perf_counter() - t:.0f} s")
    clf, info = train_classifier(ts, classifier=clf, architecture=args.architecture,
                                 epochs=args.epochs, hard_epochs=args.epochs2,
                                 hard_factor=args.hard_factor, patience=args.patience,
                                 base_rate=rate, seed=args.seed)
    info["fit_seconds"] = round(time.perf_counter() - t, 1)
    info["training_set"] = {k: v for k, v in ts.table.meta.items() if k.startswith("n_")}
    _log(f"fitted: {info}")
    return clf, info


def ece(prob, labels, n_bins=10):
    """Expected calibration error of Conf (the library's)."""
    from m31clusters.classifier import expected_calibration_error

    return float(expected_calibration_error(prob, labels, n_bins=n_bins))


# ----------------------------------------------------------------------------
# the search's catalogue on a field, and its evaluation
# ----------------------------------------------------------------------------


def catalogue(images, sources, clf, *, mag_limit=21.0, max_radius=30 * u.kpc,
              merge=True):
    """The search's steps on one field's sources: cuts, Conf, threshold, merging."""
    from m31clusters.crossmatch import deduplicate
    from m31clusters.cutout import Cutout
    from m31clusters.exceptions import OffImageWarning
    from m31clusters.fragments import merge_fragments

    g = np.ma.filled(np.ma.asarray(sources["gmag"], dtype=float), np.nan)
    cut = sources[(g < mag_limit) & (sources["Rproj"] < max_radius)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OffImageWarning)
        stamps = Cutout.from_images(images, cut["coord"], size=STAMP, bands=clf.bands,
                                    progress=False)
    ok = stamps.valid_fraction.min(axis=1) > 0.5
    cut, stamps = cut[ok], stamps[np.flatnonzero(ok)]
    cut["Conf"] = clf.predict_proba(stamps)
    cands = cut[cut["Conf"] >= clf.threshold]
    n_raw = len(cands)
    if merge and len(cands):
        cands = merge_fragments(cands, size_column="FWHM", keep="min:gmag")
    if len(cands):
        cands = deduplicate(cands, radius=1 * u.arcsec, keep="max:Conf")
    return cut, cands, n_raw


def source_labels(scored, truth, radius=1 * u.arcsec):
    """1 where a scored source is a true cluster's nearest source (for the ECE)."""
    from m31clusters.evaluation import match_one_to_one

    t = truth[truth["on_ccd"] & (truth["kind"] == "cluster")]
    from m31clusters.utils._tables import table_skycoord

    idx, _ = match_one_to_one(scored["coord"], table_skycoord(t), radius)
    return (idx >= 0).astype(int)


def evaluate_fields(args, out, clf):
    from m31clusters.evaluation import evaluate_catalog

    rows, cands_all, truths, scored_all = [], [], [], []
    for fld, seed, n in TEST_FIELDS:
        images, truth, sources, _ = field(out, fld, seed, n or args.test_ccds, args.ccd)
        scored, cands, n_raw = catalogue(images, sources, clf, mag_limit=args.mag_limit)
        ev = evaluate_catalog(cands, truth, sources=sources, size_column="FWHM")
        s = ev.summary[0]
        scored["label"] = source_labels(scored, truth)
        rows.append((fld, seed, float(s["n_true"]), float(s["n_recovered"]), s["completeness"],
                     float(s["n_candidates"]), float(s["n_correct"]), s["purity"],
                     n_raw, len(scored), int(scored["label"].sum()),
                     json.dumps(ev.false_positives)))
        cands["field_seed"] = f"{fld}_{seed}"
        truth = truth[truth["on_ccd"]]
        truth["field_seed"] = f"{fld}_{seed}"
        cands_all.append(cands)
        truths.append(truth)
        scored_all.append(scored)
    by_field = Table(rows=rows, names=("field", "seed", "n_true", "n_recovered", "completeness",
                                       "n_candidates", "n_correct", "purity", "n_before_merge",
                                       "n_scored", "n_scored_clusters", "false_positives"))
    cands = vstack(cands_all, metadata_conflicts="silent")
    truth = vstack(truths, metadata_conflicts="silent")
    scored = vstack(scored_all, metadata_conflicts="silent")
    ev = evaluate_catalog(cands, truth, size_column="FWHM")
    p = np.asarray(scored["Conf"], dtype=float)
    y = np.asarray(scored["label"], dtype=int)
    return by_field, ev, ece(p, y), p, y


def evaluate_demo(model, out_dir):
    """run_demo on its default field with *model*; evaluate its written catalogue."""
    from m31clusters.catalog import Catalog
    from m31clusters.demo import run_demo
    from m31clusters.evaluation import evaluate_catalog

    res = run_demo(out_dir, model=model, overwrite=True, progress=False)
    truth = Table.read(Path(res.images["g"]).parent / "m248_truth.ecsv")
    cands = Catalog.read_cds(res.files["readme"], res.files["data"])
    return evaluate_catalog(cands, truth, sources=res.sources)


def _print_eval(title, ev):
    print(f"\n== {title}: purity {ev.purity:.3f}, completeness {ev.completeness:.3f}, "
          f"{ev.inspection_budget:.2f} candidates per cluster found")
    print("false positives:", ev.false_positives)
    ev.summary.pprint(max_lines=-1, max_width=-1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--out", type=Path, required=True, help="cache and output directory")
    p.add_argument("--ccd", type=int, default=1024, help="side of the simulated CCDs")
    p.add_argument("--train-ccds", type=int, default=10)
    p.add_argument("--test-ccds", type=int, default=3)
    p.add_argument("--rate-ccds", type=int, default=9, help="CCDs per base-rate field")
    p.add_argument("--mag-limit", type=float, default=21.0)
    p.add_argument("--architecture", default="wang2022")
    p.add_argument("--init", help="start from this saved classifier")
    p.add_argument("--pretrain", type=int, default=0, help="simulate_stamps to pretrain on")
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--epochs2", type=int, default=15)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--hard-factor", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--model", type=Path, help="evaluate this model instead of training one")
    p.add_argument("--save-model", type=Path, help="write the trained model here")
    p.add_argument("--before", type=Path, help="also run the demo with this model")
    p.add_argument("--demo-only", action="store_true")
    p.add_argument("--prepare-only", choices=("all", "train", "test"),
                   help="simulate and detect only (the training, the test fields or all)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from m31clusters.classifier import ClusterClassifier
    from m31clusters.datasets import load_phat_clusters

    if args.prepare_only:
        phat = load_phat_clusters()
        if args.prepare_only in ("all", "train"):
            for fld, seed in TRAIN_FIELDS:
                field(args.out, fld, seed, args.train_ccds, args.ccd, clusters=phat)
        if args.prepare_only in ("all", "test"):
            for fld, seed, n in TEST_FIELDS:
                field(args.out, fld, seed, n or args.test_ccds, args.ccd)
        print("base rate %.4f (%d clusters / %d sources)" % base_rate(args.out, args.rate_ccds,
                                                                     args.ccd))
        return 0
    results = {}
    if args.demo_only:
        clf = args.model
    else:
        rate, n_cl, n_src = base_rate(args.out, args.rate_ccds, args.ccd, args.mag_limit)
        print(f"base rate (clusters per g < {args.mag_limit:g} source, {len(RATE_FIELDS)} "
              f"fields): {rate:.4f} ({n_cl} / {n_src})")
        if args.model:
            clf = ClusterClassifier.load(args.model)
            info, how = {}, "as saved"
        else:
            clf, info = train(args, args.out, rate)
            how = info["calibration"]
            if args.save_model:
                clf.save(args.save_model, overwrite=True)
        print(f"training: {info}\ncalibration: {how}; threshold {clf.threshold:.3f}")
        by_field, ev, e, _, _ = evaluate_fields(args, args.out, clf)
        print("\n== test fields")
        by_field.pprint(max_lines=-1, max_width=-1)
        _print_eval("all test fields", ev)
        print(f"ECE of Conf on the {len(TEST_FIELDS)} test fields' g < {args.mag_limit:g} "
              f"sources: {e:.4f}")
        results.update(purity=ev.purity, completeness=ev.completeness, ece=e,
                       threshold=clf.threshold, base_rate=rate)
    ev_demo = evaluate_demo(clf, args.out / "demo_after")
    _print_eval("demo field m248 (run_demo, this model)", ev_demo)
    results.update(demo_purity=ev_demo.purity, demo_completeness=ev_demo.completeness)
    if args.before:
        ev_b = evaluate_demo(args.before, args.out / "demo_before")
        _print_eval(f"demo field m248 (run_demo, {args.before.name})", ev_b)
        results.update(demo_before_purity=ev_b.purity,
                       demo_before_completeness=ev_b.completeness)
    print("\nsummary:", json.dumps({k: round(float(v), 4) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
