"""
Evaluation of a `~m31clusters.classifier.ClusterClassifier` on labelled
stamps: threshold selection, metrics (overall and per limiting magnitude) and
the ROC and purity-recall plots.

The functions here are attached to `~m31clusters.classifier.ClusterClassifier`
as its methods of the same names.
"""

import numpy as np
from astropy.table import Table

from ..utils._metrics import best_threshold, binary_metrics, pr_curve, roc_curve
from ._common import _as_float, _check_threshold

__all__ = []


def _scored(self, cutouts, labels, batch_size):
    cutouts, y = self._prepare_labelled(cutouts, labels)
    return y, self.predict_proba(cutouts, batch_size=batch_size)


def _base_rate(base_rate):
    if base_rate is None:
        return None
    from .calibration import _check_rate

    return _check_rate(base_rate, "base_rate")


def select_threshold(self, cutouts, labels, *, metric="f1", target_purity=None, base_rate=None,
                     batch_size=128):
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
    base_rate : float, optional
        The survey's class ratio: the fraction of clusters among the sources
        it classifies, in (0, 1).  The validation non-clusters are then
        reweighted (each counts ``(1 - base_rate) / base_rate * n_clusters
        / n_non_clusters``) so that purity, F1 and accuracy, hence the
        chosen threshold, are those of a sample with this ratio (recall does
        not depend on it).  Default: the validation stamps' own ratio.
    batch_size : int, optional
        Stamps per forward pass.

    Returns
    -------
    threshold : float
        The threshold, also stored in ``self.threshold``; the metrics at
        that threshold are stored in ``self.metrics`` (with ``base_rate``).

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
    base_rate = _base_rate(base_rate)
    y, p = self._scored(cutouts, labels, batch_size)
    threshold, _ = best_threshold(y, p, metric=metric, target_purity=target_purity,
                                  base_rate=base_rate)
    self.threshold = threshold
    self.threshold_metric = (
        f"purity>={float(target_purity):g}" if target_purity is not None else str(metric)
    )
    self.metrics = binary_metrics(y, p, threshold, base_rate=base_rate)
    return threshold

def evaluate(self, cutouts, labels, *, threshold=None, base_rate=None, batch_size=128):
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
    base_rate : float, optional
        Report purity, F1 and accuracy at this class ratio (fraction of
        clusters), reweighting the non-clusters as `select_threshold` does.
    batch_size : int, optional
        Stamps per forward pass.

    Returns
    -------
    metrics : dict
        ``purity`` (precision, TP / (TP + FP)), ``recall``, ``f1``,
        ``accuracy``, ``roc_auc``, the confusion counts ``tp``, ``fp``,
        ``tn``, ``fn``, ``n``, ``n_unscored`` (stamps with a NaN
        probability, counted as predicted non-clusters), the ``threshold``
        and the ``base_rate`` used (None: the stamps' own ratio).  Ratios
        with a zero denominator (and the AUC of a single class) are NaN.

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
    base_rate = _base_rate(base_rate)
    y, p = self._scored(cutouts, labels, batch_size)
    self.metrics = binary_metrics(y, p, threshold, base_rate=base_rate)
    return dict(self.metrics)

def evaluate_by_magnitude(
    self, cutouts, labels, mag, *, limits=(19, 20, 21, 22), threshold=None, batch_size=128
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

def _plot_axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax

def plot_roc(self, cutouts, labels, *, ax=None, batch_size=128, **kwargs):
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
    ax = _plot_axes(ax)
    kwargs.setdefault("label", f"{self.architecture} (AUC = {m['roc_auc']:.3f})")
    ax.plot(fpr, tpr, drawstyle="steps-post", **kwargs)
    ax.plot([0, 1], [0, 1], ls=":", color="0.6")
    ax.plot(m["fp"] / max(m["fp"] + m["tn"], 1), m["recall"], "o",
            label=f"threshold {self.threshold:.3g}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.legend(loc="lower right")
    return ax

def plot_pr(self, cutouts, labels, *, ax=None, batch_size=128, **kwargs):
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
    ax = _plot_axes(ax)
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
