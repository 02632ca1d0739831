"""
Calibrated probabilities for `~m31clusters.classifier.ClusterClassifier`.

A network trained on balanced stamps gives scores that are neither calibrated
(a score of 0.8 is not right 80 % of the time) nor at the survey's class ratio
(a survey field holds a few clusters among thousands of sources).
`ClusterClassifier.calibrate <m31clusters.classifier.ClusterClassifier.calibrate>`
fixes both, with a map from the network's probability ``p`` to

.. math::

    p_{\\rm cal} = \\sigma\\!\\left(\\frac{{\\rm logit}\\,p - {\\rm logit}\\,\\pi_t}{T}
                 + {\\rm logit}\\,\\pi\\right)

where :math:`\\pi_t` is the class ratio the network was trained at (the
fraction of clusters in the training loss, 0.5 with balanced class weights),
``T`` a temperature fitted on validation stamps by minimising their negative
log-likelihood (Guo et al. 2017, "On calibration of modern neural networks"),
and :math:`\\pi` the target base rate, the real fraction of clusters among the
sources the survey classifies.  The first term is the network's log
likelihood ratio, rescaled by ``1 / T``; adding :math:`{\\rm logit}\\,\\pi` is
Bayes' rule at the new prior (the prior-shift correction of Saerens et al.
2002).  The temperature is fitted at the validation set's own class ratio,
so it does not depend on which ratio the validation stamps have.  With
``method="platt"`` a bias ``b`` is fitted too and added to the log-odds (Platt
1999), for a network whose scores are shifted as well as over- or
under-confident.

This module also gives the measures: `expected_calibration_error` and the
reliability diagram `plot_reliability`.
"""

import math

import numpy as np

from ..utils._metrics import check_labels
from ._common import _as_float, _as_int

__all__ = ["expected_calibration_error", "plot_reliability"]

#: Probabilities are clipped to [_EPS, 1 - _EPS] before taking logits (float32
#: sigmoids saturate to exactly 0 or 1).
_EPS = 1e-7

_METHODS = ("temperature", "platt", "prior")


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def _check_rate(value, name):
    """A class ratio strictly between 0 and 1."""
    out = _as_float(value, name, 0.0, 1.0, low_open=True)
    if out >= 1.0:
        raise ValueError(f"{name} must be < 1 (a fraction of clusters); got {value!r}")
    return out


def _fit_temperature(scores, labels, offset):
    """
    Temperature ``T`` minimising the mean negative log-likelihood of *labels*
    under ``sigmoid(scores / T + offset)``.

    Newton's method on ``beta = 1 / T`` (the likelihood is convex in beta),
    with step halving so that every step lowers the loss and keeps beta > 0.
    """
    a = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    if not np.any(a):
        raise ValueError("every validation score is at the training prior: no temperature fits")

    def nll(beta):
        z = beta * a + offset
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    if float(np.mean((_sigmoid(offset) - y) * a)) >= 0:  # NLL slope at beta = 0+
        raise ValueError(
            "the validation scores do not separate clusters from non-clusters better than "
            "chance (the likelihood is best at an infinite temperature); train further or "
            "use method='prior'"
        )
    beta, loss = 1.0, nll(1.0)
    for _ in range(100):
        s = _sigmoid(beta * a + offset)
        grad = float(np.mean((s - y) * a))
        hess = float(np.mean(s * (1.0 - s) * a * a))
        step = grad / hess if hess > 0 else grad
        while True:
            new = beta - step
            if new > 0 and nll(new) <= loss:
                break
            step /= 2.0
            if abs(step) < 1e-15 * max(beta, 1.0):
                new = beta
                break
        converged = abs(new - beta) <= 1e-12 * max(beta, 1.0)
        beta, loss = new, nll(new)
        if converged:
            break
    return 1.0 / beta


