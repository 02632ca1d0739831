"""Helpers to find positions in tables (shared by catalog, crossmatch, survey)."""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

__all__ = ["table_skycoord", "RA_DEC_NAMES", "as_catalog"]

#: Column-name pairs recognised as RA/Dec in degrees, in order of preference.
RA_DEC_NAMES = [
    ("ra", "dec"),
    ("RA", "Dec"),
    ("RA", "DEC"),
    ("RAdeg", "DEdeg"),
    ("ra_deg", "dec_deg"),
    ("_RAJ2000", "_DEJ2000"),
]

_SEXAGESIMAL = ("RAh", "RAm", "RAs", "DEd", "DEm", "DEs")


def table_skycoord(table, column=None):
    """
    The positions of the rows of *table* as a `~astropy.coordinates.SkyCoord`.

    Looks, in order, for *column* (if given), the first `SkyCoord` column,
    an RA/Dec pair of columns in degrees (see `RA_DEC_NAMES`), and the CDS
    sexagesimal columns ``RAh RAm RAs DE- DEd DEm DEs`` (a blank or missing
    ``DE-`` means +).

    Raises
    ------
    TypeError
        If *table* is not a table.
    KeyError
        If no position columns are found (the message lists what was looked for).
    ValueError
        If any position is NaN or masked.
    """
    if not hasattr(table, "colnames"):
        raise TypeError(f"expected an astropy Table, got {type(table).__name__}")
    if column is not None:
        if column not in table.colnames:
            raise KeyError(f"column {column!r} not in table (columns: {table.colnames})")
        col = table[column]
        if not isinstance(col, SkyCoord):
            raise TypeError(f"column {column!r} is not a SkyCoord column")
        coords = col
    else:
        coords = None
        for name in table.colnames:
            if isinstance(table[name], SkyCoord):
                coords = table[name]
                break
        if coords is None:
            for ra, dec in RA_DEC_NAMES:
                if ra in table.colnames and dec in table.colnames:
                    coords = SkyCoord(_deg(table[ra]), _deg(table[dec]), unit="deg")
                    break
        if coords is None and all(n in table.colnames for n in _SEXAGESIMAL):
            coords = _from_sexagesimal(table)
        if coords is None:
            raise KeyError(
                "no positions found: expected a SkyCoord column, an RA/Dec pair in degrees "
                f"({', '.join('/'.join(p) for p in RA_DEC_NAMES)}) or the CDS columns "
                f"RAh RAm RAs DE- DEd DEm DEs; table has {table.colnames}"
            )
    lon = np.atleast_1d(coords.spherical.lon.deg)
    lat = np.atleast_1d(coords.spherical.lat.deg)
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    if np.any(bad):
        idx = np.flatnonzero(bad)
        raise ValueError(
            f"{idx.size} row(s) have a NaN or masked position, first at row {idx[0]}"
        )
    return coords


def _deg(col):
    unit = getattr(col, "unit", None)
    if np.ma.is_masked(col):
        values = np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)
    else:
        values = np.asarray(col, dtype=float)
    if unit is not None and unit != u.dimensionless_unscaled:
        return (values * u.Unit(unit)).to_value(u.deg)
    return values


def _filled(col):
    return np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)


def _from_sexagesimal(table):
    ra = 15 * (_filled(table["RAh"]) + _filled(table["RAm"]) / 60 + _filled(table["RAs"]) / 3600)
    dec = _filled(table["DEd"]) + _filled(table["DEm"]) / 60 + _filled(table["DEs"]) / 3600
    if "DE-" in table.colnames:
        sign = np.ma.filled(np.ma.asarray(table["DE-"]).astype(str), "+")
        dec = np.where(np.char.strip(sign) == "-", -dec, dec)
    return SkyCoord(ra, dec, unit="deg")


def as_catalog(table, copy=True):
    """
    Return *table* as a `m31clusters.catalog.Catalog`.

    The import is lazy: ``m31clusters.catalog`` itself imports this module.
    """
    from ..catalog import Catalog

    if isinstance(table, Catalog) and not copy:
        return table
    return Catalog(table, copy=copy)
