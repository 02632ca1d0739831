"""Tests for m31clusters.classifier.calibration (temperature, prior shift, ECE, reliability)."""

import json
import zipfile

import numpy as np
import pytest
from _classifier_stamps import stamp_sets, tiny, tiny_stamps, trained_classifier
from scipy.optimize import minimize_scalar
from scipy.special import expit

from m31clusters.classifier import (
    ClusterClassifier,
    expected_calibration_error,
    plot_reliability,
)
from m31clusters.cutout import Cutout
from m31clusters.exceptions import CorruptFileError

SIZE = 4


def picker():
    """A Keras model whose probability is sigmoid(pixel [0, 0, 0] of the stamp)."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 2))
    dense = keras.layers.Dense(1, activation="sigmoid", name="pick")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)), name="picker")
    w = np.zeros((SIZE * SIZE * 2, 1), np.float32)
    w[0, 0] = 1.0
    dense.set_weights([w, np.zeros(1, np.float32)])
    return model


def logit_stamps(z):
    """Stamps for `picker`: the network's logit of stamp i is z[i]."""
    data = np.zeros((len(z), SIZE, SIZE, 2), np.float32)
    data[:, 0, 0, 0] = z
    return Cutout(data)


def synthetic(n=4000, scale=2.5, prior=0.5, seed=0):
    """Labels drawn from sigmoid(z) and an overconfident network logit scale * z."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n) + np.log(prior / (1 - prior))
    y = (rng.random(n) < expit(z)).astype(int)
    return logit_stamps(scale * z), y


@pytest.fixture()
def clf():
    return ClusterClassifier(picker(), normalization="none", seed=0)


def test_picker_gives_the_logits(clf):
    z = np.array([-3.0, 0.0, 2.0])
    np.testing.assert_allclose(clf.predict_proba(logit_stamps(z)), expit(z), rtol=1e-6)


def test_temperature_against_scipy(clf):
    """The fitted temperature minimises the validation NLL (independent scipy minimisation)."""
    stamps, y = synthetic()
    p = clf.predict_proba(stamps)  # uncalibrated: the network's own probabilities
    z = np.log(p) - np.log1p(-p)
    c = np.log(y.mean() / (1 - y.mean()))  # the validation set's prior

    def nll(t):
        q = expit(z / t + c)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    ref = minimize_scalar(nll, bounds=(0.05, 50), method="bounded",
                          options={"xatol": 1e-10}).x
    cal = clf.calibrate(stamps, y, training_prior=0.5)
    assert cal["temperature"] == pytest.approx(ref, rel=1e-6)
    assert 2.2 < cal["temperature"] < 2.8  # the overconfidence put in
    assert cal["nll_after"] == pytest.approx(nll(ref), rel=1e-9)
    assert cal["nll_after"] < cal["nll_before"]
    assert cal["validation_prior"] == pytest.approx(y.mean())
    # predict_proba now returns sigmoid(z / T) (no base rate: the training prior)
    np.testing.assert_allclose(clf.predict_proba(stamps), expit(z / ref), rtol=1e-5, atol=1e-9)
    # calibrated probabilities are better calibrated
    assert expected_calibration_error(clf.predict_proba(stamps), y) < 0.5 * (
        expected_calibration_error(p, y))


def test_temperature_is_independent_of_the_validation_ratio(clf):
    """Fitted at the validation prior, T does not depend on the validation class ratio."""
    stamps, y = synthetic(n=20000, seed=3)
    keep = np.flatnonzero((y == 1) | (np.arange(y.size) % 4 == 0))  # 1 in 4 negatives kept
    t_all = clf.calibrate(stamps, y, training_prior=0.5)["temperature"]
    t_sub = clf.calibrate(stamps[keep], y[keep], training_prior=0.5)["temperature"]
    assert t_sub == pytest.approx(t_all, rel=0.06)


@pytest.mark.parametrize(("training_prior", "base_rate"), [(0.5, 0.01), (0.2, 0.3), (0.5, 0.5)])
def test_prior_shift_is_bayes_rule(clf, training_prior, base_rate):
    """method='prior': posterior odds = likelihood ratio x prior odds, by hand."""
    z = np.linspace(-6, 6, 25)
    stamps = logit_stamps(z)
    labels = (z > 0).astype(int)
    p = clf.predict_proba(stamps)
    clf.calibrate(stamps, labels, base_rate=base_rate, method="prior",
                  training_prior=training_prior)
    ratio = (p / (1 - p)) / (training_prior / (1 - training_prior))  # likelihood ratio
    odds = ratio * base_rate / (1 - base_rate)
    np.testing.assert_allclose(clf.predict_proba(stamps), odds / (1 + odds), rtol=1e-6)
    assert clf.calibration["temperature"] == 1.0


def test_temperature_and_base_rate_together(clf):
    stamps, y = synthetic(seed=5)
    p = clf.predict_proba(stamps)
    cal = clf.calibrate(stamps, y, base_rate=0.02, training_prior=0.5)
    ratio = np.exp((np.log(p) - np.log1p(-p)) / cal["temperature"])  # tempered LR
    odds = ratio * 0.02 / 0.98
    np.testing.assert_allclose(clf.predict_proba(stamps), odds / (1 + odds), rtol=1e-5)


def test_calibration_keeps_decisions_and_records_the_training_prior(tmp_path):
    trained_classifier().save(tmp_path / "t.zip")
    clf = ClusterClassifier.load(tmp_path / "t.zip")  # a copy of the shared trained network
    assert clf.training_prior == 0.5  # balanced class weights
    va, yva, _ = stamp_sets()["val"]
    before = clf.predict(va)
    cal = clf.calibrate(va, yva, base_rate=0.05)
    assert cal["temperature"] > 0 and cal["nll_after"] <= cal["nll_before"]
    np.testing.assert_array_equal(clf.predict(va), before)
    clf.calibrate(va, yva, base_rate=0.3)  # re-calibrating maps the threshold again
    np.testing.assert_array_equal(clf.predict(va), before)
    # unweighted training on 1 cluster in 4: the loss's prior is 0.25
    stamps, _ = tiny_stamps(32)
    other = tiny(seed=1)
    other.fit(stamps, (np.arange(32) % 4 == 0).astype(int), epochs=1, batch_size=8,
              class_weight=None)
    assert other.training_prior == pytest.approx(0.25)
    # retraining drops the calibration made for the old weights
    other.calibrate(stamps, np.arange(32) % 2, method="prior", base_rate=0.1)
    assert other.calibration is not None
    other.fit(stamps, np.arange(32) % 2, epochs=1, batch_size=8)
    assert other.calibration is None


def test_uninformative_scores_refuse_a_temperature(clf):
    z = np.linspace(-3, 3, 40)
    with pytest.raises(ValueError, match="better than chance"):
        clf.calibrate(logit_stamps(z), (z < 0).astype(int), training_prior=0.5)


def test_select_threshold_at_base_rate_brute_force(clf):
    """With base_rate, negatives are reweighted so that purity is the survey's."""
    stamps, y = synthetic(n=600, seed=7)
    base_rate = 0.05
    t = clf.select_threshold(stamps, y, base_rate=base_rate)
    p = clf.predict_proba(stamps)
    w = (1 - base_rate) / base_rate * y.sum() / (y.size - y.sum())
    best = 0.0
    for cand in np.unique(p):
        tp = np.sum((p >= cand) & (y == 1))
        fp = np.sum((p >= cand) & (y == 0))
        fn = np.sum((p < cand) & (y == 1))
        best = max(best, 2 * tp / (2 * tp + w * fp + fn))
    assert clf.metrics["f1"] == pytest.approx(best)
    tp = np.sum((p >= t) & (y == 1))
    fp = np.sum((p >= t) & (y == 0))
    assert clf.metrics["purity"] == pytest.approx(tp / (tp + w * fp))
    assert clf.metrics["base_rate"] == base_rate
    # at 5 % clusters the threshold is stricter than at the validation's ~50 %
    t_balanced = clf.select_threshold(stamps, y)
    assert t > t_balanced


