"""
Training of a `~m31clusters.classifier.ClusterClassifier`: seeded batches with
dihedral augmentation and class weights, the validation split, and the
per-epoch callback (validation metrics, best-epoch restoration, early stopping,
checkpoints, progress).

`fit` is attached to `~m31clusters.classifier.ClusterClassifier` as its
``fit`` method.
"""

import math
from pathlib import Path

import numpy as np

from ..utils._io import check_overwrite
from ..utils._metrics import best_threshold, roc_auc
from ..utils._progress import PROGRESS_DEFAULT, progress_bar
from ._common import _as_float, _as_int, _check_both_classes, _empty_band_message, _keras

__all__ = []


def _dihedral_batch(x, k):
    """
    Apply dihedral transform ``k[i]`` (0..7) to stamp ``x[i]`` (N, H, W, C).

    ``k % 4`` quarter turns, then a left-right flip when ``k >= 4``.  Stamps
    are grouped by transform so each group is one vectorised numpy call.
    """
    out = np.empty_like(x)
    for t in np.unique(k):
        sel = k == t
        y = np.rot90(x[sel], int(t) % 4, axes=(1, 2))
        if t >= 4:
            y = y[:, :, ::-1]
        out[sel] = y
    return out


def _class_weights(labels, class_weight):
    if class_weight is None:
        return {0: 1.0, 1: 1.0}
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight must be 'balanced', a dict or None; got {class_weight!r}"
            )
        n = labels.size
        counts = np.bincount(labels, minlength=2)
        return {c: (n / (2.0 * counts[c]) if counts[c] else 0.0) for c in (0, 1)}
    try:
        weights = {c: _as_float(class_weight[c], f"class_weight[{c}]", 0.0) for c in (0, 1)}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            "class_weight must be 'balanced', a dict {0: w0, 1: w1} of finite weights >= 0, "
            f"or None; got {class_weight!r} ({exc})"
        ) from None
    if not weights[0] + weights[1] > 0:
        raise ValueError(f"class_weight gives both classes zero weight: {class_weight!r}")
    return weights


def _bce(labels, proba, weights=None):
    p = np.clip(proba, 1e-7, 1 - 1e-7)
    loss = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    return float(np.average(loss, weights=weights))


