"""
Train the small simulation-trained classifier shipped for the demo.

Regenerates ``m31clusters/data/models/demo_classifier.zip``::

    python scripts/train_demo_model.py [--n-train 6000] [--epochs 8] [--out PATH]

Training, validation and test stamps come from `simulate_stamps` with
different seeds; the threshold is chosen on the validation set (best F1) and
the test-set metrics are stored in the model's metadata and printed.  The
weights are trained on simulations only: they demonstrate the pipeline and
are not the ResNet-50 of Zhang et al. (2025).
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

from m31clusters.classifier import ClusterClassifier  # noqa: E402
from m31clusters.simulate import simulate_stamps  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "m31clusters" / "data" / "models"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--n-train", type=int, default=6000)
    p.add_argument("--n-val", type=int, default=1500)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--architecture", default="wang2022")
    p.add_argument("--mag-range", type=float, nargs=2, default=(15.0, 22.0))
    p.add_argument("--out", type=Path, default=DEFAULT_OUT / "demo_classifier.zip")
    p.add_argument("--seed", type=int, default=2025)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    kw = dict(size=args.size, mag_range=tuple(args.mag_range), progress=True)
    train, t_train = simulate_stamps(args.n_train, seed=args.seed, **kw)
    val, t_val = simulate_stamps(args.n_val, seed=args.seed + 1, **kw)
    test, t_test = simulate_stamps(args.n_test, seed=args.seed + 2, **kw)
    print(f"simulated {args.n_train + args.n_val + args.n_test} stamps "
          f"in {time.perf_counter() - t0:.0f} s")

    clf = ClusterClassifier(args.architecture, input_shape=(args.size, args.size, 2),
                            bands=("g", "i"), normalization="asinh", seed=args.seed)
    t1 = time.perf_counter()
    clf.fit(train, t_train["label"], validation=(val, t_val["label"]), epochs=args.epochs,
            batch_size=64, early_stopping=3)
    print(f"trained in {time.perf_counter() - t1:.0f} s")
    clf.select_threshold(val, t_val["label"], metric="f1")
    metrics = clf.evaluate(test, t_test["label"])
    print(f"threshold {clf.threshold:.3f}: " + ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))
    by_mag = clf.evaluate_by_magnitude(test, t_test["label"], t_test["gmag"],
                                       limits=(19, 20, 21, 22))
    by_mag.pprint(max_width=-1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    clf.save(args.out, overwrite=True)
    print(f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
