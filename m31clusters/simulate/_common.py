"""
Private helpers shared by the simulate modules.

The Moffat point-spread function and its pixel-integrated renderings, the
one rule for the size of a point source's render box (`PSF_BOX_FWHM`),
the magnitude-range check, the conversion of an angle or length given as a
Quantity or a number (`value_in`) and the conversion of a sampled cluster
into a render dict at a pixel position.
"""

import functools
import math

import numpy as np
from astropy import units as u

from ..utils._validation import as_quantity

__all__ = [
    "PSF_BOX_FWHM",
    "psf_box_radius",
    "moffat_alpha",
    "moffat",
    "moffat_enclosed",
    "psf_library",
    "psf_kernel_grid",
    "render_point_box",
    "check_mag_range",
    "value_in",
    "cluster_obj",
]

#: Half-size of the box a point source (or a PSF kernel) is rendered on, in
#: FWHM: 4.5 FWHM holds all but ~0.3% of a beta = 3 Moffat's light.
PSF_BOX_FWHM = 4.5


def psf_box_radius(fwhm_pix):
    """Half-size (pixels) of a point source's render box: ``ceil(4.5 FWHM)``."""
    return int(math.ceil(PSF_BOX_FWHM * fwhm_pix))


def moffat_alpha(fwhm, beta):
    """
    Moffat core width ``alpha`` for a given FWHM and ``beta``.

    A Moffat profile ``I(r) = (beta - 1) / (pi alpha**2) (1 + r**2/alpha**2)**-beta``
    has ``FWHM = 2 alpha sqrt(2**(1/beta) - 1)``.

    Examples
    --------
    >>> from m31clusters.simulate import moffat_alpha
    >>> round(moffat_alpha(1.0, 3.0), 4)
    0.9807
    """
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat(r2, alpha, beta):
    """Unit-flux Moffat surface brightness at squared radius *r2* (same units as alpha)."""
    return (beta - 1.0) / (math.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)


def moffat_enclosed(r, alpha, beta):
    """Fraction of a Moffat profile's light within radius *r*."""
    return 1.0 - (1.0 + (np.asarray(r) / alpha) ** 2) ** (1.0 - beta)


@functools.lru_cache(maxsize=64)
def psf_library(fwhm, beta, radius, nphase=8, oversample=5):
    """
    Pixel-integrated Moffat PSFs at ``nphase**2`` sub-pixel phases.

    Returns an array (nphase, nphase, 2*radius+1, 2*radius+1); entry
    ``[ky, kx]`` is the PSF whose centre lies at offset
    ``((kx + 0.5)/nphase - 0.5, (ky + 0.5)/nphase - 0.5)`` pixels from the
    central pixel centre, integrated over each pixel by ``oversample**2``
    sub-samples.  Not renormalised: light beyond the box is lost, as it
    would be in an image (less than 0.4% for radius >= 4 FWHM).
    """
    alpha = moffat_alpha(fwhm, beta)
    n = 2 * radius + 1
    sub = (np.arange(n * oversample) + 0.5) / oversample - radius - 0.5
    phases = (np.arange(nphase) + 0.5) / nphase - 0.5
    # 1-D squared offsets for every phase: (nphase, n*oversample)
    d2 = (sub[None, :] - phases[:, None]) ** 2
    lib = np.empty((nphase, nphase, n, n))
    for ky in range(nphase):
        prof = moffat(d2[ky][:, None] + d2[:, None, :], alpha, beta)  # (nph, ny_s, nx_s)
        prof = prof.reshape(nphase, n, oversample, n, oversample).mean(axis=(2, 4))
        lib[ky] = prof
    lib.setflags(write=False)
    return lib


@functools.lru_cache(maxsize=64)
def psf_kernel_grid(fwhm, beta, radius, oversample):
    """Moffat PSF sampled on a grid of step 1/oversample pixel (odd size, centred)."""
    alpha = moffat_alpha(fwhm, beta)
    h = radius * oversample
    s = np.arange(-h, h + 1) / oversample
    ker = moffat(s[:, None] ** 2 + s[None, :] ** 2, alpha, beta) / oversample**2
    ker.setflags(write=False)
    return ker


def render_point_box(fwhm_pix, beta, radius, dx, dy, oversample=5):
    """Pixel-integrated Moffat on a (2r+1)^2 box centred at (dx, dy)."""
    alpha = moffat_alpha(fwhm_pix, beta)
    n = 2 * radius + 1
    sub = (np.arange(n * oversample) + 0.5) / oversample - radius - 0.5
    prof = moffat((sub[:, None] - dy) ** 2 + (sub[None, :] - dx) ** 2, alpha, beta)
    return prof.reshape(n, oversample, n, oversample).mean(axis=(1, 3))


def value_in(value, unit, name):
    """
    *value* in *unit* as a float: a Quantity is converted, a number is taken in *unit*.

    A sequence (a range) gives a tuple of floats; a Quantity whose unit is
    not of *unit*'s physical type raises `~astropy.units.UnitTypeError`
    naming *name* (e.g. ``"Instrument.fwhm['g']"``).
    """
    if isinstance(value, u.Quantity):
        value = as_quantity(value, unit, name).value
        return float(value) if np.ndim(value) == 0 else tuple(float(v) for v in value)
    if isinstance(value, (tuple, list)):
        return tuple(value_in(v, unit, f"{name}[{i}]") for i, v in enumerate(value))
    return value


def check_mag_range(mag_range, name):
    try:
        lo, hi = (float(v) for v in mag_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (bright, faint) of magnitudes, "
                         f"got {mag_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 5.0 <= lo <= hi <= 35.0):
        raise ValueError(
            f"{name} must satisfy 5 <= bright <= faint <= 35 (AB mag), got ({lo}, {hi})"
        )
    return lo, hi


def cluster_obj(cl, x, y, pc_per_pix):
    """Cluster dict (from scene.sample_clusters) -> render dict at pixel (x, y)."""
    reff_pix = cl["reff_pc"] / pc_per_pix
    obj = {"x": x, "y": y, "profile": cl["profile"], "shape": cl["shape"],
           "reff_pix": reff_pix, "q": cl["q"], "theta": cl["theta"],
           "gmag": cl["gmag"], "imag": cl["imag"], "members": None}
    mem = cl["members"]
    if mem is not None:
        r = mem["r_scaled"] * mem["scale_over_reff"] * reff_pix
        # Place members on the ellipse of the profile.
        xp, yp = r * np.cos(mem["angle"]), r * np.sin(mem["angle"]) * cl["q"]
        ct, st = math.cos(cl["theta"]), math.sin(cl["theta"])
        obj["members"] = {"x": x + xp * ct - yp * st, "y": y + xp * st + yp * ct,
                          "frac_g": mem["frac_g"], "frac_i": mem["frac_i"]}
    return obj
