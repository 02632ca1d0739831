"""
Catalogue-level evaluation: how right is a written candidate list?

The classifier's metrics on balanced stamps say little about the catalogue
the search writes, where clusters are a few in ten thousand sources.
`evaluate_catalog` compares the candidates with the truth of a simulated
field or with a reference list of real clusters (PHAT, RBC, Caldwell) and
reports

* purity (the fraction of candidates that are clusters) and completeness
  (the fraction of clusters brighter than the magnitude limit that are in
  the list), overall and binned by magnitude, projected radius, crowding
  and cluster size;
* what the false positives are: ``star``, ``blend`` (several stars within
  the match radius), ``galaxy``, ``fragment`` (a further piece of a cluster
  or galaxy already matched, or a detection inside its light but off its
  centre), ``artefact`` (nothing bright there); against a real reference
  list, which has no truth for the other sources, ``unmatched``;
* the inspection budget: candidates to inspect per true cluster found.

`plot_evaluation` draws it.
"""

import dataclasses

import numpy as np
from astropy import units as u
from astropy.table import Table

from .utils._sphere import unit_vectors
from .utils._tables import table_skycoord
from .utils._validation import as_quantity

__all__ = [
    "CatalogEvaluation",
    "FALSE_POSITIVE_TYPES",
    "evaluate_catalog",
    "match_one_to_one",
    "plot_evaluation",
]

#: Kinds of false positive `evaluate_catalog` tells apart.
FALSE_POSITIVE_TYPES = ("star", "blend", "galaxy", "fragment", "artefact", "unmatched")

_DEFAULT_BINS = {
    "mag": (13.0, 17.0, 18.0, 19.0, 20.0, 21.0),
    "Rproj": (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, np.inf),  # kpc
    "size": (0.0, 0.3, 0.6, 1.2, 2.5, np.inf),  # arcsec
}


@dataclasses.dataclass
class CatalogEvaluation:
    """
    Result of `evaluate_catalog`.

    Attributes
    ----------
    summary : `~astropy.table.Table`
        One row per bin: ``quantity`` (``"all"``, ``"mag"``, ``"Rproj"``,
        ``"crowding"``, ``"size"``), ``lo``, ``hi`` (bin edges in the units
        of ``summary.meta["units"]``), ``n_true`` (clusters brighter than the
        limit in the bin), ``n_recovered``, ``completeness``,
        ``n_candidates``, ``n_correct``, ``purity``; NaN where a ratio has
        no denominator.  Magnitude, radius, crowding and size bins use each
        cluster's true values for completeness and each candidate's own
        values for purity.
    candidates : `~astropy.table.Table`
        The candidates with ``match_type`` (``"cluster"`` or a false-positive
        type), ``match_index`` (row of the matched true object, -1 if none)
        and ``match_sep`` (arcsec).
    clusters : `~astropy.table.Table`
        The true clusters brighter than the limit with ``recovered`` and
        ``candidate`` (row of the matching candidate, -1 if none).
    false_positives : dict
        Number of false positives of each type.
    inspection_budget : float
        Candidates per true cluster found (``n_candidates / n_correct``,
        ``1 / purity``).
    meta : dict
        Parameters used.
    """

    summary: Table
    candidates: Table
    clusters: Table
    false_positives: dict
    inspection_budget: float
    meta: dict

    @property
    def purity(self):
        """Overall purity."""
        return float(self.summary["purity"][0])

    @property
    def completeness(self):
        """Overall completeness (clusters brighter than the limit)."""
        return float(self.summary["completeness"][0])

    def plot(self, fig=None):
        """Draw the evaluation with `plot_evaluation`; returns the figure."""
        return plot_evaluation(self, fig=fig)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def _xyz(coords):
    c = coords.icrs
    return unit_vectors(np.atleast_1d(c.ra.rad), np.atleast_1d(c.dec.rad))


