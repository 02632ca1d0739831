"""
Inspectors' scores: combining two inspectors, their agreement, and the
score files the inspection page exports.

Each inspector scores a candidate 2 (cluster), 1 (possible cluster) or 0
(not a cluster); as in Zhang et al. (2025) a candidate is kept where the sum
of the two scores is 3 or 4.  `combine_scores` makes the ``Score`` column
from two score lists, `cohen_kappa` measures how well two inspectors agree,
`read_scores` / `write_scores` read and write one inspector's score file
(the ECSV file the page of `~m31clusters.inspection.write_inspection_page`
exports) and `combine_inspections` puts two such files into the catalogue.
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import MaskedColumn, Table

from ..exceptions import M31ClustersError
from ..utils._io import atomic_path, check_overwrite

__all__ = [
    "INSPECTION_SCORES",
    "SCORE_FILE_FORMAT",
    "InspectionResult",
    "ScoreFileError",
    "catalog_identity",
    "cohen_kappa",
    "combine_inspections",
    "combine_scores",
    "read_scores",
    "score_file_name",
    "write_scores",
]

#: Allowed scores of one inspector: 0 = not a cluster, 1 = possible cluster, 2 = cluster.
INSPECTION_SCORES = (0, 1, 2)

#: Value of the ``format`` keyword in the header of a score file.
SCORE_FILE_FORMAT = "m31clusters-inspection-scores-1"

_INSPECTOR_RE = re.compile(r"^[^\W_](?:[\w .'-]{0,62}[\w.])?$")



def _as_scores(values, name):
    """One inspector's scores as (int array, mask), validated."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of scores, got a string {values!r}")
    if np.ndim(values) != 1:
        raise ValueError(f"{name} must be 1-D, got shape {np.shape(values)}")
    arr = np.ma.asarray(values)
    mask = np.ma.getmaskarray(arr).copy()
    data = raw = np.ma.getdata(arr)
    if data.dtype.kind == "O":
        mask |= np.array([v is None or v is np.ma.masked for v in data], dtype=bool)
        data = np.where(mask, 0, data)
        try:
            data = data.astype(float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold numbers (0, 1, 2), got {values!r}") from exc
    elif data.dtype.kind == "b" or data.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold integer scores 0, 1 or 2, got dtype {data.dtype}"
        )
    data = data.astype(float)
    mask |= ~np.isfinite(data)
    good = np.where(mask, 0.0, data)
    bad = ~mask & ~np.isin(good, INSPECTION_SCORES)
    if np.any(bad):
        idx = np.flatnonzero(bad)
        first = raw[idx[0]]
        first = first.item() if hasattr(first, "item") else first
        raise ValueError(
            f"{name} must be 0 (not a cluster), 1 (possible) or 2 (cluster); "
            f"{idx.size} value(s) are not, first {first!r} at index {idx[0]}"
        )
    return good.astype(np.int64), mask


