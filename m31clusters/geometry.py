"""
M31 geometry: the centre, projected and deprojected radii, and the PAndAS
MegaCam field layout.

All functions are vectorised over `~astropy.coordinates.SkyCoord` arrays
and work on unit vectors / tangent-plane coordinates in plain numpy, so a
million positions take a fraction of a second.
"""

import functools
from importlib import resources

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from scipy.spatial import cKDTree

from .utils._sphere import unit_vectors
from .utils._validation import as_quantity, as_skycoord, check_finite_coords

__all__ = [
    "M31_CENTER",
    "M31_DISTANCE",
    "M31_INCLINATION",
    "M31_POSITION_ANGLE",
    "PANDAS_FIELD_SIZE",
    "projected_radius",
    "deprojected_radius",
    "tangent_plane_offsets",
    "pandas_fields",
    "pandas_field",
    "pandas_fields_containing",
]

#: Centre of M31 (ICRS), 00:42:44.33 +41:16:07.5.
M31_CENTER = SkyCoord("00h42m44.33s", "+41d16m07.5s", frame="icrs")

#: Default distance to M31 used throughout the package.
M31_DISTANCE = 785 * u.kpc

#: Inclination of M31's disc.
M31_INCLINATION = 77 * u.deg

#: Position angle (east of north) of M31's major axis.
M31_POSITION_ANGLE = 38 * u.deg

#: Approximate size of one CFHT/MegaCam field (RA x Dec extent).
PANDAS_FIELD_SIZE = (0.96, 0.94) * u.deg


def _radec_rad(positions, name="positions"):
    icrs = as_skycoord(positions, name).icrs
    ra = np.asarray(icrs.ra.rad, dtype=float)
    dec = np.asarray(icrs.dec.rad, dtype=float)
    check_finite_coords(ra, dec, name)
    return ra, dec


def _gnomonic(ra, dec, ra0, dec0):
    """Gnomonic (TAN) projection of (ra, dec) about (ra0, dec0), radians.

    Returns xi (towards east), eta (towards north) and cos(c), the cosine of
    the angular distance from the tangent point (points with cos c <= 0 lie
    on the far hemisphere and have no projection).
    """
    dra = ra - ra0
    cos_dec = np.cos(dec)
    sin_dec = np.sin(dec)
    cos_dra = np.cos(dra)
    cosc = np.sin(dec0) * sin_dec + np.cos(dec0) * cos_dec * cos_dra
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = cos_dec * np.sin(dra) / cosc
        eta = (np.cos(dec0) * sin_dec - np.sin(dec0) * cos_dec * cos_dra) / cosc
    return xi, eta, cosc


def tangent_plane_offsets(positions, *, center=M31_CENTER):
    """
    Standard (gnomonic) coordinates of *positions* about *center*.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`
        Positions, any shape.
    center : `~astropy.coordinates.SkyCoord`, optional
        Tangent point (default `M31_CENTER`).

    Returns
    -------
    xi, eta : `~astropy.units.Quantity`
        Offsets towards east and north in degrees, the usual
        (xi, eta) of M31 studies.  Positions more than 90 degrees from
        *center* give NaN.

    Raises
    ------
    TypeError
        If *positions* or *center* is not a `~astropy.coordinates.SkyCoord`.
    ValueError
        If any position is NaN.

    Examples
    --------
    >>> import astropy.units as u
    >>> from m31clusters.geometry import tangent_plane_offsets, M31_CENTER
    >>> xi, eta = tangent_plane_offsets(M31_CENTER.directional_offset_by(0 * u.deg, 1 * u.deg))
    >>> print(f"{xi:.4f} {eta:.4f}")
    0.0000 deg 1.0001 deg
    """
    ra, dec = _radec_rad(positions)
    ra0, dec0 = _radec_rad(center, "center")
    xi, eta, cosc = _gnomonic(ra, dec, ra0, dec0)
    far = cosc <= 0
    xi = np.where(far, np.nan, xi)
    eta = np.where(far, np.nan, eta)
    # Standard coordinates are dimensionless; M31 studies quote them in degrees.
    return np.rad2deg(xi) * u.deg, np.rad2deg(eta) * u.deg


