"""
Aperture photometry at given sky positions in several bands.

`measure` gives AB magnitudes in circular apertures with a local sky from a
sigma-clipped annulus, errors from the sky noise and the Poisson noise of the
source, saturation and coverage flags, and two morphology measures (the
concentration index and the second-moment FWHM).  All positions of a band are
measured together, vectorised over blocks of positions (see
``m31clusters/photometry/_apertures.py``): a full PAndAS CCD (29,000 sources)
takes seconds.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..catalog import Catalog
from ..exceptions import BandError, OffImageWarning
from ..utils._tables import table_skycoord
from ..utils._validation import as_skycoord
from ._apertures import aperture_photometry
from ._image import _ZP_KEYS, _finite, _image, _pixel_scale, _positive, _to_pixels

__all__ = ["measure"]

_GAIN_KEYS = ("GAIN",)
_MAG_ERR = 2.5 / np.log(10)


def _per_band(value, band, meta, keys, what):
    """A per-band scalar: from a dict, a scalar, or the first of *keys* in *meta*."""
    if isinstance(value, dict):
        if band not in value:
            raise BandError(f"no {what} for band {band!r} in {sorted(value)}")
        value = value[band]
    elif value is None:
        for key in keys:
            if key in meta:
                value = meta[key]
                break
        else:
            return None
    return _finite(value, f"{what} of band {band!r}")


def _sky_variance(area, sky_std, sky_n):
    """Variance of the sky in an aperture of *area* pixels plus that of the sky mean."""
    return area * sky_std**2 * (1 + area / np.maximum(sky_n, 1))


def _noise_factor(data, mask, r_ap, r_in, r_out, n_random, rng):
    """Robust scatter of random-aperture sums over the pixel-noise prediction (>= 1)."""
    from astropy.stats import mad_std

    ny, nx = data.shape
    margin = r_out + 1
    if nx <= 2 * margin or ny <= 2 * margin or n_random < 20:
        return 1.0
    x = rng.uniform(margin, nx - 1 - margin, n_random)
    y = rng.uniform(margin, ny - 1 - margin, n_random)
    area = np.pi * r_ap**2
    res = aperture_photometry(data, mask, x, y, r_ap=r_ap, r_in=r_in, r_out=r_out, peaks=True)
    sky, sky_std = res["sky"], res["sky_std"]
    ok = (np.abs(res["area"] - area) < 1e-6 * area) & np.isfinite(sky) & (sky_std > 0)
    # blank sky only: no pixel of a detectable source (5 sigma) in the aperture or annulus
    peak = np.fmax(res["peak_ap"], res["peak_ann"])
    with np.errstate(invalid="ignore"):
        ok &= peak < sky + 5 * sky_std
    if np.count_nonzero(ok) < 20:
        return 1.0
    sums = res["sum"][ok] - sky[ok] * area
    predicted = np.median(np.sqrt(_sky_variance(area, sky_std[ok], res["sky_n"][ok])))
    return float(max(1.0, mad_std(sums) / predicted))


def measure(images, positions, *, aperture=2 * u.arcsec, annulus=(4, 6) * u.arcsec,
            zeropoints=None, gain=None, aperture_correction=None, saturation=None,
            ci_radii=(0.5, 1.5) * u.arcsec, morphology_band=None, noise="pixel",
            n_random=1000, seed=None):
    """
    Aperture photometry in several bands at given sky positions.

    For each band the local sky is the 3-sigma-clipped mean (at most 5
    iterations, median centre) of the pixels whose centres lie in an annulus,
    and the flux the sum in a circular aperture (exact pixel overlaps)
    minus the sky.  The flux error combines the sky noise in the aperture,
    the error of the sky mean, and the Poisson noise of the source::

        err**2 = A * s**2 + A**2 * s**2 / N_sky + max(flux, 0) / gain

    (A the aperture area in pixels, s the clipped standard deviation of the
    annulus and N_sky the number of annulus pixels the clipped mean is
    computed from).  With ``noise="empirical"`` (for
    crowded images) the sky terms are multiplied by ``k**2``, where *k* (at least 1)
    is the ratio of the robust scatter of *n_random* background-subtracted
    sums in apertures at random places on the image to the scatter the
    formula predicts there (apertures on blank sky: no pixel 5 sigma above
    the local sky in the aperture or annulus): faint unresolved sources, smoothed by the PSF,
    make the noise of real images correlated, so a sum over A pixels is
    noisier than ``sqrt(A) s``.  *k* is recorded in the output meta as
    ``noise_factor_<band>``.  Magnitudes are
    ``m = zp - 2.5 log10(flux) + aperture_correction`` with
    ``e_m = 1.0857 err / flux``.

    The sums and clipped statistics are those of photutils
    (`~photutils.aperture.aperture_photometry` with ``method="exact"``,
    `~photutils.aperture.ApertureStats` with a `~astropy.stats.SigmaClip`),
    computed for all positions at once without copying the image.

    Parameters
    ----------
    images : dict
        ``{band: image}``; each image an `~astropy.nddata.NDData` or FITS HDU
        with a celestial WCS (bands may have different WCSs).  Non-finite
        pixels (NaN, +/-inf) and pixels flagged in the NDData mask are
        missing data.
    positions : `~astropy.coordinates.SkyCoord` or `~astropy.table.Table`
        Where to measure; a table is copied and the new columns added to it.
    aperture : `~astropy.units.Quantity`
        Aperture radius, an angle or in ``u.pix``.
    annulus : `~astropy.units.Quantity`
        Inner and outer radii of the sky annulus (angle or ``u.pix``).
    zeropoints : float or dict, optional
        AB zero point(s) (magnitude of one image unit), per band if a dict;
        by default read from the image meta/header (``ZP``, ``MAGZP``,
        ``PHOTZP``, ``MAGZPT`` or ``ZEROPOINT``).
    gain : float or dict, optional
        Electrons per image unit (positive), for the Poisson noise of the
        source; by default the ``GAIN`` keyword, else the source noise is
        left out (errors then come from the sky only).
    aperture_correction : float or dict, optional
        Magnitude added to the aperture magnitudes (e.g. ``2.5 log10`` of the
        fraction of a point source's light inside the aperture; negative).
    saturation : float or dict, optional
        Saturation level in image units; by default ``SATURATE`` minus
        ``SKYLEVEL`` (the sky subtracted from the image, 0 if absent) from
        the image meta, else no saturation check.
    ci_radii : `~astropy.units.Quantity`
        Small and large radii of the concentration index.
    morphology_band : str, optional
        Band for the morphology columns (default ``"i"`` if present, else the
        first band).
    noise : {"pixel", "empirical"}
        Sky noise from the annulus pixels alone (default; exact for
        uncorrelated noise), or scaled by the empirical factor (better for
        crowded fields, where the noise is correlated).
    n_random : int
        Number of random apertures for ``noise="empirical"``.
    seed : int or None
        Seed of the random aperture positions (``noise="empirical"``); the
        same seed gives the same factor.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        The positions (a ``coord`` column, or the input table's columns)
        plus, per band ``b``: ``bmag`` and ``e_bmag`` (AB mag; NaN where the
        flux is not positive or the aperture or annulus leaves the image or
        touches missing pixels), ``bflux`` and ``e_bflux`` (image units),
        ``bflag`` (0 good, 1 a saturated pixel in the aperture: the flux is a
        lower limit, 2 not measurable: the aperture off the image or on
        missing pixels, or under half the annulus usable);
        and ``CI`` (``m(r_small) - m(r_large)``, mag) and ``FWHM`` (arcsec,
        second moments within the large CI radius) in the morphology band.

    Raises
    ------
    TypeError
        If *images* is not a dict or a radius has no units.
    m31clusters.exceptions.NoWCSError
        If an image has no celestial WCS or a degenerate one (zero, non-finite
        or singular pixel scale); the message names the band (and file).
    m31clusters.exceptions.BandError
        If a zero point is missing or *morphology_band* is not in *images*.
    ValueError
        If the radii are not increasing (aperture < annulus inner < outer),
        a radius, zero point, gain, saturation level or aperture correction
        is not finite (or a gain not positive), or *n_random* is not a
        positive integer.

    Warns
    -----
    m31clusters.exceptions.OffImageWarning
        If some positions cannot be measured in some band (off the image or
        touching missing pixels).

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.nddata import NDData
    >>> from astropy.wcs import WCS
    >>> from m31clusters.photometry import measure
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> w.wcs.crval = [10.6847, 41.2688]
    >>> w.wcs.crpix = [50.5, 50.5]
    >>> w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    >>> yy, xx = np.mgrid[:100, :100]
    >>> star = np.exp(-((xx - 49.5) ** 2 + (yy - 49.5) ** 2) / (2 * 1.5 ** 2))
    >>> star *= 1000.0 / star.sum()  # 1000 counts = magnitude 30 - 7.5 = 22.5
    >>> image = NDData(100.0 + star, wcs=w, meta={"ZP": 30.0})
    >>> out = measure({"g": image}, w.pixel_to_world([49.5], [49.5]))
    >>> print(round(float(out["gmag"][0]), 3), float(out["e_gmag"][0]))
    22.5 0.0
    """
    if not isinstance(images, dict) or not images:
        raise TypeError("images must be a non-empty dict {band: image}")
    if isinstance(positions, SkyCoord):
        coords = as_skycoord(positions, "positions")
        coords = coords.reshape(-1) if coords.ndim != 1 else coords
        out = Table({"coord": coords})
    elif hasattr(positions, "colnames"):
        coords = table_skycoord(positions)
        out = positions.copy()
    else:
        raise TypeError(
            f"positions must be a SkyCoord or a Table, got {type(positions).__name__}"
        )
    if noise not in ("empirical", "pixel"):
        raise ValueError(f"noise must be 'empirical' or 'pixel', got {noise!r}")
    n_random = _positive(n_random, "n_random", integer=True)
    rng = np.random.default_rng(seed)
    bands = list(images)
    if morphology_band is None:
        morphology_band = "i" if "i" in images else bands[0]
    if morphology_band not in images:
        raise BandError(f"morphology_band {morphology_band!r} not in images {bands}")

    n = len(coords)
    lost = {}
    for band in bands:
        data, wcs, mask, meta = _image(images[band], name=f"band {band!r} image")
        scale = _pixel_scale(wcs)
        r_ap = float(_to_pixels(aperture, scale, "aperture"))
        r_in, r_out = (float(v) for v in _to_pixels(annulus, scale, "annulus"))
        if not 0 < r_ap <= r_in < r_out:
            raise ValueError(
                f"need 0 < aperture <= annulus inner < outer radius, got {r_ap:.2f}, "
                f"{r_in:.2f}, {r_out:.2f} pixels"
            )
        zp = _per_band(zeropoints, band, meta, _ZP_KEYS, "zero point")
        if zp is None:
            raise BandError(
                f"no zero point for band {band!r}: pass zeropoints={{{band!r}: ...}} or set "
                f"one of {_ZP_KEYS} in the image meta"
            )
        g = _per_band(gain, band, meta, _GAIN_KEYS, "gain")
        if g is not None and g <= 0:
            raise ValueError(f"gain of band {band!r} must be positive, got {g}")
        apcorr = _per_band(aperture_correction, band, {}, (), "aperture correction") or 0.0
        sat = _per_band(saturation, band, meta, ("SATURATE",), "saturation level")
        if sat is not None and saturation is None:
            sat -= _finite(meta.get("SKYLEVEL", 0.0), f"SKYLEVEL of band {band!r}")
        morph = band == morphology_band
        if morph:
            r1, r2 = (float(v) for v in _to_pixels(ci_radii, scale, "ci_radii"))
        flag = np.full(n, 2, dtype=np.int16)
        factor = 1.0
        if noise == "empirical" and n:
            factor = _noise_factor(data, mask, r_ap, r_in, r_out, n_random, rng)
        out.meta[f"noise_factor_{band}"] = factor

        flux = np.full(n, np.nan)
        err = np.full(n, np.nan)
        ci = np.full(n, np.nan)
        fwhm = np.full(n, np.nan)
        if n:
            x, y = wcs.world_to_pixel(coords)
            x, y = np.atleast_1d(x), np.atleast_1d(y)
            ny, nx = data.shape
            inside = (np.isfinite(x) & np.isfinite(y) & (x > -0.5) & (x < nx - 0.5)
                      & (y > -0.5) & (y < ny - 0.5))
            idx = np.flatnonzero(inside)
            if idx.size:
                res = aperture_photometry(
                    data, mask, x[idx], y[idx], r_ap=r_ap, r_in=r_in, r_out=r_out,
                    radii=(r1, r2) if morph else (), fwhm_radius=r2 if morph else None,
                    saturation=sat)
                area = np.pi * r_ap**2
                full_ann = np.pi * (r_out**2 - r_in**2)
                sky, sky_std, sky_n = res["sky"], res["sky_std"], res["sky_n"]
                complete = ((np.abs(res["area"] - area) < 1e-6 * area)
                            & (sky_n > 0.5 * full_ann) & np.isfinite(sky)
                            & np.isfinite(sky_std))
                f = res["sum"] - sky * area
                var = factor**2 * _sky_variance(area, sky_std, sky_n)
                if g is not None:
                    var = var + np.clip(f, 0, None) / g
                flux[idx] = np.where(complete, f, np.nan)
                err[idx] = np.where(complete, np.sqrt(var), np.nan)
                flag[idx] = np.where(complete, np.where(res["saturated"], 1, 0), 2)
                if morph:
                    f1 = res["sum_0"] - sky * np.pi * r1**2
                    f2 = res["sum_1"] - sky * np.pi * r2**2
                    with np.errstate(divide="ignore", invalid="ignore"):
                        c = -2.5 * np.log10(f1 / f2)
                    ci[idx] = np.where(complete & (f1 > 0) & (f2 > 0), c, np.nan)
                    fwhm[idx] = np.where(complete, res["fwhm"] * scale, np.nan)
        lost[band] = int(np.count_nonzero(~np.isfinite(flux)))
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(flux > 0, zp - 2.5 * np.log10(flux) + apcorr, np.nan)
            emag = np.where(flux > 0, _MAG_ERR * err / flux, np.nan)
        out[f"{band}mag"] = mag * u.mag
        out[f"e_{band}mag"] = emag * u.mag
        out[f"{band}flux"] = flux
        out[f"e_{band}flux"] = err
        out[f"{band}flag"] = flag
        out[f"{band}flag"].description = "0 good, 1 saturated, 2 off image or missing pixels"
        out[f"{band}mag"].description = f"{band} AB magnitude in a {aperture} radius aperture"
        if morph:
            out["CI"] = ci * u.mag
            out["CI"].description = f"concentration index m({ci_radii[0]}) - m({ci_radii[1]})"
            out["FWHM"] = fwhm * u.arcsec
    lost = {b: k for b, k in lost.items() if k}
    if lost:
        warnings.warn(
            "some positions are off the image or touch missing pixels and have NaN "
            f"photometry: {lost} of {n}", OffImageWarning
        )
    return Catalog(out, copy=False)