def combine_scores(score_a, score_b, keep=(3, 4)):
    """
    Combine two inspectors' scores into the ``Score`` column and the kept mask.

    Each inspector scores a candidate 2 (cluster), 1 (possible cluster) or
    0 (not a cluster).  ``Score`` is the sum, 0 to 4; as in Zhang et al.
    (2025) a candidate is kept where the sum is 3 or 4 (at least one
    inspector sure and the other one at least unsure).

    Parameters
    ----------
    score_a, score_b : array-like
        The two inspectors' scores, same length, values 0, 1 or 2
        (integers, or floats with integral values).  Masked, NaN or None
        entries mean "not inspected": the ``Score`` is then masked and the
        candidate is not kept.
    keep : int or sequence of int
        Score sums that are kept (default ``(3, 4)``), each 0 to 4.

    Returns
    -------
    score : `~astropy.table.MaskedColumn`
        Column ``Score`` (int64), masked where either score is missing.
    kept : `numpy.ndarray` of bool
        True for the kept candidates.

    Raises
    ------
    ValueError
        If a score is not 0, 1 or 2, the inputs are not 1-D or have
        different lengths, or *keep* holds a value outside 0 to 4.
    TypeError
        If the scores are not numbers (e.g. booleans or strings) or *keep*
        is not integers.

    Examples
    --------
    >>> from m31clusters.inspection import combine_scores
    >>> score, kept = combine_scores([2, 2, 1, 1, 0, 2], [2, 1, 2, 1, 2, None])
    >>> score.tolist()
    [4, 3, 3, 2, 2, None]
    >>> kept
    array([ True,  True,  True, False, False, False])
    """
    a, mask_a = _as_scores(score_a, "score_a")
    b, mask_b = _as_scores(score_b, "score_b")
    if a.size != b.size:
        raise ValueError(
            f"score_a and score_b must have the same length, got {a.size} and {b.size}"
        )
    keep = _check_keep(keep)
    mask = mask_a | mask_b
    total = np.where(mask, 0, a + b)
    kept = ~mask & np.isin(total, keep)
    score = MaskedColumn(
        total, name="Score", mask=mask, dtype=np.int64,
        description="Sum of the two visual-inspection scores "
        "(each 2 = cluster, 1 = possible cluster, 0 = not a cluster)",
    )
    return score, kept


def _check_keep(keep):
    values = np.atleast_1d(np.asarray(keep))
    if values.size == 0:
        raise ValueError("keep must hold at least one score sum (e.g. keep=(3, 4))")
    if values.dtype.kind not in "iu":
        raise TypeError(f"keep must be integers between 0 and 4, got {keep!r}")
    if np.any((values < 0) | (values > 4)):
        raise ValueError(f"keep values must be between 0 and 4 (sums of two 0-2 scores), "
                         f"got {keep!r}")
    return values


class ScoreFileError(M31ClustersError, ValueError):
    """A score file that is not a complete export for this catalogue."""


# --------------------------------------------------------------------------- agreement


def cohen_kappa(score_a, score_b, *, weights=None):
    """
    Cohen's kappa: the agreement of two inspectors beyond chance.

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed and
    ``p_e`` the chance agreement from the two inspectors' own score
    frequencies (Cohen 1960).  With *weights* the scores are taken as
    ordered, and a 0 against 2 disagreement counts more than a 0 against 1
    (Cohen 1968): ``kappa_w = 1 - sum(w O) / sum(w E)`` with weights
    ``|i - j|`` (``"linear"``) or ``(i - j)**2`` (``"quadratic"``).

    Parameters
    ----------
    score_a, score_b : array-like
        The two inspectors' 0/1/2 scores of the same candidates; pairs with
        a missing (masked, NaN, None) score are left out.
    weights : {None, "linear", "quadratic"}
        Unweighted (default) or weighted kappa.

    Returns
    -------
    float
        1 for perfect agreement, 0 for agreement at chance level, negative
        below; NaN when no candidate was scored by both.  When both
        inspectors gave every candidate the same single score the chance
        agreement is 1 and kappa is defined as 1.

    Raises
    ------
    ValueError, TypeError
        For scores other than 0, 1, 2 (as `combine_scores`), lengths that
        differ, or unknown *weights*.

    Examples
    --------
    >>> from m31clusters.inspection import cohen_kappa
    >>> a = [2, 2, 2, 1, 0, 0, 2, 1]
    >>> b = [2, 2, 1, 1, 0, 1, 2, 0]
    >>> round(cohen_kappa(a, b), 3), round(cohen_kappa(a, b, weights="linear"), 3)
    (0.429, 0.571)
    """
    confusion = _confusion(score_a, score_b)
    return _kappa(confusion, weights)


def _confusion(score_a, score_b):
    a, mask_a = _as_scores(score_a, "score_a")
    b, mask_b = _as_scores(score_b, "score_b")
    if a.size != b.size:
        raise ValueError(
            f"score_a and score_b must have the same length, got {a.size} and {b.size}"
        )
    both = ~(mask_a | mask_b)
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (a[both], b[both]), 1)
    return confusion


