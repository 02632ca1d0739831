"""
Training sets from images and a catalogue of known clusters.

`build_training_set` is the recipe of Zhang et al. (2025) as one function:
the sources the search classifies (a CASU ``m###p.ascd`` catalogue, or
`~m31clusters.photometry.detect_sources` + `~m31clusters.photometry.measure`
output) are labelled against a catalogue of known clusters (the PHAT
Andromeda Project catalogue on real PAndAS stacks, the truth table on
simulated fields):

* a source within ``match_radius`` of a known cluster (the nearest source
  of that cluster) is a **cluster**;
* a source inside the known clusters' footprint and farther than
  ``exclusion_radius`` from every known cluster is a **non-cluster**;
* everything else is **ambiguous** (other pieces of a matched cluster,
  sources between the two radii) and dropped;
* only sources brighter than ``mag_limit`` (g < 21, the paper's choice)
  whose stamp is mostly on the image are kept;
* the sky is cut into square tiles, whole tiles are given to the training,
  validation and test splits (seeded), and a source whose stamp would reach
  into a tile of another split is dropped, so that no two splits share a
  pixel.

The negatives are therefore exactly what the search meets: disc stars,
blends, background galaxies, deblended fragments, saturated stars and
stamps at chip edges, in their real proportions.  `hard_example_weights`
and `resample` make the hard ones (those a current model scores high) count
more in training.
"""

import dataclasses
import math
import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from .exceptions import M31ClustersError
from .utils._sphere import unit_vectors
from .utils._tables import table_skycoord
from .utils._validation import as_quantity

__all__ = [
    "TrainingSet",
    "TrainingSetError",
    "SPLIT_NAMES",
    "build_training_set",
    "hard_example_weights",
    "resample",
    "train_classifier",
]

#: Names of the three splits, in the order of the *splits* fractions.
SPLIT_NAMES = ("train", "val", "test")


class TrainingSetError(M31ClustersError, ValueError):
    """A training set cannot be built from the given images, sources and labels."""


