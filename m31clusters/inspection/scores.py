"""
Visual inspection of cluster candidates.

The paper's candidates were inspected by eye by two people, each giving a
score of 2 (cluster), 1 (possible cluster) or 0 (not a cluster); a
candidate was kept where the sum of the two scores is 3 or 4.
`combine_scores` makes the ``Score`` column of the candidate catalogue and
the kept mask from the two inspectors' scores; `inspection_montage` draws
the g and i stamps and a colour composite of each candidate, the page an
inspector looks at.
"""

from pathlib import Path

import numpy as np
from astropy.table import MaskedColumn

from .exceptions import BandError
from .utils._io import atomic_path

__all__ = ["combine_scores", "inspection_montage", "INSPECTION_SCORES"]

#: Allowed scores of one inspector: 0 = not a cluster, 1 = possible cluster, 2 = cluster.
INSPECTION_SCORES = (0, 1, 2)

_STRETCHES = ("asinh", "linear", "sqrt", "log")
_BAD_COLOR = "#4060a0"  # pixels without data


def _as_scores(values, name):
    """One inspector's scores as (int array, mask), validated."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of scores, got a string {values!r}")
    if np.ndim(values) != 1:
        raise ValueError(f"{name} must be 1-D, got shape {np.shape(values)}")
    arr = np.ma.asarray(values)
    mask = np.ma.getmaskarray(arr).copy()
    data = raw = np.ma.getdata(arr)
    if data.dtype.kind == "O":
        mask |= np.array([v is None or v is np.ma.masked for v in data], dtype=bool)
        data = np.where(mask, 0, data)
        try:
            data = data.astype(float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold numbers (0, 1, 2), got {values!r}") from exc
    elif data.dtype.kind == "b" or data.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold integer scores 0, 1 or 2, got dtype {data.dtype}"
        )
    data = data.astype(float)
    mask |= ~np.isfinite(data)
    good = np.where(mask, 0.0, data)
    bad = ~mask & ~np.isin(good, INSPECTION_SCORES)
    if np.any(bad):
        idx = np.flatnonzero(bad)
        first = raw[idx[0]]
        first = first.item() if hasattr(first, "item") else first
        raise ValueError(
            f"{name} must be 0 (not a cluster), 1 (possible) or 2 (cluster); "
            f"{idx.size} value(s) are not, first {first!r} at index {idx[0]}"
        )
    return good.astype(np.int64), mask


def combine_scores(score_a, score_b, keep=(3, 4)):
    """
    Combine two inspectors' scores into the ``Score`` column and the kept mask.

    Each inspector scores a candidate 2 (cluster), 1 (possible cluster) or
    0 (not a cluster).  ``Score`` is the sum, 0 to 4; as in Zhang et al.
    (2025) a candidate is kept where the sum is 3 or 4 (at least one
    inspector sure and the other one at least unsure).

    Parameters
    ----------
    score_a, score_b : array-like
        The two inspectors' scores, same length, values 0, 1 or 2
        (integers, or floats with integral values).  Masked, NaN or None
        entries mean "not inspected": the ``Score`` is then masked and the
        candidate is not kept.
    keep : int or sequence of int
        Score sums that are kept (default ``(3, 4)``), each 0 to 4.

    Returns
    -------
    score : `~astropy.table.MaskedColumn`
        Column ``Score`` (int64), masked where either score is missing.
    kept : `numpy.ndarray` of bool
        True for the kept candidates.

    Raises
    ------
    ValueError
        If a score is not 0, 1 or 2, the inputs are not 1-D or have
        different lengths, or *keep* holds a value outside 0 to 4.
    TypeError
        If the scores are not numbers (e.g. booleans or strings) or *keep*
        is not integers.

    Examples
    --------
    >>> from m31clusters.inspection import combine_scores
    >>> score, kept = combine_scores([2, 2, 1, 1, 0, 2], [2, 1, 2, 1, 2, None])
    >>> score.tolist()
    [4, 3, 3, 2, 2, None]
    >>> kept
    array([ True,  True,  True, False, False, False])
    """
    a, mask_a = _as_scores(score_a, "score_a")
    b, mask_b = _as_scores(score_b, "score_b")
    if a.size != b.size:
        raise ValueError(
            f"score_a and score_b must have the same length, got {a.size} and {b.size}"
        )
    keep = _check_keep(keep)
    mask = mask_a | mask_b
    total = np.where(mask, 0, a + b)
    kept = ~mask & np.isin(total, keep)
    score = MaskedColumn(
        total, name="Score", mask=mask, dtype=np.int64,
        description="Sum of the two visual-inspection scores "
        "(each 2 = cluster, 1 = possible cluster, 0 = not a cluster)",
    )
    return score, kept


def _check_keep(keep):
    values = np.atleast_1d(np.asarray(keep))
    if values.size == 0:
        raise ValueError("keep must hold at least one score sum (e.g. keep=(3, 4))")
    if values.dtype.kind not in "iu":
        raise TypeError(f"keep must be integers between 0 and 4, got {keep!r}")
    if np.any((values < 0) | (values > 4)):
        raise ValueError(f"keep values must be between 0 and 4 (sums of two 0-2 scores), "
                         f"got {keep!r}")
    return values


def _get_stretch(stretch):
    from astropy.visualization import (
        AsinhStretch,
        BaseStretch,
        LinearStretch,
        LogStretch,
        SqrtStretch,
    )

    if isinstance(stretch, BaseStretch):
        return stretch
    table = {"asinh": AsinhStretch, "linear": LinearStretch, "sqrt": SqrtStretch,
             "log": LogStretch}
    if stretch not in table:
        raise ValueError(
            f"stretch must be one of {_STRETCHES} or an astropy.visualization stretch, "
            f"got {stretch!r}"
        )
    return table[stretch]()


def _scale(image, valid, percentile):
    """Map the valid pixels of *image* to [0, 1] between two percentiles; NaN elsewhere."""
    out = np.full(image.shape, np.nan)
    values = image[valid]
    if values.size == 0:
        return out
    half = (100.0 - percentile) / 2
    lo, hi = np.percentile(values, [half, 100.0 - half])
    if not hi > lo:
        hi = lo + 1.0
    out[valid] = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    return out


def inspection_montage(cutout, ids=None, scores=None, ncols=4, stretch="asinh",
                       bands=("g", "i"), percentile=99.5, max_candidates=100, path=None,
                       overwrite=False, dpi=100):
    """
    Draw, for each candidate, its g stamp, its i stamp and a colour composite.

    The page a visual inspector looks at: per candidate three panels, the
    first titled with the candidate's id, the last with its score (when
    given).  Each band of each stamp is scaled between the
    ``(100 - percentile) / 2`` and ``(100 + percentile) / 2`` percentiles of
    its valid pixels and then stretched; the colour composite shows g as
    blue, (g + i) / 2 as green and i as red, each scaled that way (so it
    shows colour gradients within a stamp, not absolute colours).  Pixels
    without data (``cutout.mask`` or NaN) are drawn in a flat blue-grey.

    Parameters
    ----------
    cutout : `~m31clusters.cutout.Cutout`
        Stamps of the candidates (raw or normalised), with the two *bands*.
    ids : sequence, optional
        Label of each candidate (e.g. the ``Seq`` column); default its index.
    scores : sequence, optional
        Score of each candidate (e.g. the ``Score`` column), shown in the
        titles; masked entries are shown as ``--``.
    ncols : int
        Candidates per row (each takes three panels).
    stretch : {"asinh", "linear", "sqrt", "log"} or astropy stretch
        Stretch applied after the percentile scaling.
    bands : tuple of two str
        The blue and red bands, default ``("g", "i")``.
    percentile : float
        Central percentage of the valid pixels mapped to the full range
        (0 < percentile <= 100).
    max_candidates : int
        Largest number of candidates drawn in one figure; slice the cutout
        to draw more pages.
    path : str or path-like, optional
        If given, also write the figure there (format from the extension,
        e.g. ``.png``), atomically.
    overwrite : bool
        Replace an existing file at *path*.
    dpi : float
        Resolution of the written file.

    Returns
    -------
    `matplotlib.figure.Figure`

    Raises
    ------
    TypeError
        If *cutout* is not a Cutout.
    m31clusters.exceptions.BandError
        If a band of *bands* is not in the cutout.
    ValueError
        If *ids* or *scores* do not have one entry per candidate, the cutout
        is empty or has more than *max_candidates* stamps, or an option is
        out of range.
    FileExistsError
        If *path* exists and *overwrite* is False.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.inspection import inspection_montage
    >>> y, x = np.mgrid[:32, :32] - 15.5
    >>> blob = np.exp(-(x**2 + y**2) / 8.0)
    >>> data = np.stack([np.stack([blob, 0.5 * blob], axis=-1)] * 2).astype("float32")
    >>> fig = inspection_montage(Cutout(data), ids=[101, 102], scores=[4, 3], ncols=2)
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['101: g', 'i', 'Score 4']
    """
    from .cutout import Cutout

    if not isinstance(cutout, Cutout):
        raise TypeError(f"cutout must be an m31clusters Cutout, got {type(cutout).__name__}")
    data = cutout.data
    cut_bands = tuple(cutout.bands)
    data = np.asarray(data, dtype=float)
    n = data.shape[0]
    if len(bands) != 2:
        raise ValueError(f"bands must name two bands (blue, red), got {bands!r}")
    for band in bands:
        if band not in cut_bands:
            raise BandError(f"band {band!r} is not in the cutout (bands {cut_bands})")
    if n == 0:
        raise ValueError("the cutout holds no stamps")
    if n > max_candidates:
        raise ValueError(
            f"{n} candidates is more than max_candidates={max_candidates}; draw pages "
            f"of the cutout (e.g. cutout[:{max_candidates}]) or raise max_candidates"
        )
    if ids is None:
        ids = list(range(n))
    if len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries for {n} candidates")
    if scores is not None and len(scores) != n:
        raise ValueError(f"scores has {len(scores)} entries for {n} candidates")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    stretch = _get_stretch(stretch)
    if path is not None:
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it"
            )

    valid = ~np.asarray(cutout.mask, dtype=bool) & np.isfinite(data)
    ib, ir = cut_bands.index(bands[0]), cut_bands.index(bands[1])

    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    gray = plt.get_cmap("gray").with_extremes(bad=_BAD_COLOR)
    ncols = min(int(ncols), n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, 3 * ncols, figsize=(3 * ncols * 1.4, nrows * 1.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k in range(n):
        row, col = divmod(k, ncols)
        ax_b, ax_r, ax_c = axes[row, 3 * col: 3 * col + 3]
        blue = _scale(data[k, :, :, ib], valid[k, :, :, ib], percentile)
        red = _scale(data[k, :, :, ir], valid[k, :, :, ir], percentile)
        with np.errstate(invalid="ignore"):
            blue_s, red_s = stretch(blue), stretch(red)
            green_s = stretch((blue + red) / 2)
        ax_b.imshow(blue_s, origin="lower", cmap=gray, vmin=0, vmax=1,
                    interpolation="nearest")
        ax_r.imshow(red_s, origin="lower", cmap=gray, vmin=0, vmax=1,
                    interpolation="nearest")
        rgb = np.stack([red_s, green_s, blue_s], axis=-1)
        rgb[np.isnan(green_s)] = to_rgb(_BAD_COLOR)
        ax_c.imshow(np.clip(rgb, 0, 1), origin="lower", interpolation="nearest")
        ax_b.set_title(f"{ids[k]}: {bands[0]}", fontsize=8)
        ax_r.set_title(bands[1], fontsize=8)
        if scores is None:
            ax_c.set_title(f"{bands[0]}/{bands[1]}", fontsize=8)
        else:
            s = scores[k]
            ax_c.set_title("Score --" if np.ma.is_masked(s) else f"Score {s}", fontsize=8)
    fig.tight_layout(pad=0.3)
    if path is not None:
        fmt = path.suffix.lstrip(".").lower() or "png"
        with atomic_path(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    return fig
