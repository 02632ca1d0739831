"""
Vectorised kernels behind `m31clusters.cutout.Cutout`: stamp extraction
with the `astropy.nddata.Cutout2D` centring convention, NaN-aware robust
statistics over stamps, and the eight dihedral transforms.

Everything here works on plain numpy arrays.
"""

import functools
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "stamp_origins",
    "extract_stamps",
    "sorted_quantile",
    "zscale_limits",
    "dihedral_array",
    "dihedral_offsets",
    "dihedral_pixel_map",
    "dihedral_product",
]

#: Bytes of stamps gathered per numpy call (keeps the temporary in cache).
_BLOCK_BYTES = 1 << 21

#: Upper limit on the threads `extract_stamps` uses by default.
_MAX_THREADS = 8


def _n_threads():
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _MAX_THREADS))


def stamp_origins(x, y, shape):
    """
    Integer pixel of the lower-left corner of each stamp.

    Uses exactly the rule of `astropy.nddata.utils.overlap_slices` with the
    default ``limit_rounding_method=np.ceil``: the first row/column is
    ``ceil(position - size / 2)`` (positions are 0-based, integer values at
    pixel centres).  For both odd and even sizes the offset of the true
    position from the stamp's geometric centre ``((W - 1) / 2, (H - 1) / 2)``
    then lies in ``(-0.5, 0.5]``.

    Parameters
    ----------
    x, y : array-like
        0-based pixel positions (column, row).
    shape : tuple of int
        Stamp shape ``(H, W)``.

    Returns
    -------
    x0, y0 : ndarray of int64
    """
    h, w = shape
    x0 = np.ceil(np.asarray(x, dtype=np.float64) - w / 2.0).astype(np.int64)
    y0 = np.ceil(np.asarray(y, dtype=np.float64) - h / 2.0).astype(np.int64)
    return x0, y0


