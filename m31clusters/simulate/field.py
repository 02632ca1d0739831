"""
Simulated PAndAS fields: multi-extension FITS images, source catalogue, truth table.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.wcs import WCS

from ..geometry import (
    M31_CENTER,
    deprojected_radius,
    pandas_field,
    pandas_fields,
    projected_radius,
)
from ..utils._io import atomic_path, check_overwrite
from ..utils._progress import progress_bar
from . import scene as _scene
from ._common import cluster_obj, psf_box_radius, render_point_box
from .instrument import PANDAS, Instrument
from .profiles import add_box, box_half, psf_kernel, render_intrinsic, split_position
from .render import add_noise, add_stars
from .scene import M31_SCENE, Scene

__all__ = ["simulate_field", "SimulatedField", "megacam_layout"]

#: MegaCam mosaic: 9 columns x 4 rows of 2048 x 4612 CCDs; 13 arcsec gaps
#: between columns and between the two middle rows, 80 arcsec between the
#: outer rows and the middle ones.
_NCOL, _NROW = 9, 4
_FULL_SHAPE = (4612, 2048)
_GAP_X = 70  # pixels, 13 arcsec
_ROW_GAPS = (428, 70, 428)  # pixels, 80, 13 and 80 arcsec


@dataclasses.dataclass
class SimulatedField:
    """
    Result of `simulate_field`.

    Attributes
    ----------
    field : int
        PAndAS field number.
    images : dict
        Path of the multi-extension FITS image per band.
    catalog_path : `~pathlib.Path`
        The PAndAS-format source catalogue ``m###p.ascd``.
    truth_path : `~pathlib.Path`
        The truth table (ECSV).
    truth : `~astropy.table.Table`
        Every simulated object (stars, clusters, galaxies), described
        column by column (``truth[name].description``).
    catalog : `~astropy.table.Table`
        The simulated source catalogue (the content of ``m###p.ascd``).
    placement : `~astropy.table.Table` or None
        With ``clusters=``: one row per input cluster, in input order:
        ``row``, ``status`` (``"placed"``, ``"outside"`` the simulated CCDs,
        or ``"invalid"``: a masked or non-finite position, magnitude or
        size), ``placed``, ``ccd``, ``x``, ``y`` (0-based pixels of that
        CCD) and ``truth_id`` (the ``id`` of its truth row, -1 if not placed).
    """

    field: int
    images: dict
    catalog_path: Path
    truth_path: Path
    truth: Table
    catalog: Table
    placement: Table = None

    @property
    def paths(self):
        """Every file written: the g and i images, the truth table and the catalogue."""
        out = [self.images[b] for b in sorted(self.images)] + [self.truth_path]
        return out + ([self.catalog_path] if self.catalog_path is not None else [])


def megacam_layout(ccd_shape=_FULL_SHAPE):
    """
    Lower-left corners of the 36 MegaCam CCDs in mosaic pixel coordinates.

    Gaps scale with *ccd_shape* (13 and 80 arcsec for full 2048 x 4612
    CCDs).  CCD ``9 * row + col`` has row 0 in the south and column 0 in
    the east (images have north up, east left).

    Parameters
    ----------
    ccd_shape : (int, int)
        (ny, nx) of one CCD.

    Returns
    -------
    corners : `~numpy.ndarray`
        (36, 2) array of (x0, y0) for each CCD.
    size : (float, float)
        (width, height) of the mosaic in pixels.

    Examples
    --------
    >>> from m31clusters.simulate import megacam_layout
    >>> corners, (w, h) = megacam_layout()
    >>> corners.shape, round(w * 0.187 / 3600, 3), round(h * 0.187 / 3600, 3)
    ((36, 2), 0.987, 1.006)
    """
    ny, nx = ccd_shape
    gx = _GAP_X * nx / _FULL_SHAPE[1]
    gys = [g * ny / _FULL_SHAPE[0] for g in _ROW_GAPS]
    ys = np.concatenate([[0.0], np.cumsum([ny + g for g in gys])])
    corners = np.array([(col * (nx + gx), ys[row]) for row in range(_NROW)
                        for col in range(_NCOL)])
    return corners, (_NCOL * nx + (_NCOL - 1) * gx, _NROW * ny + sum(gys))


def _ccd_wcs(center, corner, size, pixel_scale):
    """TAN WCS of one CCD: tangent point at the mosaic centre, north up, east left."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [center.ra.deg, center.dec.deg]
    # 1-based FITS pixel of the tangent point in this CCD's frame.
    w.wcs.crpix = [size[0] / 2 - corner[0] + 0.5, size[1] / 2 - corner[1] + 0.5]
    s = pixel_scale / 3600.0
    w.wcs.cd = [[-s, 0.0], [0.0, s]]
    w.wcs.radesys = "ICRS"
    return w


class _Densities:
    """Surface densities (per arcmin^2, i < 25) of each component at sky positions."""

    def __init__(self, scene):
        self.scene = scene

    def radii(self, wcs, x, y):
        """Deprojected and projected radii (kpc) of pixel positions (x, y)."""
        world = wcs.pixel_to_world(np.ravel(x), np.ravel(y))
        dist = self.scene.distance * u.kpc
        rdep = deprojected_radius(world, distance=dist).to_value(u.kpc)
        rproj = projected_radius(world, distance=dist).to_value(u.kpc)
        return rdep.reshape(np.shape(x)), rproj.reshape(np.shape(x))

    def __call__(self, name, rdep, rproj):
        return _scene.component_density(self.scene, name, rdep, rproj)


def _max_density(dens_fn, name, box, wcs):
    """Largest density of a component over a pixel box (grid + M31's centre if inside)."""
    x0, x1, y0, y1 = box
    gx, gy = np.meshgrid(np.linspace(x0, x1, 9), np.linspace(y0, y1, 9))
    rd, rp = dens_fn.radii(wcs, gx, gy)
    dmax = float(np.max(dens_fn(name, rd, rp))) * 1.05
    # The M31 centre may lie inside the box: the density peaks there.
    xc, yc = wcs.world_to_pixel(M31_CENTER)
    if x0 <= xc <= x1 and y0 <= yc <= y1:
        dmax = max(dmax, float(dens_fn(name, np.zeros(1), np.zeros(1))[0]) * 1.05)
    return dmax


def _thinned(rng, dens_fn, name, mean_factor, area, box, wcs):
    """Poisson process with density dens_fn(name, ...) * mean_factor, by thinning."""
    x0, x1, y0, y1 = box
    dmax = _max_density(dens_fn, name, box, wcs)
    n = rng.poisson(dmax * mean_factor * area)
    x = rng.uniform(x0, x1, n)
    y = rng.uniform(y0, y1, n)
    u_ = rng.random(n)
    if n == 0:
        return x, y
    rd, rp = dens_fn.radii(wcs, x, y)
    keep = u_ * dmax < dens_fn(name, rd, rp)
    return x[keep], y[keep]


def _smooth_light(ny, nx, wcs, dens_fn, faint, band, zp, pix_area, step=64):
    """
    Unresolved light of the stars fainter than *faint*: mean (ADU/pixel) and
    fluctuation amplitude (ADU per pixel-centred point source of unit white
    noise), bilinear from a grid.
    """
    xs = np.unique(np.concatenate([np.arange(0, nx, step), [nx - 1]])).astype(float)
    ys = np.unique(np.concatenate([np.arange(0, ny, step), [ny - 1]])).astype(float)
    gx, gy = np.meshgrid(xs, ys)
    rd, rp = dens_fn.radii(wcs, gx, gy)
    mean = np.zeros(gx.shape)
    var = np.zeros(gx.shape)
    for pop in ("disc_old", "disc_young", "halo"):
        fg, fi, fg2, fi2 = _scene.diffuse_flux_per_star(pop, faint)
        d = dens_fn(pop, rd, rp) * pix_area
        mean += d * (fg if band == "g" else fi) * 10 ** (0.4 * zp)
        var += d * (fg2 if band == "g" else fi2) * 10 ** (0.8 * zp)
    return _bilinear(mean, xs, ys, nx, ny), _bilinear(np.sqrt(var), xs, ys, nx, ny)


def _bilinear(grid, xs, ys, nx, ny):
    """Separable bilinear interpolation of a coarse grid to every pixel."""
    rows = np.array([np.interp(np.arange(nx), xs, g) for g in grid])
    iy = np.clip(np.searchsorted(ys, np.arange(ny), side="right") - 1, 0, len(ys) - 2)
    w = ((np.arange(ny) - ys[iy]) / (ys[iy + 1] - ys[iy]))[:, None]
    return rows[iy] * (1 - w) + rows[iy + 1] * w


def _resolve_field(field):
    fields = pandas_fields()
    if field is None:
        field = int(pandas_field(M31_CENTER))
    if isinstance(field, str):
        text = field.strip().lower()
        if not (text.startswith("m") and text[1:].isdigit()):
            raise ValueError(f"field must be a number or a name like 'm211', got {field!r}")
        field = int(text[1:])
    if isinstance(field, bool) or not isinstance(field, (int, np.integer)):
        raise TypeError(f"field must be an int or a name like 'm211', got {field!r}")
    ids = fields["PAndAS"]
    sel = ids == int(field)
    if not sel.any():
        raise ValueError(
            f"unknown PAndAS field {field}; valid numbers are {ids.min()}-"
            f"{ids.max()} (see m31clusters.geometry.pandas_fields())"
        )
    row = fields[sel][0]
    return int(field), SkyCoord(float(row["ra"]), float(row["dec"]), unit="deg", frame="icrs")


def simulate_field(field=None, *, n_ccds=36, ccd_shape=(4612, 2048), out_dir=".", seed=None,
                   overwrite=False, progress=False, instrument=PANDAS, scene=M31_SCENE,
                   catalog=True, clusters=None):
    """
    Simulate one PAndAS field: g and i images, source catalogue and truth table.

    The images are multi-extension FITS files shaped like the PAndAS
    stacks (``m###_g.fit``, ``m###_i.fit``: a primary header and one image
    extension per CCD with its own TAN WCS about the field's real centre,
    the CCDs laid out like MegaCam's 9 x 4 mosaic with its gaps).  Pixel
    values are sky-subtracted ADU with Poisson and read noise and
    saturation; headers carry ``MAGZPT``/``PHOTZP``, ``GAIN``, ``SATURATE``,
    ``SEEING`` and the rest of `Instrument.header_cards`.  The field is made
    CCD by CCD, each from its own random stream, so memory stays bounded and
    a CCD's content does not depend on *n_ccds*.

    The catalogue ``m###p.ascd`` is built from the truth table with the
    noise model: objects detected at S/N >= 5 in i and >= 3 in g (S/N of
    PSF-weighted photometry against the sky plus the unresolved light),
    magnitudes scattered by their errors, positions by ``FWHM / (2.35
    S/N)``, and morphology flags from a noisy size measurement (see
    ``docs/simulate.rst``).  Blending is not modelled there.

    With *clusters*, the given cluster population is placed instead of
    the scene's own (e.g. the PHAT catalogue from
    `m31clusters.datasets.load_phat_clusters`): each cluster at its sky
    position, with its g and i magnitudes and its half-light radius, inside
    the same crowded disc, stars, galaxies and noise (those do not depend on
    *clusters*).  Profile shape, ellipticity and member stars are drawn as
    for the scene's clusters, from a random stream of their own.  Clusters
    outside the simulated CCDs are skipped; `SimulatedField.placement` says
    which were placed where.

    Parameters
    ----------
    field : int or str, optional
        PAndAS field number or name (``"m211"``); default: the field that
        contains the centre of M31.
    n_ccds : int
        Number of CCDs (1-36); the *n_ccds* CCDs nearest the field centre
        are simulated.
    ccd_shape : (int, int)
        (ny, nx) of each CCD; PAndAS has (4612, 2048).  Gaps scale with it.
    out_dir : str or path-like
        Existing output directory.
    seed : int or None
        Random seed; the same seed gives identical files on any machine.
    overwrite : bool
        Replace existing output files.
    progress : bool
        Show a progress bar over CCDs (default False).
    instrument : `~m31clusters.simulate.Instrument`
        Instrument model (default `PANDAS`); must have bands g and i.
    scene : `~m31clusters.simulate.Scene`
        Scene model (default `M31_SCENE`).
    catalog : bool
        Also write the ``m###p.ascd`` catalogue.
    clusters : `~astropy.table.Table`, optional
        Clusters to place instead of drawing them: a Table or
        `~m31clusters.catalog.Catalog` with a ``coord`` SkyCoord column (or
        ``ra`` and ``dec`` columns with angle units), ``g`` and ``i`` AB
        magnitudes and ``Reff``, the half-light radius, with angle (or
        length) units.  An optional ``population`` column (``"young"``:
        EFF profile, ``"old"``: King profile) sets the profile; otherwise
        clusters with g - i < 0.8 are young.  Masked or non-finite rows are
        skipped (status ``"invalid"``).

    Returns
    -------
    `SimulatedField`
        The paths written (``.paths`` lists them all), the truth table and
        the catalogue.

    Raises
    ------
    ValueError
        Unknown field, n_ccds outside 1-36, bad ccd_shape, a *clusters*
        table without a required column or with a column lacking its units
        (the message names the column).
    FileNotFoundError
        If *out_dir* does not exist.
    FileExistsError
        If an output file exists and *overwrite* is False (nothing is written).

    Examples
    --------
    >>> import tempfile
    >>> from m31clusters.simulate import simulate_field
    >>> sim = simulate_field(field=211, n_ccds=2, ccd_shape=(200, 100),
    ...                      out_dir=tempfile.mkdtemp(), seed=1, progress=False)
    >>> sorted(sim.images), sim.images["g"].name, sim.catalog_path.name
    (['g', 'i'], 'm211_g.fit', 'm211p.ascd')
    >>> from astropy.io import fits
    >>> with fits.open(sim.images["i"]) as hdul:
    ...     len(hdul), hdul[1].data.shape, hdul[1].header["SEEING"] > 0
    (3, (200, 100), True)
    """
    field, center = _resolve_field(field)
    if isinstance(n_ccds, bool) or not isinstance(n_ccds, (int, np.integer)) \
            or not 1 <= n_ccds <= 36:
        raise ValueError(f"n_ccds must be an integer in 1-36, got {n_ccds!r}")
    try:
        ny, nx = (int(v) for v in ccd_shape)
    except (TypeError, ValueError):
        raise ValueError(f"ccd_shape must be (ny, nx), got {ccd_shape!r}") from None
    if ny < 16 or nx < 16:
        raise ValueError(f"ccd_shape must be at least (16, 16), got {ccd_shape!r}")
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument, got {type(instrument).__name__}")
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a Scene, got {type(scene).__name__}")
    given = None if clusters is None else _check_clusters(clusters, scene)
    bands = ("g", "i")
    for b in bands:
        instrument.check_band(b)
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"output directory {str(out_dir)!r} does not exist")
    paths = {b: out_dir / f"m{field:03d}_{b}.fit" for b in bands}
    cat_path = out_dir / f"m{field:03d}p.ascd"
    truth_path = out_dir / f"m{field:03d}_truth.ecsv"
    for p in [*paths.values(), truth_path] + ([cat_path] if catalog else []):
        check_overwrite(p, overwrite)

    seq = np.random.SeedSequence(seed)
    children = seq.spawn(_NCOL * _NROW + 1)
    # Streams of the given clusters' shapes and members, one per CCD (spawned
    # after the others, so that the rest of the field does not depend on them).
    cluster_seqs = seq.spawn(_NCOL * _NROW)
    field_rng = np.random.default_rng(children[-1])
    fwhm_as, beta = instrument.draw_psf(field_rng)
    fwhm_pix = {b: fwhm_as[b] / instrument.pixel_scale for b in bands}

    corners, size = megacam_layout((ny, nx))
    centres = corners + np.array([nx / 2, ny / 2])
    dist = np.hypot(*(centres - np.array(size) / 2).T)
    ccds = np.sort(np.argsort(dist, kind="stable")[:n_ccds])

    truths, cats = [], []
    with atomic_path(paths["g"], overwrite) as tmp_g, atomic_path(paths["i"], overwrite) as tmp_i:
        tmps = {"g": tmp_g, "i": tmp_i}
        for b in bands:
            hdr = fits.Header()
            hdr["OBJECT"] = (f"m{field:03d}", "PAndAS field")
            hdr["FIELD"] = (field, "PAndAS field number")
            hdr["SIMULATE"] = (True, "simulated by m31clusters.simulate")
            hdr["SEED"] = (-1 if seed is None else int(seed), "random seed (-1: none)")
            hdr["NCCD"] = (len(ccds), "CCD extensions")
            hdr["RA"] = (center.ra.deg, "[deg] field centre")
            hdr["DEC"] = (center.dec.deg, "[deg] field centre")
            hdr["PSFBETA"] = (beta, "Moffat beta of the PSF")
            for card in instrument.header_cards(b, fwhm_as[b]):
                hdr[card[0]] = card[1:]
            fits.PrimaryHDU(header=hdr).writeto(tmps[b], overwrite=True)
        for ccd in progress_bar(ccds, progress=progress, desc=f"simulating m{field:03d}",
                                unit="CCD"):
            wcs = _ccd_wcs(center, corners[ccd], size, instrument.pixel_scale)
            rng = np.random.default_rng(children[ccd])
            here = None
            if given is not None:
                here = _clusters_on_ccd(given, wcs, (ny, nx), center)
                here["seed"] = cluster_seqs[ccd]
            images, truth, cat = _simulate_ccd(rng, wcs, (ny, nx), int(ccd), field, fwhm_pix,
                                               beta, instrument, scene, catalog, here)
            for b in bands:
                hdr = wcs.to_header()
                hdr["EXTNAME"] = f"ccd{int(ccd):02d}"
                hdr["CCDNUM"] = (int(ccd), "MegaCam CCD number")
                for card in instrument.header_cards(b, fwhm_as[b]):
                    hdr[card[0]] = card[1:]
                hdr["PSFBETA"] = (beta, "Moffat beta of the PSF")
                fits.append(tmps[b], images[b], hdr)
            del images
            truths.append(truth)
            cats.append(cat)
        truth = vstack(truths, metadata_conflicts="silent") if truths else Table()
        truth["id"] = np.arange(len(truth))
        _describe_truth(truth)
        truth.meta.update({"field": field, "seed": seed, "fwhm_g": fwhm_as["g"],
                           "fwhm_i": fwhm_as["i"], "beta": beta,
                           "zeropoint_g": instrument.zeropoint("g"),
                           "zeropoint_i": instrument.zeropoint("i")})
        with atomic_path(truth_path, overwrite) as tmp:
            _write_ecsv_chunked(truth, tmp)
        catalogue = vstack(cats, metadata_conflicts="silent") if catalog else Table()
        if catalog:
            _write_ascd(catalogue, cat_path, overwrite)
    placement = None if given is None else _placement(given, truth)
    return SimulatedField(field=field, images=paths, catalog_path=cat_path if catalog else None,
                          truth_path=truth_path, truth=truth, catalog=catalogue,
                          placement=placement)