def _angular_separation(ra, dec, ra0, dec0):
    """Vincenty formula, stable at all separations (radians)."""
    dra = ra - ra0
    sdra, cdra = np.sin(dra), np.cos(dra)
    s1, c1 = np.sin(dec0), np.cos(dec0)
    s2, c2 = np.sin(dec), np.cos(dec)
    num1 = c2 * sdra
    num2 = c1 * s2 - s1 * c2 * cdra
    denom = s1 * s2 + c1 * c2 * cdra
    return np.arctan2(np.hypot(num1, num2), denom)


def projected_radius(positions, *, distance=M31_DISTANCE, center=M31_CENTER):
    """
    Projected (sky-plane) distance from the centre of M31.

    The projected radius is ``distance * tan(separation)``, the distance
    from *center* in the plane of the sky at the distance of M31.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`
        Positions (any frame, any shape).
    distance : `~astropy.units.Quantity`, optional
        Distance to M31 (default 785 kpc).
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of M31 (default `M31_CENTER`).

    Returns
    -------
    radius : `~astropy.units.Quantity`
        Projected radius in kpc, same shape as *positions*.

    Raises
    ------
    TypeError
        If *positions* is not a `~astropy.coordinates.SkyCoord` or *distance*
        is not a `~astropy.units.Quantity`.
    astropy.units.UnitTypeError
        If *distance* does not have length units.
    ValueError
        If any position is NaN, or *distance* is not positive.

    Examples
    --------
    >>> import astropy.units as u
    >>> from m31clusters.geometry import M31_CENTER, projected_radius
    >>> c = M31_CENTER.directional_offset_by(0 * u.deg, 1 * u.deg)
    >>> print(f"{projected_radius(c):.2f}")
    13.70 kpc
    """
    ra, dec = _radec_rad(positions)
    ra0, dec0 = _radec_rad(center, "center")
    distance = _check_distance(distance)
    sep = _angular_separation(ra, dec, ra0, dec0)
    with np.errstate(over="ignore"):
        radius = distance * np.tan(sep)
    radius = np.where(sep >= np.pi / 2, np.inf, radius)
    return u.Quantity(radius, u.kpc)


def _check_distance(distance):
    distance = as_quantity(distance, u.kpc, "distance").value
    if not np.isscalar(distance) and np.ndim(distance) != 0:
        raise ValueError("distance must be a scalar Quantity")
    if not (np.isfinite(distance) and distance > 0):
        raise ValueError(f"distance must be positive and finite, got {distance} kpc")
    return float(distance)


def deprojected_radius(
    positions,
    *,
    distance=M31_DISTANCE,
    inclination=M31_INCLINATION,
    position_angle=M31_POSITION_ANGLE,
    center=M31_CENTER,
):
    """
    Galactocentric radius in the plane of M31's disc.

    Positions are projected onto the tangent plane about *center* (xi
    towards east, eta towards north), rotated so that *x* runs along the
    major axis (at *position_angle* east of north) and *y* along the minor
    axis, and the minor-axis offset is stretched by ``1 / cos(inclination)``:
    ``R = distance * sqrt(x**2 + (y / cos i)**2)``.  This treats the disc as
    thin and ignores the small depth along the line of sight.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`
        Positions (any frame, any shape).
    distance : `~astropy.units.Quantity`, optional
        Distance to M31 (default 785 kpc).
    inclination : `~astropy.units.Quantity`, optional
        Disc inclination, 0 = face-on (default 77 deg).
    position_angle : `~astropy.units.Quantity`, optional
        Major-axis position angle, east of north (default 38 deg).
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of M31.

    Returns
    -------
    radius : `~astropy.units.Quantity`
        Deprojected radius in kpc.

    Raises
    ------
    TypeError, astropy.units.UnitTypeError, ValueError
        As `projected_radius`; also if the inclination is not in [0, 90) deg.

    Examples
    --------
    A point 1 deg along the minor axis is ``1 / cos(77 deg)`` = 4.4 times
    farther in the disc than on the sky:

    >>> import astropy.units as u
    >>> from m31clusters.geometry import M31_CENTER, deprojected_radius
    >>> c = M31_CENTER.directional_offset_by(128 * u.deg, 1 * u.deg)
    >>> print(f"{deprojected_radius(c):.1f}")
    60.9 kpc
    """
    ra, dec = _radec_rad(positions)
    ra0, dec0 = _radec_rad(center, "center")
    distance = _check_distance(distance)
    inc = as_quantity(inclination, u.rad, "inclination").value
    pa = as_quantity(position_angle, u.rad, "position_angle").value
    if not 0 <= inc < np.pi / 2:
        raise ValueError(f"inclination must be in [0, 90) deg, got {np.rad2deg(inc)} deg")
    xi, eta, cosc = _gnomonic(ra, dec, ra0, dec0)
    x_major = xi * np.sin(pa) + eta * np.cos(pa)
    y_minor = xi * np.cos(pa) - eta * np.sin(pa)
    radius = distance * np.hypot(x_major, y_minor / np.cos(inc))
    radius = np.where(cosc <= 0, np.inf, radius)
    return u.Quantity(radius, u.kpc)


