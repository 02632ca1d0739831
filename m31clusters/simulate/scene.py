"""
The scene model of the simulator: what lies in the sky towards M31.

`Scene` holds the population parameters (all overridable; `M31_SCENE` is
the default).  Every component is a Poisson process on the sky with
magnitudes drawn from a luminosity function made of exponential pieces
``dN/dm ~ 10**(slope * m)`` and colours from simple empirical relations:

* M31 disc stars: sky density ``disc_density * exp(-R / disc_scale_length)``
  with R the deprojected radius (inclination 77 deg, PA 38 deg); a red
  giant branch (tip at i = 21.0, slope 0.3 mag^-1 dex) with colours that
  redden towards the tip, an AGB above the tip and a young blue main
  sequence / supergiant population;
* M31 halo stars: ``halo_density * (Rproj / 30 kpc)**halo_slope``, bluer
  (metal-poorer) giant branch;
* Milky Way foreground: uniform, a flat luminosity function, turn-off
  (g - i ~ 0.65) and M-dwarf (g - i ~ 1.2-3) colours;
* background galaxies: Sersic profiles, counts ``dN/dm ~ 10**(0.33 m)``,
  size-magnitude relation ``log10(reff / arcsec) = -0.25 - 0.1 (i - 22)``
  with 0.2 dex scatter (median 0.56 arcsec at i = 22, like faint galaxies
  measured with HST; a few per cent are as compact as a cluster's 0.3
  arcsec), discs (Sersic n 0.7-1.5) and concentrated spheroids (n 2.5-4);
* young disc clusters (EFF profiles, blue) following the disc, with counts
  rising like ``dN/dg ~ 10**(0.37 g)`` (the PHAT clusters' F475W counts), and
  old globular clusters (King profiles, red) following a ``(1 + R/3 kpc)**-3``
  halo profile with a Gaussian luminosity function (peak g = 17.9, sigma 1.2),
  g = 15-22, reff = 0.5-10 pc, partly resolved: their stars brighter than
  i = 23 are drawn one by one (stochastically, so that faint low-mass
  clusters are lumpy).  The default densities give the PHAT footprint as many
  clusters brighter than g = 21 as PHAT found there (see `Scene.cluster_density`).

Stars fainter than the resolved limit (i = 25.5, or brighter where the
density would exceed ``max_resolved_density``) are not drawn one by one:
their mean light and its fluctuations (variance ``density * <flux**2>``)
are added as a smooth surface brightness plus PSF-convolved noise, so that
crowding and the unresolved background both rise towards the centre of M31.
"""

import dataclasses
import functools
import math

import numpy as np
from astropy import units as u

from ._common import check_mag_range, value_in
from .profiles import EFF_TRUNCATION, eff_enclosed, half_light_scale, king_enclosed

__all__ = ["Scene", "M31_SCENE"]

#: Arcsec per pc at 785 kpc: 1 arcsec = 3.806 pc.
PC_PER_ARCSEC_785 = 785e3 * math.pi / (180 * 3600)

TRGB_I = 21.0
#: Most member stars drawn individually per cluster.
MAX_MEMBERS = 40
FAINTEST = 31.0


