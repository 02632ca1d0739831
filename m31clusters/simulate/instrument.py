"""
The instrument model of the simulator: CFHT/MegaCam as used by PAndAS.

An `Instrument` holds everything needed to turn a scene (AB magnitudes on
the sky) into image counts: pixel scale, Moffat point-spread function per
band, exposure time, zero point, gain, read noise, sky brightness and
saturation level.  `PANDAS` is the default, calibrated so that the
10-sigma point-source depth is g = 25.5 and i = 24.5 AB (the survey's own
description); see `Instrument.with_depth` and ``docs/simulate.rst`` for the
derivation.
"""

import dataclasses
import math

import numpy as np
from astropy import units as u
from scipy.optimize import brentq

from ..exceptions import BandError
from ._common import moffat_alpha, psf_box_radius, render_point_box, value_in

__all__ = ["Instrument", "PANDAS", "moffat_alpha"]


_PANDAS_BANDS = ("g", "i")


@dataclasses.dataclass(frozen=True)
class Instrument:
    """
    A wide-field imager: PSF, photometric calibration and noise, per band.

    The pixel scale and the seeing FWHM are angles: give them as
    `~astropy.units.Quantity` in any angle unit (``0.187 * u.arcsec /
    u.pix``, ``{"g": 0.67 * u.arcsec}``); a plain number is taken in the
    unit stated below.  They are stored, like every other attribute, as
    plain floats in the unit stated (arcsec), so that ``instrument.fwhm["g"]``
    is a number in arcsec.  Mappings are keyed by band name.  Images are
    sky-subtracted stacks in ADU (the sum of ``n_exposures`` exposures of
    total time ``exptime``).

    Parameters
    ----------
    name : str
        Instrument name (written to FITS headers).
    bands : tuple of str
        Band names.
    pixel_scale : `~astropy.units.Quantity` or float
        Pixel scale: an angle per pixel (``0.187 * u.arcsec / u.pix``) or
        an angle (the size of a pixel, ``0.187 * u.arcsec``); a number is
        taken in arcsec per pixel.  Stored in arcsec per pixel.
    fwhm : dict
        Seeing FWHM per band: angle Quantities, or numbers in arcsec.
        Stored in arcsec.
    beta : float
        Moffat ``beta`` of the PSF.
    fwhm_scatter : float
        Fractional (log-normal) scatter of the FWHM from field to field.
    beta_scatter : float
        Scatter (absolute) of ``beta`` from field to field.
    exptime : dict
        Total exposure time of a stack per band, s.
    zeropoint_1s : dict
        AB magnitude giving 1 ADU/s per band.
    gain : float
        Electrons per ADU.
    read_noise : float
        Read noise of one exposure, electrons (a stack of ``n_exposures``
        has ``sqrt(n_exposures)`` times more).
    n_exposures : int
        Exposures per stack.
    sky : dict
        Sky brightness per band, AB mag/arcsec^2.
    saturation : float
        Saturation level of a stack (sky included), ADU.

    Raises
    ------
    astropy.units.UnitTypeError
        If an angle is given as a Quantity in a unit that is not an angle
        (the message names the field, e.g. ``Instrument.fwhm['g']``).
    m31clusters.exceptions.BandError
        If a mapping lacks a band.
    ValueError
        If a value is out of range (naming the field).

    Examples
    --------
    >>> from m31clusters.simulate import PANDAS
    >>> round(PANDAS.zeropoint("g"), 2)
    34.33
    >>> print(f"{PANDAS.depth('g'):.2f} {PANDAS.depth('i'):.2f}")
    25.50 24.50

    Angles in any unit; the instrument stores them in arcsec:

    >>> import dataclasses
    >>> import astropy.units as u
    >>> sharp = dataclasses.replace(PANDAS, fwhm={"g": 0.5 * u.arcsec, "i": 8e-3 * u.arcmin},
    ...                             pixel_scale=187 * u.mas / u.pix)
    >>> print(f"{sharp.fwhm['i']:.2f} {sharp.pixel_scale:.3f} {sharp.fwhm_pixels('g'):.2f}")
    0.48 0.187 2.67
    """

    name: str = "CFHT/MegaCam"
    bands: tuple = _PANDAS_BANDS
    pixel_scale: float = 0.187
    fwhm: dict = dataclasses.field(default_factory=lambda: {"g": 0.67, "i": 0.60})
    beta: float = 3.0
    fwhm_scatter: float = 0.05
    beta_scatter: float = 0.2
    exptime: dict = dataclasses.field(default_factory=lambda: {"g": 1350.0, "i": 1350.0})
    zeropoint_1s: dict = dataclasses.field(default_factory=lambda: {"g": 26.5, "i": 25.9})
    gain: float = 1.6
    read_noise: float = 5.0
    n_exposures: int = 3
    sky: dict = dataclasses.field(default_factory=lambda: {"g": 22.0, "i": 20.3})
    saturation: float = 180000.0

    def __post_init__(self):
        bands = tuple(self.bands)
        object.__setattr__(self, "bands", bands)
        if not bands:
            raise BandError("an Instrument needs at least one band")
        for attr in ("fwhm", "exptime", "zeropoint_1s", "sky"):
            value = dict(getattr(self, attr))
            missing = [b for b in bands if b not in value]
            if missing:
                raise BandError(f"Instrument.{attr} has no value for band(s) {missing}")
            object.__setattr__(self, attr, value)
        # Angles: Quantities converted to arcsec (a number is taken in arcsec).
        object.__setattr__(self, "fwhm", {b: value_in(v, u.arcsec, f"Instrument.fwhm[{b!r}]")
                                          for b, v in self.fwhm.items()})
        scale = self.pixel_scale
        if isinstance(scale, u.Quantity) and scale.unit.physical_type == "angle":
            scale = scale / u.pix  # the angle a pixel spans
        object.__setattr__(self, "pixel_scale",
                           value_in(scale, u.arcsec / u.pix, "Instrument.pixel_scale"))
        checks = {
            "pixel_scale": self.pixel_scale,
            "gain": self.gain,
            "saturation": self.saturation,
            "n_exposures": self.n_exposures,
        }
        checks.update({f"fwhm[{b!r}]": self.fwhm[b] for b in bands})
        checks.update({f"exptime[{b!r}]": self.exptime[b] for b in bands})
        for key, value in checks.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"Instrument.{key} must be positive and finite, got {value}")
        if not (np.isfinite(self.beta) and self.beta > 1.5):
            raise ValueError(f"Instrument.beta must be > 1.5 (finite PSF light), got {self.beta}")
        for key in ("read_noise", "fwhm_scatter", "beta_scatter"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"Instrument.{key} must be >= 0, got {value}")

    # -- calibration -------------------------------------------------------
    def check_band(self, band):
        """Return *band* if this instrument has it, else raise `BandError`."""
        if band not in self.bands:
            raise BandError(f"unknown band {band!r}; {self.name} has bands {list(self.bands)}")
        return band

    def zeropoint(self, band):
        """AB magnitude of a source giving 1 ADU in the stack (header ``MAGZPT``)."""
        self.check_band(band)
        return self.zeropoint_1s[band] + 2.5 * math.log10(self.exptime[band])

    def mag_to_counts(self, mag, band):
        """Total counts (ADU) of a source of AB magnitude *mag*."""
        return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - self.zeropoint(band)))

    def counts_to_mag(self, counts, band):
        """AB magnitude of *counts* ADU (NaN for non-positive counts)."""
        counts = np.asarray(counts, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(counts > 0, self.zeropoint(band) - 2.5 * np.log10(counts), np.nan)

    def sky_counts(self, band):
        """Sky level per pixel, ADU."""
        return float(self.mag_to_counts(self.sky[band], band) * self.pixel_scale**2)

    def stack_read_noise(self):
        """Read noise of a stack, electrons."""
        return self.read_noise * math.sqrt(self.n_exposures)

    def pixel_noise(self, band):
        """Noise (ADU) of an empty sky pixel."""
        var_e = self.sky_counts(band) * self.gain + self.stack_read_noise() ** 2
        return math.sqrt(var_e) / self.gain

    def fwhm_pixels(self, band):
        """Nominal seeing FWHM in pixels."""
        self.check_band(band)
        return self.fwhm[band] / self.pixel_scale

    def psf_radius(self, fwhm_pix):
        """Half-size (pixels) of the box used for point sources (``ceil(4.5 FWHM)``)."""
        return psf_box_radius(fwhm_pix)

    def psf_image(self, band, *, fwhm=None, beta=None, offset=(0.0, 0.0)):
        """
        Pixel-integrated PSF image (unit total flux before truncation).

        Parameters
        ----------
        band : str
            Band name.
        fwhm : `~astropy.units.Quantity` or float, optional
            FWHM, an angle (a number is taken in arcsec; default: the
            band's nominal seeing).
        beta : float, optional
            Moffat beta (default: `beta`).
        offset : (float, float)
            Sub-pixel offset (dx, dy) of the PSF centre from the central pixel
            centre, each in [-0.5, 0.5).

        Returns
        -------
        psf : `~numpy.ndarray`
            Square array of odd size ``2 * psf_radius + 1``.
        """
        self.check_band(band)
        fwhm = self.fwhm[band] if fwhm is None else value_in(fwhm, u.arcsec, "fwhm")
        fwhm_pix = fwhm / self.pixel_scale
        beta = self.beta if beta is None else beta
        radius = self.psf_radius(fwhm_pix)
        return render_point_box(fwhm_pix, beta, radius, offset[0], offset[1])

    # -- depth -------------------------------------------------------------
    def depth(self, band, snr=10.0, *, fwhm=None, sky=None):
        """
        Point-source AB magnitude detected at *snr* by PSF-weighted photometry.

        The flux estimator is the linear least-squares PSF fit
        ``F = sum(P d) / sum(P**2)`` with the (known) pixel-integrated PSF
        ``P``; its variance is ``sum(P**2 v) / sum(P**2)**2`` with the pixel
        variance ``v = (F P + sky) * gain + read_noise**2`` (electrons).
        The magnitude where ``F / sqrt(var) = snr`` is returned.

        Parameters
        ----------
        band : str
            Band name.
        snr : float
            Signal-to-noise ratio (default 10).
        fwhm : `~astropy.units.Quantity` or float, optional
            Seeing FWHM, an angle (a number is taken in arcsec; default:
            nominal).
        sky : float, optional
            Sky brightness in AB mag/arcsec^2 (default: `sky`).

        Returns
        -------
        float
            Limiting AB magnitude.

        Raises
        ------
        BandError
            If *band* is unknown.
        ValueError
            If *snr* is not positive.
        """
        self.check_band(band)
        if not (np.isfinite(snr) and snr > 0):
            raise ValueError(f"snr must be positive, got {snr}")
        psf = self.psf_image(band, fwhm=fwhm).ravel()
        sky_sb = self.sky[band] if sky is None else sky
        sky_adu = float(self.mag_to_counts(sky_sb, band) * self.pixel_scale**2)
        g, rn2 = self.gain, self.stack_read_noise() ** 2
        s2 = np.sum(psf**2)

        def excess(logf):
            f = 10.0**logf  # ADU
            var_e = np.sum(psf**2 * ((f * psf + sky_adu) * g + rn2)) / s2**2
            return f * g / math.sqrt(var_e) - snr

        logf = brentq(excess, -3.0, 12.0, xtol=1e-10)
        return float(self.zeropoint(band) - 2.5 * logf)

    def with_depth(self, snr=10.0, **depths):
        """
        A copy whose sky brightness gives the requested point-source depths.

        Parameters
        ----------
        snr : float
            Signal-to-noise ratio defining the depth (default 10).
        **depths : float
            Target depth per band (AB mag), e.g. ``g=25.5, i=24.5``.

        Returns
        -------
        Instrument

        Raises
        ------
        BandError
            For an unknown band.
        ValueError
            If no sky brightness in 10-35 mag/arcsec^2 reaches the depth
            (a depth too faint for the exposure time and read noise).

        Examples
        --------
        >>> from m31clusters.simulate import PANDAS
        >>> deeper = PANDAS.with_depth(g=26.0)
        >>> round(deeper.depth("g"), 3), deeper.sky["g"] > PANDAS.sky["g"]
        (26.0, True)
        """
        sky = dict(self.sky)
        for band, target in depths.items():
            self.check_band(band)

            def diff(s, band=band, target=target):
                return self.depth(band, snr=snr, sky=s) - target

            lo, hi = 10.0, 35.0
            if diff(lo) * diff(hi) > 0:
                raise ValueError(
                    f"no sky brightness between {lo} and {hi} mag/arcsec^2 gives a "
                    f"{snr}-sigma depth of {target} in band {band!r}"
                )
            sky[band] = float(brentq(diff, lo, hi, xtol=1e-8))
        return dataclasses.replace(self, sky=sky)

    def draw_psf(self, rng):
        """Field-to-field PSF variation: (fwhm dict in arcsec, beta)."""
        fwhm = {
            b: float(self.fwhm[b] * math.exp(self.fwhm_scatter * rng.standard_normal()))
            for b in self.bands
        }
        beta = round(float(max(1.8, self.beta + self.beta_scatter * rng.standard_normal())), 2)
        return fwhm, beta

    def header_cards(self, band, fwhm=None):
        """FITS header cards describing the calibration of *band*."""
        self.check_band(band)
        fwhm = self.fwhm[band] if fwhm is None else value_in(fwhm, u.arcsec, "fwhm")
        return [
            ("INSTRUME", self.name, "simulated instrument"),
            ("FILTER", band, "band"),
            ("EXPTIME", self.exptime[band], "[s] total exposure time of the stack"),
            ("NEXP", self.n_exposures, "exposures in the stack"),
            ("MAGZPT", round(self.zeropoint(band), 4), "[mag] AB zero point (1 ADU)"),
            ("PHOTZP", round(self.zeropoint(band), 4), "[mag] AB zero point (1 ADU)"),
            ("GAIN", self.gain, "[e-/ADU]"),
            ("RDNOISE", round(self.stack_read_noise(), 3), "[e-] read noise of the stack"),
            ("SATURATE", self.saturation, "[ADU] saturation level (sky included)"),
            ("SKYLEVEL", round(self.sky_counts(band), 3), "[ADU] sky level subtracted"),
            ("SKYNOISE", round(self.pixel_noise(band), 4), "[ADU] noise of an empty pixel"),
            ("SKYBRT", round(self.sky[band], 4), "[mag/arcsec2] sky brightness"),
            ("SEEING", round(fwhm, 4), "[arcsec] PSF FWHM"),
            ("PIXSCALE", self.pixel_scale, "[arcsec/pixel]"),
            ("DEPTH10", round(self.depth(band, fwhm=fwhm), 3), "[mag] 10-sigma point depth"),
        ]


#: PAndAS defaults (CFHT/MegaCam g and i, 3 x 450 s stacks), with the sky
#: brightness solved so that the 10-sigma depths are g = 25.5, i = 24.5 AB.
PANDAS = Instrument().with_depth(g=25.5, i=24.5)
