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
from . import scene as _scene
from .instrument import PANDAS, Instrument, _render_point_box
from .profiles import _box_half, add_box, psf_kernel, render_intrinsic, split_position
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
        Every simulated object (stars, clusters, galaxies).
    catalog : `~astropy.table.Table`
        The simulated source catalogue (the content of ``m###p.ascd``).
    """

    field: int
    images: dict
    catalog_path: Path
    truth_path: Path
    truth: Table
    catalog: Table


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
        kpc_per_arcmin = scene.distance * math.pi / (180 * 60)
        self.gc_norm = scene.gc_number / (math.pi * 3.0**2) * kpc_per_arcmin**2

    def radii(self, wcs, x, y):
        """Deprojected and projected radii (kpc) of pixel positions (x, y)."""
        world = wcs.pixel_to_world(np.ravel(x), np.ravel(y))
        dist = self.scene.distance * u.kpc
        rdep = deprojected_radius(world, distance=dist).to_value(u.kpc)
        rproj = projected_radius(world, distance=dist).to_value(u.kpc)
        return rdep.reshape(np.shape(x)), rproj.reshape(np.shape(x))

    def __call__(self, name, rdep, rproj):
        s = self.scene
        if name == "disc_old":
            return s.disc_density * (1 - s.disc_young_fraction) * np.exp(
                -rdep / s.disc_scale_length)
        if name == "disc_young":
            return s.disc_density * s.disc_young_fraction * np.exp(-rdep / s.disc_scale_length)
        if name == "halo":
            return s.halo_density * (np.maximum(rproj, 2.0) / 30.0) ** s.halo_slope
        if name == "foreground":
            return np.full(np.shape(rdep), s.foreground_density)
        if name == "young_cluster":
            return s.young_cluster_density * np.exp(-rdep / s.disc_scale_length)
        if name == "old_cluster":
            return self.gc_norm * (1 + rproj / 3.0) ** -3.0
        raise ValueError(name)  # pragma: no cover


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
    sel = fields["field"] == int(field)
    if not sel.any():
        raise ValueError(
            f"unknown PAndAS field {field}; valid numbers are {fields['field'].min()}-"
            f"{fields['field'].max()} (see m31clusters.geometry.pandas_fields())"
        )
    row = fields[sel][0]
    return int(field), SkyCoord(float(row["ra"]), float(row["dec"]), unit="deg", frame="icrs")


def simulate_field(field=None, n_ccds=36, ccd_shape=(4612, 2048), out_dir=".", seed=None,
                   overwrite=False, progress=True, *, instrument=PANDAS, scene=M31_SCENE,
                   catalog=True):
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
        Show a progress bar over CCDs.
    instrument : `~m31clusters.simulate.Instrument`
        Instrument model (default `PANDAS`); must have bands g and i.
    scene : `~m31clusters.simulate.Scene`
        Scene model (default `M31_SCENE`).
    catalog : bool
        Also write the ``m###p.ascd`` catalogue.

    Returns
    -------
    `SimulatedField`
        Paths, the truth table and the catalogue.

    Raises
    ------
    ValueError
        Unknown field, n_ccds outside 1-36, bad ccd_shape.
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
        iterator = ccds
        if progress:
            from tqdm.auto import tqdm
            iterator = tqdm(ccds, desc=f"simulating m{field:03d}", unit="CCD")
        for ccd in iterator:
            wcs = _ccd_wcs(center, corners[ccd], size, instrument.pixel_scale)
            rng = np.random.default_rng(children[ccd])
            images, truth, cat = _simulate_ccd(rng, wcs, (ny, nx), int(ccd), field, fwhm_pix,
                                               beta, instrument, scene, catalog)
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
        truth.meta.update({"field": field, "seed": seed, "fwhm_g": fwhm_as["g"],
                           "fwhm_i": fwhm_as["i"], "beta": beta,
                           "zeropoint_g": instrument.zeropoint("g"),
                           "zeropoint_i": instrument.zeropoint("i")})
        with atomic_path(truth_path, overwrite) as tmp:
            _write_ecsv_chunked(truth, tmp)
        catalogue = vstack(cats, metadata_conflicts="silent") if catalog else Table()
        if catalog:
            _write_ascd(catalogue, cat_path, overwrite)
    return SimulatedField(field=field, images=paths, catalog_path=cat_path if catalog else None,
                          truth_path=truth_path, truth=truth, catalog=catalogue)


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


def _simulate_ccd(rng, wcs, shape, ccd, field, fwhm_pix, beta, instrument, scene, catalog):
    """Objects, images and catalogue rows of one CCD."""
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
        cls = _scene.sample_clusters(rng, x.size, kind, scene.cluster_mag_range,
                                     scene.cluster_reff_range, scene.resolved_fraction,
                                     member_limit=scene.member_limit)
        from .stamps import _cluster_obj
        for xx, yy, cl in zip(x, y, cls, strict=True):
            obj = _cluster_obj(cl, xx, yy, pc_per_pix)
            obj.update(kind="cluster", population=kind, reff_pc=cl["reff_pc"])
            extended.append(obj)
    ngal = rng.poisson(scene.galaxy_density * _scene.number_ratio("galaxy", faint0) * area)
    gals = _scene.sample_galaxies(rng, ngal, faint0)
    gx = rng.uniform(box[0], box[1], ngal)
    gy = rng.uniform(box[2], box[3], ngal)
    for j in range(ngal):
        extended.append({"x": gx[j], "y": gy[j], "profile": "sersic", "shape": gals["shape"][j],
                         "reff_pix": gals["reff_arcsec"][j] / instrument.pixel_scale,
                         "q": gals["q"][j], "theta": gals["theta"][j],
                         "gmag": gals["gmag"][j], "imag": gals["imag"][j], "members": None,
                         "kind": "galaxy", "population": "background", "reff_pc": np.nan})

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
        psf_r = int(math.ceil(4.5 * fwhm_pix[b]))
        amp *= white
        model = oaconvolve(amp, _render_point_box(fwhm_pix[b], beta, psf_r, 0.0, 0.0),
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
            half = _box_half(obj["profile"], obj["shape"], reff, max_half=200)
            (ix,), (fx,) = split_position([obj["x"]])
            (iy,), (fy,) = split_position([obj["y"]])
            boxim = render_intrinsic(obj["profile"], obj["shape"], reff, obj["q"], obj["theta"],
                                     flux * (1 - frac), fx, fy, half)
            add_box(intrinsic, boxim, int(ix), int(iy))
        if extended:
            ker = psf_kernel(fwhm_pix[b], beta, int(math.ceil(4.5 * fwhm_pix[b])))
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
    t["field"] = np.full(n_s + n_e, field)
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
    del white
    cat = _observe(t, smooth_at, fwhm_pix, beta, instrument, rng, field, ccd) if catalog else None
    return images, t, cat


def _crowd_faint(density, scene, faint):
    from .stamps import _crowding_limit

    return round(float(_crowding_limit(density, scene, faint)), 3)


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
        grow = 1.0 + (sigma_src / sigma_psf) ** 2  # effective-area growth of extended sources
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
        peak = flux * psf.max() / grow + instrument.sky_counts(b)
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