@dataclasses.dataclass(frozen=True)
class Scene:
    """
    Population parameters of the simulated sky (defaults: M31, PAndAS-like).

    Densities are numbers per arcmin^2 of objects brighter than i = 25,
    except the cluster densities (g = ``cluster_mag_range``).  The lengths
    (``distance``, ``disc_scale_length``, ``cluster_reff_range``) take
    `~astropy.units.Quantity` in any length unit (``785 * u.kpc``,
    ``(0.5, 10) * u.pc``); a plain number is taken in the unit stated below,
    in which they are stored as plain floats (``scene.distance`` is a number
    in kpc).

    Parameters
    ----------
    distance : `~astropy.units.Quantity` or float
        Distance to M31, a length (a number is taken in kpc).
    disc_density : float
        Disc star density at the centre (deprojected radius 0).  The default,
        45000 per arcmin^2 with i < 25, gives a central i-band surface
        brightness of 20.0 mag/arcsec^2 for the whole luminosity function
        (22.0 at 10 kpc), like M31's disc (Courteau et al. 2011).
    disc_scale_length : `~astropy.units.Quantity` or float
        Exponential scale length of the disc, a length (a number is taken
        in kpc).
    disc_young_fraction : float
        Fraction of disc stars (i < 25) that are young (blue).
    halo_density : float
        Halo star density at a projected 30 kpc.
    halo_slope : float
        Power-law slope of the halo density with projected radius.
    foreground_density : float
        Milky Way foreground star density.
    galaxy_density : float
        Background galaxy density.
    young_cluster_density : float
        Young cluster density at the centre (falls off like the disc), per
        arcmin^2 with g in ``cluster_mag_range``.  The default, 9.2, puts
        ~1260 young clusters with g < 21 in the PHAT footprint, which with
        the globulars there matches PHAT's 1399 clusters with F475W < 21
        (Johnson et al. 2015).
    gc_number : float
        Total number of old globular clusters (``(1 + R/3 kpc)**-3``
        profile) with g in ``cluster_mag_range``; default 625, the confirmed
        globulars of the Revised Bologna Catalogue v5.
    cluster_mag_range : (float, float)
        Range of cluster g magnitudes.
    cluster_lf_slope : float
        Young clusters' luminosity function ``dN/dg ~ 10**(slope g)`` in
        `simulate_field` (default 0.37, PHAT's F475W counts from 18 to 21).
    gc_lf_peak, gc_lf_sigma : float
        Gaussian luminosity function of the old globulars in
        `simulate_field`: peak g (default 17.9: the median V = 17.6 of the
        RBC v5 confirmed globulars plus g - V = 0.3) and dispersion (default
        1.2 mag).
    cluster_reff_range : `~astropy.units.Quantity` or (float, float)
        Range of cluster half-light radii (log-uniform), two lengths (a
        pair of numbers is taken in pc).
    resolved_fraction : float
        Fraction of clusters drawn with their bright member stars (i <
        ``member_limit``, sampled stochastically from the luminosity
        function: dozens in a bright globular, zero to a few in a faint
        cluster, which then looks lumpy or like a blend); the others are
        smooth.
    member_limit : float
        Faintest member star drawn individually (i, AB).
    max_resolved_density : float
        Crowding limit: at most this many stars per arcmin^2 are drawn one
        by one (the fainter ones are added as smooth light).  The default,
        1000 (0.28 per arcsec^2, one star per ~2 seeing disks), mimics the
        crowding limit of ground-based 0.6 arcsec imaging.

    Raises
    ------
    astropy.units.UnitTypeError
        If a length is given as a Quantity in a unit that is not a length
        (the message names the field, e.g. ``Scene.distance``).
    ValueError
        If a value is out of range (naming the field).

    Examples
    --------
    >>> from m31clusters.simulate import M31_SCENE
    >>> sparse = M31_SCENE.replace(disc_density=100.0)
    >>> sparse.disc_density, M31_SCENE.disc_scale_length
    (100.0, 5.3)

    Lengths in any unit; the scene stores them in kpc and pc:

    >>> import astropy.units as u
    >>> far = M31_SCENE.replace(distance=0.8 * u.Mpc, cluster_reff_range=(1, 5000) * u.mpc)
    >>> far.distance, far.cluster_reff_range
    (800.0, (0.001, 5.0))
    """

    distance: float = 785.0
    disc_density: float = 45000.0
    disc_scale_length: float = 5.3
    disc_young_fraction: float = 0.03
    halo_density: float = 2.0
    halo_slope: float = -3.0
    foreground_density: float = 1.5
    galaxy_density: float = 15.0
    young_cluster_density: float = 9.2
    gc_number: float = 625.0
    cluster_mag_range: tuple = (15.0, 22.0)
    cluster_lf_slope: float = 0.37
    gc_lf_peak: float = 17.9
    gc_lf_sigma: float = 1.2
    cluster_reff_range: tuple = (0.5, 10.0)
    resolved_fraction: float = 1.0
    member_limit: float = 23.0
    max_resolved_density: float = 1000.0

    def __post_init__(self):
        # Lengths: Quantities converted to the stored unit (a number is taken in it).
        for name, unit in (("distance", u.kpc), ("disc_scale_length", u.kpc),
                           ("cluster_reff_range", u.pc)):
            object.__setattr__(self, name, value_in(getattr(self, name), unit, f"Scene.{name}"))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if not (np.isfinite(v) and (v >= 0 or f.name == "halo_slope")):
                    raise ValueError(f"Scene.{f.name} must be finite and >= 0, got {value!r}")
        for key in ("distance", "disc_scale_length"):
            if getattr(self, key) <= 0:
                raise ValueError(f"Scene.{key} must be positive, got {getattr(self, key)}")
        check_mag_range(self.cluster_mag_range, "Scene.cluster_mag_range")
        lo, hi = self.cluster_reff_range
        if not 0 < lo <= hi:
            raise ValueError(f"Scene.cluster_reff_range must satisfy 0 < lo <= hi, got {(lo, hi)}")
        if not 0 <= self.disc_young_fraction <= 1 or not 0 <= self.resolved_fraction <= 1:
            raise ValueError("Scene fractions must lie in [0, 1]")
        if self.gc_lf_sigma <= 0:
            raise ValueError(f"Scene.gc_lf_sigma must be positive, got {self.gc_lf_sigma}")

    def replace(self, **changes):
        """A copy with some parameters changed."""
        return dataclasses.replace(self, **changes)

    @property
    def pc_per_arcsec(self):
        """Parsecs per arcsec at `distance`."""
        return self.distance * 1e3 * math.pi / (180 * 3600)

    def cluster_density(self, positions, *, g_limit=None):
        """
        Expected sky density of the clusters `simulate_field` draws.

        Parameters
        ----------
        positions : `~astropy.coordinates.SkyCoord`
            Where to evaluate it.
        g_limit : float, optional
            Count only clusters brighter than this g magnitude (AB); default:
            all of ``cluster_mag_range``.

        Returns
        -------
        young, old : `~astropy.units.Quantity`
            Densities (per arcmin^2) of young disc clusters and old globulars,
            shaped like *positions*.

        Examples
        --------
        In the PHAT region of the disc (10 kpc deprojected along the major
        axis), about one cluster brighter than g = 21 per 1.5 arcmin^2:

        >>> import astropy.units as u
        >>> from m31clusters.geometry import M31_CENTER
        >>> from m31clusters.simulate import M31_SCENE
        >>> here = M31_CENTER.directional_offset_by(38 * u.deg, 0.73 * u.deg)
        >>> young, old = M31_SCENE.cluster_density(here, g_limit=21.0)
        >>> print(f"{young.value:.2f} {old.value:.3f} {young.unit}")
        0.59 0.014 1 / arcmin2
        """
        from ..geometry import deprojected_radius, projected_radius

        dist = self.distance * u.kpc
        rdep = np.asarray(deprojected_radius(positions, distance=dist).to_value(u.kpc))
        rproj = np.asarray(projected_radius(positions, distance=dist).to_value(u.kpc))
        young = component_density(self, "young_cluster", rdep, rproj)
        old = component_density(self, "old_cluster", rdep, rproj)
        if g_limit is not None:
            young = young * cluster_mag_fraction(self, "young", g_limit)
            old = old * cluster_mag_fraction(self, "old", g_limit)
        return young / u.arcmin**2, old / u.arcmin**2