def _pairs_within(a, b, radius_arcsec):
    """All (i, j, sep_arcsec) with sep(a[i], b[j]) <= radius (KD-tree on unit vectors)."""
    from scipy.spatial import cKDTree

    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    va, vb = _xyz(a), _xyz(b)
    chord = np.nextafter(2 * np.sin(np.radians(radius_arcsec / 3600) / 2), np.inf)
    hits = cKDTree(vb).query_ball_point(va, chord)
    i = np.repeat(np.arange(len(va)), [len(h) for h in hits])
    j = np.fromiter((k for h in hits for k in h), dtype=np.int64, count=i.size)
    if i.size == 0:
        return i, j, np.zeros(0)
    d = np.linalg.norm(va[i] - vb[j], axis=1)
    sep = np.degrees(2 * np.arcsin(np.clip(d / 2, 0, 1))) * 3600
    ok = sep <= radius_arcsec
    return i[ok], j[ok], sep[ok]


def match_one_to_one(positions, reference, radius):
    """
    Greedy one-to-one match of two position lists.

    Pairs closer than *radius* are taken in order of increasing separation;
    a position already taken on either side is skipped, so each position is
    matched at most once (a second candidate on one cluster stays
    unmatched).

    Parameters
    ----------
    positions, reference : `~astropy.coordinates.SkyCoord`
    radius : `~astropy.units.Quantity`
        Largest separation of a match (angle).

    Returns
    -------
    index : `~numpy.ndarray` of int
        For each of *positions*, the row of *reference* it is matched to
        (-1: none).
    sep : `~numpy.ndarray`
        The separations in arcsec (NaN: none).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from m31clusters.evaluation import match_one_to_one
    >>> ref = SkyCoord([10.0], [41.0], unit="deg")
    >>> cand = SkyCoord([10.0, 10.0001], [41.0, 41.0], unit="deg")
    >>> idx, sep = match_one_to_one(cand, ref, 1 * u.arcsec)
    >>> idx.tolist()
    [0, -1]
    """
    r = as_quantity(radius, u.arcsec, "radius").to_value(u.arcsec)
    i, j, sep = _pairs_within(positions, reference, r)
    index = np.full(len(positions), -1, dtype=np.int64)
    out_sep = np.full(len(positions), np.nan)
    taken = np.zeros(len(reference), dtype=bool)
    for k in np.lexsort((j, i, sep)):
        if index[i[k]] < 0 and not taken[j[k]]:
            index[i[k]] = j[k]
            out_sep[i[k]] = sep[k]
            taken[j[k]] = True
    return index, out_sep


def _column(table, names, what, required=True):
    for n in names:
        if n in table.colnames:
            return n
    if required:
        raise KeyError(f"{what}: none of the columns {list(names)} found "
                       f"(columns: {table.colnames})")
    return None


def _values(table, name, unit=None):
    col = table[name]
    v = np.ma.filled(np.ma.asarray(getattr(col, "value", col), dtype=float), np.nan)
    cu = getattr(col, "unit", None)
    if unit is not None and cu is not None and cu != u.dimensionless_unscaled:
        v = (v * u.Unit(cu)).to_value(unit)
    return np.asarray(v, dtype=float)


def _density(coords, others, radius_arcsec):
    """Surface density (per arcmin^2) of *others* within *radius* of each of *coords*."""
    i, _, _ = _pairs_within(coords, others, radius_arcsec)
    n = np.bincount(i, minlength=len(coords))
    return n / (np.pi * (radius_arcsec / 60.0) ** 2)


