"""Tests for m31clusters.classifier.core: construction and prediction."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _classifier_stamps import SIZE, stamp_sets, tiny, tiny_stamps, trained_classifier

from m31clusters.classifier import ClusterClassifier
from m31clusters.cutout import Cutout
from m31clusters.exceptions import BandError, IncompatibleModelError


@pytest.fixture(scope="module")
def data():
    return stamp_sets()


@pytest.fixture(scope="module")
def trained():
    return trained_classifier()


def test_predict_uses_threshold_and_streams(trained, data):
    te, yte, _ = data["test"]
    p = trained.predict_proba(te, batch_size=64)
    assert p.shape == (len(te),) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(trained.predict(te), (p >= trained.threshold).astype(int))
    np.testing.assert_array_equal(trained.predict(te, threshold=0.9), (p >= 0.9).astype(int))
    chunks = (te[i : i + 50] for i in range(0, len(te), 50))
    np.testing.assert_allclose(trained.predict_proba(chunks, batch_size=32), p, atol=1e-6)


def test_already_normalized_cutouts(trained, data):
    te = data["test"][0][:40]
    p_raw = trained.predict_proba(te)
    p_norm = trained.predict_proba(te.normalize("asinh"))
    np.testing.assert_allclose(p_norm, p_raw, atol=1e-6)
    with pytest.raises(IncompatibleModelError, match="already normalised"):
        trained.predict_proba(te.normalize("standardize"))


def test_stamp_without_valid_pixel_gets_nan():
    """Issue 13 bug 7: a stamp with a band without valid pixel has no score (NaN)."""
    clf = tiny()
    st, y = tiny_stamps(16)
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
    clf = tiny()
    st, y = tiny_stamps(16)
    before = [np.asarray(w.value).copy() for w in clf.model.weights]
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        call(clf, st, y)
    for w, b in zip(clf.model.weights, before, strict=True):  # the model is untouched
        np.testing.assert_array_equal(np.asarray(w.value), b)


def test_data_parallel_two_cpu_devices(tmp_path):
    """With two (forced) CPU devices, 'auto' trains data-parallel and matches one device."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import keras, jax
        from _classifier_stamps import make_stamps
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