#: The default scene: M31 as seen by PAndAS.
M31_SCENE = Scene()


def component_density(scene, name, rdep, rproj):
    """
    Sky density (per arcmin^2) of one component at deprojected / projected radii (kpc).

    Stars count down to i = 25; clusters over ``scene.cluster_mag_range``.
    """
    s = scene
    if name == "disc_old":
        return s.disc_density * (1 - s.disc_young_fraction) * np.exp(-rdep / s.disc_scale_length)
    if name == "disc_young":
        return s.disc_density * s.disc_young_fraction * np.exp(-rdep / s.disc_scale_length)
    if name == "halo":
        return s.halo_density * (np.maximum(rproj, 2.0) / 30.0) ** s.halo_slope
    if name == "foreground":
        return np.full(np.shape(rdep), s.foreground_density)
    if name == "young_cluster":
        return s.young_cluster_density * np.exp(-rdep / s.disc_scale_length)
    if name == "old_cluster":
        kpc_per_arcmin = s.distance * math.pi / (180 * 60)
        norm = s.gc_number / (math.pi * 3.0**2) * kpc_per_arcmin**2
        return norm * (1 + rproj / 3.0) ** -3.0
    raise ValueError(name)  # pragma: no cover


def _gc_cdf(scene, g):
    from scipy.special import ndtr

    return float(ndtr((g - scene.gc_lf_peak) / scene.gc_lf_sigma))