def _write_ecsv_chunked(table, path, chunk=50000):
    """Write *table* as ECSV in row chunks (astropy's writer holds every row as text)."""
    import io

    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, max(len(table), 1), chunk):
            buf = io.StringIO()
            table[start:start + chunk].write(buf, format="ascii.ecsv")
            text = buf.getvalue()
            if start:
                # Drop the YAML header and the column-name line of later chunks.
                lines = text.splitlines(keepends=True)
                k = 0
                while k < len(lines) and lines[k].startswith("#"):
                    k += 1
                text = "".join(lines[k + 1:])
            f.write(text)


def _write_ascd(table, path, overwrite):
    from ..io.pandas_ascd import write_pandas_ascd

    write_pandas_ascd(table, path, overwrite=overwrite)


def _simulate_ccd(rng, wcs, shape, ccd, field, fwhm_pix, beta, instrument, scene, catalog,
                  given=None):
    """Objects, images and catalogue rows of one CCD (*given*: clusters to place)."""
    # scipy.signal costs ~0.4 s to import: only pay it when a field is simulated
    from scipy.signal import oaconvolve

    ny, nx = shape
    bands = ("g", "i")
    margin = 20
    box = (-margin - 0.5, nx - 0.5 + margin, -margin - 0.5, ny - 0.5 + margin)
    pix_area = (instrument.pixel_scale / 60.0) ** 2
    area = (nx + 2 * margin) * (ny + 2 * margin) * pix_area
    dens = _Densities(scene)
    depth_i = instrument.depth("i")
    faint0 = depth_i + 1.0

    # Crowding limit from the densest point of the CCD.
    m31_max = sum(_max_density(dens, pop, box, wcs) / 1.05 for pop in ("disc_old", "disc_young"))
    faint = _crowd_faint(m31_max, scene, faint0)

    cols = {k: [] for k in ("x", "y", "gmag", "imag", "population")}
    for pop in ("disc_old", "disc_young", "halo", "foreground"):
        lim = faint if pop != "foreground" else faint0
        x, y = _thinned(rng, dens, pop, _scene.number_ratio(pop, lim), area, box, wcs)
        g, i = _scene.sample_stars(rng, x.size, pop, lim)
        for k, v in zip(("x", "y", "gmag", "imag"), (x, y, g, i), strict=True):
            cols[k].append(v)
        cols["population"].append(np.full(x.size, pop))
    stars = {k: np.concatenate(v) for k, v in cols.items()}

    extended = []
    pc_per_pix = scene.pc_per_arcsec * instrument.pixel_scale
    for kind in ("young", "old"):
        name = "young_cluster" if kind == "young" else "old_cluster"
        x, y = _thinned(rng, dens, name, 1.0, area, box, wcs)
        gmag = _scene.sample_cluster_mags(rng, x.size, kind, scene)
        cls = _scene.sample_clusters(rng, x.size, kind, scene.cluster_mag_range,
                                     scene.cluster_reff_range, scene.resolved_fraction,
                                     gmag=gmag, member_limit=scene.member_limit)
        for xx, yy, cl in zip(x, y, cls, strict=True):
            obj = cluster_obj(cl, xx, yy, pc_per_pix)
            obj.update(kind="cluster", population=kind, reff_pc=cl["reff_pc"], cluster_row=-1)
            extended.append(obj)
    if given is not None:
        # The scene's own clusters were drawn above only so that everything
        # else drawn from *rng* is the same with and without given clusters.
        extended = _given_cluster_objs(given, scene, pc_per_pix)
    ngal = rng.poisson(scene.galaxy_density * _scene.number_ratio("galaxy", faint0) * area)
    gals = _scene.sample_galaxies(rng, ngal, faint0)
    gx = rng.uniform(box[0], box[1], ngal)
    gy = rng.uniform(box[2], box[3], ngal)
    for j in range(ngal):
        extended.append({"x": gx[j], "y": gy[j], "profile": "sersic", "shape": gals["shape"][j],
                         "reff_pix": gals["reff_arcsec"][j] / instrument.pixel_scale,
                         "q": gals["q"][j], "theta": gals["theta"][j],
                         "gmag": gals["gmag"][j], "imag": gals["imag"][j], "members": None,
                         "kind": "galaxy", "population": "background", "reff_pc": np.nan,
                         "cluster_row": -1})

    images = {}
    smooth_at = {}
    xall = np.concatenate([stars["x"], [o["x"] for o in extended]])
    yall = np.concatenate([stars["y"], [o["y"] for o in extended]])
    ixall = np.clip(np.round(xall).astype(int), 0, nx - 1)
    iyall = np.clip(np.round(yall).astype(int), 0, ny - 1)
    # Crowding noise: the unresolved stars fluctuate like point sources of
    # random flux; the same white field in both bands (the same stars).
    white = rng.standard_normal((ny, nx))
    for b in bands:
        zp = instrument.zeropoint(b)
        smooth, amp = _smooth_light(ny, nx, wcs, dens, faint, b, zp, pix_area)
        smooth_at[b] = smooth[iyall, ixall]
        psf_r = psf_box_radius(fwhm_pix[b])
        amp *= white
        model = oaconvolve(amp, render_point_box(fwhm_pix[b], beta, psf_r, 0.0, 0.0),
                           mode="same")
        del amp
        model += smooth
        del smooth
        mags = stars["gmag"] if b == "g" else stars["imag"]
        add_stars(model, stars["x"], stars["y"], instrument.mag_to_counts(mags, b),
                  fwhm_pix[b], beta, instrument.pixel_noise(b))
        intrinsic = np.zeros((ny, nx))
        for obj in extended:
            flux = float(instrument.mag_to_counts(obj["gmag" if b == "g" else "imag"], b))
            frac = 0.0
            mem = obj.get("members")
            if mem is not None:
                mfrac = mem["frac_g" if b == "g" else "frac_i"]
                frac = float(np.sum(mfrac))
                add_stars(model, mem["x"], mem["y"], flux * mfrac, fwhm_pix[b], beta,
                          instrument.pixel_noise(b))
            reff = max(obj["reff_pix"], 1e-3)
            half = box_half(obj["profile"], obj["shape"], reff, max_half=200)
            (ix,), (fx,) = split_position([obj["x"]])
            (iy,), (fy,) = split_position([obj["y"]])
            boxim = render_intrinsic(obj["profile"], obj["shape"], reff, obj["q"], obj["theta"],
                                     flux * (1 - frac), fx, fy, half)
            add_box(intrinsic, boxim, int(ix), int(iy))
        if extended:
            ker = psf_kernel(fwhm_pix[b], beta, psf_box_radius(fwhm_pix[b]))
            model += oaconvolve(intrinsic, ker, mode="same")
        del intrinsic
        images[b] = add_noise(model, b, instrument, rng)
        del model

    # Truth table.
    n_s, n_e = stars["x"].size, len(extended)
    x = np.concatenate([stars["x"], [o["x"] for o in extended]])
    y = np.concatenate([stars["y"], [o["y"] for o in extended]])
    world = wcs.pixel_to_world(x, y)
    t = Table()
    t["kind"] = np.concatenate([np.full(n_s, "star"), [o["kind"] for o in extended]]).astype("U7")
    t["population"] = np.concatenate(
        [stars["population"], [o["population"] for o in extended]]).astype("U10")
    t["PAndAS"] = np.full(n_s + n_e, field)
    t["ccd"] = np.full(n_s + n_e, ccd)
    t["x"] = x * u.pix
    t["y"] = y * u.pix
    t["ra"] = world.ra.deg * u.deg
    t["dec"] = world.dec.deg * u.deg
    t["gmag"] = np.concatenate([stars["gmag"], [o["gmag"] for o in extended]]) * u.mag
    t["imag"] = np.concatenate([stars["imag"], [o["imag"] for o in extended]]) * u.mag
    reff_pix = np.concatenate([np.zeros(n_s), [o["reff_pix"] for o in extended]])
    t["reff_arcsec"] = reff_pix * instrument.pixel_scale * u.arcsec
    t["reff_pc"] = np.concatenate([np.zeros(n_s), [o["reff_pc"] for o in extended]]) * u.pc
    t["profile"] = np.concatenate([np.full(n_s, "psf"), [o["profile"] for o in extended]])
    t["shape"] = np.concatenate([np.full(n_s, np.nan), [o["shape"] for o in extended]])
    t["q"] = np.concatenate([np.ones(n_s), [o["q"] for o in extended]])
    t["theta"] = np.degrees(np.concatenate([np.zeros(n_s), [o["theta"] for o in extended]])) \
        * u.deg
    t["n_members"] = np.concatenate(
        [np.zeros(n_s, int),
         [0 if o.get("members") is None else len(o["members"]["x"]) for o in extended]])
    t["on_ccd"] = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    t["faint_limit"] = np.full(n_s + n_e, faint) * u.mag
    t["cluster_row"] = np.concatenate(
        [np.full(n_s, -1), np.array([o["cluster_row"] for o in extended], dtype=int)])
    _hard_negative_columns(t, images, margin, fwhm_pix, instrument)
    del white
    cat = _observe(t, smooth_at, fwhm_pix, beta, instrument, rng, field, ccd) if catalog else None
    return images, t, cat