def _type_false_positives(fp, cand, cand_mag, truth, kinds, t_mag, t_size, claimed, r):
    """
    Type of each false-positive candidate against a simulated truth table.

    Only true objects that could dominate the candidate's light count (g
    less than 2.5 mag fainter than the candidate): an unclaimed galaxy
    within the match radius makes a ``galaxy``; otherwise stars within the
    match radius make a ``star`` (one) or a ``blend`` (two or more within
    1.5 mag of the candidate); otherwise a cluster or galaxy whose light
    reaches the candidate (within the match radius plus twice its
    half-light radius) makes a ``fragment``; otherwise two or more fainter
    stars within the radius make a ``blend``, and anything else is an
    ``artefact``.
    """
    n = fp.size
    types = np.full(n, "artefact", dtype="U9")
    tcoords = table_skycoord(truth)
    ext = np.isin(kinds, ("cluster", "galaxy"))
    reach = r + 2 * np.nanmax(np.where(ext, t_size, 0.0), initial=0.0)
    i, j, sep = _pairs_within(cand[fp], tcoords, reach)
    if i.size == 0:
        return types
    m = cand_mag[fp]
    m = np.where(np.isfinite(m), m, 99.0)[i]
    relevant = t_mag[j] < m + 2.5
    within = sep <= r
    done = np.zeros(n, dtype=bool)
    # 1. galaxies within the radius, nearest first, one candidate each
    taken = claimed.copy()
    gal = np.flatnonzero((kinds[j] == "galaxy") & relevant & within)
    for k in gal[np.argsort(sep[gal], kind="stable")]:
        if not done[i[k]] and not taken[j[k]]:
            types[i[k]] = "galaxy"
            done[i[k]] = taken[j[k]] = True
    # 2. stars within the radius
    star = (kinds[j] == "star") & within
    n_rel = np.bincount(i[star & relevant], minlength=n)
    n_close = np.bincount(i[star & (t_mag[j] < m + 1.5)], minlength=n)
    types[~done & (n_rel >= 1)] = "star"
    types[~done & (n_close >= 2)] = "blend"
    done |= n_rel >= 1
    # 3. inside the light of a cluster or galaxy
    inside = ext[j] & relevant & (sep <= r + 2 * np.nan_to_num(t_size[j]))
    frag = np.bincount(i[inside], minlength=n) > 0
    types[~done & frag] = "fragment"
    done |= frag
    # 4. several fainter stars
    n_faint = np.bincount(i[star & (t_mag[j] < m + 4.0)], minlength=n)
    types[~done & (n_faint >= 2)] = "blend"
    return types


def _bin_rows(name, edges, tv, t_rec, cv, c_ok):
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ts = (tv >= lo) & (tv < hi)
        cs = (cv >= lo) & (cv < hi)
        rows.append(_row(name, lo, hi, ts.sum(), (ts & t_rec).sum(), cs.sum(), (cs & c_ok).sum()))
    return rows


def _row(name, lo, hi, n_true, n_rec, n_cand, n_ok):
    comp = n_rec / n_true if n_true else np.nan
    pur = n_ok / n_cand if n_cand else np.nan
    return (name, float(lo), float(hi), int(n_true), int(n_rec), comp, int(n_cand), int(n_ok),
            pur)


# ----------------------------------------------------------------------------
# the evaluation
# ----------------------------------------------------------------------------