def cluster_mag_fraction(scene, kind, g_limit):
    """Fraction of the *kind* ("young"/"old") clusters of *scene* brighter than *g_limit*."""
    lo, hi = scene.cluster_mag_range
    lim = min(max(float(g_limit), lo), hi)
    if kind == "young":
        lf = _PiecewiseLF([(lo, hi, scene.cluster_lf_slope, 1.0)])
        total = lf.number(lo, hi)
        return lf.number(lo, lim) / total if total > 0 else float(lim >= hi)
    c0, c1 = _gc_cdf(scene, lo), _gc_cdf(scene, hi)
    return (_gc_cdf(scene, lim) - c0) / (c1 - c0) if c1 > c0 else float(lim >= hi)


def sample_cluster_mags(rng, n, kind, scene):
    """g magnitudes of *n* clusters of *kind* from the scene's luminosity functions."""
    from scipy.special import ndtri

    lo, hi = scene.cluster_mag_range
    if n == 0 or lo == hi:
        return np.full(n, float(lo))
    if kind == "young":
        return _PiecewiseLF([(lo, hi, scene.cluster_lf_slope, 1.0)]).sample(rng, n, lo, hi)
    c0, c1 = _gc_cdf(scene, lo), _gc_cdf(scene, hi)
    u_ = np.clip(c0 + rng.random(n) * (c1 - c0), 1e-300, 1 - 1e-16)
    return np.clip(scene.gc_lf_peak + scene.gc_lf_sigma * ndtri(u_), lo, hi)


