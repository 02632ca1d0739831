"""
Checked celestial WCS of an image.

`celestial_wcs` is the one place where m31clusters turns a FITS header (or a
`~astropy.wcs.WCS` object) into the celestial WCS it cuts, measures or
simulates with.  Beyond astropy's parsing it refuses a degenerate linear
transformation: a pixel scale that is zero or not finite, or a singular
CD / PC matrix.  astropy would otherwise "fix" an all-zero CD matrix in a
header to the identity (``cdfix``, with a warning that is easy to lose), so
that every position, however far off the image, maps into it.
"""

import warnings

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from ..exceptions import NoWCSError

__all__ = ["celestial_wcs", "check_pixel_scale"]

#: wcslib's marker of an undefined value (what a NaN CD element becomes).
_UNDEFINED = 9.8765432099999e107

#: |det(M)| below this fraction of max|M_ij|**2 counts as a singular matrix.
_SINGULAR_RTOL = 1e-10


def celestial_wcs(source, label, *, fobj=None):
    """
    The celestial part of the WCS of *source*, checked.

    Parameters
    ----------
    source : `~astropy.io.fits.Header` or `~astropy.wcs.WCS`
        A FITS header or a WCS object.
    label : str
        What the WCS belongs to, used in every error message (e.g.
        ``"band 'g' file 'm001_g.fit' extension 3"``).
    fobj : `~astropy.io.fits.HDUList`, optional
        The file of *source*, for distortion lookup tables.

    Returns
    -------
    `~astropy.wcs.WCS`
        The celestial (2-D) WCS.

    Raises
    ------
    NoWCSError
        If the WCS cannot be parsed, has no celestial axes, or its pixel
        scale is zero or not finite or its linear matrix is singular (see
        `check_pixel_scale`); the message starts with *label*.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> from m31clusters.utils._wcs import celestial_wcs
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> w.wcs.cdelt = [-5e-5, 5e-5]
    >>> celestial_wcs(w, "band 'g'").wcs.ctype[0]
    'RA---TAN'
    >>> h = w.to_header()
    >>> h["CD1_1"] = h["CD2_2"] = 0.0
    >>> celestial_wcs(h, "band 'g' file 'g.fits'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    m31clusters.exceptions.NoWCSError: band 'g' file 'g.fits' has a degenerate WCS: ... singular...
    """
    header = None
    if isinstance(source, WCS):
        w = source
    elif isinstance(source, fits.Header):
        header = source
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            try:
                w = WCS(header, fobj=fobj)
            except Exception as exc:  # wcslib raises many types
                raise NoWCSError(f"{label}: cannot parse the WCS: {_first_line(exc)}") from exc
    else:
        raise TypeError(
            f"{label}: expected a FITS header or an astropy WCS, got {type(source).__name__}"
        )
    try:
        has_celestial = w.has_celestial
    except Exception as exc:  # e.g. SingularMatrixError from wcsset
        raise NoWCSError(f"{label} has a degenerate WCS: {_first_line(exc)}") from exc
    if not has_celestial:
        raise NoWCSError(f"{label} has no celestial WCS (CTYPE {list(w.wcs.ctype)})")
    if header is not None:
        _check_header_cd(header, (w.wcs.lng, w.wcs.lat), label)
    try:
        cel = w.celestial
    except Exception as exc:
        raise NoWCSError(f"{label} has a degenerate WCS: {_first_line(exc)}") from exc
    check_pixel_scale(cel, label)
    return cel


def check_pixel_scale(wcs, label):
    """
    Raise `NoWCSError` unless *wcs* has a usable linear transformation.

    The pixel scale matrix (CD, or PC times CDELT) of the celestial WCS
    must be finite and non-singular: ``|det| > 1e-10 * max|M_ij|**2``.

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`
        A celestial (2-D) WCS.
    label : str
        Start of the error message.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> from m31clusters.utils._wcs import check_pixel_scale
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> w.wcs.cd = [[1e-5, 2e-5], [2e-5, 4e-5]]
    >>> check_pixel_scale(w, "band 'i'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    m31clusters.exceptions.NoWCSError: band 'i' has a degenerate WCS: the pixel scale matrix ...
    """
    try:
        m = np.array(wcs.pixel_scale_matrix, dtype=np.float64)
        raw = _raw_matrix(wcs)
    except Exception as exc:
        raise NoWCSError(f"{label} has a degenerate WCS: {_first_line(exc)}") from exc
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(raw))
            and np.all(np.abs(m) < 0.1 * _UNDEFINED)):
        raise NoWCSError(
            f"{label} has a degenerate WCS: the pixel scale matrix {raw.tolist()} is not finite"
        )
    _check_singular(m, f"{label} has a degenerate WCS: the pixel scale matrix", m)


def _raw_matrix(wcs):
    """The CD matrix as given (NaN survives here; wcslib turns it into UNDEFINED)."""
    if wcs.wcs.has_cd():
        return np.array(wcs.wcs.cd, dtype=np.float64)
    # get_pc: PC, or the matrix of CROTA / a DSS plate solution
    return np.array(wcs.wcs.get_pc(), dtype=np.float64) * np.array(wcs.wcs.cdelt)[:, None]


def _check_header_cd(header, axes, label):
    """A CD matrix in the header that astropy's cdfix would replace by the identity."""
    keys = [[f"CD{i + 1}_{j + 1}" for j in axes] for i in axes]
    if not any(k in header for row in keys for k in row):
        return
    # FITS: with any CDi_j given, the missing ones are zero
    try:
        m = np.array([[float(header.get(k, 0.0)) for k in row] for row in keys])
    except (TypeError, ValueError) as exc:
        raise NoWCSError(f"{label} has a non-numeric CD matrix element: {exc}") from exc
    if not np.all(np.isfinite(m)):
        raise NoWCSError(f"{label} has a degenerate WCS: the CD matrix {m.tolist()} is not finite")
    _check_singular(m, f"{label} has a degenerate WCS: the CD matrix", m,
                    zero_note=" (zero pixel scale)")


def _check_singular(m, message, shown, zero_note=""):
    scale = np.max(np.abs(m))
    if scale == 0 or not abs(np.linalg.det(m)) > _SINGULAR_RTOL * scale**2:
        note = zero_note if scale == 0 or not np.all(np.any(m, axis=0)) else ""
        raise NoWCSError(f"{message} {shown.tolist()} is singular{note}")


def _first_line(exc):
    """wcslib's reason, without its "ERROR n in f() at line l of file x.c:" lines."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    reasons = [ln for ln in lines if ln and not ln.startswith("ERROR ")]
    return (reasons or lines or [type(exc).__name__])[0]
