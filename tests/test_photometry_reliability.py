"""
Bad input to detection and photometry (issue 13): non-finite pixels, bad
parameters and degenerate WCS, each refused or handled with an error naming
the parameter, band or file.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS

from m31clusters.exceptions import BandError, NoWCSError, OffImageWarning
from m31clusters.photometry import detect_sources, measure, snr_depth

PIX = 0.187


def _wcs(shape):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.6847, 41.2688]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.cdelt = [-PIX / 3600, PIX / 3600]
    return w


def _stars(shape=(200, 300), xy=((60.0, 60.0), (150.0, 100.0), (240.0, 140.0)), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    data = rng.normal(100.0, 5.0, shape)
    for x, y in xy:
        data += 3000.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    return data


@pytest.fixture
def image():
    data = _stars()
    w = _wcs(data.shape)
    return NDData(data, wcs=w, meta={"ZP": 30.0, "GAIN": 2.0})


def _positions(img, xy=((60.0, 60.0), (150.0, 100.0), (240.0, 140.0))):
    x, y = np.array(xy).T
    return img.wcs.pixel_to_world(x, y)


# --- non-finite pixels --------------------------------------------------------------


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_pixel_in_aperture_is_missing(image, value):
    data = image.data.copy()
    data[60, 62] = value  # inside the first star's 2" aperture
    img = NDData(data, wcs=image.wcs, meta=image.meta)
    with pytest.warns(OffImageWarning, match=r"\{'g': 1\} of 3"):
        out = measure({"g": img}, _positions(img))
    assert out["gflag"].tolist() == [2, 0, 0]
    assert np.isnan(out["gmag"][0]) and np.all(np.isfinite(out["gmag"][1:]))


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_pixels_in_annulus_are_ignored_like_nan(image, value):
    """+/-inf in the sky annulus is treated exactly as a NaN (a missing pixel)."""
    pos = _positions(image)
    rows, cols = [100, 100, 128], [150 + 25, 150 - 27, 150]  # annulus of star 2
    results = []
    for fill in (value, np.nan):
        data = image.data.copy()
        data[rows, cols] = fill
        results.append(measure({"g": NDData(data, wcs=image.wcs, meta=image.meta)}, pos))
    inf_out, nan_out = results
    assert inf_out["gflag"].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(inf_out["gflux"], nan_out["gflux"])
    np.testing.assert_array_equal(inf_out["e_gflux"], nan_out["e_gflux"])


def test_infinite_pixels_in_detection_like_nan(image):
    pos = [(20, 20), (21, 20), (150, 30)]
    found = []
    for fill in (np.inf, -np.inf, np.nan):
        data = image.data.copy()
        data[[p[1] for p in pos], [p[0] for p in pos]] = fill
        data[170:180, 10:30] = fill  # a block
        found.append(detect_sources(NDData(data, wcs=image.wcs), box_size=50))
    for other in found[:2]:
        assert len(other) == len(found[2]) == 3
        np.testing.assert_allclose(other["x"], found[2]["x"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(other["flux"], found[2]["flux"], rtol=1e-12)


# --- parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, name", [
    ({"nsigma": -1}, "nsigma"), ({"nsigma": 0}, "nsigma"), ({"nsigma": np.nan}, "nsigma"),
    ({"nsigma": np.inf}, "nsigma"), ({"nsigma": "5"}, "nsigma"), ({"nsigma": True}, "nsigma"),
    ({"n_pixels": 0}, "n_pixels"), ({"n_pixels": 2.5}, "n_pixels"),
    ({"box_size": 0}, "box_size"), ({"box_size": -64}, "box_size"),
    ({"filter_size": 0}, "filter_size"),
    ({"fwhm": -1 * u.arcsec}, "fwhm"), ({"fwhm": np.nan * u.pix}, "fwhm"),
    ({"fwhm": 0 * u.arcsec}, "fwhm"),
])
def test_detect_sources_rejects_bad_parameters(image, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        detect_sources(image, **{"box_size": 50, **kwargs})


def test_detect_sources_fwhm_needs_units(image):
    with pytest.raises(TypeError, match="fwhm must be an astropy Quantity"):
        detect_sources(image, fwhm=3.5, box_size=50)
    with pytest.raises(u.UnitTypeError, match="fwhm must have units of angle"):
        detect_sources(image, fwhm=3.5 * u.s, box_size=50)


def test_detect_sources_fwhm_in_arcsec_or_pixels(image):
    a = detect_sources(image, fwhm=0.65 * u.arcsec, box_size=50)
    b = detect_sources(image, fwhm=(0.65 / PIX) * u.pix, box_size=50)
    np.testing.assert_allclose(a["x"], b["x"])
    assert len(a) == 3


def test_detect_sources_positional_arguments_after_wcs_refused(image):
    with pytest.raises(TypeError):
        detect_sources(image, None, 5.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"gain": -1.0}, "gain of band 'g' must be positive"),
    ({"gain": {"g": 0.0}}, "gain of band 'g' must be positive"),
    ({"zeropoints": {"g": np.nan}}, "zero point of band 'g' must be a finite number"),
    ({"zeropoints": "thirty"}, "zero point of band 'g' must be a finite number"),
    ({"saturation": np.nan}, "saturation level of band 'g' must be a finite number"),
    ({"aperture_correction": np.inf}, "aperture correction of band 'g' must be a finite"),
    ({"aperture": np.nan * u.arcsec}, "aperture must be positive and finite"),
    ({"annulus": (-4, 6) * u.arcsec}, "annulus must be positive and finite"),
    ({"n_random": 0}, "n_random must be a positive integer"),
    ({"n_random": 10.5}, "n_random must be a positive integer"),
])
def test_measure_rejects_bad_parameters(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure({"g": image}, _positions(image), **kwargs)


def test_measure_keyword_only(image):
    with pytest.raises(TypeError):
        measure({"g": image}, _positions(image), 2 * u.arcsec)


def test_snr_depth_rejects_bad_snr(image):
    out = measure({"g": image}, _positions(image))
    for bad in (0, -10, np.nan):
        with pytest.raises(ValueError, match="snr must be a positive number"):
            snr_depth(out, "g", snr=bad)


def test_deblend_limit_needs_zero_point(image):
    img = NDData(image.data, wcs=image.wcs)
    with pytest.raises(BandError, match="deblend_limit needs a zero point"):
        detect_sources(img, box_size=50, deblend_limit=21 * u.mag)


# --- degenerate WCS -----------------------------------------------------------------


def _header(shape, cd):
    h = _wcs(shape).to_header()
    for key in ("CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        h.remove(key, ignore_missing=True)
    for (i, j), v in np.ndenumerate(np.asarray(cd, dtype=float)):
        h[f"CD{i + 1}_{j + 1}"] = v
    return h


@pytest.mark.parametrize("cd", [np.zeros((2, 2)), [[5e-5, 5e-5], [5e-5, 5e-5]]])
def test_degenerate_wcs_in_a_file_named(image, tmp_path, cd):
    path = tmp_path / "m001_g.fit"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image.data, header=_header(
        image.data.shape, cd), name="CCD1")]).writeto(path)
    good = image
    with fits.open(path) as hdul:
        with pytest.raises(NoWCSError, match=r"band 'g' image \(file '.*m001_g.fit'.*"
                                             r"degenerate WCS"):
            measure({"i": good, "g": hdul[1]}, _positions(good), zeropoints=30.0)
        with pytest.raises(NoWCSError, match="m001_g.fit.*degenerate WCS"):
            detect_sources(hdul[1], box_size=50)


@pytest.mark.parametrize("cd", [np.zeros((2, 2)), [[np.nan, 0], [0, 5e-5]],
                                [[1e-5, 2e-5], [2e-5, 4e-5]]])
def test_degenerate_wcs_object_named(image, cd):
    w = _wcs(image.data.shape)
    w.wcs.cd = np.asarray(cd, dtype=float)
    bad = NDData(image.data, wcs=w, meta=image.meta)
    with pytest.raises(NoWCSError, match="band 'i' image has a degenerate WCS"):
        measure({"g": image, "i": bad}, _positions(image))
    with pytest.raises(NoWCSError, match="degenerate WCS"):
        detect_sources(bad, box_size=50)
    with pytest.raises(NoWCSError, match="degenerate WCS"):
        detect_sources(image.data, wcs=w, box_size=50)
