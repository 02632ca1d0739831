"""Tests for m31clusters.classifier._training (ClusterClassifier.fit)."""

import numpy as np
import pytest
from _classifier_stamps import SIZE, stamp_sets, tiny, tiny_stamps, trained_classifier

from m31clusters.classifier import ClusterClassifier


@pytest.fixture(scope="module")
def data():
    return stamp_sets()


@pytest.fixture(scope="module")
def trained():
    return trained_classifier()


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


def test_fit_refuses_one_class():
    """Issue 13 bug 6: one-class training or validation labels raise ValueError."""
    clf = tiny()
    st, y = tiny_stamps(32)
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


def test_dihedral_augmentation_is_exact():
    from m31clusters.classifier._training import _dihedral_batch

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


def test_fit_progress_bar(capsys):
    """progress=True shows one bar over all training steps (the library's progress helper)."""
    clf = tiny()
    stamps, y = tiny_stamps(32)
    clf.fit(stamps, y, epochs=2, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "fit" in err and "8/8" in err and "loss" in err
    clf.fit(stamps, y, epochs=1, batch_size=8)  # quiet by default
    assert capsys.readouterr().err == ""
