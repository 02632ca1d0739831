"""
Positional cross-matching and de-duplication of source catalogues.

`match` attaches to every row of a catalogue the name of the nearest object
of a reference catalogue (for example a literature cluster list) within a
matching radius; `deduplicate` merges the detections of one source seen in
several overlapping PAndAS fields into a single row.

Both work on unit vectors in plain numpy with a `scipy.spatial.cKDTree`
(the approach of `astropy.coordinates.match_coordinates_sky`): angular
separations are recovered exactly from chord lengths, so the matching is
correct across RA = 0/360 deg and at the poles, and ten million positions
take seconds.
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .catalog import Catalog
from .utils._sphere import unit_vectors
from .utils._tables import table_skycoord, text_values
from .utils._validation import as_quantity

__all__ = ["match", "deduplicate", "match_literature", "LITERATURE_SOURCES"]


def _check_table(table, name):
    if not hasattr(table, "colnames"):
        raise TypeError(f"{name} must be an astropy Table or Catalog, got {type(table).__name__}")


def _check_radius(radius):
    radius = as_quantity(radius, u.arcsec, "radius")
    if not radius.isscalar or not np.isfinite(radius.value) or radius.value < 0:
        raise ValueError(f"radius must be a finite, non-negative scalar angle, got {radius!r}")
    return radius


def _positions(table, name):
    """SkyCoord of the rows of *table* (empty tables give an empty SkyCoord)."""
    try:
        coords = table_skycoord(table)
    except KeyError as exc:
        raise KeyError(f"{name}: {exc.args[0]}") from None
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    if not coords.isscalar and coords.ndim != 1:
        raise ValueError(f"{name}: positions must be one-dimensional")
    return coords


def _unit_vectors(coords, frame=None):
    """(N, 3) float64 unit vectors of *coords*, in *frame* if given."""
    coords = SkyCoord(coords, copy=False)
    if frame is not None and not coords.is_equivalent_frame(frame):
        coords = coords.transform_to(frame)
    sph = coords.data.represent_as(UnitSphericalRepresentation)
    lon = np.atleast_1d(sph.lon.to_value(u.rad)).astype(float, copy=False)
    lat = np.atleast_1d(sph.lat.to_value(u.rad)).astype(float, copy=False)
    return unit_vectors(lon, lat)


def _chord(radius):
    """Chord length on the unit sphere for an angle, a hair larger for rounding."""
    r = radius.to_value(u.rad)
    return np.nextafter(2 * np.sin(min(r, np.pi) / 2), np.inf)


def _angle_from_chord(d):
    """Angular separation (arcsec) from chord length(s) on the unit sphere."""
    return np.rad2deg(2 * np.arcsin(np.clip(np.asarray(d) / 2, 0, 1))) * 3600


def _is_blank(col):
    """True for an all-empty (or all-masked) string column, e.g. a schema placeholder."""
    values = np.ma.asarray(col)
    if values.dtype.kind not in "US":
        return False
    return bool(np.all(text_values(values) == ""))


def _names(reference, name_column):
    if name_column not in reference.colnames:
        raise KeyError(
            f"reference has no name column {name_column!r} (columns: {reference.colnames}); "
            f"pass name_column= one of them"
        )
    return text_values(reference[name_column])


def match(catalog, reference, radius=1 * u.arcsec, *, name_column="name", into=None,
          all_matches=False):
    """
    Add to *catalog* the name of the nearest *reference* object within *radius*.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        The catalogue to annotate; positions in a `~astropy.coordinates.SkyCoord`
        column, an RA/Dec pair in degrees or CDS sexagesimal columns (see
        `m31clusters.utils._tables.table_skycoord`).
    reference : `~astropy.table.Table`
        The reference catalogue (e.g. `m31clusters.datasets.load_rbc_v5`), with
        positions and a name column.  Positions in another frame are
        transformed to the frame of *catalog*.
    radius : `~astropy.units.Quantity`
        Matching radius (angle, inclusive).  Plain numbers are refused.
    name_column : str
        Column of *reference* holding the names.
    into : str, optional
        Name of the new column of *catalog* receiving the names (default
        *name_column*).  The separation goes in ``<into>_sep`` (arcsec).
        An existing column *into* is replaced if it comes from an earlier
        match or is an empty name column (like the ``RBC``, ``C11``, ...
        placeholders of `~m31clusters.catalog.Catalog.from_candidates`); any
        other existing column *into* is an error.
    all_matches : bool
        If false (default) each row gets the nearest match only.  If true
        the result has one row per (row, reference object) pair within the
        radius, nearest first (one-to-many; rows are repeated), and rows
        without any match appear once.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        A copy of *catalog* with the columns *into* (str, ``""`` where there
        is no match) and ``<into>_sep`` (arcsec, NaN where there is no match).

    Raises
    ------
    TypeError
        If an input is not a table or *radius* has no units.
    astropy.units.UnitTypeError
        If *radius* is not an angle.
    KeyError
        If *reference* has no column *name_column*, or a table has no positions.
    ValueError
        If *radius* is negative or not finite, a position is NaN, or *into*
        is an existing, non-empty column of *catalog* (other than an
        earlier match).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from m31clusters.crossmatch import match
    >>> cands = Table({"coord": SkyCoord([10.0, 10.1, 359.9999], [41.0, 41.0, 0.0], unit="deg")})
    >>> ref = Table({"coord": SkyCoord([10.0002, 0.0001], [41.0, 0.0], unit="deg"),
    ...              "name": ["B001", "X1"]})
    >>> out = match(cands, ref, radius=1 * u.arcsec, into="RBC")
    >>> out["RBC"].tolist()
    ['B001', '', 'X1']
    >>> print(out["RBC_sep"].unit, out["RBC_sep"].round(3).tolist())
    arcsec [0.543, nan, 0.72]
    """
    _check_table(catalog, "catalog")
    _check_table(reference, "reference")
    radius = _check_radius(radius)
    names = _names(reference, name_column)
    into = name_column if into is None else str(into)
    sep_col = f"{into}_sep"
    cat_coords = _positions(catalog, "catalog")
    for col in (into, sep_col):
        if col in catalog.colnames and isinstance(catalog[col], SkyCoord):
            raise ValueError(f"into={into!r} would replace the position column {col!r}")
    if into in catalog.colnames and sep_col not in catalog.colnames \
            and not _is_blank(catalog[into]):
        raise ValueError(
            f"catalog already has a column {into!r} with values that are not the result of "
            f"a match; pass into= another name (e.g. into='RBC')"
        )
    ref_coords = _positions(reference, "reference")

    out = Catalog(catalog, copy=True)
    n = len(out)
    xyz = _unit_vectors(cat_coords) if n else np.empty((0, 3))
    frame = cat_coords.frame if n else None
    ref_xyz = _unit_vectors(ref_coords, frame=frame) if len(reference) else np.empty((0, 3))
    chord = _chord(radius)
    r_arcsec = radius.to_value(u.arcsec)
    width = max(1, int(names.dtype.itemsize // 4)) if names.size else 1

    if not all_matches:
        name_out = np.zeros(n, dtype=f"U{width}")
        sep_out = np.full(n, np.nan)
        if n and len(ref_xyz):
            tree = cKDTree(ref_xyz)
            dist, idx = tree.query(xyz, k=1, distance_upper_bound=chord)
            sep_out = _angle_from_chord(dist)
            miss = ~(sep_out <= r_arcsec)  # also inf distances (no neighbour)
            sep_out[miss] = np.nan
            idx[miss] = len(names)
            name_out = np.append(names.astype(f"U{width}"), "")[idx]
    else:
        if n and len(ref_xyz):
            pairs = cKDTree(xyz).sparse_distance_matrix(
                cKDTree(ref_xyz), chord, output_type="ndarray"
            )
            i, j = pairs["i"].astype(np.intp), pairs["j"].astype(np.intp)
            sep = _angle_from_chord(pairs["v"])
            ok = sep <= r_arcsec
            i, j, sep = i[ok], j[ok], sep[ok]
        else:
            i = j = np.empty(0, dtype=np.intp)
            sep = np.empty(0)
        unmatched = np.setdiff1d(np.arange(n), i)
        rows = np.concatenate([i, unmatched])
        jj = np.concatenate([j, np.full(unmatched.size, -1)])
        ss = np.concatenate([sep, np.full(unmatched.size, np.nan)])
        order = np.lexsort((np.nan_to_num(ss, nan=np.inf), rows))
        rows, jj, ss = rows[order], jj[order], ss[order]
        out = out[rows]
        name_out = np.zeros(rows.size, dtype=f"U{width}")
        has = jj >= 0
        name_out[has] = names[jj[has]]
        sep_out = ss

    # replace earlier columns in place (keeps e.g. the table-7 column order)
    for name, values in ((into, name_out), (sep_col, u.Quantity(sep_out, u.arcsec, copy=False))):
        index = None
        if name in out.colnames:
            index = out.colnames.index(name)
            description = out[name].info.description
            out.remove_column(name)
        out.add_column(values, name=name, index=index, copy=False)
        if index is not None and description and name == into:
            out[name].info.description = description
    out[sep_col].description = f"separation from the nearest {name_column} within {radius}"
    return out


def _parse_keep(keep, catalog):
    if keep == "first":
        return None, None
    if not isinstance(keep, str) or ":" not in keep:
        raise ValueError(f"keep must be 'first', 'max:<column>' or 'min:<column>', got {keep!r}")
    how, column = keep.split(":", 1)
    if how not in ("max", "min"):
        raise ValueError(f"keep must be 'first', 'max:<column>' or 'min:<column>', got {keep!r}")
    if column not in catalog.colnames:
        raise KeyError(
            f"keep={keep!r}: catalog has no column {column!r} (columns: {catalog.colnames}); "
            "use keep='first' to keep the first row of each group"
        )
    col = catalog[column]
    values = np.ma.filled(np.ma.asarray(getattr(col, "value", col)), np.nan)
    if not np.issubdtype(values.dtype, np.number) and values.dtype != bool:
        raise TypeError(f"keep={keep!r}: column {column!r} is not numeric ({values.dtype})")
    values = values.astype(float)
    key = -values if how == "max" else values
    return how, np.where(np.isnan(key), np.inf, key)


def deduplicate(catalog, radius=1 * u.arcsec, *, keep="max:Conf", field_column=None):
    """
    Merge detections of the same source (friends-of-friends within *radius*).

    Two rows closer than *radius* are friends; groups are the connected
    components of that graph, so chains A-B-C merge into one group even if
    A and C are farther apart than *radius*.  One row is kept per group.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        Detections, with positions (see `match`).
    radius : `~astropy.units.Quantity`
        Linking length (angle, inclusive).  ``0 * u.arcsec`` merges exact
        duplicates only.
    keep : str
        Which row of a group to keep: ``"max:<column>"`` (e.g. the default
        ``"max:Conf"``, the most confident classification), ``"min:<column>"``
        or ``"first"``.  Ties and NaN/masked values go to the first row.
    field_column : str, optional
        Column with the field id of each detection (default ``"PAndAS"`` if
        present).  The ids of all the detections of a group are recorded.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        The kept rows, in their original order, with the extra columns
        ``n_det`` (number of detections merged) and, when a field column is
        available, ``fields`` (the distinct field ids of the group, sorted,
        comma-separated).

    Raises
    ------
    TypeError
        If *catalog* is not a table, *radius* has no units or the keep
        column is not numeric.
    KeyError
        If the keep or field column is missing, or there are no positions.
    ValueError
        If *keep* is malformed, *radius* is negative or a position is NaN.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from m31clusters.crossmatch import deduplicate
    >>> ra = [359.99990, 0.00005, 10.0, 10.0]  # two across RA = 0, one exact duplicate
    >>> t = Table({"coord": SkyCoord(ra, [0.0, 0.0, 41.0, 41.0], unit="deg"),
    ...            "Conf": [0.7, 0.9, 0.8, 0.6], "PAndAS": [207, 208, 210, 211]})
    >>> out = deduplicate(t, radius=1 * u.arcsec)
    >>> print(out["Conf", "n_det", "fields"])
    Conf n_det  fields
    ---- ----- -------
        0.9     2 207,208
        0.8     2 210,211
    """
    _check_table(catalog, "catalog")
    radius = _check_radius(radius)
    how, key = _parse_keep(keep, catalog)
    if field_column is None:
        field_column = "PAndAS" if "PAndAS" in catalog.colnames else None
    elif field_column not in catalog.colnames:
        raise KeyError(
            f"field_column={field_column!r} not in catalog (columns: {catalog.colnames})"
        )
    coords = _positions(catalog, "catalog")
    n = len(catalog)
    if n == 0:
        out = Catalog(catalog, copy=True)
        out["n_det"] = np.zeros(0, dtype=np.int64)
        if field_column is not None:
            out["fields"] = np.zeros(0, dtype="U1")
        return out

    xyz = _unit_vectors(coords)
    chord = _chord(radius)
    tree = cKDTree(xyz)
    pairs = tree.query_pairs(chord, output_type="ndarray")
    if pairs.size:
        d = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
        pairs = pairs[_angle_from_chord(d) <= radius.to_value(u.arcsec)]
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)

    index = np.arange(n)
    if how is None:
        order = np.lexsort((index, labels))
    else:
        order = np.lexsort((index, key, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    kept = np.sort(order[starts])
    sizes = np.bincount(labels)

    out = Catalog(catalog[kept], copy=True)
    out["n_det"] = sizes[labels[kept]].astype(np.int64)
    out["n_det"].description = "number of detections merged into this row"
    if field_column is not None:
        out["fields"] = _group_fields(catalog[field_column], labels, kept)
        out["fields"].description = f"distinct {field_column} values of the merged detections"
    return out


def _group_fields(col, labels, kept):
    """Comma-separated sorted distinct field ids of each kept row's group."""
    masked = np.ma.asarray(getattr(col, "value", col))
    if masked.dtype.kind in "US":
        values = text_values(masked)
        missing = ""
    else:
        data = np.ma.getdata(masked)
        missing = (data.min() - 1) if data.size else 0  # sorts first, never a real id
        values = np.ma.filled(masked, missing)
    order = np.lexsort((values, labels))
    lab, val = labels[order], values[order]
    first = np.r_[True, (lab[1:] != lab[:-1]) | (val[1:] != val[:-1])]
    lab, val = lab[first], val[first]
    uniq, inverse = np.unique(val, return_inverse=True)
    strings = np.where(uniq == missing, "", uniq.astype(str))[inverse]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])  # one per label 0..n-1
    counts = np.diff(np.r_[starts, lab.size])
    multi = np.flatnonzero(counts[labels[kept]] > 1)
    as_list = strings.tolist()
    joined = [",".join(v for v in as_list[a:a + c] if v) for a, c in zip(
        starts[labels[kept][multi]].tolist(), counts[labels[kept][multi]].tolist(), strict=True)]
    width = max([strings.itemsize // 4] + [len(j) for j in joined])
    out = strings[starts][labels[kept]].astype(f"U{max(width, 1)}")
    out[multi] = joined
    return out


#: The candidate-catalogue name columns filled by `match_literature`, with the
#: loader of the shipped list behind each.  ``C09`` (Caldwell et al. 2009) and
#: ``W22`` (Wang S. et al. 2022) have no shipped list and stay empty.
LITERATURE_SOURCES = {
    "RBC": "load_rbc_v5",
    "C11": "load_caldwell2011",
    "W23": "load_wang2023",
    "H14": "load_hectospec2015",
}


def match_literature(catalog, radius=1 * u.arcsec, *, columns=None):
    """
    Fill the literature name columns of a candidate catalogue.

    Each column of `LITERATURE_SOURCES` gets the name of the nearest object
    of its shipped list within *radius* (with `match`): ``RBC`` from the
    Revised Bologna Catalogue v5 (`~m31clusters.datasets.load_rbc_v5`),
    ``C11`` from Caldwell et al. 2011
    (`~m31clusters.datasets.load_caldwell2011`), ``W23`` from Wang Y. et al.
    2023 (`~m31clusters.datasets.load_wang2023`, the sequence number) and
    ``H14`` from the halo clusters of Huxor et al. in the CfA Hectospec list
    (`~m31clusters.datasets.load_hectospec2015` with ``halo_only=True``:
    ``PAndAS-xx``, ``Hxx``, ``HECxx``).  ``C09`` and ``W22`` have no shipped
    list and are left as they are (empty in
    `~m31clusters.catalog.Catalog.from_candidates`).

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        Candidates with positions.
    radius : `~astropy.units.Quantity`
        Matching radius (default 1 arcsec, the paper's).
    columns : sequence of str, optional
        Which of `LITERATURE_SOURCES` to fill (default all).

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        A copy with the name columns and their ``<column>_sep`` separations.

    Raises
    ------
    ValueError
        If *columns* names a column that has no shipped list.

    Examples
    --------
    >>> from m31clusters.crossmatch import match_literature
    >>> from m31clusters.datasets import load_rbc_v5, load_wang2023
    >>> from astropy.table import Table, vstack
    >>> cands = Table({"coord": vstack([load_rbc_v5()[:1], load_wang2023()[:1]],
    ...                                metadata_conflicts="silent")["coord"]})
    >>> out = match_literature(cands)
    >>> out["RBC"].tolist(), out["W23"].tolist()
    (['B001', ''], ['', '1'])
    """
    from . import datasets

    if columns is None:
        columns = tuple(LITERATURE_SOURCES)
    unknown = [c for c in columns if c not in LITERATURE_SOURCES]
    if unknown:
        raise ValueError(
            f"no shipped literature list for column(s) {unknown}; "
            f"available: {list(LITERATURE_SOURCES)}"
        )
    out = Catalog(catalog, copy=True)
    for column in columns:
        loader = getattr(datasets, LITERATURE_SOURCES[column])
        reference = loader(halo_only=True) if column == "H14" else loader()
        out = match(out, reference, radius=radius, into=column)
    return out
