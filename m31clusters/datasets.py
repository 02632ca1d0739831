"""
Literature catalogues of M31 star clusters, and a reader for user catalogues.

The catalogues that ship with the package (in ``m31clusters/data``) are read
with `importlib.resources`, so they work from an installed wheel.  Every
loader returns a `~m31clusters.catalog.Catalog` with the positions in a
`~astropy.coordinates.SkyCoord` column ``coord`` and the object names in a
string column ``name``, ready for `m31clusters.crossmatch.match`.
"""

import functools
import os
import re
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, Table, join, vstack
from astropy.units import UnitsWarning

from .catalog import Catalog
from .exceptions import CorruptFileError
from .utils._tables import SEXAGESIMAL_LABELS, position_columns, table_skycoord, text_values

__all__ = [
    "load_rbc_v5",
    "load_caldwell2011",
    "load_phat_clusters",
    "phat_footprint",
    "in_phat_footprint",
    "load_wang2023",
    "load_hectospec2015",
    "read_catalog",
]

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
    return Catalog(table, copy=False)


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
    names = text_values(table["name"])
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
        return Catalog(vstack(parts, metadata_conflicts="silent"), copy=False)
    if table not in files:
        raise ValueError(f"table must be 'all', 'old' or 'young', got {table!r}")
    directory = _data_file("caldwell2011")
    with resources.as_file(directory) as path:
        data = Table.read(
            os.path.join(path, files[table]), format="ascii.cds",
            readme=os.path.join(path, "ReadMe"),
        )
    coords = table_skycoord(data)
    names = text_values(data["Name"])
    return _finish(data, names, coords, drop=[*SEXAGESIMAL_LABELS, "Name"])


#: Vega-to-AB offsets of HST ACS/WFC F475W and F814W (Sirianni et al. 2005,
#: PASP 117, 1049, table 10): m_AB = m_Vega + offset.
PHAT_VEGA_TO_AB = {"F475W": -0.100, "F814W": 0.427}