def _kappa(confusion, weights):
    k = np.arange(3)
    if weights is None:
        w = (k[:, None] != k[None, :]).astype(float)
    elif weights == "linear":
        w = np.abs(k[:, None] - k[None, :]).astype(float)
    elif weights == "quadratic":
        w = ((k[:, None] - k[None, :]) ** 2).astype(float)
    else:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    n = confusion.sum()
    if n == 0:
        return math.nan
    observed = confusion / n
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    disagree_expected = float((w * expected).sum())
    if disagree_expected == 0:  # both gave one and the same score to everything
        return 1.0
    return 1.0 - float((w * observed).sum()) / disagree_expected


# --------------------------------------------------------------------------- score files


def catalog_identity(catalog, *, id_column="Seq"):
    """
    Identity of a candidate catalogue: a digest of its ids and where it lies.

    The page stores scores in the browser under this identity (and the
    inspector's name), and every score file records it, so that scores
    made for one catalogue are never imported into another.  It is made of
    the set of ids and, when the catalogue has positions, their mean
    direction rounded to 0.001 deg: two searches that both number their
    candidates 1 to N get different identities, while the row order, added
    columns (e.g. ``Score``) and the rounding of a CDS round trip do not
    change it.

    Parameters
    ----------
    catalog : `~astropy.table.Table` or sequence
        The catalogue (ids from *id_column*, positions if it has any), or
        just its ids.
    id_column : str
        The id column of a table.

    Returns
    -------
    str
        16 hexadecimal digits.

    Raises
    ------
    KeyError
        If a table has no *id_column*.
    ValueError
        If an id is masked or repeated.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from m31clusters.inspection import catalog_identity
    >>> catalog_identity([1, 2, 3]) == catalog_identity([3, 1, 2])
    True
    >>> table = Table({"Seq": [3, 1, 2], "Conf": [0.9, 0.8, 0.7]})  # no positions
    >>> catalog_identity(table) == catalog_identity([1, 2, 3])
    True
    """
    centre = None
    if isinstance(catalog, Table):
        keys = _catalog_keys(catalog, id_column)
        centre = _mean_direction(catalog)
    else:
        keys = _id_strings(catalog, "ids")
    text = "\n".join(sorted(keys)) + ("" if centre is None else "\n@" + centre)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _mean_direction(table):
    """Mean direction of a table's positions as 'ra dec' (deg, 3 decimals), or None."""
    from ..utils._tables import table_skycoord

    try:
        coords = table_skycoord(table)
    except (KeyError, ValueError):
        return None
    if coords.size == 0:
        return None
    xyz = coords.icrs.cartesian.xyz.value.reshape(3, -1).mean(axis=1)
    ra = np.degrees(np.arctan2(xyz[1], xyz[0])) % 360.0
    dec = np.degrees(np.arctan2(xyz[2], np.hypot(xyz[0], xyz[1])))
    return f"{ra:.3f} {dec:+.3f}"


def _id_strings(ids, name):
    col = np.ma.asarray(ids) if not isinstance(ids, MaskedColumn) else ids
    mask = np.ma.getmaskarray(col)
    if np.any(mask):
        raise ValueError(f"{name}: id at row {int(np.flatnonzero(mask)[0])} is masked")
    data = np.ma.getdata(col)
    if data.size == 0:
        return []
    if data.dtype.kind == "f":
        raise ValueError(f"{name}: ids must be integers or strings, got dtype {data.dtype}")
    keys = [str(v).strip() for v in data.tolist()]
    seen = {}
    for row, key in enumerate(keys):
        if key in seen:
            raise ValueError(f"{name}: id {key!r} repeats (rows {seen[key]} and {row})")
        seen[key] = row
    return keys


def _check_inspector(inspector):
    if not isinstance(inspector, str) or not _INSPECTOR_RE.match(inspector):
        raise ValueError(
            f"inspector must be a name of letters, digits, spaces, '.', \"'\", '-' or '_' "
            f"(1-64 characters, starting with a letter or digit), got {inspector!r}"
        )
    return inspector


