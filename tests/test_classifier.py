"""Tests for m31clusters.classifier (small networks only; no ResNet-50 training)."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from m31clusters.classifier import ClusterClassifier
from m31clusters.cutout import Cutout
from m31clusters.exceptions import BandError, CorruptFileError, IncompatibleModelError
from m31clusters.utils import _metrics

SIZE = 16


def make_stamps(n, size=SIZE, seed=0, overlap=0.0):
    """
    Raw two-band stamps: an extended Gaussian (label 1, sigma 1.6-3 px) or a
    point-like source (label 0, sigma 0.7-1.0 px, or up to 1.0 + overlap)
    on a noisy sky, returned with labels and an "i magnitude".
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    sig = np.where(y == 1, rng.uniform(1.6, 3.0, n), rng.uniform(0.7, 1.0 + overlap, n))
    dx, dy = rng.uniform(-1, 1, (2, n))
    flux = 10 ** rng.uniform(2.0, 3.3, n)
    r2 = (xx[None] - dx[:, None, None]) ** 2 + (yy[None] - dy[:, None, None]) ** 2
    img = flux[:, None, None] / (2 * np.pi * sig[:, None, None] ** 2)
    img = img * np.exp(-r2 / (2 * sig[:, None, None] ** 2))
    data = np.stack([img, 0.7 * img], -1) + rng.normal(0, 3, (n, size, size, 2)) + 100.0
    mag = 25.0 - 2.5 * np.log10(flux)
    return Cutout(data.astype(np.float32), bands=("g", "i")), y, mag


@pytest.fixture(scope="module")
def data():
    return {
        "train": make_stamps(400, seed=1, overlap=0.4),
        "val": make_stamps(200, seed=2, overlap=0.4),
        "test": make_stamps(300, seed=3, overlap=0.4),
    }


@pytest.fixture(scope="module")
def trained(data):
    clf = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=0)
    tr, ytr, _ = data["train"]
    va, yva, _ = data["val"]
    clf.fit(tr, ytr, validation=(va, yva), epochs=6, batch_size=32, progress=False)
    clf.select_threshold(va, yva)
    return clf


# ----------------------------------------------------------------- metrics


def _brute_counts(y, s, t):
    tp = fp = tn = fn = 0
    for yi, si in zip(y, s, strict=True):
        if si >= t:
            tp, fp = tp + (yi == 1), fp + (yi == 0)
        else:
            fn, tn = fn + (yi == 1), tn + (yi == 0)
    return tp, fp, tn, fn


def test_metrics_against_brute_force_and_mann_whitney():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) * 0.5 + 0.3 * y, 2)  # rounding makes ties
    for t in (0.2, 0.5, 0.61):
        tp, fp, tn, fn = _brute_counts(y, s, t)
        m = _metrics.binary_metrics(y, s, t)
        assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
        assert m["purity"] == pytest.approx(tp / (tp + fp))
        assert m["recall"] == pytest.approx(tp / (tp + fn))
        p, r = tp / (tp + fp), tp / (tp + fn)
        assert m["f1"] == pytest.approx(2 * p * r / (p + r))
        assert m["accuracy"] == pytest.approx((tp + tn) / 300)
    u = mannwhitneyu(s[y == 1], s[y == 0]).statistic
    auc = u / ((y == 1).sum() * (y == 0).sum())
    assert _metrics.roc_auc(y, s) == pytest.approx(auc, rel=1e-12)
    # the ROC curve's trapezoid area is the same AUC
    fpr, tpr, _ = _metrics.roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc, rel=1e-12)