@dataclasses.dataclass
class TrainingSet:
    """
    Labelled stamps made by `build_training_set`.

    Attributes
    ----------
    cutouts : `~m31clusters.cutout.Cutout`
        One raw stamp per row of *table*.
    table : `~astropy.table.Table`
        One row per stamp: ``source`` (row in the input source list),
        ``coord``, ``mag``, ``label`` (1 cluster, 0 not), ``split``
        (``"train"``, ``"val"`` or ``"test"``), ``why`` (``"matched"``: within
        the match radius of a known cluster; ``"clear"``: farther than the
        exclusion radius from all of them), ``positive`` (row of the matched
        known cluster, -1 for non-clusters), ``sep`` (arcsec to the nearest
        known cluster) and ``tile``.  ``table.meta`` holds the counts of every
        step (``n_sources``, ``n_outside_footprint``, ``n_faint``,
        ``n_ambiguous``, ``n_off_image``, ``n_split_border``,
        ``n_positives``, ``n_positives_on_images``, ``n_positives_matched``)
        and the parameters used.
    """

    cutouts: object
    table: Table

    def __len__(self):
        return len(self.table)

    def subset(self, split):
        """
        Stamps and labels of one split.

        Parameters
        ----------
        split : str
            ``"train"``, ``"val"`` or ``"test"``.

        Returns
        -------
        cutouts : `~m31clusters.cutout.Cutout`
        labels : `~numpy.ndarray` of int
        """
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
        idx = np.flatnonzero(self.table["split"] == split)
        return self.cutouts[idx], np.asarray(self.table["label"][idx], dtype=int)

    def counts(self):
        """
        Number of clusters and non-clusters per split.

        Returns
        -------
        `~astropy.table.Table`
            Columns ``split``, ``n_cluster``, ``n_other``.
        """
        rows = []
        for s in SPLIT_NAMES:
            sel = self.table["split"] == s
            lab = np.asarray(self.table["label"][sel])
            rows.append((s, int(np.sum(lab == 1)), int(np.sum(lab == 0))))
        return Table(rows=rows, names=("split", "n_cluster", "n_other"))

    def thin(self, max_negatives, *, seed=None):
        """
        Keep every cluster and at most *max_negatives* random non-clusters per split.

        A real field has ~10^5 sources brighter than the magnitude limit and
        a few hundred clusters; the non-clusters are thinned to what a
        training run can afford.  They are drawn uniformly, whatever they
        are (stars, blends, galaxies, fragments), so their mix stays that of
        the field, as the prior-shift calibration assumes.

        Parameters
        ----------
        max_negatives : int or dict
            The most non-clusters kept in each split, or a dict split name
            -> number (splits not named are kept whole).
        seed : int or None, optional
            Seed of the random choice.

        Returns
        -------
        `TrainingSet`
            A new set, rows in their original order; ``table.meta`` gains
            ``n_thinned`` (the non-clusters left out).

        Raises
        ------
        ValueError
            For an unknown split name or a negative or non-integer number.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.training import TrainingSet
        >>> t = Table({"label": [1, 0, 0, 0, 0, 0], "split": ["train"] * 4 + ["val"] * 2})
        >>> ts = TrainingSet(Cutout(np.zeros((6, 8, 8, 2))), t)
        >>> small = ts.thin({"train": 1}, seed=0)
        >>> small.counts()["n_other"].tolist(), small.table.meta["n_thinned"]
        ([1, 2, 0], 2)
        """
        if isinstance(max_negatives, dict):
            limits = dict(max_negatives)
        else:
            limits = dict.fromkeys(SPLIT_NAMES, max_negatives)
        for split, n in limits.items():
            if split not in SPLIT_NAMES:
                raise ValueError(f"unknown split {split!r}; the splits are {SPLIT_NAMES}")
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(
                    f"max_negatives for split {split!r} must be a non-negative integer; "
                    f"got {n!r}")
        rng = np.random.default_rng(seed)
        split = np.asarray(self.table["split"])
        negative = np.asarray(self.table["label"]) == 0
        keep = ~negative
        for name in SPLIT_NAMES:
            idx = np.flatnonzero((split == name) & negative)
            if name not in limits:
                keep[idx] = True
            else:
                keep[rng.choice(idx, min(int(limits[name]), idx.size), replace=False)] = True
        rows = np.flatnonzero(keep)
        table = self.table[rows]
        table.meta = dict(self.table.meta)
        table.meta["n_thinned"] = int(table.meta.get("n_thinned", 0)) + int((~keep).sum())
        return TrainingSet(cutouts=self.cutouts[rows], table=table)

    @classmethod
    def concatenate(cls, training_sets):
        """
        Join the training sets of several fields into one.

        The survey's training set is made field by field (one
        `build_training_set` call per pair of stacks and its source list);
        this joins them.  Each field keeps its own splits and tiles, so no
        two splits share a pixel as long as the fields do not overlap on
        the sky (fields made from the same images should be built once).

        Parameters
        ----------
        training_sets : sequence of `TrainingSet`
            With the same stamp shape, bands and normalisation.

        Returns
        -------
        `TrainingSet`
            Its table gains a column ``set`` (index of the input each row
            came from; ``source`` and ``tile`` are relative to it);
            ``table.meta`` holds the sums of the inputs' ``n_*`` counts and
            ``sets``, the list of the inputs' own metadata.

        Raises
        ------
        ValueError
            If the list is empty or the stamps differ in shape or
            normalisation (`~m31clusters.cutout.Cutout.concatenate`).
        BandError
            If the bands differ.
        TypeError
            If an item is not a `TrainingSet`.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.table import Table
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.training import TrainingSet
        >>> def one(label):
        ...     t = Table({"label": [label, 0], "split": ["train", "val"], "tile": [0, 1]})
        ...     t.meta["n_sources"] = 10
        ...     return TrainingSet(Cutout(np.zeros((2, 8, 8, 2))), t)
        >>> both = TrainingSet.concatenate([one(1), one(0)])
        >>> len(both), both.table.meta["n_sources"], both.table["set"].tolist()
        (4, 20, [0, 0, 1, 1])
        """
        from astropy.table import vstack

        from .cutout import Cutout

        training_sets = list(training_sets)
        if not training_sets:
            raise ValueError("cannot concatenate an empty list of training sets")
        for k, ts in enumerate(training_sets):
            if not isinstance(ts, TrainingSet):
                raise TypeError(f"item {k} is a {type(ts).__name__}, not a TrainingSet")
        cutouts = Cutout.concatenate([ts.cutouts for ts in training_sets])
        tables = []
        for k, ts in enumerate(training_sets):
            t = ts.table.copy(copy_data=False)
            t.meta = {}
            t["set"] = np.full(len(t), k, dtype=np.int64)
            tables.append(t)
        table = vstack(tables, join_type="exact")
        counts = {}
        for ts in training_sets:
            for key, value in ts.table.meta.items():
                if key.startswith("n_") and isinstance(value, (int, np.integer)):
                    counts[key] = counts.get(key, 0) + int(value)
        table.meta.update(counts)
        table.meta["sets"] = [dict(ts.table.meta) for ts in training_sets]
        return cls(cutouts=cutouts, table=table)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def _tangent(coords, centre):
    """Gnomonic projection (radians) of *coords* about *centre*."""
    v = unit_vectors(coords.icrs.ra.rad, coords.icrs.dec.rad)
    c = unit_vectors(np.atleast_1d(centre.icrs.ra.rad), np.atleast_1d(centre.icrs.dec.rad))[0]
    east = np.cross([0.0, 0.0, 1.0], c)
    norm = np.linalg.norm(east)
    east = np.array([0.0, 1.0, 0.0]) if norm < 1e-12 else east / norm
    north = np.cross(c, east)
    w = v @ c
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = (v @ east) / w
        eta = (v @ north) / w
    return np.column_stack([xi, eta]), w