def score_file_name(inspector):
    """
    The name of an inspector's score file: ``scores_<inspector>.ecsv``.

    Spaces become underscores, so ``"Ann Lee"`` gives ``scores_Ann_Lee.ecsv``
    (the page's download gets this name too).

    Examples
    --------
    >>> from m31clusters.inspection import score_file_name
    >>> score_file_name("Ann Lee")
    'scores_Ann_Lee.ecsv'
    """
    _check_inspector(inspector)
    return "scores_" + re.sub(r"[^\w.-]", "_", inspector) + ".ecsv"


def write_scores(path, ids, scores, *, inspector, catalog_id, n_candidates, times=None,
                 overwrite=False):
    """
    Write one inspector's scores as a score file (the page's export format).

    An ECSV table with columns ``id, score, inspector, time`` and the
    header keywords ``format`` (`SCORE_FILE_FORMAT`), ``catalog``
    (`catalog_identity`), ``inspector``, ``n_candidates`` and ``n_scored``
    (which lets `read_scores` recognise a truncated file).  The page's
    export button writes the same format; this writer is for scores made
    elsewhere (e.g. a spreadsheet) and for tests.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    ids : sequence
        Ids of the scored candidates.
    scores : sequence of int
        Their scores, 0, 1 or 2.
    inspector : str
        The inspector's name.
    catalog_id : str
        `catalog_identity` of the catalogue (of the table, with its
        positions, not of its id column alone).
    n_candidates : int
        Number of candidates in the catalogue.
    times : sequence of str, optional
        ISO 8601 times of the scores (default: now, UTC).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    `~pathlib.Path`

    Raises
    ------
    ValueError
        For a score other than 0, 1, 2, a repeated id or a bad inspector name.
    FileExistsError
        If *path* exists and *overwrite* is False.

    Examples
    --------
    >>> import os, tempfile
    >>> from m31clusters.inspection import catalog_identity, read_scores, write_scores
    >>> ids = [1, 2, 3]
    >>> path = write_scores(os.path.join(tempfile.mkdtemp(), "scores_A.ecsv"), ids, [2, 0, 1],
    ...                     inspector="A", catalog_id=catalog_identity(ids), n_candidates=3)
    >>> read_scores(path)["score"].tolist()
    [2, 0, 1]
    """
    from astropy.time import Time

    path = check_overwrite(path, overwrite)
    _check_inspector(inspector)
    keys = _id_strings(ids, "ids")
    values, mask = _as_scores(scores, "scores")
    if values.size != len(keys):
        raise ValueError(f"scores has {values.size} entries for {len(keys)} ids")
    if np.any(mask):
        raise ValueError(f"scores: row {int(np.flatnonzero(mask)[0])} is missing; "
                         "leave unscored candidates out")
    if times is None:
        now = Time.now().isot + "Z"
        times = [now] * len(keys)
    if len(times) != len(keys):
        raise ValueError(f"times has {len(times)} entries for {len(keys)} ids")
    id_values = np.asarray(ids)
    table = Table({
        "id": id_values if id_values.dtype.kind in "iu" else np.asarray(keys, dtype=str),
        "score": values,
        "inspector": np.full(len(keys), inspector) if keys else np.zeros(0, dtype="U1"),
        "time": np.asarray(list(times), dtype=str) if keys else np.zeros(0, dtype="U1"),
    })
    table.meta.update({"format": SCORE_FILE_FORMAT, "catalog": str(catalog_id),
                       "inspector": inspector, "n_candidates": int(n_candidates),
                       "n_scored": len(keys)})
    with atomic_path(path, overwrite=overwrite) as tmp:
        table.write(tmp, format="ascii.ecsv", delimiter=",", overwrite=True)
    return path