def _crowd_faint(density, scene, faint):
    return round(float(_scene.crowding_limit(density, scene, faint)), 3)


def _observe(t, smooth_at, fwhm_pix, beta, instrument, rng, field, ccd):
    """Simulated PAndAS catalogue rows (detections with errors and flags) from a truth table."""
    on = np.asarray(t["on_ccd"])
    reff_pix = np.asarray(t["reff_arcsec"]) / instrument.pixel_scale
    out = {}
    snr = {}
    for b in ("g", "i"):
        mag = np.asarray(t["gmag" if b == "g" else "imag"])
        flux = instrument.mag_to_counts(mag, b)
        psf = instrument.psf_image(b, fwhm=fwhm_pix[b] * instrument.pixel_scale, beta=beta)
        s2, s3 = np.sum(psf**2), np.sum(psf**3)
        sigma_psf = fwhm_pix[b] / 2.3548
        sigma_src = reff_pix / 1.1774
        grow = _size_growth(reff_pix, fwhm_pix[b])
        g = instrument.gain
        back = (instrument.sky_counts(b) + smooth_at[b]) * g + instrument.stack_read_noise()**2
        var_e = flux * g * s3 / s2**2 / np.sqrt(grow) + back * grow / s2
        err = np.sqrt(var_e) / g
        snr[b] = flux / err
        meas = flux + err * rng.standard_normal(flux.size)
        out[b] = (meas, err)
        # Morphology: noisy measurement of the size against the PSF.
        sigma_obs = np.hypot(sigma_psf, sigma_src)
        dsig = sigma_obs / np.maximum(snr[b], 1e-3)
        t_ext = (sigma_obs + dsig * rng.standard_normal(flux.size) - sigma_psf) / dsig
        flag = np.where(t_ext < 2, -1, np.where(t_ext < 3, -2, np.where(t_ext < 5, 2, 1)))
        flag = np.where(snr[b] < 5, 0, flag)
        peak = _peak_counts(flux, reff_pix, b, fwhm_pix[b], beta, instrument)
        flag = np.where(peak >= instrument.saturation, -9, flag)
        out[b + "_flag"] = flag
        out[b + "_ext"] = t_ext
    det = on & (snr["i"] >= 5) & (snr["g"] >= 3) & (out["g"][0] > 0) & (out["i"][0] > 0)
    sel = np.flatnonzero(det)
    c = Table()
    pos_err = {b: fwhm_pix[b] / (2.3548 * np.maximum(snr[b][sel], 1.0)) for b in ("g", "i")}
    xg = np.asarray(t["x"])[sel] + pos_err["g"] * rng.standard_normal(sel.size)
    yg = np.asarray(t["y"])[sel] + pos_err["g"] * rng.standard_normal(sel.size)
    xi = np.asarray(t["x"])[sel] + pos_err["i"] * rng.standard_normal(sel.size)
    yi = np.asarray(t["y"])[sel] + pos_err["i"] * rng.standard_normal(sel.size)
    ra = np.asarray(t["ra"])[sel]
    dec = np.asarray(t["dec"])[sel]
    # Position from the i-band measurement (its offset from truth, in degrees).
    scale = instrument.pixel_scale / 3600.0
    dra = -(xi - np.asarray(t["x"])[sel]) * scale / np.cos(np.radians(dec))
    ddec = (yi - np.asarray(t["y"])[sel]) * scale
    c["RA"] = (ra + dra) * u.deg
    c["Dec"] = (dec + ddec) * u.deg
    c["iccd"] = np.full(sel.size, ccd)
    c["xg"] = (xg + 1.0) * u.pix  # FITS 1-based pixels
    c["yg"] = (yg + 1.0) * u.pix
    for b in ("g", "i"):
        meas, err = out[b][0][sel], out[b][1][sel]
        c[b] = (instrument.zeropoint(b) - 2.5 * np.log10(meas)) * u.mag
        c["d" + b] = 1.0857 * err / meas * u.mag
        if b == "g":
            c["ig"] = out["g_flag"][sel]
            c["xi"] = (xi + 1.0) * u.pix
            c["yi"] = (yi + 1.0) * u.pix
        else:
            c["ii"] = out["i_flag"][sel]
    c["ia"] = out["i_ext"][sel]
    c["field"] = np.full(sel.size, field)
    c["truth_row"] = sel
    return c


