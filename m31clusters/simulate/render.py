"""
Turning object lists into noisy images (shared by fields, stamps and injection).

Internal: objects are passed as plain numpy arrays / dicts in pixel units.
"""

import math

import numpy as np

from ._common import moffat_alpha, psf_box_radius, render_point_box
from .profiles import add_box, add_points, split_position

__all__ = []

#: Tiers of point-source box half-sizes (pixels) beyond the default box of
#: `psf_box_radius`; brighter stars get bigger boxes.
_LIB_MAX_RADIUS = 48
_DIRECT_MAX_RADIUS = 250


def point_radius(flux, fwhm, beta, noise):
    """Box half-size (pixels) where a star's wing drops to 0.2 sigma of the sky noise."""
    alpha = moffat_alpha(fwhm, beta)
    base = psf_box_radius(fwhm)
    flux = np.asarray(flux, dtype=float)
    x = 0.2 * noise * math.pi * alpha**2 / ((beta - 1.0) * np.maximum(flux, 1e-300))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        r = alpha * np.sqrt(np.maximum(x ** (-1.0 / beta) - 1.0, 0.0))
    return np.maximum(base, np.ceil(np.nan_to_num(r, nan=base, posinf=_DIRECT_MAX_RADIUS))
                      ).astype(int)


def add_stars(image, x, y, flux, fwhm, beta, noise):
    """Add point sources with flux-dependent box sizes."""
    x, y, flux = (np.asarray(a, dtype=float).ravel() for a in (x, y, flux))
    if x.size == 0:
        return image
    need = point_radius(flux, fwhm, beta, noise)
    base = psf_box_radius(fwhm)
    small = need <= base
    add_points(image, x[small], y[small], flux[small], fwhm, beta, base)
    mid = ~small & (need <= _LIB_MAX_RADIUS)
    if mid.any():
        add_points(image, x[mid], y[mid], flux[mid], fwhm, beta, _LIB_MAX_RADIUS)
    for j in np.flatnonzero(need > _LIB_MAX_RADIUS):
        r = int(min(need[j], _DIRECT_MAX_RADIUS))
        (ix,), (fx,) = split_position([x[j]])
        (iy,), (fy,) = split_position([y[j]])
        box = render_point_box(fwhm, beta, r, fx, fy, oversample=3)
        add_box(image, flux[j] * box, int(ix), int(iy))
    return image


def add_noise(model, band, instrument, rng, extra_sky=0.0, dtype=np.float32):
    """
    Sky + Poisson + read noise + saturation; returns the sky-subtracted image.

    *model* is the noiseless astronomical signal in ADU (it may include
    smooth unresolved light); *extra_sky* is added before the noise.
    """
    sky = instrument.sky_counts(band)
    gain = instrument.gain
    lam = np.clip((model + extra_sky + sky) * gain, 0.0, None)
    # Round the expected counts to float32 before drawing: last-bit differences
    # between machines (SIMD math, BLAS kernels) then almost never change a draw.
    lam = lam.astype(np.float32).astype(np.float64)
    electrons = rng.poisson(lam).astype(np.float64)
    electrons += instrument.stack_read_noise() * rng.standard_normal(model.shape)
    adu = np.minimum(electrons / gain, instrument.saturation)
    adu -= sky
    return adu.astype(dtype, copy=False)


def fourier_images(n, fwhms, beta, x, y, fluxes, intrinsics, white=None, amplitudes=None):
    """
    Noiseless n x n images (one per band) of point sources plus extended light.

    The images are synthesised in Fourier space: the point sources enter as
    ``sum f exp(-2 pi i (u x + v y))`` at their exact positions, times the
    pixel transfer function ``sinc(u) sinc(v)``; the *intrinsics* (already
    integrated over pixels) are transformed by FFT; both are multiplied by
    the analytic Moffat transform.  The images are periodic: keep a margin.
    The phase factors are shared by all bands (same positions).

    Parameters
    ----------
    n : int
        Image side.
    fwhms : sequence of float
        PSF FWHM (pixels) per band.
    beta : float
        Moffat beta.
    x, y : array
        Point-source positions (pixels).
    fluxes : sequence of array
        Point-source fluxes per band.
    intrinsics : sequence of (n, n) array or None
        Pixel-integrated extended light per band.
    white : (n, n) array, optional
        Unit white noise shared by all bands: point sources at pixel centres
        with fluxes ``amplitude * white`` (the fluctuations of unresolved stars).
    amplitudes : sequence of float, optional
        Amplitude of *white* per band.
    """
    from scipy import fft as sfft

    from .profiles import moffat_ft

    u = sfft.rfftfreq(n)
    v = sfft.fftfreq(n)
    k = 2 * np.pi * np.hypot(u[None, :], v[:, None])
    pix = np.sinc(u)[None, :] * np.sinc(v)[:, None]
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size:
        ax = -2 * np.pi * np.outer(x, u)
        ay = -2 * np.pi * np.outer(y, v)
        cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    white_ft = sfft.rfft2(white) * pix if white is not None else None
    if amplitudes is None:
        amplitudes = [0.0] * len(fwhms)
    out = []
    for fwhm, flux, intrinsic, amp in zip(fwhms, fluxes, intrinsics, amplitudes, strict=True):
        psf = moffat_ft(k, moffat_alpha(fwhm, beta), beta)
        if intrinsic is not None:
            total = sfft.rfft2(intrinsic)
        else:
            total = np.zeros((n, u.size), dtype=complex)
        if x.size:
            f = np.asarray(flux, dtype=float)[:, None]
            fcy, fsy = (cy * f).T, (sy * f).T
            # exp(i a) exp(i b) with real matrix products (faster than complex BLAS).
            total += (fcy @ cx - fsy @ sx + 1j * (fcy @ sx + fsy @ cx)) * pix
        if white_ft is not None and amp > 0:
            total += amp * white_ft
        out.append(sfft.irfft2(total * psf, s=(n, n)))
    return out
