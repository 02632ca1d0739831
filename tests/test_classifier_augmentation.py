"""Tests for m31clusters.classifier._augmentation (test-time augmentation)."""

import json
import zipfile

import numpy as np
import pytest
from _classifier_stamps import tiny, tiny_stamps

from m31clusters.classifier import ClusterClassifier
from m31clusters.cutout import Cutout
from m31clusters.exceptions import IncompatibleModelError, M31ClustersWarning


def _mean_over_views(clf, stamps, views):
    """The independent computation: one-view predictions of the turned Cutouts, averaged."""
    assert clf.test_time_augmentation is None
    return np.mean([clf.predict_proba(stamps.dihedral(k)) for k in range(views)], axis=0)


@pytest.mark.parametrize("views", [4, 8])
@pytest.mark.parametrize("batch_size", [4, 16, 128])
def test_views_are_the_mean_of_the_turned_stamps(views, batch_size):
    stamps, _ = tiny_stamps(37, seed=1)
    clf = tiny()
    want = _mean_over_views(clf, stamps, views)
    one = clf.predict_proba(stamps)
    assert clf.set_test_time_augmentation(views) is clf
    got = clf.predict_proba(stamps, batch_size=batch_size)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(got, one, atol=1e-4)  # the views do change the answer
    # streamed chunks: the same
    chunks = (stamps[i : i + 10] for i in range(0, len(stamps), 10))
    np.testing.assert_allclose(clf.predict_proba(chunks, batch_size=batch_size), want, atol=1e-6)


def test_above_gives_the_views_only_to_likely_stamps():
    stamps, _ = tiny_stamps(40, seed=2)
    clf = tiny()
    one = clf.predict_proba(stamps)
    want = _mean_over_views(clf, stamps, 8)
    above = float(np.quantile(one, 0.75))
    clf.set_test_time_augmentation(8, above=above)
    got = clf.predict_proba(stamps, batch_size=8)
    hi = one >= above
    assert 5 <= hi.sum() <= 15
    np.testing.assert_allclose(got[~hi], one[~hi], atol=1e-6)  # one view: unchanged
    assert np.abs(want[~hi] - one[~hi]).max() > 1e-4  # (which the views would have changed)
    np.testing.assert_allclose(got[hi], want[hi], atol=1e-6)


def test_unscorable_stamps_stay_nan_and_off_restores():
    stamps, _ = tiny_stamps(8, seed=3)
    data = stamps.data.copy()
    data[2, :, :, 1] = np.nan
    stamps = Cutout(data)
    clf = tiny()
    one = clf.predict_proba(stamps)
    clf.set_test_time_augmentation(8)
    p = clf.predict_proba(stamps)
    assert np.isnan(p[2]) and np.isfinite(np.delete(p, 2)).all()
    clf.set_test_time_augmentation(1)
    assert clf.test_time_augmentation is None
    np.testing.assert_allclose(clf.predict_proba(stamps), one, atol=1e-7)


@pytest.mark.parametrize("views, above, match", [
    (2, 0.0, "views must be one of 1, 4, 8"),
    (True, 0.0, "views"),
    (8.5, 0.0, "views"),
    (8, -0.1, "above must be a probability"),
    (8, 1.5, "above"),
    (8, float("nan"), "above"),
    (8, "0.1", "above"),
])
def test_bad_settings_refused(views, above, match):
    clf = tiny()
    with pytest.raises(ValueError, match=match):
        clf.set_test_time_augmentation(views, above=above)
    assert clf.test_time_augmentation is None


def test_non_square_stamps_refused():
    clf = ClusterClassifier("simple", input_shape=(8, 12, 2), seed=0)
    with pytest.raises(ValueError, match="square"):
        clf.set_test_time_augmentation(4)
    clf.set_test_time_augmentation(1)  # off is always allowed


def test_calibration_records_and_follows_the_setting(tmp_path):
    stamps, labels = tiny_stamps(64, seed=4)
    clf = tiny()
    clf.set_test_time_augmentation(8, above=0.0)
    cal = clf.calibrate(stamps, labels, base_rate=0.05, training_prior=0.5)
    assert cal["test_time_augmentation"] == {"views": 8, "above": 0.0}
    # the calibration applies to the probabilities averaged over the views
    from m31clusters.classifier.calibration import _apply

    raw = _mean_over_views(tiny(), stamps, 8)
    np.testing.assert_allclose(clf.predict_proba(stamps), _apply(raw, clf.calibration),
                               atol=1e-6)
    # saved and loaded with the model
    path = tmp_path / "tta.zip"
    clf.save(path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert meta["format_version"] == 3
    assert meta["test_time_augmentation"] == {"views": 8, "above": 0.0}
    loaded = ClusterClassifier.load(path)
    assert loaded.test_time_augmentation == {"views": 8, "above": 0.0}
    np.testing.assert_allclose(loaded.predict_proba(stamps), clf.predict_proba(stamps),
                               atol=1e-6)
    # another setting drops the calibration, with a warning, never applies it
    with pytest.warns(M31ClustersWarning, match="calibration.*dropped"):
        loaded.set_test_time_augmentation(4)
    assert loaded.calibration is None
    # the same setting keeps it
    clf.set_test_time_augmentation(8, above=0.0)
    assert clf.calibration is not None
    # a mismatch made behind the method's back is refused at prediction
    clf.test_time_augmentation = None
    with pytest.raises(IncompatibleModelError, match="test_time_augmentation"):
        clf.predict_proba(stamps)


def test_format_2_files_load_without_views(tmp_path):
    path = tmp_path / "v3.zip"
    tiny().save(path)
    old = tmp_path / "v2.zip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(old, "w") as zout:
        for item in zin.infolist():
            raw = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(raw)
                meta["format_version"] = 2
                meta.pop("test_time_augmentation")
                raw = json.dumps(meta).encode()
            zout.writestr(item, raw)
    assert ClusterClassifier.load(old).test_time_augmentation is None

