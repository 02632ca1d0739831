"""
Binary classification metrics in plain numpy (no scikit-learn).

A stamp is predicted positive when its score is ``>= threshold``.  A NaN
score marks a stamp that could not be scored (no valid pixel in a band): it is
never positive, whatever the threshold (counted as a predicted non-cluster,
ranked below every score in the ROC AUC, and never chosen as a threshold).
"""

import numpy as np

__all__ = [
    "check_labels",
    "confusion_counts",
    "binary_metrics",
    "roc_auc",
    "roc_curve",
    "pr_curve",
    "best_threshold",
    "negative_weight",
    "THRESHOLD_METRICS",
]

#: Metrics `best_threshold` can maximise (besides a target purity).
THRESHOLD_METRICS = ("f1", "accuracy", "youden", "balanced_accuracy")


def check_labels(labels, n=None, name="labels"):
    """Return *labels* as an int8 array of 0/1, raising `ValueError` otherwise."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but there are {n} stamps")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be 0 (not a cluster) or 1 (cluster); got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be 0 (not a cluster) or 1 (cluster); {int(bad.sum())} entries are "
            f"not, the first at index {i} ({arr[i]!r})"
        )
    return arr.astype(np.int8)


def _check_scores(scores, n):
    s = np.asarray(scores, dtype=float)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},); got {s.shape}")
    if np.isinf(s).any():
        i = int(np.flatnonzero(np.isinf(s))[0])
        raise ValueError(f"scores contain infinite values (first at index {i})")
    return s


def confusion_counts(labels, scores, threshold):
    """Return ``(tp, fp, tn, fn)`` at *threshold* (positive if score >= threshold)."""
    y = check_labels(labels).astype(bool)
    pred = _check_scores(scores, y.size) >= threshold
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    tn = int(np.count_nonzero(~pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    return tp, fp, tn, fn


def _ratio(a, b):
    return float(a / b) if b else float("nan")


def roc_auc(labels, scores):
    """
    Area under the ROC curve, from ranks (ties count one half).

    Equals ``U / (n_pos * n_neg)`` with ``U`` the Mann-Whitney statistic of the
    positive scores; NaN when only one class is present.
    """
    from scipy.stats import rankdata

    y = check_labels(labels).astype(bool)
    s = _check_scores(scores, y.size)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.where(np.isnan(s), -np.inf, s))  # unscored: below every score
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def negative_weight(n_pos, n_neg, base_rate):
    """
    Weight of each negative so that the positives make a fraction *base_rate*
    of the weighted sample: ``(1 - base_rate) / base_rate * n_pos / n_neg``
    (1 when *base_rate* is None).
    """
    if base_rate is None or n_pos == 0 or n_neg == 0:
        return 1.0
    return (1.0 - base_rate) / base_rate * n_pos / n_neg


def binary_metrics(labels, scores, threshold, base_rate=None):
    """
    Purity (precision), recall, F1, accuracy, ROC AUC and confusion counts.

    With *base_rate*, purity, F1 and accuracy are those of a sample where the
    positives are that fraction (negatives reweighted by `negative_weight`);
    the counts stay the raw ones.
    """
    tp, fp, tn, fn = confusion_counts(labels, scores, threshold)
    w = negative_weight(tp + fn, fp + tn, base_rate)
    purity = _ratio(tp, tp + w * fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + w * fp + fn)
    return {
        "threshold": float(threshold),
        "base_rate": None if base_rate is None else float(base_rate),
        "n": tp + fp + tn + fn,
        "n_unscored": int(np.count_nonzero(np.isnan(np.asarray(scores, dtype=float)))),
        "purity": purity,
        "recall": recall,
        "f1": f1,
        "accuracy": _ratio(tp + w * tn, tp + fn + w * (fp + tn)),
        "roc_auc": roc_auc(labels, scores),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def _cumulative(labels, scores):
    """
    Counts at or above each distinct score, highest first: thresholds, tp, fp,
    and the numbers of positives and negatives (unscored stamps included: they
    are below every threshold).
    """
    y = check_labels(labels).astype(bool)
    s = _check_scores(scores, y.size)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    scored = ~np.isnan(s)
    s, y = s[scored], y[scored]
    if s.size == 0:
        raise ValueError("no stamp has a score (every score is NaN)")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return s[last], tp, fp, n_pos, n_neg


def roc_curve(labels, scores):
    """Return ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf."""
    thr, tp, fp, n_pos, n_neg = _cumulative(labels, scores)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the ROC curve needs both classes in labels")
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, thr]


def pr_curve(labels, scores):
    """Return ``(recall, purity, thresholds)``, one point per distinct score."""
    thr, tp, fp, n_pos, _ = _cumulative(labels, scores)
    if n_pos == 0:
        raise ValueError("the precision-recall curve needs positive labels")
    return tp / n_pos, tp / (tp + fp), thr


def best_threshold(labels, scores, metric="f1", target_purity=None, base_rate=None):
    """
    Choose the threshold that maximises *metric* (``"f1"``, ``"accuracy"``,
    ``"youden"``, ``"balanced_accuracy"``) or, with *target_purity*, the lowest
    threshold whose purity reaches the target (hence the highest recall).
    With *base_rate*, purity, F1 and accuracy are computed with the negatives
    reweighted to that class ratio (`negative_weight`).

    Returns ``(threshold, value)``: the chosen threshold (one of the scores,
    midway to the next lower distinct score so that small numerical changes do
    not flip decisions) and the metric (or purity) reached there.
    """
    thr, tp, fp, n_pos, n_neg = _cumulative(labels, scores)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            "select_threshold needs both classes in labels; "
            f"got {n_pos} clusters and {n_neg} non-clusters"
        )
    w = negative_weight(n_pos, n_neg, base_rate)
    fp = w * fp
    tn = w * n_neg - fp
    fn = n_pos - tp
    if target_purity is not None:
        target = float(target_purity)
        if not 0 < target <= 1:
            raise ValueError(f"target_purity must be in (0, 1]; got {target_purity!r}")
        purity = tp / (tp + fp)
        ok = np.flatnonzero(purity >= target)
        if ok.size == 0:
            raise ValueError(
                f"no threshold reaches purity {target:g}; the best purity is {purity.max():.4g}"
            )
        i = int(ok[-1])
        value = float(purity[i])
    else:
        metric = str(metric).lower()
        if metric == "f1":
            values = 2 * tp / (2 * tp + fp + fn)
        elif metric == "accuracy":
            values = (tp + tn) / (n_pos + w * n_neg)
        elif metric in ("youden", "balanced_accuracy"):
            values = tp / n_pos - fp / (w * n_neg)
            if metric == "balanced_accuracy":
                values = (values + 1) / 2
        else:
            raise ValueError(
                f"unknown metric {metric!r}; use one of {THRESHOLD_METRICS} "
                "(or target_purity=...)"
            )
        i = int(np.argmax(values))
        value = float(values[i])
    lower = thr[i + 1] if i + 1 < thr.size else min(thr[i] - 1e-6, 0.0)
    return float((thr[i] + lower) / 2.0) if lower < thr[i] else float(thr[i]), value
