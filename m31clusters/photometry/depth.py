"""
Magnitude limits of a photometric catalogue.

`magnitude_limit` selects the rows of a catalogue brighter (or fainter) than a
limit, as used for the limiting-magnitude study (the classifier was trained
on ``g < 21``), and `snr_depth` estimates the magnitude at a given
signal-to-noise ratio from the reported errors.
"""

import numbers

import numpy as np
from astropy import units as u

from ..catalog import Catalog
from ..exceptions import BandError

__all__ = ["magnitude_limit", "snr_depth"]

_MAG_ERR = 2.5 / np.log(10)


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


def magnitude_limit(catalog, band="g", limit=21.0, *, brighter=True):
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
        If *snr* is not a positive number, or fewer than 5 sources have
        errors near the target.

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
    if isinstance(snr, bool) or not isinstance(snr, numbers.Real) or not (
            np.isfinite(snr) and snr > 0):
        raise ValueError(f"snr must be a positive number, got {snr!r}")
    target = _MAG_ERR / float(snr)
    ok = np.isfinite(mags) & np.isfinite(errs) & (errs > target / 3) & (errs < 3 * target)
    if np.count_nonzero(ok) < 5:
        raise ValueError(
            f"only {np.count_nonzero(ok)} sources have e_{band}mag near {target:.3f}; "
            "need at least 5 to estimate the depth"
        )
    slope, intercept = np.polyfit(mags[ok], np.log10(errs[ok]), 1)
    return float((np.log10(target) - intercept) / slope)
