"""
Saving and loading a `~m31clusters.classifier.ClusterClassifier`.

A saved classifier is one zip file holding ``model.keras`` (the Keras model)
and ``metadata.json``.  `load` validates every metadata field, rebuilds the
classifier through its one constructor path (``from_config(config)`` is
``cls(**config)``, as keras-hub does) and then loads the weights; the Keras
model is read inside Keras' own safe-mode scope, so no code in a file is ever
run, whatever the session's Keras settings.
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

from ..exceptions import CorruptFileError
from ..models import ARCHITECTURES, small_input_conv2d
from ..utils._io import atomic_path
from ..utils._metrics import THRESHOLD_METRICS
from ._augmentation import _check_tta
from ._common import (
    _default_distribution,
    _keras,
    _normalization_kwargs,
    _safe_mode_scope,
    _to_builtin,
)
from .calibration import _check_calibration_dict

__all__ = []

_FORMAT = "m31clusters.ClusterClassifier"
#: 1: the first format; 2: adds ``calibration`` and ``training_prior``; 3: adds
#: ``test_time_augmentation``.
_FORMAT_VERSION = 3
#: ``format_version`` values `ClusterClassifier.load` reads.
_READABLE_FORMAT_VERSIONS = (1, 2, 3)
_MODEL_MEMBER = "model.keras"
_META_MEMBER = "metadata.json"



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
        tm in THRESHOLD_METRICS
        or (isinstance(tm, str) and tm.startswith("purity>=")
            and _is_probability_text(tm[len("purity>="):]))
    ):
        raise bad("threshold_metric", f"{tm!r} is not None, one of "
                  f"{', '.join(THRESHOLD_METRICS)} or 'purity>=<p>'")
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
    if version >= 2:
        for field in ("calibration", "training_prior"):
            if field not in meta:
                raise bad(field, "missing")
    if version >= 3 and "test_time_augmentation" not in meta:
        raise bad("test_time_augmentation", "missing")
    try:
        tta = _check_tta(meta.get("test_time_augmentation"))
    except ValueError as exc:
        raise bad("test_time_augmentation", exc) from None
    if tta is not None and shape[0] != shape[1]:
        raise bad("test_time_augmentation", f"{tta!r} needs square stamps; the input shape "
                  f"is {tuple(shape)}")
    calibration = meta.get("calibration")
    if calibration is not None:
        try:
            calibration = _check_calibration_dict(calibration)
        except ValueError as exc:
            raise bad("calibration", exc) from None
    training_prior = meta.get("training_prior")
    if training_prior is not None and (
        isinstance(training_prior, bool) or not isinstance(training_prior, int | float)
        or not 0 <= training_prior <= 1
    ):
        raise bad("training_prior", f"{training_prior!r} is not a fraction in [0, 1]")
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
        "calibration": calibration,
        "training_prior": None if training_prior is None else float(training_prior),
        "test_time_augmentation": tta,
    }
    if calibration is not None and calibration.get("test_time_augmentation") != tta:
        raise bad("calibration", f"fitted with test_time_augmentation="
                  f"{calibration.get('test_time_augmentation')!r} but the model uses {tta!r}")
    return config, state


def _is_probability_text(text):
    try:
        value = float(text)
    except ValueError:
        return False
    return 0.0 < value <= 1.0


def _metadata(self):
    import jax

    try:
        from .._version import version as __version__
    except ImportError:  # pragma: no cover - source tree without setuptools_scm
        __version__ = "0.0.0"

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
            "calibration": self.calibration,
            "training_prior": self.training_prior,
            "test_time_augmentation": self.test_time_augmentation,
            "versions": {
                "m31clusters": __version__,
                "keras": keras.__version__,
                "keras_backend": keras.backend.backend(),
                "jax": jax.__version__,
                "numpy": np.__version__,
            },
        }
    )

def save(self, path, *, overwrite=False):
    """
    Save the network and its metadata to one file (written atomically).

    The file is a zip archive holding ``model.keras`` (the Keras model)
    and ``metadata.json`` (architecture, input shape, bands,
    normalisation, threshold, metrics, history, seed, the training class
    ratio, the calibration, the test-time augmentation and the library,
    Keras and JAX versions; ``format_version`` 3).  Files of format 1
    (before calibration) still load, with no calibration, and files of
    formats 1 and 2 with no test-time augmentation.

    Parameters
    ----------
    path : str or path-like
        Output file (e.g. ``"classifier.zip"``).
    overwrite : bool, optional
        Replace an existing file (keeping its permission bits).

    Returns
    -------
    `~pathlib.Path`
        The file written.

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
    >>> clf.save(path).name
    'classifier.zip'
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
    return Path(path)

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
                self = _rebuild(cls, config, os.path.join(tmp, _MODEL_MEMBER), distribution,
                                path)
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
    self._restore_state(state)
    self._source = path
    return self