def read_scores(path, catalog=None, *, id_column="Seq"):
    """
    Read one inspector's score file, checking that it is complete and valid.

    Parameters
    ----------
    path : str or path-like
        A score file exported by the inspection page (or `write_scores`).
    catalog : `~astropy.table.Table`, optional
        The catalogue the scores must belong to: its `catalog_identity`
        must be the file's and every id must be one of its rows.
    id_column : str
        The id column of *catalog*.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``id``, ``score`` (int), ``inspector``, ``time``; the file's
        header keywords in ``meta``.

    Raises
    ------
    FileNotFoundError
        If *path* does not exist.
    ScoreFileError
        Naming the file (and row): not a score file, a truncated file (fewer
        rows than its ``n_scored``, or a cut line), a score other than
        0, 1, 2, a repeated id, rows of another inspector, or a file made
        for another catalogue (other identity, or ids not in *catalog*).

    Examples
    --------
    See `write_scores`.
    """
    from astropy.io.ascii import InconsistentTableError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file {str(path)!r} does not exist")
    where = f"score file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScoreFileError(f"{where} is not UTF-8 text ({exc})") from None
    if not text.startswith("# %ECSV"):
        raise ScoreFileError(f"{where} is not an ECSV score file (no '# %ECSV' header)")
    if not text.endswith("\n"):
        raise ScoreFileError(f"{where} is truncated: its last line is cut off")
    try:
        table = Table.read(text, format="ascii.ecsv")
    except (InconsistentTableError, ValueError, TypeError, KeyError) as exc:
        raise ScoreFileError(f"{where} cannot be read as ECSV (truncated or edited?): "
                             f"{exc}") from None
    meta = table.meta
    if meta.get("format") != SCORE_FILE_FORMAT:
        raise ScoreFileError(f"{where} is not a score file (format {meta.get('format')!r}, "
                             f"expected {SCORE_FILE_FORMAT!r})")
    for key in ("catalog", "inspector", "n_candidates", "n_scored"):
        if key not in meta:
            raise ScoreFileError(f"{where} lacks the header keyword {key!r}")
    missing = [c for c in ("id", "score", "inspector", "time") if c not in table.colnames]
    if missing:
        raise ScoreFileError(f"{where} lacks the column(s) {missing}")
    if len(table) != meta["n_scored"]:
        raise ScoreFileError(f"{where} is truncated: {len(table)} rows, its header says "
                             f"{meta['n_scored']}")
    score = np.ma.asarray(table["score"])
    bad = np.ma.getmaskarray(score) | ~np.isin(np.ma.getdata(score), INSPECTION_SCORES)
    if score.dtype.kind not in "iu" or np.any(bad):
        row = int(np.flatnonzero(bad)[0]) if np.any(bad) else 0
        value = table["score"][row]
        value = value.item() if hasattr(value, "item") else value
        raise ScoreFileError(f"{where}, row {row + 1} (id {table['id'][row]}): score "
                             f"{value!r} is not 0, 1 or 2")
    others = np.flatnonzero(np.asarray(table["inspector"], dtype=str) != meta["inspector"])
    if others.size:
        row = int(others[0])
        raise ScoreFileError(f"{where}, row {row + 1}: inspector {table['inspector'][row]!r} "
                             f"in a file of {meta['inspector']!r}")
    try:
        keys = _id_strings(table["id"], where)
    except ValueError as exc:
        raise ScoreFileError(str(exc)) from None
    if catalog is not None:
        cat_keys = _catalog_keys(catalog, id_column)
        identity = catalog_identity(catalog, id_column=id_column)
        if meta["catalog"] != identity:
            raise ScoreFileError(
                f"{where} was made for another catalogue (identity {meta['catalog']}, "
                f"{meta['n_candidates']} candidates); this one is {identity} with "
                f"{len(cat_keys)} candidates")
        index = set(cat_keys)
        alien = [k for k in keys if k not in index]
        if alien:
            raise ScoreFileError(f"{where}: {len(alien)} id(s) are not in the catalogue's "
                                 f"{id_column!r} column, first {alien[0]!r}")
    table["score"] = np.asarray(score, dtype=np.int64)
    return table


