"""
Benchmark ClusterClassifier.predict_proba with ResNet-50 on 64x64x2 stamps (CPU).

Measures, in one run:

1. images/s of a bare jitted Keras forward pass (``jax.jit`` of
   ``model.stateless_call``) on already-normalised arrays;
2. images/s of ``ClusterClassifier.predict_proba`` on raw Cutouts (which
   normalises every batch itself) and on already normalised Cutouts, and the
   overhead of each against (1);
3. the normalisation alone, and the peak resident memory;
4. with ``--variants``: the bare forward pass under a few XLA:CPU settings
   (flags, batch size, bfloat16, channels_first), each in a fresh subprocess
   because XLA reads ``XLA_FLAGS`` once;
5. with ``--calibration``: a ``simple`` network trained on balanced simulated
   stamps, tested on a sample at a survey-like base rate (``--base-rate``,
   negatives kept, clusters subsampled): expected calibration error and
   purity/recall of the raw network at its F1 threshold chosen on balanced
   validation stamps, against ``calibrate(base_rate=...)`` (prior shift only,
   temperature, Platt) + ``select_threshold(base_rate=...)``, and the time
   ``calibrate`` takes;
6. with ``--tta``: the cost of test-time augmentation on a crowded disc field
   (field 266 simulated with the PHAT clusters on ``--tta-ccds`` full-size
   CCDs, its g < 21 catalogue sources, at most ``--n`` of them): stamps/s of
   the shipped demo classifier with one view and with 8 views for the stamps
   whose one-view network probability reaches each ``above`` (their ratio
   to one view, measured in the same run), the fraction of sources that
   reach it, and the peak resident memory.

Run by hand::

    python benchmarks/bench_classifier.py --n 128 --batch 32 --variants
    python benchmarks/bench_classifier.py --calibration --base-rate 0.05
    python benchmarks/bench_classifier.py --tta --n 8000

Timings on a shared 2-core machine are noisy; compare numbers of one run.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402


def _stamps(n, size=64, seed=0):
    from m31clusters.cutout import Cutout

    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 5.0, (n, size, size, 2)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    data += (500 * np.exp(-(xx**2 + yy**2) / 8.0))[None, :, :, None].astype(np.float32)
    return Cutout(data, bands=("g", "i"))


def _bare_forward(model, batch, dtype="float32"):
    import jax

    @jax.jit
    def fwd(tv, ntv, x):
        out, _ = model.stateless_call(tv, ntv, x, training=False)
        return out

    def run(x):
        # current values: Keras' own predict step donates its input buffers
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        outs = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            if len(chunk) < batch:
                pad = np.zeros((batch - len(chunk),) + chunk.shape[1:], chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            outs.append(np.asarray(fwd(tv, ntv, chunk.astype(dtype))))
        return np.concatenate(outs)[: len(x)]

    return run


def _timed(fn, *args, repeat=1):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def child(n, batch, dtype, layout):
    """Bare forward-pass throughput under the current XLA_FLAGS (one JSON line)."""
    import keras

    if layout == "channels_first":
        keras.config.set_image_data_format("channels_first")
    if dtype == "bfloat16":
        keras.config.set_dtype_policy("bfloat16")
    from m31clusters.models import build_model

    keras.utils.set_random_seed(0)
    shape = (2, 64, 64) if layout == "channels_first" else (64, 64, 2)
    model = build_model("resnet50", input_shape=shape)
    x = np.random.default_rng(0).normal(size=(n,) + shape).astype(np.float32)
    run = _bare_forward(model, batch, dtype=dtype)
    t0 = time.perf_counter()
    run(x[:batch])
    compile_s = time.perf_counter() - t0
    t = _timed(run, x, repeat=2)
    print(json.dumps({"img_per_s": n / t, "compile_s": compile_s}))


VARIANTS = [
    ("default", "", 32, "float32", "channels_last"),
    ("batch 8", "", 8, "float32", "channels_last"),
    ("batch 128", "", 128, "float32", "channels_last"),
    ("--xla_cpu_multi_thread_eigen=false", "--xla_cpu_multi_thread_eigen=false", 32,
     "float32", "channels_last"),
    ("--xla_cpu_use_thunk_runtime=false", "--xla_cpu_use_thunk_runtime=false", 32,
     "float32", "channels_last"),
    ("--xla_cpu_use_onednn=true", "--xla_cpu_use_onednn=true", 32, "float32",
     "channels_last"),
    ("--xla_cpu_use_xnnpack=true", "--xla_cpu_use_xnnpack=true", 32, "float32",
     "channels_last"),
    ("--xla_cpu_enable_fast_math=true", "--xla_cpu_enable_fast_math=true", 32, "float32",
     "channels_last"),
    ("bfloat16 weights+activations", "", 32, "bfloat16", "channels_last"),
    ("channels_first (NCHW)", "", 32, "float32", "channels_first"),
    ("default again (noise check)", "", 32, "float32", "channels_last"),
]


def run_variants(n, only=None):
    print(f"\nXLA:CPU variants (bare ResNet-50 forward, {n} stamps, fresh process each)")
    print(f"{'variant':40s} {'img/s':>8s} {'compile s':>10s}")
    for name, flags, batch, dtype, layout in VARIANTS:
        if only and not any(o in name for o in only):
            continue
        env = dict(os.environ)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        n_eff = max(n, batch)  # at least one full batch: no padding penalty
        cmd = [sys.executable, __file__, "--child", "--n", str(n_eff), "--batch", str(batch),
               "--dtype", dtype, "--layout", layout]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            err = (res.stderr.strip().splitlines() or ["?"])[-1][:60]
            print(f"{name:40s} {'failed':>8s}  ({err})")
            continue
        out = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{name:40s} {out['img_per_s']:8.1f} {out['compile_s']:10.1f}")


def calibration(base_rate, n_train, epochs, seed=0):
    """Calibration quality at a survey-like base rate (see the module docstring, item 5)."""
    from m31clusters.classifier import ClusterClassifier, expected_calibration_error
    from m31clusters.simulate import simulate_stamps

    train, t_train = simulate_stamps(n_train, size=32, seed=seed + 1, progress=False)
    val, t_val = simulate_stamps(n_train // 2, size=32, seed=seed + 2, progress=False)
    test, t_test = simulate_stamps(2 * n_train, size=32, seed=seed + 3, progress=False)
    y_test = np.asarray(t_test["label"])
    neg = np.flatnonzero(y_test == 0)
    n_pos = max(1, int(round(base_rate / (1 - base_rate) * neg.size)))
    pos = np.random.default_rng(seed).choice(np.flatnonzero(y_test == 1), n_pos, replace=False)
    keep = np.sort(np.r_[neg, pos])
    test, y_test = test[keep], y_test[keep]
    clf = ClusterClassifier("simple", input_shape=(32, 32, 2), seed=seed, learning_rate=3e-3)
    t0 = time.perf_counter()
    clf.fit(train, t_train["label"], validation=(val, t_val["label"]), epochs=epochs,
            batch_size=64, monitor="val_auc")
    fit_s = time.perf_counter() - t0
    print(f"trained on {len(train)} balanced stamps, {epochs} epochs, {fit_s:.0f} s; test: "
          f"{len(test)} stamps, {y_test.sum()} clusters ({y_test.mean():.3f})")
    rows = []
    clf.select_threshold(val, t_val["label"])
    p = clf.predict_proba(test)
    m = clf.evaluate(test, y_test)
    rows.append(("raw network, F1 threshold on balanced validation", p, m))
    clf.select_threshold(val, t_val["label"], base_rate=base_rate)
    rows.append((f"raw network, F1 threshold at {base_rate:g}", p, clf.evaluate(test, y_test)))
    clf.calibrate(val, t_val["label"], base_rate=base_rate, method="prior")
    clf.select_threshold(val, t_val["label"], base_rate=base_rate)
    rows.append((f"prior shift only (T = 1) + threshold at {base_rate:g}",
                 clf.predict_proba(test), clf.evaluate(test, y_test)))
    t0 = time.perf_counter()
    cal = clf.calibrate(val, t_val["label"], base_rate=base_rate)
    cal_s = time.perf_counter() - t0
    clf.select_threshold(val, t_val["label"], base_rate=base_rate)
    p = clf.predict_proba(test)
    m = clf.evaluate(test, y_test)
    rows.append((f"temperature + prior shift + threshold at {base_rate:g}", p, m))
    clf.calibrate(val, t_val["label"], base_rate=base_rate, method="platt")
    clf.select_threshold(val, t_val["label"], base_rate=base_rate)
    rows.append((f"Platt (T and bias) + prior shift + threshold at {base_rate:g}",
                 clf.predict_proba(test), clf.evaluate(test, y_test)))
    print(f"calibrate: T = {cal['temperature']:.3f}, validation NLL {cal['nll_before']:.4f} -> "
          f"{cal['nll_after']:.4f}, {cal_s:.2f} s for {cal['n']} stamps (one forward pass)")
    for name, prob, met in rows:
        print(f"  {name:52s} ECE {expected_calibration_error(prob, y_test):.4f}  "
              f"purity {met['purity']:.3f}  recall {met['recall']:.3f}  "
              f"candidates/true cluster {(met['tp'] + met['fp']) / max(y_test.sum(), 1):.2f}")


def tta_cost(n, n_ccds, seed=131):
    """Cost of test-time augmentation on a crowded field (see the module docstring, item 6)."""
    import tempfile
    import warnings
    from pathlib import Path

    from bench_search_quality import ascd_sources  # the search benchmark's source list

    from m31clusters.classifier import ClusterClassifier
    from m31clusters.cutout import Cutout
    from m31clusters.datasets import load_phat_clusters
    from m31clusters.demo import demo_model_path
    from m31clusters.exceptions import OffImageWarning
    from m31clusters.simulate import simulate_field

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        simulate_field(266, n_ccds=n_ccds, ccd_shape=(4612, 2048), seed=seed, out_dir=tmp,
                       clusters=load_phat_clusters())
        print(f"simulated field 266 on {n_ccds} full-size CCDs in "
              f"{time.perf_counter() - t0:.0f} s")
        cat = ascd_sources(Path(tmp) / "m266p.ascd")
        cat = cat[np.asarray(cat["gmag"].value) < 21]
        rng = np.random.default_rng(0)
        cat = cat[np.sort(rng.choice(len(cat), size=min(n, len(cat)), replace=False))]
        images = {b: Path(tmp) / f"m266_{b}.fit" for b in "gi"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffImageWarning)
            stamps = Cutout.from_images(images, cat["coord"], size=32, bands=("g", "i"),
                                        progress=False)
    m = len(stamps)
    one = ClusterClassifier.load(demo_model_path())
    raw = ClusterClassifier.load(demo_model_path())
    raw.calibration = None  # the network's own probability, which above= compares
    p_raw = raw.predict_proba(stamps)
    aboves = (0.01, 0.05, 0.1)
    views = {}
    with warnings.catch_warnings():
        # setting the views drops the shipped one-view calibration, with a warning
        warnings.simplefilter("ignore")
        for a in aboves:
            views[a] = ClusterClassifier.load(demo_model_path()).set_test_time_augmentation(
                8, above=a)
    warm = stamps[np.arange(min(m, 512))]
    for c in (one, *views.values()):
        c.predict_proba(warm)  # compile every batch shape first
    # interleave the repeats so that load changes hit every setting alike
    t_one, t_views = np.inf, dict.fromkeys(aboves, np.inf)
    for _ in range(2):
        t_one = min(t_one, _timed(lambda: one.predict_proba(stamps)))
        for a, c in views.items():
            t_views[a] = min(t_views[a], _timed(lambda c=c: c.predict_proba(stamps)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nshipped demo classifier, {m} stamps 32x32x2 (g < 21 sources of a crowded field)")
    print(f"  one view                          {m / t_one:7.1f} stamps/s")
    for a in aboves:
        print(f"  8 views above {a:<5g}               {m / t_views[a]:7.1f} stamps/s  "
              f"{t_views[a] / t_one:4.2f} x one view  "
              f"({100 * np.mean(p_raw >= a):.1f}% of the sources get the views)")
    print(f"  peak resident memory {rss:.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n", type=int, default=128, help="stamps per timing")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--variants", action="store_true", help="also time XLA variants")
    parser.add_argument("--only", nargs="*", help="substrings of the variants to run")
    parser.add_argument("--variants-only", action="store_true", help="skip the main timing")
    parser.add_argument("--calibration", action="store_true",
                        help="calibration quality at a survey-like base rate instead")
    parser.add_argument("--tta", action="store_true",
                        help="cost of test-time augmentation on a crowded field instead")
    parser.add_argument("--tta-ccds", type=int, default=4,
                        help="with --tta: full-size CCDs of field 266 to simulate")
    parser.add_argument("--base-rate", type=float, default=0.05)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--layout", default="channels_last", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calibration:
        calibration(args.base_rate, args.n_train, args.epochs)
        return
    if args.tta:
        tta_cost(args.n, args.tta_ccds)
        return
    if args.child:
        child(args.n, args.batch, args.dtype, args.layout)
        return
    if args.variants_only:
        run_variants(args.n, args.only)
        return

    import jax
    import keras

    from m31clusters.classifier import ClusterClassifier

    print(f"keras {keras.__version__}, jax {jax.__version__}, devices {jax.devices()}, "
          f"{os.cpu_count()} CPUs, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    n, batch = args.n, args.batch
    raw = _stamps(n)
    t_norm = _timed(lambda: raw.normalize("asinh"), repeat=3)
    normed = raw.normalize("asinh")

    clf = ClusterClassifier("resnet50", input_shape=(64, 64, 2), seed=0)
    bare = _bare_forward(clf.model, batch)
    x = np.asarray(normed.data)
    bare(x[:batch])  # compile
    clf.predict_proba(raw[:batch], batch_size=batch)  # compile
    # interleave the repeats so that load changes hit both alike
    t_bare, t_raw, t_norm_in = np.inf, np.inf, np.inf
    for _ in range(3):
        t_bare = min(t_bare, _timed(bare, x))
        t_raw = min(t_raw, _timed(lambda: clf.predict_proba(raw, batch_size=batch)))
        t_norm_in = min(t_norm_in, _timed(lambda: clf.predict_proba(normed, batch_size=batch)))
    p_bare = bare(x)[:, 0]
    p_clf = clf.predict_proba(raw, batch_size=batch)
    assert np.allclose(p_bare, p_clf, atol=1e-5), "predict_proba differs from bare forward"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\nResNet-50, {n} stamps 64x64x2, batch {batch}")
    print(f"  bare jitted forward pass          {n / t_bare:7.1f} img/s")
    print(f"  predict_proba, raw Cutout         {n / t_raw:7.1f} img/s  "
          f"overhead {100 * (t_raw / t_bare - 1):+.1f}%")
    print(f"  predict_proba, normalised Cutout  {n / t_norm_in:7.1f} img/s  "
          f"overhead {100 * (t_norm_in / t_bare - 1):+.1f}%")
    print(f"  Cutout.normalize('asinh') alone   {n / t_norm:7.0f} img/s")
    print(f"  peak RSS                          {rss:7.0f} MiB")
    if args.variants:
        run_variants(n, args.only)


if __name__ == "__main__":
    main()