def _mean_centre(coords):
    v = unit_vectors(coords.icrs.ra.rad, coords.icrs.dec.rad).sum(axis=0)
    v /= np.linalg.norm(v)
    return SkyCoord(np.arctan2(v[1], v[0]) * u.rad, np.arcsin(v[2]) * u.rad, frame="icrs")


def _nearest(a, b, max_sep):
    """For each of *a*: index of the nearest of *b* and separation (arcsec), within max_sep."""
    from scipy.spatial import cKDTree

    n = len(a)
    idx = np.full(n, -1, dtype=np.int64)
    sep = np.full(n, np.inf)
    if n == 0 or len(b) == 0:
        return idx, sep
    va = unit_vectors(a.icrs.ra.rad, a.icrs.dec.rad)
    vb = unit_vectors(b.icrs.ra.rad, b.icrs.dec.rad)
    chord = 2 * math.sin(min(math.pi, max_sep.to_value(u.rad)) / 2)
    d, j = cKDTree(vb).query(va, k=1, distance_upper_bound=chord * (1 + 1e-12))
    ok = np.isfinite(d)
    idx[ok] = j[ok]
    sep[ok] = np.degrees(2 * np.arcsin(np.clip(d[ok] / 2, 0, 1))) * 3600
    return idx, sep


def _layers(images, band):
    from .cutout.extract import _open_band

    opened = []
    layers = _open_band(images[band], band, opened)
    return layers, opened


def _on_images(coords, layers):
    from .cutout.extract import _locate

    best, _, _ = _locate(coords, layers)
    return best >= 0


def _pixel_scale(layers):
    from astropy.wcs.utils import proj_plane_pixel_scales

    w = layers[0].wcs
    scales = proj_plane_pixel_scales(w) * np.array(
        [u.Unit(w.wcs.cunit[k]).to(u.arcsec) for k in range(2)])
    return float(np.max(scales)) * u.arcsec


def _footprint_mask(footprint, coords, positives):
    """Boolean array: which *coords* are inside the labelled footprint."""
    if isinstance(footprint, str):
        if footprint != "images":
            raise ValueError(
                f"footprint must be None, 'images', a regions SkyRegion or a callable; "
                f"got {footprint!r}")
        return np.ones(len(coords), dtype=bool)
    if footprint is None:
        if len(positives) < 3:
            raise TrainingSetError(
                f"the footprint of the positives is their convex hull, which needs at least 3 "
                f"positives on the images (got {len(positives)}); pass footprint= "
                f"(a regions SkyRegion, a callable or 'images')")
        from scipy.spatial import Delaunay, QhullError

        centre = _mean_centre(positives)
        pp, _ = _tangent(positives, centre)
        pc, w = _tangent(coords, centre)
        try:
            tri = Delaunay(pp)
        except QhullError as exc:
            raise TrainingSetError(
                "the positives on the images are collinear: their convex hull has no area; "
                "pass footprint=") from exc
        inside = np.zeros(len(coords), dtype=bool)
        ok = w > 0
        inside[ok] = tri.find_simplex(pc[ok]) >= 0
        return inside
    try:
        from regions import SkyRegion
    except ImportError:  # pragma: no cover - regions is a dependency
        SkyRegion = ()
    if SkyRegion and isinstance(footprint, SkyRegion):
        from astropy.wcs import WCS

        centre = _mean_centre(coords)
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [centre.ra.deg, centre.dec.deg]
        w.wcs.crpix = [0.0, 0.0]
        w.wcs.cdelt = [-1 / 3600, 1 / 3600]
        return np.asarray(footprint.contains(coords, w), dtype=bool).reshape(len(coords))
    if callable(footprint):
        mask = np.asarray(footprint(coords), dtype=bool)
        if mask.shape != (len(coords),):
            raise ValueError(
                f"footprint(positions) must return {len(coords)} booleans, got shape "
                f"{mask.shape}")
        return mask
    raise TypeError(
        f"footprint must be None, 'images', a regions SkyRegion or a callable; got "
        f"{type(footprint).__name__}")


