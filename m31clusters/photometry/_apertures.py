"""
Vectorised circular-aperture photometry at many positions (private).

What `photutils.aperture` computes one aperture at a time (exact pixel
overlaps of circles, sigma-clipped statistics of the pixels whose centres lie
in an annulus, second moments), done here for blocks of positions at once
with numpy, reading only the pixels near each position: no Python loop over
sources and no copy of the image.

* `exact_weights`: the exact area of overlap of every pixel of a box with a
  circle (photutils' ``method="exact"``), from a closed-form integral of the
  disc over a quadrant, separable in x and y;
* `clipped_stats`: sigma-clipped mean and standard deviation of each row of
  a block of values (astropy's `~astropy.stats.SigmaClip` with median centre
  and standard deviation, ``sigma=3``: the values kept at each iteration are
  a contiguous run of the sorted row, so one sort per row and prefix sums
  give every iteration);
* `aperture_photometry`: sums, areas, annulus statistics, saturation and
  second moments for many positions.
"""

import numpy as np

__all__ = []

#: Positions processed per block (bounds the temporary arrays to tens of MB).
_BLOCK = 1024

#: Pixel centres within this distance (pixels) of a radius may straddle it
#: for a position anywhere within the nearest pixel (half a diagonal, 0.71).
_MARGIN = 0.75


def _segment_primitive(t, r):
    """Integral of sqrt(r**2 - X**2) from 0 to t (0 <= t <= r)."""
    return 0.5 * (t * np.sqrt(np.maximum(r * r - t * t, 0.0))
                  + r * r * np.arcsin(np.minimum(t / r, 1.0)))


def exact_weights(fx, fy, half, r):
    """
    Exact overlap of each pixel of a box with a circle, for many circles.

    Parameters
    ----------
    fx, fy : ndarray, shape (n,)
        Offsets of the circle centres from the centre of the box's middle
        pixel (pixels, at most 0.5 in absolute value).
    half : int
        Half size of the box: ``2 * half + 1`` pixels a side.
    r : float
        Circle radius (pixels); ``half >= r + 1`` covers the circle.

    Returns
    -------
    ndarray, shape (n, 2 * half + 1, 2 * half + 1)
        Fraction of each pixel (rows y, columns x) inside the circle.

    Notes
    -----
    ``A(x, y)``, the area of the disc with ``X < x`` and ``Y < y`` counted
    from the centre (signed, odd in x and y), is
    ``min(y, r) * m + P(min(x, r)) - P(m)`` for ``x, y >= 0``, where
    ``m = min(sqrt(r**2 - min(y, r)**2), min(x, r))`` and ``P`` the integral
    of the circle's half-chord.  A pixel's overlap is the difference of
    ``A`` at its four corners.  Each term depends on x or on y alone, so
    only comparisons and products are done on the 2-D grid.
    """
    edges = np.arange(-half - 0.5, half + 1.0)  # pixel edges relative to the middle pixel
    ex = edges[None, :] - np.asarray(fx, dtype=float)[:, None]  # (n, B + 1)
    ey = edges[None, :] - np.asarray(fy, dtype=float)[:, None]
    sx, sy = np.sign(ex), np.sign(ey)
    xc = np.minimum(np.abs(ex), r)
    yc = np.minimum(np.abs(ey), r)
    xs = np.sqrt(np.maximum(r * r - yc * yc, 0.0))  # where the circle meets Y = y
    pxc = _segment_primitive(xc, r)
    pxs = _segment_primitive(xs, r)
    # 2-D: rows y (axis 1), columns x (axis 2)
    use_xs = xs[:, :, None] < xc[:, None, :]
    m = np.where(use_xs, xs[:, :, None], xc[:, None, :])
    pm = np.where(use_xs, pxs[:, :, None], pxc[:, None, :])
    a = yc[:, :, None] * m
    a += pxc[:, None, :]
    a -= pm
    a *= sy[:, :, None]
    a *= sx[:, None, :]
    w = a[:, 1:, 1:] - a[:, :-1, 1:] - a[:, 1:, :-1] + a[:, :-1, :-1]
    return np.clip(w, 0.0, 1.0, out=w)


