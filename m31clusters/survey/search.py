"""
The cluster search of Zhang et al. (2025), field by field and over many fields.

`search_field` runs the method on one PAndAS field: the sources of the
field (from its CASU catalogue ``m###p.ascd`` when there is one, which
already carries g and i magnitudes, else detected on the i stack and
measured in g and i), the magnitude and projected-radius cuts *before* any
expensive work, two-band stamps and the classifier only for the sources
that pass them, and the score threshold.  `search_fields` maps it over many
fields with `~m31clusters.survey.run_survey` (resumable, on Dask worker
processes started with ``spawn``, the model loaded once per worker), merges
the fields, removes the duplicates of overlapping fields, fills the
literature names and writes the CDS catalogue, a DS9 region file, a PNG
montage and a MOC of the area searched.  ``m31clusters search`` is its
command line.
"""

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack

from ..exceptions import ColumnError, NoDetectionsWarning, OffImageWarning
from ..fragments import merge_fragments
from ..utils._progress import progress_bar
from ..utils._validation import as_quantity
from ._run import iter_chunks, run_survey
from ._stacks import check_stacks, stack_field
from ._survey_run import _merge_field_tables

__all__ = ["FieldSearch", "SearchResult", "search_field", "search_fields", "find_fields",
           "write_products", "SEARCH_STAGES"]

#: Stages timed by `search_field` (seconds in ``FieldSearch.timings``); ``write`` is
#: timed by `search_fields`.
SEARCH_STAGES = ("read", "detect", "measure", "cut", "classify")

_MODELS = {}


@dataclass
class FieldSearch:
    """
    What `search_field` found in one field.

    Attributes
    ----------
    candidates : `~m31clusters.catalog.Catalog`
        Sources passing every cut and the score threshold: ``coord, gmag,
        e_gmag, imag, e_imag, PAndAS, Rproj, Conf, ccd``.
    sources : `~m31clusters.catalog.Catalog` or None
        With ``keep_sources=True``: every source of the field with its
        magnitudes, ``PAndAS``, ``Rproj``, ``ccd``, ``passed_cuts`` and
        ``Conf`` (masked where the source failed the cuts and was not
        classified).
    stamps : `~m31clusters.cutout.Cutout` or None
        With ``keep_sources=True``: the stamps of the candidates, in the
        order of *candidates*.
    footprints : list of `~numpy.ndarray`
        (4, 2) RA, Dec corners (deg) of each CCD searched.
    timings : dict
        Seconds per stage of `SEARCH_STAGES`.
    counts : dict
        ``sources`` (in the catalogue or detected), ``passed_cuts``
        (classified), ``candidates``, ``ccds`` (searched) and
        ``ccds_skipped`` (wholly beyond the radius cut).
    """

    candidates: object
    sources: object = None
    stamps: object = None
    footprints: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    """
    What `search_fields` produced.

    Attributes
    ----------
    catalog : `~m31clusters.catalog.Catalog`
        The merged, de-duplicated candidate catalogue (table-7 schema) that
        was written.
    run : `~m31clusters.survey.SurveyRun`
        The per-field run (``run.failed`` lists fields that failed).
    files : dict
        Paths written (``readme``, ``data``, ``regions``, ``montage``,
        ``moc``); empty when fields failed and nothing was published.
    moc : ``mocpy.MOC`` or None
        The area searched.
    timings : dict
        Seconds per stage summed over the fields computed by this call, and
        ``write``.
    counts : dict
        Per-stage counts summed over the fields computed by this call.
    """

    catalog: object
    run: object
    files: dict = field(default_factory=dict)
    moc: object = None
    timings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)


def _load_model(model):
    """A classifier: the object itself, or loaded once per process from its path."""
    from ..classifier import ClusterClassifier

    if isinstance(model, ClusterClassifier):
        return model
    if model is None:
        from ..demo import demo_model_path

        model = demo_model_path()
    path = Path(model)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _MODELS:
        _MODELS.clear()  # one model per worker process
        _MODELS[key] = ClusterClassifier.load(path)
    return _MODELS[key]


def _is_classifier(model):
    from ..classifier import ClusterClassifier

    return isinstance(model, ClusterClassifier)


def _fragment_radius(value):
    """The fragment-merging radius as a Quantity; refused unless >= 0 arcsec."""
    value = as_quantity(value, u.arcsec, "fragment_radius")
    if not value.to_value(u.arcsec) >= 0:
        raise ValueError(f"fragment_radius must be >= 0 arcsec, got {value}")
    return value


def _radius_limit(max_radius):
    """Angular radius (deg) of the projected-radius cut about M31's centre."""
    from ..geometry import M31_DISTANCE

    r = as_quantity(max_radius, u.kpc, "max_radius")
    return np.degrees(np.arctan((r / M31_DISTANCE).to_value(u.dimensionless_unscaled)))


