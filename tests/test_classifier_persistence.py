"""Tests for m31clusters.classifier._persistence (save, load, from_config)."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _classifier_stamps import SIZE, make_stamps, stamp_sets, tiny, tiny_stamps, trained_classifier

from m31clusters.classifier import ClusterClassifier
from m31clusters.cutout import Cutout
from m31clusters.exceptions import CorruptFileError, IncompatibleModelError


@pytest.fixture(scope="module")
def data():
    return stamp_sets()


@pytest.fixture(scope="module")
def trained():
    return trained_classifier()


def test_save_load_roundtrip(trained, data, tmp_path):
    te, yte, _ = data["test"]
    path = tmp_path / "clf.zip"
    trained.save(path)
    with pytest.raises(FileExistsError):
        trained.save(path)
    assert trained.save(path, overwrite=True) == Path(path)
    with pytest.raises(TypeError):
        trained.save(path, True)  # overwrite is keyword-only
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
    "training_prior": ("training_prior", _set("training_prior", 1.5)),
    "training_prior_missing": ("training_prior", lambda m: m.pop("training_prior")),
    "calibration": ("calibration", _set("calibration", {"method": "temperature",
                                                        "temperature": 0.0})),
    "tta_views": ("test_time_augmentation", _set("test_time_augmentation",
                                                 {"views": 3, "above": 0.0})),
    "tta_above": ("test_time_augmentation", _set("test_time_augmentation",
                                                 {"views": 8, "above": 2.0})),
    "tta_keys": ("test_time_augmentation", _set("test_time_augmentation", {"views": 8})),
    "tta_missing": ("test_time_augmentation", lambda m: m.pop("test_time_augmentation")),
    "tta_vs_calibration": ("calibration", lambda m: m.update(
        test_time_augmentation={"views": 4, "above": 0.0},
        calibration={"method": "prior", "temperature": 1.0, "training_prior": 0.5,
                     "base_rate": 0.02, "validation_prior": 0.5})),
    "calibration_base_rate": ("calibration", _set("calibration", {
        "method": "prior", "temperature": 1.0, "training_prior": 0.5, "base_rate": 1.0,
        "validation_prior": 0.5})),
}


@pytest.fixture(scope="module")
def tiny_saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.zip"
    tiny().save(path)
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


DATA = Path(__file__).parent / "data"


def test_format1_file_written_before_the_split_still_loads():
    """tests/data/classifier_format1.zip was saved by the single-module classifier."""
    clf = ClusterClassifier.load(DATA / "classifier_format1.zip")
    assert clf.architecture == "simple" and clf.input_shape == (8, 8, 2)
    assert clf.threshold == pytest.approx(0.2477, abs=1e-4) and clf.threshold_metric == "f1"
    assert len(clf.history["loss"]) == 1
    rng = np.random.default_rng(0)
    stamps = Cutout(rng.normal(100, 5, (32, 8, 8, 2)).astype("float32"))
    expected = np.load(DATA / "classifier_format1_proba.npy", allow_pickle=False)
    np.testing.assert_allclose(clf.predict_proba(stamps), expected, atol=1e-6)


def test_shipped_demo_model_loads_with_the_same_network(tmp_path):
    """
    The demo model (an ensemble of three wang2022 networks, loaded in safe mode)
    computes what its own Keras file does, and the mean of its members.
    """
    import keras

    import m31clusters
    from m31clusters.models import build_model

    path = Path(m31clusters.__file__).parent / "data" / "models" / "demo_classifier.zip"
    clf = ClusterClassifier.load(path)
    assert clf.architecture == "custom:wang2022_x3" and clf.bands == ("g", "i")
    members = [layer for layer in clf.model.layers if isinstance(layer, keras.Model)]
    reference = build_model("wang2022", clf.input_shape)
    assert len(members) == 3
    assert all(m.count_params() == reference.count_params() for m in members)
    x0 = np.random.default_rng(5).normal(size=(4,) + clf.input_shape).astype("float32")
    mean = sum(np.asarray(m.predict_on_batch(x0)) for m in members) / 3
    np.testing.assert_allclose(np.asarray(clf.model.predict_on_batch(x0)), mean, atol=1e-6)
    with zipfile.ZipFile(path) as zf:
        zf.extract("model.keras", tmp_path)
    plain = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    x = np.random.default_rng(4).normal(size=(4,) + clf.input_shape).astype("float32")
    np.testing.assert_allclose(np.asarray(clf.model.predict_on_batch(x)),
                               np.asarray(plain.predict_on_batch(x)), atol=1e-6)


def test_load_goes_through_from_config(tmp_path, monkeypatch):
    """load builds through ClusterClassifier.from_config(config) -> cls(**config)."""
    clf = tiny(seed=7)
    clf.save(tmp_path / "t.zip")
    seen = []
    original = ClusterClassifier.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ClusterClassifier, "__init__", spy)
    again = ClusterClassifier.load(tmp_path / "t.zip")
    assert len(seen) == 1 and seen[0]["seed"] == 7 and seen[0]["architecture"] == "simple"
    assert again.get_config() == clf.get_config()
    st, _ = tiny_stamps(8)
    np.testing.assert_allclose(again.predict_proba(st), clf.predict_proba(st), atol=1e-6)


def test_from_config_refuses_custom_name():
    with pytest.raises(ValueError, match="pass the model itself"):
        ClusterClassifier.from_config({"architecture": "custom:flat"})


def test_per_band_normalization_round_trip(tmp_path):
    """A fixed-scale, per-band normalisation (a list in the record) is saved and reloaded."""
    norm = {"method": "asinh_flux", "scale": [50.0, 28.8]}
    clf = ClusterClassifier("simple", input_shape=(8, 8, 2), normalization=norm, seed=1)
    assert clf.normalization == norm
    x, _ = tiny_stamps()
    path = clf.save(tmp_path / "flux.zip")
    loaded = ClusterClassifier.load(path)
    assert loaded.normalization == clf.normalization
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    # the stamps are normalised with the model's scales, not their own noise
    np.testing.assert_allclose(
        loaded.predict_proba(x), clf.predict_proba(x.normalize(**norm)), atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        ClusterClassifier("simple", input_shape=(8, 8, 2),
                          normalization={"method": "asinh_flux", "scale": [1.0, -2.0]})
