"""
Where the positions of a table's rows are, and the positions themselves.

One rule for the whole package (catalog, the CDS reader and writer,
crossmatch, datasets, survey): a `~astropy.coordinates.SkyCoord` column,
else an RA/Dec pair in degrees (`RA_DEC_NAMES`), else the CDS sexagesimal
columns (`SEXAGESIMAL_LABELS`).  Also the one way a text column is read
(`text_values`: stripped strings, masked entries empty).
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from ._validation import check_finite_coords

__all__ = [
    "RA_DEC_NAMES",
    "SEXAGESIMAL_LABELS",
    "position_columns",
    "sexagesimal_degrees",
    "table_skycoord",
    "text_values",
]

#: Column-name pairs recognised as RA/Dec in degrees, in order of preference.
RA_DEC_NAMES = [
    ("ra", "dec"),
    ("RA", "Dec"),
    ("RA", "DEC"),
    ("RAdeg", "DEdeg"),
    ("ra_deg", "dec_deg"),
    ("_RAJ2000", "_DEJ2000"),
]

#: Labels of the CDS sexagesimal position columns (``DE-`` is the sign).
SEXAGESIMAL_LABELS = ("RAh", "RAm", "RAs", "DE-", "DEd", "DEm", "DEs")

_SEXAGESIMAL_NEEDED = tuple(c for c in SEXAGESIMAL_LABELS if c != "DE-")


def position_columns(table):
    """
    The columns the positions of *table* come from.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Any table.

    Returns
    -------
    kind : str or None
        ``"skycoord"`` (the first `~astropy.coordinates.SkyCoord` column),
        ``"radec"`` (the first pair of `RA_DEC_NAMES` present whose units
        are angles or absent), ``"sexagesimal"`` (``RAh RAm RAs DEd DEm
        DEs``, with ``DE-`` if present), or None.
    names : list of str
        The columns, in that order (empty when *kind* is None).

    Examples
    --------
    >>> from astropy.table import Table
    >>> from m31clusters.utils._tables import position_columns
    >>> position_columns(Table({"RAdeg": [10.7], "DEdeg": [41.3], "g": [18.0]}))
    ('radec', ['RAdeg', 'DEdeg'])
    """
    for name in table.colnames:
        if isinstance(table[name], SkyCoord):
            return "skycoord", [name]
    for ra, dec in RA_DEC_NAMES:
        if ra in table.colnames and dec in table.colnames:
            units = [getattr(table[c], "unit", None) for c in (ra, dec)]
            if all(un is None or un == u.dimensionless_unscaled
                   or un.physical_type == "angle" for un in units):
                return "radec", [ra, dec]
    if all(c in table.colnames for c in _SEXAGESIMAL_NEEDED):
        return "sexagesimal", [c for c in SEXAGESIMAL_LABELS if c in table.colnames]
    return None, []


def _filled(col):
    return np.ma.filled(np.ma.asarray(col, dtype=float), np.nan)


def sexagesimal_degrees(table):
    """
    RA and Dec in degrees from the CDS columns ``RAh RAm RAs DE- DEd DEm DEs``.

    A blank or missing ``DE-`` means +; masked values give NaN.

    Returns
    -------
    ra, dec : ndarray
        float64 degrees.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from m31clusters.utils._tables import sexagesimal_degrees
    >>> t = Table({"RAh": [0], "RAm": [42], "RAs": [44.33], "DE-": ["-"],
    ...            "DEd": [41], "DEm": [16], "DEs": [7.5]})
    >>> [round(float(v[0]), 6) for v in sexagesimal_degrees(t)]
    [10.684708, -41.26875]
    """
    ra = 15 * (_filled(table["RAh"]) + _filled(table["RAm"]) / 60 + _filled(table["RAs"]) / 3600)
    dec = _filled(table["DEd"]) + _filled(table["DEm"]) / 60 + _filled(table["DEs"]) / 3600
    if "DE-" in table.colnames:
        sign = np.ma.filled(np.ma.asarray(table["DE-"]).astype(str), "+")
        dec = np.where(np.char.strip(sign) == "-", -dec, dec)
    return ra, dec


def text_values(col):
    """
    The entries of a column as stripped strings; masked entries are ``""``.

    Parameters
    ----------
    col : `~astropy.table.Column`, `~numpy.ma.MaskedArray` or array-like
        Any column (numbers are converted with ``str``).

    Returns
    -------
    values : `~numpy.ndarray` of str

    Examples
    --------
    >>> from astropy.table import MaskedColumn
    >>> from m31clusters.utils._tables import text_values
    >>> text_values(MaskedColumn([" B001 ", "X", "G2"], mask=[False, True, False])).tolist()
    ['B001', '', 'G2']
    """
    return np.char.strip(np.ma.filled(np.ma.asarray(col).astype(str), ""))


def table_skycoord(table, column=None):
    """
    The positions of the rows of *table* as a `~astropy.coordinates.SkyCoord`.

    Looks, in order, for *column* (if given), then the columns of
    `position_columns`: the first `SkyCoord` column, an RA/Dec pair of
    columns in degrees (see `RA_DEC_NAMES`), and the CDS sexagesimal
    columns ``RAh RAm RAs DE- DEd DEm DEs`` (a blank or missing ``DE-``
    means +).

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
        coords = table[column]
        if not isinstance(coords, SkyCoord):
            raise TypeError(f"column {column!r} is not a SkyCoord column")
    else:
        kind, names = position_columns(table)
        if kind == "skycoord":
            coords = table[names[0]]
        elif kind == "radec":
            coords = SkyCoord(_deg(table[names[0]]), _deg(table[names[1]]), unit="deg")
        elif kind == "sexagesimal":
            coords = SkyCoord(*sexagesimal_degrees(table), unit="deg")
        else:
            raise KeyError(
                "no positions found: expected a SkyCoord column, an RA/Dec pair in degrees "
                f"({', '.join('/'.join(p) for p in RA_DEC_NAMES)}) or the CDS columns "
                f"{' '.join(SEXAGESIMAL_LABELS)}; table has {table.colnames}"
            )
    check_finite_coords(np.atleast_1d(coords.spherical.lon.deg),
                        np.atleast_1d(coords.spherical.lat.deg), "the table", where="row")
    return coords


def _deg(col):
    unit = getattr(col, "unit", None)
    values = _filled(col) if np.ma.is_masked(col) else np.asarray(col, dtype=float)
    if unit is not None and unit != u.dimensionless_unscaled:
        return (values * u.Unit(unit)).to_value(u.deg)
    return values
