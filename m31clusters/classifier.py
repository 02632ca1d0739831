"""
Binary star-cluster classifier over `~m31clusters.cutout.Cutout` stamps.

`ClusterClassifier` wraps a Keras 3 network (run on the JAX backend) with
everything needed around it: the stamp normalisation, seeded training with
dihedral augmentation and class balancing, best-epoch restoration,
threshold selection, evaluation (purity, recall, F1, ROC AUC, per limiting
magnitude as in Zhang et al. 2025) and safe saving/loading.

Keras is imported only when a classifier is created or loaded.
"""

import contextlib
import json
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
from astropy.table import Table

from .exceptions import BandError, CorruptFileError, IncompatibleModelError
from .models import ARCHITECTURES, build_model, small_input_conv2d
from .utils._io import atomic_path, check_overwrite
from .utils._metrics import (
    best_threshold,
    binary_metrics,
    check_labels,
    pr_curve,
    roc_curve,
)
from .utils._progress import PROGRESS_DEFAULT, progress_bar

__all__ = ["ClusterClassifier"]

_FORMAT = "m31clusters.ClusterClassifier"
_FORMAT_VERSION = 1
#: ``format_version`` values `ClusterClassifier.load` reads.
_READABLE_FORMAT_VERSIONS = (1,)
_MODEL_MEMBER = "model.keras"
_META_MEMBER = "metadata.json"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def _keras():
    import keras

    return keras


def _normalization_kwargs(normalization, name="normalization"):
    """
    Turn ``"asinh"`` or ``{"method": "asinh", ...}`` into Cutout.normalize kwargs.

    The method and its parameters are checked here (by normalising a dummy
    stamp), so that a bad normalisation fails when the classifier is made or
    loaded, not at the first prediction.
    """
    from .cutout import Cutout

    if normalization is None:
        kwargs = {"method": "none"}
    elif isinstance(normalization, str):
        kwargs = {"method": normalization}
    elif isinstance(normalization, dict) and "method" in normalization:
        kwargs = dict(normalization)
    else:
        raise ValueError(
            f"{name} must be a method name (e.g. 'asinh') or a dict with a 'method' key; "
            f"got {normalization!r}"
        )
    try:
        config = Cutout(np.ones((1, 2, 2, 2), np.float32)).normalize(**kwargs).normalization
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad {name} {normalization!r}: {exc}") from None
    bad = [k for k, v in config.items() if k not in ("method", "fill_value")
           and not math.isfinite(v)]
    if bad:
        raise ValueError(f"bad {name} {normalization!r}: {bad[0]} must be finite")
    return kwargs