def _brute_ece(p, y, n_bins):
    total = 0.0
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        members = [i for i in range(len(p))
                   if lo <= p[i] < hi or (k == n_bins - 1 and p[i] == 1.0)]
        if members:
            conf = sum(p[i] for i in members) / len(members)
            acc = sum(y[i] for i in members) / len(members)
            total += len(members) * abs(acc - conf)
    return total / len(p)


@pytest.mark.parametrize("n_bins", [1, 7, 10])
def test_ece_against_brute_force(n_bins):
    rng = np.random.default_rng(n_bins)
    p = np.r_[rng.random(300), 0.0, 1.0, 0.5, 0.1, 0.7]
    y = (rng.random(p.size) < p**2).astype(int)
    assert expected_calibration_error(p, y, n_bins=n_bins) == pytest.approx(
        _brute_ece(list(p), list(y), n_bins), rel=1e-12)
    # NaN (unscored) probabilities are left out
    p_nan = np.r_[p, np.nan]
    assert expected_calibration_error(p_nan, np.r_[y, 1], n_bins=n_bins) == pytest.approx(
        expected_calibration_error(p, y, n_bins=n_bins))


def test_plot_reliability_points():
    plt = pytest.importorskip("matplotlib.pyplot")
    rng = np.random.default_rng(1)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    ax = plot_reliability(p, y, n_bins=4)
    x, frac = ax.lines[0].get_data()
    for k in range(4):
        sel = (p >= k / 4) & (p < (k + 1) / 4)
        assert x[k] == pytest.approx(p[sel].mean()) and frac[k] == pytest.approx(y[sel].mean())
    assert ax.get_ylabel() == "fraction of clusters"
    assert any("ECE = " in t.get_text() for t in ax.get_legend().get_texts())
    plt.close("all")