def test_best_threshold_brute_force():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    s = rng.random(200) * 0.6 + 0.4 * y
    t, f1 = _metrics.best_threshold(y, s, metric="f1")
    brute = []
    for cand in np.unique(s):
        tp, fp, tn, fn = _brute_counts(y, s, cand)
        brute.append(2 * tp / (2 * tp + fp + fn))
    assert f1 == pytest.approx(max(brute))
    assert _metrics.binary_metrics(y, s, t)["f1"] == pytest.approx(max(brute))
    # target purity: the highest recall among thresholds with purity >= 0.95
    t95, purity = _metrics.best_threshold(y, s, target_purity=0.95)
    best_recall = 0.0
    for cand in np.unique(s):
        tp, fp, tn, fn = _brute_counts(y, s, cand)
        if tp / (tp + fp) >= 0.95:
            best_recall = max(best_recall, tp / (tp + fn))
    m = _metrics.binary_metrics(y, s, t95)
    assert m["purity"] >= 0.95 and purity == pytest.approx(m["purity"])
    assert m["recall"] == pytest.approx(best_recall)


# ------------------------------------------------------- training/predicting


def test_fit_history_and_quality(trained, data):
    te, yte, _ = data["test"]
    h = trained.history
    assert len(h["loss"]) == len(h["val_loss"]) == len(h["val_auc"]) == 6
    assert h["monitor"] == "val_loss"
    assert h["best_epoch"] == int(np.argmin(h["val_loss"]))
    assert trained.normalization["method"] == "asinh"
    m = trained.evaluate(te, yte)
    assert m["f1"] >= 0.85 and m["roc_auc"] >= 0.9
    assert m["n"] == len(yte) == m["tp"] + m["fp"] + m["tn"] + m["fn"]
    assert trained.metrics == m


def test_best_epoch_weights_restored(data):
    """The final weights are those of the epoch with the lowest val_loss."""
    tr, ytr, _ = data["train"]
    va, yva, _ = data["val"]
    clf = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=3, learning_rate=0.05)
    clf.fit(tr, ytr, validation=(va, yva), epochs=5, batch_size=64, augment=False, progress=False)
    p = clf.predict_proba(va)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    bce = -np.mean(yva * np.log(pc) + (1 - yva) * np.log(1 - pc))
    assert bce == pytest.approx(min(clf.history["val_loss"]), rel=1e-5)


def test_validation_fraction_and_early_stopping(data):
    """With a zero learning rate val_loss never improves: stop after `patience` epochs."""
    import keras

    tr, ytr, _ = data["train"]
    inputs = keras.Input((SIZE, SIZE, 2))  # no batch normalisation: nothing changes at all
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    clf = ClusterClassifier(model, seed=5, learning_rate=0.0)
    clf.fit(tr[:128], ytr[:128], validation=0.25, epochs=10, batch_size=32, early_stopping=2,
            progress=False)
    assert len(clf.history["loss"]) == 3 and clf.history["best_epoch"] == 0
    assert len(set(clf.history["val_loss"])) == 1


def test_same_seed_same_result(data):
    tr, ytr, _ = data["train"]
    te = data["test"][0][:64]
    runs = []
    for seed in (11, 11, 12):
        clf = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=seed)
        clf.fit(tr[:128], ytr[:128], epochs=2, batch_size=32, progress=False)
        runs.append(clf.predict_proba(te))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_predict_uses_threshold_and_streams(trained, data):
    te, yte, _ = data["test"]
    p = trained.predict_proba(te, batch_size=64)
    assert p.shape == (len(te),) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(trained.predict(te), (p >= trained.threshold).astype(int))
    np.testing.assert_array_equal(trained.predict(te, threshold=0.9), (p >= 0.9).astype(int))
    chunks = (te[i : i + 50] for i in range(0, len(te), 50))
    np.testing.assert_allclose(trained.predict_proba(chunks, batch_size=32), p, atol=1e-6)


def test_select_threshold_target_purity(trained, data):
    va, yva, _ = data["val"]
    saved = trained.threshold
    try:
        t = trained.select_threshold(va, yva, target_purity=0.97)
        assert trained.threshold == t and trained.threshold_metric == "purity>=0.97"
        assert trained.metrics["purity"] >= 0.97
        assert trained.evaluate(va, yva)["purity"] >= 0.97
    finally:
        trained.threshold = saved