def _check_splits(splits):
    try:
        fr = np.asarray([float(s) for s in splits])
    except (TypeError, ValueError):
        raise ValueError(f"splits must be three fractions (train, val, test), got {splits!r}") \
            from None
    if fr.shape != (3,) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(
            f"splits must be three non-negative fractions (train, val, test) summing to 1, "
            f"got {splits!r}")
    return fr


def _assign_tiles(tile_ids, labels, fractions, rng):
    """Give whole tiles to splits so that each split gets its fraction of both classes."""
    uniq, inv = np.unique(tile_ids, return_inverse=True)
    n_t = np.zeros((uniq.size, 2))
    np.add.at(n_t, (inv, labels), 1)
    total = np.maximum(n_t.sum(axis=0), 1)
    have = np.zeros((3, 2))
    split_of_tile = np.zeros(uniq.size, dtype=int)
    # tiles with positives first (random order within), so that every split gets some
    order = rng.permutation(uniq.size)
    order = order[np.argsort(n_t[order, 1] == 0, kind="stable")]
    done = np.zeros(2)
    for t in order:
        after = done + n_t[t]
        deficit = (fractions[:, None] * after[None, :] - have) / total[None, :]
        score = deficit.sum(axis=1) + 1e-9 * fractions  # ties: the larger split
        score[fractions == 0] = -np.inf
        s = int(np.argmax(score))
        split_of_tile[t] = s
        have[s] += n_t[t]
        done = after
    return split_of_tile[inv]


# ----------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------


