"""
Labelled two-band training stamps: clusters and the things they are confused with.
"""

import concurrent.futures
import math
import multiprocessing
import os

import numpy as np
from astropy import units as u
from astropy.table import Table
from scipy import fft as sfft

from ..utils._progress import progress_bar
from ..utils._validation import as_quantity
from . import scene as _scene
from ._common import check_mag_range, cluster_obj
from .instrument import PANDAS, Instrument
from .profiles import add_box, box_half, render_intrinsic, split_position
from .render import add_noise, fourier_images
from .scene import M31_SCENE, Scene

__all__ = ["simulate_stamps", "STAMP_PROPORTIONS"]

#: Default class proportions of `simulate_stamps`: half clusters; the other
#: half single stars, blends of 2-3 stars, compact galaxies and empty
#: crowded sky.
STAMP_PROPORTIONS = {"cluster": 0.5, "star": 0.2, "blend": 0.1, "galaxy": 0.1, "sky": 0.1}

_KINDS = tuple(STAMP_PROPORTIONS)
_CFG_NAMES = (
    "instrument", "crowd_lo", "crowd_hi", "max_offset", "size", "margin", "scene",
    "faint_default", "big", "area", "pix_area", "young_fraction", "mag_lo", "mag_hi", "reff_lo",
    "reff_hi", "colour_range", "pc_per_pix", "bands", "zps",
)


def _check_proportions(proportions):
    if proportions is None:
        return dict(STAMP_PROPORTIONS)
    if not hasattr(proportions, "items"):
        raise TypeError(f"proportions must be a dict like {STAMP_PROPORTIONS}")
    unknown = set(proportions) - set(_KINDS)
    if unknown:
        raise ValueError(f"unknown stamp kind(s) {sorted(unknown)}; known kinds are {_KINDS}")
    p = {k: float(proportions.get(k, 0.0)) for k in _KINDS}
    if any(not np.isfinite(v) or v < 0 for v in p.values()) or sum(p.values()) <= 0:
        raise ValueError(f"proportions must be non-negative with a positive sum, got {p}")
    total = sum(p.values())
    return {k: v / total for k, v in p.items()}


def _class_counts(n, p):
    """Largest-remainder rounding of n * p."""
    raw = np.array([n * p[k] for k in _KINDS])
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return dict(zip(_KINDS, counts.tolist(), strict=True))


def _check_range(value, name, lo_ok=0.0, allow_scalar=True):
    if np.ndim(value) == 0 and allow_scalar:
        v = float(value)
        if not (np.isfinite(v) and v >= lo_ok):
            raise ValueError(f"{name} must be finite and >= {lo_ok}, got {value!r}")
        return (v, v)
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a pair (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo_ok <= lo <= hi):
        raise ValueError(f"{name} must satisfy {lo_ok} <= low <= high, got ({lo}, {hi})")
    return (lo, hi)


def _loguniform(rng, lo, hi):
    if lo == hi:
        return lo
    if lo <= 0:
        return rng.uniform(lo, hi)
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _star_colour(rng):
    u_ = rng.random()
    if u_ < 0.5:
        return float(_scene.foreground_colour(rng, 1)[0])
    if u_ < 0.75:
        return float(rng.uniform(-0.35, 0.2))
    return float(rng.uniform(1.5, 3.2))