def evaluate_catalog(candidates, truth, *, radius=1 * u.arcsec, mag_limit=21.0,
                     mag_column=None, truth_mag_column=None, kind_column="kind",
                     cluster_kind="cluster", size_column=None, truth_size_column=None,
                     sources=None, crowding_radius=10 * u.arcsec, area=None, bins=None):
    """
    Purity, completeness, false-positive types and inspection budget of a candidate list.

    Candidates are matched one to one to the true clusters within *radius*
    (`match_one_to_one`; clusters of any magnitude count for purity, those
    brighter than *mag_limit* for completeness).  The other candidates are
    typed against the rest of a simulated truth table (see the module
    docstring); against a reference list without a *kind_column* they are
    ``"unmatched"``.

    Parameters
    ----------
    candidates : `~astropy.table.Table`
        The candidate catalogue (positions and a g magnitude, e.g. ``gmag``).
    truth : `~astropy.table.Table`
        A simulated field's truth table (every object with its ``kind``:
        ``star``, ``cluster``, ``galaxy``; only the rows with ``on_ccd`` true
        are used when the column exists) or a reference list of clusters
        (e.g. `m31clusters.datasets.load_phat_clusters`).
    radius : `~astropy.units.Quantity`
        Match radius (angle).
    mag_limit : float
        Completeness is over the true clusters with magnitude below this.
    mag_column, truth_mag_column : str, optional
        g magnitude columns (default ``gmag``, else ``g``).
    kind_column, cluster_kind : str
        Column of *truth* with the object kind and the value of clusters.
        Without that column every row of *truth* is a cluster.
    size_column : str, optional
        Candidate size column (e.g. ``FWHM``) for the purity by size.
    truth_size_column : str, optional
        True cluster size (default ``reff_arcsec``, else ``Reff``).
    sources : `~astropy.table.Table`, optional
        All detected sources, for the crowding (surface density of sources
        within *crowding_radius*); default: the truth table if it has a
        *kind_column*, else no crowding bins.
    crowding_radius : `~astropy.units.Quantity`
        Radius of the crowding count.
    area : callable or `regions.SkyRegion`, optional
        The area searched: true clusters outside it are not counted (e.g.
        `m31clusters.datasets.in_phat_footprint` or the searched fields).
    bins : dict, optional
        Bin edges replacing the defaults: ``"mag"`` (mag), ``"Rproj"`` (kpc),
        ``"crowding"`` (per arcmin^2; default: quartiles of the clusters),
        ``"size"`` (arcsec).

    Returns
    -------
    `CatalogEvaluation`

    Raises
    ------
    TypeError, astropy.units.UnitTypeError
        If *radius* or *crowding_radius* has no or wrong units.
    KeyError
        If a table has no positions or magnitudes.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from m31clusters.evaluation import evaluate_catalog
    >>> truth = Table({"coord": SkyCoord([10.0, 10.01], [41.0, 41.0], unit="deg"),
    ...                "g": [19.0, 20.0]})
    >>> cand = Table({"coord": SkyCoord([10.0, 10.02], [41.0, 41.0], unit="deg"),
    ...               "gmag": [19.1, 18.0]})
    >>> ev = evaluate_catalog(cand, truth)
    >>> ev.purity, ev.completeness, ev.false_positives["unmatched"], ev.inspection_budget
    (0.5, 0.5, 1, 2.0)
    """
    r = as_quantity(radius, u.arcsec, "radius").to_value(u.arcsec)
    rc = as_quantity(crowding_radius, u.arcsec, "crowding_radius").to_value(u.arcsec)
    edges = dict(_DEFAULT_BINS)
    if bins:
        edges.update(bins)
    if "on_ccd" in truth.colnames:
        truth = truth[np.asarray(truth["on_ccd"], dtype=bool)]
    has_kind = kind_column in truth.colnames
    kinds = np.asarray(truth[kind_column]).astype(str) if has_kind else None
    is_cl = kinds == cluster_kind if has_kind else np.ones(len(truth), dtype=bool)
    t_magcol = truth_mag_column or _column(truth, ("gmag", "g"), "truth magnitude")
    c_magcol = mag_column or _column(candidates, ("gmag", "g"), "candidate magnitude")
    t_sizecol = truth_size_column or _column(truth, ("reff_arcsec", "Reff"), "truth size",
                                             required=False)
    t_mag = _values(truth, t_magcol)
    t_size = _values(truth, t_sizecol, u.arcsec) if t_sizecol else np.full(len(truth), np.nan)
    c_mag = _values(candidates, c_magcol)
    c_size = _values(candidates, size_column, u.arcsec) if size_column else \
        np.full(len(candidates), np.nan)
    ccoords = table_skycoord(candidates) if len(candidates) else None
    tcoords = table_skycoord(truth)
    cl_rows = np.flatnonzero(is_cl)
    if area is not None and cl_rows.size:
        from .training import _footprint_mask

        cl_rows = cl_rows[_footprint_mask(area, tcoords[cl_rows], None)]

    # clusters of any magnitude validate candidates; count those brighter than the limit
    if ccoords is not None and cl_rows.size:
        idx, sep = match_one_to_one(ccoords, tcoords[cl_rows], radius)
    else:
        idx, sep = np.full(len(candidates), -1), np.full(len(candidates), np.nan)
    ok = idx >= 0
    match_index = np.where(ok, cl_rows[np.maximum(idx, 0)] if cl_rows.size else -1, -1)
    claimed = np.zeros(len(truth), dtype=bool)
    claimed[match_index[ok]] = True
    mtype = np.where(ok, "cluster", "unmatched").astype("U9")
    fp = np.flatnonzero(~ok)
    if has_kind and fp.size:
        mtype[fp] = _type_false_positives(fp, ccoords, c_mag, truth, kinds, t_mag, t_size,
                                          claimed, r)
    bright = cl_rows[t_mag[cl_rows] < mag_limit]
    recovered = claimed[bright]
    cand_of = np.full(len(truth), -1, dtype=np.int64)
    cand_of[match_index[ok]] = np.flatnonzero(ok)

    # binned quantities
    from .geometry import projected_radius

    t_r = projected_radius(tcoords[bright]).to_value(u.kpc) if bright.size else np.zeros(0)
    c_r = projected_radius(ccoords).to_value(u.kpc) if ccoords is not None else np.zeros(0)
    rows = [_row("all", -np.inf, np.inf, bright.size, recovered.sum(), len(candidates), ok.sum())]
    rows += _bin_rows("mag", edges["mag"], t_mag[bright], recovered, c_mag, ok)
    rows += _bin_rows("Rproj", edges["Rproj"], t_r, recovered, c_r, ok)
    dens_ref = sources if sources is not None else (truth if has_kind else None)
    if dens_ref is not None and bright.size:
        dcoords = table_skycoord(dens_ref)
        t_d = _density(tcoords[bright], dcoords, rc)
        c_d = _density(ccoords, dcoords, rc) if ccoords is not None else np.zeros(0)
        cedges = edges.get("crowding")
        if cedges is None:
            q = np.unique(np.quantile(t_d, [0.25, 0.5, 0.75]))
            cedges = np.concatenate([[0.0], q, [np.inf]])
        rows += _bin_rows("crowding", cedges, t_d, recovered, c_d, ok)
    if t_sizecol:
        rows += _bin_rows("size", edges["size"], t_size[bright], recovered, c_size, ok)
    summary = Table(rows=rows, names=("quantity", "lo", "hi", "n_true", "n_recovered",
                                      "completeness", "n_candidates", "n_correct", "purity"))
    summary.meta["units"] = {"mag": "mag", "Rproj": "kpc", "crowding": "arcmin-2",
                             "size": "arcsec"}
    counts = {t: int(np.sum(mtype == t)) for t in FALSE_POSITIVE_TYPES}
    n_ok = int(ok.sum())
    budget = len(candidates) / n_ok if n_ok else np.inf
    summary.meta["false_positives"] = counts
    summary.meta["inspection_budget"] = budget

    cand_out = Table(candidates, copy=True)
    cand_out["match_type"] = mtype
    cand_out["match_index"] = match_index
    cand_out["match_sep"] = sep * u.arcsec
    clusters = Table(truth[bright], copy=True)
    clusters["recovered"] = recovered
    clusters["candidate"] = cand_of[bright]
    meta = {"radius_arcsec": r, "mag_limit": mag_limit, "mag_column": c_magcol,
            "truth_mag_column": t_magcol, "truth_has_kinds": has_kind}
    return CatalogEvaluation(summary=summary, candidates=cand_out, clusters=clusters,
                             false_positives=counts, inspection_budget=budget, meta=meta)