def build_training_set(images, sources, positives, *, match_radius=1 * u.arcsec,
                       exclusion_radius=5 * u.arcsec, mag_limit=21.0, mag_column=None,
                       size=32, bands=("g", "i"), splits=(0.7, 0.15, 0.15),
                       tile_size=1 * u.arcmin, min_valid=0.5, footprint=None, seed=None,
                       allow_one_class=False, progress=False):
    """
    Labelled stamps from images, their source list and known clusters.

    The recipe of Zhang et al. (2025) (see the module docstring): clusters
    are the sources matched to a known cluster, non-clusters the sources of
    the labelled footprint clear of every known cluster, the rest is dropped
    and counted; g < 21; spatially disjoint, seeded train/validation/test
    splits.  The same call works on real PAndAS stacks with their
    ``m###p.ascd`` catalogues and the PHAT clusters
    (`m31clusters.datasets.load_phat_clusters`) and on simulated fields with
    the clusters of their truth table.

    Parameters
    ----------
    images : dict
        ``{band: image}`` for the g and i bands: FITS paths, HDULists (a
        PAndAS stack with one CCD per extension), HDUs or NDData, as accepted
        by `m31clusters.cutout.Cutout.from_images`.
    sources : `~astropy.table.Table`
        The sources the search classifies, with positions (a ``coord``
        SkyCoord column or RA/Dec in degrees) and a g magnitude: a
        `~m31clusters.io.pandas_ascd.read_pandas_ascd` catalogue (column ``g``) or
        `~m31clusters.photometry.measure` output (``gmag``).
    positives : `~astropy.table.Table` or `~astropy.coordinates.SkyCoord`
        The known clusters (e.g. `m31clusters.datasets.load_phat_clusters`,
        or ``truth[truth["kind"] == "cluster"]`` of a simulated field).
    match_radius : `~astropy.units.Quantity`
        A source this close to a known cluster (the nearest one, if several)
        is a cluster.
    exclusion_radius : `~astropy.units.Quantity`
        A source farther than this from every known cluster is a
        non-cluster; sources in between are dropped (``n_ambiguous``).
    mag_limit : float or None
        Keep sources with ``mag < mag_limit`` (None: no limit).
    mag_column : str, optional
        Magnitude column of *sources* (default ``"g"``, else ``"gmag"``).
    size : int or (int, int)
        Stamp size in pixels (the classifier's input).
    bands : sequence of str
        Bands of the stamps, in order.
    splits : (float, float, float)
        Fractions of the sources given to training, validation and test.
    tile_size : `~astropy.units.Quantity`
        Side of the sky tiles that are given whole to one split; must be
        larger than the stamp's diagonal.
    min_valid : float
        Drop sources whose stamp has a smaller fraction of valid pixels in
        some band (the search does the same: off the image, chip gaps).
    footprint : None, ``"images"``, `regions.SkyRegion` or callable, optional
        Where the known-cluster list is complete, so that an unmatched source
        is a non-cluster: by default the convex hull of the known clusters on
        the images; ``"images"`` for the whole image area (a simulated field's
        truth); a sky region (e.g. `m31clusters.datasets.phat_footprint`); or
        a function of positions returning booleans (e.g.
        `m31clusters.datasets.in_phat_footprint`).
    seed : int or None
        Seed of the assignment of tiles to splits.
    allow_one_class : bool
        Accept a field with no known cluster on the images, or a result of
        a single class: e.g. an outer field whose few clusters are all known,
        whose sources (mostly foreground stars and background galaxies) are
        negatives to be joined with other fields' sets by
        `TrainingSet.concatenate`.  Needs an explicit *footprint* (the
        default, the positives' convex hull, has no area without them).
    progress : bool
        Show progress while cutting stamps.

    Returns
    -------
    `TrainingSet`
        The stamps and their table (label, split, why, ...); counts of every
        step in ``table.meta``.

    Raises
    ------
    TrainingSetError
        If no known cluster falls on the images, no source is inside the
        footprint, or the result holds a single class (unless
        *allow_one_class*), or no source is left at all.
    TypeError, astropy.units.UnitTypeError
        If a radius has no units or the wrong ones.
    KeyError
        If *sources* has no positions or magnitude column.

    Examples
    --------
    >>> import tempfile
    >>> import astropy.units as u
    >>> from m31clusters.simulate import simulate_field
    >>> from m31clusters.training import build_training_set
    >>> sim = simulate_field(field=248, n_ccds=1, ccd_shape=(600, 600), seed=3,
    ...                      out_dir=tempfile.mkdtemp())
    >>> truth = sim.truth
    >>> clusters = truth[(truth["kind"] == "cluster") & truth["on_ccd"]]
    >>> ts = build_training_set(sim.images, sim.catalog, clusters, footprint="images",
    ...                         mag_limit=23, tile_size=0.5 * u.arcmin, seed=1)
    >>> sorted(set(ts.table["why"].tolist()))
    ['clear', 'matched']
    >>> print(ts.counts())
    split n_cluster n_other
    ----- --------- -------
    train         2      17
      val         0      11
     test         0       7
    """
    match_radius = as_quantity(match_radius, u.arcsec, "match_radius")
    exclusion_radius = as_quantity(exclusion_radius, u.arcsec, "exclusion_radius")
    tile_size = as_quantity(tile_size, u.arcsec, "tile_size")
    if exclusion_radius < match_radius:
        raise ValueError(
            f"exclusion_radius ({exclusion_radius}) must be at least match_radius "
            f"({match_radius})")
    fractions = _check_splits(splits)
    if allow_one_class and footprint is None:
        raise ValueError("allow_one_class=True needs an explicit footprint (e.g. 'images')")
    bands = tuple(bands)
    missing = [b for b in bands if b not in images]
    if missing:
        from .exceptions import BandError

        raise BandError(f"images has no {missing} band(s); it has {sorted(images)}")
    if not hasattr(sources, "colnames"):
        raise TypeError(f"sources must be an astropy Table, got {type(sources).__name__}")
    coords = table_skycoord(sources).icrs
    coords = coords.reshape((len(sources),)) if coords.isscalar else coords
    if mag_column is None:
        mag_column = next((c for c in ("g", "gmag") if c in sources.colnames), None)
        if mag_column is None:
            raise KeyError(
                f"sources has no g magnitude column 'g' or 'gmag' (columns: {sources.colnames});"
                f" pass mag_column=")
    elif mag_column not in sources.colnames:
        raise KeyError(f"mag_column {mag_column!r} is not a column of sources "
                       f"(columns: {sources.colnames})")
    mag = np.ma.filled(np.ma.asarray(sources[mag_column], dtype=float), np.nan)
    if isinstance(positives, SkyCoord):
        pos = positives.icrs.reshape((-1,))
    else:
        pos = table_skycoord(positives).icrs
        pos = pos.reshape((-1,))
    meta = {"n_sources": len(sources), "n_positives": len(pos)}

    layers, opened = _layers(images, bands[0])
    try:
        on_pos = _on_images(pos, layers) if len(pos) else np.zeros(0, bool)
        scale = _pixel_scale(layers)
    finally:
        for h in opened:
            h.close()
    meta["n_positives_on_images"] = int(on_pos.sum())
    if not on_pos.any() and not allow_one_class:
        raise TrainingSetError(
            f"none of the {len(pos)} positives falls on the {bands[0]} images: the label "
            f"catalogue and the images do not overlap (allow_one_class=True takes a field "
            f"without known clusters as negatives only)")
    pos_on = pos[on_pos]

    inside = _footprint_mask(footprint, coords, pos_on)
    meta["n_outside_footprint"] = int((~inside).sum())
    if not inside.any():
        raise TrainingSetError(
            f"none of the {len(sources)} sources is inside the footprint of the positives")

    # labels: nearest positive of every source; each positive's nearest source
    j, sep = _nearest(coords, pos, exclusion_radius)
    label = np.full(len(sources), -1, dtype=int)  # -1: ambiguous
    label[inside & (sep > exclusion_radius.to_value(u.arcsec))] = 0
    close = np.flatnonzero(sep <= match_radius.to_value(u.arcsec))
    # the nearest source of each positive is the cluster; other close ones are ambiguous
    if close.size:
        order = close[np.lexsort((sep[close], j[close]))]
        first = np.ones(order.size, dtype=bool)
        first[1:] = j[order][1:] != j[order][:-1]
        label[order[first]] = 1
    why = np.where(label == 1, "matched", np.where(label == 0, "clear", "ambiguous"))
    # the magnitude limit first, then the count of the ambiguous bright sources
    # (sources outside the footprint that match a positive are still clusters)
    faint = ~(mag < mag_limit) if mag_limit is not None else np.zeros(len(mag), bool)
    meta["n_faint"] = int(np.sum((inside | (label == 1)) & faint))
    meta["n_ambiguous"] = int(np.sum(inside & (label < 0) & ~faint))
    keep = (label >= 0) & ~faint

    # spatial split by tiles; drop stamps that reach a tile of another split
    shape = (size, size) if np.ndim(size) == 0 else tuple(int(s) for s in size)
    half = 0.5 * max(shape) * math.sqrt(2) * scale + scale
    if tile_size <= 2 * half:
        raise ValueError(
            f"tile_size ({tile_size:.1f}) must be larger than the stamp's diagonal "
            f"({2 * half:.1f}) so that splits do not share pixels")
    idx = np.flatnonzero(keep)
    if idx.size == 0 or (np.unique(label[idx]).size < 2 and not allow_one_class):
        _raise_one_class(label[idx], meta)
    centre = _mean_centre(coords[idx])
    xy, _ = _tangent(coords[idx], centre)
    t = tile_size.to_value(u.rad)
    h = half.to_value(u.rad)
    tij = np.floor(xy / t).astype(np.int64)
    tile_id = tij[:, 0] * 1_000_003 + tij[:, 1]
    rng = np.random.default_rng(seed)
    split = _assign_tiles(tile_id, label[idx], fractions, rng)
    tile_split = dict(zip(tile_id.tolist(), split.tolist(), strict=True))
    border = np.zeros(idx.size, dtype=bool)
    for dx in (-h, h):
        for dy in (-h, h):
            cij = np.floor((xy + [dx, dy]) / t).astype(np.int64)
            cid = cij[:, 0] * 1_000_003 + cij[:, 1]
            other = np.array([tile_split.get(c, s) for c, s in zip(cid.tolist(), split.tolist(),
                                                                    strict=True)])
            border |= other != split
    meta["n_split_border"] = int(border.sum())
    idx, split, tile_id = idx[~border], split[~border], tile_id[~border]

    from .cutout import Cutout
    from .exceptions import OffImageWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OffImageWarning)
        cut = Cutout.from_images(images, coords[idx], size=shape, bands=bands,
                                 progress=progress)
    valid = cut.valid_fraction.min(axis=1) >= min_valid
    meta["n_off_image"] = int((~valid).sum())
    cut = cut[np.flatnonzero(valid)]
    idx, split, tile_id = idx[valid], split[valid], tile_id[valid]
    if idx.size == 0 or (np.unique(label[idx]).size < 2 and not allow_one_class):
        _raise_one_class(label[idx], meta)

    table = Table()
    table["source"] = idx
    table["coord"] = coords[idx]
    table["mag"] = mag[idx] * u.mag
    table["label"] = label[idx]
    table["split"] = np.asarray(SPLIT_NAMES)[split]
    table["why"] = why[idx].astype("U9")
    table["positive"] = np.where(label[idx] == 1, j[idx], -1)
    table["sep"] = sep[idx] * u.arcsec
    table["tile"] = tile_id
    meta["n_positives_matched"] = int(np.sum(label[idx] == 1))
    meta.update({
        "match_radius_arcsec": float(match_radius.value),
        "exclusion_radius_arcsec": float(exclusion_radius.value),
        "tile_size_arcsec": float(tile_size.value), "mag_limit": mag_limit,
        "mag_column": mag_column, "size": list(shape), "bands": list(bands),
        "splits": fractions.tolist(), "seed": seed,
    })
    table.meta.update(meta)
    return TrainingSet(cutouts=cut, table=table)