def _ccd_beyond(pair, max_radius):
    """True when the whole CCD lies beyond *max_radius* (a margin of one CCD diagonal/10)."""
    from ..geometry import M31_CENTER

    ny, nx = pair.shape
    xs, ys = np.meshgrid(np.linspace(-0.5, nx - 0.5, 9), np.linspace(-0.5, ny - 0.5, 17))
    ra, dec = pair.wcs["i"].all_pix2world(xs.ravel(), ys.ravel(), 0)
    sep = SkyCoord(ra, dec, unit="deg").separation(M31_CENTER).deg
    step = np.hypot(*np.diff(pair.footprint[:3], axis=0).T).max() / 8
    return sep.min() - step > _radius_limit(max_radius)


def _near_footprint(ra, dec, footprint):
    """
    Which of the positions (deg) lie in a box around a CCD's corners (deg).

    The box holds the corners' range of RA (unwrapped about the first corner)
    and Dec, widened by a tenth of that range and 10 arcsec on each side: a
    CCD's edges are nearly straight on the sky, so every position on the CCD
    is inside it.  Near a pole (where RA ranges say nothing) every position is.
    """
    fra, fdec = footprint[:, 0], footprint[:, 1]
    dra_c = (fra - fra[0] + 180.0) % 360.0 - 180.0
    pad_dec = 0.1 * np.ptp(fdec) + 10 / 3600
    max_dec = np.max(np.abs(fdec)) + pad_dec
    if max_dec > 80:
        return np.ones(len(ra), dtype=bool)
    pad_ra = 0.1 * np.ptp(dra_c) + 10 / 3600 / np.cos(np.deg2rad(max_dec))
    dra = (ra - fra[0] + 180.0) % 360.0 - 180.0
    return ((dra > dra_c.min() - pad_ra) & (dra < dra_c.max() + pad_ra)
            & (dec > fdec.min() - pad_dec) & (dec < fdec.max() + pad_dec))


def _assign_ccds(ra, dec, pairs):
    """
    The CCD of each position (deg): the first of *pairs* whose i image holds it, else -1.

    Only the positions near a CCD's footprint are put through its WCS (the
    full distortion model), so a field's catalogue costs one pass per source
    rather than one per CCD and source.
    """
    ccd = np.full(len(ra), -1, dtype=int)
    for pair in pairs:
        ny, nx = pair.shape
        rows = np.flatnonzero((ccd < 0) & _near_footprint(ra, dec, pair.footprint))
        if rows.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            x, y = pair.wcs["i"].all_world2pix(ra[rows], dec[rows], 0)
        on = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
        ccd[rows[on]] = pair.ccd
    return ccd


def _from_ascd(path, field_number, pairs, images):
    """Sources of a CASU catalogue, checked against the stacks."""
    from ..io.pandas_ascd import read_pandas_ascd

    cat = read_pandas_ascd(path)
    if len(cat) and field_number is not None and "field" in cat.colnames:
        other = np.unique(np.asarray(cat["field"]))
        if not np.all(other == field_number):
            raise ColumnError(
                f"catalogue {str(path)!r} is of field(s) {other[:5].tolist()} but the stacks "
                f"{str(images['i'])!r} are of field {field_number}: mismatched catalogue"
            )
    coord = SkyCoord(np.asarray(cat["RA"], float), np.asarray(cat["Dec"], float),
                     unit="deg", frame="icrs")
    out = Table()
    out["coord"] = coord
    for name, col in (("gmag", "g"), ("e_gmag", "dg"), ("imag", "i"), ("e_imag", "di")):
        out[name] = np.asarray(cat[col], dtype=float) * u.mag
    # 99.999-style fills of CASU catalogues fail every magnitude cut
    ccd = _assign_ccds(coord.ra.deg, coord.dec.deg, pairs)
    if len(out) and np.count_nonzero(ccd >= 0) < 0.5 * len(out):
        raise ColumnError(
            f"catalogue {str(path)!r} does not match the stacks {str(images['i'])!r}: only "
            f"{np.count_nonzero(ccd >= 0)} of its {len(out)} sources lie on their CCDs"
        )
    out["ccd"] = ccd
    return out[ccd >= 0]


def _detect_ccd(job):
    """
    Detection and photometry on one CCD (a picklable job: it may run on another worker).

    Returns the CCD's sources within the radius cut (or None) and the seconds
    spent per stage.
    """
    from astropy.io import fits

    from ..geometry import projected_radius
    from ..photometry import detect_sources, measure

    timings = {"detect": 0.0, "cut": 0.0, "measure": 0.0}
    with fits.open(job["g"], memmap=True) as hg, fits.open(job["i"], memmap=True) as hi:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)
            found = detect_sources(hi[job["ext"]["i"]], nsigma=job["nsigma"],
                                   deblend_limit=(job["mag_limit"] + 0.5) * u.mag)
        timings["detect"] += time.perf_counter() - t
        t = time.perf_counter()
        if len(found):
            found = found[projected_radius(found["coord"]) < job["max_radius"]]
        timings["cut"] += time.perf_counter() - t
        if len(found) == 0:
            return None, timings
        t = time.perf_counter()
        with warnings.catch_warnings():
            # edge sources get NaN magnitudes and fail the magnitude cut
            warnings.simplefilter("ignore", OffImageWarning)
            phot = measure({"g": hg[job["ext"]["g"]], "i": hi[job["ext"]["i"]]},
                           found["coord"], aperture=job["aperture"])
        timings["measure"] += time.perf_counter() - t
    sub = Table()
    sub["coord"] = phot["coord"]
    for name in ("gmag", "e_gmag", "imag", "e_imag"):
        sub[name] = u.Quantity(np.ma.filled(np.ma.asarray(phot[name], dtype=float), np.nan),
                               u.mag)
    sub["ccd"] = np.full(len(sub), job["ccd"], dtype=int)
    return sub, timings


