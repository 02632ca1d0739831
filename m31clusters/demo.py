"""
The main job of m31clusters, end to end, in one command.

``python -m m31clusters.demo --out DIR`` simulates a PAndAS-like field (or
takes your own g and i stacks with ``--images G I``), detects and measures
its sources, cuts two-band stamps, classifies them with the small
simulation-trained classifier shipped in the package, applies the 30 kpc
and magnitude cuts, removes duplicates, cross-matches the candidates
against the shipped RBC v5 and Caldwell et al. (2011) lists, and writes into
``DIR``:

* ``ReadMe`` and ``candidates.dat``: the candidate catalogue in CDS format;
* ``candidates.reg``: a DS9 region file of the candidates;
* ``candidates.png``: a montage of the candidates for visual inspection;
* ``sources.ecsv``: every detected source with its photometry, whether it
  passed the cuts, and its score (only sources that passed are classified);
  written first.

Every step is a public function of the library; `run_demo` composes them and
is meant to be read as an example of how to compose them yourself.

The shipped classifier (``m31clusters/data/models/demo_classifier.zip``) was
trained on simulated PAndAS fields only, by the recipe of
``benchmarks/bench_search_quality.py`` (``scripts/train_demo_model.py``); it
is a demonstration model, not the ResNet-50 of Zhang et al. (2025), and its
``Conf`` is calibrated for simulated fields, not real PAndAS images.
"""

import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from astropy import units as u

__all__ = ["DEMO_FIELD", "DemoResult", "run_demo", "demo_model_path", "main"]

#: PAndAS field simulated by default: the disc field nearest M31's
#: centre (4.7 kpc away), inside the 30 kpc region of Zhang et al. (2025).
DEMO_FIELD = 248


@dataclass
class DemoResult:
    """
    What `run_demo` produced.

    Attributes
    ----------
    out_dir : `~pathlib.Path`
        Output directory.
    images : dict
        Path of the g and i image per band.
    sources : `~m31clusters.catalog.Catalog`
        Every detected source with its photometry, field, projected radius,
        ``passed_cuts`` and classifier score ``Conf`` (masked for the sources
        that failed the magnitude or radius cut: they are not classified).
    candidates : `~m31clusters.catalog.Catalog`
        The candidate catalogue (table-7 schema) that was written.
    files : dict
        Paths of the written files (``sources``, ``readme``, ``data``,
        ``regions``, ``montage``).
    timings : dict
        Wall-clock seconds per step.
    """

    out_dir: Path
    images: dict
    sources: object
    candidates: object
    files: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def demo_model_path():
    """
    Path of the small simulation-trained classifier shipped with the package.

    Returns
    -------
    path : `~pathlib.Path`

    Examples
    --------
    >>> from m31clusters.demo import demo_model_path
    >>> demo_model_path().name
    'demo_classifier.zip'
    """
    return Path(str(resources.files("m31clusters") / "data" / "models" / "demo_classifier.zip"))


def _log(progress, message):
    if progress:
        print(f"[m31clusters.demo] {message}", file=sys.stderr, flush=True)


