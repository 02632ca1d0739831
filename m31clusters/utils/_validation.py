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


def check_finite_coords(lon, lat, name="coords"):
    """Raise ValueError naming the first non-finite coordinate, if any."""
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if np.any(bad):
        idx = np.flatnonzero(np.atleast_1d(bad))
        raise ValueError(
            f"{name} has {idx.size} non-finite (NaN or inf) position(s), "
            f"first at index {idx[0]}"
        )
