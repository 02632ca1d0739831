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
_BLOCK = 512

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
        Fraction of each pixel (rows y, columns x) inside the circle (to
        ~1e-13 absolute: pixels outside may get +/-1e-13 rather than 0).

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
    q = yc * xs - _segment_primitive(xs, r)
    # A = sy sx (yc xs - P(xs) + P(xc)) where xs < xc, else sy sx yc xc; the
    # signs and products are folded into 1-D factors (rows y: axis 1, columns x: axis 2)
    use_xs = xs[:, :, None] < xc[:, None, :]
    a = (sy * yc)[:, :, None] * (sx * xc)[:, None, :]
    b = (sy * q)[:, :, None] * sx[:, None, :]
    b += sy[:, :, None] * (sx * pxc)[:, None, :]
    np.copyto(a, b, where=use_xs)
    return a[:, 1:, 1:] - a[:, :-1, 1:] - a[:, 1:, :-1] + a[:, :-1, :-1]


def clipped_stats(key, count, sigma=3.0, maxiters=5):
    """
    Sigma-clipped mean, standard deviation and count of each row.

    The same clipping as `astropy.stats.SigmaClip` (``cenfunc="median"``,
    ``stdfunc="std"``, symmetric *sigma*, at most *maxiters* iterations,
    stopping when nothing changes, the final set being every valid value
    within the last bounds), row by row, vectorised.  The values kept at each
    iteration are a contiguous run of the sorted row, so one sort (in the
    values' own precision), float64 sums (of the values minus the row's
    median) over the row and its two trimmed ends give every iteration's
    median and moments, and a binary search its bounds.

    Parameters
    ----------
    key : ndarray, shape (n, m)
        Values, invalid ones set to +inf; sorted in place along axis 1.
    count : ndarray of int, shape (n,)
        Number of valid (finite) values of each row.
    sigma : float
    maxiters : int

    Returns
    -------
    mean, std, kept : ndarray, shape (n,)
        NaN mean and std (kept 0) for rows without a valid value.
    """
    n, m = key.shape
    key.sort(axis=1)
    rows = np.arange(n)
    mid = np.maximum(count - 1, 0) // 2
    shift = key[rows, mid].astype(np.float64)
    shift[count == 0] = 0.0
    # invalid values (+inf) sort last; zero them so that row totals need no mask
    t = key.astype(np.float64)
    t -= shift[:, None]
    np.copyto(t, 0.0, where=np.arange(m)[None, :] >= count[:, None])
    sums = _RunSums(t, count)
    last = m - 1

    def stats(lo, hi):
        k = hi - lo
        kk = np.maximum(k, 1)
        s1, s2 = sums(lo, hi)
        mean = s1 / kk
        var = s2 / kk - mean * mean
        return mean, np.sqrt(np.maximum(var, 0.0)), k

    lo = np.zeros(n, dtype=np.intp)
    hi = np.asarray(count, dtype=np.intp)
    low_b = high_b = None
    with np.errstate(invalid="ignore"):
        for _ in range(maxiters):
            _, std, k = stats(lo, hi)
            kk = np.maximum(k, 1)
            med = 0.5 * (key[rows, np.minimum(lo + (kk - 1) // 2, last)].astype(np.float64)
                         + key[rows, np.minimum(lo + kk // 2, last)])
            low_b = _ceil_to(med - sigma * std, key.dtype)
            high_b = _floor_to(med + sigma * std, key.dtype)
            new_lo = np.maximum(lo, _search_rows(key, low_b, count, strict=True))
            new_hi = np.minimum(hi, _search_rows(key, high_b, count, strict=False))
            changed = (new_lo != lo) | (new_hi != hi)
            lo, hi = new_lo, new_hi
            if not changed.any():
                break
        if low_b is not None:
            # the final set: every valid value within the last bounds
            lo = _search_rows(key, low_b, count, strict=True)
            hi = np.maximum(_search_rows(key, high_b, count, strict=False), lo)
    mean, std, k = stats(lo, hi)
    mean = mean + shift
    empty = k == 0
    mean[empty] = np.nan
    std[empty] = np.nan
    return mean, std, k


class _RunSums:
    """
    Sums of ``t`` and ``t**2`` over ``[lo, hi)`` of each row of a row-sorted
    block whose entries from *count* on are zero: the row total minus a
    prefix (below *lo*) and a suffix (from *hi* to *count*).  Clipping trims
    short runs at the two ends of each row, so only those ends are
    accumulated (windows doubled when a run outgrows them), not whole rows.
    """

    def __init__(self, t, count):
        self.t = t
        self.count = np.asarray(count, dtype=np.intp)
        n, self.m = t.shape
        self.rows = np.arange(n)
        self.total1 = t.sum(axis=1)
        self.total2 = np.einsum("ij,ij->i", t, t)
        self.p = self.q = None
        self.width_p = self.width_q = -1

    @staticmethod
    def _cumulated(v):
        n, w = v.shape
        c1 = np.zeros((n, w + 1))
        c2 = np.zeros((n, w + 1))
        np.cumsum(v, axis=1, out=c1[:, 1:])
        np.cumsum(v * v, axis=1, out=c2[:, 1:])
        return c1, c2

    def __call__(self, lo, hi):
        need_p = int(lo.max(initial=0))
        need_q = int((self.count - hi).max(initial=0))
        if need_p > self.width_p:
            self.width_p = min(max(2 * need_p, 16), self.m)
            self.p = self._cumulated(self.t[:, :self.width_p])
        if need_q > self.width_q:
            self.width_q = min(max(2 * need_q, self.m // 4), self.m)
            idx = self.count[:, None] - 1 - np.arange(self.width_q)[None, :]
            v = np.take_along_axis(self.t, np.maximum(idx, 0), axis=1)
            v[idx < 0] = 0.0
            self.q = self._cumulated(v)
        r, tail = self.rows, self.count - hi
        s1 = self.total1 - self.p[0][r, lo] - self.q[0][r, tail]
        s2 = self.total2 - self.p[1][r, lo] - self.q[1][r, tail]
        return s1, s2


def _search_rows(key, bound, count, strict):
    """
    Per row of the row-sorted *key*, how many of its first *count* values are
    ``< bound`` (*strict*) or ``<= bound``: a binary search on all rows at
    once (log2(m) steps on n elements instead of a pass over n x m).
    """
    n, m = key.shape
    rows = np.arange(n)
    lo = np.zeros(n, dtype=np.intp)
    hi = np.asarray(count, dtype=np.intp).copy()
    for _ in range(int(hi.max(initial=0)).bit_length()):
        mid = (lo + hi) // 2
        v = key[rows, np.minimum(mid, m - 1)]
        right = (v < bound) if strict else (v <= bound)
        right &= lo < hi
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right, hi, np.maximum(mid, lo))
    return lo


def _ceil_to(v, dtype):
    """Smallest value of *dtype* >= v: ``key < v`` is ``key < _ceil_to(v)`` exactly."""
    c = v.astype(dtype)
    low = c < v
    c[low] = np.nextafter(c[low], dtype.type(np.inf))
    return c


def _floor_to(v, dtype):
    """Largest value of *dtype* <= v: ``key <= v`` is ``key <= _floor_to(v)`` exactly."""
    f = v.astype(dtype)
    high = f > v
    f[high] = np.nextafter(f[high], dtype.type(-np.inf))
    return f


class _Ring:
    """
    Pixel offsets near an annulus, split into those whose centre is inside
    it wherever the position lies within its nearest pixel ("sure") and those
    that must be tested ("edge"), sure ones first.
    """

    def __init__(self, r_in, r_out):
        half = int(np.ceil(r_out)) + 1
        dy, dx = _offsets(half)
        rr = np.hypot(dy, dx)
        near = (rr >= max(r_in - _MARGIN, 0.0)) & (rr < r_out + _MARGIN)
        sure = (rr >= r_in + _MARGIN) & (rr < r_out - _MARGIN)
        edge = near & ~sure
        self.dy = np.concatenate([dy[sure], dy[edge]])
        self.dx = np.concatenate([dx[sure], dx[edge]])
        self.n_sure = int(np.count_nonzero(sure))
        self.half = half
        self.r_in, self.r_out = r_in, r_out

    def member(self, bad, fx, fy):
        """Valid pixels whose centre is at r_in <= d < r_out (photutils' centre method)."""
        ok = ~bad
        ns = self.n_sure
        ex = self.dx[None, ns:] - fx[:, None]
        ey = self.dy[None, ns:] - fy[:, None]
        d2 = ex * ex
        d2 += ey * ey
        ok[:, ns:] &= (d2 >= self.r_in**2) & (d2 < self.r_out**2)
        return ok


def _offsets(half):
    """Integer (dy, dx) offsets of a (2 * half + 1)**2 box, row-major."""
    d = np.arange(-half, half + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(d, d, indexing="ij"))
    return dy, dx


def _gather(data, mask, iy, ix, dy, dx, half):
    """
    Pixels at (iy + dy, ix + dx) for every position: values (n, m), in the
    native byte order, and bad (n, m).

    Bad pixels are non-finite ones, masked ones and those off the image
    (their value is that of the nearest edge pixel, and must not be used);
    *half* bounds |dy| and |dx|, so blocks far from the edges skip the test.
    """
    ny, nx = data.shape
    interior = (iy.min() >= half and iy.max() < ny - half
                and ix.min() >= half and ix.max() < nx - half)
    if interior and data.flags.c_contiguous:
        flat = (iy * nx + ix)[:, None] + (dy * nx + dx)[None, :]
        values = np.take(data.reshape(-1), flat)
        bad = np.take(mask.reshape(-1), flat) if mask is not None else None
        off = None
    else:
        yy = iy[:, None] + dy[None, :]
        xx = ix[:, None] + dx[None, :]
        off = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
        np.clip(yy, 0, ny - 1, out=yy)
        np.clip(xx, 0, nx - 1, out=xx)
        values = data[yy, xx]
        bad = mask[yy, xx] if mask is not None else None
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    finite = np.isfinite(values)
    bad = ~finite if bad is None else (bad | ~finite)
    if off is not None:
        bad |= off
    return values, bad


def _sub_box(a, half, h):
    """The central (2h+1) x (2h+1) part of (n, 2*half+1, 2*half+1) blocks."""
    return a[:, half - h:half + h + 1, half - h:half + h + 1]


def _weighted_sums(filled, good, half, fx, fy, r):
    """Exact weights of radius *r* on the smallest box holding it, weighted sum and area."""
    h = int(np.ceil(r)) + 1
    w = exact_weights(fx, fy, h, r)
    f, g = _sub_box(filled, half, h), _sub_box(good, half, h)
    return w, np.einsum("nij,nij->n", w, f), np.einsum("nij,nij->n", w, g)


def aperture_photometry(data, mask, x, y, *, r_ap, r_in, r_out, radii=(), fwhm_radius=None,
                        saturation=None, peaks=False, sigma=3.0, maxiters=5, block=_BLOCK):
    """
    Circular-aperture sums and annulus sky statistics at many positions.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        The image (float32 or float64, any byte order; read, never copied).
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
        More aperture radii to sum.
    fwhm_radius : float, optional
        Radius of the circle (centre method) for the second-moment FWHM of
        the sky-subtracted pixels (photutils `ApertureStats.fwhm`).
    saturation : float, optional
        Level at or above which (to 1e-6) an aperture pixel is saturated.
    peaks : bool
        Also return the maximum valid pixel in the aperture and the annulus
        (centre method).
    sigma, maxiters : float, int
        Sigma clipping of the annulus.
    block : int
        Positions per block.

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
    grid = np.arange(-half, half + 1, dtype=float)
    ring = _Ring(r_in, r_out)
    sort_dtype = np.float32 if data.dtype.itemsize <= 4 else np.float64

    out = {k: np.full(n, np.nan) for k in ("sum", "area", "sky", "sky_std", "fwhm",
                                          "peak_ap", "peak_ann")}
    out["sky_n"] = np.zeros(n, dtype=np.intp)
    out["saturated"] = np.zeros(n, dtype=bool)
    for i in range(len(radii)):
        out[f"sum_{i}"] = np.full(n, np.nan)
        out[f"area_{i}"] = np.full(n, np.nan)

    # positions whose boxes stay on the image first: their blocks skip the edge tests
    ny, nx = data.shape
    h_max = max(half, ring.half)
    edge = (iy < h_max) | (iy >= ny - h_max) | (ix < h_max) | (ix >= nx - h_max)
    order = np.argsort(edge, kind="stable")
    for start in range(0, n, block):
        sl = order[start:start + block]
        bfx, bfy = fx[sl], fy[sl]
        # --- sky annulus (centre method), sigma-clipped
        vals, bad = _gather(data, mask, iy[sl], ix[sl], ring.dy, ring.dx, ring.half)
        member = ring.member(bad, bfx, bfy)
        del bad
        key = vals.astype(sort_dtype, copy=False)
        np.copyto(key, np.inf, where=~member)
        if peaks:
            pk = np.where(member, key, -np.inf).max(axis=1).astype(float)
            pk[~member.any(axis=1)] = np.nan
            out["peak_ann"][sl] = pk
        sky, sky_std, sky_n = clipped_stats(key, np.count_nonzero(member, axis=1),
                                            sigma=sigma, maxiters=maxiters)
        out["sky"][sl], out["sky_std"][sl], out["sky_n"][sl] = sky, sky_std, sky_n
        del vals, key, member
        # --- apertures (exact overlap), each on the smallest box that holds it
        vals, bad = _gather(data, mask, iy[sl], ix[sl], bdy, bdx, half)
        k = vals.shape[0]
        good = ~bad.reshape(k, side, side)
        filled = np.where(good, vals.reshape(k, side, side), 0.0)
        del vals, bad
        w, out["sum"][sl], out["area"][sl] = _weighted_sums(filled, good, half, bfx, bfy, r_ap)
        if saturation is not None:
            h = (w.shape[1] - 1) // 2
            hot = _sub_box(filled, half, h) >= np.float64(saturation * (1 - 1e-6))
            hot &= _sub_box(good, half, h)
            hot &= w > 1e-12
            out["saturated"][sl] = hot.any(axis=(1, 2))
        for i, r in enumerate(radii):
            _, out[f"sum_{i}"][sl], out[f"area_{i}"][sl] = _weighted_sums(
                filled, good, half, bfx, bfy, r)
        if peaks:
            h = int(np.ceil(r_ap)) + 1
            ox = grid[None, None, half - h:half + h + 1] - bfx[:, None, None]
            oy = grid[None, half - h:half + h + 1, None] - bfy[:, None, None]
            inside = _sub_box(good, half, h) & (ox * ox + oy * oy < r_ap * r_ap)
            pk = np.where(inside, _sub_box(filled, half, h), -np.inf).max(axis=(1, 2))
            pk[~inside.any(axis=(1, 2))] = np.nan
            out["peak_ap"][sl] = pk
        if fwhm_radius is not None:
            h = int(np.ceil(fwhm_radius)) + 1
            ox = grid[None, None, half - h:half + h + 1] - bfx[:, None, None]
            oy = grid[None, half - h:half + h + 1, None] - bfy[:, None, None]
            inside = _sub_box(good, half, h) & (ox * ox + oy * oy < fwhm_radius**2)
            v = np.where(inside, _sub_box(filled, half, h)
                         - np.nan_to_num(sky)[:, None, None], 0.0)
            out["fwhm"][sl] = _moment_fwhm(v, np.broadcast_to(ox, v.shape),
                                           np.broadcast_to(oy, v.shape))
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
