"""
Merge the deblended pieces of one object in a candidate list.

A resolved cluster or a background galaxy larger than the seeing is often
split by the deblender into several detections a few arcseconds apart, and
more than one piece may pass the classifier.  `merge_fragments` groups
candidates closer than a linking length (friends of friends) and keeps one
row per group, so that the written catalogue lists each object once.  The
search calls it on the candidates of each field before they are merged
across fields (`m31clusters.crossmatch.deduplicate` then removes the
duplicates of overlapping fields at the astrometric precision, 1 arcsec).
"""

import numpy as np
from astropy import units as u
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .catalog import Catalog
from .crossmatch import _angle_from_chord, _check_table, _chord, _parse_keep, _positions
from .crossmatch import _unit_vectors as _xyz
from .utils._validation import as_quantity

__all__ = ["merge_fragments"]


def merge_fragments(candidates, *, radius=2.5 * u.arcsec, size_column=None, size_factor=1.0,
                    keep="min:gmag"):
    """
    Merge candidates that are pieces of one deblended object.

    Two candidates are linked when they are closer than
    ``max(radius, size_factor * (s1 + s2))``, where ``s`` is the size of
    each (e.g. the ``FWHM`` column of `m31clusters.photometry.measure`;
    0 without *size_column*); groups are the connected components of those
    links, and one row is kept per group.

    The search calls this on its candidate list before writing the
    catalogue (see the module docstring).  Two real clusters closer than
    *radius* are merged too: at the PHAT cluster density (about 1.5 per
    arcmin^2) that happens to about one cluster in 100 for 2.5 arcsec.

    Parameters
    ----------
    candidates : `~astropy.table.Table`
        Candidates with positions (a SkyCoord column or RA/Dec in degrees).
    radius : `~astropy.units.Quantity`
        Smallest linking length (angle).
    size_column : str, optional
        Column with an angular size of each candidate (Quantity or arcsec)
        that widens the linking length of large objects.
    size_factor : float
        Multiplier of the summed sizes.
    keep : str
        Which row of a group to keep: ``"min:<column>"`` (default
        ``"min:gmag"``, the brightest piece, which holds most of the object's
        light), ``"max:<column>"`` (e.g. ``"max:Conf"``) or ``"first"``.

    Returns
    -------
    `~m31clusters.catalog.Catalog`
        The kept rows in their original order, with a column ``n_frag``
        (number of candidates merged into the row).

    Raises
    ------
    TypeError
        If *radius* has no units or *candidates* is not a table.
    KeyError
        If the keep or size column is missing.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from m31clusters.fragments import merge_fragments
    >>> c = SkyCoord([10.0, 10.0005, 10.01], [41.0, 41.0, 41.0], unit="deg")
    >>> t = Table({"coord": c, "gmag": [19.5, 18.2, 20.0], "Conf": [0.9, 0.6, 0.8]})
    >>> out = merge_fragments(t, radius=2.5 * u.arcsec)  # the first two are 1.4" apart
    >>> print(out["gmag", "n_frag"])
    gmag n_frag
    ---- ------
    18.2      2
    20.0      1
    """
    _check_table(candidates, "candidates")
    radius = as_quantity(radius, u.arcsec, "radius").to_value(u.arcsec)
    if radius < 0:
        raise ValueError(f"radius must not be negative, got {radius} arcsec")
    how, key = _parse_keep(keep, candidates)
    n = len(candidates)
    out_empty = Catalog(candidates, copy=True)
    if n == 0:
        out_empty["n_frag"] = np.zeros(0, dtype=np.int64)
        return out_empty
    if size_column is not None:
        if size_column not in candidates.colnames:
            raise KeyError(f"size_column {size_column!r} not in candidates "
                           f"(columns: {candidates.colnames})")
        col = candidates[size_column]
        unit = getattr(col, "unit", None)
        size = np.ma.filled(np.ma.asarray(col, dtype=float), 0.0)
        if unit is not None and unit != u.dimensionless_unscaled:
            size = (size * u.Unit(unit)).to_value(u.arcsec)
        size = np.where(np.isfinite(size) & (size > 0), size, 0.0) * float(size_factor)
    else:
        size = np.zeros(n)
    xyz = _xyz(_positions(candidates, "candidates"))
    reach = max(radius, 2 * float(size.max()))
    pairs = cKDTree(xyz).query_pairs(_chord(reach * u.arcsec), output_type="ndarray")
    if pairs.size:
        d = _angle_from_chord(np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1))
        link = np.maximum(radius, size[pairs[:, 0]] + size[pairs[:, 1]])
        pairs = pairs[d <= link]
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
                       shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    index = np.arange(n)
    order = np.lexsort((index, labels)) if how is None else np.lexsort((index, key, labels))
    sl = labels[order]
    kept = np.sort(order[np.flatnonzero(np.r_[True, sl[1:] != sl[:-1]])])
    out = Catalog(candidates[kept], copy=True)
    out["n_frag"] = np.bincount(labels)[labels[kept]].astype(np.int64)
    out["n_frag"].description = "number of candidates (fragments of one object) merged"
    return out