# ---------------------------------------------------------------------------
# Luminosity functions made of exponential pieces
# ---------------------------------------------------------------------------
class _PiecewiseLF:
    """dN/dm = amp * 10**(slope * (m - 25)) on [lo, hi) for each piece."""

    def __init__(self, pieces):
        self.pieces = [tuple(map(float, p)) for p in pieces]

    @staticmethod
    def _integral(lo, hi, slope, amp, a, b, extra=0.0):
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            return 0.0
        k = slope + extra
        c = amp * 10 ** (-slope * 25)
        if abs(k) < 1e-12:
            return c * (b - a)
        return c * (10 ** (k * b) - 10 ** (k * a)) / (k * math.log(10))

    def density(self, m):
        """dN/dm at magnitudes *m* (array)."""
        m = np.asarray(m, dtype=float)
        out = np.zeros(m.shape)
        for lo, hi, s, amp in self.pieces:
            sel = (m >= lo) & (m < hi)
            out[sel] += amp * 10 ** (s * (m[sel] - 25.0))
        return out

    def number(self, a, b):
        return sum(self._integral(lo, hi, s, amp, a, b) for lo, hi, s, amp in self.pieces)

    def flux(self, a, b):
        """Integral of dN/dm * 10**(-0.4 m) over [a, b]."""
        return sum(self._integral(lo, hi, s, amp, a, b, extra=-0.4)
                   for lo, hi, s, amp in self.pieces)

    def sample(self, rng, n, a, b):
        w = np.array([self._integral(lo, hi, s, amp, a, b) for lo, hi, s, amp in self.pieces])
        out = np.empty(n)
        if n == 0 or w.sum() <= 0:
            return out[:0] if w.sum() <= 0 else out
        which = rng.choice(len(w), size=n, p=w / w.sum())
        u = rng.random(n)
        for k, (lo, hi, s, _) in enumerate(self.pieces):
            sel = which == k
            m0, m1 = max(lo, a), min(hi, b)
            if abs(s) < 1e-12:
                out[sel] = m0 + u[sel] * (m1 - m0)
            else:
                e0, e1 = 10 ** (s * m0), 10 ** (s * m1)
                out[sel] = np.log10(e0 + u[sel] * (e1 - e0)) / s
        return out


# Old red giant branch + AGB (i band); the AGB holds 25% of the RGB density at the tip.
_OLD_LF = _PiecewiseLF([(19.5, TRGB_I, 0.3, 0.25), (TRGB_I, FAINTEST, 0.3, 1.0)])
_YOUNG_LF = _PiecewiseLF([(16.0, FAINTEST, 0.25, 1.0)])
_FG_LF = _PiecewiseLF([(13.0, FAINTEST, 0.12, 1.0)])
_GAL_LF = _PiecewiseLF([(16.0, FAINTEST, 0.33, 1.0)])


def _old_colour(rng, imag, metal_rich):
    """g - i of old giants: redder towards the tip, redder when metal-rich."""
    base, slope, sig = (1.0, 0.42, 0.15) if metal_rich else (0.9, 0.25, 0.12)
    gi = base + slope * np.clip(25.5 - imag, 0, None) + sig * rng.standard_normal(imag.size)
    agb = imag < TRGB_I
    gi[agb] = rng.uniform(2.2, 3.3, agb.sum())
    return gi


def _young_colour(rng, n):
    gi = rng.normal(-0.25, 0.12, n)
    sg = rng.random(n) < 0.1
    gi[sg] = rng.uniform(0.5, 2.5, sg.sum())
    return gi


def foreground_colour(rng, n):
    gi = rng.normal(0.65, 0.15, n)
    md = rng.random(n) < 0.45
    gi[md] = rng.uniform(1.2, 3.0, md.sum())
    return gi


def sample_stars(rng, n, population, faint):
    """
    Magnitudes (g, i) of *n* stars of *population* with i < *faint*.

    population is one of "disc_old", "disc_young", "halo", "foreground".
    """
    if population in ("disc_old", "halo"):
        imag = _OLD_LF.sample(rng, n, 0.0, faint)
        gi = _old_colour(rng, imag, population == "disc_old")
    elif population == "disc_young":
        imag = _YOUNG_LF.sample(rng, n, 0.0, faint)
        gi = _young_colour(rng, n)
    elif population == "foreground":
        imag = _FG_LF.sample(rng, n, 0.0, faint)
        gi = foreground_colour(rng, n)
    else:  # pragma: no cover - internal
        raise ValueError(population)
    return imag + gi, imag


_STAR_LF = {"disc_old": _OLD_LF, "halo": _OLD_LF, "disc_young": _YOUNG_LF,
            "foreground": _FG_LF, "galaxy": _GAL_LF}