def _classify_chunk(job):
    """
    Stamps and scores of one chunk of sources (a picklable job: it may run on
    another worker, which loads the model once).

    Returns the chunk's scores, whether each stamp has enough valid pixels,
    the stamps scoring at least ``job["keep_above"]`` (None when not asked)
    and the seconds spent.
    """
    from ..cutout import Cutout

    t = time.perf_counter()
    clf = _load_model(job["model"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OffImageWarning)
        stamps = Cutout.from_images(job["images"], job["coord"], size=clf.input_shape[:2],
                                    bands=clf.bands, progress=False)
    with np.errstate(invalid="ignore"):
        conf = clf.predict_proba(stamps, progress=False)
    valid = stamps.valid_fraction.min(axis=1) >= job["min_valid"]
    kept = None
    if job["keep_above"] is not None:
        with np.errstate(invalid="ignore"):
            kept = stamps[np.flatnonzero((conf >= job["keep_above"]) & valid)]
    return conf, valid, kept, time.perf_counter() - t


def _detect(images, pairs, max_radius, nsigma, aperture, timings, progress, mag_limit,
            executor=None):
    """
    Detect on each CCD of the i stack, cut by radius, measure g and i there.

    Only segments that can hold a source brighter than ``i = mag_limit + 0.5``
    are deblended (`~m31clusters.photometry.detect_sources`' *deblend_limit*):
    that covers every source with ``g < mag_limit`` and ``g - i > -0.5``, and
    halves the cost of detection on a crowded disc CCD.  With an *executor*
    (``concurrent.futures``-like), the CCDs are its jobs; the sources come
    back in CCD order either way.
    """
    jobs = [{"g": str(images["g"]), "i": str(images["i"]), "ext": dict(pair.ext),
             "ccd": pair.ccd, "nsigma": nsigma, "mag_limit": mag_limit,
             "max_radius": max_radius, "aperture": aperture} for pair in pairs]
    results = map(_detect_ccd, jobs) if executor is None else executor.map(_detect_ccd, jobs)
    tables = []
    for sub, spent in progress_bar(results, total=len(jobs), progress=progress,
                                   desc="detect+measure", unit="CCD"):
        for stage, seconds in spent.items():
            timings[stage] += seconds
        if sub is not None:
            tables.append(sub)
    if not tables:
        return None
    return vstack(tables, metadata_conflicts="silent")


def _empty_sources():
    t = Table()
    t["coord"] = SkyCoord(np.zeros(0), np.zeros(0), unit="deg")
    for name in ("gmag", "e_gmag", "imag", "e_imag"):
        t[name] = np.zeros(0) * u.mag
    t["ccd"] = np.zeros(0, dtype=int)
    return t


def search_field(images, catalog=None, *, model=None, threshold=None, mag_limit=21.0,
                 max_radius=30 * u.kpc, min_valid=0.5, field=None, nsigma=5.0,
                 aperture=1.5 * u.arcsec, chunk_size=2048,
                 fragment_radius=2.5 * u.arcsec, keep_sources=False, executor=None,
                 progress=False):
    """
    Search one field for cluster candidates.

    1. **read**: check the stacks (`FITS`, WCS, 2-D, g covers i) and, when
       given, read the CASU catalogue with
       `~m31clusters.io.pandas_ascd.read_pandas_ascd` (checked against the stacks);
       load the classifier (once per process);
    2. **detect** and **measure** (no catalogue): on each CCD of the i stack
       `~m31clusters.photometry.detect_sources` (deblending only segments
       that can hold a source with ``i < mag_limit + 0.5``), then, for the
       sources within *max_radius*, `~m31clusters.photometry.measure` in g
       and i; CCDs wholly beyond *max_radius* are skipped;
    3. **cut**: keep sources with g < *mag_limit* and projected radius <
       *max_radius*;
    4. **classify**: two-band stamps (`~m31clusters.cutout.Cutout.from_images`)
       and the classifier for those sources only, *chunk_size* at a time;
       candidates have a score >= the threshold and at least *min_valid* of
       valid pixels in every band;
    5. **merge fragments**: candidates closer than *fragment_radius* (the
       deblended pieces of one resolved cluster or galaxy) become one row,
       the brightest piece, with the number of pieces in ``n_frag``
       (`~m31clusters.fragments.merge_fragments`).

    Parameters
    ----------
    images : dict
        ``{"g": path, "i": path}``: the field's g and i stacks.
    catalog : str or path-like, optional
        The field's ``m###p.ascd`` catalogue; None detects the sources.
    model : str, path-like or `~m31clusters.classifier.ClusterClassifier`, optional
        The classifier (default: the shipped demo model).
    threshold : float, optional
        Score threshold (default: the classifier's own).
    mag_limit : float
        Magnitude cut, g < *mag_limit* (the paper's 21).
    max_radius : `~astropy.units.Quantity`
        Projected-radius cut (the paper's 30 kpc).
    min_valid : float
        Smallest fraction of valid stamp pixels, per band, of a candidate.
    field : int, optional
        PAndAS field number, for the ``PAndAS`` column (default: the stack's
        ``FIELD`` header or ``m###`` file name, else the nearest field).
    nsigma : float
        Detection threshold (without catalogue).
    aperture : `~astropy.units.Quantity`
        Photometric aperture radius (without catalogue).
    chunk_size : int
        Sources classified at a time (bounds the memory of the stamps).
    fragment_radius : `~astropy.units.Quantity`
        Linking length of `~m31clusters.fragments.merge_fragments`; ``0
        arcsec`` keeps every piece.
    keep_sources : bool
        Also return every source and the candidates' stamps.
    executor : `concurrent.futures.Executor`, optional
        Runs the detection and photometry of the CCDs (without *catalog*)
        as its jobs, and the stamps and classification of each chunk of
        *chunk_size* sources when *model* is a file (each process loads it
        once), e.g. a ``ProcessPoolExecutor`` with the ``spawn``
        context, or a Dask client's ``get_executor()`` (`search_fields`
        uses its workers' this way, so that the CCDs and stamps of one
        field share every worker).  Not a thread pool: the jobs set warning filters,
        which are global to a process.  Default: one CCD after the other in
        this process.  The result is the same either way; the stage
        ``timings`` are then summed over the jobs (seconds of work, which may
        exceed the wall time).
    progress : bool
        Show progress over CCDs.

    Returns
    -------
    `FieldSearch`

    Raises
    ------
    FileNotFoundError, m31clusters.exceptions.CorruptFileError, m31clusters.exceptions.NoWCSError,
    m31clusters.exceptions.ImageShapeError, m31clusters.exceptions.BandError
        Bad stacks (see `m31clusters.survey.check_stacks`).
    m31clusters.exceptions.OffImageError
        If the g stack does not cover the i stack ("no g coverage").
    m31clusters.exceptions.ColumnError
        If *catalog* is of another field or its sources are not on the stacks.
    TypeError
        If *executor* has no ``map`` method.

    Examples
    --------
    >>> import tempfile
    >>> from m31clusters.simulate import simulate_field
    >>> from m31clusters.survey import search_field
    >>> sim = simulate_field(field=248, n_ccds=1, ccd_shape=(256, 256), seed=2,
    ...                      out_dir=tempfile.mkdtemp())
    >>> found = search_field(sim.images, sim.catalog_path)
    >>> found.counts["ccds"], found.counts["passed_cuts"] >= found.counts["candidates"]
    (1, True)
    >>> sorted(found.timings) == sorted(("read", "detect", "measure", "cut", "classify"))
    True
    """
    from ..catalog import Catalog
    from ..cutout import Cutout
    from ..geometry import pandas_field, projected_radius

    timings = dict.fromkeys(SEARCH_STAGES, 0.0)
    t = time.perf_counter()
    max_radius = as_quantity(max_radius, u.kpc, "max_radius")
    fragment_radius = _fragment_radius(fragment_radius)
    if not 0 <= float(min_valid) <= 1:
        raise ValueError(f"min_valid must lie in [0, 1], got {min_valid!r}")
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if executor is not None and not callable(getattr(executor, "map", None)):
        raise TypeError(f"executor must have a map method (a concurrent.futures.Executor), "
                        f"got {type(executor).__name__}")
    images = {band: Path(p) for band, p in dict(images).items()}
    pairs = check_stacks(images)
    if field is None:
        field = stack_field(images["i"])
    searched = [p for p in pairs if not _ccd_beyond(p, max_radius)]
    if catalog is not None:
        sources = _from_ascd(Path(catalog), field, searched or pairs, images)
        if not searched:
            sources = sources[:0]
    timings["read"] += time.perf_counter() - t

    if catalog is None:
        sources = _detect(images, searched, max_radius, nsigma, aperture, timings, progress,
                          mag_limit, executor=executor)
        if sources is None:
            sources = _empty_sources()
    n_sources = len(sources)

    t = time.perf_counter()
    if len(sources):
        rproj = projected_radius(sources["coord"])
    else:
        rproj = np.zeros(0) * u.kpc
    sources["Rproj"] = rproj.to(u.kpc)
    rproj_kpc = rproj.to_value(u.kpc)
    if field is not None:
        sources["PAndAS"] = np.full(len(sources), int(field))
    else:
        sources["PAndAS"] = np.atleast_1d(pandas_field(sources["coord"])).astype(int) \
            if len(sources) else np.zeros(0, dtype=int)
    gmag = np.ma.filled(np.ma.asarray(sources["gmag"], dtype=float), np.nan)
    with np.errstate(invalid="ignore"):
        passed = (gmag < mag_limit) & (rproj_kpc < max_radius.to_value(u.kpc))
    timings["cut"] += time.perf_counter() - t

    t = time.perf_counter()
    idx = np.flatnonzero(passed)
    # the classifier is loaded (once per process) only when something passed the cuts
    clf = _load_model(model) if idx.size or keep_sources else None
    thr = None if clf is None else clf.threshold if threshold is None else float(threshold)
    conf = np.full(len(sources), np.nan)
    valid = np.zeros(len(sources), dtype=bool)
    kept_stamps = []
    chunks = list(iter_chunks(idx.size, chunk_size))
    paths = {band: str(p) for band, p in images.items()}
    jobs = [{"images": paths, "coord": sources["coord"][idx[s]], "model": model,
             "min_valid": min_valid, "keep_above": thr if keep_sources else None}
            for s in chunks]
    # With an executor the chunks are its jobs (each worker loads the model once),
    # unless the model is an object of this process rather than a file.
    remote = executor is not None and not _is_classifier(model)
    results = executor.map(_classify_chunk, jobs) if remote else map(_classify_chunk, jobs)
    for s, (chunk_conf, chunk_valid, kept, seconds) in zip(chunks, results, strict=True):
        conf[idx[s]] = chunk_conf
        valid[idx[s]] = chunk_valid
        if kept is not None:
            kept_stamps.append(kept)
        if remote:
            timings["classify"] += seconds
    if not remote:
        timings["classify"] += time.perf_counter() - t

    with np.errstate(invalid="ignore"):
        is_cand = passed & valid & (conf >= (np.inf if thr is None else thr))
    cands = Catalog(sources[is_cand])
    cands["Conf"] = conf[is_cand]
    cols = ["coord", "gmag", "e_gmag", "imag", "e_imag", "PAndAS", "Rproj", "Conf", "ccd"]
    cands = cands[cols]
    cands["_row"] = np.arange(len(cands))
    if len(cands) and fragment_radius.to_value(u.arcsec) > 0:
        cands = merge_fragments(cands, radius=fragment_radius, keep="min:gmag")
    else:
        cands["n_frag"] = np.ones(len(cands), dtype=int)
    kept_rows = np.asarray(cands["_row"], dtype=int)
    cands.remove_column("_row")
    cands.meta["stamp_size"] = None if clf is None else [int(n) for n in clf.input_shape[:2]]
    cands.meta["bands"] = None if clf is None else list(clf.bands)
    result = FieldSearch(
        candidates=cands,
        footprints=[p.footprint for p in searched],
        timings=timings,
        counts={"sources": n_sources, "passed_cuts": int(idx.size),
                "candidates": len(cands),
                "fragments_merged": int(np.sum(np.asarray(cands["n_frag"]) - 1)),
                "ccds": len(searched),
                "ccds_skipped": len(pairs) - len(searched)},
    )
    if keep_sources:
        from astropy.table import MaskedColumn

        out = Catalog(sources)
        out["passed_cuts"] = passed
        out["Conf"] = MaskedColumn(conf, mask=~passed | ~np.isfinite(conf))
        result.sources = out
        if kept_stamps:
            stamps = Cutout.concatenate(kept_stamps) if len(kept_stamps) > 1 \
                else kept_stamps[0]
            result.stamps = stamps[kept_rows]
    return result


# ---------------------------------------------------------------------------- many fields


def find_fields(paths, *, catalogs="auto"):
    """
    The fields of some directories or files: their stacks and catalogues.

    Stacks are named like PAndAS's, ``m###_g.fit`` and ``m###_i.fit``
    (``.fits``, ``.fit.fz``, ``.fits.gz`` too), catalogues ``m###p.ascd``
    (or ``.ascd.gz``).

    Parameters
    ----------
    paths : sequence of str or path-like
        Directories (searched, not recursively) and files.
    catalogs : {"auto", "require", "none"}
        ``"auto"``: use a field's catalogue when there is one, else detect;
        ``"require"``: a field without catalogue is an error; ``"none"``:
        ignore catalogues and detect everywhere.

    Returns
    -------
    dict
        Field number -> ``{"g": Path, "i": Path, "catalog": Path or None}``,
        sorted by field.

    Raises
    ------
    FileNotFoundError
        If a path does not exist, or no stacks are found.
    ValueError
        If a field has only one band, two files for the same band, a
        catalogue but no stacks, or (with ``catalogs="require"``) no
        catalogue.
    """
    import re

    if catalogs not in ("auto", "require", "none"):
        raise ValueError(f"catalogs must be 'auto', 'require' or 'none', got {catalogs!r}")
    stack_re = re.compile(r"^m(\d{3})_([gi])\.fits?(\.fz|\.gz)?$")
    cat_re = re.compile(r"^m(\d{3})p\.ascd(\.gz)?$")
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{str(p)!r} does not exist")
    fields = {}
    for f in files:
        if m := stack_re.match(f.name):
            entry = fields.setdefault(int(m.group(1)), {"g": None, "i": None, "catalog": None})
            band = m.group(2)
            if entry[band] is not None and entry[band].resolve() != f.resolve():
                raise ValueError(f"field {int(m.group(1))}: two {band} stacks, "
                                 f"{str(entry[band])!r} and {str(f)!r}")
            entry[band] = f
        elif m := cat_re.match(f.name):
            entry = fields.setdefault(int(m.group(1)), {"g": None, "i": None, "catalog": None})
            entry["catalog"] = f
    if not fields:
        raise FileNotFoundError(
            f"no PAndAS stacks (m###_g.fit, m###_i.fit) in {[str(p) for p in paths]}")
    for number, entry in sorted(fields.items()):
        if entry["g"] is None and entry["i"] is None:
            raise ValueError(f"field {number}: catalogue {str(entry['catalog'])!r} has no "
                             f"stacks m{number:03d}_g.fit / m{number:03d}_i.fit")
        for band in ("g", "i"):
            if entry[band] is None:
                other = entry["i" if band == "g" else "g"]
                raise ValueError(f"field {number}: no {band} stack (m{number:03d}_{band}.fit) "
                                 f"next to {str(other)!r}")
        if catalogs == "none":
            entry["catalog"] = None
        elif catalogs == "require" and entry["catalog"] is None:
            raise ValueError(f"field {number}: no catalogue m{number:03d}p.ascd for the stacks "
                             f"{str(entry['i'])!r} (catalogs='require')")
    return dict(sorted(fields.items()))


def _search_one(spec):
    """Per-field function of `search_fields` (runs on a worker): a table with meta."""
    options = dict(spec["options"])
    images = {"g": spec["g"], "i": spec["i"]}
    if spec.get("catalog") is None and _on_dask_worker():
        # detection: the field's CCDs become tasks of their own, so that every worker
        # shares a field (this task leaves its worker's thread pool while it waits)
        from distributed import worker_client

        with worker_client() as client:
            found = search_field(images, None, field=spec.get("field"),
                                 executor=client.get_executor(pure=False), **options)
    else:
        found = search_field(images, spec.get("catalog"), field=spec.get("field"),
                             **options)
    table = Table(found.candidates)
    table.meta = {
        "stamp_size": found.candidates.meta["stamp_size"],
        "bands": found.candidates.meta["bands"],
        "timings": {k: round(float(v), 4) for k, v in found.timings.items()},
        "counts": {k: int(v) for k, v in found.counts.items()},
        "footprints": [np.round(fp, 7).tolist() for fp in found.footprints],
    }
    return table


def _on_dask_worker():
    """True inside a task of a ``distributed`` worker."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _connect(scheduler, timeout):
    """A ``distributed.Client`` of the scheduler at *scheduler*, or ConnectionError."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout}: "
            f"{' '.join(str(exc).split())}"
        ) from None


