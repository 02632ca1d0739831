"""
Source detection on a field image.

`detect_sources` estimates the background and its noise on a mesh
(`photutils.background.Background2D`), smooths the image with a Gaussian of
about the seeing, segments it at a threshold in units of the noise of the
smoothed image (`photutils.segmentation.detect_sources`) and splits blended
segments (the segmentation of `~photutils.segmentation.deblend_sources`,
computed for all segments at once in ``_deblend.py``), and returns the
centroids, sky positions and simple shape measures of the segments (the
definitions of `photutils.segmentation.SourceCatalog`, vectorised over the
segments).  Each stage is a private function here, so
``benchmarks/bench_photometry.py`` can time them.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.stats import SigmaClip
from astropy.table import Table
from scipy import ndimage

from ..catalog import Catalog
from ..exceptions import BandError, NoDetectionsWarning
from ..utils._progress import PROGRESS_DEFAULT
from ._deblend import _deblend_sources
from ._image import (
    _ZP_KEYS,
    _bad_pixels,
    _finite,
    _header_zeropoint,
    _image,
    _pixel_scale,
    _positive,
    _to_pixels,
)

__all__ = ["detect_sources"]

#: A segment is deblended under ``deblend_limit`` when its flux is at least
#: this fraction of the limit's flux (0.75 mag of margin for the light of a
#: source outside its segment).
_DEBLEND_MARGIN = 0.5


def _background(data, bad, box_size, filter_size):
    """Background and background-noise maps (Background2D, bad pixels excluded)."""
    from photutils.background import Background2D, MedianBackground

    filled = np.where(bad, np.float64(0.0), data)  # float64 whatever the image's type
    bkg = Background2D(
        filled, box_size, coverage_mask=bad, filter_size=filter_size,
        sigma_clip=SigmaClip(sigma=3.0, maxiters=10), bkg_estimator=MedianBackground(),
        exclude_percentile=50.0,
    )
    filled -= bkg.background
    filled[bad] = 0.0
    return filled, bkg.background_rms


def _kernel(fwhm_pix):
    """The 1-D factor of photutils' 2-D Gaussian kernel (which is separable)."""
    from photutils.segmentation import make_2dgaussian_kernel

    size = 2 * int(np.ceil(2 * fwhm_pix)) + 1
    kernel = make_2dgaussian_kernel(fwhm_pix, size=size).array
    # the kernel is the outer product of a normalised 1-D profile with itself
    return kernel.sum(axis=0), kernel


def _smooth(sub, k1):
    """Convolution with outer(k1, k1), zero outside the image, as two 1-D passes."""
    out = ndimage.convolve1d(sub, k1, axis=0, mode="constant", cval=0.0)
    return ndimage.convolve1d(out, k1, axis=1, mode="constant", cval=0.0, output=out)


def _segment(convolved, threshold, bad, n_pixels):
    """Segmentation image of connected pixels above *threshold* (None if none)."""
    from photutils.segmentation import detect_sources as _photutils_detect

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils' own no-detection warning
        return _photutils_detect(convolved, threshold, n_pixels, mask=bad)


def _deblend_labels(sub, segm, min_flux):
    """Labels of the segments whose flux in *sub* is at least *min_flux* (all if None)."""
    if min_flux is None:
        return None
    flux = ndimage.sum_labels(sub, segm.data, index=segm.labels)
    return segm.labels[flux >= min_flux]


def _multi_peaked(convolved, segm, labels):
    """
    The *labels* (all if None) whose segment has more than one local maximum.

    A local maximum is a pixel at least as high in *convolved* as its 8
    neighbours in the same segment.  Every connected part of a segment above
    some level holds one, so a segment with a single one is never split by
    multi-thresholding and deblending it would return it unchanged.
    """
    lab = segm.data
    inside = lab > 0
    f = np.where(inside, convolved, -np.inf)
    peak = inside & (f >= ndimage.maximum_filter(f, size=3, mode="constant", cval=-np.inf))
    n_peaks = np.bincount(lab[peak], minlength=int(lab.max()) + 1)
    labels = segm.labels if labels is None else np.asarray(labels)
    return labels[n_peaks[labels] > 1]


def _deblend(convolved, segm, n_pixels, labels, progress):
    """
    Split blended segments (multi-thresholding and watershed); only *labels* if given.

    The result is `photutils.segmentation.deblend_sources`' (exponential
    levels, 8-connectivity), computed for all segments together by
    `._deblend._deblend_sources`.
    """
    labels = _multi_peaked(convolved, segm, labels)
    if len(labels) == 0:
        return segm
    return _deblend_sources(convolved, segm, n_pixels, labels, progress=progress)