def _fit_platt(scores, labels, offset):
    """
    Slope ``1 / T`` and bias ``b`` minimising the mean negative log-likelihood
    of *labels* under ``sigmoid(scores / T + b + offset)`` (Platt 1999):
    Newton's method (logistic regression with an offset), step halving.
    """
    a = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    x = np.stack([a, np.ones_like(a)], axis=1)

    def nll(theta):
        z = x @ theta + offset
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    theta = np.array([1.0, 0.0])
    loss = nll(theta)
    for _ in range(100):
        s = _sigmoid(x @ theta + offset)
        grad = x.T @ (s - y) / y.size
        hess = (x * (s * (1.0 - s))[:, None]).T @ x / y.size
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        except np.linalg.LinAlgError:
            step = grad
        while True:
            new = theta - step
            if nll(new) <= loss:
                break
            step = step / 2.0
            if np.abs(step).max() < 1e-15:
                new = theta
                break
        converged = np.abs(new - theta).max() <= 1e-12 * max(1.0, np.abs(theta).max())
        theta, loss = new, nll(new)
        if converged:
            break
    if not theta[0] > 0:
        raise ValueError(
            "the validation scores do not separate clusters from non-clusters better than "
            "chance (the fitted slope is not positive); train further or use method='prior'"
        )
    return 1.0 / float(theta[0]), float(theta[1])