def search_fields(fields, out_dir, *, model=None, threshold=None, mag_limit=21.0,
                  max_radius=30 * u.kpc, min_valid=0.5, nsigma=5.0, aperture=1.5 * u.arcsec,
                  match_radius=1 * u.arcsec, chunk_size=2048,
                  fragment_radius=2.5 * u.arcsec, scheduler="processes",
                  n_workers=None, retries=0, moc_depth=15, montage_max=100,
                  overwrite=False, progress=False, connect_timeout=10 * u.s):
    """
    Search many fields and publish one de-duplicated candidate catalogue.

    Each field is searched with `search_field` by
    `~m31clusters.survey.run_survey` (per-field tables in
    ``out_dir/fields/``: a killed run resumes where it stopped and
    recomputes nothing finished).  On Dask workers (``"processes"`` or a
    scheduler address), a field without catalogue runs the detection and
    photometry of each of its CCDs as a task of its own on any worker, so
    that one field, or the last fields of a survey, still use every worker.
    When every field is finished, the fields are merged, detections of the
    same source in overlapping fields are merged (within *match_radius*,
    keeping the most confident), the
    literature name columns are filled, and these files are written into
    *out_dir*, all or none:

    * ``ReadMe`` and ``candidates.dat``: the CDS catalogue (table-7 schema;
      header-only when there are no candidates);
    * ``candidates.reg``: DS9 regions; ``candidates.png``: a montage of
      the *montage_max* most confident candidates;
    * ``coverage.fits``: a MOC (``mocpy``) of the area searched: the
      footprints of the CCDs searched, within *max_radius*.

    Parameters
    ----------
    fields : mapping
        Field number -> ``{"g": path, "i": path, "catalog": path or None}``
        (see `find_fields`).
    out_dir : str or path-like
        Output directory.
    model, threshold, mag_limit, max_radius, min_valid, nsigma, aperture
        As in `search_field`.
    chunk_size, fragment_radius
        As in `search_field`.  *model* is a path (loaded once per worker) or
        a classifier object (``scheduler="threads"``/``"synchronous"``).
    match_radius : `~astropy.units.Quantity`
        De-duplication and literature matching radius (the paper's 1 arcsec).
    scheduler : str
        ``"processes"`` (default: Dask worker processes on this machine,
        started with ``spawn`` so JAX is never forked, each restricted to
        its own share of the CPUs, see `run_survey`), ``"threads"``,
        ``"synchronous"``, or the address of a running Dask scheduler
        (``tcp://host:8786``), whose workers must see the files at the
        same paths.
    n_workers : int, optional
        Local worker processes (default: the number of CPUs).
    retries : int
        Retries of a failing field (default 0: failures here are data
        errors, not flaky machines).
    moc_depth : int
        HEALPix order of the MOC (15: cells of 6.4 arcsec).
    montage_max : int
        Largest number of candidates drawn in the montage.
    overwrite : bool
        Recompute every field and replace the products.
    progress : bool
        Progress over fields.
    connect_timeout : `~astropy.units.Quantity`
        How long to wait for a scheduler *address* (default 10 s).

    Returns
    -------
    `SearchResult`
        When fields failed, ``files`` is empty (nothing is published) and
        ``run.failed`` says why; calling again retries them.

    Raises
    ------
    ConnectionError
        If the scheduler address cannot be reached (nothing is written).
    FileExistsError
        If a product exists and *overwrite* is False (checked first).
    """
    from ..geometry import M31_CENTER

    if not fields:
        raise ValueError("no fields to search")
    fragment_radius = _fragment_radius(fragment_radius)  # checked before any work or file
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output directory {str(out)!r} is a file")
    products = _product_paths(out)
    if not overwrite:
        for path in products.values():
            if path.exists():
                raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True")
    for key, spec in fields.items():
        for band in ("g", "i"):
            if spec.get(band) is None:
                raise ValueError(f"field {key}: no {band} stack")
    client = None
    kwargs = {}
    if scheduler not in ("processes", "threads", "synchronous"):
        seconds = as_quantity(connect_timeout, u.s, "connect_timeout").to_value(u.s)
        client = _connect(scheduler, f"{seconds:g}s")
        kwargs["client"] = client
    else:
        kwargs["scheduler"] = scheduler
        kwargs["n_workers"] = n_workers
    if isinstance(model, (str, Path)) or model is None:
        from ..demo import demo_model_path

        model = str(model if model is not None else demo_model_path())
        if not Path(model).is_file():
            raise FileNotFoundError(f"model file {model!r} does not exist")
    options = {"model": model, "threshold": threshold, "mag_limit": mag_limit,
               "max_radius": max_radius, "min_valid": min_valid, "nsigma": nsigma,
               "aperture": aperture, "chunk_size": chunk_size,
               "fragment_radius": fragment_radius}
    specs = {key: {"g": str(spec["g"]), "i": str(spec["i"]),
                   "catalog": None if spec.get("catalog") is None else str(spec["catalog"]),
                   "field": key if isinstance(key, int) else None, "options": options}
             for key, spec in fields.items()}
    try:
        out.mkdir(parents=True, exist_ok=True)
        run = run_survey(_search_one, specs, out / "fields", retries=retries,
                         overwrite=overwrite, progress=progress, merge=False,
                         table_format="ecsv", **kwargs)
    finally:
        if client is not None:
            client.close()
    timings = dict.fromkeys(SEARCH_STAGES, 0.0)
    counts = {}
    footprints, stamp = [], None
    tables = {key: run.read_field(key) for key in run.done}
    for key, table in tables.items():
        meta = table.meta
        if meta.get("stamp_size") is not None:
            stamp = (meta["stamp_size"], meta["bands"])
        footprints.extend(np.asarray(fp) for fp in meta.get("footprints", []))
        if key in run.computed:
            for k, v in meta.get("timings", {}).items():
                timings[k] = timings.get(k, 0.0) + v
            for k, v in meta.get("counts", {}).items():
                counts[k] = counts.get(k, 0) + v
    result = SearchResult(catalog=None, run=run, timings=timings, counts=counts)
    if run.failed:
        return result
    t = time.perf_counter()
    merged = _merge_field_tables(tables, match_radius, keep="max:Conf")
    cands = _publishable(merged, match_radius)
    moc = _coverage_moc(footprints, max_radius, moc_depth, M31_CENTER)
    stamps = _candidate_stamps(cands, fields, stamp, montage_max)
    written = write_products(
        cands, out, stamps=stamps, moc=moc, overwrite=overwrite,
        title="Star cluster candidates in M31 from PAndAS images (m31clusters search)",
        abstract=(f"Candidate star clusters in {len(run.done)} PAndAS field(s), classified by "
                  f"a convolutional network, with g < {mag_limit:g} mag and projected radius "
                  f"< {u.Quantity(max_radius, u.kpc).value:g} kpc, de-duplicated across "
                  "overlapping fields and cross-matched with the shipped literature lists."),
    )
    result.files = dict(zip(_product_paths(out), written, strict=True))
    result.timings["write"] = time.perf_counter() - t
    result.catalog, result.moc = cands, moc
    return result