def simulate_stamps(n, size=64, seed=None, *, mag_range=(15.0, 22.0), proportions=None,
                    crowding=(30.0, 10000.0), reff_range=(0.5, 10.0) * u.pc,
                    young_fraction=0.5, colour_range=None, max_offset=1.0, bands=("g", "i"),
                    instrument=PANDAS, scene=M31_SCENE, n_jobs=1, progress=False):
    """
    Simulate labelled two-band stamps of clusters and look-alikes.

    Each stamp is centred (within *max_offset* pixels) on one object of a
    class drawn in the given proportions: a star cluster (label 1; young
    EFF or old King profile, some partly resolved) or, for label 0, a
    single star, a blend of 2-3 stars within 0.3-1.5 FWHM of each other, a
    compact background galaxy (Sersic, reff 0.15-1 arcsec) or empty sky.
    Every stamp also holds M31 field stars at a crowding level drawn from
    *crowding*, their unresolved light, Milky Way foreground stars and
    background galaxies, and the PSF varies from stamp to stamp as from
    field to field.  At the faint end a compact cluster is hard to tell
    from a star or a blend, as in real data.

    Parameters
    ----------
    n : int
        Number of stamps (>= 1).
    size : int
        Stamp side in pixels (default 64, >= 8).
    seed : int or None
        Random seed; the same seed gives identical stamps on any machine
        (stamp *k* depends only on *seed*, *k* and the class drawn for it).
    mag_range : (float, float)
        Range of the central object's total g magnitude (uniform), AB.
    proportions : dict, optional
        Class proportions (default `STAMP_PROPORTIONS`); normalised to 1.
        Counts are rounded so that they sum to *n*; the order is shuffled.
    crowding : float or (float, float)
        M31 field-star density (stars brighter than i = 25 per arcmin^2),
        fixed or drawn log-uniformly from a range per stamp.  100 is an
        outer-disc field, 3000-10000 the PHAT region of the inner disc; 0
        switches the M31 field stars off.
    reff_range : `~astropy.units.Quantity` (2,)
        Range of cluster half-light radii, drawn log-uniformly (length units).
    young_fraction : float
        Fraction of clusters that are young (blue, EFF profile); the rest
        are old globulars (red, King profile).
    colour_range : (float, float), optional
        If given, the g - i colour of the central object (of every star of
        a blend) is drawn uniformly from this range instead of from the
        class's own colour distribution.
    max_offset : float
        Largest offset (pixels, in x and in y) of the object from the stamp centre.
    bands : tuple of str
        Bands, in the order of the last axis (default ``("g", "i")``).
    instrument : `~m31clusters.simulate.Instrument`
        Instrument model (default `PANDAS`).
    scene : `~m31clusters.simulate.Scene`
        Scene parameters (foreground and galaxy densities, crowding limit).
    n_jobs : int
        Worker processes (default 1; -1 for all CPUs).  The stamps do not
        depend on it: each comes from its own random stream.
    progress : bool
        Show a progress bar (default False).

    Returns
    -------
    cutout : `~m31clusters.cutout.Cutout`
        Raw (sky-subtracted, un-normalised) stamps in ADU, shape
        (n, size, size, len(bands)); ``cutout.offsets`` holds the true
        centre offsets and ``cutout.meta["zeropoints"]`` the AB zero points.
    truth : `~astropy.table.Table`
        One row per stamp: ``label`` (1 cluster, 0 not), ``kind``
        (cluster/star/blend/galaxy/sky), ``population``, ``gmag``,
        ``imag`` (total, NaN for sky), ``reff_pc`` (clusters; 0 for stars,
        NaN otherwise), ``reff_arcsec``, ``profile``, ``shape`` (King c, EFF
        gamma or Sersic n), ``q``, ``n_members`` (resolved member stars or
        blend components), ``dx``, ``dy``, ``crowding``, ``fwhm_g``,
        ``fwhm_i`` (arcsec), ``beta``, ``n_field``.

    Raises
    ------
    ValueError
        For n < 1, a size < 8, magnitudes outside 5-35 mag or reversed,
        negative or reversed sizes or crowding, bad proportions.
    BandError
        For a band the instrument does not have.
    TypeError
        If *reff_range* is not a Quantity.

    Examples
    --------
    >>> import astropy.units as u
    >>> from m31clusters.simulate import simulate_stamps
    >>> cut, truth = simulate_stamps(10, size=32, seed=1, progress=False)
    >>> cut.shape
    (10, 32, 32, 2)
    >>> sorted(set(truth["kind"].tolist()))
    ['blend', 'cluster', 'galaxy', 'sky', 'star']
    >>> int(truth["label"].sum())
    5
    """
    from ..cutout import Cutout

    n = _check_int(n, "n", 1)
    size = _check_int(size, "size", 8)
    if not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be an Instrument, got {type(instrument).__name__}")
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a Scene, got {type(scene).__name__}")
    if isinstance(bands, str):
        bands = (bands,)
    bands = tuple(instrument.check_band(b) for b in bands)
    if "g" not in instrument.bands or "i" not in instrument.bands:
        from ..exceptions import BandError
        raise BandError("simulate_stamps needs an instrument with bands 'g' and 'i'")
    mag_lo, mag_hi = check_mag_range(mag_range, "mag_range")
    reff_q = as_quantity(reff_range, u.pc, "reff_range")
    reff_lo, reff_hi = _check_range(reff_q.value, "reff_range (pc)", allow_scalar=True)
    if reff_lo <= 0:
        raise ValueError(f"reff_range must be positive sizes, got {reff_q}")
    crowd_lo, crowd_hi = _check_range(crowding, "crowding")
    if not 0 <= young_fraction <= 1:
        raise ValueError(f"young_fraction must be in [0, 1], got {young_fraction}")
    if not (np.isfinite(max_offset) and 0 <= max_offset <= size / 4):
        raise ValueError(f"max_offset must be in [0, size/4], got {max_offset}")
    props = _check_proportions(proportions)
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    n_jobs = _check_int(n_jobs, "n_jobs", 1)
    if colour_range is not None:
        colour_range = _check_range(colour_range, "colour_range", lo_ok=-5.0)
        if colour_range[1] > 5.0:
            raise ValueError(f"colour_range must lie within -5 to 5 mag, got {colour_range}")

    seq = np.random.SeedSequence(seed)
    master = np.random.default_rng(seq.spawn(1)[0])
    counts = _class_counts(n, props)
    kinds = np.concatenate([[k] * c for k, c in counts.items()]).astype("U7")
    kinds = kinds[master.permutation(n)]
    children = seq.spawn(n)

    depth_i = instrument.depth("i")
    faint_default = depth_i + 1.0
    # Work on a larger periodic box: the margin holds the PSF wings of stars
    # just outside the stamp and keeps wrapped-around light away from it.
    psf_margin = int(math.ceil(6 * max(instrument.fwhm_pixels(b) for b in instrument.bands)))
    big = sfft.next_fast_len(size + 2 * psf_margin, real=True)
    margin = (big - size) // 2
    area = (big * instrument.pixel_scale / 60.0) ** 2  # arcmin^2
    pix_area = (instrument.pixel_scale / 60.0) ** 2
    pc_per_pix = scene.pc_per_arcsec * instrument.pixel_scale
    zps = {b: instrument.zeropoint(b) for b in instrument.bands}
    noise = {b: instrument.pixel_noise(b) for b in instrument.bands}

    cfg = {nm: value for nm, value in locals().items() if nm in _CFG_NAMES}
    if n_jobs == 1 or n < 2 * n_jobs:
        data, rows, offsets = _stamp_chunk(cfg, kinds, children, progress)
    else:
        data, rows, offsets = _parallel_stamps(cfg, kinds, children, n_jobs, progress)

    truth = Table(rows=rows, names=list(rows[0]))
    _describe_stamp_truth(truth)
    meta = {
        "simulated": True,
        "zeropoints": {b: float(zps[b]) for b in bands},
        "gain": float(instrument.gain),
        "pixel_scale": float(instrument.pixel_scale),
        "sky_noise": {b: float(noise[b]) for b in bands},
        "seed": None if seed is None else int(seed),
        "proportions": props,
        "mag_range": [mag_lo, mag_hi],
    }
    truth.meta.update(meta)
    return Cutout(data, bands=bands, offsets=offsets, meta=meta), truth


