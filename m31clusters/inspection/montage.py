"""
Drawing candidate stamps: the one meaning of ``stretch`` in the package.

Every picture of a stamp the package draws -- the matplotlib montage of
`inspection_montage`, the stamps of the HTML inspection page and
`Cutout.plot <m31clusters.cutout.Cutout.plot>` -- goes through
`render_bands` and `composite`: each band of each stamp is scaled
between two percentiles of its valid pixels to [0, 1], then stretched; the
colour composite shows the stretched first band as blue, the second as red
and their mean as green.
"""

from pathlib import Path

import numpy as np

from ..exceptions import BandError
from ..utils._io import atomic_path

__all__ = ["STRETCHES", "composite", "inspection_montage", "render_bands"]

#: Names of the stretches `render_bands` accepts (or any astropy.visualization stretch).
STRETCHES = ("asinh", "linear", "sqrt", "log")
BAD_COLOR = "#4060a0"  # pixels without data
_BAD_RGB = (0x40 / 255, 0x60 / 255, 0xA0 / 255)


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
    if not isinstance(stretch, str) or stretch not in table:
        raise ValueError(
            f"stretch must be one of {STRETCHES} or an astropy.visualization stretch, "
            f"got {stretch!r}"
        )
    return table[stretch]()


def _check_percentile(percentile):
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")


def render_bands(data, valid=None, *, stretch="asinh", percentile=99.5):
    """
    Scale each band of each stamp to [0, 1] between percentiles, then stretch.

    Parameters
    ----------
    data : array-like, shape (N, H, W, C)
        Stamps (raw or normalised).
    valid : array-like of bool, same shape, optional
        Pixels with data (default: the finite ones); others come out NaN.
    stretch : {"asinh", "linear", "sqrt", "log"} or astropy stretch
        Applied after the percentile scaling.
    percentile : float
        Central percentage of each band's valid pixels mapped to [0, 1]:
        the ``(100 - percentile) / 2`` percentile becomes 0 and the
        ``(100 + percentile) / 2`` one 1 (values beyond are clipped).

    Returns
    -------
    `numpy.ndarray`, shape (N, H, W, C), float64
        Values in [0, 1], NaN where there is no data.

    Raises
    ------
    ValueError
        For a bad *stretch* or *percentile*, or *data* not 4-D.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.inspection import render_bands
    >>> img = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> out = render_bands(img, stretch="linear", percentile=100)
    >>> float(out.min()), float(out.max())
    (0.0, 1.0)
    """
    data = np.asarray(data, dtype=float)
    if data.ndim != 4:
        raise ValueError(f"data must have shape (N, H, W, C), got {data.shape}")
    _check_percentile(percentile)
    stretch = _get_stretch(stretch)
    good = np.isfinite(data)
    if valid is not None:
        good &= np.asarray(valid, dtype=bool)
    masked = np.where(good, data, np.nan)
    half = (100.0 - percentile) / 2
    out = np.full(data.shape, np.nan)
    has = good.any(axis=(1, 2))  # (N, C)
    if np.any(has):
        n_idx, c_idx = np.nonzero(has)
        sub = masked[n_idx, :, :, c_idx]  # (K, H, W)
        flat = sub.reshape(len(sub), -1)
        lo, hi = _row_percentiles(flat, (half, 100.0 - half))
        hi = np.where(hi > lo, hi, lo + 1.0)
        with np.errstate(invalid="ignore"):
            scaled = np.clip((sub - lo[:, None, None]) / (hi - lo)[:, None, None], 0.0, 1.0)
            stretched = stretch(np.where(np.isfinite(scaled), scaled, 0.0))
        out[n_idx, :, :, c_idx] = np.where(np.isfinite(sub), stretched, np.nan)
    return out


def _row_percentiles(flat, qs):
    """
    Percentiles of each row of *flat* ignoring NaN, as `numpy.nanpercentile`
    (linear method) computes them, but with one sort for all rows instead of
    a Python loop over the rows that hold NaN.
    """
    ordered = np.sort(flat, axis=1)  # NaN sort last
    count = np.count_nonzero(~np.isnan(flat), axis=1)
    out = []
    for q in qs:
        pos = (count - 1) * (q / 100.0)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, count - 1)
        t = pos - lo
        a = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
        b = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
        out.append(np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t))
    return out