def _publishable(merged, match_radius):
    """The table-7 catalogue of the merged candidates (most confident first), with names."""
    from ..catalog import Catalog

    if len(merged) == 0 or "coord" not in merged.colnames:
        return Catalog.from_candidates(
            SkyCoord(np.zeros(0), np.zeros(0), unit="deg"), gmag=np.zeros(0),
            e_gmag=np.zeros(0), imag=np.zeros(0), e_imag=np.zeros(0), conf=np.zeros(0),
            pandas=np.zeros(0, dtype=int), rproj=np.zeros(0) * u.kpc)
    order = np.lexsort((merged["coord"].ra.deg, -np.asarray(merged["Conf"], float)))
    merged = merged[order]
    cands = Catalog.from_candidates(
        merged["coord"], gmag=merged["gmag"], e_gmag=merged["e_gmag"], imag=merged["imag"],
        e_imag=merged["e_imag"], conf=np.asarray(merged["Conf"], float),
        pandas=np.asarray(merged["PAndAS"], int), rproj=u.Quantity(merged["Rproj"], u.kpc))
    return _literature(cands, match_radius)


def _literature(cands, radius):
    """Fill the name columns from the shipped lists (RBC, C11, W23, H14; C09, W22 stay empty)."""
    from ..crossmatch import match_literature

    if len(cands) == 0:
        return cands
    out = match_literature(cands, radius=radius)
    out.remove_columns([c for c in out.colnames if c.endswith("_sep")])
    return out