@functools.lru_cache(maxsize=4096)
def _number_ratio(population, faint):
    lf = _STAR_LF[population]
    return lf.number(0.0, faint) / lf.number(0.0, 25.0)


def number_ratio(population, faint):
    """N(i < faint) / N(i < 25) for a population."""
    return _number_ratio(population, round(float(faint), 4))


def diffuse_flux_per_star(population, faint):
    """
    Unresolved light of the stars fainter than *faint*, per star brighter
    than i = 25: mean (g, i) flux and mean (g, i) squared flux, in units of
    a 0-mag source (for the smooth light and its fluctuations).
    """
    return _diffuse_flux_per_star(population, round(float(faint), 3))


@functools.lru_cache(maxsize=4096)
def _diffuse_flux_per_star(population, faint):
    """
    Mean (g, i) flux, in units of a 0-mag source, of the stars fainter than
    *faint* per star brighter than i = 25 (for the smooth unresolved light).
    """
    lf = _STAR_LF[population]
    norm = lf.number(0.0, 25.0)
    edges = np.linspace(faint, FAINTEST, 400)
    mid = 0.5 * (edges[:-1] + edges[1:])
    dndm = lf.density(mid) * np.diff(edges)
    if population == "disc_young":
        gi = np.full(mid.shape, -0.25)
    else:
        base, slope = (1.0, 0.42) if population != "halo" else (0.9, 0.25)
        gi = base + slope * np.clip(25.5 - mid, 0, None)
    fi = np.sum(dndm * 10 ** (-0.4 * mid)) / norm
    fg = np.sum(dndm * 10 ** (-0.4 * (mid + gi))) / norm
    # Second moments: the variance of the unresolved light (crowding noise).
    fi2 = np.sum(dndm * 10 ** (-0.8 * mid)) / norm
    fg2 = np.sum(dndm * 10 ** (-0.8 * (mid + gi))) / norm
    return fg, fi, fg2, fi2


# ---------------------------------------------------------------------------
# Extended objects
# ---------------------------------------------------------------------------
def sample_galaxies(rng, n, faint):
    """Background galaxies: dict of arrays (gmag, imag, reff_arcsec, n, q, theta)."""
    imag = _GAL_LF.sample(rng, n, 0.0, faint)
    disk = rng.random(n) < 0.55
    sersic = np.where(disk, rng.uniform(0.7, 1.5, n), rng.uniform(2.5, 4.0, n))
    q = np.where(disk, rng.uniform(0.25, 1.0, n), rng.uniform(0.6, 1.0, n))
    gi = np.where(disk, rng.normal(0.7, 0.3, n), rng.normal(1.3, 0.2, n))
    gi = np.clip(gi, 0.0, 2.2)
    log_re = -0.25 - 0.1 * (imag - 22.0) + 0.2 * rng.standard_normal(n)
    return {
        "gmag": imag + gi, "imag": imag, "reff_arcsec": 10**log_re, "shape": sersic,
        "q": q, "theta": rng.uniform(0, np.pi, n),
    }


def _sample_profile_radii(rng, profile, shape, n):
    """Radii (scale units) of member stars drawn from a projected profile."""
    if n == 0:
        return np.zeros(0)
    xmax = 10.0**shape if profile == "king" else EFF_TRUNCATION
    x = np.concatenate([[0.0], np.geomspace(1e-4 * xmax, xmax, 400)])
    cdf = king_enclosed(x, shape) if profile == "king" else eff_enclosed(x, shape)
    return np.interp(rng.random(n), cdf, x)