def fit(
    self,
    cutouts,
    labels,
    *,
    validation=None,
    epochs=10,
    batch_size=32,
    augment=True,
    class_weight="balanced",
    early_stopping=None,
    monitor=None,
    learning_rate=None,
    checkpoint=None,
    overwrite=False,
    callbacks=None,
    seed=None,
    progress=PROGRESS_DEFAULT,
):
    """
    Train the network on labelled stamps.

    Parameters
    ----------
    cutouts : `~m31clusters.cutout.Cutout`
        Raw training stamps (normalised by the classifier).
    labels : array-like of int
        1 for a cluster, 0 otherwise, one per stamp.
    validation : tuple or float, optional
        ``(cutouts, labels)`` to evaluate after each epoch, or a fraction
        of the training set to hold out (stratified, seeded).  With
        validation data the weights of the best epoch (lowest
        ``val_loss`` by default) are restored at the end.
    epochs : int, optional
        Maximum number of passes over the training set.
    batch_size : int, optional
        Stamps per step; a multiple of the number of devices.  Every
        batch has this size (the last one is completed with stamps from
        the start of the epoch) so that the step is compiled once.
    augment : bool, optional
        Apply a random dihedral transform (rotation by multiples of 90
        degrees, optionally a flip) to each stamp of every batch.
    class_weight : ``"balanced"``, dict or None, optional
        Weights of the classes in the loss; ``"balanced"`` gives each class
        the same total weight.
    early_stopping : int or None, optional
        Stop after this many epochs without improvement of *monitor*.
    monitor : str, optional
        History key used for the best epoch and early stopping:
        ``"val_loss"`` (default with validation), ``"val_auc"``,
        ``"val_f1"`` or ``"loss"`` (default without validation).
    learning_rate : float, optional
        Overrides the classifier's learning rate.
    checkpoint : str or path-like, optional
        Save the classifier (see `save`) to this file after every epoch,
        replacing the previous checkpoint.
    overwrite : bool, optional
        Allow *checkpoint* to replace a file that exists before training.
    callbacks : list of `keras.callbacks.Callback`, optional
        Extra Keras callbacks (e.g. a time limit or TensorBoard).
    seed : int, optional
        Seed for shuffling, augmentation and dropout (default: ``self.seed``).
    progress : bool, optional
        Show a progress bar over the training steps of all epochs, with
        the running loss (default: off, `PROGRESS_DEFAULT
        <m31clusters.utils._progress.PROGRESS_DEFAULT>`).

    Returns
    -------
    history : dict
        ``self.history``: per-epoch metrics over all `fit` calls.  Training
        also records ``self.training_prior`` and drops a calibration made
        for the previous weights (see `calibrate`).

    Raises
    ------
    ValueError
        For empty inputs, labels other than 0/1, labels of the wrong
        length, non-finite normalised pixels, or a bad option.
    IncompatibleModelError
        If the stamps do not have the classifier's shape or bands.
    FileExistsError
        If *checkpoint* already exists and *overwrite* is false.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.classifier import ClusterClassifier
    >>> rng = np.random.default_rng(0)
    >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
    >>> labels = np.arange(64) % 2
    >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
    >>> history = clf.fit(stamps, labels, validation=0.25, epochs=2)
    >>> len(history["loss"]), len(history["val_loss"])
    (2, 2)
    """
    keras = _keras()
    cutouts, y = self._prepare_labelled(cutouts, labels)
    _check_both_classes(y, "the training labels")
    epochs = _as_int(epochs, "epochs", minimum=1)
    batch_size = self._check_batch_size(batch_size)
    seed = self.seed if seed is None else _as_int(seed, "seed", minimum=0)
    if early_stopping is not None:
        early_stopping = _as_int(early_stopping, "early_stopping", minimum=1)
    rng_split = np.random.default_rng([seed, 1])

    if validation is None:
        val = None
    elif isinstance(validation, float | int) and not isinstance(validation, bool):
        frac = float(validation)
        if not 0 < frac < 1:
            raise ValueError(f"a validation fraction must be in (0, 1); got {validation!r}")
        hold = np.zeros(len(y), bool)
        for c in (0, 1):
            idx = np.flatnonzero(y == c)
            k = int(round(frac * idx.size))
            hold[rng_split.choice(idx, size=k, replace=False)] = True
        if hold.all() or not hold.any():
            raise ValueError(
                f"validation fraction {frac} leaves no training or no validation data"
            )
        for c, name in ((1, "clusters"), (0, "non-clusters")):
            if not hold[y == c].any() or hold[y == c].all():
                raise ValueError(
                    f"validation fraction {frac} of {int((y == c).sum())} {name} leaves "
                    f"{'no' if not hold[y == c].any() else 'all'} {name} in the validation "
                    f"split, so {'it' if not hold[y == c].any() else 'the training split'} "
                    "would hold one class only; use a larger fraction, pass "
                    "validation=(cutouts, labels), or add labelled stamps"
                )
        val = (cutouts[np.flatnonzero(hold)], y[hold])
        cutouts, y = cutouts[np.flatnonzero(~hold)], y[~hold]
    else:
        try:
            vcut, vlab = validation
        except (TypeError, ValueError):
            raise ValueError(
                "validation must be (cutouts, labels) or a fraction in (0, 1)"
            ) from None
        val = self._prepare_labelled(vcut, vlab, what="validation cutouts",
                                     label_name="validation labels")
        _check_both_classes(val[1], "the validation labels")
    if monitor is None:
        monitor = "val_loss" if val is not None else "loss"
    if monitor not in ("loss", "accuracy", "val_loss", "val_auc", "val_f1"):
        raise ValueError(
            f"unknown monitor {monitor!r}; use 'loss', 'accuracy', 'val_loss', 'val_auc' "
            "or 'val_f1'"
        )
    if monitor.startswith("val_") and val is None:
        raise ValueError(f"monitor={monitor!r} needs validation data")
    lr = self.learning_rate if learning_rate is None else _as_float(
        learning_rate, "learning_rate", 0.0)
    if checkpoint is not None:
        checkpoint = check_overwrite(checkpoint, overwrite)
        parent = checkpoint.parent if str(checkpoint.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(
                f"checkpoint directory {str(parent)!r} does not exist"
            )

    x, empty = self._prepare(cutouts, what="training stamp")
    if empty.any():
        raise ValueError(
            _empty_band_message(cutouts, empty, what="training stamp")
            + "; drop them from the training set"
        )
    if val is not None:
        xval, vempty = self._prepare(val[0], what="validation stamp")
        if vempty.any():
            raise ValueError(
                _empty_band_message(val[0], vempty, what="validation stamp")
                + "; drop them from the validation set"
            )
    else:
        xval = None
    weights = _class_weights(y, class_weight)
    w_all = np.where(y == 1, weights[1], weights[0]).astype(np.float32)
    # the class ratio the loss sees: what calibrate() shifts the prior from
    n_pos = int(y.sum())
    training_prior = weights[1] * n_pos / (weights[1] * n_pos + weights[0] * (y.size - n_pos))

    n = len(y)
    steps = math.ceil(n / batch_size)
    square = x.shape[1] == x.shape[2]
    start_epoch = len(self.history.get("loss", []))

    def batches():
        epoch = 0
        while True:
            perm = np.random.default_rng([seed, 2, epoch]).permutation(n)
            order = np.resize(perm, steps * batch_size)
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                xb = x[idx]
                if augment:
                    r = np.random.default_rng([seed, 3, epoch, step])
                    k = r.integers(0, 8, size=len(idx))
                    if not square:  # only transforms that keep H x W
                        k = np.array([0, 2, 4, 6])[k % 4]
                    xb = _dihedral_batch(xb, k)
                yield xb, y[idx].astype(np.float32)[:, None], w_all[idx]
            epoch += 1

    keras.utils.set_random_seed(seed)
    with self._scope():
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=lr),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        )
        tracker = _make_epoch_callback(
            self, xval, val[1] if val is not None else None, batch_size, monitor,
            early_stopping, checkpoint, start_epoch,
        )
        callbacks = [tracker, *(callbacks or [])]
        bar = progress_bar(progress=progress, total=epochs * steps, unit="step",
                           desc="fit")
        callbacks.append(_progress_callback(bar))
        try:
            result = self.model.fit(
                batches(),
                steps_per_epoch=steps,
                epochs=epochs,
                callbacks=callbacks,
                shuffle=False,  # the generator shuffles, seeded
                verbose=0,
            )
        finally:
            bar.close()
    for key, values in result.history.items():
        self.history.setdefault(key, []).extend(float(v) for v in values)
    if tracker.best_epoch is not None:
        self.history["best_epoch"] = tracker.best_epoch
    self.history["monitor"] = monitor
    self.training_prior = float(training_prior)
    if self.calibration is not None:  # fitted to the old weights: dropped
        from .calibration import _map_threshold

        self.threshold = _map_threshold(self.threshold, self.calibration, None)
        self.calibration = None
    return self.history