def _raise_one_class(labels, meta):
    n1, n0 = int(np.sum(labels == 1)), int(np.sum(labels == 0))
    raise TrainingSetError(
        f"the training set would hold a single class ({n1} clusters, {n0} non-clusters "
        f"after the footprint, magnitude and ambiguity cuts: {meta}); widen the footprint, "
        f"the magnitude limit or the images")


def hard_example_weights(labels, proba, *, threshold=0.5, factor=5.0):
    """
    Sampling weights that make the examples a model gets wrong count more.

    Parameters
    ----------
    labels : array-like of int
        1 cluster, 0 not.
    proba : array-like of float
        Cluster probabilities of a current model for the same stamps.
    threshold : float
        Probability above which a non-cluster (below which a cluster) is a
        hard example.
    factor : float
        Weight of a hard example (easy ones have weight 1).

    Returns
    -------
    weights : `~numpy.ndarray`

    Examples
    --------
    >>> from m31clusters.training import hard_example_weights
    >>> hard_example_weights([0, 0, 1, 1], [0.1, 0.9, 0.8, 0.2], factor=4)
    array([1., 4., 1., 4.])
    """
    y = np.asarray(labels, dtype=int)
    p = np.asarray(proba, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and proba {p.shape} differ in shape")
    hard = np.where(y == 1, p < threshold, p >= threshold)
    return np.where(hard, float(factor), 1.0)


def resample(n, weights, *, seed=None):
    """
    Indices of a training set resampled with *weights* (with replacement).

    Every index appears at least once (nothing is thrown away); the rest of
    the *n* draws follow *weights*.

    Parameters
    ----------
    n : int
        Number of indices to return (at least ``len(weights)``).
    weights : array-like of float
        Non-negative weight of each example.
    seed : int or None
        Seed of the draw.

    Returns
    -------
    indices : `~numpy.ndarray` of int, sorted

    Examples
    --------
    >>> from m31clusters.training import resample
    >>> idx = resample(6, [1, 1, 0, 4], seed=0)
    >>> len(idx), sorted(set(idx.tolist())) == [0, 1, 2, 3]
    (6, True)
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    if n < w.size:
        raise ValueError(f"n ({n}) must be at least the number of examples ({w.size})")
    rng = np.random.default_rng(seed)
    extra = rng.choice(w.size, size=n - w.size, replace=True, p=w / w.sum())
    return np.sort(np.concatenate([np.arange(w.size), extra]))


def train_classifier(training_set, *, classifier=None, architecture="wang2022",
                     normalization="asinh", epochs=30, hard_epochs=15, hard_factor=4.0,
                     patience=6, batch_size=32, base_rate=None, metric="f1", seed=None,
                     progress=False):
    """
    Fit, calibrate and threshold a classifier on a `TrainingSet`.

    1. Fit on the ``train`` split, with the ``val`` split for the best epoch
       and early stopping (classes balanced in the loss, dihedral
       augmentation).
    2. Hard examples: the training stamps the first round gets wrong
       (`hard_example_weights`) are drawn *hard_factor* times as often in a
       second round (`resample`), so the rare look-alikes (galaxies,
       blends, fragments) are not drowned by the easy disc stars.
    3. Calibration and threshold on the ``val`` split at the survey's class
       ratio *base_rate* (clusters per source): temperature scaling and a
       prior shift (`~m31clusters.classifier.ClusterClassifier.calibrate`),
       then ``select_threshold(base_rate=...)``, which weights the
       validation negatives to that ratio.

    Parameters
    ----------
    training_set : `TrainingSet`
        From `build_training_set`; needs both classes in ``train`` and ``val``.
    classifier : `~m31clusters.classifier.ClusterClassifier`, optional
        A classifier to continue training (e.g. one pretrained on
        `~m31clusters.simulate.simulate_stamps`); by default a new one.
    architecture : str
        Architecture of a new classifier (see `m31clusters.models`).
    normalization : str or dict
        Stamp normalisation of a new classifier (see
        `m31clusters.cutout.Cutout.normalize`).  ``"asinh"`` scales each
        stamp by its own noise; ``{"method": "asinh_flux", "scale": [s_g,
        s_i]}`` keeps the stamps' brightness and colour (scales in the ratio of
        the bands' zero-point fluxes), which separates clusters from
        background galaxies far better at the survey's base rate.
    epochs, hard_epochs : int
        Maximum epochs of the two rounds (``hard_epochs=0`` skips round 2).
    hard_factor : float
        Sampling weight of a hard example in round 2.
    patience : int
        Early-stopping patience (epochs).
    batch_size : int
        Stamps per step.
    base_rate : float, optional
        Fraction of clusters among the sources the search classifies.
    metric : str
        Quantity the threshold maximises (see ``select_threshold``).
    seed : int or None
        Seed of the new classifier, the shuffling and the resampling.
    progress : bool
        Show training progress.

    Returns
    -------
    classifier : `~m31clusters.classifier.ClusterClassifier`
        Fitted, with its threshold set; ``classifier.metrics`` holds the
        metrics on the ``test`` split when it has both classes (else on
        ``val``).
    info : dict
        Numbers of stamps per split and class, of hard examples, the
        calibration used and the test metrics.

    Raises
    ------
    TrainingSetError
        If the ``train`` or ``val`` split lacks a class.
    """
    from .classifier import ClusterClassifier

    x_tr, y_tr = training_set.subset("train")
    x_va, y_va = training_set.subset("val")
    for name, y in (("train", y_tr), ("val", y_va)):
        if np.unique(y).size < 2:
            raise TrainingSetError(
                f"the {name} split holds {int(np.sum(y == 1))} clusters and "
                f"{int(np.sum(y == 0))} non-clusters: it needs both (more tiles, other splits)")
    if classifier is None:
        classifier = ClusterClassifier(
            architecture, input_shape=tuple(x_tr.shape[1:]), bands=x_tr.bands,
            normalization=normalization, seed=seed)
    kw = {"progress": progress}
    fit_seed = classifier.seed if seed is None else seed
    classifier.fit(x_tr, y_tr, validation=(x_va, y_va), epochs=epochs, batch_size=batch_size,
                   early_stopping=patience, seed=fit_seed, **kw)
    info = {"n_train": [int(np.sum(y_tr == 1)), int(np.sum(y_tr == 0))],
            "n_val": [int(np.sum(y_va == 1)), int(np.sum(y_va == 0))], "n_hard": 0}
    if hard_epochs:
        w = hard_example_weights(y_tr, classifier.predict_proba(x_tr), factor=hard_factor)
        info["n_hard"] = int(np.sum(w > 1))
        idx = resample(int(1.5 * y_tr.size), w, seed=fit_seed)
        classifier.fit(x_tr[idx], y_tr[idx], validation=(x_va, y_va), epochs=hard_epochs,
                       batch_size=batch_size, early_stopping=patience,
                       seed=None if fit_seed is None else fit_seed + 1, **kw)
    info["calibration"] = classifier.calibrate(x_va, y_va, base_rate=base_rate)
    classifier.select_threshold(x_va, y_va, metric=metric, base_rate=base_rate)
    x_te, y_te = training_set.subset("test")
    if np.unique(y_te).size == 2:
        info["test"] = classifier.evaluate(x_te, y_te)
    return classifier, info
