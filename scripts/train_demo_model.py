"""
Train the small classifier shipped for the demo, by the paper's recipe.

Regenerates ``m31clusters/data/models/demo_classifier.zip``::

    python scripts/train_demo_model.py [--work DIR] [--out PATH] [--init MODEL]

Two stages:

1. (skipped with ``--init``) pretraining of a ``wang2022`` network on
   ``--n-pretrain`` stamps from `simulate_stamps` (balanced clusters and
   look-alikes), as the first shipped model was trained;
2. the recipe of Zhang et al. (2025), as a user runs it on real stacks:
   PAndAS field 266 simulated with the real PHAT clusters placed at their
   positions, magnitudes and sizes (``simulate_field(clusters=
   load_phat_clusters())``), its sources detected and measured as the search
   does (`m31clusters.survey.search_field` without a catalogue),
   `build_training_set` with the PHAT catalogue as positives inside the PHAT
   footprint (g < 21, train/validation tiles), then `train_classifier`:
   fit, a second round with the hard examples oversampled, calibration and
   threshold at the survey's base rate ``--base-rate`` (clusters per g < 21
   source; ``benchmarks/bench_search_quality.py`` measures it on simulated
   fields within 30 kpc).

The simulated field and its detections are cached in ``--work`` (the same
layout as ``bench_search_quality.py --out``, so the two share them).  The
weights come from simulations only: they demonstrate the pipeline and are not
the ResNet-50 of Zhang et al. (2025).
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import astropy.units as u  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from m31clusters.catalog import Catalog  # noqa: E402
from m31clusters.classifier import ClusterClassifier  # noqa: E402
from m31clusters.datasets import in_phat_footprint, load_phat_clusters  # noqa: E402
from m31clusters.geometry import pandas_field, projected_radius  # noqa: E402
from m31clusters.simulate import simulate_field, simulate_stamps  # noqa: E402
from m31clusters.training import build_training_set, train_classifier  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "m31clusters" / "data" / "models"
FIELD, FIELD_SEED = 266, 101


def training_field(work, n_ccds, ccd, phat):
    """Field 266 with the PHAT clusters, and its detected sources (cached in *work*)."""
    d = Path(work) / f"m{FIELD:03d}_s{FIELD_SEED}"
    images = {b: d / f"m{FIELD:03d}_{b}.fit" for b in "gi"}
    if not (d / f"m{FIELD:03d}_truth.ecsv").exists():
        d.mkdir(parents=True, exist_ok=True)
        simulate_field(FIELD, n_ccds=n_ccds, ccd_shape=(ccd, ccd), seed=FIELD_SEED, out_dir=d,
                       clusters=phat, overwrite=True, progress=True)
    src = d / "sources.ecsv"
    if not src.exists():
        from collections import defaultdict

        from m31clusters.survey import check_stacks
        from m31clusters.survey.search import _detect  # the search's own detection

        sources = _detect(images, check_stacks(images), 30 * u.kpc, 5.0, 1.5 * u.arcsec,
                          defaultdict(float), True)
        sources["PAndAS"] = np.atleast_1d(pandas_field(sources["coord"]))
        sources["Rproj"] = projected_radius(sources["coord"])
        Table(sources).write(src, format="ascii.ecsv", overwrite=True)
    return images, Catalog(Table.read(src, format="ascii.ecsv"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--work", type=Path, default=Path("demo-model-work"),
                   help="cache of the simulated training field and its sources")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT / "demo_classifier.zip")
    p.add_argument("--init", type=Path, help="skip stage 1: start from this classifier")
    p.add_argument("--n-pretrain", type=int, default=6000)
    p.add_argument("--pretrain-epochs", type=int, default=8)
    p.add_argument("--n-ccds", type=int, default=10)
    p.add_argument("--ccd", type=int, default=1024, help="side of the simulated CCDs")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--mag-limit", type=float, default=21.0,
                   help="training sources brighter than this (g)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hard-epochs", type=int, default=15)
    p.add_argument("--hard-factor", type=float, default=4.0,
                   help="how much more often the hard examples are drawn in round 2")
    p.add_argument("--base-rate", type=float, required=True,
                   help="clusters per g < 21 source the search classifies")
    p.add_argument("--seed", type=int, default=2025)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    if args.init:
        clf = ClusterClassifier.load(args.init)
    else:
        clf = ClusterClassifier("wang2022", input_shape=(args.size, args.size, 2),
                                bands=("g", "i"), normalization="asinh", seed=args.seed)
        kw = dict(size=args.size, mag_range=(15.0, 22.0), progress=True)
        train, t_train = simulate_stamps(args.n_pretrain, seed=args.seed, **kw)
        val, t_val = simulate_stamps(args.n_pretrain // 4, seed=args.seed + 1, **kw)
        clf.fit(train, t_train["label"], validation=(val, t_val["label"]),
                epochs=args.pretrain_epochs, batch_size=64, early_stopping=3, progress=True)
        print(f"stage 1 (simulate_stamps) in {time.perf_counter() - t0:.0f} s")

    phat = load_phat_clusters()
    images, sources = training_field(args.work, args.n_ccds, args.ccd, phat)
    ts = build_training_set(images, sources, phat, footprint=in_phat_footprint,
                            mag_limit=args.mag_limit, size=clf.input_shape[:2],
                            splits=(0.7, 0.3, 0.0),
                            tile_size=1 * u.arcmin, seed=FIELD_SEED)
    print(ts.counts())
    print({k: v for k, v in ts.table.meta.items() if k.startswith("n_")})
    t1 = time.perf_counter()
    clf, info = train_classifier(ts, classifier=clf, epochs=args.epochs,
                                 hard_epochs=args.hard_epochs, hard_factor=args.hard_factor,
                                 base_rate=args.base_rate,
                                 seed=args.seed, progress=True)
    print(f"stage 2 (recipe) in {time.perf_counter() - t1:.0f} s: {info}")
    print(f"threshold {clf.threshold:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(args.out, overwrite=True)
    print(f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