def run_demo(out_dir, images=None, *, field=DEMO_FIELD, n_ccds=2, ccd_shape=(1024, 1024),
             seed=0, model=None, threshold=None, mag_limit=21.0, max_radius=30 * u.kpc,
             match_radius=1 * u.arcsec, nsigma=5.0, aperture=1.5 * u.arcsec,
             overwrite=False, progress=False):
    """
    Run the whole method of Zhang et al. (2025) on one field.

    The images are checked before any work (see
    `m31clusters.survey.check_stacks`), the field is searched with
    `m31clusters.survey.search_field` (detection on the i image, the
    radius and magnitude cuts before any stamp is cut, classification of the
    sources that passed), ``sources.ecsv`` is written first, then the
    candidates are de-duplicated, named from the shipped literature lists
    and written (all or none).  Zero candidates is a normal result: the
    catalogue is then header-only, the region file empty and the montage says
    "no candidates".

    Parameters
    ----------
    out_dir : str or path-like
        Directory for the outputs (created if needed).
    images : dict or None, optional
        ``{"g": path, "i": path}`` of your own g and i images (single images
        or multi-extension stacks with matching extensions, AB zero points in
        the headers as ``MAGZPT``/``PHOTZP``).  None simulates field *field*.
    field : int, optional
        PAndAS field to simulate when *images* is None.
    n_ccds : int, optional
        Number of CCDs to simulate (36 is a full MegaCam field).
    ccd_shape : tuple of int, optional
        Shape (ny, nx) of each simulated CCD; PAndAS CCDs are (4612, 2048).
    seed : int or None, optional
        Seed of the simulation.  The demo keeps a fixed default (0), unlike
        the rest of the library (None), so that the same command gives the
        same catalogue.
    model : str, path-like or `~m31clusters.classifier.ClusterClassifier`, optional
        The classifier; by default the shipped simulation-trained model.
    threshold : float, optional
        Score threshold; by default the classifier's stored threshold.
    mag_limit : float, optional
        Keep candidates with g < *mag_limit* (the paper's mag < 21).
    max_radius : `~astropy.units.Quantity`, optional
        Keep candidates within this projected radius of M31 (30 kpc).
    match_radius : `~astropy.units.Quantity`, optional
        Radius for de-duplication and literature cross-matching.
    nsigma : float, optional
        Detection threshold (see `m31clusters.photometry.detect_sources`).
    aperture : `~astropy.units.Quantity`, optional
        Photometric aperture radius.
    overwrite : bool, optional
        Replace existing output files.
    progress : bool, optional
        Show progress (default False; the command line shows it unless
        ``--quiet``).

    Returns
    -------
    result : `DemoResult`

    Raises
    ------
    FileExistsError
        If an output file exists and *overwrite* is false.
    NotADirectoryError
        If *out_dir* is a file.
    FileNotFoundError, IsADirectoryError
        If an image does not exist or is a directory.
    m31clusters.exceptions.BandError
        If *images* lacks the g or i band, or gives the same file for both.
    m31clusters.exceptions.CorruptFileError
        If an image is not a FITS file (text, zero bytes) or is truncated.
    m31clusters.exceptions.NoWCSError
        If an image extension has no (or a degenerate) celestial WCS.
    m31clusters.exceptions.ImageShapeError
        If an image is not 2-D (e.g. a 3-D cube).
    m31clusters.exceptions.OffImageError
        If the g image does not overlap the i image ("no g coverage").
    ImportError
        If matplotlib (the ``plot`` extra) is not installed.
    """
    from .classifier import ClusterClassifier
    from .crossmatch import deduplicate
    from .survey._stacks import check_stacks
    from .survey.search import _candidate_stamps, _publishable, search_field, write_products
    from .utils._io import atomic_path

    try:
        import matplotlib  # noqa: F401  (the montage needs it; fail before the work)
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            "the demo draws a PNG montage and needs matplotlib: "
            'pip install "m31clusters[plot]" (or pip install matplotlib)'
        ) from exc
    out = Path(out_dir)
    if images is not None:
        # not FITS, truncated, no WCS, 3-D, g == i, no g coverage: refused before any work
        check_stacks(images)
        images = {band: Path(p) for band, p in dict(images).items()}
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output directory {str(out)!r} is a file, not a directory")
    files = {
        "sources": out / "sources.ecsv",
        "readme": out / "ReadMe",
        "data": out / "candidates.dat",
        "regions": out / "candidates.reg",
        "montage": out / "candidates.png",
    }
    if not overwrite:
        for path in files.values():
            if path.exists():
                raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True")
    clf = model if isinstance(model, ClusterClassifier) else ClusterClassifier.load(
        model if model is not None else demo_model_path())
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()

    # 1. images: the user's, or a simulated PAndAS-like field
    origin = "user-supplied"
    if images is None:
        from .simulate import simulate_field

        origin = "simulated"
        _log(progress, f"simulating field m{field:03d} ({n_ccds} CCDs of {ccd_shape})")
        (out / "images").mkdir(exist_ok=True)
        sim = simulate_field(field=field, n_ccds=n_ccds, ccd_shape=ccd_shape,
                             out_dir=out / "images", seed=seed, overwrite=overwrite,
                             progress=progress)
        images = dict(sim.images)
    timings["images"] = time.perf_counter() - t0

    # 2.-4. detection on i, radius cut, g and i photometry, magnitude cut, stamps and
    # classification of the sources that passed, score threshold (survey.search_field)
    _log(progress, "detecting, measuring, cutting and classifying")
    found = search_field(images, None, model=clf, threshold=threshold, mag_limit=mag_limit,
                         max_radius=max_radius, nsigma=nsigma, aperture=aperture,
                         keep_sources=True, progress=progress)
    timings.update(found.timings)
    sources = found.sources
    _log(progress, f"{len(sources)} sources, {found.counts['passed_cuts']} passed the cuts "
                   f"(g < {mag_limit}, Rproj < {max_radius}), {len(found.candidates)} scored "
                   f">= {clf.threshold if threshold is None else threshold:.3f}")
    # every source first, so that the work is kept whatever happens next
    t = time.perf_counter()
    with atomic_path(files["sources"], overwrite=overwrite) as tmp:
        sources.write(tmp, format="ascii.ecsv", overwrite=True)

    # 5. candidate catalogue, de-duplication and literature names
    cands = found.candidates
    if len(cands):
        cands = deduplicate(cands, radius=match_radius, keep="max:Conf")
    cands = _publishable(cands, match_radius)
    timings["select_match"] = time.perf_counter() - t

    # 6. outputs: CDS ReadMe + data, DS9 regions, montage (all or none)
    t = time.perf_counter()
    stamps = _candidate_stamps(cands, {int(k): images for k in np.unique(cands["PAndAS"])},
                               (clf.input_shape[:2], clf.bands), montage_max=100)
    written = write_products(
        cands, out, stamps=stamps, overwrite=overwrite, authors="m31clusters demo",
        title=f"Star cluster candidates in M31 from {origin} PAndAS-like images "
              "(m31clusters demo)",
        abstract=(
            "Candidate star clusters found by the m31clusters demonstration pipeline: "
            "sources detected in the i image, measured in g and i, classified by a "
            "small convolutional network trained on simulated stamps, with g < "
            f"{mag_limit:g} mag and projected radius < {max_radius.to_value(u.kpc):g} kpc, "
            "de-duplicated and cross-matched with the shipped literature lists."
        ),
    )
    files.update(zip(("readme", "data", "regions", "montage"), written, strict=True))
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    _log(progress, f"wrote {', '.join(p.name for p in files.values())} to {out} "
                   f"in {timings['total']:.0f} s"
                   + ("" if len(cands) else " (no candidates: header-only catalogue)"))
    return DemoResult(out_dir=out, images=images, sources=sources, candidates=cands,
                      files=files, timings=timings)


def main(argv=None):
    """
    Command-line entry point of ``python -m m31clusters.demo``.

    The same as ``m31clusters demo`` (see `m31clusters.cli`).

    Parameters
    ----------
    argv : list of str, optional
        Arguments; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        The exit status.
    """
    from .cli import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