def test_calibration_round_trip_save_load(clf, tmp_path):
    stamps, y = synthetic(n=500, seed=9)
    cal = clf.calibrate(stamps, y, base_rate=0.03, training_prior=0.5)
    clf.select_threshold(stamps, y, base_rate=0.03)
    clf.save(tmp_path / "cal.zip")
    with zipfile.ZipFile(tmp_path / "cal.zip") as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert meta["format_version"] == 3 and meta["calibration"]["base_rate"] == 0.03
    again = ClusterClassifier.load(tmp_path / "cal.zip")
    assert again.calibration == cal and again.threshold == clf.threshold
    np.testing.assert_allclose(again.predict_proba(stamps), clf.predict_proba(stamps),
                               rtol=1e-6)
    # a tampered calibration is refused, naming the field
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(tmp_path / "cal.zip") as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            raw = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta["calibration"]["temperature"] = -1.0
                raw = json.dumps(meta).encode()
            zout.writestr(item, raw)
    with pytest.raises(CorruptFileError, match="bad.zip.*'calibration'.*temperature"):
        ClusterClassifier.load(bad)


def test_format1_file_has_no_calibration():
    from pathlib import Path

    old = ClusterClassifier.load(Path(__file__).parent / "data" / "classifier_format1.zip")
    assert old.calibration is None and old.training_prior is None
    stamps, y = tiny_stamps(16)
    with pytest.raises(ValueError, match="pass training_prior="):
        old.calibrate(stamps, y)
    old.calibrate(stamps, y, training_prior=0.5, method="prior")
    assert old.calibration["training_prior"] == 0.5


def test_bad_calibration_inputs(clf):
    stamps, y = synthetic(n=100, seed=2)
    with pytest.raises(ValueError, match="pass training_prior="):
        clf.calibrate(stamps, y)
    with pytest.raises(ValueError, match="one class only"):
        clf.calibrate(stamps, np.zeros(100, int), training_prior=0.5)
    with pytest.raises(ValueError, match="base_rate must be <= 1"):
        clf.calibrate(stamps, y, base_rate=1.5, training_prior=0.5)
    with pytest.raises(ValueError, match="base_rate must be > 0"):
        clf.calibrate(stamps, y, base_rate=0.0, training_prior=0.5)
    with pytest.raises(ValueError, match="unknown calibration method .isotonic."):
        clf.calibrate(stamps, y, method="isotonic", training_prior=0.5)
    with pytest.raises(ValueError, match="base_rate must be a number"):
        clf.select_threshold(stamps, y, base_rate="rare")
    with pytest.raises(ValueError, match=r"prob\[1\] = 1.5"):
        expected_calibration_error([0.5, 1.5], [0, 1])
    with pytest.raises(ValueError, match="n_bins must be at least 1"):
        expected_calibration_error([0.5], [1], n_bins=0)
    with pytest.raises(ValueError, match="entries but there are"):
        expected_calibration_error([0.5, 0.2], [1])
    assert clf.calibration is None  # nothing was stored by the failed calls


def test_platt_against_scipy(clf):
    """method='platt': slope and bias minimise the validation NLL (scipy, two parameters)."""
    from scipy.optimize import minimize

    stamps, y = synthetic(n=4000, seed=11)
    p0 = clf.predict_proba(stamps)
    shifted = logit_stamps(np.log(p0) - np.log1p(-p0) - 1.5)  # biased towards "not a cluster"
    p = clf.predict_proba(shifted)
    z = np.log(p) - np.log1p(-p)
    c = np.log(y.mean() / (1 - y.mean()))

    def nll(theta):
        q = expit(theta[0] * z + theta[1] + c)
        return -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))

    ref = minimize(nll, [1.0, 0.0], method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000}).x
    cal = clf.calibrate(shifted, y, method="platt", training_prior=0.5)
    assert 1 / cal["temperature"] == pytest.approx(ref[0], rel=1e-5)
    assert cal["bias"] == pytest.approx(ref[1], rel=1e-5, abs=1e-7)
    assert cal["bias"] == pytest.approx(1.5 / cal["temperature"], rel=0.1)  # shift undone
    np.testing.assert_allclose(clf.predict_proba(shifted), expit(ref[0] * z + ref[1]),
                               rtol=1e-4)
    # temperature alone cannot undo a shift: Platt's likelihood is better
    t_only = clf.calibrate(shifted, y, training_prior=0.5)
    assert cal["nll_after"] < t_only["nll_after"]