def composite(blue, red):
    """
    The colour composite of two rendered bands: red, their mean as green, blue.

    Parameters
    ----------
    blue, red : array-like, shape (..., H, W)
        Rendered bands (from `render_bands`), values in [0, 1], NaN without data.

    Returns
    -------
    `numpy.ndarray`, shape (..., H, W, 3)
        RGB in [0, 1]; pixels where either band has no data are blue-grey.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.inspection import composite
    >>> composite(np.array([[0.0]]), np.array([[1.0]]))[0, 0].tolist()
    [1.0, 0.5, 0.0]
    """
    blue = np.asarray(blue, dtype=float)
    red = np.asarray(red, dtype=float)
    rgb = np.stack([red, (blue + red) / 2, blue], axis=-1)
    rgb[np.isnan(rgb).any(axis=-1)] = _BAD_RGB
    return np.clip(rgb, 0.0, 1.0)


def inspection_montage(cutout, ids=None, *, scores=None, ncols=4, stretch="asinh",
                       bands=("g", "i"), percentile=99.5, max_candidates=100, path=None,
                       overwrite=False, dpi=100):
    """
    Draw, for each candidate, its g stamp, its i stamp and a colour composite.

    The page a visual inspector looks at: per candidate three panels, the
    first titled with the candidate's id, the last with its score (when
    given).  Each band of each stamp is scaled and stretched by
    `render_bands` (between the ``(100 - percentile) / 2`` and
    ``(100 + percentile) / 2`` percentiles of its valid pixels, then
    *stretch*); the colour composite (`composite`) shows g as blue, i as
    red and their mean as green (so it shows colour gradients within a
    stamp, not absolute colours).  Pixels without data (``cutout.mask`` or
    NaN) are drawn in a flat blue-grey.  For many candidates, the HTML page
    of `write_inspection_page` is the better tool.

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
    n = _check_cutout(cutout, bands)
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
    _check_percentile(percentile)
    _get_stretch(stretch)
    if path is not None:
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it"
            )
    blue, red = _render_pair(cutout, bands, stretch, percentile)
    rgb = composite(blue, red)

    import matplotlib.pyplot as plt

    gray = plt.get_cmap("gray").with_extremes(bad=BAD_COLOR)
    ncols = min(int(ncols), n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, 3 * ncols, figsize=(3 * ncols * 1.4, nrows * 1.6),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k in range(n):
        row, col = divmod(k, ncols)
        ax_b, ax_r, ax_c = axes[row, 3 * col: 3 * col + 3]
        ax_b.imshow(np.ma.masked_invalid(blue[k]), origin="lower", cmap=gray, vmin=0, vmax=1,
                    interpolation="nearest")
        ax_r.imshow(np.ma.masked_invalid(red[k]), origin="lower", cmap=gray, vmin=0, vmax=1,
                    interpolation="nearest")
        ax_c.imshow(rgb[k], origin="lower", interpolation="nearest")
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


def _check_cutout(cutout, bands):
    """Validate a Cutout and two band names; return the number of stamps."""
    from ..cutout import Cutout

    if not isinstance(cutout, Cutout):
        raise TypeError(f"cutout must be an m31clusters Cutout, got {type(cutout).__name__}")
    if len(bands) != 2:
        raise ValueError(f"bands must name two bands (blue, red), got {bands!r}")
    cut_bands = tuple(cutout.bands)
    for band in bands:
        if band not in cut_bands:
            raise BandError(f"band {band!r} is not in the cutout (bands {cut_bands})")
    if len(cutout) == 0:
        raise ValueError("the cutout holds no stamps")
    return len(cutout)


def _render_pair(cutout, bands, stretch, percentile):
    """Rendered (blue, red) bands of a Cutout, each (N, H, W)."""
    cut_bands = tuple(cutout.bands)
    idx = [cut_bands.index(b) for b in bands]
    data = np.asarray(cutout.data)[..., idx]
    valid = ~np.asarray(cutout.mask, dtype=bool)[..., idx]
    out = render_bands(data, valid, stretch=stretch, percentile=percentile)
    return out[..., 0], out[..., 1]