def _parallel_stamps(cfg, kinds, children, n_jobs, progress):
    """Split the stamps into chunks simulated by *n_jobs* spawned processes."""
    n = len(kinds)
    bounds = np.linspace(0, n, min(n, 8 * n_jobs) + 1).astype(int)
    chunks = [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    bar = progress_bar(progress=progress, total=n, desc="simulating stamps", unit="stamp")
    results = {}
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n_jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_stamp_chunk, cfg, kinds[a:b], children[a:b]): (a, b)
                   for a, b in chunks}
        for fut in concurrent.futures.as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update(futures[fut][1] - futures[fut][0])
    bar.close()
    parts = [results[c] for c in chunks]
    return (np.concatenate([p[0] for p in parts]), [r for p in parts for r in p[1]],
            np.concatenate([p[2] for p in parts]))


def _stamp_chunk(cfg, kinds, children, progress=False):
    """Simulate the stamps of one chunk (a worker's share); pure function of its inputs."""
    instrument = cfg["instrument"]
    crowd_lo = cfg["crowd_lo"]
    crowd_hi = cfg["crowd_hi"]
    max_offset = cfg["max_offset"]
    size = cfg["size"]
    margin = cfg["margin"]
    scene = cfg["scene"]
    faint_default = cfg["faint_default"]
    big = cfg["big"]
    area = cfg["area"]
    pix_area = cfg["pix_area"]
    young_fraction = cfg["young_fraction"]
    mag_lo = cfg["mag_lo"]
    mag_hi = cfg["mag_hi"]
    reff_lo = cfg["reff_lo"]
    reff_hi = cfg["reff_hi"]
    colour_range = cfg["colour_range"]
    pc_per_pix = cfg["pc_per_pix"]
    bands = cfg["bands"]
    zps = cfg["zps"]
    n = len(kinds)
    data = np.empty((n, size, size, len(bands)), dtype=np.float32)
    rows = []
    offsets = np.empty((n, 2))
    for k in progress_bar(range(n), progress=progress, desc="simulating stamps", unit="stamp"):
        rng = np.random.default_rng(children[k])
        fwhm_as, beta = instrument.draw_psf(rng)
        fwhm_pix = {b: fwhm_as[b] / instrument.pixel_scale for b in instrument.bands}
        density = _loguniform(rng, crowd_lo, crowd_hi)
        dx, dy = rng.uniform(-max_offset, max_offset, 2)
        offsets[k] = dx, dy
        xc, yc = (size - 1) / 2 + dx + margin, (size - 1) / 2 + dy + margin

        # Field: M31 stars (with young ones), foreground, galaxies, diffuse light.
        faint = _scene.crowding_limit(density, scene, faint_default)
        stars = []
        for pop, dens in (
            ("disc_old", density * (1 - scene.disc_young_fraction)),
            ("disc_young", density * scene.disc_young_fraction),
            ("foreground", scene.foreground_density),
        ):
            lim = faint if pop != "foreground" else faint_default
            m = rng.poisson(dens * _scene.number_ratio(pop, lim) * area)
            g, i = _scene.sample_stars(rng, m, pop, lim)
            stars.append((rng.uniform(-0.5, big - 0.5, (2, m)), g, i))
        sx = np.concatenate([s[0][0] for s in stars])
        sy = np.concatenate([s[0][1] for s in stars])
        sg = np.concatenate([s[1] for s in stars])
        si = np.concatenate([s[2] for s in stars])
        # Unresolved stars: smooth light (mean) and its fluctuations (variance).
        diffuse = {"g": 0.0, "i": 0.0}
        diffuse2 = {"g": 0.0, "i": 0.0}
        if density > 0:
            for pop, dens in (("disc_old", density * (1 - scene.disc_young_fraction)),
                              ("disc_young", density * scene.disc_young_fraction)):
                fg, fi, fg2, fi2 = _scene.diffuse_flux_per_star(pop, faint)
                diffuse["g"] += dens * fg * pix_area
                diffuse["i"] += dens * fi * pix_area
                diffuse2["g"] += dens * fg2 * pix_area
                diffuse2["i"] += dens * fi2 * pix_area
        white = rng.standard_normal((big, big)) if density > 0 else None
        ngal = rng.poisson(scene.galaxy_density * _scene.number_ratio("galaxy", faint_default)
                           * area)
        gals = _scene.sample_galaxies(rng, ngal, faint_default)
        gal_xy = rng.uniform(-0.5, big - 0.5, (2, ngal))

        # Central object.
        kind = kinds[k]
        row = {"label": int(kind == "cluster"), "kind": kind, "population": "",
               "gmag": np.nan, "imag": np.nan, "reff_pc": np.nan, "reff_arcsec": np.nan,
               "profile": "", "shape": np.nan, "q": np.nan, "n_members": 0}
        central_pts = None
        extended = None
        if kind == "cluster":
            cl = _scene.sample_clusters(
                rng, 1, "young" if rng.random() < young_fraction else "old",
                (mag_lo, mag_hi), (reff_lo, reff_hi), scene.resolved_fraction,
                member_limit=scene.member_limit)[0]
            if colour_range is not None:
                cl["imag"] = cl["gmag"] - rng.uniform(*colour_range)
            extended = cluster_obj(cl, xc, yc, pc_per_pix)
            row.update(population=cl["population"], gmag=cl["gmag"], imag=cl["imag"],
                       reff_pc=cl["reff_pc"],
                       reff_arcsec=cl["reff_pc"] / scene.pc_per_arcsec,
                       profile=cl["profile"], shape=cl["shape"], q=cl["q"],
                       n_members=0 if cl["members"] is None else len(cl["members"]["frac_g"]))
        elif kind == "star":
            g = rng.uniform(mag_lo, mag_hi)
            gi = _star_colour(rng) if colour_range is None else rng.uniform(*colour_range)
            central_pts = (np.array([xc]), np.array([yc]), np.array([g]), np.array([g - gi]))
            row.update(population="star", gmag=g, imag=g - gi, reff_pc=0.0, reff_arcsec=0.0,
                       profile="psf", n_members=1)
        elif kind == "blend":
            central_pts = _blend(rng, xc, yc, mag_lo, mag_hi, fwhm_pix["i"], colour_range)
            fg_tot = np.sum(10 ** (-0.4 * central_pts[2]))
            fi_tot = np.sum(10 ** (-0.4 * central_pts[3]))
            row.update(population="stars", gmag=-2.5 * np.log10(fg_tot),
                       imag=-2.5 * np.log10(fi_tot), reff_pc=np.nan, profile="psf",
                       n_members=len(central_pts[0]))
        elif kind == "galaxy":
            g = rng.uniform(mag_lo, mag_hi)
            disk = rng.random() < 0.5
            nser = rng.uniform(0.7, 1.5) if disk else rng.uniform(2.5, 4.0)
            reff_as = _loguniform(rng, 0.15, 1.0)
            q = rng.uniform(0.3, 1.0)
            gi = float(np.clip(rng.normal(1.0, 0.35), 0.2, 2.0))
            if colour_range is not None:
                gi = rng.uniform(*colour_range)
            extended = {"x": xc, "y": yc, "profile": "sersic", "shape": nser,
                        "reff_pix": reff_as / instrument.pixel_scale, "q": q,
                        "theta": rng.uniform(0, np.pi), "gmag": g, "imag": g - gi}
            row.update(population="background", gmag=g, imag=g - gi, reff_arcsec=reff_as,
                       profile="sersic", shape=nser, q=q)

        px, py = [sx], [sy]
        pf = {b: [instrument.mag_to_counts(sg if b == "g" else si, b)] for b in bands}
        intrinsic = {b: np.zeros((big, big)) for b in bands}
        for j in range(ngal):
            reff = gals["reff_arcsec"][j] / instrument.pixel_scale
            fluxes = {b: float(instrument.mag_to_counts(gals["gmag" if b == "g" else "imag"][j], b))
                      for b in bands}
            _add_intrinsic(intrinsic, gal_xy[0, j], gal_xy[1, j], "sersic", gals["shape"][j],
                           reff, gals["q"][j], gals["theta"][j], fluxes, big)
        if central_pts is not None:
            px.append(central_pts[0])
            py.append(central_pts[1])
            for b in bands:
                pf[b].append(instrument.mag_to_counts(central_pts[2 if b == "g" else 3], b))
        if extended is not None:
            e = extended
            if e.get("members") is not None:
                px.append(e["members"]["x"])
                py.append(e["members"]["y"])
            smooth_flux = {}
            for b in bands:
                flux = float(instrument.mag_to_counts(e["gmag" if b == "g" else "imag"], b))
                frac = 0.0
                if e.get("members") is not None:
                    mfrac = e["members"]["frac_g" if b == "g" else "frac_i"]
                    frac = float(np.sum(mfrac))
                    pf[b].append(flux * mfrac)
                smooth_flux[b] = flux * (1 - frac)
            _add_intrinsic(intrinsic, e["x"], e["y"], e["profile"], e["shape"], e["reff_pix"],
                           e["q"], e["theta"], smooth_flux, big)
        models = fourier_images(big, [fwhm_pix[b] for b in bands], beta, np.concatenate(px),
                                np.concatenate(py), [np.concatenate(pf[b]) for b in bands],
                                [intrinsic[b] for b in bands], white,
                                [math.sqrt(diffuse2[b]) * 10 ** (0.4 * zps[b]) for b in bands])
        for c, b in enumerate(bands):
            model = models[c][margin:margin + size, margin:margin + size]
            data[k, :, :, c] = add_noise(model, b, instrument, rng,
                                         extra_sky=diffuse.get(b, 0.0) * 10 ** (0.4 * zps[b]))
        row.update(dx=dx, dy=dy, crowding=density,
                   fwhm_g=fwhm_pix["g"] * instrument.pixel_scale,
                   fwhm_i=fwhm_pix["i"] * instrument.pixel_scale, beta=beta,
                   n_field=int(sx.size + ngal))
        rows.append(row)
    return data, rows, offsets