def _catalog_keys(catalog, id_column):
    if id_column not in catalog.colnames:
        raise KeyError(f"the catalogue has no id column {id_column!r} "
                       f"(columns {catalog.colnames})")
    return _id_strings(catalog[id_column], f"catalogue column {id_column!r}")


# --------------------------------------------------------------------------- combining files


@dataclass
class InspectionResult:
    """
    Two inspectors' scores combined into a catalogue (`combine_inspections`).

    Attributes
    ----------
    catalog : `~astropy.table.Table`
        A copy of the catalogue with its ``Score`` column set (masked where
        a candidate was not scored by both inspectors).
    kept : `numpy.ndarray` of bool
        The candidates kept (``Score`` in *keep*).
    inspectors : tuple of str
        The two inspectors, in the order of the files.
    keep : tuple of int
        The kept score sums.
    confusion : `numpy.ndarray`
        3 x 3 counts: rows the first inspector's score, columns the second's.
    kappa, weighted_kappa : float
        Cohen's kappa, unweighted and with linear weights.
    n_scored : tuple of int
        Candidates scored by each inspector.
    disagreements : `~astropy.table.Table`
        ``id``, the two scores and ``Score`` of every candidate the two
        scored differently.
    """

    catalog: Table
    kept: np.ndarray
    inspectors: tuple
    keep: tuple
    confusion: np.ndarray
    kappa: float
    weighted_kappa: float
    n_scored: tuple
    disagreements: Table = field(repr=False)

    @property
    def agreement(self):
        """Fraction of the candidates scored by both that got the same score."""
        n = self.confusion.sum()
        return float(np.trace(self.confusion) / n) if n else math.nan

    @property
    def final(self):
        """The kept rows of `catalog` (the published catalogue)."""
        return self.catalog[self.kept]

    def summary(self, max_disagreements=50):
        """
        A plain-text report: counts, agreement, kappa, confusion matrix, disagreements.

        Parameters
        ----------
        max_disagreements : int
            List at most this many disagreements (all counted).

        Returns
        -------
        str
        """
        a, b = self.inspectors
        n = len(self.catalog)
        both = int(self.confusion.sum())
        lines = [
            f"{n} candidates; scored by {a}: {self.n_scored[0]}, by {b}: {self.n_scored[1]}, "
            f"by both: {both}",
            f"kept (Score in {list(self.keep)}): {int(self.kept.sum())}",
            f"agreement: {self.agreement:.3f}; Cohen's kappa {self.kappa:.3f}, "
            f"linearly weighted {self.weighted_kappa:.3f}",
            f"confusion (rows {a} 0/1/2, columns {b} 0/1/2):",
        ]
        lines += ["  " + " ".join(f"{v:6d}" for v in row) for row in self.confusion]
        d = self.disagreements
        lines.append(f"disagreements: {len(d)}")
        if len(d):
            lines.append(f"  {'id':>10s} {a:>10s} {b:>10s} Score")
            for row in d[:max_disagreements]:
                lines.append(f"  {str(row['id']):>10s} {row[a]:>10d} {row[b]:>10d} "
                             f"{row['Score']:5d}")
            if len(d) > max_disagreements:
                lines.append(f"  ... and {len(d) - max_disagreements} more")
        return "\n".join(lines)

    def write_cds(self, readme_path, data_path=None, *, title, authors, overwrite=False,
                  **kwargs):
        """
        Write the kept candidates as the final CDS catalogue.

        A call of `~m31clusters.catalog.Catalog.write_cds` on `final`; all
        its options are accepted.

        Returns
        -------
        readme_path, data_path : `~pathlib.Path`
        """
        from ..catalog import Catalog

        final = self.final
        if not isinstance(final, Catalog):
            final = Catalog(final, copy=False)
        return final.write_cds(readme_path, data_path, title=title, authors=authors,
                               overwrite=overwrite, **kwargs)