def test_evaluate_by_magnitude(trained, data):
    te, yte, mag = data["test"]
    table = trained.evaluate_by_magnitude(te, yte, mag, limits=(18.0, 19.0, 30.0))
    assert list(table["mag_limit"]) == [18.0, 19.0, 30.0]
    for row in table:
        sel = np.flatnonzero(mag < row["mag_limit"])
        assert row["n"] == sel.size and row["n_cluster"] == yte[sel].sum()
        m = trained.evaluate(te[sel], yte[sel])
        for key in ("purity", "recall", "f1", "tp", "fp", "tn", "fn"):
            assert row[key] == pytest.approx(m[key], nan_ok=True)
    # brighter stamps are easier: the F1 does not improve by adding faint ones
    assert table["f1"][0] >= table["f1"][2] - 0.02


def test_already_normalized_cutouts(trained, data):
    te = data["test"][0][:40]
    p_raw = trained.predict_proba(te)
    p_norm = trained.predict_proba(te.normalize("asinh"))
    np.testing.assert_allclose(p_norm, p_raw, atol=1e-6)
    with pytest.raises(IncompatibleModelError, match="already normalised"):
        trained.predict_proba(te.normalize("standardize"))


def test_custom_model_and_plots(data):
    import keras

    inputs = keras.Input((SIZE, SIZE, 2))
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="flat")
    clf = ClusterClassifier(model, seed=0)
    assert clf.architecture == "custom:flat" and clf.input_shape == (SIZE, SIZE, 2)
    tr, ytr, _ = data["train"]
    clf.fit(tr[:64], ytr[:64], epochs=1, batch_size=32, progress=False)
    plt = pytest.importorskip("matplotlib.pyplot")
    va, yva, _ = data["val"]
    ax = clf.plot_roc(va[:50], yva[:50])
    assert ax.get_xlabel() == "false positive rate"
    ax = clf.plot_pr(va[:50], yva[:50])
    assert ax.get_ylabel() == "purity (precision)"
    plt.close("all")


# ------------------------------------------------------------ persistence


def test_save_load_roundtrip(trained, data, tmp_path):
    te, yte, _ = data["test"]
    path = tmp_path / "clf.zip"
    trained.save(path)
    with pytest.raises(FileExistsError):
        trained.save(path)
    trained.save(path, overwrite=True)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert meta["architecture"] == "simple" and meta["bands"] == ["g", "i"]
    assert meta["input_shape"] == [SIZE, SIZE, 2] and meta["normalization"]["method"] == "asinh"
    assert set(meta["versions"]) >= {"m31clusters", "keras", "jax"}
    loaded = ClusterClassifier.load(path)
    assert loaded.threshold == trained.threshold and loaded.history == trained.history
    np.testing.assert_allclose(loaded.predict_proba(te), trained.predict_proba(te), atol=1e-6)

    other, _, _ = make_stamps(4, size=SIZE + 8)
    with pytest.raises(IncompatibleModelError, match="clf.zip"):
        loaded.predict_proba(other)
    bands = Cutout(te.data[:4], bands=("g", "r"))
    with pytest.raises(IncompatibleModelError, match="bands"):
        loaded.predict(bands)


def test_load_corrupt(trained, tmp_path):
    path = tmp_path / "clf.zip"
    trained.save(path)
    raw = path.read_bytes()
    (tmp_path / "trunc.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError):
        ClusterClassifier.load(tmp_path / "trunc.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip file at all")
    with pytest.raises(CorruptFileError):
        ClusterClassifier.load(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "nometa.zip", "w") as zf:
        zf.writestr("model.keras", b"x")
    with pytest.raises(CorruptFileError, match="metadata.json"):
        ClusterClassifier.load(tmp_path / "nometa.zip")
    with pytest.raises(FileNotFoundError):
        ClusterClassifier.load(tmp_path / "missing.zip")


def test_checkpoint_every_epoch(data, tmp_path):
    tr, ytr, _ = data["train"]
    va, yva, _ = data["val"]
    clf = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=2)
    ckpt = tmp_path / "ckpt.zip"
    clf.fit(tr[:96], ytr[:96], validation=(va[:64], yva[:64]), epochs=2, batch_size=32,
            checkpoint=ckpt, progress=False)
    saved = ClusterClassifier.load(ckpt)
    assert len(saved.history["loss"]) == 2 and len(saved.history["val_loss"]) == 2
    with pytest.raises(FileExistsError):
        clf.fit(tr[:32], ytr[:32], epochs=1, checkpoint=ckpt, progress=False)


