"""
Artificial-cluster injection into real images, for completeness measurements
and for training positives beyond a label catalogue's range.
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import Table
from astropy.wcs import WCS

from ..exceptions import BandError, NoWCSError
from ..utils._io import atomic_paths
from ..utils._validation import as_quantity
from . import scene as _scene
from ._common import check_mag_range, cluster_obj
from .instrument import PANDAS, Instrument
from .profiles import add_box, render_extended, split_position
from .render import add_stars
from .scene import M31_SCENE

__all__ = ["inject_clusters", "inject_field"]


def _unpack(image, band):
    """(2-D float array copy, header or None, wcs or None, kind) of one band's image."""
    if isinstance(image, (fits.ImageHDU, fits.PrimaryHDU, fits.CompImageHDU)):
        header = image.header
        data = image.data
        wcs = WCS(header) if header.get("CTYPE1") else None
        kind = "hdu"
    elif isinstance(image, NDData):
        header = image.meta if hasattr(image.meta, "get") else {}
        data = image.data
        wcs = image.wcs if image.wcs is not None else None
        kind = "nddata"
    else:
        header, wcs, kind = None, None, "array"
        data = image
    if data is None:
        raise ValueError(f"the {band}-band image has no data")
    data = np.array(data, dtype=np.float64, copy=True)
    if data.ndim != 2:
        raise ValueError(f"the {band}-band image must be 2-D, got shape {data.shape}")
    return data, header, wcs, kind