def _coverage_moc(footprints, max_radius, depth, center):
    """MOC of the CCD footprints searched, within the radius cut."""
    from mocpy import MOC

    if not footprints:
        return MOC.new_empty(depth)
    polys = [SkyCoord(fp[:, 0], fp[:, 1], unit="deg") for fp in footprints]
    mocs = MOC.from_polygons(polys, max_depth=depth, n_threads=1)
    moc = mocs[0].union(*mocs[1:]) if len(mocs) > 1 else mocs[0]
    cone = MOC.from_cone(lon=center.ra, lat=center.dec,
                         radius=_radius_limit(max_radius) * u.deg, max_depth=depth)
    return moc.intersection(cone)


def _candidate_stamps(cands, fields, stamp, montage_max):
    """Stamps of the *montage_max* most confident candidates, cut from their fields' stacks."""
    from ..cutout import Cutout

    if len(cands) == 0 or montage_max <= 0 or stamp is None or stamp[0] is None:
        return None
    size, bands = tuple(stamp[0]), tuple(stamp[1])
    top = cands[:montage_max]  # sorted by decreasing Conf
    parts, order = [], []
    for key in np.unique(np.asarray(top["PAndAS"])):
        rows = np.flatnonzero(np.asarray(top["PAndAS"]) == key)
        spec = fields.get(int(key))
        if spec is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OffImageWarning)
            parts.append(Cutout.from_images({"g": spec["g"], "i": spec["i"]},
                                            top["coord"][rows], size=size, bands=bands,
                                            progress=False))
        order.extend(rows.tolist())
    if not parts:
        return None
    stamps = Cutout.concatenate(parts) if len(parts) > 1 else parts[0]
    return stamps[np.argsort(order)], top["Seq"][np.sort(order)], top["Conf"][np.sort(order)]