def _catalog(sub, segm, convolved, bad, wcs, scale, meta):
    """
    The output table: centroids, sky positions, segment flux, area, FWHM.

    photutils' `~photutils.segmentation.SourceCatalog` definitions
    (``x_centroid``, ``y_centroid``, ``segment_flux``, ``area``, ``fwhm``),
    computed for all segments at once with `numpy.bincount` instead of
    segment by segment: the centroid and the second moments are those of the
    smoothed image with masked, non-finite and negative pixels set to zero,
    relative to the segment's bounding box as photutils does; the flux and
    area are over the unmasked finite pixels; the covariance gets
    SourceExtractor's 1/12 increments while its determinant is below 1/144
    and is NaN if negative.  Equal to SourceCatalog's to rounding (tested).
    """
    labels = np.asarray(segm.labels)
    lab = segm.data.reshape(-1)
    pix = np.flatnonzero(lab)
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    lut[labels] = np.arange(labels.size)
    idx = lut[lab[pix]]
    n = labels.size
    yy, xx = np.divmod(pix, segm.data.shape[1])
    slices = segm.slices
    x0 = np.array([sl[1].start for sl in slices], dtype=float)
    y0 = np.array([sl[0].start for sl in slices], dtype=float)
    good = ~bad.reshape(-1)[pix]
    w = convolved.reshape(-1)[pix]
    with np.errstate(invalid="ignore"):
        w = np.where(good & np.isfinite(w) & (w >= 0), w, 0.0)
    xr, yr = xx - x0[idx], yy - y0[idx]
    m00 = np.bincount(idx, w, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.bincount(idx, w * xr, minlength=n) / m00
        yc = np.bincount(idx, w * yr, minlength=n) / m00
        dx, dy = xr - xc[idx], yr - yc[idx]
        cxx = np.bincount(idx, w * dx * dx, minlength=n) / m00
        cxy = np.bincount(idx, w * dx * dy, minlength=n) / m00
        cyy = np.bincount(idx, w * dy * dy, minlength=n) / m00
    fwhm = _moment_fwhm(cxx, cxy, cyy)
    x, y = xc + x0, yc + y0
    values = sub.reshape(-1)[pix]
    valid = good & np.isfinite(values)
    flux = np.bincount(idx[valid], values[valid], minlength=n)
    area = np.bincount(idx[valid], minlength=n).astype(float)
    area[area == 0] = np.nan
    ok = np.isfinite(x) & np.isfinite(y)
    coords = wcs.pixel_to_world(x[ok], y[ok])
    out = Table()
    out["id"] = labels[ok].astype(np.int64)
    out["x"] = x[ok]
    out["y"] = y[ok]
    out["coord"] = SkyCoord(coords.ra, coords.dec, frame="icrs")
    out["flux"] = flux[ok]
    out["area"] = area[ok] * u.pix**2
    out["fwhm"] = fwhm[ok] * scale * u.arcsec
    out.meta.update(meta)
    return out


def _moment_fwhm(cxx, cxy, cyy):
    """photutils' circularised FWHM from the second moments (its covariance rules)."""
    delta = 1.0 / 12
    cxx, cyy = cxx.copy(), cyy.copy()
    with np.errstate(invalid="ignore"):
        det = cxx * cyy - cxy * cxy
        bad = ~(det >= 0)  # negative (or NaN): no FWHM
        low = ~bad & (det < delta**2)
        while low.any():  # SourceExtractor's increments for "infinitely thin" sources
            cxx[low] += delta
            cyy[low] += delta
            det = cxx * cyy - cxy * cxy
            low = ~bad & (det < delta**2)
        fwhm = 2.0 * np.sqrt(np.log(2.0) * (cxx + cyy))
    fwhm[bad] = np.nan
    return fwhm


def _empty(meta):
    out = Table({
        "id": np.zeros(0, dtype=np.int64), "x": np.zeros(0), "y": np.zeros(0),
        "coord": SkyCoord(np.zeros(0), np.zeros(0), unit="deg"),
        "flux": np.zeros(0), "area": np.zeros(0) * u.pix**2, "fwhm": np.zeros(0) * u.arcsec,
    })
    out.meta.update(meta)
    return out


def _check_parameters(nsigma, n_pixels, box_size, filter_size):
    nsigma = _positive(nsigma, "nsigma")
    n_pixels = _positive(n_pixels, "n_pixels", integer=True)
    box_size = _positive(box_size, "box_size", integer=True)
    filter_size = _positive(filter_size, "filter_size", integer=True)
    return nsigma, n_pixels, box_size, filter_size


def detect_sources(image, wcs=None, *, nsigma=5.0, n_pixels=5, fwhm=3.5 * u.pix,
                   box_size=64, filter_size=3, deblend=True, deblend_limit=None,
                   zeropoint=None, mask=None, progress=PROGRESS_DEFAULT):
    """
    Detect the sources of a field image.

    The background and its noise are estimated on a grid of *box_size*
    boxes (sigma-clipped medians, `photutils.background.Background2D`) with
    non-finite (NaN, +/-inf) and masked pixels excluded; the
    background-subtracted image is smoothed by a Gaussian of *fwhm* (a
    matched filter for point sources) and segmented at *nsigma* times the
    noise of the smoothed image (the pixel noise times
    ``sqrt(sum(kernel**2))``), with at least *n_pixels* connected pixels, and
    blended segments are split (the segmentation
    `photutils.segmentation.deblend_sources` gives, computed for all segments
    at once).  *nsigma* is thus close to the signal-to-noise ratio of PSF photometry at
    the detection limit.

    Parameters
    ----------
    image : `~astropy.nddata.NDData`, FITS HDU or 2-D array
        The image, with a celestial WCS (or pass *wcs*).
    wcs : `~astropy.wcs.WCS`, optional
        WCS of *image* (overrides the image's own).
    nsigma : float
        Detection threshold in units of the noise of the smoothed image
        (positive).
    n_pixels : int
        Minimum number of connected pixels above the threshold (photutils'
        ``n_pixels``).
    fwhm : `~astropy.units.Quantity`
        FWHM of the Gaussian smoothing kernel, an angle or in ``u.pix``;
        about the seeing.
    box_size : int
        Box size (pixels) of the background mesh.
    filter_size : int
        Median filter size (boxes) applied to the background mesh.
    deblend : bool
        Split blended sources (multi-thresholding and watershed; needs
        scikit-image).  A segment with a single local maximum in the
        smoothed image cannot be split and is not passed to the deblender
        (the result is the same, the time is not: ~30% of the bright
        segments of a crowded PAndAS CCD).
    deblend_limit : `~astropy.units.Quantity` (mag), optional
        Deblend only the segments that can hold a source brighter than this
        magnitude in the detection image: those whose flux is at least half
        the flux of that magnitude (0.75 mag of margin for a source's light
        outside its segment); fainter segments are kept whole.  Deblending
        is most of the cost of detection (on a crowded PAndAS CCD about 90%),
        and a search that keeps ``g < 21`` needs only the bright segments
        split: detecting in i, ``deblend_limit=21.5 * u.mag`` covers every
        source with ``g < 21`` and ``g - i > -0.5``.  Default: deblend every
        segment.
    zeropoint : float, optional
        AB zero point of the image, for *deblend_limit*; by default read
        from the image meta/header (``ZP``, ``MAGZP``, ``PHOTZP``,
        ``MAGZPT`` or ``ZEROPOINT``).
    mask : array-like of bool, optional
        Extra pixels to ignore (True = bad), on top of non-finite pixels and
        the NDData mask.
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
        If the image has no celestial WCS, or a degenerate one (zero,
        non-finite or singular pixel scale).
    m31clusters.exceptions.BandError
        If *deblend_limit* is given and no zero point is known.
    ValueError
        If the image is not 2-D, has no valid pixel, or is too small for
        *box_size*; if *nsigma*, *n_pixels*, *box_size* or *filter_size* is
        not positive (or not finite, or not an integer where one is
        needed), or *fwhm* is not positive and finite.
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
    nsigma, n_pixels, box_size, filter_size = _check_parameters(
        nsigma, n_pixels, box_size, filter_size)
    data, wcs, nd_mask, meta_in = _image(image, wcs)
    min_flux = None
    if deblend and deblend_limit is not None:
        limit = _finite(u.Quantity(deblend_limit, u.mag).value, "deblend_limit")
        if zeropoint is None:
            zeropoint = _header_zeropoint(meta_in)
            if zeropoint is None:
                raise BandError(
                    f"deblend_limit needs a zero point: pass zeropoint= or set one of "
                    f"{_ZP_KEYS} in the image meta"
                )
        zeropoint = _finite(zeropoint, "zeropoint")
        min_flux = _DEBLEND_MARGIN * 10 ** (-0.4 * (limit - zeropoint))
    scale = _pixel_scale(wcs)
    fwhm_pix = float(_to_pixels(fwhm, scale, "fwhm"))
    bad = _bad_pixels(data, nd_mask)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {data.shape}")
        bad |= mask
    if bad.all():
        raise ValueError("image has no valid pixel (all non-finite or masked)")
    if min(data.shape) < box_size:
        raise ValueError(
            f"image of shape {data.shape} is smaller than box_size={box_size}; pass a "
            "smaller box_size"
        )
    if deblend:
        try:
            import skimage  # noqa: F401  (the deblending uses its watershed)
        except ImportError:
            raise ImportError(
                "deblending needs scikit-image: pip install scikit-image, or pass deblend=False"
            ) from None
    meta = {"nsigma": nsigma, "n_pixels": n_pixels}
    if min_flux is not None:
        meta["deblend_limit"] = limit
    sub, rms = _background(data, bad, box_size, filter_size)
    k1, kernel = _kernel(fwhm_pix)
    convolved = _smooth(sub, k1)
    # noise of the smoothed image: white noise is reduced by sqrt(sum(kernel**2))
    threshold = nsigma * np.where(bad, np.inf, rms * np.sqrt(np.sum(kernel**2)))
    segm = _segment(convolved, threshold, bad, n_pixels)
    if segm is not None and deblend:
        segm = _deblend(convolved, segm, n_pixels, _deblend_labels(sub, segm, min_flux),
                        progress)
    if segm is None:
        warnings.warn("no sources found above the detection threshold", NoDetectionsWarning)
        return Catalog(_empty(meta), copy=False)
    return Catalog(_catalog(sub, segm, convolved, bad, wcs, scale, meta), copy=False)
