"""
Catalogue-level quality of the search (issue 15): purity, completeness and
calibration of the *written* candidate list at the survey's real base rate.

Recipe (the calls a user makes on real PAndAS stacks, on simulated fields):

1. training field: PAndAS field 266 (the PHAT field with most clusters), a
   full-size 36-CCD field simulated with the real PHAT population placed at
   its real positions, magnitudes and sizes
   (``simulate_field(clusters=load_phat_clusters())``), its CASU-style
   catalogue ``m266p.ascd`` as the source list, ``build_training_set`` with
   the PHAT catalogue as positives inside the PHAT footprint, g < 21,
   spatially disjoint train/validation tiles; the negatives thinned at
   random (``TrainingSet.thin``, ``--n-neg``, class-blind, as one would on
   real data);
2. the same field on 10 small CCDs through ``detect_sources`` + ``measure``
   (the stamps of detections: fragments, blends, saturated stars); and outer
   fields whose clusters are all known
   (``build_training_set(..., footprint="images", allow_one_class=True)``),
   simulated with 3-5 times the background-galaxy density and 15-150 times
   the old globular clusters, standing in for more outer fields and for the
   RBC/Huxor globulars of the whole survey as positives: the PHAT footprint
   holds ~1 background galaxy per cluster at g < 21, the survey 3-10, few
   old globulars, and galaxies are what the search confuses with clusters;
   three copies of the detected field with 40 artificial clusters per CCD
   each (``inject_field``: g 15-21, 0.5-10 pc, 70% young), so that the
   positives cover sizes, colours and brightness beyond PHAT's (the copies
   and the detected field share pixels: they train only, and validation is
   the ascd field's and the outer fields' own tiles);
   with ``--inject-rate-fields``, also copies of the base-rate fields (step 4;
   not those of the test lists) with 40 artificial clusters per CCD, detected
   and measured (disc and outer fields at every radius; training only);
   all joined with ``TrainingSet.concatenate``;
3. network: ``wang2022`` on 32x32 g+i stamps normalised with
   ``asinh_flux`` (a fixed per-band scale from the zero points,
   ``zeropoint_scales``) so that the network sees each source's brightness
   and colour, trained from scratch; a second round with the hard examples
   oversampled ``--hard-factor`` times; with ``--seeds S1 S2 ...`` one such
   network per seed (cached in ``OUT/members``) and their average
   (``ClusterClassifier.ensemble``), calibrated and thresholded in step 4;
4. base rate: clusters per g < 21 catalogue source within 30 kpc, counted
   on all 17 fields whose centre is within 30 kpc (9 small CCDs each, the
   scene's population, seeds of their own; the survey's sources are mostly
   in the crowded inner disc, so outer fields alone underestimate it);
   ``calibrate`` (temperature + prior shift to that base rate) and
   ``select_threshold(base_rate=...)`` on the validation tiles;
5. test fields, never seen in training, the scene's own cluster population:
   (a) disc fields 233 and 249 (9 CCDs of 2048^2, other seeds; ~100
   clusters with g < 21) through their ``m###p.ascd`` catalogues, as the
   paper's search; (b) fields 249, 265, 233, 256 and 248 (small CCDs,
   other seeds) through ``detect_sources`` + ``measure``.  The search's steps
   (g < 21, Rproj < 30 kpc, stamps mostly on the image, Conf >= threshold,
   ``merge_fragments``, ``deduplicate``), then ``evaluate_catalog`` against
   the truth: purity and completeness overall, by size, magnitude, field and
   crowding, false-positive types, and the ECE of ``Conf`` on the test
   sources;
6. the demo's default field through ``run_demo`` with the new model and with
   ``--before`` (e.g. the previously shipped one), evaluated the same way.

Run by hand (cached in ``--out``; the simulations take ~25 min, training
~25 min on 2 cores)::

    python benchmarks/bench_search_quality.py --out /tmp/bsq --save-model M.zip
    python benchmarks/bench_search_quality.py --out /tmp/bsq --model M.zip
    python benchmarks/bench_search_quality.py --out /tmp/bsq --demo-only --model M.zip
    python benchmarks/bench_search_quality.py --out /tmp/bsq --model M.zip --tta 8

(the last: test-time augmentation, ``--tta-above`` 0.1 by default, calibrated
and thresholded again on the validation split; for the shipped model 0.01, 0.05
and 0.1 give the same catalogue, and ``bench_classifier.py --tta`` measures
what each costs).

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

#: (field, seed): full-size 36-CCD field with the PHAT population, its ascd catalogue
TRAIN_FIELD = (266, 131)
#: seed of the same field simulated on 10 small CCDs, detected and measured
DETECTED_TRAIN_SEED = 101
#: (field, seed, CCDs, CCD side, galaxy boost, GC boost): outer fields whose clusters are
#: all known (the truth), with more background galaxies and old globular clusters than the
#: scene's own (standing in for more outer fields and the RBC/Huxor GCs of the whole survey)
OUTER_FIELDS = [(279, 111, 10, 1024, 5, 1), (285, 113, 6, 2048, 5, 1), (212, 114, 6, 2048, 5, 1),
                (235, 112, 6, 2048, 5, 1), (286, 141, 6, 2048, 5, 15), (276, 142, 6, 2048, 5, 15),
                (210, 143, 6, 2048, 5, 15), (228, 144, 6, 2048, 5, 15),
                (207, 151, 6, 2048, 3, 150), (301, 152, 6, 2048, 3, 150),
                (254, 153, 6, 2048, 3, 150)]
#: seeds of the copies of the detected training field with artificial clusters injected
INJECT_SEEDS = (171, 172, 173)
#: first seed of the copies of the base-rate fields with artificial clusters injected
#: (training only; the fields of the test lists are left out)
RATE_INJECT_SEED = 181
#: (field, seed, CCDs, CCD side): test fields through their ascd catalogues
ASCD_TEST_FIELDS = [(233, 401, 9, 2048), (249, 402, 9, 2048)]
#: (field, seed, CCDs; None: --test-ccds), detected and measured test fields
TEST_FIELDS = [(249, 201, None), (265, 202, None), (233, 203, None), (256, 204, None),
               (248, 205, 6)]
#: (field, seed): every PAndAS field whose centre lies within 30 kpc, other seeds than the
#: training and test fields (the same sky for some of them, never the same pixels),
#: simulated with the scene's own clusters on --rate-ccds CCDs each: the survey's base rate
RATE_FIELDS = [(f, 501 + k) for k, f in enumerate(
    (248, 249, 266, 265, 228, 257, 235, 233, 254, 285, 232, 279, 286, 276, 214, 256, 209))]
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
    """Simulated field *fld* (cached in out/m###_s<seed>): images, truth, detected sources."""
    images, truth, d = sim_field(out, "", fld, seed, n_ccds, ccd, clusters=clusters)
    src_path = d / "sources.ecsv"
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


def injected_field(out, images, seed, n_per_ccd, young_fraction):
    """
    A copy of *images* (cached in out/inject_s<seed>) with artificial clusters added to
    every CCD by ``inject_field`` (g 15-21, half-light radii 0.5-10 pc log-uniform,
    young and old), detected and measured: images, sources, injected clusters (SkyCoord).
    """
    from astropy.coordinates import SkyCoord

    from m31clusters.catalog import Catalog
    from m31clusters.simulate import inject_field

    d = Path(out) / f"inject_s{seed}"
    paths = {b: d / Path(images[b]).name for b in "gi"}
    truth_path, src_path = d / "injected.ecsv", d / "sources.ecsv"
    if not truth_path.exists():
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        paths, truth = inject_field(images, d, n_per_ccd, seed=seed, mag_range=(15.0, 21.0),
                                    young_fraction=young_fraction, overwrite=True)
        sources = detect_and_measure(paths)
        Table(sources).write(src_path, format="ascii.ecsv", overwrite=True)
        truth.write(truth_path, overwrite=True)
        _log(f"injected {n_per_ccd} clusters per CCD (seed {seed}), {len(sources)} sources "
             f"in {time.perf_counter() - t:.0f} s")
    truth = Table.read(truth_path)
    sources = Catalog(Table.read(src_path, format="ascii.ecsv"))
    return paths, sources, SkyCoord(truth["ra"], truth["dec"], unit="deg")


def base_rate(out, n_ccds, ccd, mag_limit=21.0, max_radius=30 * u.kpc):
    """
    Clusters per catalogue source with g < 21 within 30 kpc on the RATE_FIELDS (the
    scene's own clusters, in out/rate): the survey's sources are mostly in the crowded
    inner disc, so every field within 30 kpc takes part, each with the same area.
    """
    from astropy.coordinates import SkyCoord

    from m31clusters.geometry import projected_radius

    n_cl = n_src = 0
    for fld, seed in RATE_FIELDS:
        _, truth, _, d = field(Path(out) / "rate", fld, seed, n_ccds, ccd, detect=False)
        src = ascd_sources(d / f"m{fld:03d}p.ascd")
        g = np.asarray(src["gmag"].value)
        n_src += int(np.sum((g < mag_limit) & (src["Rproj"] < max_radius)))
        t = truth[truth["on_ccd"] & (truth["kind"] == "cluster")]
        r = projected_radius(SkyCoord(t["ra"], t["dec"], unit="deg"))
        n_cl += int(np.sum((np.asarray(t["gmag"]) < mag_limit) & (r < max_radius)))
    return n_cl / n_src, n_cl, n_src


# ----------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------


def sim_field(out, group, fld, seed, n_ccds, side, *, clusters=None, galaxy_boost=1.0,
              gc_boost=1.0):
    """A simulated field in out/<group>/m###_s<seed> (cached): images, truth, its directory."""
    from m31clusters.simulate import M31_SCENE, simulate_field

    d = Path(out) / group / f"m{fld:03d}_s{seed}"
    truth_path = d / f"m{fld:03d}_truth.ecsv"
    if not truth_path.exists():
        d.mkdir(parents=True, exist_ok=True)
        scene = M31_SCENE.replace(galaxy_density=M31_SCENE.galaxy_density * galaxy_boost,
                                  gc_number=M31_SCENE.gc_number * gc_boost)
        shape = (4612, 2048) if side is None else (side, side)
        t = time.perf_counter()
        simulate_field(fld, n_ccds=n_ccds, ccd_shape=shape, seed=seed, out_dir=d, scene=scene,
                       clusters=clusters, overwrite=True)
        _log(f"simulated {group} m{fld:03d} seed {seed} in {time.perf_counter() - t:.0f} s")
    images = {b: d / f"m{fld:03d}_{b}.fit" for b in "gi"}
    return images, Table.read(truth_path), d


def ascd_sources(path):
    """The search's source list from a CASU catalogue: coord, g, i, Rproj."""
    from astropy.coordinates import SkyCoord

    from m31clusters.catalog import Catalog
    from m31clusters.geometry import projected_radius
    from m31clusters.io.pandas_ascd import read_pandas_ascd

    cat = read_pandas_ascd(path)
    t = Catalog()
    t["coord"] = SkyCoord(np.asarray(cat["RA"], float), np.asarray(cat["Dec"], float),
                          unit="deg")
    t["gmag"] = np.asarray(cat["g"], float) * u.mag
    t["imag"] = np.asarray(cat["i"], float) * u.mag
    t["Rproj"] = projected_radius(t["coord"])
    return t


def _zeropoints(images):
    with fits.open(images["g"]) as hg, fits.open(images["i"]) as hi:
        return {"g": float(hg[1].header["MAGZPT"]), "i": float(hi[1].header["MAGZPT"])}


def training_set(args, out):
    """The training set by the recipe (every field's, joined) and the training images."""
    from m31clusters.cutout._common import _concat_skycoords
    from m31clusters.datasets import in_phat_footprint, load_phat_clusters
    from m31clusters.training import TrainingSet, build_training_set

    phat = load_phat_clusters()
    fld, seed = TRAIN_FIELD
    images, _, d = sim_field(out, "train", fld, seed, 36, None, clusters=phat)
    sources = ascd_sources(d / f"m{fld:03d}p.ascd")
    ts = build_training_set(images, sources, phat, footprint=in_phat_footprint,
                            mag_limit=args.mag_limit, size=STAMP, splits=(0.7, 0.3, 0.0),
                            tile_size=1 * u.arcmin, seed=seed)
    _log(f"training set m{fld:03d}: {[tuple(r) for r in ts.counts()]}")
    sets = [ts.thin({"train": args.n_neg, "val": args.n_neg // 2}, seed=seed)]
    # the same field detected and measured (the search without a catalogue): the stamps of
    # detections (fragments, blends, saturated stars) besides the catalogue's
    # (training split only: its copies with artificial clusters below share its pixels)
    dimg, _, dsrc, _ = field(out, fld, DETECTED_TRAIN_SEED, 10, 1024, clusters=phat)
    detected_splits = (1.0, 0.0, 0.0) if args.inject_copies else (0.7, 0.3, 0.0)
    sets.append(build_training_set(dimg, dsrc, phat, footprint=in_phat_footprint,
                                   mag_limit=args.mag_limit, size=STAMP,
                                   splits=detected_splits, tile_size=1 * u.arcmin,
                                   seed=DETECTED_TRAIN_SEED))
    _log(f"detected m{fld:03d}: {[tuple(r) for r in sets[-1].counts()]}")
    # artificial clusters injected into copies of the detected field: positives of every
    # size, colour and brightness the survey may hold, beyond PHAT's (few clusters larger
    # than 4 pc, brighter than g = 17 or as blue as the youngest); PHAT's own clusters stay
    # positives, the rest of the field's detections negatives.  The copies share their
    # pixels with each other and with the detected field, so all of them train only: the
    # validation (calibration, threshold) is the ascd field's and the outer fields' own.
    for iseed in INJECT_SEEDS[: args.inject_copies]:
        iimg, isrc, icoord = injected_field(out, dimg, iseed, args.inject_per_ccd,
                                            args.inject_young)
        known = _concat_skycoords([phat["coord"], icoord])
        sets.append(build_training_set(iimg, isrc, known, footprint=in_phat_footprint,
                                       mag_limit=args.mag_limit, size=STAMP,
                                       splits=(1.0, 0.0, 0.0), tile_size=1 * u.arcmin,
                                       seed=iseed))
        _log(f"injected s{iseed}: {[tuple(r) for r in sets[-1].counts()]}")
    sets.extend(rate_injected_sets(args, out))
    for nf, ns, nc, side, gal, gc in OUTER_FIELDS:
        nimg, ntruth, nd = sim_field(out, "outer", nf, ns, nc, side, galaxy_boost=gal,
                                     gc_boost=gc)
        nsrc = ascd_sources(nd / f"m{nf:03d}p.ascd")
        known = ntruth[ntruth["on_ccd"] & (ntruth["kind"] == "cluster")]
        sets.append(build_training_set(nimg, nsrc, known, footprint="images",
                                       mag_limit=args.mag_limit, size=STAMP,
                                       splits=(0.7, 0.3, 0.0), tile_size=1 * u.arcmin,
                                       seed=ns, allow_one_class=True))
        _log(f"outer field m{nf:03d}: {[tuple(r) for r in sets[-1].counts()]}")
    ts = TrainingSet.concatenate(sets)
    _log(f"training set: {[tuple(r) for r in ts.counts()]}")
    return ts, images


def rate_injected_sets(args, out):
    """
    Training sets from copies of the base-rate fields with artificial clusters injected
    (``--inject-rate-fields``): disc and outer fields at every radius within 30 kpc, with
    their own crowding, disc stars and galaxies, through detection and photometry; the
    fields of the test lists are left out.  Positives: the injected clusters and the
    field's own (known in a simulation; on real stacks, the literature's); training split
    only (the copies share their pixels with the base-rate fields).
    """
    from m31clusters.cutout._common import _concat_skycoords
    from m31clusters.training import build_training_set
    from m31clusters.utils._tables import table_skycoord

    if not args.inject_rate_fields:
        return []
    test = {f for f, *_ in ASCD_TEST_FIELDS} | {f for f, *_ in TEST_FIELDS}
    sets = []
    for k, (fld, seed) in enumerate(RATE_FIELDS):
        if fld in test:
            continue
        images, truth, _, _ = field(Path(out) / "rate", fld, seed, args.rate_ccds, args.ccd,
                                    detect=False)
        iseed = RATE_INJECT_SEED + k
        iimg, isrc, icoord = injected_field(Path(out) / "rate_inject", images, iseed,
                                            args.inject_per_ccd, args.inject_young)
        own = truth[truth["on_ccd"] & (truth["kind"] == "cluster")]
        known = _concat_skycoords([table_skycoord(own), icoord])
        sets.append(build_training_set(iimg, isrc, known, footprint="images",
                                       mag_limit=args.mag_limit, size=STAMP,
                                       splits=(1.0, 0.0, 0.0), tile_size=1 * u.arcmin,
                                       seed=iseed))
        _log(f"rate field m{fld:03d} injected s{iseed}: {[tuple(r) for r in sets[-1].counts()]}")
    return sets


def train(args, out, rate, prepared=None):
    """
    Training set by the recipe (or *prepared*, what `training_set` returned);
    fit, hard-example round, calibration, threshold.
    """
    from m31clusters.classifier import ClusterClassifier
    from m31clusters.cutout import zeropoint_scales
    from m31clusters.training import train_classifier

    ts, images = training_set(args, out) if prepared is None else prepared
    t = time.perf_counter()
    if args.init:
        clf = ClusterClassifier.load(args.init)
    else:
        norm = {"method": "asinh_flux",
                "scale": zeropoint_scales(_zeropoints(images), scale=args.flux_scale)}
        clf = ClusterClassifier(args.architecture, input_shape=(STAMP, STAMP, 2),
                                bands=("g", "i"), normalization=norm, seed=args.seed)
    clf, info = train_classifier(ts, classifier=clf, epochs=args.epochs,
                                 hard_epochs=args.epochs2, hard_factor=args.hard_factor,
                                 patience=args.patience, base_rate=rate, seed=args.seed,
                                 progress=args.progress)
    info["fit_seconds"] = round(time.perf_counter() - t, 1)
    info["training_set"] = {k: v for k, v in ts.table.meta.items() if k.startswith("n_")}
    _log(f"fitted: {info}")
    return clf, info


def train_ensemble(args, out, rate):
    """
    One network per seed of ``--seeds`` by the recipe (each cached as
    out/members/<architecture>_seed<N>.zip), their `ClusterClassifier.ensemble`,
    calibrated and thresholded at the base rate on the recipe's validation split.
    """
    import argparse as _argparse

    from m31clusters.classifier import ClusterClassifier

    prepared = training_set(args, out)  # the same for every seed: built once
    members, infos = [], {}
    for seed in args.seeds:
        path = Path(out) / "members" / f"{args.architecture}_seed{seed}.zip"
        if path.exists():
            clf = ClusterClassifier.load(path)
            _log(f"member seed {seed}: {path} (cached)")
        else:
            clf, info = train(_argparse.Namespace(**{**vars(args), "seed": seed}), out, rate,
                              prepared)
            path.parent.mkdir(parents=True, exist_ok=True)
            clf.save(path)
            infos[seed] = info
        members.append(clf)
    ens = ClusterClassifier.ensemble(members, name=f"{args.architecture}_x{len(members)}")
    info = recalibrate(args, out, ens, rate, prepared)
    info["members"] = {str(s): infos.get(s, "cached") for s in args.seeds}
    return ens, info


def recalibrate(args, out, clf, rate, prepared=None):
    """
    Calibration and threshold of a saved model again, on the recipe's validation split
    (of *prepared*, what `training_set` returned, if given).
    """
    ts, _ = training_set(args, out) if prepared is None else prepared
    cutouts, labels = ts.subset("val")
    cal = clf.calibrate(cutouts, labels, base_rate=rate)
    clf.select_threshold(cutouts, labels, metric="f1", base_rate=rate)
    _log(f"recalibrated at base rate {rate:.4f}: {cal}; threshold {clf.threshold:.4f}")
    return {"calibration": cal}


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
        size = "FWHM" if "FWHM" in cands.colnames else None
        cands = merge_fragments(cands, size_column=size, keep="min:gmag")
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


def _field_row(name, ev, n_raw, scored):
    s = ev.summary[0]
    return (name, float(s["n_true"]), float(s["n_recovered"]), s["completeness"],
            float(s["n_candidates"]), float(s["n_correct"]), s["purity"], n_raw, len(scored),
            int(scored["label"].sum()), json.dumps(ev.false_positives))


def evaluate_fields(args, out, clf):
    """The search's catalogue on every test field, evaluated one by one and together."""
    from m31clusters.evaluation import evaluate_catalog

    rows, cands_all, truths, scored_all = [], [], [], []
    tests = [("ascd", f, s, n, side) for f, s, n, side in ASCD_TEST_FIELDS]
    tests += [("detected", f, s, n or args.test_ccds, args.ccd) for f, s, n in TEST_FIELDS]
    for how, fld, seed, n, side in tests:
        if how == "ascd":
            images, truth, d = sim_field(out, "test", fld, seed, n, side)
            sources = ascd_sources(d / f"m{fld:03d}p.ascd")
            size = None
        else:
            images, truth, sources, _ = field(out, fld, seed, n, side)
            size = "FWHM"
        scored, cands, n_raw = catalogue(images, sources, clf, mag_limit=args.mag_limit)
        ev = evaluate_catalog(cands, truth, sources=sources, size_column=size)
        scored["label"] = source_labels(scored, truth)
        name = f"m{fld:03d}_s{seed} ({how})"
        rows.append(_field_row(name, ev, n_raw, scored))
        keep = ["coord", "gmag", "Conf"]
        cands = cands[keep] if len(cands) else Table(names=keep)
        cands["field_seed"] = name
        truth = truth[truth["on_ccd"]]
        truth["field_seed"] = name
        cands_all.append(cands)
        truths.append(truth)
        scored_all.append(scored[["Conf", "label"]])
    by_field = Table(rows=rows, names=("field", "n_true", "n_recovered", "completeness",
                                       "n_candidates", "n_correct", "purity", "n_before_merge",
                                       "n_scored", "n_scored_clusters", "false_positives"))
    cands = vstack([c for c in cands_all if len(c)], metadata_conflicts="silent")
    truth = vstack(truths, metadata_conflicts="silent")
    scored = vstack(scored_all, metadata_conflicts="silent")
    p = np.asarray(scored["Conf"], dtype=float)
    y = np.asarray(scored["label"], dtype=int)
    evs = {"all test fields": evaluate_catalog(cands, truth)}
    for how in ("ascd", "detected"):
        cs = np.char.endswith(np.asarray(cands["field_seed"], str), f"({how})")
        ts = np.char.endswith(np.asarray(truth["field_seed"], str), f"({how})")
        evs[f"{how} test fields"] = evaluate_catalog(cands[cs], truth[ts])
    return by_field, evs, ece(p, y), p, y


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
    p.add_argument("--n-neg", type=int, default=6000,
                   help="random non-clusters kept in the training split (half as many in val)")
    p.add_argument("--flux-scale", type=float, default=50.0,
                   help="asinh_flux scale of the g band (image units)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--inject-copies", type=int, default=len(INJECT_SEEDS),
                   help="copies of the detected training field with artificial clusters")
    p.add_argument("--inject-per-ccd", type=int, default=40,
                   help="artificial clusters per CCD and copy")
    p.add_argument("--inject-young", type=float, default=0.7,
                   help="fraction of young clusters among the injected ones")
    p.add_argument("--inject-rate-fields", action=argparse.BooleanOptionalAction,
                   default=False, help="also train on copies of the base-rate fields with "
                   "artificial clusters")
    p.add_argument("--test-ccds", type=int, default=3)
    p.add_argument("--rate-ccds", type=int, default=9, help="CCDs per base-rate field")
    p.add_argument("--mag-limit", type=float, default=21.0)
    p.add_argument("--architecture", default="wang2022")
    p.add_argument("--init", help="start from this saved classifier")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--epochs2", type=int, default=8)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--hard-factor", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--seeds", type=int, nargs="+",
                   help="train one network per seed (cached in OUT/members) and use their "
                   "ensemble (ClusterClassifier.ensemble), calibrated and thresholded")
    p.add_argument("--model", type=Path, help="evaluate this model instead of training one")
    p.add_argument("--recalibrate", action="store_true",
                   help="with --model: calibrate and threshold it again at the base rate")
    p.add_argument("--tta", type=int, choices=(1, 4, 8), default=1,
                   help="test-time augmentation: score stamps as the mean over this many "
                   "rotated/flipped views (ClusterClassifier.set_test_time_augmentation); the "
                   "model is calibrated and thresholded again with it")
    p.add_argument("--tta-above", type=float, default=0.1,
                   help="with --tta: only stamps whose one-view network probability is at "
                   "least this get the other views")
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
            sim_field(args.out, "train", *TRAIN_FIELD, 36, None, clusters=phat)
            field(args.out, TRAIN_FIELD[0], DETECTED_TRAIN_SEED, 10, 1024, clusters=phat)
            for fld, seed, n, side, gal, gc in OUTER_FIELDS:
                sim_field(args.out, "outer", fld, seed, n, side, galaxy_boost=gal, gc_boost=gc)
        if args.prepare_only in ("all", "test"):
            for fld, seed, n, side in ASCD_TEST_FIELDS:
                sim_field(args.out, "test", fld, seed, n, side)
            for fld, seed, n in TEST_FIELDS:
                field(args.out, fld, seed, n or args.test_ccds, args.ccd)
        rate, n_cl, n_src = base_rate(args.out, args.rate_ccds, args.ccd)
        print(f"base rate {rate:.4f} ({n_cl} clusters / {n_src} sources)")
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
            if args.tta > 1:
                with warnings.catch_warnings():  # its calibration is dropped: made again below
                    warnings.simplefilter("ignore")
                    clf.set_test_time_augmentation(args.tta, above=args.tta_above)
                args.recalibrate = True
            if args.recalibrate:
                info = recalibrate(args, args.out, clf, rate)
                how = info["calibration"]
                if args.save_model:
                    clf.save(args.save_model, overwrite=True)
        else:
            if args.tta > 1:
                p.error("--tta applies to a saved model: give it with --model")
            if args.seeds:
                clf, info = train_ensemble(args, args.out, rate)
            else:
                clf, info = train(args, args.out, rate)
            how = info["calibration"]
            if args.save_model:
                clf.save(args.save_model, overwrite=True)
        print(f"training: {info}\ncalibration: {how}; threshold {clf.threshold:.3f}")
        by_field, evs, e, _, _ = evaluate_fields(args, args.out, clf)
        print("\n== test fields")
        by_field.pprint(max_lines=-1, max_width=-1)
        for title, ev in evs.items():
            _print_eval(title, ev)
        print(f"ECE of Conf on the test fields' g < {args.mag_limit:g} sources: {e:.4f}")
        ev = evs["all test fields"]
        results.update(purity=ev.purity, completeness=ev.completeness, ece=e,
                       threshold=clf.threshold, base_rate=rate,
                       ascd_purity=evs["ascd test fields"].purity,
                       ascd_completeness=evs["ascd test fields"].completeness,
                       detected_purity=evs["detected test fields"].purity,
                       detected_completeness=evs["detected test fields"].completeness)
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