def _saved_input_shape(keras_file):
    """The ``(H, W, C)`` input of the model in a ``.keras`` file, read from its JSON config."""
    with zipfile.ZipFile(keras_file) as zf:
        config = json.loads(zf.read("config.json").decode("utf-8"))
    for layer in config.get("config", {}).get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape")
            if isinstance(shape, list) and len(shape) == 4:
                return tuple(shape[1:])
    return None


def _rebuild(cls, config, keras_file, distribution, path):
    """
    The classifier of a saved file, through its one constructor path:
    ``cls.from_config(config)`` (``cls(**config)``), then the weights.

    A named architecture is built by `m31clusters.models.build_model` and only
    the weights are read from *keras_file*; a custom network is deserialised
    from it.  Both are read inside Keras' safe-mode scope.
    """
    keras = _keras()
    saved_shape = _saved_input_shape(keras_file)
    if saved_shape is not None and saved_shape != tuple(config["input_shape"]):
        raise CorruptFileError(
            f"{str(path)!r}: bad metadata field 'input_shape': the model takes {saved_shape} "
            f"but the metadata says {tuple(config['input_shape'])}"
        )
    if config["architecture"].startswith("custom:"):
        dist = _default_distribution(distribution)
        scope = dist.scope() if dist is not None else contextlib.nullcontext()
        with scope, _safe_mode_scope():
            model = keras.saving.load_model(
                keras_file, compile=False, safe_mode=True,
                custom_objects={"SmallInputConv2D": small_input_conv2d()},
            )
        if f"custom:{model.name}" != config["architecture"]:
            raise CorruptFileError(
                f"{str(path)!r}: bad metadata field 'architecture': "
                f"{config['architecture']!r} but the file holds the model {model.name!r}"
            )
        if tuple(model.input_shape[1:]) != tuple(config["input_shape"]):
            raise CorruptFileError(
                f"{str(path)!r}: bad metadata field 'input_shape': the model takes "
                f"{model.input_shape[1:]} but the metadata says {tuple(config['input_shape'])}"
            )
        config = {**config, "architecture": model}
        try:
            return cls.from_config(config, distribution=dist)
        except ValueError as exc:
            raise CorruptFileError(f"{str(path)!r}: {exc}") from exc
    try:
        self = cls.from_config(config, distribution=distribution)
    except ValueError as exc:
        raise CorruptFileError(f"{str(path)!r}: {exc}") from exc
    with self._scope(), _safe_mode_scope(), warnings.catch_warnings():
        warnings.simplefilter("error")  # a weight mismatch only warns in some Keras versions
        try:
            self.model.load_weights(keras_file)
        except (ValueError, KeyError, UserWarning) as exc:
            raise CorruptFileError(
                f"{str(path)!r}: the weights in the file do not fit the {config['architecture']!r} "
                f"network {tuple(config['input_shape'])} built by this version: {exc}"
            ) from exc
    return self
