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
* ``sources.ecsv``: every detected source with its photometry and score.

Every step is a public function of the library; `run_demo` composes them and
is meant to be read as an example of how to compose them yourself.

The shipped classifier (``m31clusters/data/models/demo_classifier.zip``) was
trained on simulated stamps only, by ``scripts/train_demo_model.py``; it is a
demonstration model, not the ResNet-50 of Zhang et al. (2025), and its scores
on real PAndAS images are not calibrated.
"""

import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import vstack

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
        Every detected source with its photometry, field, projected radius
        and classifier score ``Conf``.
    candidates : `~m31clusters.catalog.Catalog`
        The candidate catalogue (table-7 schema) that was written.
    files : dict
        Paths of the written files (``readme``, ``data``, ``regions``,
        ``montage``, ``sources``).
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


def _image_extensions(hdul):
    """Indices of the extensions of *hdul* that hold 2-D image data."""
    return [i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) == 2]


def _detect_and_measure(images, progress, nsigma, aperture):
    """Detect sources on the i image, CCD by CCD, and measure g and i there."""
    import warnings

    from tqdm.auto import tqdm

    from .exceptions import BandError, NoDetectionsWarning, OffImageWarning
    from .photometry import detect_sources, measure

    tables = []
    with fits.open(images["g"], memmap=True) as hg, fits.open(images["i"], memmap=True) as hi:
        ext_g, ext_i = _image_extensions(hg), _image_extensions(hi)
        if len(ext_g) != len(ext_i):
            raise BandError(
                f"the g and i images have different numbers of image extensions "
                f"({len(ext_g)} in {str(images['g'])!r}, {len(ext_i)} in {str(images['i'])!r})"
            )
        pairs = list(zip(ext_g, ext_i, strict=True))
        for ccd, (eg, ei) in enumerate(tqdm(pairs, desc="detect+measure", unit="CCD",
                                             disable=not progress)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NoDetectionsWarning)
                found = detect_sources(hi[ei], nsigma=nsigma)
            if len(found) == 0:
                continue
            with warnings.catch_warnings(record=True) as caught:
                # sources near CCD edges cannot be measured: their magnitudes are
                # NaN and they fail the magnitude cut; report the count, not a warning
                warnings.simplefilter("always", OffImageWarning)
                phot = measure({"g": hg[eg], "i": hi[ei]}, found["coord"], aperture=aperture)
            for w in caught:
                if issubclass(w.category, OffImageWarning):
                    _log(progress, f"CCD {ccd}: {w.message}")
                else:  # pragma: no cover - pass other warnings on
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            phot["ccd"] = np.full(len(phot), ccd, dtype=int)
            phot["x"] = found["x"]
            phot["y"] = found["y"]
            tables.append(phot)
    if not tables:
        raise RuntimeError("no sources were detected in the i image")
    return vstack(tables, metadata_conflicts="silent")


def run_demo(out_dir, images=None, *, field=DEMO_FIELD, n_ccds=2, ccd_shape=(1024, 1024),
             seed=0, model=None, threshold=None, mag_limit=21.0, max_radius=30 * u.kpc,
             match_radius=1 * u.arcsec, nsigma=5.0, aperture=1.5 * u.arcsec,
             overwrite=False, progress=True):
    """
    Run the whole method of Zhang et al. (2025) on one field.

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
    seed : int, optional
        Seed of the simulation.
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
        Show progress.

    Returns
    -------
    result : `DemoResult`

    Raises
    ------
    FileExistsError
        If an output file exists and *overwrite* is false.
    m31clusters.exceptions.BandError
        If *images* lacks the g or i band.
    ImportError
        If matplotlib (the ``plot`` extra) is not installed.
    """
    from .catalog import Catalog
    from .classifier import ClusterClassifier
    from .crossmatch import deduplicate, match
    from .cutout import Cutout
    from .datasets import load_caldwell2011, load_rbc_v5
    from .geometry import pandas_field, projected_radius
    from .inspection import inspection_montage

    try:
        import matplotlib  # noqa: F401  (the montage needs it; fail before the work)
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(
            "the demo draws a PNG montage and needs matplotlib: "
            'pip install "m31clusters[plot]" (or pip install matplotlib)'
        ) from exc
    out = Path(out_dir)
    if images is not None:
        images = _check_images(images)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out / out_dir {str(out)!r} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "readme": out / "ReadMe",
        "data": out / "candidates.dat",
        "regions": out / "candidates.reg",
        "montage": out / "candidates.png",
        "sources": out / "sources.ecsv",
    }
    if not overwrite:
        for path in files.values():
            if path.exists():
                raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True")
    timings = {}
    t0 = time.perf_counter()

    # 1. images: the user's, or a simulated PAndAS-like field
    if images is None:
        from .simulate import simulate_field

        _log(progress, f"simulating field m{field:03d} ({n_ccds} CCDs of {ccd_shape})")
        (out / "images").mkdir(exist_ok=True)
        sim = simulate_field(field=field, n_ccds=n_ccds, ccd_shape=ccd_shape,
                             out_dir=out / "images", seed=seed, overwrite=overwrite,
                             progress=progress)
        images = dict(sim.images)
    timings["images"] = time.perf_counter() - t0

    # 2. detection (i band) and g, i aperture photometry
    t = time.perf_counter()
    _log(progress, "detecting and measuring sources")
    sources = Catalog(_detect_and_measure(images, progress, nsigma, aperture))
    sources["PAndAS"] = np.atleast_1d(pandas_field(sources["coord"]))
    sources["Rproj"] = projected_radius(sources["coord"])
    _log(progress, f"{len(sources)} sources detected")
    timings["detect_measure"] = time.perf_counter() - t

    # 3. stamps and classification
    t = time.perf_counter()
    clf = model if isinstance(model, ClusterClassifier) else ClusterClassifier.load(
        model if model is not None else demo_model_path())
    size = clf.input_shape[:2]
    _log(progress, f"cutting {len(sources)} stamps of {size[0]}x{size[1]} px and classifying")
    stamps = Cutout.from_images(images, sources["coord"], size=size, bands=clf.bands,
                                progress=progress)
    sources["Conf"] = clf.predict_proba(stamps, progress=progress)
    timings["classify"] = time.perf_counter() - t

    # 4. selection: score threshold, magnitude limit, 30 kpc
    t = time.perf_counter()
    thr = clf.threshold if threshold is None else float(threshold)
    gmag = np.ma.filled(np.ma.asarray(sources["gmag"], dtype=float), np.nan)
    keep = (sources["Conf"] >= thr) & (gmag < mag_limit)
    keep &= sources["Rproj"] < max_radius
    keep &= stamps.valid_fraction.min(axis=1) > 0.5
    sel = sources[keep]
    _log(progress, f"{len(sel)} candidates (Conf >= {thr:.3f}, g < {mag_limit}, "
                   f"Rproj < {max_radius})")

    # 5. candidate catalogue, de-duplication and literature names
    cands = Catalog.from_candidates(
        sel["coord"], gmag=sel["gmag"], e_gmag=sel["e_gmag"], imag=sel["imag"],
        e_imag=sel["e_imag"], conf=sel["Conf"], pandas=sel["PAndAS"], rproj=sel["Rproj"],
    )
    if len(cands):
        cands = deduplicate(cands, radius=match_radius, keep="max:Conf")
        cands = _keep_schema(cands)
        cands = match(cands, load_rbc_v5(), radius=match_radius, into="RBC")
        cands = match(cands, load_caldwell2011(), radius=match_radius, into="C11")
        cands.remove_columns([c for c in cands.colnames if c.endswith("_sep")])
        cands["Seq"] = np.arange(1, len(cands) + 1)
    timings["select_match"] = time.perf_counter() - t

    # 6. outputs: CDS ReadMe + data, DS9 regions, montage, all sources
    t = time.perf_counter()
    origin = "simulated" if "sim" in locals() else "user-supplied"
    cands.write_cds(
        files["readme"], files["data"], overwrite=overwrite,
        title=f"Star cluster candidates in M31 from {origin} PAndAS-like images (m31clusters demo)",
        authors="m31clusters demo",
        abstract=(
            "Candidate star clusters found by the m31clusters demonstration pipeline: "
            "sources detected in the i image, measured in g and i, classified by a "
            "small convolutional network trained on simulated stamps, with g < "
            f"{mag_limit:g} mag and projected radius < {max_radius.to_value(u.kpc):g} kpc, "
            "de-duplicated and cross-matched with RBC v5 and Caldwell et al. (2011)."
        ),
        keywords=["Galaxies: individual (M31)", "Clusters, globular", "Photometry"],
    )
    cands.write_regions(files["regions"], overwrite=overwrite)
    if len(cands):
        idx = np.flatnonzero(keep)
        order = np.argsort(-sources["Conf"][idx])
        inspection_montage(stamps[idx[order]], ids=np.arange(1, len(idx) + 1),
                           scores=np.round(sources["Conf"][idx[order]], 3),
                           path=files["montage"], overwrite=overwrite)
    else:
        _empty_png(files["montage"], overwrite)
    from .utils._io import atomic_path

    with atomic_path(files["sources"], overwrite=overwrite) as tmp:
        sources.write(tmp, format="ascii.ecsv", overwrite=True)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    _log(progress, f"wrote {', '.join(p.name for p in files.values())} to {out} "
                   f"in {timings['total']:.0f} s")
    return DemoResult(out_dir=out, images=images, sources=sources, candidates=cands,
                      files=files, timings=timings)


def _check_images(images):
    """Check the user's ``{"g": path, "i": path}`` before any work; return Paths."""
    from .exceptions import BandError

    images = {band: Path(p) for band, p in dict(images).items()}
    missing = {"g", "i"} - set(images)
    if missing:
        raise BandError(f"images must give the g and i bands; missing {sorted(missing)}")
    for band, p in images.items():
        if p.is_dir():
            raise IsADirectoryError(
                f"{band} image {str(p)!r} is a directory; give a FITS file per band"
            )
        if not p.is_file():
            raise FileNotFoundError(f"{band} image {str(p)!r} does not exist")
    return images


def _keep_schema(cands):
    """Drop the bookkeeping columns of `deduplicate` that are not in table 7."""
    from .catalog import CANDIDATE_NAME_COLUMNS

    keep = ["Seq", "coord", "gmag", "e_gmag", "imag", "e_imag", "PAndAS", "Rproj", "Conf",
            "Score", *CANDIDATE_NAME_COLUMNS]
    extra = [c for c in cands.colnames if c not in keep]
    cands.remove_columns(extra)
    return cands


def _empty_png(path, overwrite):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .utils._io import atomic_path

    fig, ax = plt.subplots(figsize=(4, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, "no candidates", ha="center", va="center")
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


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
