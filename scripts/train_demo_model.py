"""
Train the small classifier shipped for the demo, by the paper's recipe.

Trains ``m31clusters/data/models/demo_classifier.zip`` again (see docs/demo.rst
for how close a retraining comes to the shipped weights)::

    python scripts/train_demo_model.py [--work DIR] [--out PATH]

The model is the one ``benchmarks/bench_search_quality.py`` trains and
measures (the same code, the same seeds): a ``wang2022`` network on 32 x 32
g+i stamps normalised with ``asinh_flux`` (a fixed per-band scale from the
stacks' zero points, so the network sees each source's brightness and
colour), trained from scratch on

* PAndAS field 266 simulated at full size (36 CCDs) with the real PHAT
  clusters placed at their positions, magnitudes and sizes, its ``m266p.ascd``
  catalogue as the source list, `build_training_set` with the PHAT catalogue
  as positives inside the PHAT footprint (g < 21, train/validation tiles;
  non-clusters thinned at random to ``--n-neg``);
* the same field on 10 small CCDs through ``detect_sources`` + ``measure``,
  and three copies of it with 40 artificial clusters per CCD
  (``inject_field``; training split only, as they share pixels);
* outer fields whose clusters are all known, with more background galaxies
  and old globulars than the scene's own (``allow_one_class=True``);

joined by `TrainingSet.concatenate`, then `train_classifier`: fit, a second
round with the hard examples oversampled; three such networks (seeds 7, 8, 9,
each cached in ``--work``/members) averaged by `ClusterClassifier.ensemble`,
then calibration and threshold at the survey's base rate measured on the 17
simulated fields within 30 kpc (other seeds; the base rate enters only the
calibration and the threshold).  Everything is cached
in ``--work`` (the layout of ``bench_search_quality.py --out``, so the two
share it).  The weights come from simulations only: they demonstrate the
pipeline and are not the ResNet-50 of Zhang et al. (2025).
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "m31clusters" / "data" / "models" / "demo_classifier.zip"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--work", type=Path, default=Path("demo-model-work"),
                   help="cache of the simulated fields (bench_search_quality.py --out)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args, rest = p.parse_known_args(argv)
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    import bench_search_quality

    return bench_search_quality.main(["--out", str(args.work), "--save-model", str(args.out),
                                      "--seeds", "7", "8", "9", "--progress", *rest])


if __name__ == "__main__":
    sys.exit(main())