# ---------------------------------------------------------------------------
# A given cluster population
# ---------------------------------------------------------------------------
def _column_values(table, name, unit, what):
    """Float values of column *name* in *unit* (NaN where masked); errors name the column."""
    col = table[name]
    if hasattr(col, "filled"):
        try:
            col = col.filled(np.nan)
        except (TypeError, ValueError):
            raise ValueError(f"clusters column {name!r} must hold numbers ({what})") from None
    col_unit = getattr(col, "unit", None)
    if unit is None:  # magnitudes: no unit or mag
        if col_unit is not None and col_unit not in (u.mag, u.dimensionless_unscaled):
            raise u.UnitTypeError(
                f"clusters column {name!r} must hold AB magnitudes (no unit or mag), "
                f"got unit {col_unit!s}")
        values = np.asarray(getattr(col, "value", col), dtype=float)
    else:
        if col_unit is None:
            raise ValueError(f"clusters column {name!r} has no unit: give it {what} units "
                             f"(e.g. {name} in {unit!s})")
        try:
            values = u.Quantity(col).to_value(unit)
        except u.UnitConversionError:
            raise u.UnitTypeError(f"clusters column {name!r} must have {what} units, "
                                  f"got {col_unit!s}") from None
        values = np.asarray(values, dtype=float)
    return values.reshape(len(table))