@functools.lru_cache(maxsize=1)
def _fields_array():
    path = resources.files("m31clusters") / "data" / "pandas_fields.csv"
    with resources.as_file(path) as p:
        data = np.genfromtxt(p, delimiter=",", names=True, dtype=None, encoding="ascii")
    return data


def pandas_fields():
    """
    The 406 PAndAS CFHT/MegaCam fields.

    Centres are the mean pointing of each field in the PAndAS observing log
    (McConnachie et al. 2018, ApJ 868, 55, Table 2), shipped with the
    package as ``m31clusters/data/pandas_fields.csv``.

    Returns
    -------
    fields : `~astropy.table.Table`
        Columns ``PAndAS`` (int, the number in ``m###``), ``ra`` and
        ``dec`` (deg, ICRS), ``sep`` (deg, separation from `M31_CENTER`) and
        ``Rproj`` (kpc, projected radius at 785 kpc): the column names of
        `~m31clusters.catalog.Catalog.from_candidates`.  A fresh copy on
        every call.

    Examples
    --------
    >>> from m31clusters.geometry import pandas_fields
    >>> fields = pandas_fields()
    >>> len(fields)
    406
    >>> fields.colnames
    ['PAndAS', 'ra', 'dec', 'sep', 'Rproj']
    """
    d = _fields_array()
    t = Table()
    t["PAndAS"] = np.asarray(d["field"], dtype=int)
    t["ra"] = u.Quantity(d["ra_deg"], u.deg)
    t["dec"] = u.Quantity(d["dec_deg"], u.deg)
    t["sep"] = u.Quantity(d["sep_from_M31_deg"], u.deg)
    t["Rproj"] = u.Quantity(d["Rproj_kpc_D785"], u.kpc)
    t["ra"].description = "Mean pointing right ascension (ICRS)"
    t["dec"].description = "Mean pointing declination (ICRS)"
    t["sep"].description = "Separation from the centre of M31"
    t["PAndAS"].description = "PAndAS field number (the ### of m###)"
    t["Rproj"].description = "Projected radius from M31 at 785 kpc"
    t.meta["reference"] = "McConnachie et al. 2018, ApJ 868, 55"
    return t


@functools.lru_cache(maxsize=1)
def _field_index():
    d = _fields_array()
    ids = np.asarray(d["field"], dtype=int)
    ra = np.deg2rad(np.asarray(d["ra_deg"], dtype=float))
    dec = np.deg2rad(np.asarray(d["dec_deg"], dtype=float))
    vec = unit_vectors(ra, dec)
    tree = cKDTree(vec)
    half = np.deg2rad(PANDAS_FIELD_SIZE.to_value(u.deg)) / 2
    # Largest angle from a centre to a point of its footprint (the corner).
    reach = np.arctan(np.hypot(*np.tan(half)))
    chord = 2 * np.sin(reach / 2) * (1 + 1e-9)
    # Every field containing a point lies within 2 * reach of the nearest
    # such field, so this many neighbours always suffice.
    pairs = tree.query_ball_point(vec, 2 * np.sin(reach) * (1 + 1e-9))
    k = int(max(len(p) for p in pairs))
    return ids, ra, dec, tree, np.tan(half), chord, k