def inject_clusters(images, wcs=None, n=10, *, mag_range=(15.0, 22.0),
                    reff_range=(0.5, 10.0) * u.pc, young_fraction=0.5, positions=None,
                    margin=32 * u.pix, zeropoints=None, fwhm=None, beta=None, gain=None,
                    instrument=PANDAS, scene=M31_SCENE, add_noise=True, seed=None):
    """
    Add artificial star clusters to copies of real images.

    Clusters are drawn like those of `simulate_stamps` (young EFF / old King
    profiles, g = *mag_range*, log-uniform half-light radii in
    *reff_range*, some partly resolved), convolved with the image's Moffat
    PSF and added with their own Poisson noise.  The inputs are never
    modified.

    Parameters
    ----------
    images : dict
        Band name -> image: a 2-D array, an `~astropy.io.fits.ImageHDU` /
        `~astropy.io.fits.PrimaryHDU` or an `~astropy.nddata.NDData`.  All
        bands must share one pixel grid.
    wcs : `~astropy.wcs.WCS`, optional
        Celestial WCS of the images; default: that of the first HDU or
        NDData that has one.  Needed for the sky positions in the truth table
        and for *positions*.
    n : int
        Number of clusters (ignored when *positions* is given).
    mag_range : (float, float)
        Range of total g magnitudes (uniform).
    reff_range : `~astropy.units.Quantity` (2,)
        Range of half-light radii (log-uniform), length units.
    young_fraction : float
        Fraction of young (blue, EFF) clusters.
    positions : `~astropy.coordinates.SkyCoord` or `~astropy.units.Quantity`, optional
        Where to put the clusters: sky positions (needs a WCS), or 0-based
        pixel positions ``(x, y)`` as a Quantity of shape (N, 2) in
        ``u.pix``; default: uniform random pixels at least *margin* from
        the edges.
    margin : `~astropy.units.Quantity`
        Edge margin for random positions, in pixels (``u.pix``) or an angle
        (converted with the instrument's pixel scale); default 32 pixels.
    zeropoints, gain : dict or float, optional
        Per band AB zero point (1 ADU) and gain (e-/ADU); default: the HDU
        headers' ``MAGZPT``/``PHOTZP`` and ``GAIN``, else the *instrument*'s
        values.
    fwhm : `~astropy.units.Quantity` or dict, optional
        PSF FWHM, an angle (or ``u.pix``), one for all bands or a dict per
        band; default: the headers' ``SEEING`` (arcsec), else the
        *instrument*'s.
    beta : float, optional
        Moffat beta (default: header ``PSFBETA`` or the instrument's).
    instrument : `~m31clusters.simulate.Instrument`
        Supplies defaults (pixel scale, zero points, PSF, gain).
    scene : `~m31clusters.simulate.Scene`
        Supplies the distance (pc per arcsec).
    add_noise : bool
        Add the clusters' Poisson noise (default True).
    seed : int or None
        Random seed.

    Returns
    -------
    injected : dict
        Band -> copy of the input (same type: array, HDU or NDData) with
        the clusters added.
    truth : `~astropy.table.Table`
        One row per cluster: ``x``, ``y`` (0-based pixels), ``ra``, ``dec``
        (when a WCS is known), ``gmag``, ``imag``, ``reff_pc``,
        ``reff_arcsec``, ``population``, ``profile``, ``shape``, ``q``,
        ``n_members``.

    Raises
    ------
    BandError
        For a band the instrument does not know, or without a zero point.
    ValueError
        Images of different shapes, bad magnitudes or sizes, an image
        smaller than twice the margin, pixel *positions* not shaped (N, 2).
    TypeError
        A *margin*, *fwhm* or *positions* without units.
    NoWCSError
        If *positions* is given but no WCS is known.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.simulate import inject_clusters
    >>> g = np.zeros((200, 200)); i = np.zeros((200, 200))
    >>> out, truth = inject_clusters({"g": g, "i": i}, n=3, seed=0)
    >>> len(truth), out["g"].sum() > 0, g.sum()
    (3, np.True_, np.float64(0.0))

    At chosen pixels, with a given seeing:

    >>> import astropy.units as u
    >>> where = [[50.0, 60.0], [120.5, 80.0]] * u.pix
    >>> out, truth = inject_clusters({"g": g, "i": i}, positions=where, fwhm=0.8 * u.arcsec,
    ...                              seed=0)
    >>> truth["x"].tolist(), truth["y"].tolist()
    ([50.0, 120.5], [60.0, 80.0])
    """
    if not hasattr(images, "items") or not images:
        raise TypeError("images must be a non-empty dict mapping band name -> image")
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument, got {type(instrument).__name__}")
    mag_lo, mag_hi = check_mag_range(mag_range, "mag_range")
    reff_q = as_quantity(reff_range, u.pc, "reff_range").value
    if np.ndim(reff_q) != 1 or len(reff_q) != 2 or not 0 < reff_q[0] <= reff_q[1] \
            or not np.all(np.isfinite(reff_q)):
        raise ValueError(f"reff_range must be two positive sizes (low <= high), got {reff_range}")
    if not 0 <= young_fraction <= 1:
        raise ValueError(f"young_fraction must be in [0, 1], got {young_fraction}")
    unpacked = {}
    for band, image in images.items():
        if band not in ("g", "i") and band not in instrument.bands:
            raise BandError(f"unknown band {band!r}; known bands are {list(instrument.bands)}")
        unpacked[band] = _unpack(image, band)
    shapes = {b: v[0].shape for b, v in unpacked.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"images must share one pixel grid, got shapes {shapes}")
    ny, nx = next(iter(shapes.values()))
    if wcs is None:
        wcs = next((v[2] for v in unpacked.values() if v[2] is not None), None)
    if wcs is not None and not wcs.has_celestial:
        raise NoWCSError("the WCS given has no celestial axes")
    rng = np.random.default_rng(seed)
    margin_pix = _to_pixels(margin, "margin", instrument.pixel_scale)
    fwhm_arcsec = None
    if fwhm is not None:
        values = fwhm if hasattr(fwhm, "items") else {b: fwhm for b in unpacked}
        fwhm_arcsec = {b: _to_pixels(v, f"fwhm[{b!r}]" if hasattr(fwhm, "items") else "fwhm",
                                     instrument.pixel_scale) * instrument.pixel_scale
                       for b, v in values.items()}

    if positions is not None:
        if isinstance(positions, SkyCoord):
            if wcs is None:
                raise NoWCSError("positions were given but the images have no WCS; pass wcs=")
            px, py = wcs.world_to_pixel(positions)
        elif isinstance(positions, u.Quantity) and positions.unit == u.pix:
            xy = np.atleast_2d(positions.value).astype(float)
            if xy.ndim != 2 or xy.shape[1] != 2:
                raise ValueError(f"pixel positions must have shape (N, 2), got {positions.shape}")
            px, py = xy[:, 0], xy[:, 1]
        else:
            raise TypeError("positions must be a SkyCoord or a Quantity of pixel positions "
                            f"(N, 2) in u.pix, got {type(positions).__name__}")
        px, py = np.atleast_1d(px).astype(float), np.atleast_1d(py).astype(float)
        n = px.size
    else:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if nx <= 2 * margin_pix or ny <= 2 * margin_pix:
            raise ValueError(f"images of shape {(ny, nx)} are too small for margin={margin}")
        px = rng.uniform(margin_pix, nx - 1 - margin_pix, n)
        py = rng.uniform(margin_pix, ny - 1 - margin_pix, n)
    kinds = np.where(rng.random(n) < young_fraction, "young", "old")
    clusters = _scene.sample_clusters(rng, n, kinds, (mag_lo, mag_hi), tuple(reff_q),
                                      scene.resolved_fraction,
                                      member_limit=scene.member_limit)

    pc_per_pix = scene.pc_per_arcsec * instrument.pixel_scale
    objs = [cluster_obj(cl, x, y, pc_per_pix) for cl, x, y in zip(clusters, px, py, strict=True)]
    out = {}
    for band, (data, header, _, kind) in unpacked.items():
        hdr = header if header is not None else {}
        zp = _param(zeropoints, band, hdr, ("MAGZPT", "PHOTZP"), instrument.zeropoint, "zeropoint")
        fw = _param(fwhm_arcsec, band, hdr, ("SEEING",), lambda b: instrument.fwhm[b], "fwhm")
        gn = _param(gain, band, hdr, ("GAIN",), lambda b: instrument.gain, "gain")
        bt = float(beta if beta is not None else hdr.get("PSFBETA", instrument.beta))
        fwhm_pix = fw / instrument.pixel_scale
        model = np.zeros((ny, nx))
        mag_key = "gmag" if band == "g" else "imag"
        for obj in objs:
            flux = 10 ** (-0.4 * (obj[mag_key] - zp))
            frac = 0.0
            if obj["members"] is not None:
                mfrac = obj["members"]["frac_g" if band == "g" else "frac_i"]
                frac = float(np.sum(mfrac))
                add_stars(model, obj["members"]["x"], obj["members"]["y"], flux * mfrac,
                          fwhm_pix, bt, 1.0)
            (ix,), (fx,) = split_position([obj["x"]])
            (iy,), (fy,) = split_position([obj["y"]])
            box = render_extended(obj["profile"], obj["shape"], obj["reff_pix"], obj["q"],
                                  obj["theta"], flux * (1 - frac), fwhm_pix, bt, fx, fy,
                                  max_half=200)
            add_box(model, box, int(ix), int(iy))
        if add_noise:
            model = rng.poisson(np.clip(model * gn, 0, None)) / gn
        new = data + model
        if kind == "hdu":
            res = images[band].copy()
            res.data = new.astype(images[band].data.dtype, copy=False) \
                if images[band].data.dtype.kind == "f" else new
            res.header = images[band].header.copy()
        elif kind == "nddata":
            src = images[band]
            res = NDData(new, uncertainty=src.uncertainty, mask=src.mask, wcs=src.wcs,
                         meta=dict(src.meta), unit=src.unit)
        else:
            res = new.astype(np.asarray(images[band]).dtype, copy=False) \
                if np.asarray(images[band]).dtype.kind == "f" else new
        out[band] = res

    t = Table()
    t["x"] = px * u.pix
    t["y"] = py * u.pix
    if wcs is not None:
        world = wcs.pixel_to_world(px, py)
        t["ra"] = np.atleast_1d(world.icrs.ra.deg) * u.deg
        t["dec"] = np.atleast_1d(world.icrs.dec.deg) * u.deg
    t["gmag"] = [c["gmag"] for c in clusters] * u.mag
    t["imag"] = [c["imag"] for c in clusters] * u.mag
    t["reff_pc"] = [c["reff_pc"] for c in clusters] * u.pc
    t["reff_arcsec"] = t["reff_pc"].value / scene.pc_per_arcsec * u.arcsec
    t["population"] = np.array([c["population"] for c in clusters], dtype="U5")
    t["profile"] = np.array([c["profile"] for c in clusters], dtype="U4")
    t["shape"] = [c["shape"] for c in clusters]
    t["q"] = [c["q"] for c in clusters]
    t["n_members"] = [0 if c["members"] is None else len(c["members"]["frac_g"])
                      for c in clusters]
    t["n_members"] = np.asarray(t["n_members"], dtype=int)
    return out, t


