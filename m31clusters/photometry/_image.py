"""
Input checks shared by detection and aperture photometry (private).

`_image` turns an image-like input (NDData, FITS HDU, array + WCS) into its
data array, checked celestial WCS, extra bad-pixel mask and metadata, with
errors naming the image (band and file where known); `_positive` and
`_finite` check scalar parameters with errors naming the parameter.
"""

import numbers

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from ..exceptions import NoWCSError
from ..utils._validation import as_quantity
from ..utils._wcs import celestial_wcs

__all__ = []

#: Header / meta keywords holding an AB zero point, in order of preference.
_ZP_KEYS = ("ZP", "MAGZP", "PHOTZP", "MAGZPT", "ZEROPOINT")


def _header_zeropoint(meta):
    """The value of the first of `_ZP_KEYS` in a header or meta mapping, or None."""
    return next((meta[k] for k in _ZP_KEYS if k in meta), None)


def _hdu_label(hdu, name):
    """*name*, plus the file and extension an HDU was read from, if any."""
    try:
        info = hdu.fileinfo()
    except Exception:  # not attached to a file
        info = None
    if not info or info.get("file") is None:
        return name
    path = getattr(info["file"], "name", None)
    if path is None:
        return name
    ext = f" extension {hdu.name!r}" if hdu.name and hdu.name != "PRIMARY" else ""
    return f"{name} (file {str(path)!r}{ext})"


def _image(image, wcs=None, name="image"):
    """
    (data, WCS, mask, meta) of an image-like input.

    *data* is a 2-D floating-point array (the input's own array when it is
    already floating point: nothing is copied), *mask* the NDData mask as a
    boolean array or None (non-finite pixels are not included: callers mask
    them where they read pixels), the WCS the checked celestial WCS.
    """
    meta = {}
    mask = None
    label = name
    header = None
    if isinstance(image, NDData):
        data = image.data
        wcs = image.wcs if wcs is None else wcs
        mask = image.mask
        meta = dict(image.meta or {})
        if getattr(image, "unit", None) is not None:
            data = u.Quantity(data, image.unit, copy=False).value
    elif isinstance(image, fits.ImageHDU | fits.PrimaryHDU | fits.CompImageHDU):
        data = image.data
        meta = dict(image.header)
        label = _hdu_label(image, name)
        header = image.header
    elif isinstance(image, u.Quantity):
        data = image.value
    else:
        data = image
    if data is None:
        raise ValueError(f"{label} has no data")
    data = np.asanyarray(data)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float64)
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{label} must be a 2-D image, got shape {data.shape}")
    if wcs is None and header is not None:
        wcs = header
    if wcs is not None and not isinstance(wcs, WCS | fits.Header):
        wcs = getattr(wcs, "low_level_wcs", wcs)
    if wcs is None or not isinstance(wcs, WCS | fits.Header):
        raise NoWCSError(
            f"{label} has no celestial WCS; pass an NDData with .wcs, a FITS HDU whose "
            "header has one, or wcs=astropy.wcs.WCS(...)"
        )
    wcs = celestial_wcs(wcs, label)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ValueError(f"{label}: mask shape {mask.shape} != data shape {data.shape}")
    return data, wcs, mask, meta


def _bad_pixels(data, mask=None):
    """Boolean image: non-finite (NaN, +/-inf) or masked pixels."""
    bad = ~np.isfinite(data)
    if mask is not None:
        bad |= mask
    return bad


def _pixel_scale(wcs):
    """Mean pixel scale in arcsec / pixel."""
    return float(np.mean(proj_plane_pixel_scales(wcs)) * 3600)


def _to_pixels(value, scale, name):
    """A length (angle or ``u.pix`` Quantity) in pixels, as a float array."""
    if isinstance(value, u.Quantity) and value.unit == u.pix:
        pix = np.asarray(value.value, dtype=float)
    else:
        pix = np.asarray(as_quantity(value, u.arcsec, name).to_value(u.arcsec),
                         dtype=float) / scale
    if not np.all(np.isfinite(pix)) or np.any(pix <= 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return pix


def _positive(value, name, *, integer=False):
    """*value* as a positive finite float (or int); ValueError naming *name* otherwise."""
    kind = "integer" if integer else "number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            integer and not isinstance(value, numbers.Integral)):
        raise ValueError(f"{name} must be a positive {kind}, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _finite(value, name):
    """*value* as a finite float; ValueError naming *name* otherwise."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if isinstance(value, bool) or not np.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out
