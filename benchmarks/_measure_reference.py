"""
Benchmark-only reference: `m31clusters.photometry` as it was before the
vectorised rewrite (commit b1fd302), kept verbatim (imports made absolute) so
``benchmarks/bench_photometry.py`` can time the old `measure` and
`detect_sources` against the new ones in the same run and check that the
results agree.  Not part of the package; do not import it from library code.

Original module docstring:

Source detection and aperture photometry on PAndAS-like field images.

* `detect_sources` finds the sources of one image (photutils `Background2D`
  background, a threshold in units of the background noise, image
  segmentation with deblending) and returns their pixel and sky positions;
* `measure` measures AB magnitudes in several bands at given sky positions
  (circular apertures with a local background annulus, errors from the sky
  noise and the Poisson noise of the source) and two simple morphology
  measures, the concentration index and the FWHM;
* `magnitude_limit` selects the rows of a catalogue brighter than a limit,
  as used for the limiting-magnitude study (the classifier was trained on
  ``g < 21``), and `snr_depth` estimates the magnitude at a given S/N.

Images are `~astropy.nddata.NDData` (or `~astropy.nddata.CCDData`) objects,
FITS image HDUs, or 2-D arrays together with a ``wcs=``; a celestial WCS is
required.  NaN pixels (and pixels flagged in the NDData mask) are treated as
missing: they never enter a background estimate, and a source whose aperture
touches one gets NaN magnitudes.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import NDData
from astropy.stats import SigmaClip
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

from m31clusters.catalog import Catalog
from m31clusters.exceptions import BandError, NoDetectionsWarning, NoWCSError, OffImageWarning
from m31clusters.utils._tables import table_skycoord
from m31clusters.utils._validation import as_quantity, as_skycoord

__all__ = ["detect_sources", "measure", "magnitude_limit", "snr_depth"]

_ZP_KEYS = ("ZP", "MAGZP", "PHOTZP", "MAGZPT", "ZEROPOINT")
_GAIN_KEYS = ("GAIN",)
_MAG_ERR = 2.5 / np.log(10)


def _image(image, wcs=None, name="image"):
    """(data float64, WCS, bad-pixel mask, meta) of an image-like input."""
    meta = {}
    mask = None
    if isinstance(image, NDData):
        data = image.data
        wcs = image.wcs if wcs is None else wcs
        mask = image.mask
        meta = dict(image.meta or {})
        if getattr(image, "unit", None) is not None:
            data = u.Quantity(data, image.unit).value
    elif isinstance(image, fits.ImageHDU | fits.PrimaryHDU | fits.CompImageHDU):
        data = image.data
        meta = dict(image.header)
        if wcs is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wcs = WCS(image.header)
    elif isinstance(image, u.Quantity):
        data = image.value
    else:
        data = image
    if data is None:
        raise ValueError(f"{name} has no data")
    data = np.asarray(data, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image, got shape {data.shape}")
    if wcs is None or not isinstance(wcs, WCS) or not wcs.has_celestial:
        raise NoWCSError(
            f"{name} has no celestial WCS; pass an NDData with .wcs, a FITS HDU whose "
            "header has one, or wcs=astropy.wcs.WCS(...)"
        )
    wcs = wcs.celestial
    bad = ~np.isfinite(data)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ValueError(f"{name}: mask shape {mask.shape} != data shape {data.shape}")
        bad |= mask
    return data, wcs, bad, meta


def _pixel_scale(wcs):
    """Mean pixel scale in arcsec / pixel."""
    return float(np.mean(proj_plane_pixel_scales(wcs)) * 3600)


def _to_pixels(value, scale, name):
    value = as_quantity(value, u.arcsec, name) if not (
        isinstance(value, u.Quantity) and value.unit == u.pix) else value
    if value.unit == u.pix:
        return np.asarray(value.value, dtype=float)
    return np.asarray(value.to_value(u.arcsec), dtype=float) / scale


def detect_sources(image, wcs=None, nsigma=5.0, n_pixels=5, fwhm=3.5, box_size=64,
                   filter_size=3, deblend=True, mask=None, progress=False):
    """
    Detect the sources of a field image.

    The background and its noise are estimated on a grid of *box_size*
    boxes (sigma-clipped medians, `photutils.background.Background2D`) with
    NaN/masked pixels excluded; the background-subtracted image is smoothed
    by a Gaussian of *fwhm* pixels (a matched filter for point sources) and
    segmented at *nsigma* times the noise of the smoothed image (the pixel
    noise times ``sqrt(sum(kernel**2))``), with at least *n_pixels*
    connected pixels, and blended segments are split
    (`photutils.segmentation.SourceFinder`).  *nsigma* is thus close to the
    signal-to-noise ratio of PSF photometry at the detection limit.

    Parameters
    ----------
    image : `~astropy.nddata.NDData`, FITS HDU or 2-D array
        The image, with a celestial WCS (or pass *wcs*).
    wcs : `~astropy.wcs.WCS`, optional
        WCS of *image* (overrides the image's own).
    nsigma : float
        Detection threshold in units of the noise of the smoothed image.
    n_pixels : int
        Minimum number of connected pixels above the threshold.
    fwhm : float
        FWHM (pixels) of the Gaussian smoothing kernel; about the seeing.
    box_size : int
        Box size (pixels) of the background mesh.
    filter_size : int
        Median filter size (boxes) applied to the background mesh.
    deblend : bool
        Split blended sources (multi-thresholding and watershed; needs
        scikit-image).
    mask : array-like of bool, optional
        Extra pixels to ignore (True = bad), on top of NaNs and the NDData mask.
    progress : bool
        Show a progress bar while deblending.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        One row per source: ``id``, ``x``, ``y`` (centroid, 0-based pixels),
        ``coord`` (`~astropy.coordinates.SkyCoord`), ``flux`` (segment flux,
        background subtracted, image units), ``area`` (segment area, pix**2)
        and ``fwhm`` (arcsec, from the second moments).  Empty (with a
        `~m31clusters.exceptions.NoDetectionsWarning`) if nothing is found.

    Raises
    ------
    m31clusters.exceptions.NoWCSError
        If the image has no celestial WCS.
    ValueError
        If the image is not 2-D, has no valid pixel, or is too small for
        *box_size*.
    ImportError
        If *deblend* is true and scikit-image is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import NDData
    >>> from astropy.wcs import WCS
    >>> from m31clusters.photometry import detect_sources
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> w.wcs.crval = [10.6847, 41.2688]
    >>> w.wcs.crpix = [64.5, 64.5]
    >>> w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    >>> yy, xx = np.mgrid[:128, :128]
    >>> rng = np.random.default_rng(0)
    >>> data = rng.normal(100.0, 5.0, (128, 128))
    >>> for x, y in [(30.0, 40.0), (90.0, 100.0)]:
    ...     data += 500 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
    >>> found = detect_sources(NDData(data, wcs=w), nsigma=5, box_size=32)
    >>> print(np.round(found["x"], 1), np.round(found["y"], 1))
    [30. 90.]  [ 40. 100.]
    """
    data, wcs, bad, _ = _image(image, wcs)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {data.shape}")
        bad = bad | mask
    if bad.all():
        raise ValueError("image has no valid pixel (all NaN or masked)")
    if min(data.shape) < box_size:
        raise ValueError(
            f"image of shape {data.shape} is smaller than box_size={box_size}; pass a "
            "smaller box_size"
        )
    if deblend:
        try:
            import skimage  # noqa: F401  (photutils' deblending uses its watershed)
        except ImportError:
            raise ImportError(
                "deblending needs scikit-image: pip install scikit-image, or pass deblend=False"
            ) from None
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import SourceCatalog, SourceFinder, make_2dgaussian_kernel

    filled = np.where(bad, 0.0, data)
    bkg = Background2D(
        filled, box_size, coverage_mask=bad, filter_size=filter_size,
        sigma_clip=SigmaClip(sigma=3.0, maxiters=10), bkg_estimator=MedianBackground(),
        exclude_percentile=50.0,
    )
    sub = np.where(bad, 0.0, filled - bkg.background)
    size = 2 * int(np.ceil(2 * fwhm)) + 1
    kernel = make_2dgaussian_kernel(fwhm, size=size).array
    convolved = ndimage.convolve(sub, kernel, mode="constant", cval=0.0)
    # noise of the smoothed image: white noise is reduced by sqrt(sum(kernel**2))
    rms = np.where(bad, np.inf, bkg.background_rms * np.sqrt(np.sum(kernel**2)))
    threshold = nsigma * rms
    finder = SourceFinder(n_pixels, deblend=deblend, progress_bar=progress)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils' own no-detection warning
        segm = finder(convolved, threshold, mask=bad)
    scale = _pixel_scale(wcs)
    if segm is None:
        warnings.warn("no sources found above the detection threshold", NoDetectionsWarning)
        out = Table({
            "id": np.zeros(0, dtype=np.int64), "x": np.zeros(0), "y": np.zeros(0),
            "coord": SkyCoord(np.zeros(0), np.zeros(0), unit="deg"),
            "flux": np.zeros(0), "area": np.zeros(0) * u.pix**2, "fwhm": np.zeros(0) * u.arcsec,
        })
        return Catalog(out, copy=False)
    cat = SourceCatalog(sub, segm, convolved_data=convolved, mask=bad, wcs=wcs)
    x = np.asarray(cat.x_centroid, dtype=float)
    y = np.asarray(cat.y_centroid, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    coords = wcs.pixel_to_world(x[ok], y[ok])
    out = Table()
    out["id"] = np.asarray(cat.labels)[ok].astype(np.int64)
    out["x"] = x[ok]
    out["y"] = y[ok]
    out["coord"] = SkyCoord(coords.ra, coords.dec, frame="icrs")
    out["flux"] = np.asarray(cat.segment_flux, dtype=float)[ok]
    out["area"] = u.Quantity(cat.area).value[ok] * u.pix**2
    out["fwhm"] = u.Quantity(cat.fwhm).value[ok] * scale * u.arcsec
    out.meta["nsigma"] = nsigma
    out.meta["n_pixels"] = n_pixels
    return Catalog(out, copy=False)


def _per_band(value, band, meta, keys, what):
    if isinstance(value, dict):
        if band not in value:
            raise BandError(f"no {what} for band {band!r} in {sorted(value)}")
        return float(value[band])
    if value is not None:
        return float(value)
    for key in keys:
        if key in meta:
            return float(meta[key])
    return None


def _sky_stats(data, bad, annulus):
    from photutils.aperture import ApertureStats

    stats = ApertureStats(data, annulus, mask=bad, sigma_clip=SigmaClip(sigma=3.0, maxiters=5))
    return (np.atleast_1d(np.asarray(stats.mean, dtype=float)),
            np.atleast_1d(np.asarray(stats.std, dtype=float)),
            np.atleast_1d(np.asarray(stats.sum_aper_area.value, dtype=float)))


def _sky_variance(area, sky_std, sky_area):
    """Variance of the sky in an aperture of *area* pixels plus that of the sky mean."""
    return area * sky_std**2 * (1 + area / np.maximum(sky_area, 1))


def _noise_factor(data, bad, r_ap, r_in, r_out, n_random, rng):
    """Robust scatter of random-aperture sums over the pixel-noise prediction (>= 1)."""
    from astropy.stats import mad_std
    from photutils.aperture import CircularAnnulus, CircularAperture

    ny, nx = data.shape
    margin = r_out + 1
    if nx <= 2 * margin or ny <= 2 * margin or n_random < 20:
        return 1.0
    xy = np.column_stack([rng.uniform(margin, nx - 1 - margin, n_random),
                          rng.uniform(margin, ny - 1 - margin, n_random)])
    ap = CircularAperture(xy, r_ap)
    ann = CircularAnnulus(xy, r_in, r_out)
    total, area = _aperture_sum(data, bad, ap)
    sky, sky_std, sky_area = _sky_stats(data, bad, ann)
    ok = (np.abs(area - ap.area) < 1e-6 * ap.area) & np.isfinite(sky) & (sky_std > 0)
    # blank sky only: no pixel of a detectable source (5 sigma) in the aperture or annulus
    peak = np.fmax(_max(data, bad, ap), _max(data, bad, ann))
    ok &= peak < sky + 5 * sky_std
    if np.count_nonzero(ok) < 20:
        return 1.0
    sums = total[ok] - sky[ok] * ap.area
    predicted = np.median(np.sqrt(_sky_variance(ap.area, sky_std[ok], sky_area[ok])))
    return float(max(1.0, mad_std(sums) / predicted))


def _max(data, bad, aperture):
    from photutils.aperture import ApertureStats

    stats = ApertureStats(np.where(bad, 0.0, data), aperture, mask=bad)
    return np.atleast_1d(np.asarray(stats.max, dtype=float))


def _aperture_sum(data, bad, aperture):
    from photutils.aperture import aperture_photometry

    filled = np.where(bad, 0.0, data)
    tab = aperture_photometry(filled, aperture, mask=bad)
    total = np.atleast_1d(np.asarray(tab["aperture_sum"], dtype=float))
    area = np.atleast_1d(np.asarray(aperture.area_overlap(filled, mask=bad), dtype=float))
    return total, area


def measure(images, positions, aperture=2 * u.arcsec, annulus=(4, 6) * u.arcsec,
            zeropoints=None, gain=None, aperture_correction=None, saturation=None,
            ci_radii=(0.5, 1.5) * u.arcsec, morphology_band=None, noise="pixel",
            n_random=1000, seed=0):
    """
    Aperture photometry in several bands at given sky positions.

    For each band the local sky is the 3-sigma-clipped mean of an annulus,
    and the flux the sum in a circular aperture minus the sky.  The flux
    error combines the sky noise in the aperture, the error of the sky mean,
    and the Poisson noise of the source::

        err**2 = A * s**2 + A**2 * s**2 / A_sky + max(flux, 0) / gain

    (A and A_sky the aperture and annulus areas in pixels, s the clipped
    standard deviation of the annulus).  With ``noise="empirical"`` (for
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

    Parameters
    ----------
    images : dict
        ``{band: image}``; each image an `~astropy.nddata.NDData` or FITS HDU
        with a celestial WCS (bands may have different WCSs).
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
        Electrons per image unit, for the Poisson noise of the source; by
        default the ``GAIN`` keyword, else the source noise is left out
        (errors then come from the sky only).
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
        Seed of the random aperture positions.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        The positions (a ``coord`` column, or the input table's columns)
        plus, per band ``b``: ``bmag`` and ``e_bmag`` (AB mag; NaN where the
        flux is not positive or the aperture or annulus leaves the image or
        touches missing pixels), ``bflux`` and ``e_bflux`` (image units),
        ``bflag`` (0 good, 1 a saturated pixel in the aperture: the flux is a
        lower limit, 2 not measurable: off the image or missing pixels);
        and ``CI`` (``m(r_small) - m(r_large)``, mag) and ``FWHM`` (arcsec,
        second moments within the large CI radius) in the morphology band.

    Raises
    ------
    TypeError
        If *images* is not a dict or a radius has no units.
    m31clusters.exceptions.NoWCSError
        If an image has no celestial WCS.
    m31clusters.exceptions.BandError
        If a zero point is missing or *morphology_band* is not in *images*.
    ValueError
        If the radii are not increasing (aperture < annulus inner < outer).

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
    rng = np.random.default_rng(seed)
    bands = list(images)
    if morphology_band is None:
        morphology_band = "i" if "i" in images else bands[0]
    if morphology_band not in images:
        raise BandError(f"morphology_band {morphology_band!r} not in images {bands}")

    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture

    n = len(coords)
    lost = {}
    for band in bands:
        data, wcs, bad, meta = _image(images[band], name=f"images[{band!r}]")
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
        apcorr = _per_band(aperture_correction, band, {}, (), "aperture correction") or 0.0
        sat = _per_band(saturation, band, meta, ("SATURATE",), "saturation level")
        if sat is not None and saturation is None:
            sat -= float(meta.get("SKYLEVEL", 0.0))
        flag = np.full(n, 2, dtype=np.int16)
        factor = 1.0
        if noise == "empirical" and n:
            factor = _noise_factor(data, bad, r_ap, r_in, r_out, n_random, rng)
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
                xy = np.column_stack([x[idx], y[idx]])
                ap = CircularAperture(xy, r_ap)
                ann = CircularAnnulus(xy, r_in, r_out)
                total, area = _aperture_sum(data, bad, ap)
                sky, sky_std, sky_area = _sky_stats(data, bad, ann)
                full_ann = CircularAnnulus(xy, r_in, r_out).area
                complete = (np.abs(area - ap.area) < 1e-6 * ap.area) & (
                    sky_area > 0.5 * full_ann) & np.isfinite(sky) & np.isfinite(sky_std)
                f = total - sky * ap.area
                var = factor**2 * _sky_variance(ap.area, sky_std, sky_area)
                if g is not None:
                    var = var + np.clip(f, 0, None) / g
                flux[idx] = np.where(complete, f, np.nan)
                err[idx] = np.where(complete, np.sqrt(var), np.nan)
                flag[idx] = np.where(complete, 0, 2)
                if sat is not None:
                    hot = (data >= sat * (1 - 1e-6)) & ~bad
                    n_hot, _ = _aperture_sum(hot.astype(float), bad, ap)
                    flag[idx] = np.where(complete & (n_hot > 0), 1, flag[idx])
                if band == morphology_band:
                    r1, r2 = (float(v) for v in _to_pixels(ci_radii, scale, "ci_radii"))
                    t1, _ = _aperture_sum(data, bad, CircularAperture(xy, r1))
                    t2, _ = _aperture_sum(data, bad, CircularAperture(xy, r2))
                    f1 = t1 - sky * np.pi * r1**2
                    f2 = t2 - sky * np.pi * r2**2
                    with np.errstate(divide="ignore", invalid="ignore"):
                        c = -2.5 * np.log10(f1 / f2)
                    ci[idx] = np.where(complete & (f1 > 0) & (f2 > 0), c, np.nan)
                    sub = np.where(bad, 0.0, data)
                    stats = ApertureStats(sub, CircularAperture(xy, r2), mask=bad,
                                          local_bkg=np.nan_to_num(sky))
                    fw = np.atleast_1d(u.Quantity(stats.fwhm).value) * scale
                    fwhm[idx] = np.where(complete, fw, np.nan)
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
        if band == morphology_band:
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


def _mag_column(catalog, band):
    if not hasattr(catalog, "colnames"):
        raise TypeError(f"catalog must be a Table, got {type(catalog).__name__}")
    col = f"{band}mag"
    if col not in catalog.colnames:
        mags = [c for c in catalog.colnames if c.endswith("mag") and not c.startswith("e_")]
        raise BandError(f"catalog has no {col!r} column (magnitude columns: {mags})")
    values = catalog[col]
    values = np.ma.filled(np.ma.asarray(getattr(values, "value", values), dtype=float), np.nan)
    return values


def magnitude_limit(catalog, band="g", limit=21.0, brighter=True):
    """
    The rows of *catalog* brighter (or fainter) than a magnitude limit.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        With a ``<band>mag`` column (e.g. ``gmag``).
    band : str
        The band.
    limit : float or `~astropy.units.Quantity`
        The limit in magnitudes (e.g. 21, the limit of the training set).
    brighter : bool
        Keep ``mag < limit`` (default) or ``mag >= limit``.  Rows with a NaN
        or masked magnitude are dropped either way.

    Returns
    -------
    `~m31clusters.catalog.Catalog`

    Raises
    ------
    m31clusters.exceptions.BandError
        If there is no ``<band>mag`` column.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from m31clusters.photometry import magnitude_limit
    >>> t = Table({"gmag": [18.0, 20.9, 21.0, 23.5, float("nan")]})
    >>> magnitude_limit(t, "g", 21)["gmag"].tolist()
    [18.0, 20.9]
    >>> magnitude_limit(t, "g", 21, brighter=False)["gmag"].tolist()
    [21.0, 23.5]
    """
    mags = _mag_column(catalog, band)
    if isinstance(limit, u.Quantity):
        limit = limit.to_value(u.mag)
    limit = float(limit)
    if not np.isfinite(limit):
        raise ValueError(f"limit must be a finite magnitude, got {limit}")
    finite = np.isfinite(mags)
    keep = finite & (mags < limit if brighter else mags >= limit)
    return Catalog(catalog[keep], copy=True)


def snr_depth(catalog, band="g", snr=10.0):
    """
    The magnitude at which sources have signal-to-noise *snr* in *band*.

    Fits ``log10(e_mag)`` against ``mag`` (a straight line, over the sources
    with errors between a third and three times the target error
    ``1.0857 / snr``) and solves for the target.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        With ``<band>mag`` and ``e_<band>mag`` columns (e.g. from `measure`).
    band : str
        The band.
    snr : float
        The signal-to-noise ratio (10 for the usual survey depth).

    Returns
    -------
    float
        The magnitude.

    Raises
    ------
    m31clusters.exceptions.BandError
        If the magnitude or error column is missing.
    ValueError
        If fewer than 5 sources have errors near the target.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> from m31clusters.photometry import snr_depth
    >>> m = np.linspace(20, 27, 50)
    >>> t = Table({"gmag": m, "e_gmag": 1.0857 / 10 * 10 ** (0.4 * (m - 25.5))})
    >>> round(snr_depth(t, "g", snr=10), 3)
    25.5
    """
    mags = _mag_column(catalog, band)
    ecol = f"e_{band}mag"
    if ecol not in catalog.colnames:
        raise BandError(f"catalog has no {ecol!r} column")
    errs = catalog[ecol]
    errs = np.ma.filled(np.ma.asarray(getattr(errs, "value", errs), dtype=float), np.nan)
    target = _MAG_ERR / float(snr)
    ok = np.isfinite(mags) & np.isfinite(errs) & (errs > target / 3) & (errs < 3 * target)
    if np.count_nonzero(ok) < 5:
        raise ValueError(
            f"only {np.count_nonzero(ok)} sources have e_{band}mag near {target:.3f}; "
            "need at least 5 to estimate the depth"
        )
    slope, intercept = np.polyfit(mags[ok], np.log10(errs[ok]), 1)
    return float((np.log10(target) - intercept) / slope)