def combine_inspections(catalog, score_files, *, keep=(3, 4), id_column="Seq"):
    """
    Combine two inspectors' score files into the catalogue's ``Score`` column.

    Both files are read and checked (`read_scores`) before anything is
    combined: the catalogue passed in is never modified, and any problem
    raises before a result exists.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        The candidate catalogue the page was made for.
    score_files : sequence of two paths
        The two inspectors' exported score files.
    keep : int or sequence of int
        Kept score sums (default ``(3, 4)``, the paper's rule).
    id_column : str
        The catalogue's id column.

    Returns
    -------
    `InspectionResult`

    Raises
    ------
    ValueError
        If not exactly two files are given.
    ScoreFileError
        For a bad file (see `read_scores`), or the same inspector twice.
    KeyError
        If the catalogue has no *id_column*.

    Examples
    --------
    >>> import os, tempfile
    >>> from astropy.table import Table
    >>> from m31clusters.inspection import catalog_identity, combine_inspections, write_scores
    >>> cat = Table({"Seq": [1, 2, 3, 4]})
    >>> d, ident = tempfile.mkdtemp(), catalog_identity(cat)
    >>> a = write_scores(os.path.join(d, "a.ecsv"), [1, 2, 3, 4], [2, 2, 0, 1],
    ...                  inspector="Ann", catalog_id=ident, n_candidates=4)
    >>> b = write_scores(os.path.join(d, "b.ecsv"), [1, 2, 3, 4], [2, 1, 0, 2],
    ...                  inspector="Bob", catalog_id=ident, n_candidates=4)
    >>> result = combine_inspections(cat, [a, b])
    >>> result.catalog["Score"].tolist(), result.kept.tolist()
    ([4, 3, 0, 3], [True, True, False, True])
    >>> result.disagreements["id"].tolist()
    [2, 4]
    """
    files = list(score_files) if not isinstance(score_files, (str, Path)) else [score_files]
    if len(files) != 2:
        raise ValueError(f"give exactly two score files (one per inspector), got {len(files)}")
    keep = tuple(int(k) for k in _check_keep(keep))
    keys = _catalog_keys(catalog, id_column)
    tables = [read_scores(f, catalog, id_column=id_column) for f in files]
    inspectors = tuple(t.meta["inspector"] for t in tables)
    if inspectors[0] == inspectors[1]:
        raise ScoreFileError(
            f"score files {str(files[0])!r} and {str(files[1])!r} are both by inspector "
            f"{inspectors[0]!r}; combine two different inspectors")
    row_of = {k: r for r, k in enumerate(keys)}
    columns = []
    for t in tables:
        values = np.ma.masked_all(len(keys), dtype=np.int64)
        rows = [row_of[k] for k in _id_strings(t["id"], "id")]
        values[rows] = np.asarray(t["score"])
        columns.append(values)
    score, kept = combine_scores(columns[0], columns[1], keep=keep)
    confusion = _confusion(columns[0], columns[1])
    out = catalog.copy()
    if "Score" in out.colnames:
        score.info.description = out["Score"].info.description or score.info.description
        out.replace_column("Score", score)
    else:
        out["Score"] = score
    both = ~(np.ma.getmaskarray(columns[0]) | np.ma.getmaskarray(columns[1]))
    differ = np.flatnonzero(both & (np.ma.getdata(columns[0]) != np.ma.getdata(columns[1])))
    disagreements = Table({
        "id": np.asarray(catalog[id_column])[differ],
        inspectors[0]: np.ma.getdata(columns[0])[differ],
        inspectors[1]: np.ma.getdata(columns[1])[differ],
        "Score": np.ma.getdata(score)[differ],
    })
    return InspectionResult(
        catalog=out, kept=kept, inspectors=inspectors, keep=keep, confusion=confusion,
        kappa=_kappa(confusion, None), weighted_kappa=_kappa(confusion, "linear"),
        n_scored=tuple(len(t) for t in tables), disagreements=disagreements,
    )
