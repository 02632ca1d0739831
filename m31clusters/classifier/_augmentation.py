"""
Test-time augmentation: a stamp's probability as the mean over its rotated
(and flipped) views.

A cluster has no preferred orientation on the sky, so the network's answer
should not depend on how a stamp is turned; averaging over the 4 rotations
or the 8 rotations and flips (the dihedral group, as in training's
augmentation) removes what the network did not learn of that symmetry.
`set_test_time_augmentation` is attached to
`~m31clusters.classifier.ClusterClassifier` as its method; the setting is
stored in the saved model and used by every prediction (`predict_proba`,
`predict`, `calibrate`, `select_threshold`, the search).
"""


import numpy as np

__all__ = []

#: the numbers of views: 1 (off), the 4 rotations, the 8 rotations and flips
VIEWS = (1, 4, 8)


def _check_tta(value, what="test_time_augmentation"):
    """Validate ``{"views": n, "above": p}`` (or None, off); returns it or raises ValueError."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"views", "above"}:
        raise ValueError(f"{what} must be None or a dict with the keys 'views' and 'above'; "
                         f"got {value!r}")
    views, above = value["views"], value["above"]
    if isinstance(views, bool) or views not in VIEWS:
        raise ValueError(f"{what}: views must be one of {', '.join(map(str, VIEWS))} "
                         f"(1: off); got {views!r}")
    if (isinstance(above, bool) or not isinstance(above, int | float)
            or not 0.0 <= above <= 1.0):  # NaN fails too
        raise ValueError(f"{what}: above must be a probability in [0, 1]; got {above!r}")
    if views == 1:
        return None
    return {"views": int(views), "above": float(above)}


def set_test_time_augmentation(self, views=8, *, above=0.0):
    """
    Score every stamp as the mean over its rotated and flipped views.

    Parameters
    ----------
    views : {1, 4, 8}, optional
        8: the four quarter turns, each also flipped left-right (the
        dihedral group; `Cutout.dihedral <m31clusters.cutout.Cutout.dihedral>`
        ``k = 0..7``); 4: the quarter turns only; 1: off (one view, the
        stamp as it is).
    above : float, optional
        Only stamps whose probability on the stamp as it is (the network's
        own, before any calibration) is at least *above* get the other views;
        the rest keep that one-view probability.  In a search almost every
        source is far below any useful threshold, so e.g. ``above=0.1``
        costs ``views - 1`` extra passes for a few percent of the sources
        instead of for all of them (0: every stamp).  Choose it below the
        network probability that the calibrated threshold corresponds to,
        and check on validation data that the catalogue is unchanged.

    Returns
    -------
    self : `ClusterClassifier`

    Raises
    ------
    ValueError
        If *views* is not 1, 4 or 8, *above* is not a probability, or the
        stamps are not square (a quarter turn would change their shape).

    Warns
    -----
    M31ClustersWarning
        If the classifier is calibrated with another setting: the
        probabilities change with the views, so the calibration made with
        the old setting is dropped (never applied to the new probabilities);
        `calibrate` and `select_threshold` again after this call.

    Notes
    -----
    The cost is one extra forward pass per extra view for every stamp at or
    above *above*; the stamps that need them are gathered into full batches.
    The setting is kept by `save` and `load`.  A calibration records the
    setting it was fitted with.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.classifier import ClusterClassifier
    >>> rng = np.random.default_rng(0)
    >>> stamps = Cutout(rng.normal(100, 5, (16, 16, 16, 2)).astype("float32"))
    >>> clf = ClusterClassifier("simple", input_shape=(16, 16, 2), seed=0)
    >>> one = np.mean([clf.predict_proba(stamps.dihedral(k)) for k in range(8)], axis=0)
    >>> clf = clf.set_test_time_augmentation(8)
    >>> clf.test_time_augmentation
    {'views': 8, 'above': 0.0}
    >>> bool(np.allclose(clf.predict_proba(stamps), one, atol=1e-6))
    True
    """
    tta = _check_tta({"views": views, "above": above}, "set_test_time_augmentation")
    if tta is not None and self.input_shape[0] != self.input_shape[1]:
        raise ValueError(
            f"test-time augmentation turns the stamps by quarter turns, which needs square "
            f"stamps; this classifier takes {self.input_shape[:2]}")
    if self.calibration is not None and _calibrated_tta(self.calibration) != tta:
        import warnings

        from ..exceptions import M31ClustersWarning

        warnings.warn(
            f"the calibration was fitted with test_time_augmentation="
            f"{_calibrated_tta(self.calibration)!r}; it is dropped (the probabilities change "
            "with the views): calibrate and select_threshold again", M31ClustersWarning,
            stacklevel=2)
        self.calibration = None
    self.test_time_augmentation = tta
    return self


def _calibrated_tta(calibration):
    """The test-time augmentation a calibration was fitted with (None: off)."""
    return calibration.get("test_time_augmentation")


def _view(x, k):
    """View *k* (0..7) of a (N, H, W, C) array: ``k % 4`` quarter turns, then a flip for k >= 4."""
    y = np.rot90(x, k % 4, axes=(1, 2))
    return y[:, :, ::-1] if k >= 4 else y


class _Views:
    """
    Gathers the stamps that get the other views across batches, scores them in
    full batches, and returns their mean over the views at the end.
    """

    def __init__(self, tta, predict, batch_size):
        self.views = 1 if tta is None else tta["views"]
        self.above = 0.0 if tta is None else tta["above"]
        self.predict = predict
        self.batch_size = batch_size
        self.pending, self.index, self.sums, self.done = [], [], [], []

    def add(self, x, p, offset):
        """Queue the scored stamps of one batch whose one-view probability is >= above."""
        if self.views == 1:
            return
        sel = np.flatnonzero(~np.isnan(p) & (p >= self.above))
        if sel.size:
            self.pending.append(np.ascontiguousarray(x[sel]))
            self.index.append(offset + sel)
        if sum(len(a) for a in self.pending) * (self.views - 1) >= self.batch_size:
            self._flush()

    def _flush(self):
        if not self.pending:
            return
        x = np.concatenate(self.pending)
        views = np.concatenate([_view(x, k) for k in range(1, self.views)])
        p = self.predict(np.ascontiguousarray(views)).reshape(self.views - 1, len(x))
        self.sums.append(p.sum(axis=0))
        self.done.append(np.concatenate(self.index))
        self.pending, self.index = [], []

    def finish(self, p):
        """*p* (all stamps' one-view probabilities) with the queued ones averaged over views."""
        self._flush()
        if self.done:
            idx = np.concatenate(self.done)
            p = p.copy()
            p[idx] = (p[idx] + np.concatenate(self.sums)) / self.views
        return p