def _as_int(value, name, minimum=None):
    """*value* as an int (refusing 2.5, "x", True), at least *minimum*."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return value


def _as_float(value, name, low=None, high=None, low_open=False):
    """*value* as a finite float in [low, high] (or (low, high] with *low_open*)."""
    try:
        if isinstance(value, bool | str | bytes):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}; got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"{name} must be <= {high:g}; got {value!r}")
    return out


def _check_threshold(threshold, name="threshold"):
    """A decision threshold: a finite probability in [0, 1]."""
    return _as_float(threshold, name, 0.0, 1.0)


def _check_both_classes(y, what):
    """Raise ValueError unless the 0/1 labels *y* hold both classes."""
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"{what} hold one class only ({n_pos} clusters and {y.size - n_pos} "
            "non-clusters); a classifier needs both clusters (1) and non-clusters (0)"
        )


def _unscorable(cutouts):
    """
    Stamps that cannot be scored: (N,) bool, True where a band of the stamp has
    no valid pixel (every pixel masked or non-finite).
    """
    n = len(cutouts)
    if n == 0:
        return np.zeros(0, bool)
    invalid = np.asarray(cutouts.mask) | ~np.isfinite(np.asarray(cutouts.data))
    return invalid.reshape(n, -1, invalid.shape[-1]).all(axis=1).any(axis=1)


def _empty_band_message(cutouts, empty, offset=0, what="stamp"):
    i = int(np.flatnonzero(empty)[0])
    invalid = np.asarray(cutouts.mask[i]) | ~np.isfinite(np.asarray(cutouts.data[i]))
    bands = [b for b, e in zip(cutouts.bands, invalid.reshape(-1, invalid.shape[-1]).all(axis=0),
                               strict=True) if e]
    return (f"{int(empty.sum())} {what}s have no valid pixel in a band (first: {what} "
            f"{i + offset}, band {', '.join(bands)})")


def _safe_mode_scope():
    """
    Keras' own safe-mode scope: inside it, deserialisation refuses to run code
    (``Lambda`` layers, arbitrary functions) whatever the session's global
    setting (``keras.config.enable_unsafe_deserialization()`` included).
    """
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(True)


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


def _to_builtin(obj):
    """Make numpy scalars/arrays JSON serialisable."""
    if isinstance(obj, dict):
        return {str(k): _to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_builtin(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_builtin(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else obj
    return obj


_THRESHOLD_METRICS = ("f1", "accuracy", "youden", "balanced_accuracy")


def _validate_metadata(meta, path):
    """
    Check every field of a saved classifier's ``metadata.json``.

    Returns ``(config, state)``: the constructor arguments and the fitted
    state (threshold, metrics, history, recorded normalisation, versions).
    Raises `CorruptFileError` naming *path* and the first bad field.
    """
    where = str(path)

    def bad(field, why):
        return CorruptFileError(f"{where!r}: bad metadata field {field!r}: {why}")

    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise CorruptFileError(f"{where!r} is not a saved ClusterClassifier")
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in _READABLE_FORMAT_VERSIONS:
        raise bad("format_version", f"{version!r} is not one this version reads "
                  f"({', '.join(map(str, _READABLE_FORMAT_VERSIONS))}); the file was written by "
                  "another version of m31clusters")
    required = ("architecture", "input_shape", "bands", "normalization", "normalize_kwargs",
                "threshold", "threshold_metric", "metrics", "history", "seed",
                "learning_rate")
    for field in required:
        if field not in meta:
            raise bad(field, "missing")

    arch = meta["architecture"]
    if not isinstance(arch, str) or not (arch in ARCHITECTURES or arch.startswith("custom:")):
        raise bad("architecture", f"{arch!r} is neither one of {', '.join(ARCHITECTURES)} nor "
                  "'custom:<name>'")
    bands = meta["bands"]
    if (not isinstance(bands, list) or not bands
            or not all(isinstance(b, str) and b for b in bands)):
        raise bad("bands", f"{bands!r} is not a non-empty list of band names")
    if len(set(bands)) != len(bands):
        raise bad("bands", f"{bands!r} has duplicate bands")
    shape = meta["input_shape"]
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise bad("input_shape", f"{shape!r} is not three positive integers (H, W, C)")
    if shape[2] != len(bands):
        raise bad("bands", f"{len(bands)} bands {bands!r} for {shape[2]} input channels "
                  f"(input_shape {shape!r})")
    try:
        kwargs = _normalization_kwargs(meta["normalize_kwargs"], name="normalize_kwargs")
    except ValueError as exc:
        raise bad("normalize_kwargs", exc) from None
    recorded = meta["normalization"]
    try:
        _normalization_kwargs(recorded, name="normalization")
    except ValueError as exc:
        raise bad("normalization", exc) from None
    mismatch = [k for k in kwargs if k in recorded and recorded[k] != kwargs[k]]
    if mismatch:
        raise bad("normalization", f"{recorded!r} contradicts normalize_kwargs {kwargs!r} "
                  f"({mismatch[0]})")
    threshold = meta["threshold"]
    if (isinstance(threshold, bool) or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0):  # NaN fails too
        raise bad("threshold", f"{threshold!r} is not a probability in [0, 1]")
    tm = meta["threshold_metric"]
    if tm is not None and not (
        tm in _THRESHOLD_METRICS
        or (isinstance(tm, str) and tm.startswith("purity>=")
            and _is_probability_text(tm[len("purity>="):]))
    ):
        raise bad("threshold_metric", f"{tm!r} is not None, one of "
                  f"{', '.join(_THRESHOLD_METRICS)} or 'purity>=<p>'")
    metrics = meta["metrics"] if meta["metrics"] is not None else {}
    if not isinstance(metrics, dict) or not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool))
        for v in metrics.values()
    ):
        raise bad("metrics", "not a dict of numbers")
    history = meta["history"] if meta["history"] is not None else {}
    if not isinstance(history, dict):
        raise bad("history", "not a dict")
    for key, value in history.items():
        ok = (isinstance(value, list) and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in value
        )) or (key == "best_epoch" and isinstance(value, int) and value >= 0) or (
            key == "monitor" and isinstance(value, str))
        if not ok:
            raise bad(f"history.{key}", f"{value!r} is not a list of numbers")
    seed = meta["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise bad("seed", f"{seed!r} is not a non-negative integer")
    lr = meta["learning_rate"]
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 <= lr < math.inf:
        raise bad("learning_rate", f"{lr!r} is not a finite number >= 0")
    data_format = meta.get("data_format", "channels_last")
    if data_format not in ("channels_last", "channels_first"):
        raise bad("data_format", f"{data_format!r} is not 'channels_last' or 'channels_first'")
    versions = meta.get("versions", {})
    if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
        raise bad("versions", "not a dict of version strings")
    config = {
        "architecture": arch,
        "input_shape": tuple(shape),
        "bands": tuple(bands),
        "normalization": kwargs,
        "seed": seed,
        "learning_rate": float(lr),
        "data_format": data_format,
    }
    state = {
        "normalization": dict(recorded),
        "threshold": float(threshold),
        "threshold_metric": tm,
        "metrics": dict(metrics),
        "history": dict(history),
        "versions": dict(versions),
    }
    return config, state


def _is_probability_text(text):
    try:
        value = float(text)
    except ValueError:
        return False
    return 0.0 < value <= 1.0


def _default_distribution(distribution):
    """``"auto"``: DataParallel over all devices when there is more than one."""
    if distribution is None:
        return None
    keras = _keras()
    if isinstance(distribution, str):
        if distribution != "auto":
            raise ValueError(
                f"distribution must be 'auto', None or a keras.distribution object; "
                f"got {distribution!r}"
            )
        devices = keras.distribution.list_devices()
        if len(devices) < 2:
            return None
        return keras.distribution.DataParallel(devices=devices)
    if not isinstance(distribution, keras.distribution.Distribution):
        raise TypeError(
            f"distribution must be 'auto', None or a keras.distribution.Distribution; "
            f"got {type(distribution).__name__}"
        )
    return distribution


# ----------------------------------------------------------------------------
# the classifier
# ----------------------------------------------------------------------------


class ClusterClassifier:
    """
    A binary cluster / not-cluster classifier over `~m31clusters.cutout.Cutout` stamps.

    Parameters
    ----------
    architecture : str or `keras.Model`, optional
        A name from `m31clusters.models.ARCHITECTURES` (``"resnet50"``, the
        network of Zhang et al. 2025, by default; ``"simple"`` is a tiny
        network for tests) or any Keras model mapping ``(N, H, W, C)`` stamps
        to ``(N, 1)`` probabilities.  See `m31clusters.models.build_model`.
    input_shape : tuple of int, optional
        ``(H, W, C)`` stamp shape; ``C`` must equal ``len(bands)``.  Ignored
        (taken from the model) when a Keras model is passed.
    bands : tuple of str, optional
        The bands of the stamps, in channel order.
    normalization : str or dict, optional
        How raw stamps are normalised before entering the network, applied by
        the classifier itself with `Cutout.normalize
        <m31clusters.cutout.Cutout.normalize>`: a method name (``"asinh"``,
        ``"zscale"``, ``"percentile"``, ``"standardize"``, ``"none"``) or a
        dict ``{"method": ..., **params}``.  Stamps already normalised the same
        way are accepted as they are.
    seed : int or None, optional
        Seed for the weight initialisation, the shuffling, the augmentation
        and dropout.  ``None`` draws one (kept in ``self.seed``) so that the
        run can be repeated.
    learning_rate : float, optional
        Adam learning rate used by `fit`.
    distribution : ``"auto"``, None or `keras.distribution.Distribution`, optional
        ``"auto"`` trains and predicts data-parallel
        (`keras.distribution.DataParallel`) when JAX sees more than one
        device (e.g. several GPUs) and on one device otherwise.
    data_format : ``"channels_last"`` or ``"channels_first"``, optional
        Internal layout of a named architecture (the classifier always takes
        ``(N, H, W, C)`` stamps; see `m31clusters.models.build_model`).  Both
        compute the same network; on the CPUs measured so far neither is
        faster.

    Attributes
    ----------
    model : `keras.Model`
        The network.
    threshold : float
        Probability above which `predict` calls a stamp a cluster (0.5 until
        `select_threshold` is called).
    history : dict
        Per-epoch training history (``loss``, ``accuracy`` and, with
        validation data, ``val_loss``, ``val_auc``, ``val_f1``) over all
        `fit` calls, plus ``best_epoch`` after the last one.
    metrics : dict
        The last metrics computed by `evaluate` or `select_threshold`.
    normalization : dict
        The normalisation recorded from the stamps seen by the network.

    Notes
    -----
    Same seed and same data give the same weights and predictions on the
    same machine: Keras' global seed, the shuffling and the augmentation are
    all derived from ``seed``, and XLA on CPU is deterministic.  On GPUs
    some XLA reductions are not bit-reproducible unless
    ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` is set.

    Examples
    --------
    >>> from m31clusters.classifier import ClusterClassifier
    >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=1)
    >>> clf
    <ClusterClassifier simple (16, 16, 2) bands=('g', 'i') normalization='asinh' threshold=0.5>
    """

    def __init__(
        self,
        architecture="resnet50",
        input_shape=(64, 64, 2),
        bands=("g", "i"),
        normalization="asinh",
        seed=None,
        learning_rate=1e-3,
        distribution="auto",
        data_format="channels_last",
    ):
        keras = _keras()
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
        self.seed = _as_int(seed, "seed", minimum=0)
        if isinstance(bands, str) or not all(isinstance(b, str) and b for b in bands):
            raise BandError(
                f"bands must be a sequence of non-empty band names (e.g. ('g', 'i')); "
                f"got {bands!r}"
            )
        self.bands = tuple(bands)
        if len(self.bands) == 0 or len(set(self.bands)) != len(self.bands):
            raise BandError(f"bands must be a non-empty tuple of distinct names; got {bands!r}")
        self._normalize_kwargs = _normalization_kwargs(normalization)
        self.normalization = dict(self._normalize_kwargs)
        self.learning_rate = _as_float(learning_rate, "learning_rate", 0.0)
        self.distribution = _default_distribution(distribution)
        self.threshold = 0.5
        self.threshold_metric = None
        self.metrics = {}
        self.history = {}
        self._source = None

        if isinstance(architecture, keras.Model):
            model = architecture
            shape = tuple(model.input_shape[1:])
            if len(shape) != 3 or None in shape:
                raise ValueError(
                    f"a custom model must take (N, H, W, C) stamps of fixed size; its input "
                    f"shape is {model.input_shape}"
                )
            if tuple(model.output_shape[1:]) != (1,):
                raise ValueError(
                    f"a custom model must return (N, 1) probabilities; its output shape is "
                    f"{model.output_shape}"
                )
            self.architecture = f"custom:{model.name}"
            self.input_shape = tuple(int(s) for s in shape)
        else:
            if not isinstance(architecture, str) or architecture.lower() not in ARCHITECTURES:
                raise ValueError(
                    f"unknown architecture {architecture!r}; choose one of "
                    f"{', '.join(ARCHITECTURES)} or pass a keras.Model"
                )
            self.architecture = architecture.lower()
            try:
                self.input_shape = tuple(_as_int(s, "input_shape") for s in input_shape)
            except (TypeError, ValueError):
                raise ValueError(
                    f"input_shape must be (H, W, C), three positive integers; got {input_shape!r}"
                ) from None
            model = None
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (H, W, C); got {input_shape!r}")
        if self.input_shape[2] != len(self.bands):
            raise BandError(
                f"input_shape {self.input_shape} has {self.input_shape[2]} channels but "
                f"{len(self.bands)} bands were given ({', '.join(self.bands)})"
            )
        self.data_format = data_format
        if model is None:
            keras.utils.set_random_seed(self.seed)
            with self._scope():
                model = build_model(self.architecture, self.input_shape, data_format=data_format)
        self.model = model

    # ------------------------------------------------------------------ utils

    def __repr__(self):
        method = self.normalization.get("method")
        return (
            f"<ClusterClassifier {self.architecture} {self.input_shape} bands={self.bands} "
            f"normalization={method!r} threshold={self.threshold:.4g}>"
        )

    def _scope(self):
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()

    def _replicas(self):
        if self.distribution is None:
            return 1
        return int(np.prod(self.distribution.device_mesh.shape))

    def _where(self):
        return f" (classifier loaded from {str(self._source)!r})" if self._source else ""

    def _check_cutout(self, cutouts):
        from .cutout import Cutout

        if not isinstance(cutouts, Cutout):
            raise TypeError(f"expected a Cutout; got {type(cutouts).__name__}")
        if tuple(cutouts.bands) != self.bands:
            raise IncompatibleModelError(
                f"the classifier was built for bands {self.bands} but the cutouts have bands "
                f"{tuple(cutouts.bands)}{self._where()}"
            )
        shape = tuple(np.shape(cutouts.data)[1:])
        if shape != self.input_shape:
            raise IncompatibleModelError(
                f"the classifier takes {self.input_shape} stamps but the cutouts are {shape}"
                f"{self._where()}"
            )

    def _prepare(self, cutouts, offset=0, what="stamp"):
        """
        Validated, normalised float32 array (N, H, W, C) of *cutouts* and the
        (N,) bool array of the stamps that cannot be scored (a band with no
        valid pixel; their pixels in the array are zeros).
        """
        self._check_cutout(cutouts)
        empty = _unscorable(cutouts)
        if cutouts.normalization is None:
            cutouts = cutouts.normalize(**self._normalize_kwargs)
            self.normalization = _to_builtin(dict(cutouts.normalization))
        else:
            given = dict(cutouts.normalization)
            wanted = self._normalize_kwargs
            mismatch = [
                k for k in wanted if k in given and _to_builtin(given[k]) != _to_builtin(wanted[k])
            ]
            if given.get("method") != wanted.get("method") or mismatch:
                raise IncompatibleModelError(
                    f"the cutouts are already normalised with {given} but the classifier uses "
                    f"{wanted}; pass raw cutouts{self._where()}"
                )
        x = np.asarray(cutouts.data, dtype=np.float32)
        if empty.any():
            x = x.copy()
            x[empty] = 0.0
        bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0]) + offset
            raise ValueError(
                f"{int(bad.sum())} normalised {what}s contain NaN or infinite pixels (first: "
                f"{what} {i}); mask them in the Cutout so that normalisation fills them"
            )
        return x, empty

    def _prepare_labelled(self, cutouts, labels, what="cutouts", label_name="labels"):
        self._check_cutout(cutouts)
        n = len(cutouts)
        if n == 0:
            raise ValueError(f"{what} is empty: at least one stamp is needed")
        y = check_labels(labels, n=n, name=label_name)
        return cutouts, y

    def _predict_array(self, x, batch_size):
        """Probabilities for a normalised array, in fixed-size (padded) batches."""
        n = len(x)
        out = np.empty(n, dtype=np.float64)
        with self._scope():
            for start in range(0, n, batch_size):
                chunk = x[start : start + batch_size]
                m = len(chunk)
                if m < batch_size:  # pad so that one compiled shape serves all batches
                    chunk = np.concatenate(
                        [chunk, np.zeros((batch_size - m,) + chunk.shape[1:], chunk.dtype)]
                    )
                p = self.model.predict_on_batch(chunk)
                out[start : start + m] = np.asarray(p, dtype=np.float64).reshape(-1)[:m]
        return out

    def _check_batch_size(self, batch_size):
        try:
            batch_size = _as_int(batch_size, "batch_size", minimum=1)
        except ValueError:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}") from None
        if batch_size % self._replicas():
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of the {self._replicas()} devices "
                "used for data-parallel training"
            )
        return batch_size

    # ------------------------------------------------------------- training

    def fit(
        self,
        cutouts,
        labels,
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
            ``self.history``: per-epoch metrics over all `fit` calls.

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
            result = self.model.fit(
                batches(),
                steps_per_epoch=steps,
                epochs=epochs,
                callbacks=callbacks,
                shuffle=False,  # the generator shuffles, seeded
                verbose=0,
            )
        bar.close()
        for key, values in result.history.items():
            self.history.setdefault(key, []).extend(float(v) for v in values)
        if tracker.best_epoch is not None:
            self.history["best_epoch"] = tracker.best_epoch
        self.history["monitor"] = monitor
        return self.history

    # ------------------------------------------------------------ inference

    def predict_proba(self, cutouts, batch_size=128, progress=False):
        """
        Cluster probability of every stamp, streamed in batches.

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout` or iterable of them
            Raw stamps.  An iterable (e.g. a generator reading chunks from
            disk) is consumed chunk by chunk; only one batch is normalised
            and held in memory at a time.
        batch_size : int, optional
            Stamps per forward pass (each pass has this size, padding the last).
        progress : bool, optional
            Show a tqdm progress bar.

        Returns
        -------
        proba : `~numpy.ndarray`
            ``(N,)`` probabilities in [0, 1], and NaN for every stamp that
            cannot be scored: one of its bands has no valid pixel (all
            masked or non-finite, e.g. off the image or in a chip gap), so
            that no confidence is ever published for an empty stamp.

        Raises
        ------
        IncompatibleModelError
            If the stamps do not have the classifier's shape or bands.
        ValueError
            If a normalised stamp has NaN or infinite pixels.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> proba = clf.predict_proba(stamps, batch_size=32)
        >>> proba.shape, bool(((proba >= 0) & (proba <= 1)).all())
        ((64,), True)
        >>> chunks = (stamps[i : i + 16] for i in range(0, 64, 16))  # streaming
        >>> bool(np.allclose(clf.predict_proba(chunks, batch_size=32), proba, atol=1e-6))
        True
        >>> empty = Cutout(np.full((1, 16, 16, 2), np.nan, dtype="float32"))
        >>> clf.predict_proba(empty)  # no valid pixel: no score
        array([nan])
        """
        batch_size = self._check_batch_size(batch_size)
        from .cutout import Cutout

        chunks = [cutouts] if isinstance(cutouts, Cutout) else cutouts
        total = len(cutouts) if isinstance(cutouts, Cutout) else None
        out = []
        done = 0
        bar = progress_bar(progress=progress, total=total, unit="stamp", desc="predict")
        try:
            for chunk in chunks:
                self._check_cutout(chunk)
                for start in range(0, len(chunk), batch_size):
                    part = chunk[start : start + batch_size]
                    x, empty = self._prepare(part, offset=done)
                    p = np.full(len(x), np.nan)
                    if not empty.all():
                        p[~empty] = self._predict_array(x[~empty], batch_size)
                    out.append(p)
                    done += len(x)
                    bar.update(len(x))
        finally:
            bar.close()
        return np.concatenate(out) if out else np.empty(0)

    def predict(self, cutouts, threshold=None, batch_size=128):
        """
        Cluster (1) / not-cluster (0) decision for every stamp.

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout` or iterable of them
            Raw stamps.
        threshold : float, optional
            Probability threshold (default: the stored ``self.threshold``).
        batch_size : int, optional
            Stamps per forward pass.

        Returns
        -------
        labels : `~numpy.ndarray` of int8
            1 where ``proba >= threshold``; 0 (not a cluster) for a stamp
            that cannot be scored (NaN probability, see `predict_proba`).

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> clf.predict(stamps[:4], threshold=0.0)
        array([1, 1, 1, 1], dtype=int8)
        """
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        p = self.predict_proba(cutouts, batch_size=batch_size)
        return np.where(np.isnan(p), False, p >= threshold).astype(np.int8)

    # ------------------------------------------------------------ evaluation

    def _scored(self, cutouts, labels, batch_size):
        cutouts, y = self._prepare_labelled(cutouts, labels)
        return y, self.predict_proba(cutouts, batch_size=batch_size)

    def select_threshold(
        self, cutouts, labels, metric="f1", target_purity=None, batch_size=128
    ):
        """
        Choose and store the probability threshold from labelled stamps.

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout`
            Labelled stamps not used for training (e.g. the validation set).
        labels : array-like of int
            1 for a cluster, 0 otherwise.
        metric : str, optional
            Maximised quantity: ``"f1"``, ``"accuracy"``, ``"youden"`` or
            ``"balanced_accuracy"``.
        target_purity : float, optional
            Instead of *metric*: the lowest threshold whose purity
            (precision) reaches this value, i.e. the highest recall at that
            purity.
        batch_size : int, optional
            Stamps per forward pass.

        Returns
        -------
        threshold : float
            The threshold, also stored in ``self.threshold``; the metrics at
            that threshold are stored in ``self.metrics``.

        Raises
        ------
        ValueError
            If the labels hold a single class, or no threshold reaches
            *target_purity*.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> t = clf.select_threshold(stamps, labels)
        >>> clf.threshold == t, clf.threshold_metric
        (True, 'f1')
        """
        if target_purity is not None:
            target_purity = _as_float(target_purity, "target_purity", 0.0, 1.0, low_open=True)
        y, p = self._scored(cutouts, labels, batch_size)
        threshold, _ = best_threshold(y, p, metric=metric, target_purity=target_purity)
        self.threshold = threshold
        self.threshold_metric = (
            f"purity>={float(target_purity):g}" if target_purity is not None else str(metric)
        )
        self.metrics = binary_metrics(y, p, threshold)
        return threshold

    def evaluate(self, cutouts, labels, threshold=None, batch_size=128):
        """
        Classification metrics on labelled stamps.

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout`
            Labelled stamps.
        labels : array-like of int
            1 for a cluster, 0 otherwise.
        threshold : float, optional
            Probability threshold (default: the stored one).
        batch_size : int, optional
            Stamps per forward pass.

        Returns
        -------
        metrics : dict
            ``purity`` (precision, TP / (TP + FP)), ``recall``, ``f1``,
            ``accuracy``, ``roc_auc``, the confusion counts ``tp``, ``fp``,
            ``tn``, ``fn``, ``n`` and the ``threshold`` used.  Ratios with a
            zero denominator (and the AUC of a single class) are NaN.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> m = clf.evaluate(stamps, labels, threshold=0.0)  # everything called a cluster
        >>> m["purity"], m["recall"], m["tp"], m["fp"]
        (0.5, 1.0, 32, 32)
        """
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        y, p = self._scored(cutouts, labels, batch_size)
        self.metrics = binary_metrics(y, p, threshold)
        return dict(self.metrics)

    def evaluate_by_magnitude(
        self, cutouts, labels, mag, limits=(19, 20, 21, 22), threshold=None, batch_size=128
    ):
        """
        Metrics for the stamps brighter than each limiting magnitude.

        This reproduces the limiting-magnitude study of Zhang et al. (2025):
        for every limit, the metrics of the stamps with ``mag < limit``.
        (The paper also *retrains* per limit; do that by calling `fit` on the
        matching subsets.)

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout`
            Labelled stamps.
        labels : array-like of int
            1 for a cluster, 0 otherwise.
        mag : array-like or `~astropy.units.Quantity`
            Magnitude of every stamp (e.g. i band); NaN never passes a limit.
        limits : sequence of float, optional
            Limiting magnitudes.
        threshold : float, optional
            Probability threshold (default: the stored one).
        batch_size : int, optional
            Stamps per forward pass.

        Returns
        -------
        table : `~astropy.table.Table`
            One row per limit: ``mag_limit``, ``n``, ``n_cluster``,
            ``purity``, ``recall``, ``f1``, ``accuracy``, ``roc_auc``,
            ``tp``, ``fp``, ``tn``, ``fn``.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> mag = np.linspace(18, 22, 64)
        >>> table = clf.evaluate_by_magnitude(stamps, labels, mag, limits=(19, 21))
        >>> table["n"].tolist()
        [16, 48]
        """
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        try:
            mag = np.asarray(getattr(mag, "value", mag), dtype=float)
            limits = np.atleast_1d(np.asarray(limits, dtype=float))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"mag and limits must be numbers: {exc}") from None
        y, p = self._scored(cutouts, labels, batch_size)
        if mag.shape != y.shape:
            raise ValueError(f"mag has shape {mag.shape} but there are {y.size} stamps")
        rows = []
        for limit in limits:
            sel = mag < limit
            if sel.any():
                m = binary_metrics(y[sel], p[sel], threshold)
            else:
                m = dict.fromkeys(("purity", "recall", "f1", "accuracy", "roc_auc"), np.nan)
                m.update(tp=0, fp=0, tn=0, fn=0)
            rows.append(
                (limit, int(sel.sum()), int(y[sel].sum()), m["purity"], m["recall"], m["f1"],
                 m["accuracy"], m["roc_auc"], m["tp"], m["fp"], m["tn"], m["fn"])
            )
        names = ("mag_limit", "n", "n_cluster", "purity", "recall", "f1", "accuracy",
                 "roc_auc", "tp", "fp", "tn", "fn")
        table = Table(rows=rows, names=names)
        table.meta["threshold"] = threshold
        return table

    def _plot_axes(self, ax):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        return ax

    def plot_roc(self, cutouts, labels, ax=None, batch_size=128, **kwargs):
        """
        Plot the ROC curve on labelled stamps, marking the stored threshold.

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout`
            Labelled stamps.
        labels : array-like of int
            1 for a cluster, 0 otherwise.
        ax : `matplotlib.axes.Axes`, optional
            Axes to draw on (default: a new figure).
        batch_size : int, optional
            Stamps per forward pass.
        **kwargs
            Passed to `matplotlib.axes.Axes.plot`.

        Returns
        -------
        ax : `matplotlib.axes.Axes`
        """
        y, p = self._scored(cutouts, labels, batch_size)
        fpr, tpr, _ = roc_curve(y, p)
        m = binary_metrics(y, p, self.threshold)
        ax = self._plot_axes(ax)
        kwargs.setdefault("label", f"{self.architecture} (AUC = {m['roc_auc']:.3f})")
        ax.plot(fpr, tpr, drawstyle="steps-post", **kwargs)
        ax.plot([0, 1], [0, 1], ls=":", color="0.6")
        ax.plot(m["fp"] / max(m["fp"] + m["tn"], 1), m["recall"], "o",
                label=f"threshold {self.threshold:.3g}")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate (recall)")
        ax.legend(loc="lower right")
        return ax

    def plot_pr(self, cutouts, labels, ax=None, batch_size=128, **kwargs):
        """
        Plot purity (precision) against recall, marking the stored threshold.

        Parameters
        ----------
        cutouts : `~m31clusters.cutout.Cutout`
            Labelled stamps.
        labels : array-like of int
            1 for a cluster, 0 otherwise.
        ax : `matplotlib.axes.Axes`, optional
            Axes to draw on (default: a new figure).
        batch_size : int, optional
            Stamps per forward pass.
        **kwargs
            Passed to `matplotlib.axes.Axes.plot`.

        Returns
        -------
        ax : `matplotlib.axes.Axes`
        """
        y, p = self._scored(cutouts, labels, batch_size)
        recall, purity, _ = pr_curve(y, p)
        m = binary_metrics(y, p, self.threshold)
        ax = self._plot_axes(ax)
        kwargs.setdefault("label", self.architecture)
        ax.plot(recall, purity, **kwargs)
        ax.plot(m["recall"], m["purity"], "o",
                label=f"threshold {self.threshold:.3g} (F1 = {m['f1']:.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("purity (precision)")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower left")
        return ax

    # ------------------------------------------------------------ persistence

    def _metadata(self):
        import jax

        from . import __version__

        keras = _keras()
        return _to_builtin(
            {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "architecture": self.architecture,
                "input_shape": list(self.input_shape),
                "bands": list(self.bands),
                "normalization": self.normalization,
                "normalize_kwargs": self._normalize_kwargs,
                "threshold": self.threshold,
                "threshold_metric": self.threshold_metric,
                "metrics": self.metrics,
                "history": self.history,
                "seed": self.seed,
                "learning_rate": self.learning_rate,
                "data_format": self.data_format,
                "versions": {
                    "m31clusters": __version__,
                    "keras": keras.__version__,
                    "keras_backend": keras.backend.backend(),
                    "jax": jax.__version__,
                    "numpy": np.__version__,
                },
            }
        )

    def save(self, path, overwrite=False):
        """
        Save the network and its metadata to one file (written atomically).

        The file is a zip archive holding ``model.keras`` (the Keras model)
        and ``metadata.json`` (architecture, input shape, bands,
        normalisation, threshold, metrics, history, seed and the library,
        Keras and JAX versions).

        Parameters
        ----------
        path : str or path-like
            Output file (e.g. ``"classifier.zip"``).
        overwrite : bool, optional
            Replace an existing file.

        Raises
        ------
        FileExistsError
            If *path* exists and *overwrite* is false.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "classifier.zip")
        >>> clf.save(path)
        >>> again = ClusterClassifier.load(path)
        >>> bool(np.allclose(again.predict_proba(stamps), clf.predict_proba(stamps), atol=1e-6))
        True
        """
        meta = json.dumps(self._metadata(), indent=1, allow_nan=False)
        with tempfile.TemporaryDirectory(prefix="m31clusters-save-") as tmp:
            model_file = os.path.join(tmp, _MODEL_MEMBER)
            with warnings.catch_warnings():
                # Keras 3.15 Variable.__array__ lacks numpy 2's ``copy`` keyword
                warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't")
                self.model.save(model_file)
            with atomic_path(path, overwrite=overwrite) as out:
                with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
                    zf.writestr(_META_MEMBER, meta)
                    zf.write(model_file, _MODEL_MEMBER)

    @classmethod
    def load(cls, path, distribution="auto"):
        """
        Load a classifier written by `save`.

        The Keras model is loaded with ``safe_mode=True`` (no arbitrary code).

        Parameters
        ----------
        path : str or path-like
            File written by `save`.
        distribution : ``"auto"``, None or `keras.distribution.Distribution`, optional
            As for `ClusterClassifier`.

        Returns
        -------
        classifier : `ClusterClassifier`

        Raises
        ------
        FileNotFoundError
            If *path* does not exist.
        CorruptFileError
            If the file is truncated, corrupt or not a saved classifier.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.classifier import ClusterClassifier
        >>> rng = np.random.default_rng(0)
        >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
        >>> labels = np.arange(64) % 2
        >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
        >>> import os, tempfile
        >>> bad = os.path.join(tempfile.mkdtemp(), "junk.zip")
        >>> with open(bad, "wb") as f:
        ...     _ = f.write(b"not a classifier")
        >>> ClusterClassifier.load(bad)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        CorruptFileError: 'junk.zip' is truncated or not a saved ClusterClassifier
        """
        keras = _keras()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {str(path)!r}")
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                missing = {_META_MEMBER, _MODEL_MEMBER} - names
                if missing:
                    raise CorruptFileError(
                        f"{str(path)!r} is not a saved ClusterClassifier (missing "
                        f"{', '.join(sorted(missing))})"
                    )
                bad = zf.testzip()
                if bad is not None:
                    raise CorruptFileError(f"{str(path)!r} is corrupt (bad CRC in {bad})")
                meta = json.loads(zf.read(_META_MEMBER).decode("utf-8"))
                config, state = _validate_metadata(meta, path)
                with tempfile.TemporaryDirectory(prefix="m31clusters-load-") as tmp:
                    zf.extract(_MODEL_MEMBER, tmp)
                    dist = _default_distribution(distribution)
                    scope = dist.scope() if dist is not None else contextlib.nullcontext()
                    with scope, _safe_mode_scope():
                        model = keras.saving.load_model(
                            os.path.join(tmp, _MODEL_MEMBER), compile=False, safe_mode=True,
                            custom_objects={"SmallInputConv2D": small_input_conv2d()},
                        )
        except CorruptFileError:
            raise
        except (zipfile.BadZipFile, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptFileError(
                f"{str(path)!r} is truncated or not a saved ClusterClassifier: {exc}"
            ) from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if "safe_mode" in str(exc) or "unsafe" in str(exc):
                raise CorruptFileError(
                    f"{str(path)!r} holds code (e.g. a Lambda layer) in its Keras model; "
                    "m31clusters never runs code from a file, whatever the session's Keras "
                    "settings, so it cannot be loaded"
                ) from exc
            raise CorruptFileError(f"cannot load the Keras model in {str(path)!r}: {exc}") from exc
        self = cls.__new__(cls)
        self.seed = config["seed"]
        self.bands = config["bands"]
        self._normalize_kwargs = config["normalization"]
        self.learning_rate = config["learning_rate"]
        self.distribution = dist
        self.architecture = config["architecture"]
        self.input_shape = config["input_shape"]
        self.data_format = config["data_format"]
        self.normalization = state["normalization"]
        self.threshold = state["threshold"]
        self.threshold_metric = state["threshold_metric"]
        self.metrics = state["metrics"]
        self.history = state["history"]
        if tuple(model.input_shape[1:]) != self.input_shape:
            raise CorruptFileError(
                f"{str(path)!r}: the model takes {model.input_shape[1:]} but the metadata says "
                f"{self.input_shape}"
            )
        if tuple(model.output_shape[1:]) != (1,):
            raise CorruptFileError(
                f"{str(path)!r}: the model returns {model.output_shape[1:]}, not one "
                "probability per stamp"
            )
        self.model = model
        self._source = path
        self.versions = state["versions"]
        return self


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
                if 0 < yval.sum() < yval.size:
                    from .utils._metrics import roc_auc

                    logs["val_auc"] = roc_auc(yval, p)
                    _, logs["val_f1"] = best_threshold(yval, p, metric="f1")
                else:
                    logs["val_auc"] = float("nan")
                    logs["val_f1"] = binary_metrics(yval, p, 0.5)["f1"]
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