def _check_clusters(clusters, scene):
    """Validated arrays of a given cluster catalogue (see `simulate_field`)."""
    if not isinstance(clusters, Table):
        raise TypeError("clusters must be an astropy Table or m31clusters Catalog, "
                        f"got {type(clusters).__name__}")
    names = clusters.colnames
    missing = [c for c in ("g", "i", "Reff") if c not in names]
    if "coord" not in names and not ("ra" in names and "dec" in names):
        missing.insert(0, "coord (or ra and dec)")
    if missing:
        raise ValueError(f"clusters table lacks column(s) {', '.join(missing)}; "
                         f"it has {names}")
    n = len(clusters)
    if "coord" in names:
        coord = clusters["coord"]
        if not isinstance(coord, SkyCoord):
            raise TypeError(f"clusters column 'coord' must be a SkyCoord, "
                            f"got {type(coord).__name__}")
        coord = coord.icrs
        lon, lat = coord.ra.deg, coord.dec.deg
    else:
        lon = _column_values(clusters, "ra", u.deg, "angle")
        lat = _column_values(clusters, "dec", u.deg, "angle")
    lon = np.asarray(lon, dtype=float).reshape(n)
    lat = np.asarray(lat, dtype=float).reshape(n)
    g = _column_values(clusters, "g", None, "magnitude")
    i = _column_values(clusters, "i", None, "magnitude")
    col = clusters["Reff"]
    unit = getattr(col, "unit", None)
    if unit is not None and u.Unit(unit).is_equivalent(u.pc):
        reff_arcsec = _column_values(clusters, "Reff", u.pc, "length") / scene.pc_per_arcsec
    else:
        reff_arcsec = _column_values(clusters, "Reff", u.arcsec, "angle (or length)")
    if "population" in names:
        pop = np.asarray(clusters["population"]).astype(str)
        bad = np.flatnonzero(~np.isin(pop, ("young", "old")))
        if bad.size:
            raise ValueError(f"clusters column 'population' must be 'young' or 'old'; "
                             f"row {bad[0]} has {str(pop[bad[0]])!r}")
        young = pop == "young"
    else:
        young = (g - i) < 0.8
    valid = (np.isfinite(lon) & np.isfinite(lat) & np.isfinite(g) & np.isfinite(i)
             & np.isfinite(reff_arcsec) & (reff_arcsec > 0))
    lon_ok, lat_ok = np.where(valid, lon, 0.0), np.where(valid, lat, 0.0)
    return {"coord": SkyCoord(lon_ok, lat_ok, unit="deg", frame="icrs"), "g": g, "i": i,
            "reff_arcsec": reff_arcsec, "young": young, "valid": valid}