def _apply(p, calibration):
    """Calibrated probabilities of the network's *p* (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    if calibration is None:
        return p
    z = ((_logit(p) - _logit(calibration["training_prior"])) / calibration["temperature"]
         + calibration.get("bias", 0.0))
    target = calibration["base_rate"]
    if target is None:
        target = calibration["training_prior"]
    out = _sigmoid(z + _logit(target))
    return np.where(np.isnan(p), np.nan, out)


def _invert(q, calibration):
    """The network probability that `_apply` maps to *q* (exact at 0 and 1)."""
    q = np.asarray(q, dtype=float)
    if calibration is None:
        return q
    target = calibration["base_rate"]
    if target is None:
        target = calibration["training_prior"]
    z = (_logit(q) - _logit(target) - calibration.get("bias", 0.0)) * calibration["temperature"]
    out = _sigmoid(z + _logit(calibration["training_prior"]))
    return np.where(q <= 0, 0.0, np.where(q >= 1, 1.0, out))


def _map_threshold(threshold, old, new):
    """The threshold that keeps the same decisions when calibration *old* becomes *new*."""
    t = float(threshold)
    if t <= 0.0 or t >= 1.0:
        return t
    return float(_apply(_invert(t, old), new))


def calibrate(self, cutouts, labels, *, base_rate=None, method="temperature",
              training_prior=None, batch_size=128):
    """
    Calibrate the probabilities on labelled validation stamps.

    Fits a temperature ``T`` on the validation stamps (minimising their
    negative log-likelihood) and shifts the prior from the class ratio the
    network was trained at to *base_rate*; from then on `predict_proba`
    returns calibrated probabilities (see `m31clusters.classifier.calibration`
    for the formula).  The calibration is stored in the saved model.  The
    stored threshold is mapped so that `predict` makes the same decisions as
    before (the map is increasing); choose a new one with `select_threshold`.

    Parameters
    ----------
    cutouts : `~m31clusters.cutout.Cutout`
        Labelled stamps not used for training (e.g. the validation set), with
        both classes.  Unscored stamps (NaN, see `predict_proba`) are left
        out.
    labels : array-like of int
        1 for a cluster, 0 otherwise.
    base_rate : float, optional
        The fraction of clusters among the sources the survey classifies
        (those passing the catalogue cuts), in (0, 1).  Default: no prior
        shift (probabilities at the training class ratio).
    method : ``"temperature"``, ``"platt"`` or ``"prior"``, optional
        ``"temperature"`` fits ``T``; ``"platt"`` fits ``T`` and a bias ``b``
        added to the log-odds (Platt scaling, for a network whose scores are
        shifted as well as over- or under-confident); ``"prior"`` keeps
        ``T = 1`` and only shifts the prior.
    training_prior : float, optional
        The fraction of clusters in the training loss.  Default: the one
        recorded by `fit` (0.5 with ``class_weight="balanced"``); it must be
        given for a network trained elsewhere or loaded from a file written
        before it was recorded.
    batch_size : int, optional
        Stamps per forward pass.

    Returns
    -------
    calibration : dict
        Also stored in ``self.calibration``: ``method``, ``temperature``,
        ``bias`` (0 but for ``"platt"``), ``training_prior``, ``base_rate``,
        ``validation_prior`` (the validation fraction of clusters), ``n``
        (stamps used), and the validation negative log-likelihood
        ``nll_before`` and ``nll_after`` the fit (both at the validation
        prior), and ``test_time_augmentation``, the setting of
        `set_test_time_augmentation` the probabilities were made with
        (None: off; predictions with another setting are refused).

    Raises
    ------
    ValueError
        For one-class labels, a rate outside (0, 1), an unknown method, or an
        unknown training prior.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.classifier import ClusterClassifier
    >>> rng = np.random.default_rng(0)
    >>> stamps = Cutout(rng.normal(100, 5, (64, 16, 16, 2)).astype("float32"))
    >>> labels = np.arange(64) % 2
    >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
    >>> _ = clf.fit(stamps, labels, epochs=1)  # noise: nothing to learn
    >>> cal = clf.calibrate(stamps, labels, base_rate=0.01, method="prior")
    >>> cal["training_prior"], cal["base_rate"], cal["temperature"]
    (0.5, 0.01, 1.0)
    >>> bool(clf.predict_proba(stamps).max() < 0.5)  # at 1 % clusters, nothing is likely
    True
    """
    if method not in _METHODS:
        raise ValueError(
            f"unknown calibration method {method!r}; use 'temperature', 'platt' or 'prior'"
        )
    if base_rate is not None:
        base_rate = _check_rate(base_rate, "base_rate")
    if training_prior is None:
        training_prior = self.training_prior
        if training_prior is None:
            raise ValueError(
                "the class ratio this network was trained at is unknown (it was not trained "
                "by fit, or was saved before it was recorded): pass training_prior=, e.g. 0.5 "
                "for class_weight='balanced'"
            )
    training_prior = _check_rate(training_prior, "training_prior")
    cutouts, y = self._prepare_labelled(cutouts, labels)
    p = self._predict_raw(cutouts, batch_size=batch_size)
    scored = ~np.isnan(p)
    p, y = p[scored], y[scored]
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"the calibration labels hold one class only ({n_pos} clusters and "
            f"{y.size - n_pos} non-clusters among the scored stamps); both are needed"
        )
    validation_prior = n_pos / y.size
    a = _logit(p) - _logit(training_prior)
    offset = float(_logit(validation_prior))
    bias = 0.0
    if method == "temperature":
        temperature = _fit_temperature(a, y, offset)
    elif method == "platt":
        temperature, bias = _fit_platt(a, y, offset)
    else:
        temperature = 1.0

    def nll(t, b=0.0):
        z = a / t + b + offset
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    calibration = {
        "method": method,
        "temperature": float(temperature),
        "bias": float(bias),
        "training_prior": float(training_prior),
        "base_rate": base_rate,
        "validation_prior": float(validation_prior),
        "n": int(y.size),
        "nll_before": nll(1.0),
        "nll_after": nll(temperature, bias),
        "test_time_augmentation": self.test_time_augmentation,
    }
    self.threshold = _map_threshold(self.threshold, self.calibration, calibration)
    self.calibration = calibration
    return dict(calibration)


def _check_calibration_dict(cal):
    """Validate a stored calibration; returns it or raises ValueError naming the key."""
    if not isinstance(cal, dict):
        raise ValueError("not a dict")
    if cal.get("method") not in _METHODS:
        raise ValueError(f"method {cal.get('method')!r} is not one of {', '.join(_METHODS)}")
    t = cal.get("temperature")
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < math.inf:
        raise ValueError(f"temperature {t!r} is not a finite number > 0")
    for key in ("training_prior", "validation_prior", "base_rate"):
        v = cal.get(key)
        if key == "base_rate" and v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
            raise ValueError(f"{key} {v!r} is not a fraction in (0, 1)")
    b = cal.get("bias", 0.0)
    if isinstance(b, bool) or not isinstance(b, int | float) or not math.isfinite(b):
        raise ValueError(f"bias {b!r} is not a finite number")
    from ._augmentation import _check_tta

    tta = _check_tta(cal.get("test_time_augmentation"))
    out = {k: cal[k] for k in ("method", "temperature", "bias", "training_prior", "base_rate",
                               "validation_prior", "n", "nll_before", "nll_after") if k in cal}
    out["test_time_augmentation"] = tta
    return out


def _check_prob_labels(prob, labels, n_bins):
    p = np.asarray(prob, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"prob must be one-dimensional; got shape {p.shape}")
    y = check_labels(labels, n=p.size)
    n_bins = _as_int(n_bins, "n_bins", minimum=1)
    scored = ~np.isnan(p)
    bad = scored & ~((p >= 0) & (p <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"prob must be probabilities in [0, 1]; prob[{i}] = {float(p[i])!r}")
    if not scored.any():
        raise ValueError("prob has no finite value (every probability is NaN)")
    return p[scored], y[scored], n_bins


def _bins(p, y, n_bins):
    """Per equal-width bin: count, mean probability, fraction of clusters."""
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / count
        frac = np.bincount(idx, weights=y, minlength=n_bins) / count
    return count, mean_p, frac


def expected_calibration_error(prob, labels, n_bins=10):
    """
    Expected calibration error of probabilities against 0/1 labels.

    The probabilities are put in *n_bins* bins of equal width on [0, 1]
    (``[k/n, (k+1)/n)``, the last one closed); the ECE is the mean, weighted
    by the number of stamps in each bin, of ``|fraction of clusters - mean
    probability|`` over the bins.

    Parameters
    ----------
    prob : array-like
        Probabilities in [0, 1]; NaN (unscored stamps) are left out.
    labels : array-like of int
        1 for a cluster, 0 otherwise.
    n_bins : int, optional
        Number of bins.

    Returns
    -------
    ece : float
        In [0, 1]; 0 for perfectly calibrated probabilities.

    Examples
    --------
    >>> from m31clusters.classifier import expected_calibration_error
    >>> ece = expected_calibration_error([0.2, 0.2, 0.9, 0.9], [0, 1, 1, 1], n_bins=5)
    >>> round(ece, 12)  # (2 * |0.5 - 0.2| + 2 * |1 - 0.9|) / 4
    0.2
    """
    p, y, n_bins = _check_prob_labels(prob, labels, n_bins)
    count, mean_p, frac = _bins(p, y, n_bins)
    used = count > 0
    return float(np.sum(count[used] * np.abs(frac[used] - mean_p[used])) / p.size)


def plot_reliability(prob, labels, ax=None, *, n_bins=10, **kwargs):
    """
    Reliability diagram: fraction of clusters against mean probability per bin.

    A calibrated classifier lies on the diagonal.  Each point is one of
    *n_bins* equal-width bins (those with stamps), with a binomial error bar;
    the legend gives the `expected_calibration_error`.

    Parameters
    ----------
    prob : array-like
        Probabilities in [0, 1]; NaN (unscored stamps) are left out.
    labels : array-like of int
        1 for a cluster, 0 otherwise.
    ax : `matplotlib.axes.Axes`, optional
        Axes to draw on (default: a new figure).
    n_bins : int, optional
        Number of bins.
    **kwargs
        Passed to `matplotlib.axes.Axes.errorbar`.

    Returns
    -------
    ax : `matplotlib.axes.Axes`

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.classifier import plot_reliability
    >>> rng = np.random.default_rng(0)
    >>> prob = rng.random(500)
    >>> ax = plot_reliability(prob, rng.random(500) < prob)
    >>> ax.get_xlabel()
    'mean predicted probability'
    """
    import matplotlib.pyplot as plt

    p, y, n_bins = _check_prob_labels(prob, labels, n_bins)
    count, mean_p, frac = _bins(p, y, n_bins)
    used = count > 0
    if ax is None:
        _, ax = plt.subplots()
    ece = expected_calibration_error(p, y, n_bins)
    err = np.sqrt(frac[used] * (1 - frac[used]) / count[used])
    kwargs.setdefault("fmt", "o-")
    kwargs.setdefault("label", f"ECE = {ece:.3f} ({p.size} stamps)")
    ax.errorbar(mean_p[used], frac[used], yerr=err, **kwargs)
    ax.plot([0, 1], [0, 1], ls=":", color="0.6", label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction of clusters")
    ax.legend(loc="upper left")
    return ax