def _bright_members(rng, young, gmag, gi, profile, shape, member_limit):
    """
    The cluster's own stars brighter than i = *member_limit*, drawn stochastically.

    Their expected number is the cluster's i flux times the number of such
    stars per unit flux of the population's luminosity function, so a
    bright globular shows dozens of giants (mostly lost in its core) while
    a faint, low-mass cluster is often dominated by one or two stars and
    looks like a blend.  Returns None when no star is drawn.
    """
    lf = _YOUNG_LF if young else _OLD_LF
    flux_i = 10 ** (-0.4 * (gmag - gi))
    expected = flux_i * lf.number(0.0, member_limit) / lf.flux(0.0, FAINTEST)
    nm = int(rng.poisson(expected))
    if nm == 0:
        return None
    # Only the brightest MAX_MEMBERS are drawn as stars; in a bright cluster the
    # rest are faint compared with it and stay in the smooth light.
    mi = np.sort(lf.sample(rng, nm, 0.0, member_limit))[:MAX_MEMBERS]
    nm = mi.size
    mgi = _young_colour(rng, nm) if young else _old_colour(rng, mi, metal_rich=False)
    frac_i = 10 ** (-0.4 * mi) / flux_i
    frac_g = 10 ** (-0.4 * (mi + mgi)) / 10 ** (-0.4 * gmag)
    # The members cannot outshine the cluster: keep at least 10% smooth light per band.
    scale = min(1.0, 0.9 / frac_i.sum(), 0.9 / frac_g.sum())
    radii = _sample_profile_radii(rng, profile, shape, nm)
    return {"frac_g": frac_g * scale, "frac_i": frac_i * scale, "r_scaled": radii,
            "angle": rng.uniform(0, 2 * np.pi, nm),
            "scale_over_reff": 1.0 / half_light_scale(profile, shape)}


def sample_clusters(rng, n, kind, mag_range, reff_range_pc, resolved_fraction,
                    gmag=None, member_limit=23.0, imag=None, reff_pc=None):
    """
    Star clusters: list of dicts with integrated magnitudes, profile and members.

    kind: "young" (EFF, blue), "old" (King, red) or an array of those.
    *gmag*, *imag* and *reff_pc* (arrays of n) fix the magnitudes and sizes
    instead of drawing them (the same random numbers are used either way).
    """
    kinds = np.broadcast_to(np.asarray(kind), (n,))
    lo, hi = mag_range
    out = []
    for k in range(n):
        young = kinds[k] == "young"
        g = rng.uniform(lo, hi) if gmag is None else float(gmag[k])
        gi = rng.uniform(-0.3, 0.8) if young else rng.uniform(0.8, 1.4)
        reff = float(np.exp(rng.uniform(np.log(reff_range_pc[0]), np.log(reff_range_pc[1]))))
        if imag is not None:
            gi = g - float(imag[k])
        if reff_pc is not None:
            reff = float(reff_pc[k])
        if young:
            profile, shape = "eff", rng.uniform(2.6, 4.0)
            q = rng.uniform(0.7, 1.0)
        else:
            profile, shape = "king", rng.uniform(0.8, 2.0)
            q = rng.uniform(0.8, 1.0)
        theta = rng.uniform(0, np.pi)
        members = None
        if rng.random() < resolved_fraction:
            members = _bright_members(rng, young, g, gi, profile, shape, member_limit)
        out.append({
            "population": "young" if young else "old", "gmag": g, "imag": g - gi,
            "reff_pc": reff, "profile": profile, "shape": float(shape), "q": float(q),
            "theta": float(theta), "members": members,
        })
    return out


# ---------------------------------------------------------------------------
# Crowding limit
# ---------------------------------------------------------------------------
def crowding_limit(density, scene, faint):
    """Faint magnitude limit so that at most max_resolved_density stars are drawn."""
    if density <= 0:
        return faint
    target = scene.max_resolved_density / density
    if number_ratio("disc_old", faint) <= target:
        return faint
    grid, ratios = _ratio_grid(round(float(faint), 4))
    return round(float(np.interp(target, ratios, grid)), 3)


@functools.lru_cache(maxsize=16)
def _ratio_grid(faint):
    grid = np.linspace(15.0, faint, 400)
    return grid, np.array([number_ratio("disc_old", m) for m in grid])
