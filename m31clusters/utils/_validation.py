"""Input validation helpers shared by the public functions."""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

__all__ = ["as_skycoord", "as_quantity", "check_finite_coords"]


def as_skycoord(coords, name="coords"):
    """Return *coords* if it is a `~astropy.coordinates.SkyCoord`, else raise TypeError."""
    if not isinstance(coords, SkyCoord):
        raise TypeError(
            f"{name} must be an astropy SkyCoord, got {type(coords).__name__}; "
            f"build one with SkyCoord(ra, dec, unit='deg')"
        )
    return coords


def as_quantity(value, unit, name):
    """
    Check that *value* is a `~astropy.units.Quantity` convertible to *unit*.

    Plain numbers are refused: a radius or distance without units is
    ambiguous.  Returns the value converted to *unit*.
    """
    unit = u.Unit(unit)
    if not isinstance(value, u.Quantity):
        raise TypeError(
            f"{name} must be an astropy Quantity with units of {unit.physical_type} "
            f"(e.g. {name}=1 * u.{unit.to_string()}), got {value!r}"
        )
    try:
        return value.to(unit)
    except u.UnitConversionError as exc:
        raise u.UnitTypeError(
            f"{name} must have units of {unit.physical_type}, got {value.unit!s}"
        ) from exc


def check_finite_coords(lon, lat, name="coords", *, error=ValueError, where="index"):
    """
    Raise *error* naming the first NaN, infinite or masked position, if any.

    The one NaN-position check of the package (geometry, table positions,
    the CDS and PAndAS writers).

    Parameters
    ----------
    lon, lat : array-like
        Longitudes and latitudes (any unit); masked values count as missing.
    name : str, optional
        What the positions are, for the message (``"coords"``, ``"the table"``).
    error : type, optional
        The exception class (default `ValueError`).
    where : str, optional
        ``"index"`` or ``"row"``, the word before the first bad position.

    Examples
    --------
    >>> from m31clusters.utils._validation import check_finite_coords
    >>> check_finite_coords([1.0, float("nan")], [2.0, 3.0], "positions")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: positions has 1 non-finite position(s), first at index 1 (...)
    """
    lon = np.ma.filled(np.ma.asarray(lon, dtype=float), np.nan)
    lat = np.ma.filled(np.ma.asarray(lat, dtype=float), np.nan)
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if np.any(bad):
        idx = np.flatnonzero(np.atleast_1d(bad))
        raise error(
            f"{name} has {idx.size} non-finite position(s), first at {where} {idx[0]} "
            "(a NaN or masked position, or an infinite one)"
        )