def _clusters_on_ccd(given, wcs, shape, center, margin=20):
    """The given clusters whose centres fall on one CCD or in its margin."""
    ny, nx = shape
    near = given["valid"] & (given["coord"].separation(center).deg < 2.0)
    rows = np.flatnonzero(near)
    x, y = (np.asarray(v, dtype=float) for v in wcs.world_to_pixel(given["coord"][rows]))
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    keep = (np.isfinite(x) & np.isfinite(y) & (x >= -margin - 0.5) & (x < nx - 0.5 + margin)
            & (y >= -margin - 0.5) & (y < ny - 0.5 + margin))
    rows = rows[keep]
    return {"row": rows, "x": x[keep], "y": y[keep], "g": given["g"][rows],
            "i": given["i"][rows], "reff_arcsec": given["reff_arcsec"][rows],
            "young": given["young"][rows]}


def _given_cluster_objs(here, scene, pc_per_pix):
    """Render dicts of the clusters placed on one CCD."""
    rng = np.random.default_rng(here["seed"])
    kinds = np.where(here["young"], "young", "old")
    reff_pc = here["reff_arcsec"] * scene.pc_per_arcsec
    cls = _scene.sample_clusters(rng, here["row"].size, kinds, scene.cluster_mag_range,
                                 scene.cluster_reff_range, scene.resolved_fraction,
                                 gmag=here["g"], imag=here["i"], reff_pc=reff_pc,
                                 member_limit=scene.member_limit)
    objs = []
    for k, cl in enumerate(cls):
        obj = cluster_obj(cl, float(here["x"][k]), float(here["y"][k]), pc_per_pix)
        obj.update(kind="cluster", population=cl["population"], reff_pc=cl["reff_pc"],
                   cluster_row=int(here["row"][k]))
        objs.append(obj)
    return objs


