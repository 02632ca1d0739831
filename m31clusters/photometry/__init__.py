"""
Source detection and aperture photometry on PAndAS-like field images.

* `detect_sources` (``detection.py``) finds the sources of one image
  (photutils `Background2D` background, a threshold in units of the
  background noise, image segmentation with deblending) and returns their
  pixel and sky positions;
* `measure` (``aperture.py``) measures AB magnitudes in several bands at
  given sky positions (circular apertures with a local background annulus,
  errors from the sky noise and the Poisson noise of the source) and two
  simple morphology measures, the concentration index and the FWHM,
  vectorised over all positions;
* `magnitude_limit` (``depth.py``) selects the rows of a catalogue brighter
  than a limit, as used for the limiting-magnitude study (the classifier was
  trained on ``g < 21``), and `snr_depth` estimates the magnitude at a given
  S/N.

Images are `~astropy.nddata.NDData` (or `~astropy.nddata.CCDData`) objects,
FITS image HDUs, or 2-D arrays together with a ``wcs=``; a celestial WCS with
a usable pixel scale is required.  Non-finite pixels (NaN, +inf, -inf) and
pixels flagged in the NDData mask are treated as missing: they never enter a
background estimate, and a source whose aperture touches one gets NaN
magnitudes.
"""

from .aperture import measure
from .depth import magnitude_limit, snr_depth
from .detection import detect_sources

__all__ = ["detect_sources", "measure", "magnitude_limit", "snr_depth"]