def _inside(ra, dec, idx):
    """Whether (ra, dec) lies in the footprint of field index *idx* (broadcast)."""
    ids, fra, fdec, tree, tan_half, chord, k = _field_index()
    found = idx < len(ids)
    safe = np.where(found, idx, 0)
    xi, eta, cosc = _gnomonic(ra, dec, fra[safe], fdec[safe])
    inside = found & (cosc > 0) & (np.abs(xi) <= tan_half[0]) & (np.abs(eta) <= tan_half[1])
    return ids[safe], inside


def _containing(ra, dec):
    """Candidate field numbers (N, k), nearest centre first, and a mask."""
    ids, fra, fdec, tree, tan_half, chord, k = _field_index()
    _, idx = tree.query(unit_vectors(ra, dec), k=k, distance_upper_bound=chord, workers=-1)
    return _inside(ra[:, None], dec[:, None], idx.reshape(len(ra), k))


def pandas_field(positions):
    """
    The PAndAS field that each position falls in.

    A position is in a field when it lies within the field's ~0.96 x 0.94
    deg footprint (a rectangle aligned with RA/Dec in the tangent plane of
    the field centre).  Fields overlap; the one whose centre is nearest is
    returned.  Use `pandas_fields_containing` for all of them.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`
        Positions, any shape.

    Returns
    -------
    field : int or `~numpy.ndarray` of int
        Field number (the ``###`` of ``m###``), -1 outside the survey.
        Same shape as *positions*.

    Raises
    ------
    TypeError
        If *positions* is not a `~astropy.coordinates.SkyCoord`.
    ValueError
        If any position is NaN.

    Examples
    --------
    >>> from astropy.coordinates import SkyCoord
    >>> from m31clusters.geometry import pandas_field, M31_CENTER
    >>> int(pandas_field(SkyCoord(0, -60, unit="deg")))
    -1
    >>> int(pandas_field(M31_CENTER)) > 0
    True
    """
    ra, dec = _radec_rad(positions)
    shape = ra.shape
    ra, dec = ra.ravel(), dec.ravel()
    ids, fra, fdec, tree, tan_half, chord, k = _field_index()
    # The nearest centre answers whenever its footprint contains the point
    # (nearly always); only the rest need the k-neighbour search.
    _, idx = tree.query(unit_vectors(ra, dec), k=1, distance_upper_bound=chord, workers=-1)
    field, inside = _inside(ra, dec, idx)
    result = np.where(inside, field, -1)
    rest = np.flatnonzero(~inside & (idx < len(ids)))
    if rest.size:
        cand, ok = _containing(ra[rest], dec[rest])
        first = np.argmax(ok, axis=1)
        result[rest] = np.where(ok.any(axis=1), cand[np.arange(rest.size), first], -1)
    result = result.reshape(shape)
    return int(result) if result.ndim == 0 else result


def pandas_fields_containing(positions):
    """
    All PAndAS fields whose footprint contains each position.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`
        Positions, scalar or 1-D.

    Returns
    -------
    fields : `~numpy.ndarray` or list of `~numpy.ndarray`
        For a scalar position, the field numbers containing it, nearest
        centre first (empty outside the survey); for an array, a list with
        one such array per position.

    Raises
    ------
    TypeError
        If *positions* is not a `~astropy.coordinates.SkyCoord`.
    ValueError
        If any position is NaN or *positions* has more than one dimension.

    Examples
    --------
    >>> from m31clusters.geometry import pandas_field, pandas_fields_containing, M31_CENTER
    >>> fields = pandas_fields_containing(M31_CENTER)
    >>> int(fields[0]) == pandas_field(M31_CENTER)
    True
    """
    if as_skycoord(positions).ndim > 1:
        raise ValueError("pandas_fields_containing takes a scalar or 1-D SkyCoord")
    ra, dec = _radec_rad(positions)
    shape = ra.shape
    cand, inside = _containing(ra.ravel(), dec.ravel())
    out = [c[m] for c, m in zip(cand, inside, strict=True)]
    return out[0] if shape == () else out