def _placement(given, truth):
    """Where each given cluster went (see `SimulatedField.placement`)."""
    n = given["g"].size
    t = Table()
    t["row"] = np.arange(n)
    status = np.where(given["valid"], "outside", "invalid").astype("U7")
    ccd = np.full(n, -1)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    tid = np.full(n, -1)
    sel = np.flatnonzero((np.asarray(truth["cluster_row"]) >= 0) & np.asarray(truth["on_ccd"]))
    rows = np.asarray(truth["cluster_row"])[sel]
    status[rows] = "placed"
    ccd[rows] = np.asarray(truth["ccd"])[sel]
    x[rows] = np.asarray(truth["x"])[sel]
    y[rows] = np.asarray(truth["y"])[sel]
    tid[rows] = np.asarray(truth["id"])[sel]
    t["status"] = status
    t["placed"] = status == "placed"
    t["ccd"] = ccd
    t["x"] = x * u.pix
    t["y"] = y * u.pix
    t["truth_id"] = tid
    return t


# ---------------------------------------------------------------------------
# What each object is: the columns that classify false positives
# ---------------------------------------------------------------------------
#: Radius (arcsec) of the circle in which the truth's ``crowding`` counts stars.
_CROWDING_RADIUS = 15.0
#: Stars brighter than this g count for ``crowding``.
_CROWDING_G = 23.0


def _size_growth(reff_pix, fwhm_pix):
    """Effective-area growth of a source of half-light radius *reff_pix* over a point source."""
    sigma_psf = fwhm_pix / 2.3548
    return 1.0 + (np.asarray(reff_pix) / 1.1774 / sigma_psf) ** 2


def _peak_counts(flux, reff_pix, band, fwhm_pix, beta, instrument):
    """Approximate peak pixel value (sky included, ADU) of sources of total *flux*."""
    psf = instrument.psf_image(band, fwhm=fwhm_pix * instrument.pixel_scale, beta=beta)
    return flux * psf.max() / _size_growth(reff_pix, fwhm_pix) + instrument.sky_counts(band)