# ------------------------------------------------------------- bad inputs


def test_bad_inputs(trained, data):
    tr, ytr, _ = data["train"]
    with pytest.raises(ValueError, match="unknown architecture"):
        ClusterClassifier("alexnet", input_shape=(SIZE, SIZE, 2))
    with pytest.raises(BandError, match="channels"):
        ClusterClassifier("simple", input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="0 \\(not a cluster\\) or 1"):
        trained.fit(tr[:10], np.r_[ytr[:9], 2], epochs=1, progress=False)
    with pytest.raises(ValueError, match="entries but there are"):
        trained.evaluate(tr[:10], ytr[:9])
    with pytest.raises(ValueError, match="empty"):
        trained.evaluate(tr[:0], ytr[:0])
    with pytest.raises(ValueError, match="both classes"):
        trained.select_threshold(tr[:10], np.ones(10, int))
    with pytest.raises(ValueError, match="no threshold reaches"):
        # every positive is scored below every negative: purity never reaches 1
        clf = trained
        p = clf.predict_proba(tr[:20])
        lab = (p < np.median(p)).astype(int)
        clf_t = clf.threshold
        try:
            clf.select_threshold(tr[:20], lab, target_purity=1.0)
        finally:
            clf.threshold = clf_t
    with pytest.raises(ValueError, match="needs validation"):
        trained.fit(tr[:10], ytr[:10], monitor="val_auc", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        trained.predict_proba(tr[:10], batch_size=0)
    with pytest.raises(TypeError, match="Cutout"):
        trained.predict_proba(np.zeros((2, SIZE, SIZE, 2)))
    nan = tr.data[:3].copy()
    nan[1, 2, 2, 0] = np.nan
    bad = Cutout(nan, normalization={"method": "asinh", "fill_value": 0.0})
    with pytest.raises(ValueError, match="stamp 1"):
        trained.predict_proba(bad)


def test_dihedral_augmentation_is_exact():
    from m31clusters.classifier import _dihedral_batch

    rng = np.random.default_rng(0)
    x = rng.random((16, 5, 5, 2))
    k = np.arange(16) % 8
    out = _dihedral_batch(x, k)
    for i in range(16):
        ref = np.rot90(x[i], k[i] % 4, axes=(0, 1))
        if k[i] >= 4:
            ref = ref[:, ::-1]
        np.testing.assert_array_equal(out[i], ref)
    # the eight transforms of an asymmetric stamp are all different
    assert len({out[i].tobytes() for i in range(8)}) == 8


# ------------------------------------------------------- data parallelism


def test_data_parallel_two_cpu_devices(tmp_path):
    """With two (forced) CPU devices, 'auto' trains data-parallel and matches one device."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import keras, jax
        from test_classifier import make_stamps
        from m31clusters.classifier import ClusterClassifier
        assert len(jax.devices()) == 2
        tr, y, _ = make_stamps(64, seed=1)
        out = []
        for dist in ("auto", None):
            clf = ClusterClassifier("simple", input_shape=({SIZE}, {SIZE}, 2), seed=4,
                                    distribution=dist)
            if dist == "auto":
                assert isinstance(clf.distribution, keras.distribution.DataParallel)
                w = clf.model.weights[0].value
                assert len(w.sharding.device_set) == 2
            clf.fit(tr, y, epochs=1, batch_size=16, augment=False, progress=False)
            out.append(clf.predict_proba(tr, batch_size=16))
        np.testing.assert_allclose(out[0], out[1], atol=2e-5)
        print("OK", clf.distribution)
        """
    )
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    env["KERAS_BACKEND"] = "jax"
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK None" in res.stdout