def _product_paths(out):
    return {"readme": out / "ReadMe", "data": out / "candidates.dat",
            "regions": out / "candidates.reg", "montage": out / "candidates.png",
            "moc": out / "coverage.fits"}


def write_products(cands, out_dir, *, stamps=None, moc=None, title, abstract,
                   authors="m31clusters", overwrite=False):
    """
    Write the CDS catalogue, regions, montage (and MOC) of *cands*, all or none.

    The files are written into a staging directory inside *out_dir* and
    moved into place only when all of them succeeded.  Zero candidates give
    a header-only CDS catalogue, an empty region file and a montage saying
    "no candidates".

    Returns
    -------
    list of `~pathlib.Path`
        The files written: ``ReadMe``, ``candidates.dat``, ``candidates.reg``,
        ``candidates.png`` and (with *moc*) ``coverage.fits``.
    """
    import os
    import shutil
    import tempfile

    from ..utils._io import atomic_paths

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = _product_paths(out)
    if moc is None:
        final.pop("moc")
    if not overwrite:
        for path in final.values():
            if path.exists():
                raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True")
    stage = Path(tempfile.mkdtemp(prefix=".products-", dir=out))
    try:
        # Staged under their final names (the ReadMe names its data file), then
        # moved into place together by atomic_paths (all or none, modes of open()).
        staged = {k: stage / p.name for k, p in final.items()}
        cands.write_cds(staged["readme"], staged["data"], title=title, authors=authors,
                        abstract=abstract,
                        keywords=["Galaxies: individual (M31)", "Clusters, globular",
                                  "Photometry"])
        cands.write_regions(staged["regions"])
        _montage(stamps, staged["montage"])
        if moc is not None:
            moc.save(str(staged["moc"]), format="fits")
        keys = list(final)
        with atomic_paths([final[k] for k in keys], overwrite=overwrite) as tmps:
            for key, tmp in zip(keys, tmps, strict=True):
                os.replace(staged[key], tmp)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return list(final.values())


def _montage(stamps, path):
    if stamps is None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no candidates", ha="center", va="center")
        fig.savefig(path, format="png")
        plt.close(fig)
        return
    from ..inspection import inspection_montage

    cut, ids, scores = stamps
    inspection_montage(cut, ids=np.asarray(ids), scores=np.round(np.asarray(scores, float), 3),
                       path=path, max_candidates=len(ids))
