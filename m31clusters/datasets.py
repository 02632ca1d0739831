"""
Literature catalogues of M31 star clusters, and a reader for user catalogues.

The catalogues that ship with the package (in ``m31clusters/data``) are read
with `importlib.resources`, so they work from an installed wheel.  Every
loader returns a `~m31clusters.catalog.Catalog` with the positions in a
`~astropy.coordinates.SkyCoord` column ``coord`` and the object names in a
string column ``name``, ready for `m31clusters.crossmatch.match`.
"""

import os
from importlib import resources
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from .exceptions import CorruptFileError
from .utils._tables import RA_DEC_NAMES, as_catalog, table_skycoord

__all__ = ["load_rbc_v5", "load_caldwell2011", "read_catalog"]

_SEXAGESIMAL = ["RAh", "RAm", "RAs", "DE-", "DEd", "DEm", "DEs"]


def _data_file(*parts):
    return resources.files("m31clusters").joinpath("data", *parts)


def _finish(table, names, coords, drop=()):
    """Put ``name`` and ``coord`` first, drop *drop*, return a Catalog."""
    table = table.copy(copy_data=False)
    for col in drop:
        if col in table.colnames:
            table.remove_column(col)
    table.add_column(coords, name="coord", index=0)
    table.add_column(names, name="name", index=0)
    table["name"].description = "object name"
    return as_catalog(table, copy=False)


def _clean_names(col):
    if np.ma.is_masked(col):
        values = np.ma.filled(np.ma.asarray(col).astype(str), "")
    else:
        values = np.asarray(col).astype(str)
    return np.char.strip(values)


def load_rbc_v5():
    """
    The confirmed globular clusters of the Revised Bologna Catalogue, v5.

    Provenance: Galleti et al. (2004, A&A 416, 917; updates to 2012, v5),
    VizieR catalogue V/143; the 625 objects of class 1 (confirmed globular
    clusters).  The shipped file ``m31clusters/data/rbc_v5_confirmed.csv`` is
    a derived public copy with positions rounded to 1e-4 deg (0.36 arcsec);
    two independent copies of V/143 agree to 0.22 arcsec.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        625 rows: ``name`` (e.g. ``"B001"``), ``coord`` (ICRS
        `~astropy.coordinates.SkyCoord`) and ``vmag`` (V magnitude).

    Examples
    --------
    >>> from m31clusters.datasets import load_rbc_v5
    >>> rbc = load_rbc_v5()
    >>> len(rbc), rbc["name"][0]
    (625, np.str_('B001'))
    >>> rbc["coord"][0].to_string("hmsdms", precision=1)
    '00h39m51.0s +40d58m10.6s'
    """
    with resources.as_file(_data_file("rbc_v5_confirmed.csv")) as path:
        table = Table.read(path, format="ascii.csv")
    coords = SkyCoord(table["ra_deg"], table["dec_deg"], unit="deg", frame="icrs")
    table["vmag"].unit = u.mag
    table["vmag"].description = "V magnitude"
    names = _clean_names(table["name"])
    return _finish(table, names, coords, drop=("ra_deg", "dec_deg", "name"))


def load_caldwell2011(table="all"):
    """
    The M31 star clusters of Caldwell et al. (2011, AJ 141, 61).

    Provenance: "Star clusters in M31. II. Old cluster metallicities and ages
    from Hectospec data", Caldwell, Schiavon, Morrison, Rose & Harding (2011),
    VizieR/CDS catalogue J/AJ/141/61.  The CDS ReadMe and its two data files
    ship in ``m31clusters/data/caldwell2011/`` and are read with
    ``format="ascii.cds"``.  ``table1.dat`` has 323 old clusters (velocities,
    reddenings, masses, [Fe/H], ages); ``table2.dat`` 37 young and
    intermediate-age clusters that Paper I called old.  The declination sign
    column is blank in every row (all declinations are positive).

    Parameters
    ----------
    table : {"all", "old", "young"}
        ``"old"`` (table 1), ``"young"`` (table 2) or ``"all"`` (both stacked,
        with a ``table`` column saying which).

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        ``name`` and ``coord`` (ICRS) first, then the CDS columns other than
        the sexagesimal position columns, with their CDS units.

    Raises
    ------
    ValueError
        If *table* is not one of the accepted values.

    Examples
    --------
    >>> from m31clusters.datasets import load_caldwell2011
    >>> c11 = load_caldwell2011()
    >>> len(c11), len(load_caldwell2011("old")), len(load_caldwell2011("young"))
    (360, 323, 37)
    >>> c11["name"][0], c11["coord"][0].to_string("hmsdms", precision=2)
    (np.str_('B291-G009'), '00h36m04.97s +42d02m09.30s')
    """
    files = {"old": "table1.dat", "young": "table2.dat"}
    if table == "all":
        parts = [load_caldwell2011("old"), load_caldwell2011("young")]
        for part, which in zip(parts, ("old", "young"), strict=True):
            part["table"] = np.full(len(part), which)
        return as_catalog(vstack(parts, metadata_conflicts="silent"), copy=False)
    if table not in files:
        raise ValueError(f"table must be 'all', 'old' or 'young', got {table!r}")
    directory = _data_file("caldwell2011")
    with resources.as_file(directory) as path:
        data = Table.read(
            os.path.join(path, files[table]), format="ascii.cds",
            readme=os.path.join(path, "ReadMe"),
        )
    coords = table_skycoord(data)
    names = _clean_names(data["Name"])
    return _finish(data, names, coords, drop=_SEXAGESIMAL + ["Name"])