# ------------------------------------------------------ simulated quality


def test_simple_network_quality_on_simulated_stamps():
    """The ``simple`` CNN reaches F1 >= 0.8 on held-out simulated stamps (about 60 s)."""
    try:
        from m31clusters.simulate import simulate_stamps
    except ImportError:
        pytest.skip("m31clusters.simulate.simulate_stamps is not available")
    tr, ttr = simulate_stamps(3000, size=32, seed=101, progress=False)
    va, tva = simulate_stamps(400, size=32, seed=202, progress=False)
    te, tte = simulate_stamps(600, size=32, seed=303, progress=False)
    clf = ClusterClassifier("simple", input_shape=(32, 32, 2), seed=0, learning_rate=3e-3)
    clf.fit(tr, ttr["label"], validation=(va, tva["label"]), epochs=15, batch_size=64,
            monitor="val_auc", progress=False)
    clf.select_threshold(va, tva["label"])
    m = clf.evaluate(te, tte["label"])
    assert m["f1"] >= 0.8, m
    assert m["roc_auc"] >= 0.85, m


# ------------------------------------------- issue 13: reliability regressions


def _tiny(seed=0):
    return ClusterClassifier("simple", input_shape=(8, 8, 2), seed=seed)


def _tiny_stamps(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return Cutout(rng.normal(100, 5, (n, 8, 8, 2)).astype(np.float32)), np.arange(n) % 2


def test_fit_refuses_one_class():
    """Issue 13 bug 6: one-class training or validation labels raise ValueError."""
    clf = _tiny()
    st, y = _tiny_stamps(32)
    for labels in (np.zeros(32, int), np.ones(32, int)):
        with pytest.raises(ValueError, match="training labels hold one class only"):
            clf.fit(st, labels, epochs=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="validation labels hold one class only"):
        clf.fit(st, y, validation=(st[:8], np.zeros(8, int)), epochs=1, progress=False)
    # 2 clusters among 32: a 20 % validation split would hold no cluster
    few = np.r_[1, 1, np.zeros(30, int)]
    with pytest.raises(ValueError, match="leaves no clusters in the validation split"):
        clf.fit(st, few, validation=0.2, epochs=1, progress=False)
    assert clf.history == {}  # nothing was trained


def test_stamp_without_valid_pixel_gets_nan():
    """Issue 13 bug 7: a stamp with a band without valid pixel has no score (NaN)."""
    clf = _tiny()
    st, y = _tiny_stamps(16)
    data, mask = st.data.copy(), np.zeros(st.shape, bool)
    data[3] = np.nan  # no valid pixel at all
    mask[5, :, :, 0] = True  # the g band wholly masked
    data[7, :, :, 1] = np.inf  # the i band wholly non-finite
    holed = Cutout(data, mask=mask)
    p = clf.predict_proba(holed, batch_size=8)
    assert np.isnan(p[[3, 5, 7]]).all()
    keep = np.setdiff1d(np.arange(16), [3, 5, 7])
    assert np.isfinite(p[keep]).all()
    np.testing.assert_allclose(p[keep], clf.predict_proba(st[keep], batch_size=8), atol=1e-6)
    # predict: an unscored stamp is never a cluster, even at threshold 0
    np.testing.assert_array_equal(clf.predict(holed, threshold=0.0),
                                  np.isfinite(p).astype(np.int8))
    # evaluate/select_threshold count them as "not a cluster" instead of failing
    m = clf.evaluate(holed, y, threshold=0.0)
    assert m["n_unscored"] == 3 and m["n"] == 16
    assert (m["tp"], m["fp"]) == (int(y[keep].sum()), int((y[keep] == 0).sum()))
    assert m["fn"] == int(y[[3, 5, 7]].sum()) and m["tn"] == int((y[[3, 5, 7]] == 0).sum())
    t = clf.select_threshold(holed, y)
    assert 0 <= t <= 1 and clf.metrics["n_unscored"] == 3
    table = clf.evaluate_by_magnitude(holed, y, np.linspace(18, 22, 16), limits=(30,))
    assert table["n"][0] == 16
    # an unscored stamp cannot be trained on: refused, naming the stamp and band
    with pytest.raises(ValueError, match="training stamp 3, band g, i"):
        clf.fit(holed, y, epochs=1, batch_size=8, progress=False)


def _rewrite_metadata(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            raw = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(raw)
                edit(meta)
                raw = json.dumps(meta).encode()
            zout.writestr(item, raw)


def _set(key, value):
    def edit(meta):
        meta[key] = value
    return edit


def _norm(**kw):
    def edit(meta):
        meta["normalize_kwargs"].update(kw)
    return edit


_TAMPERED = {
    "threshold_nan": ("threshold", _set("threshold", float("nan"))),
    "threshold_7": ("threshold", _set("threshold", 7.0)),
    "threshold_text": ("threshold", _set("threshold", "0.5")),
    "duplicate_bands": ("bands", _set("bands", ["g", "g"])),
    "bands_vs_channels": ("bands", _set("bands", ["g", "i", "r"])),
    "bands_not_names": ("bands", _set("bands", [1, 2])),
    "unknown_normalization": ("normalize_kwargs", _norm(method="sqrt")),
    "negative_softening": ("normalize_kwargs", _norm(softening=-1.0)),
    "unknown_norm_param": ("normalize_kwargs", _norm(gamma=2.0)),
    "recorded_norm_differs": ("normalization", _set("normalization", {"method": "zscale"})),
    "format_version_99": ("format_version", _set("format_version", 99)),
    "format_version_missing": ("format_version", lambda m: m.pop("format_version")),
    "architecture": ("architecture", _set("architecture", "alexnet")),
    "input_shape": ("input_shape", _set("input_shape", [8, -8, 2])),
    "input_shape_vs_model": ("input_shape", _set("input_shape", [9, 9, 2])),
    "seed": ("seed", _set("seed", -3)),
    "learning_rate": ("learning_rate", _set("learning_rate", "fast")),
    "data_format": ("data_format", _set("data_format", "NHWC")),
    "threshold_metric": ("threshold_metric", _set("threshold_metric", "magic")),
    "metrics": ("metrics", _set("metrics", {"f1": "high"})),
    "history": ("history.loss", _set("history", {"loss": ["x"]})),
    "versions": ("versions", _set("versions", [1])),
    "missing_field": ("seed", lambda m: m.pop("seed")),
}


@pytest.fixture(scope="module")
def tiny_saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.zip"
    _tiny().save(path)
    return path


@pytest.mark.parametrize("case", sorted(_TAMPERED))
def test_tampered_metadata_refused(tiny_saved, tmp_path, case):
    """Issue 13 bug 8: every metadata field is validated at load."""
    field, edit = _TAMPERED[case]
    path = tmp_path / f"{case}.zip"
    _rewrite_metadata(tiny_saved, path, edit)
    with pytest.raises(CorruptFileError, match=f"{case}.zip") as info:
        ClusterClassifier.load(path)
    msg = str(info.value)
    assert repr(field) in msg or field.replace("_", " ") in msg or field in msg, msg


def test_untampered_rewrite_loads(tiny_saved, tmp_path):
    """The rewriting helper itself keeps a good file loadable (so the refusals are real)."""
    path = tmp_path / "same.zip"
    _rewrite_metadata(tiny_saved, path, lambda meta: None)
    assert ClusterClassifier.load(path).threshold == 0.5


def test_load_never_runs_code_even_when_unsafe_enabled_globally(tmp_path):
    """Issue 13 bug 9: a Lambda layer in the file is refused whatever the global setting."""
    import keras
    from keras.src.saving import serialization_lib

    marker = tmp_path / "marker"
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Lambda(
        lambda t, m: (open(m, "w").close(), t)[1], arguments={"m": str(marker)}
    )(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    marker.unlink(missing_ok=True)
    path = tmp_path / "lambda.zip"
    ClusterClassifier(model, seed=0).save(path)
    assert not marker.exists()
    saved = serialization_lib.in_safe_mode()
    try:
        keras.config.enable_unsafe_deserialization()
        with zipfile.ZipFile(path) as zf:  # the check can fail: plain Keras runs the code
            zf.extract("model.keras", tmp_path)
        keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
        assert marker.exists()
        marker.unlink()
        with pytest.raises(CorruptFileError, match="lambda.zip.*never runs code"):
            ClusterClassifier.load(path)
        assert not marker.exists()
    finally:
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("safe_mode_saving", saved)
    assert serialization_lib.in_safe_mode() == saved


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c, s, y: c.fit(s, y, epochs="x", progress=False), "epochs must be an integer"),
        (lambda c, s, y: c.fit(s, y, epochs=1, batch_size="x", progress=False), "batch_size"),
        (lambda c, s, y: c.predict_proba(s, batch_size=2.5), "batch_size"),
        (lambda c, s, y: c.fit(s, y, epochs=1, learning_rate=float("nan"), progress=False),
         "learning_rate must be finite"),
        (lambda c, s, y: c.fit(s, y, epochs=1, learning_rate=-1, progress=False),
         "learning_rate must be >= 0"),
        (lambda c, s, y: c.fit(s, y, epochs=1, class_weight={0: -1, 1: 1}, progress=False),
         "class_weight"),
        (lambda c, s, y: c.fit(s, y, validation=0.25, early_stopping=-1, progress=False),
         "early_stopping must be at least 1"),
        (lambda c, s, y: c.fit(s, y, epochs=1, checkpoint="/nonexistent/c.zip",
                               progress=False), "checkpoint directory"),
        (lambda c, s, y: c.fit(s, y, epochs=1, monitor=3, progress=False), "unknown monitor 3"),
        (lambda c, s, y: c.fit(s, y, validation=(s, y[:5]), progress=False),
         "validation labels has 5 entries"),
        (lambda c, s, y: c.predict(s, threshold=float("nan")), "threshold must be finite"),
        (lambda c, s, y: c.predict(s, threshold=7), "threshold must be <= 1"),
        (lambda c, s, y: c.evaluate(s, y, threshold="a"), "threshold must be a number"),
        (lambda c, s, y: c.select_threshold(s, y, target_purity="x"), "target_purity"),
        (lambda c, s, y: c.evaluate_by_magnitude(s, y, ["a"] * 16), "mag"),
        (lambda c, s, y: ClusterClassifier("simple", input_shape="abc"), "input_shape"),
        (lambda c, s, y: ClusterClassifier("simple", input_shape=(8, 8, 2), bands="gi"),
         "bands must be a sequence"),
        (lambda c, s, y: ClusterClassifier("simple", input_shape=(8, 8, 2), seed="x"),
         "seed must be an integer"),
        (lambda c, s, y: ClusterClassifier("simple", input_shape=(8, 8, 2), learning_rate="x"),
         "learning_rate must be a number"),
        (lambda c, s, y: ClusterClassifier("simple", input_shape=(8, 8, 2),
                                           normalization="sqrt"),
         "bad normalization 'sqrt'.*unknown normalisation method"),
        (lambda c, s, y: ClusterClassifier("simple", input_shape=(8, 8, 2),
                                           normalization={"method": "asinh", "softening": -1}),
         "softening must be positive"),
    ],
)
def test_bad_arguments_are_named(call, match):
    """Issue 13 'weak errors': bad options name the parameter instead of failing deep inside."""
    clf = _tiny()
    st, y = _tiny_stamps(16)
    before = [np.asarray(w.value).copy() for w in clf.model.weights]
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        call(clf, st, y)
    for w, b in zip(clf.model.weights, before, strict=True):  # the model is untouched
        np.testing.assert_array_equal(np.asarray(w.value), b)
