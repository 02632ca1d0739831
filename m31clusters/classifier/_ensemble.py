"""
`ClusterClassifier.ensemble`: one classifier from several trained ones.

The members' networks are copied into one Keras model that averages their
probabilities (a ``keras.layers.Average`` over the copies, standard layers
only, so it saves and loads in Keras safe mode as a custom network).  The
ensemble is then calibrated and thresholded like any classifier.
"""

from ..models import small_input_conv2d
from ._common import _keras, _to_builtin

__all__ = []


def ensemble(cls, members, *, name="ensemble"):
    """
    A classifier that averages the probabilities of trained classifiers.

    Networks trained with different seeds (or on different data) make
    partly independent mistakes; the mean of their probabilities ranks
    stamps better than any one of them (a deep ensemble).  The members'
    networks are copied (later training of a member does not change the
    ensemble) into one Keras model, so the ensemble predicts, calibrates,
    selects its threshold, saves and loads as one classifier.

    Parameters
    ----------
    members : sequence of `ClusterClassifier`
        At least two trained classifiers with the same stamp shape, bands,
        normalisation and training prior (``training_prior``, the class ratio
        of their training loss, which `calibrate` shifts from).
    name : str, optional
        Name of the Keras model (the classifier's architecture is
        ``"custom:<name>"``).

    Returns
    -------
    classifier : `ClusterClassifier`
        Uncalibrated, threshold 0.5: call `calibrate` and `select_threshold`
        on validation stamps.  Its probabilities before calibration are the
        mean of the members' uncalibrated probabilities.

    Raises
    ------
    TypeError
        If a member is not a `ClusterClassifier`.
    ValueError
        If fewer than two members are given, or they differ in stamp shape,
        bands, normalisation or training prior (or were never trained).

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.classifier import ClusterClassifier
    >>> rng = np.random.default_rng(0)
    >>> stamps = Cutout(rng.normal(100, 5, (32, 16, 16, 2)).astype("float32"))
    >>> labels = np.arange(32) % 2
    >>> members = []
    >>> for seed in (1, 2):
    ...     clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=seed)
    ...     _ = clf.fit(stamps, labels, epochs=1)
    ...     members.append(clf)
    >>> both = ClusterClassifier.ensemble(members)
    >>> both.architecture
    'custom:ensemble'
    >>> mean = (members[0].predict_proba(stamps) + members[1].predict_proba(stamps)) / 2
    >>> bool(np.allclose(both.predict_proba(stamps), mean, atol=1e-6))
    True
    """
    members = list(members)
    for k, m in enumerate(members):
        if not isinstance(m, cls):
            raise TypeError(f"member {k} is a {type(m).__name__}, not a {cls.__name__}")
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two classifiers; got {len(members)}")
    first = members[0]
    for k, m in enumerate(members[1:], start=1):
        for what, a, b in (
            ("input_shape", first.input_shape, m.input_shape),
            ("bands", first.bands, m.bands),
            ("normalization", _to_builtin(first._normalize_kwargs),
             _to_builtin(m._normalize_kwargs)),
            ("training_prior", first.training_prior, m.training_prior),
        ):
            if a != b:
                raise ValueError(
                    f"member {k} has {what} {b!r} but member 0 has {a!r}: the members of an "
                    "ensemble must take the same stamps the same way"
                )
    if first.training_prior is None:
        raise ValueError(
            "the members were never trained by fit (their training prior is unknown): "
            "train them first"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    keras = _keras()
    inputs = keras.Input(shape=tuple(first.input_shape), name="stamps")
    outputs = []
    for k, m in enumerate(members):
        with m._scope(), keras.saving.custom_object_scope(
                {"SmallInputConv2D": small_input_conv2d()}):
            copy = type(m.model).from_config(m.model.get_config())  # same layers, new variables
            for mine, theirs in zip(copy.weights, m.model.weights, strict=True):
                mine.assign(theirs.value + 0)  # a copy: JAX may donate buffers
        member = keras.Model(copy.input, copy.output, name=f"member_{k}")
        outputs.append(member(inputs))
    mean = keras.layers.Average(name="probability")(outputs)
    model = keras.Model(inputs, mean, name=name)
    out = cls(model, bands=first.bands, normalization=first._normalize_kwargs, seed=first.seed,
              learning_rate=first.learning_rate)
    out.normalization = dict(first.normalization)
    out.training_prior = first.training_prior
    out.versions = dict(first.versions)
    return out