# ------------------------------------------------------------ inference

def _make_epoch_callback(clf, xval, yval, batch_size, monitor, patience, checkpoint, start):
    """Keras callback: validation metrics, best-epoch restore, early stopping, checkpoints."""
    keras = _keras()

    class _EpochEnd(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = None
            self.best_epoch = None
            self.best_weights = None
            self.wait = 0
            self.epoch_logs = []

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            if xval is not None:
                p = clf._predict_array(xval, batch_size)
                logs["val_loss"] = _bce(yval, p)
                logs["val_auc"] = roc_auc(yval, p)  # fit checked: both classes are there
                _, logs["val_f1"] = best_threshold(yval, p, metric="f1")
            value = logs.get(monitor)
            if value is not None and np.isfinite(value):
                sign = 1.0 if monitor in ("loss", "val_loss") else -1.0
                if self.best is None or sign * value < sign * self.best:
                    self.best = float(value)
                    self.best_epoch = start + epoch
                    # copies (training donates the old buffers), same device layout
                    self.best_weights = [v.value + 0 for v in self.model.weights]
                    self.wait = 0
                else:
                    self.wait += 1
                    if patience is not None and self.wait >= int(patience):
                        self.model.stop_training = True
            self.epoch_logs.append({k: float(v) for k, v in logs.items()})
            if checkpoint is not None:
                history = {k: list(v) for k, v in clf.history.items() if isinstance(v, list)}
                for entry in self.epoch_logs:
                    for k, v in entry.items():
                        history.setdefault(k, []).append(v)
                saved, clf.history = clf.history, history
                try:
                    clf.save(checkpoint, overwrite=True)
                finally:
                    clf.history = saved

        def on_train_end(self, logs=None):
            if self.best_weights is not None and xval is not None:
                for variable, value in zip(self.model.weights, self.best_weights, strict=True):
                    variable.assign(value)

    return _EpochEnd()


def _progress_callback(bar):
    """Keras callback advancing *bar* (see `progress_bar`) by one per training step."""
    keras = _keras()

    class _Progress(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            bar.update(1)
            if logs and "loss" in logs:
                bar.set_postfix_str(f"loss {float(logs['loss']):.4f}", refresh=False)

    return _Progress()