def _read_fits_quietly(path):
    """Read a CDS FITS table whose ``[yr]``/``[Msun]``/``[-]`` unit strings astropy rejects."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        return Table.read(path)


def load_phat_clusters(mag_limit=None):
    """
    The PHAT Andromeda Project cluster catalogue, with ages and masses.

    Provenance: Johnson et al. (2015, ApJ 802, 127), "PHAT Stellar Cluster
    Survey. II. Andromeda Project Cluster Catalog", VizieR J/ApJ/802/127,
    table 2 (2753 clusters over ~0.5 deg^2 of M31's north-eastern disc), joined
    by ``APID`` with the ages and masses of Johnson et al. (2016, ApJ 827, 33),
    J/ApJ/827/33 table 4 (1249 clusters).  Both ship as the FITS tables served
    by CDS in ``m31clusters/data/phat_johnson2015/``.  These are the training
    positives of Zhang et al. (2025).

    The PHAT magnitudes are HST Vega magnitudes.  ``g`` and ``i`` are an
    *approximation* of CFHT/MegaCam g and i (AB): the Vega-to-AB offsets of
    ACS/WFC (`PHAT_VEGA_TO_AB`, Sirianni et al. 2005), ``g = F475W - 0.100``
    and ``i = F814W + 0.427``, with no colour term.  F475W and F814W are
    close to, but not the same as, MegaCam g and i; for cluster colours
    (median F475W - F814W = 1.06) the neglected colour terms are of order
    0.1 mag.  Use them to place clusters in simulations and to cut by
    magnitude, not as photometry.

    Parameters
    ----------
    mag_limit : float or `~astropy.units.Quantity`, optional
        Keep only clusters with F475W brighter than this (the paper's
        training set used 21).  Clusters with no F475W are then dropped.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        ``name`` (``"AP<APID>"``), ``coord`` (ICRS), ``APID``, ``Rap`` and
        ``Reff`` (arcsec; ``Reff`` masked for 10), the cluster likelihoods
        ``fcl`` (``fcl+g`` of the paper), ``fg`` and ``fclW``, ``PCID``,
        ``AltID``, the six HST magnitudes ``F275W`` ... ``F160W`` with
        ``e_`` errors and ``l_`` limit flags, approximate ``g`` and ``i``
        (AB mag), and ``logAge``, ``logMass`` (log10 yr, log10 Msun) with
        their bounds ``b_``/``B_`` and ``RegID``, masked where Johnson et al.
        (2016) give none.

    Examples
    --------
    >>> from m31clusters.datasets import load_phat_clusters
    >>> phat = load_phat_clusters()
    >>> len(phat), int((~phat["logAge"].mask).sum())
    (2753, 1249)
    >>> len(load_phat_clusters(mag_limit=21))
    1399
    >>> phat["Reff"].unit
    Unit("arcsec")
    """
    directory = _data_file("phat_johnson2015")
    with resources.as_file(directory) as path:
        clusters = _read_fits_quietly(os.path.join(path, "J_ApJ_802_127_table2.fits"))
        ages = _read_fits_quietly(os.path.join(path, "J_ApJ_827_33_table4.fits"))
    clusters.meta.clear()
    ages.meta.clear()
    for table in (clusters, ages):
        table["APID"].format = None
    clusters.rename_column("fcl+g", "fcl")
    for name in ("AltID", "l_F275W", "l_F336W", "l_F475W", "l_F814W", "l_F110W",
                 "l_F160W", "f_APID"):
        if name in clusters.colnames:
            clusters[name] = text_values(clusters[name])
    ages["APID"] = ages["APID"].astype(clusters["APID"].dtype)
    ages["RegID"] = text_values(ages["RegID"])
    for name in ("logAge", "b_logAge", "B_logAge"):
        ages[name].unit = None
        ages[name].description = "log10 of the age in yr" + (
            "" if name == "logAge" else " (lower bound)" if name[0] == "b" else " (upper bound)")
    for name in ("logMass", "b_logMass", "B_logMass"):
        ages[name].unit = None
        ages[name].description = "log10 of the mass in Msun" + (
            "" if name == "logMass" else " (lower bound)" if name[0] == "b" else " (upper bound)")
    table = join(clusters, ages, keys="APID", join_type="left")
    table.sort("APID")
    for band, offset in (("g", PHAT_VEGA_TO_AB["F475W"]), ("i", PHAT_VEGA_TO_AB["F814W"])):
        source = table["F475W" if band == "g" else "F814W"]
        values = np.ma.masked_invalid(np.ma.asarray(source, dtype=float)) + offset
        values = np.ma.round(values, 3)
        table[band] = MaskedColumn(np.ma.filled(values, np.nan), mask=np.ma.getmaskarray(values),
                                   unit=u.mag,
                                   description=f"approximate MegaCam {band} (AB) from "
                                               f"{'F475W' if band == 'g' else 'F814W'}")
    for name in ("Rap", "Reff"):
        table[name].unit = u.arcsec
    table["Rap"].description = "photometric aperture radius"
    table["Reff"].description = "effective (half-light) radius"
    table["fcl"].description = "cluster likelihood (fcl+g of Johnson et al. 2015)"
    if mag_limit is not None:
        limit = u.Quantity(mag_limit, u.mag).value
        if not np.isfinite(limit):
            raise ValueError(f"mag_limit must be finite, got {mag_limit!r}")
        f475 = np.ma.filled(np.ma.asarray(table["F475W"]), np.inf)
        table = table[f475 < limit]
    coords = SkyCoord(table["RAdeg"], table["DEdeg"], unit="deg", frame="icrs")
    names = np.array([f"AP{int(a)}" for a in table["APID"]])
    return _finish(table, names, coords, drop=("RAdeg", "DEdeg"))


def phat_footprint():
    """
    The area the PHAT cluster labels cover, as a sky polygon.

    The polygon is the convex hull of the 2753 Andromeda Project cluster
    positions (`load_phat_clusters`), computed on the tangent plane at M31's
    centre.  It is an approximation of the PHAT survey footprint (23 HST
    bricks along the north-eastern major axis) from the inside: a source
    inside it is in the labelled area.

    Returns
    -------
    `regions.PolygonSkyRegion`

    Examples
    --------
    >>> from m31clusters.datasets import phat_footprint
    >>> region = phat_footprint()
    >>> type(region).__name__, len(region.vertices) > 4
    ('PolygonSkyRegion', True)
    """
    from regions import PolygonSkyRegion

    return PolygonSkyRegion(vertices=_phat_hull(),
                            meta={"text": "PHAT AP cluster footprint"})


@functools.cache
def _phat_hull():
    """The hull vertices of the PHAT clusters (read and computed once per process)."""
    from scipy.spatial import ConvexHull

    coords = load_phat_clusters()["coord"]
    hull = ConvexHull(np.column_stack(_m31_plane(coords)))
    return coords[hull.vertices]


def _m31_plane(coords):
    """Gnomonic offsets (deg) of *coords* on the tangent plane at M31's centre."""
    from .geometry import tangent_plane_offsets

    xi, eta = tangent_plane_offsets(coords)
    return xi.to_value(u.deg), eta.to_value(u.deg)


def in_phat_footprint(positions, footprint=None):
    """
    Whether *positions* lie inside the PHAT labelled area.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`
        Sky positions (any shape).
    footprint : `regions.PolygonSkyRegion`, optional
        The polygon; default `phat_footprint`.

    Returns
    -------
    `numpy.ndarray` of bool
        Same shape as *positions*.

    Examples
    --------
    >>> from astropy.coordinates import SkyCoord
    >>> from m31clusters.datasets import in_phat_footprint
    >>> from m31clusters.geometry import M31_CENTER
    >>> in_phat_footprint(SkyCoord([11.3, 10.0], [41.7, 40.0], unit="deg")).tolist()
    [True, False]
    """
    if not isinstance(positions, SkyCoord):
        raise TypeError(f"positions must be a SkyCoord, got {type(positions).__name__}")
    if footprint is None:
        footprint = phat_footprint()
    vx, vy = _m31_plane(footprint.vertices)
    px, py = _m31_plane(positions.ravel())
    inside = np.zeros(px.shape, dtype=bool)
    # Ray casting on the tangent plane (edges [j -> k]).
    for j in range(len(vx)):
        k = (j + 1) % len(vx)
        crosses = (vy[j] > py) != (vy[k] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = vx[j] + (py - vy[j]) * (vx[k] - vx[j]) / (vy[k] - vy[j])
        inside ^= crosses & (px < x_cross)
    return inside.reshape(positions.shape)


def load_wang2023():
    """
    The 50 globular-cluster candidates of Wang Y. et al. (2023).

    Provenance: Wang Y., Yuan H., Chen B., et al. (2023, ApJ 954, 206),
    "Searching for new globular clusters in M31 with Gaia EDR3", VizieR
    J/ApJ/954/206 table 10: the candidates checked by eye on PAndAS images.
    The FITS table and its CDS ReadMe ship in ``m31clusters/data/wang2023/``.
    The catalogue gives no designations; ``name`` is the sequence number
    ``Seq`` ("same as in Figure 14") as text, which is what the ``W23``
    column of a candidate catalogue holds.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        50 rows: ``name``, ``coord`` (ICRS), ``Seq``, ``Gmag`` (Gaia G),
        ``gmag`` and ``g-r`` (Pan-STARRS AB), ``E(BP/RP)``, ``Gp-G``,
        ``Pext`` and ``PGC`` (extended-source and GC likelihoods).

    Examples
    --------
    >>> from m31clusters.datasets import load_wang2023
    >>> w23 = load_wang2023()
    >>> len(w23), w23["name"][0], round(float(w23["gmag"][0]), 3)
    (50, np.str_('1'), 19.385)
    """
    with resources.as_file(_data_file("wang2023", "J_ApJ_954_206_table10.dat.fits")) as path:
        table = _read_fits_quietly(path)
    table["E(BP/RP)"].unit = None
    table["E(BP/RP)"].description = "log of the Gaia EDR3 bp_rp_excess parameter"
    coords = SkyCoord(table["RAdeg"], table["DEdeg"], unit="deg", frame="icrs")
    names = np.array([str(int(s)) for s in table["Seq"]])
    return _finish(table, names, coords, drop=("RAdeg", "DEdeg"))


#: Name patterns of the outer-halo clusters of Huxor et al. in the Hectospec list.
HALO_NAME_PATTERN = re.compile(r"^(PAndAS-\d+|H\d+|HEC\d+)$")


def _float_or_nan(text):
    text = text.strip().strip("()")
    try:
        return float(text)
    except ValueError:
        return np.nan


def load_hectospec2015(halo_only=False):
    """
    The CfA "M31 Hectospec Catalog of Old Clusters" (version 2015-09-23).

    Provenance: the public tab-separated table of Caldwell et al. (see
    Caldwell et al. 2011, AJ 141, 61), shipped as
    ``m31clusters/data/hectospec2015/M31_Hectospec_old_catalog.dat``.  It
    includes the outer-halo clusters found in PAndAS by Huxor et al. (names
    ``PAndAS-xx``, ``Hxx`` and ``HECxx``; Huxor et al. 2008, 2011, 2014), the
    source of a candidate catalogue's ``H14`` column.  Ages given in
    parentheses ("difficult" determinations, e.g. ``(14)``) are flagged in
    ``f_Age``; blank values are masked.

    Parameters
    ----------
    halo_only : bool, optional
        Keep only the Huxor et al. halo clusters (`HALO_NAME_PATTERN`).

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        ``name``, ``coord`` (ICRS), ``X``, ``Y`` (kpc at 770 kpc), ``Vel``
        and ``e_Vel`` (km/s), ``E(B-V)``, ``Vmag``, ``e_Vmag``, ``Ap``
        (arcsec), ``Age`` (Gyr), ``f_Age``, ``[Fe/H]``, ``e_[Fe/H]``,
        ``logMass`` and the source columns.

    Raises
    ------
    m31clusters.exceptions.CorruptFileError
        If a row cannot be parsed (naming the line).

    Examples
    --------
    >>> from m31clusters.datasets import load_hectospec2015
    >>> hs = load_hectospec2015()
    >>> halo = load_hectospec2015(halo_only=True)
    >>> len(hs), len(halo), halo["name"][0]
    (425, 73, np.str_('PAndAS-04'))
    """
    with resources.as_file(
        _data_file("hectospec2015", "M31_Hectospec_old_catalog.dat")
    ) as path:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("object")) + 2
    except StopIteration:
        raise CorruptFileError(f"{str(path)!r}: no 'object' header line") from None
    rows = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 19:
            raise CorruptFileError(
                f"{str(path)!r}, line {number}: {len(fields)} tab-separated fields, expected 19"
            )
        rows.append((number, fields))
    names, ra, dec = [], [], []
    for number, fields in rows:
        try:
            h, m, s = (float(v) for v in fields[1].split(":"))
            sign = -1.0 if fields[2].startswith("-") else 1.0
            d, dm, ds = (abs(float(v)) for v in fields[2].split(":"))
        except ValueError:
            raise CorruptFileError(
                f"{str(path)!r}, line {number}: cannot parse RA/Dec "
                f"{fields[1]!r} {fields[2]!r}"
            ) from None
        names.append(fields[0])
        ra.append(15.0 * (h + m / 60 + s / 3600))
        dec.append(sign * (d + dm / 60 + ds / 3600))
    numeric = {  # name: (field index, unit, description)
        "X": (3, u.kpc, "offset along the major axis (770 kpc)"),
        "Y": (4, u.kpc, "offset along the minor axis (770 kpc)"),
        "Vel": (5, u.km / u.s, "heliocentric radial velocity"),
        "e_Vel": (6, u.km / u.s, "velocity error"),
        "E(B-V)": (7, u.mag, "reddening"),
        "Vmag": (8, u.mag, "V magnitude"),
        "e_Vmag": (9, u.mag, "V magnitude error"),
        "Ap": (10, u.arcsec, "photometry aperture"),
        "Age": (13, u.Gyr, "age"),
        "[Fe/H]": (14, None, "metallicity"),
        "e_[Fe/H]": (15, None, "metallicity error"),
        "logMass": (17, None, "log10 of the mass in Msun"),
    }
    table = Table()
    for name, (index, unit, description) in numeric.items():
        values = np.array([_float_or_nan(f[index]) for _, f in rows])
        table[name] = MaskedColumn(values, mask=~np.isfinite(values), unit=unit,
                                   description=description)
    table["f_Age"] = np.array(["(" in f[13] for _, f in rows])
    table["f_Age"].description = "age given in parentheses: a difficult determination"
    for name, index in (("r_Vel", 11), ("r_Vmag", 12), ("r_[Fe/H]", 16), ("r_E(B-V)", 18)):
        table[name] = np.array([f[index] for _, f in rows])
    table["Comments"] = np.array([f[19] if len(f) > 19 else "" for _, f in rows])
    coords = SkyCoord(ra, dec, unit="deg", frame="icrs")
    names = np.array(names)
    cat = _finish(table, names, coords)
    if halo_only:
        keep = np.array([bool(HALO_NAME_PATTERN.match(n)) for n in names])
        cat = cat[keep]
    return cat


_FORMATS = {
    ".csv": "ascii.csv",
    ".ecsv": "ascii.ecsv",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".vot": "votable",
    ".xml": "votable",
}


def read_catalog(path, name_column="name", *, format=None, readme=None):
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
    names = text_values(table[name_column])
    drop = [name_column] + position_columns(table)[1]
    if "name" in table.colnames and name_column != "name":
        raise ValueError(
            f"{str(path)!r} has both {name_column!r} and 'name' columns; rename one of them"
        )
    return _finish(table, names, coords, drop=drop)