def _position_columns(table):
    """The columns `table_skycoord` takes the positions from."""
    for name in table.colnames:
        if isinstance(table[name], SkyCoord):
            return [name]
    for ra, dec in RA_DEC_NAMES:
        if ra in table.colnames and dec in table.colnames:
            return [ra, dec]
    return [c for c in _SEXAGESIMAL if c in table.colnames]


_FORMATS = {
    ".csv": "ascii.csv",
    ".ecsv": "ascii.ecsv",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".vot": "votable",
    ".xml": "votable",
}


def read_catalog(path, name_column="name", format=None, readme=None):
    """
    Read a user catalogue (CSV, ECSV, FITS, VOTable or CDS) for matching.

    Parameters
    ----------
    path : str or path-like
        The file.  For a CDS catalogue, the data file (``table1.dat``).
    name_column : str
        Column holding the object names; it becomes ``name``.
    format : str, optional
        Any `astropy.table.Table.read` format; guessed from the suffix
        (``.csv``, ``.ecsv``, ``.fits``, ``.fit``, ``.vot``, ``.xml``,
        ``.fits.gz``) or ``"ascii.cds"`` when *readme* is given.
    readme : str or path-like, optional
        The CDS ``ReadMe`` describing *path*.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        ``name`` (str) and ``coord`` (`~astropy.coordinates.SkyCoord`) first,
        then the other columns.  Positions are taken from a SkyCoord column,
        an RA/Dec pair in degrees (``ra/dec``, ``RA/Dec``, ``RAdeg/DEdeg``,
        ``ra_deg/dec_deg``, ...) or CDS sexagesimal columns.

    Raises
    ------
    FileNotFoundError
        If *path* (or *readme*) does not exist.
    KeyError
        If the name column or the positions are missing.
    ValueError
        If a position is NaN or masked, or the format cannot be guessed.
    m31clusters.exceptions.CorruptFileError
        If the file cannot be parsed in that format.

    Examples
    --------
    >>> import os, tempfile
    >>> from m31clusters.datasets import read_catalog
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("ID,RAdeg,DEdeg\\nX1,10.68470,41.26875\\nX2,10.0,40.5\\n")
    >>> cat = read_catalog(path, name_column="ID")
    >>> cat["name"].tolist(), cat.colnames
    (['X1', 'X2'], ['name', 'coord'])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file {str(path)!r} does not exist")
    kwargs = {}
    if readme is not None:
        readme = Path(readme)
        if not readme.is_file():
            raise FileNotFoundError(f"CDS ReadMe {str(readme)!r} does not exist")
        format = format or "ascii.cds"
        kwargs["readme"] = str(readme)
    if format is None:
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes[-2:] in ([".fits", ".gz"], [".fit", ".gz"]):
            format = "fits"
        elif suffixes and suffixes[-1] in _FORMATS:
            format = _FORMATS[suffixes[-1]]
        else:
            raise ValueError(
                f"cannot guess the format of {str(path)!r}; pass format= (e.g. 'ascii.csv', "
                "'fits') or readme= for a CDS catalogue"
            )
    try:
        table = Table.read(path, format=format, **kwargs)
    except (ValueError, OSError, IndexError, TypeError) as exc:
        raise CorruptFileError(
            f"cannot read {str(path)!r} as {format!r}: {exc}"
        ) from exc
    if name_column not in table.colnames:
        raise KeyError(
            f"{str(path)!r} has no name column {name_column!r} (columns: {table.colnames}); "
            "pass name_column="
        )
    try:
        coords = table_skycoord(table)
    except (KeyError, ValueError) as exc:
        raise type(exc)(f"{str(path)!r}: {exc.args[0]}") from None
    names = _clean_names(table[name_column])
    drop = [name_column] + _position_columns(table)
    if "name" in table.colnames and name_column != "name":
        raise ValueError(
            f"{str(path)!r} has both {name_column!r} and 'name' columns; rename one of them"
        )
    return _finish(table, names, coords, drop=drop)
