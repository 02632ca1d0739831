"""
The `ClusterClassifier`: construction (network, bands, normalisation, seed,
devices) and prediction (streamed, batched probabilities and decisions).

Training, evaluation and persistence live in the private modules
``_training``, ``_evaluation`` and ``_persistence`` of this package; their
functions are the methods of the class.
"""

import contextlib

import numpy as np

from ..exceptions import BandError, IncompatibleModelError
from ..models import ARCHITECTURES, build_model
from ..utils._metrics import check_labels
from ..utils._progress import PROGRESS_DEFAULT, progress_bar
from . import _augmentation, _ensemble, _evaluation, _persistence, _training
from . import calibration as _calibration
from ._common import (
    _as_float,
    _as_int,
    _check_threshold,
    _default_distribution,
    _keras,
    _normalization_kwargs,
    _to_builtin,
    _unscorable,
)

__all__ = ["ClusterClassifier"]


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
    calibration : dict or None
        The calibration fitted by `calibrate` (temperature, priors), applied
        by `predict_proba`; None until then.
    training_prior : float or None
        The fraction of clusters in the training loss of the last `fit`
        (0.5 with ``class_weight="balanced"``), the prior `calibrate` shifts
        from; None before training.
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
    >>> again = ClusterClassifier.from_config(clf.get_config())  # same network, new weights
    >>> again.get_config() == clf.get_config()
    True
    """

    # the methods of the other modules of this package
    fit = _training.fit
    select_threshold = _evaluation.select_threshold
    evaluate = _evaluation.evaluate
    evaluate_by_magnitude = _evaluation.evaluate_by_magnitude
    plot_roc = _evaluation.plot_roc
    plot_pr = _evaluation.plot_pr
    _scored = _evaluation._scored
    calibrate = _calibration.calibrate
    set_test_time_augmentation = _augmentation.set_test_time_augmentation
    ensemble = classmethod(_ensemble.ensemble)
    save = _persistence.save
    load = classmethod(_persistence.load)
    _metadata = _persistence._metadata

    def __init__(
        self,
        architecture="resnet50",
        input_shape=(64, 64, 2),
        *,
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
        self.versions = {}
        self.calibration = None
        self.training_prior = None
        self.test_time_augmentation = None
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

    # ------------------------------------------------------------ configuration

    def get_config(self):
        """
        The constructor arguments that rebuild this classifier's network.

        Returns
        -------
        config : dict
            ``architecture`` (the name, or ``"custom:<model name>"`` for a
            Keras model given to the constructor), ``input_shape``,
            ``bands``, ``normalization``, ``seed``, ``learning_rate`` and
            ``data_format``: ``ClusterClassifier.from_config(config)``
            builds a classifier with the same (untrained) network.  The
            fitted state (weights, threshold, calibration, history) is not
            part of it; `save` and `load` keep that.
        """
        return {
            "architecture": self.architecture,
            "input_shape": tuple(self.input_shape),
            "bands": tuple(self.bands),
            "normalization": dict(self._normalize_kwargs),
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "data_format": self.data_format,
        }

    @classmethod
    def from_config(cls, config, *, distribution="auto"):
        """
        Build a classifier from `get_config` output: ``cls(**config)``.

        This is the one path by which classifiers are made, `load` included
        (which then loads the weights and the fitted state).

        Parameters
        ----------
        config : dict
            Constructor arguments, as returned by `get_config`; for a custom
            network ``config["architecture"]`` must be the Keras model.
        distribution : ``"auto"``, None or `keras.distribution.Distribution`, optional
            As for `ClusterClassifier`.

        Returns
        -------
        classifier : `ClusterClassifier`
        """
        config = dict(config)
        arch = config.get("architecture")
        if isinstance(arch, str) and arch.startswith("custom:"):
            raise ValueError(
                f"architecture {arch!r} is a custom Keras model: pass the model itself as "
                "config['architecture']"
            )
        return cls(**config, distribution=distribution)

    def _restore_state(self, state):
        """Set the fitted state (threshold, metrics, history, ...) read by `load`."""
        self.normalization = dict(state["normalization"])
        self.threshold = float(state["threshold"])
        self.threshold_metric = state["threshold_metric"]
        self.metrics = dict(state["metrics"])
        self.history = dict(state["history"])
        self.versions = dict(state["versions"])
        self.calibration = state["calibration"]
        self.training_prior = state["training_prior"]
        self.test_time_augmentation = state["test_time_augmentation"]

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
        from ..cutout import Cutout

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

    def predict_proba(self, cutouts, *, batch_size=128, progress=PROGRESS_DEFAULT):
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
            Show a progress bar (default: off).

        Returns
        -------
        proba : `~numpy.ndarray`
            ``(N,)`` probabilities in [0, 1] (calibrated ones once `calibrate`
            has been called, at its ``base_rate``), and NaN for every stamp that
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
        if self.calibration is not None:
            fitted = _augmentation._calibrated_tta(self.calibration)
            if fitted != self.test_time_augmentation:
                raise IncompatibleModelError(
                    f"the calibration was fitted with test_time_augmentation={fitted!r} but the "
                    f"classifier uses {self.test_time_augmentation!r}: set it with "
                    f"set_test_time_augmentation and calibrate again{self._where()}"
                )
        return _calibration._apply(
            self._predict_raw(cutouts, batch_size=batch_size, progress=progress),
            self.calibration,
        )

    def _predict_raw(self, cutouts, *, batch_size=128, progress=PROGRESS_DEFAULT):
        """The network's own (uncalibrated) probabilities; NaN for unscorable stamps."""
        batch_size = self._check_batch_size(batch_size)
        from ..cutout import Cutout

        chunks = [cutouts] if isinstance(cutouts, Cutout) else cutouts
        total = len(cutouts) if isinstance(cutouts, Cutout) else None
        out = []
        done = 0
        views = _augmentation._Views(self.test_time_augmentation,
                                     lambda x: self._predict_array(x, batch_size), batch_size)
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
                    views.add(x, p, done)
                    out.append(p)
                    done += len(x)
                    bar.update(len(x))
        finally:
            bar.close()
        return views.finish(np.concatenate(out)) if out else np.empty(0)

    def predict(self, cutouts, *, threshold=None, batch_size=128):
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