def extract_stamps(image, x0, y0, shape, out, rows=None, image_mask=None, out_mask=None,
                   fill_value=np.nan):
    """
    Copy stamps from a 2-D array into rows of *out*.

    Stamps fully inside *image* are gathered in small blocks through a
    `~numpy.lib.stride_tricks.sliding_window_view` (one fancy-indexing call
    per block, no copy of the image: works on memory maps); stamps that
    overlap an edge are copied slice by slice, the part off the image set
    to *fill_value*.

    Parameters
    ----------
    image : 2-D array-like
        The image: an ndarray (possibly a `numpy.memmap`) or any object
        supporting 2-D slicing such as `astropy.io.fits.Section` (then stamps
        are read one by one).
    x0, y0 : ndarray of int, shape (n,)
        Lower-left corners from `stamp_origins`.
    shape : tuple of int
        ``(H, W)``.
    out : ndarray, shape (M, H, W)
        Output (may be a strided view), written in place.
    rows : ndarray of int, shape (n,), optional
        Rows of *out* receiving the stamps (default ``0..n-1``).
    image_mask : 2-D bool array, optional
        True where an image pixel is invalid.
    out_mask : ndarray of bool, shape (M, H, W), optional
        If given, set (in the same rows) True where a stamp pixel is off
        the image, not finite (NaN or +/-inf), or True in *image_mask*; computed block by block
        while the stamps are in cache.
    fill_value : float
        Value for pixels off the image (NaN, so that they are masked).

    Notes
    -----
    Stamps fully inside the image are gathered on one thread per CPU core
    available to this process (at most `_MAX_THREADS`): the copy is
    memory-bound and numpy releases the GIL while it copies, so each thread
    adds a memory stream.  The result does not depend on the thread count.
    """
    h, w = shape
    ny, nx = image.shape
    x0 = np.asarray(x0, dtype=np.int64)
    y0 = np.asarray(y0, dtype=np.int64)
    rows = np.arange(x0.size) if rows is None else np.asarray(rows, dtype=np.int64)
    use_mask = image_mask is not None and out_mask is not None
    want_mask = out_mask is not None
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + w <= nx) & (y0 + h <= ny)
    if isinstance(image, np.ndarray):
        idx_in = np.flatnonzero(inside)
        rest = np.flatnonzero(~inside)
    else:
        idx_in = np.zeros(0, dtype=np.int64)
        rest = np.arange(x0.size)
    if idx_in.size:
        win = sliding_window_view(image, (h, w))
        mwin = sliding_window_view(image_mask, (h, w)) if use_mask else None
        # small blocks keep the gathered temporary in cache
        block = max(1, _BLOCK_BYTES // (h * w * image.itemsize))

        def gather(starts):
            for start in starts:
                sel = idx_in[start : start + block]
                r = rows[sel]
                if r[-1] - r[0] == r.size - 1:  # consecutive rows: a plain slice
                    r = slice(int(r[0]), int(r[-1]) + 1)
                stamps = win[y0[sel], x0[sel]]
                out[r] = stamps
                if want_mask:
                    m = np.isfinite(stamps)
                    np.logical_not(m, out=m)
                    if use_mask:
                        m |= mwin[y0[sel], x0[sel]]
                    out_mask[r] = m

        starts = range(0, idx_in.size, block)
        n_threads = min(_n_threads(), len(starts))
        if n_threads <= 1:
            gather(starts)
        else:
            # numpy releases the GIL while it copies: one memory stream per core.
            # Threads write disjoint rows of *out*.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_threads) as pool:
                # list() re-raises a worker's exception here
                list(pool.map(gather, (starts[k::n_threads] for k in range(n_threads))))
    for i in rest:
        xa, ya, r = x0[i], y0[i], rows[i]
        xs0, xs1 = max(0, xa), min(nx, xa + w)
        ys0, ys1 = max(0, ya), min(ny, ya + h)
        stamp = np.full((h, w), fill_value, dtype=out.dtype)
        m = np.ones((h, w), dtype=bool)
        if xs1 > xs0 and ys1 > ys0:
            inner = (slice(ys0 - ya, ys1 - ya), slice(xs0 - xa, xs1 - xa))
            stamp[inner] = image[ys0:ys1, xs0:xs1]
            m[inner] = False if not use_mask else image_mask[ys0:ys1, xs0:xs1]
        out[r] = stamp
        if want_mask:
            out_mask[r] = m | ~np.isfinite(stamp)


def sorted_quantile(sorted_values, n_valid, q):
    """
    Quantile *q* (0..1) along the last axis of sorted data (NaN last).

    *n_valid* is the number of non-NaN values of each row; numpy's default
    linear rule.

    Identical to ``np.nanquantile(values, q, axis=-1)`` where at least one
    value is valid; NaN where none is.
    """
    n = np.asarray(n_valid)
    pos = q * np.maximum(n - 1, 0).astype(np.float64)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = (pos - lo)[..., None]
    vlo = np.take_along_axis(sorted_values, lo[..., None], axis=-1)
    vhi = np.take_along_axis(sorted_values, hi[..., None], axis=-1)
    # numpy's _lerp: a + (b - a) * t, written so that t == 0 returns a exactly
    res = np.where(frac == 0, vlo, vlo + (vhi - vlo) * frac)[..., 0]
    return np.where(n > 0, res, np.nan)


def zscale_limits(values, n_valid, contrast=0.25, n_samples=1000, max_reject=0.5,
                  min_npixels=5, krej=2.5, max_iterations=5):
    """
    IRAF zscale limits of many pixel sets at once.

    The algorithm of `astropy.visualization.ZScaleInterval.get_limits`,
    vectorised over rows: sample every ``stride``-th valid pixel, sort, fit a
    line to the sorted samples with iterative k-sigma rejection (rejected
    samples dilated by 1% of the sample count), and derive the limits from
    the median and the slope divided by *contrast*.  Rows with the same
    number of valid pixels are processed together.  The straight-line fit is
    the closed-form least-squares solution rather than `numpy.polyfit`, so
    limits agree with astropy to rounding (about 1e-12 relative).

    Parameters
    ----------
    values : ndarray, shape (m, L)
        Pixel values in their original order, NaN where invalid.
    n_valid : ndarray of int, shape (m,)
        Number of non-NaN values of each row.
    contrast, n_samples, max_reject, min_npixels, krej, max_iterations
        As for `~astropy.visualization.ZScaleInterval`.

    Returns
    -------
    lo, hi : ndarray, shape (m,)
        The limits; NaN for rows without valid pixels.
    """
    values = np.asarray(values, dtype=np.float64)
    n_valid = np.asarray(n_valid)
    m, length = values.shape
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    for k in np.unique(n_valid):
        if k <= 0:
            continue
        rows = np.flatnonzero(n_valid == k)
        sub = values[rows]
        if k < length:  # boolean indexing keeps each row's order
            sub = sub[~np.isnan(sub)].reshape(rows.size, k)
        stride = int(max(1.0, k / n_samples))
        samples = np.sort(sub[:, ::stride][:, :n_samples], axis=1)
        lo[rows], hi[rows] = _zscale_sorted(samples, contrast, max_reject, min_npixels, krej,
                                            max_iterations)
    return lo, hi


def _zscale_sorted(samples, contrast, max_reject, min_npixels, krej, max_iterations):
    m, npix = samples.shape
    vmin = samples[:, 0].copy()
    vmax = samples[:, -1].copy()
    minpix = max(int(min_npixels), int(npix * max_reject))
    x = np.arange(npix, dtype=np.float64)
    bad = np.zeros((m, npix), dtype=bool)
    ngood = np.full(m, npix)
    last = np.full(m, npix + 1)
    active = np.ones(m, dtype=bool)
    slope = np.full(m, np.nan)
    ngrow = max(1, int(npix * 0.01))
    # np.convolve(bad, ones(ngrow), "same"): window [i - ngrow + 1 + c, i + c]
    shift = (ngrow - 1) // 2
    idx = np.arange(npix)
    w_lo = np.clip(idx + shift - ngrow + 1, 0, npix)
    w_hi = np.clip(idx + shift + 1, 0, npix)
    for _ in range(int(max_iterations)):
        active &= ~((ngood >= last) | (ngood < minpix))
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        y = samples[a]
        g = (~bad[a]).astype(np.float64)
        s0 = g.sum(axis=1)
        sx = g @ x
        sxx = g @ (x * x)
        gy = g * y
        sy = gy.sum(axis=1)
        sxy = gy @ x
        b1 = (s0 * sxy - sx * sy) / (s0 * sxx - sx * sx)
        b0 = (sy - b1 * sx) / s0
        flat = y - (b0[:, None] + b1[:, None] * x)
        mean = (flat * g).sum(axis=1) / s0
        sigma = np.sqrt((((flat - mean[:, None]) ** 2) * g).sum(axis=1) / s0)
        threshold = (krej * sigma)[:, None]
        rejected = bad[a] | (flat < -threshold) | (flat > threshold)
        counts = np.zeros((a.size, npix + 1), dtype=np.int64)
        np.cumsum(rejected, axis=1, out=counts[:, 1:])
        bad[a] = (counts[:, w_hi] - counts[:, w_lo]) > 0
        last[a] = ngood[a]
        ngood[a] = npix - np.count_nonzero(bad[a], axis=1)
        slope[a] = b1
    ok = ngood >= minpix
    if contrast > 0:
        slope = slope / contrast
    centre = (npix - 1) // 2
    median = 0.5 * (samples[:, (npix - 1) // 2] + samples[:, npix // 2])
    with np.errstate(invalid="ignore"):
        lo = np.where(ok, np.maximum(vmin, median - (centre - 1) * slope), vmin)
        hi = np.where(ok, np.minimum(vmax, median + (npix - centre) * slope), vmax)
    return lo, hi


def dihedral_array(data, k, axes=(1, 2)):
    """
    Apply dihedral transform *k* (0..7) to the two *axes* of *data*.

    ``k % 4`` counter-clockwise quarter turns (`numpy.rot90` on
    ``(row, column)``, as displayed with ``origin="lower"`` this is a
    clockwise turn), followed, for ``k >= 4``, by a left-right flip
    (columns reversed).  Returns a view.
    """
    out = np.rot90(data, k % 4, axes=axes)
    if k >= 4:
        out = np.flip(out, axis=axes[1])
    return out


def dihedral_pixel_map(k, shape):
    """
    The pixel map of `dihedral_array` transform *k*.

    Returns ``(A, b)`` with ``p = A @ p' + b``: pixel ``p' = (x', y')``
    (0-based, x along columns) of a stamp transformed by *k* shows pixel
    ``p`` of the stamp of *shape* ``(H, W)`` before.  ``A`` is orthogonal.
    """
    a = np.eye(2)
    b = np.zeros(2)
    h, w = shape
    for step in ["rot"] * (k % 4) + (["flip"] if k >= 4 else []):
        if step == "rot":  # np.rot90 on (row, col): new[i, j] = old[j, W - 1 - i]
            s, t = np.array([[0.0, -1.0], [1.0, 0.0]]), np.array([w - 1.0, 0.0])
            h, w = w, h
        else:  # columns reversed: new[i, j] = old[i, W - 1 - j]
            s, t = np.array([[-1.0, 0.0], [0.0, 1.0]]), np.array([w - 1.0, 0.0])
        b = a @ t + b
        a = a @ s
    return a, b


def dihedral_offsets(offsets, k):
    """
    Transform (dx, dy) offsets from the stamp centre like `dihedral_array`.

    ``dx`` is along columns (x), ``dy`` along rows (y).  The centre maps to
    the centre, so an offset transforms by ``A^T`` of `dihedral_pixel_map`.
    """
    a, _ = dihedral_pixel_map(k, (1, 1))
    return np.asarray(offsets, dtype=np.float64) @ a


@functools.cache
def dihedral_product():
    """``table[k1, k2]``: the single transform equal to *k1* followed by *k2*."""
    probe = np.arange(9.0).reshape(1, 3, 3)
    table = np.zeros((8, 8), dtype=np.int8)
    results = [dihedral_array(probe, k) for k in range(8)]
    for k1 in range(8):
        for k2 in range(8):
            both = dihedral_array(results[k1], k2)
            table[k1, k2] = next(k for k in range(8) if np.array_equal(results[k], both))
    return table