def _circle_inside(x, y, r, box, n=64, chunk=20000):
    """Fraction of the circle of radius *r* about each (x, y) that lies inside *box*."""
    k = np.arange(n) + 0.5
    rad = r * np.sqrt(k / n)
    ang = k * math.pi * (3.0 - math.sqrt(5.0))  # a sunflower: even cover of the disc
    dx, dy = rad * np.cos(ang), rad * np.sin(ang)
    out = np.empty(x.size)
    for a in range(0, x.size, chunk):
        px = x[a:a + chunk, None] + dx
        py = y[a:a + chunk, None] + dy
        inside = (px >= box[0]) & (px < box[1]) & (py >= box[2]) & (py < box[3])
        out[a:a + chunk] = inside.mean(axis=1)
    return out


def _hard_negative_columns(t, images, margin, fwhm_pix, instrument):
    """Add saturation, edge distance, crowding and blending columns to a CCD's truth."""
    from scipy.ndimage import maximum_filter
    from scipy.spatial import cKDTree

    ny, nx = images["g"].shape
    x, y = np.asarray(t["x"], dtype=float), np.asarray(t["y"], dtype=float)
    on = np.asarray(t["on_ccd"])
    ix = np.clip(np.floor(x + 0.5).astype(int), 0, nx - 1)
    iy = np.clip(np.floor(y + 0.5).astype(int), 0, ny - 1)
    sat = np.zeros(len(t), bool)
    for b, image in images.items():
        level = (instrument.saturation - instrument.sky_counts(b)) * (1 - 1e-6)
        near_sat = maximum_filter(image >= level, size=3, mode="constant")
        sat |= on & near_sat[iy, ix]
    t["saturated"] = sat
    t["edge_distance"] = np.minimum.reduce(
        [x + 0.5, nx - 0.5 - x, y + 0.5, ny - 0.5 - y]) * u.pix
    # Crowding: g < 23 stars within 15 arcsec, per arcmin^2, corrected for the
    # part of the circle beyond the simulated area; the object itself not counted.
    gmag = np.asarray(t["gmag"], dtype=float)
    bright = (np.asarray(t["kind"]) == "star") & (gmag < _CROWDING_G)
    r = _CROWDING_RADIUS / instrument.pixel_scale
    xy = np.column_stack([x, y])
    if bright.any():
        counts = cKDTree(xy[bright]).query_ball_point(xy, r, return_length=True)
        counts = np.asarray(counts, dtype=float) - bright
    else:
        counts = np.zeros(len(t))
    box = (-margin - 0.5, nx - 0.5 + margin, -margin - 0.5, ny - 0.5 + margin)
    frac = np.maximum(_circle_inside(x, y, r, box), 1.0 / 64)
    t["crowding"] = counts / (frac * math.pi * (_CROWDING_RADIUS / 60.0) ** 2) / u.arcmin**2
    # Blends: other objects within one i-band FWHM.
    fg = 10 ** (-0.4 * gmag)
    n_blend = np.zeros(len(t), int)
    total = fg.copy()
    if len(t) > 1:
        pairs = cKDTree(xy).query_pairs(fwhm_pix["i"], output_type="ndarray")
        if pairs.size:
            a, b = pairs[:, 0], pairs[:, 1]
            np.add.at(total, a, fg[b])
            np.add.at(total, b, fg[a])
            np.add.at(n_blend, a, fg[b] >= 0.25 * fg[a])
            np.add.at(n_blend, b, fg[a] >= 0.25 * fg[b])
    t["n_blend"] = n_blend
    t["blend_gmag"] = -2.5 * np.log10(total) * u.mag


_TRUTH_DESCRIPTIONS = {
    "kind": "star, cluster or galaxy (a star with n_blend > 0 is part of a blend)",
    "population": "disc_old, disc_young (young blue disc stars), halo, foreground (Milky Way); "
                  "young/old (clusters); background (galaxies)",
    "PAndAS": "PAndAS field number",
    "ccd": "MegaCam CCD number (image extension CCDNUM)",
    "x": "0-based x pixel in the CCD image",
    "y": "0-based y pixel in the CCD image",
    "ra": "right ascension (ICRS)",
    "dec": "declination (ICRS)",
    "gmag": "total g magnitude (AB)",
    "imag": "total i magnitude (AB)",
    "reff_arcsec": "half-light radius along the major axis (0 for stars)",
    "reff_pc": "half-light radius at the scene's distance (clusters; 0 stars, NaN galaxies)",
    "profile": "psf, king, eff or sersic",
    "shape": "King concentration c, EFF gamma or Sersic n",
    "q": "axis ratio",
    "theta": "major-axis angle from +x",
    "n_members": "cluster stars drawn individually",
    "on_ccd": "centre on the CCD (else in the 20-pixel margin around it)",
    "faint_limit": "faintest i of the M31 stars drawn one by one on this CCD (crowding limit)",
    "cluster_row": "row of the clusters= table this cluster came from (-1: not given)",
    "saturated": "a pixel within one pixel of the centre is saturated in g or i (by this "
                 "object or a brighter neighbour)",
    "edge_distance": "distance of the centre from the nearest CCD edge (negative: off the CCD)",
    "crowding": f"density of g < {_CROWDING_G:g} stars within {_CROWDING_RADIUS:g} arcsec "
                "(the object itself not counted)",
    "n_blend": "other objects within one i-band FWHM with at least 1/4 of this one's g flux",
    "blend_gmag": "g magnitude of this object plus every object within one i-band FWHM",
    "id": "row number",
}


def _describe_truth(t):
    for name, text in _TRUTH_DESCRIPTIONS.items():
        if name in t.colnames:
            t[name].description = text