def _add_intrinsic(images, x, y, profile, shape, reff, q, theta, fluxes, big):
    """Add a pixel-integrated profile centred at (x, y) to each band's image (clipped).

    The profile is the same in every band: it is rendered once with unit
    flux and scaled by the band's flux (*fluxes*, a dict like *images*).
    """
    (ix,), (fx,) = split_position([x])
    (iy,), (fy,) = split_position([y])
    half = box_half(profile, shape, max(reff, 1e-3), max_half=big // 2)
    box = render_intrinsic(profile, shape, max(reff, 1e-3), q, theta, 1.0, fx, fy, half)
    for b, image in images.items():
        add_box(image, fluxes[b] * box, int(ix), int(iy))


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _blend(rng, xc, yc, mag_lo, mag_hi, fwhm_pix, colour_range=None):
    """2-3 stars within 0.3-1.5 FWHM, flux-weighted centre at (xc, yc)."""
    m = int(rng.integers(2, 4))
    g_tot = rng.uniform(mag_lo, mag_hi)
    frac = rng.dirichlet(np.full(m, 2.0))
    g = g_tot - 2.5 * np.log10(frac)
    if colour_range is None:
        gi = np.array([_star_colour(rng) for _ in range(m)])
    else:
        gi = rng.uniform(*colour_range, m)
    sep = rng.uniform(0.3, 1.5, m) * fwhm_pix
    ang = rng.uniform(0, 2 * np.pi, m)
    px, py = sep * np.cos(ang), sep * np.sin(ang)
    px -= np.sum(frac * px)
    py -= np.sum(frac * py)
    return xc + px, yc + py, g, g - gi


def _describe_stamp_truth(t):
    units = {"gmag": u.mag, "imag": u.mag, "reff_pc": u.pc, "reff_arcsec": u.arcsec,
             "dx": u.pix, "dy": u.pix, "crowding": u.arcmin**-2, "fwhm_g": u.arcsec,
             "fwhm_i": u.arcsec}
    for name, unit in units.items():
        t[name].unit = unit
    desc = {
        "label": "1 = star cluster, 0 = not a cluster",
        "kind": "cluster, star, blend, galaxy or sky",
        "population": "young/old (clusters), star(s), background (galaxies)",
        "gmag": "total g magnitude (AB) of the central object",
        "imag": "total i magnitude (AB) of the central object",
        "reff_pc": "cluster half-light radius (0 for stars, NaN otherwise)",
        "reff_arcsec": "half-light radius (clusters, galaxies)",
        "profile": "king, eff, sersic or psf",
        "shape": "King concentration c, EFF gamma or Sersic n",
        "q": "axis ratio",
        "n_members": "resolved member stars (clusters) or stars (blends)",
        "dx": "x offset of the object from the stamp centre",
        "dy": "y offset of the object from the stamp centre",
        "crowding": "M31 star density (i < 25) of the stamp's field",
        "fwhm_g": "PSF FWHM in g",
        "fwhm_i": "PSF FWHM in i",
        "beta": "Moffat beta of the PSF",
        "n_field": "field stars and galaxies drawn around the object",
    }
    for name, text in desc.items():
        t[name].description = text