def _param(value, band, header, keys, default, name):
    if value is not None:
        v = value.get(band) if hasattr(value, "get") else value
        if v is None:
            raise BandError(f"{name} has no value for band {band!r}")
        return float(v)
    for key in keys:
        if key in header:
            return float(header[key])
    try:
        return float(default(band))
    except (BandError, KeyError):
        raise BandError(f"no {name} for band {band!r}: pass {name}= or use an instrument "
                        "that has this band") from None


def _to_pixels(value, name, pixel_scale):
    """A Quantity in pixels or an angle, as a float number of pixels."""
    if not isinstance(value, u.Quantity):
        raise TypeError(f"{name} must be a Quantity in pixels (u.pix) or an angle "
                        f"(e.g. {name}=32 * u.pix), got {value!r}")
    if value.unit == u.pix:
        return float(value.value)
    try:
        return float(value.to_value(u.arcsec)) / pixel_scale
    except u.UnitConversionError:
        raise u.UnitTypeError(f"{name} must be in pixels or an angle, got {value.unit!s}") \
            from None


#: inject_clusters arguments that inject_field sets itself
_FIELD_OWN = ("images", "wcs", "n", "positions", "seed")


def _image_hdus(hdul):
    return [k for k, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) == 2]


def inject_field(images, out_dir, n_per_ccd=40, *, seed=None, overwrite=False, **kwargs):
    """
    Add artificial clusters to every CCD of copies of multi-extension stacks.

    `inject_clusters` on each pair of image extensions of a PAndAS-like
    field (``m###_g.fit`` and ``m###_i.fit``: one image HDU per CCD, the
    same CCDs in the same order in both), each CCD with its own random
    stream.  The copies keep the inputs' file names, headers and HDU
    layout and are written into *out_dir* all or none.

    Parameters
    ----------
    images : dict
        Band name -> path of the band's multi-extension FITS stack.
    out_dir : str or path-like
        Existing directory for the copies; never the inputs' own.
    n_per_ccd : int
        Artificial clusters per CCD.
    seed : int or None
        Random seed (the same seed gives the same copies).
    overwrite : bool
        Replace existing copies (default: `FileExistsError` before any
        work).
    **kwargs
        Passed to `inject_clusters` (``mag_range``, ``reff_range``,
        ``young_fraction``, ``margin``, ``fwhm``, ``instrument``, ``scene``,
        ``add_noise``, ...).

    Returns
    -------
    paths : dict
        Band -> path of the copy.
    truth : `~astropy.table.Table`
        The injected clusters (the columns of `inject_clusters`) with
        ``hdu`` (extension index) and ``extname``.

    Raises
    ------
    ValueError
        If the stacks differ in their CCDs or shapes, *out_dir* holds the
        inputs themselves, or *n_per_ccd* is not a non-negative integer.
    TypeError
        For an argument of `inject_clusters` that this function sets
        itself (``positions``, ``n``, ``seed``, ``wcs``).

    Examples
    --------
    >>> import tempfile
    >>> from m31clusters.simulate import inject_field, simulate_field
    >>> d = tempfile.mkdtemp()
    >>> sim = simulate_field(248, n_ccds=2, ccd_shape=(256, 256), out_dir=d, seed=1,
    ...                      catalog=False)
    >>> paths, truth = inject_field(sim.images, tempfile.mkdtemp(), n_per_ccd=3, seed=2,
    ...                             mag_range=(17, 20))
    >>> len(truth), sorted(set(truth["hdu"].tolist()))
    (6, [1, 2])
    """
    from pathlib import Path

    bad = [k for k in kwargs if k in _FIELD_OWN]
    if bad:
        raise TypeError(f"inject_field sets {bad[0]!r} itself; it cannot be passed")
    if isinstance(n_per_ccd, bool) or not isinstance(n_per_ccd, (int, np.integer)) \
            or n_per_ccd < 0:
        raise ValueError(f"n_per_ccd must be a non-negative integer, got {n_per_ccd!r}")
    if not hasattr(images, "items") or not images:
        raise TypeError("images must be a non-empty dict mapping band name -> FITS path")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"output directory {str(out_dir)!r} does not exist")
    sources = {b: Path(p) for b, p in images.items()}
    targets = {b: out_dir / p.name for b, p in sources.items()}
    for b, p in sources.items():
        if not p.is_file():
            raise FileNotFoundError(f"{b} image {str(p)!r} does not exist")
        if targets[b].exists() and targets[b].resolve() == p.resolve():
            raise ValueError(f"out_dir {str(out_dir)!r} holds the {b} input {str(p)!r} "
                             "itself; write the copies elsewhere")
    if len({t.name for t in targets.values()}) != len(targets):
        raise ValueError("the bands' stacks have the same file name; their copies would "
                         "collide in out_dir")
    bands = list(sources)
    hduls = {b: fits.open(p, memmap=True) for b, p in sources.items()}
    try:
        exts = {b: _image_hdus(h) for b, h in hduls.items()}
        ref = bands[0]
        for b in bands[1:]:
            if exts[b] != exts[ref] or any(
                    hduls[b][k].data.shape != hduls[ref][k].data.shape for k in exts[ref]):
                raise ValueError(f"the {b} stack {str(sources[b])!r} does not have the same "
                                 f"CCDs (image extensions and shapes) as the {ref} stack")
        if not exts[ref]:
            raise ValueError(f"the {ref} stack {str(sources[ref])!r} has no 2-D image")
        rng = np.random.default_rng(seed)
        truths = []
        with atomic_paths([targets[b] for b in bands], overwrite=overwrite) as tmps:
            tmp = dict(zip(bands, tmps, strict=True))
            if exts[ref][0] != 0:  # images in extensions: the primary header first
                for b in bands:
                    hduls[b][0].copy().writeto(tmp[b], overwrite=True)
            for k in exts[ref]:
                pair = {b: hduls[b][k] for b in bands}
                injected, truth = inject_clusters(pair, n=int(n_per_ccd),
                                                  seed=int(rng.integers(2**31)), **kwargs)
                for b in bands:
                    out = injected[b]
                    if k == 0:  # the image is the primary HDU
                        fits.PrimaryHDU(out.data, out.header).writeto(tmp[b], overwrite=True)
                    else:
                        fits.append(tmp[b], out.data, out.header)
                truth["hdu"] = np.full(len(truth), k, dtype=int)
                truth["extname"] = np.full(len(truth), str(pair[ref].name))
                truths.append(truth)
    finally:
        for h in hduls.values():
            h.close()
    from astropy.table import vstack

    truth = vstack(truths, metadata_conflicts="silent") if truths else Table()
    return {b: targets[b] for b in bands}, truth
