"""Write PAndAS per-field source catalogues (``m###p.ascd``)."""

from pathlib import Path

import numpy as np
from astropy import units as u

from ...exceptions import ColumnError
from ...utils._io import atomic_path
from ...utils._tables import table_skycoord
from ...utils._validation import check_finite_coords
from .read import PANDAS_ASCD_COLUMNS

__all__ = ["write_pandas_ascd"]

#: printf formats of the columns: RA/Dec to 1e-7 deg (0.36 mas), pixels to
#: 0.001 pix, magnitudes to 0.0001 mag.
_FORMATS = {
    "RA": "%.7f", "Dec": "%.7f", "iccd": "%d", "xg": "%.3f", "yg": "%.3f",
    "g": "%.4f", "dg": "%.4f", "ig": "%d", "xi": "%.3f", "yi": "%.3f",
    "i": "%.4f", "di": "%.4f", "ii": "%d", "ia": "%.4f", "field": "%d",
}


def _values(table, name, kind, unit):
    col = table[name]
    if np.ma.is_masked(col):
        row = int(np.flatnonzero(np.ma.getmaskarray(col))[0])
        raise ColumnError(f"column {name!r}, row {row}: masked values cannot be written "
                          "(fill them, e.g. with NaN for magnitudes)")
    col_unit = getattr(col, "unit", None)
    values = np.asarray(np.ma.getdata(col))
    if values.dtype.kind not in "iufb":
        raise ColumnError(f"column {name!r} must be numeric, got dtype {values.dtype}")
    values = values.astype(float)
    if unit is not None and col_unit is not None and col_unit != unit:
        try:
            values = (values * col_unit).to_value(unit)
        except u.UnitConversionError:
            raise ColumnError(f"column {name!r} has unit {col_unit}, expected {unit}") from None
    if kind is int:
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if bad.size:
            raise ColumnError(
                f"column {name!r}, row {bad[0]}: {values[bad[0]].item()!r} is not an integer"
            )
    return values


def write_pandas_ascd(table, path, *, overwrite=False):
    """
    Write a table as a PAndAS per-field source catalogue (``m###p.ascd``).

    Parameters
    ----------
    table : `~astropy.table.Table`
        Needs the columns ``iccd xg yg g dg ig xi yi i di ii ia field`` and
        positions: ``RA``/``Dec`` in degrees or any position column that
        `m31clusters.utils._tables.table_skycoord` finds (e.g. a SkyCoord
        ``coord``).  Columns with units are converted (deg, pix, mag).
        NaN magnitudes are written as ``nan``.
    path : str or path-like
        Output file.
    overwrite : bool, optional
        Replace an existing file (default False).

    Returns
    -------
    path : `~pathlib.Path`
        The file written.

    Raises
    ------
    ColumnError
        A missing column, a masked value, a non-integer flag/CCD/field.
    ValueError
        A NaN position.
    FileExistsError
        If *path* exists and *overwrite* is False.

    Examples
    --------
    >>> import os, tempfile
    >>> from m31clusters.io.pandas_ascd import read_pandas_ascd, write_pandas_ascd
    >>> from astropy.table import Table
    >>> row = dict(RA=[10.6847083], Dec=[41.26875], iccd=[12], xg=[1000.5], yg=[2000.25],
    ...            g=[20.1], dg=[0.02], ig=[-1], xi=[1001.0], yi=[2000.9], i=[19.3],
    ...            di=[0.03], ii=[1], ia=[0.5], field=[207])
    >>> path = write_pandas_ascd(Table(row), os.path.join(tempfile.mkdtemp(), "m207p.ascd"))
    >>> print(path.read_text(), end="")
    10.6847083 41.2687500 12 1000.500 2000.250 20.1000 0.0200 -1 1001.000 2000.900 19.3000 \
0.0300 1 0.5000 207
    >>> read_pandas_ascd(path)["field"][0]
    np.int64(207)
    """
    names = [c[0] for c in PANDAS_ASCD_COLUMNS]
    have_radec = "RA" in table.colnames and "Dec" in table.colnames
    missing = [n for n in names[2:] if n not in table.colnames]
    if missing:
        raise ColumnError(
            f"table lacks the PAndAS .ascd column(s) {missing}; needed: {' '.join(names)}"
        )
    columns = []
    if have_radec:
        columns += [_values(table, "RA", float, u.deg), _values(table, "Dec", float, u.deg)]
    else:
        try:
            coords = table_skycoord(table).icrs
        except KeyError as exc:
            raise ColumnError(f"table has no positions: {exc}") from None
        columns += [np.atleast_1d(coords.ra.deg), np.atleast_1d(coords.dec.deg)]
    check_finite_coords(columns[0], columns[1], "the table", where="row")
    for name, kind, unit, _ in PANDAS_ASCD_COLUMNS[2:]:
        columns.append(_values(table, name, kind, unit))
    data = np.column_stack(columns) if len(table) else np.zeros((0, len(names)))
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:
        np.savetxt(tmp, data, fmt=[_FORMATS[n] for n in names], delimiter=" ",
                   encoding="ascii")
    return path