def clipped_stats(values, valid, sigma=3.0, maxiters=5):
    """
    Sigma-clipped mean, standard deviation and count of each row.

    The same clipping as `astropy.stats.SigmaClip` (``cenfunc="median"``,
    ``stdfunc="std"``, symmetric *sigma*, at most *maxiters* iterations,
    stopping when nothing changes, the final set being every valid value
    within the last bounds), row by row, vectorised.

    Parameters
    ----------
    values : ndarray, shape (n, m)
        Values; only those where *valid* is true are used.
    valid : ndarray of bool, shape (n, m)
    sigma : float
    maxiters : int

    Returns
    -------
    mean, std, count : ndarray, shape (n,)
        NaN mean and std (count 0) for rows without a valid value.
    """
    n = values.shape[0]
    key = np.where(valid, values, np.inf)
    key.sort(axis=1)
    count = np.count_nonzero(valid, axis=1)
    rows = np.arange(n)
    mid = np.maximum(count - 1, 0) // 2
    shift = key[rows, mid].astype(np.float64)
    shift[count == 0] = 0.0
    shifted = key.astype(np.float64)
    shifted -= shift[:, None]
    pos = np.arange(key.shape[1])
    shifted[pos[None, :] >= count[:, None]] = 0.0
    s1 = np.zeros((n, key.shape[1] + 1))
    s2 = np.zeros((n, key.shape[1] + 1))
    np.cumsum(shifted, axis=1, out=s1[:, 1:])
    np.cumsum(shifted * shifted, axis=1, out=s2[:, 1:])

    def stats(lo, hi):
        k = hi - lo
        kk = np.maximum(k, 1)
        mean = (s1[rows, hi] - s1[rows, lo]) / kk
        var = (s2[rows, hi] - s2[rows, lo]) / kk - mean * mean
        return mean, np.sqrt(np.maximum(var, 0.0)), k

    lo = np.zeros(n, dtype=np.intp)
    hi = count.astype(np.intp)
    low_b = high_b = None
    for _ in range(maxiters):
        _, std, k = stats(lo, hi)
        kk = np.maximum(k, 1)
        med = 0.5 * (key[rows, np.minimum(lo + (kk - 1) // 2, key.shape[1] - 1)]
                     + key[rows, np.minimum(lo + kk // 2, key.shape[1] - 1)]).astype(np.float64)
        low_b = med - sigma * std
        high_b = med + sigma * std
        new_lo = np.maximum(lo, np.count_nonzero(key < low_b[:, None], axis=1))
        new_hi = np.minimum(hi, np.count_nonzero(key <= high_b[:, None], axis=1))
        changed = (new_lo != lo) | (new_hi != hi)
        lo, hi = new_lo, new_hi
        if not changed.any():
            break
    if low_b is not None:
        # the final set: every valid value within the last bounds
        lo = np.count_nonzero(key < low_b[:, None], axis=1)
        hi = np.minimum(np.count_nonzero(key <= high_b[:, None], axis=1), count)
        hi = np.maximum(hi, lo)
    mean, std, k = stats(lo, hi)
    mean = mean + shift
    empty = k == 0
    mean[empty] = np.nan
    std[empty] = np.nan
    return mean, std, k


def _offsets(half, r_min=None, r_max=None):
    """Integer (dy, dx) offsets of a box, optionally only those near an annulus."""
    d = np.arange(-half, half + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(d, d, indexing="ij"))
    if r_min is not None:
        rr = np.hypot(dy, dx)
        keep = (rr >= max(r_min - _MARGIN, 0.0)) & (rr < r_max + _MARGIN)
        dy, dx = dy[keep], dx[keep]
    return dy, dx


def _gather(data, mask, iy, ix, dy, dx):
    """
    Pixels at (iy + dy, ix + dx) for every position: values (n, m) and bad (n, m).

    Bad pixels are non-finite ones, masked ones and those off the image
    (their value is that of the nearest edge pixel, and must not be used).
    """
    ny, nx = data.shape
    yy = iy[:, None] + dy[None, :]
    xx = ix[:, None] + dx[None, :]
    off = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
    any_off = off.any()
    if any_off:
        np.clip(yy, 0, ny - 1, out=yy)
        np.clip(xx, 0, nx - 1, out=xx)
    if data.flags.c_contiguous:
        flat = yy * nx
        flat += xx
        values = np.take(data.reshape(-1), flat)
        bad = np.take(mask.reshape(-1), flat) if mask is not None else None
    else:
        values = data[yy, xx]
        bad = mask[yy, xx] if mask is not None else None
    finite = np.isfinite(values)
    bad = ~finite if bad is None else (bad | ~finite)
    if any_off:
        bad |= off
    return values, bad


def aperture_photometry(data, mask, x, y, *, r_ap, r_in, r_out, radii=(), fwhm_radius=None,
                        saturation=None, peaks=False, sigma=3.0, maxiters=5, block=_BLOCK):
    """
    Circular-aperture sums and annulus sky statistics at many positions.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        The image (any float dtype; read, never copied).
    mask : ndarray of bool or None
        Extra bad pixels (True), on top of non-finite ones.
    x, y : ndarray, shape (n,)
        Positions (0-based pixels), within the image.
    r_ap : float
        Aperture radius (pixels).
    r_in, r_out : float
        Radii of the sky annulus: pixels whose centre is at ``r_in <= d <
        r_out`` (photutils' ``method="center"``), sigma-clipped.
    radii : sequence of float
        More aperture radii (at most *r_ap* + 1... any size) to sum.
    fwhm_radius : float, optional
        Radius of the circle (centre method) for the second-moment FWHM of
        the sky-subtracted pixels (photutils `ApertureStats.fwhm`).
    saturation : float, optional
        Level at or above which (to 1e-6) an aperture pixel is saturated.
    peaks : bool
        Also return the maximum valid pixel in the aperture and the annulus
        (centre method).

    Returns
    -------
    dict of ndarray, shape (n,)
        ``sum`` and ``area`` (exact overlap, bad pixels excluded) for
        *r_ap*; ``sum_<i>``/``area_<i>`` for ``radii[i]``; ``sky``,
        ``sky_std``, ``sky_n`` (clipped mean, standard deviation, number of
        pixels kept); ``saturated`` (bool); ``fwhm`` (pixels); ``peak_ap``,
        ``peak_ann``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = x.size
    ix = np.floor(x + 0.5).astype(np.intp)
    iy = np.floor(y + 0.5).astype(np.intp)
    fx, fy = x - ix, y - iy
    r_box = max([r_ap, *radii] + ([fwhm_radius] if fwhm_radius is not None else []))
    half = int(np.ceil(r_box)) + 1
    bdy, bdx = _offsets(half)
    side = 2 * half + 1
    half_ann = int(np.ceil(r_out)) + 1
    ady, adx = _offsets(half_ann, r_in, r_out)
    sort_dtype = np.float32 if data.dtype == np.float32 else np.float64

    out = {k: np.full(n, np.nan) for k in ("sum", "area", "sky", "sky_std", "fwhm",
                                          "peak_ap", "peak_ann")}
    out["sky_n"] = np.zeros(n, dtype=np.intp)
    out["saturated"] = np.zeros(n, dtype=bool)
    for i in range(len(radii)):
        out[f"sum_{i}"] = np.full(n, np.nan)
        out[f"area_{i}"] = np.full(n, np.nan)

    for start in range(0, n, block):
        sl = slice(start, min(start + block, n))
        bfx, bfy = fx[sl], fy[sl]
        # --- sky annulus (centre method), sigma-clipped
        vals, bad = _gather(data, mask, iy[sl], ix[sl], ady, adx)
        d2 = (adx[None, :] - bfx[:, None]) ** 2
        d2 += (ady[None, :] - bfy[:, None]) ** 2
        member = (d2 >= r_in * r_in) & (d2 < r_out * r_out) & ~bad
        del d2
        sky, sky_std, sky_n = clipped_stats(vals.astype(sort_dtype, copy=False), member,
                                            sigma=sigma, maxiters=maxiters)
        out["sky"][sl], out["sky_std"][sl], out["sky_n"][sl] = sky, sky_std, sky_n
        if peaks:
            pk = np.where(member, vals, -np.inf).max(axis=1).astype(float)
            pk[~member.any(axis=1)] = np.nan
            out["peak_ann"][sl] = pk
        del vals, bad, member
        # --- apertures (exact overlap)
        vals, bad = _gather(data, mask, iy[sl], ix[sl], bdy, bdx)
        k = vals.shape[0]
        vals = vals.reshape(k, side, side).astype(np.float64)
        good = ~bad.reshape(k, side, side)
        filled = np.where(good, vals, 0.0)
        w = exact_weights(bfx, bfy, half, r_ap)
        out["sum"][sl] = np.einsum("nij,nij->n", w, filled)
        out["area"][sl] = np.einsum("nij,nij->n", w, good)
        if saturation is not None:
            hot = good & (vals >= saturation * (1 - 1e-6))
            out["saturated"][sl] = np.any(hot & (w > 0), axis=(1, 2))
        for i, r in enumerate(radii):
            wr = exact_weights(bfx, bfy, half, r)
            out[f"sum_{i}"][sl] = np.einsum("nij,nij->n", wr, filled)
            out[f"area_{i}"][sl] = np.einsum("nij,nij->n", wr, good)
        if fwhm_radius is not None or peaks:
            ox = (bdx.reshape(side, side)[None] - bfx[:, None, None])
            oy = (bdy.reshape(side, side)[None] - bfy[:, None, None])
            rr2 = ox * ox + oy * oy
        if peaks:
            inside = good & (rr2 < r_ap * r_ap)
            pk = np.where(inside, vals, -np.inf).max(axis=(1, 2))
            pk[~inside.any(axis=(1, 2))] = np.nan
            out["peak_ap"][sl] = pk
        if fwhm_radius is not None:
            inside = good & (rr2 < fwhm_radius * fwhm_radius)
            v = np.where(inside, filled - np.nan_to_num(sky)[:, None, None], 0.0)
            out["fwhm"][sl] = _moment_fwhm(v, ox, oy)
    return out


def _moment_fwhm(v, ox, oy):
    """
    Circularised FWHM from second moments of each block *v* (photutils' rule).

    ``2 sqrt(ln 2 (a**2 + b**2))`` with ``a**2 + b**2`` the trace of the
    intensity-weighted covariance; a (near-)singular covariance gets 1/12
    added to its diagonal until its determinant reaches 1/144
    (SourceExtractor's rule, as in photutils), a negative one gives NaN.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        m00 = v.sum(axis=(1, 2))
        cx = np.einsum("nij,nij->n", v, ox) / m00
        cy = np.einsum("nij,nij->n", v, oy) / m00
        dx = ox - cx[:, None, None]
        dy = oy - cy[:, None, None]
        cxx = np.einsum("nij,nij->n", v, dx * dx) / m00
        cyy = np.einsum("nij,nij->n", v, dy * dy) / m00
        cxy = np.einsum("nij,nij->n", v, dx * dy) / m00
        det = cxx * cyy - cxy * cxy
        bad = ~(det >= 0)  # negative or NaN
        delta = 1.0 / 12
        low = ~bad & (det < delta**2)
        while low.any():
            cxx = np.where(low, cxx + delta, cxx)
            cyy = np.where(low, cyy + delta, cyy)
            det = cxx * cyy - cxy * cxy
            low = ~bad & (det < delta**2)
        trace = cxx + cyy
        # both eigenvalues must be >= 0: det >= 0 and trace >= 0
        fwhm = 2.0 * np.sqrt(np.log(2.0) * trace)
    fwhm[bad | ~(trace >= 0)] = np.nan
    return fwhm