def plot_evaluation(evaluation, fig=None):
    """
    Purity and completeness per bin, and the false positives by type.

    Parameters
    ----------
    evaluation : `CatalogEvaluation`
    fig : `matplotlib.figure.Figure`, optional
        Figure to draw in (a new one by default).

    Returns
    -------
    `matplotlib.figure.Figure`
        One panel per binned quantity and a bar chart of the false-positive
        types, with the overall purity, completeness and inspection budget
        in the title.
    """
    import matplotlib.pyplot as plt

    s = evaluation.summary
    names = [q for q in ("mag", "Rproj", "crowding", "size") if np.any(s["quantity"] == q)]
    if fig is None:
        fig = plt.figure(figsize=(3.2 * (len(names) + 1), 3.2))
    axes = fig.subplots(1, len(names) + 1, squeeze=False)[0]
    units = s.meta.get("units", {})
    for ax, q in zip(axes, names, strict=False):
        rows = s[s["quantity"] == q]
        lo, hi = np.asarray(rows["lo"]), np.asarray(rows["hi"])
        width = np.where(np.isfinite(hi), hi, lo + np.nanmax(np.diff(lo), initial=1.0)) - lo
        centre = lo + width / 2
        ax.step(centre, rows["completeness"], where="mid", label="completeness")
        ax.plot(centre, rows["completeness"], "o", color="C0")
        ax.step(centre, rows["purity"], where="mid", label="purity")
        ax.plot(centre, rows["purity"], "s", color="C1")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(f"{q} [{units.get(q, '')}]")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left", fontsize="small")
    ax = axes[-1]
    fps = {k: v for k, v in evaluation.false_positives.items() if v}
    ax.bar(list(fps) or ["none"], list(fps.values()) or [0], color="C3")
    ax.set_ylabel("false positives")
    ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"purity {evaluation.purity:.2f}, completeness {evaluation.completeness:.2f}, "
                 f"{evaluation.inspection_budget:.2f} candidates per cluster found")
    fig.tight_layout()
    return fig
