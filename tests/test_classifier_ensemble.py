"""Tests for ClusterClassifier.ensemble (m31clusters.classifier._ensemble)."""

import functools

import numpy as np
import pytest
from _classifier_stamps import SIZE, stamp_sets, tiny

from m31clusters.classifier import ClusterClassifier


@functools.cache
def _members():
    """Two small networks trained on the same stamps with different seeds (once)."""
    tr, ytr, _ = stamp_sets()["train"]
    out = []
    for seed in (3, 4):
        clf = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=seed)
        clf.fit(tr, ytr, epochs=2, batch_size=32, progress=False)
        out.append(clf)
    return out


def test_ensemble_averages_the_members_probabilities():
    a, b = _members()
    te, yte, _ = stamp_sets()["test"]
    both = ClusterClassifier.ensemble([a, b])
    pa, pb = a.predict_proba(te), b.predict_proba(te)
    assert not np.allclose(pa, pb, atol=1e-3)  # the members differ
    np.testing.assert_allclose(both.predict_proba(te), (pa + pb) / 2, atol=1e-6)
    assert both.architecture == "custom:ensemble" and both.training_prior == a.training_prior
    assert both.calibration is None and both.threshold == 0.5
    # calibrated and thresholded like any classifier
    va, yva, _ = stamp_sets()["val"]
    cal = both.calibrate(va, yva, base_rate=0.02)
    assert cal["base_rate"] == 0.02 and cal["nll_after"] <= cal["nll_before"] + 1e-12
    both.select_threshold(va, yva, base_rate=0.02)
    assert 0.0 < both.threshold < 1.0


def test_ensemble_copies_the_networks():
    a, b = _members()
    te, _, _ = stamp_sets()["test"]
    both = ClusterClassifier.ensemble([a, b], name="pair")
    before = both.predict_proba(te)
    pa = a.predict_proba(te)
    for v in a.model.weights:  # change member a in place
        v.assign(v.value * 0.5)
    assert not np.allclose(a.predict_proba(te), pa, atol=1e-4)
    np.testing.assert_array_equal(both.predict_proba(te), before)
    for v in a.model.weights:  # restore it for the other tests
        v.assign(v.value * 2.0)
    np.testing.assert_allclose(a.predict_proba(te), pa, atol=1e-6)


def test_ensemble_saves_and_loads(tmp_path):
    a, b = _members()
    te, _, _ = stamp_sets()["test"]
    va, yva, _ = stamp_sets()["val"]
    both = ClusterClassifier.ensemble([a, b], name="pair")
    both.calibrate(va, yva, base_rate=0.05)
    both.select_threshold(va, yva, base_rate=0.05)
    path = both.save(tmp_path / "pair.zip")
    again = ClusterClassifier.load(path)
    assert again.architecture == "custom:pair" and again.threshold == both.threshold
    assert again.calibration == both.calibration
    np.testing.assert_allclose(again.predict_proba(te), both.predict_proba(te), atol=1e-7)


def test_ensemble_bad_members():
    a, b = _members()
    with pytest.raises(ValueError, match="at least two classifiers; got 1"):
        ClusterClassifier.ensemble([a])
    with pytest.raises(TypeError, match="member 1 is a str"):
        ClusterClassifier.ensemble([a, "b.zip"])
    with pytest.raises(ValueError, match="member 1 has input_shape"):
        ClusterClassifier.ensemble([a, tiny()])
    other = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), normalization="zscale")
    with pytest.raises(ValueError, match="member 1 has normalization"):
        ClusterClassifier.ensemble([a, other])
    fresh = [ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=s) for s in (1, 2)]
    with pytest.raises(ValueError, match="never trained"):
        ClusterClassifier.ensemble(fresh)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        ClusterClassifier.ensemble([a, b], name="")
