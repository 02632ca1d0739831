"""Tests for m31clusters.classifier._evaluation and the metrics of utils._metrics."""

import numpy as np
import pytest
from _classifier_stamps import SIZE, stamp_sets, trained_classifier
from scipy.stats import mannwhitneyu

from m31clusters.classifier import ClusterClassifier
from m31clusters.utils import _metrics


@pytest.fixture(scope="module")
def data():
    return stamp_sets()


@pytest.fixture(scope="module")
def trained():
    return trained_classifier()


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
