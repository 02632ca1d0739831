"""
Photometry and detection tests on small synthetic images made here: pixel-
integrated Gaussian (and Moffat) stars with known fluxes on a flat sky, with
Poisson noise, and a TAN WCS at the PAndAS pixel scale.
"""

import sys
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import NDData
from astropy.table import Table
from astropy.wcs import WCS
from scipy.special import erf

from m31clusters.catalog import Catalog
from m31clusters.crossmatch import match
from m31clusters.exceptions import BandError, NoDetectionsWarning, NoWCSError, OffImageWarning
from m31clusters.photometry import detect_sources, magnitude_limit, measure, snr_depth

PIX = 0.187  # arcsec / pixel
GAIN = 2.0  # e- / ADU
SKY = 56.0  # ADU / pixel
APERTURE = 2.0  # arcsec (the default of measure)
ANNULUS_AREA = np.pi * ((6 / PIX) ** 2 - (4 / PIX) ** 2)  # default sky annulus, pixels


def _wcs(shape, shift=(0.0, 0.0)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.6847, 41.2688]
    w.wcs.crpix = [shape[1] / 2 + shift[0], shape[0] / 2 + shift[1]]
    w.wcs.cdelt = [-PIX / 3600, PIX / 3600]
    return w


def _render_gaussian(shape, x, y, flux, fwhm_pix):
    """Stars integrated exactly over each pixel (separable erf)."""
    sigma = fwhm_pix / (2 * np.sqrt(2 * np.log(2)))
    image = np.zeros(shape)
    half = int(np.ceil(8 * sigma))
    for x0, y0, f in zip(x, y, flux, strict=True):
        ix, iy = int(round(x0)), int(round(y0))
        xs = np.arange(max(ix - half, 0), min(ix + half + 1, shape[1]))
        ys = np.arange(max(iy - half, 0), min(iy + half + 1, shape[0]))
        ex = 0.5 * (erf((xs + 0.5 - x0) / (np.sqrt(2) * sigma))
                    - erf((xs - 0.5 - x0) / (np.sqrt(2) * sigma)))
        ey = 0.5 * (erf((ys + 0.5 - y0) / (np.sqrt(2) * sigma))
                    - erf((ys - 0.5 - y0) / (np.sqrt(2) * sigma)))
        image[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] += f * np.outer(ey, ex)
    return image


def _render_moffat(shape, x, y, flux, alpha, beta, sub=5):
    """Moffat stars, supersampled *sub* x *sub* per pixel, normalised to the total flux."""
    image = np.zeros(shape)
    half = 60
    for x0, y0, f in zip(x, y, flux, strict=True):
        ix, iy = int(round(x0)), int(round(y0))
        off = (np.arange(sub) + 0.5) / sub - 0.5
        xs = (np.arange(ix - half, ix + half + 1)[:, None] + off).ravel()
        ys = (np.arange(iy - half, iy + half + 1)[:, None] + off).ravel()
        r2 = (xs[None, :] - x0) ** 2 + (ys[:, None] - y0) ** 2
        prof = (beta - 1) / (np.pi * alpha**2) * (1 + r2 / alpha**2) ** (-beta) / sub**2
        binned = prof.reshape(2 * half + 1, sub, 2 * half + 1, sub).sum(axis=(1, 3))
        image[iy - half:iy + half + 1, ix - half:ix + half + 1] += f * binned
    return image


def _grid(shape, spacing, margin, rng):
    g = np.arange(margin, shape[0] - margin + 1, spacing, dtype=float)
    x, y = np.meshgrid(g, g)
    x = x.ravel() + rng.uniform(-0.5, 0.5, x.size)
    y = y.ravel() + rng.uniform(-0.5, 0.5, y.size)
    return x, y


def _observe(expected, rng):
    return rng.poisson(expected * GAIN) / GAIN


def _depth(aperture_arcsec=APERTURE, snr=10.0, zp=32.0):
    """Analytic S/N = snr magnitude for a point source in the aperture (sky + source noise)."""
    area = np.pi * (aperture_arcsec / PIX) ** 2
    var_sky = area * SKY / GAIN * (1 + area / ANNULUS_AREA)
    k = snr**2 / GAIN
    flux = (k + np.sqrt(k**2 + 4 * snr**2 * var_sky)) / 2
    return zp - 2.5 * np.log10(flux)


@pytest.fixture(scope="module")
def field():
    """g and i images (different zero points, seeing and WCS) of 196 isolated stars."""
    rng = np.random.default_rng(42)
    shape = (1000, 1000)
    x, y = _grid(shape, 70, 45, rng)
    gmag = rng.uniform(16.5, 24.0, x.size)
    imag = gmag - rng.uniform(0.3, 1.2, x.size)
    zp = {"g": 32.0, "i": 31.5}
    fwhm = {"g": 0.67 / PIX, "i": 0.60 / PIX}
    w_g = _wcs(shape)
    w_i = _wcs(shape, shift=(3.3, -2.1))
    coords = w_g.pixel_to_world(x, y)
    xi, yi = w_i.world_to_pixel(coords)
    images = {}
    for band, mags, (px, py), w in (("g", gmag, (x, y), w_g), ("i", imag, (xi, yi), w_i)):
        flux = 10 ** (-0.4 * (mags - zp[band]))
        expected = SKY + _render_gaussian(shape, px, py, flux, fwhm[band])
        images[band] = NDData(_observe(expected, rng), wcs=w,
                              meta={"ZP": zp[band], "GAIN": GAIN})
    truth = Table({"coord": coords, "gmag": gmag, "imag": imag, "x": x, "y": y})
    return images, truth, fwhm


def test_measure_recovers_magnitudes(field):
    images, truth, _ = field
    out = measure(images, truth["coord"])
    assert out.colnames[:1] == ["coord"]
    assert isinstance(out, Catalog)
    for band in ("g", "i"):
        bright = truth[f"{band}mag"] < 21
        assert np.count_nonzero(bright) > 80
        dm = out[f"{band}mag"][bright] - truth[f"{band}mag"][bright]
        pull = dm / out[f"e_{band}mag"][bright]
        assert np.median(np.abs(dm)) < 0.03
        # the reported errors describe the scatter (pulls have unit standard deviation)
        assert 0.8 < np.std(pull) < 1.25
        assert abs(np.median(pull)) < 0.3
        # all magnitudes, down to S/N ~ 3: pulls still consistent
        ok = np.isfinite(out[f"{band}mag"])
        allpull = (out[f"{band}mag"][ok] - truth[f"{band}mag"][ok]) / out[f"e_{band}mag"][ok]
        assert 0.8 < np.std(allpull) < 1.25
    assert out["gmag"].unit == u.mag and out["FWHM"].unit == u.arcsec


def test_measure_errors_match_analytic_noise(field):
    images, truth, _ = field
    out = measure(images, truth["coord"])
    area = np.pi * (APERTURE / PIX) ** 2
    flux = 10 ** (-0.4 * (truth["gmag"] - 32.0))
    # sky noise in the aperture, error of the sky mean, source Poisson noise
    expected = np.sqrt(area * SKY / GAIN * (1 + area / ANNULUS_AREA) + flux / GAIN)
    ratio = out["e_gflux"] / expected
    assert 0.97 < np.median(ratio) < 1.03
    assert np.all(np.abs(ratio - 1) < 0.1)
    # S/N = 10 depth from the measured errors agrees with the analytic depth
    assert abs(snr_depth(out, "g", snr=10) - _depth()) < 0.05


def test_measure_morphology(field):
    images, truth, fwhm = field
    out = measure(images, truth["coord"])
    bright = truth["imag"] < 20
    # pixel integration broadens the profile by a 1-pixel box: sigma**2 + 1/12
    sigma = np.sqrt((fwhm["i"] / (2 * np.sqrt(2 * np.log(2)))) ** 2 + 1 / 12)
    r1, r2 = 0.5 / PIX, 1.5 / PIX
    ci_true = -2.5 * np.log10((1 - np.exp(-(r1**2) / (2 * sigma**2)))
                              / (1 - np.exp(-(r2**2) / (2 * sigma**2))))
    assert abs(np.median(out["CI"][bright]) - ci_true) < 0.03
    fwhm_true = sigma * 2 * np.sqrt(2 * np.log(2)) * PIX
    assert abs(np.median(out["FWHM"][bright]) / fwhm_true - 1) < 0.05


def test_empirical_noise_for_correlated_noise():
    """Smoothed (correlated) noise: the pixel formula underestimates, random apertures don't."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(9)
    shape = (700, 700)
    x, y = _grid(shape, 70, 45, rng)
    mags = rng.uniform(18, 22, x.size)
    noise = gaussian_filter(rng.normal(0, 1, shape), 1.5)
    noise *= 10.0 / noise.std()  # 10 ADU per pixel, correlated over ~2 pixels
    w = _wcs(shape)
    stars = _render_gaussian(shape, x, y, 10 ** (-0.4 * (mags - 32.0)), 0.65 / PIX)
    img = NDData(SKY + noise + stars, wcs=w, meta={"ZP": 32.0})  # noiseless stars
    coords = w.pixel_to_world(x, y)
    pixel = measure({"g": img}, coords, noise="pixel")
    empirical = measure({"g": img}, coords, noise="empirical", seed=1)
    pull_pixel = np.std((pixel["gmag"] - mags) / pixel["e_gmag"])
    pull_emp = np.std((empirical["gmag"] - mags) / empirical["e_gmag"])
    assert pull_pixel > 2
    assert 0.75 < pull_emp < 1.3
    assert empirical.meta["noise_factor_g"] == pytest.approx(pull_pixel, rel=0.3)
    assert pixel.meta["noise_factor_g"] == 1.0
    with pytest.raises(ValueError, match="noise must be"):
        measure({"g": img}, coords, noise="poisson")


def test_concentration_separates_extended_sources():
    rng = np.random.default_rng(5)
    shape = (200, 400)
    x = np.array([100.0, 300.0])
    y = np.array([100.0, 100.0])
    flux = np.array([2e5, 2e5])
    star = _render_gaussian(shape, x[:1], y[:1], flux[:1], 0.6 / PIX)
    cluster = _render_gaussian(shape, x[1:], y[1:], flux[1:], 1.5 / PIX)
    w = _wcs(shape)
    img = NDData(_observe(SKY + star + cluster, rng), wcs=w, meta={"ZP": 32.0})
    out = measure({"i": img}, w.pixel_to_world(x, y))
    assert out["CI"][1] > out["CI"][0] + 0.5

    def truncated_fwhm(fwhm_arcsec, radius=1.5 / PIX):
        # second-moment FWHM of a pixel-integrated Gaussian inside a circle of *radius*
        s2 = (fwhm_arcsec / PIX / 2.3548) ** 2 + 1 / 12
        q = radius**2 / (2 * s2)
        r2 = 2 * s2 * (1 - q * np.exp(-q) / (1 - np.exp(-q)))
        return 2 * np.sqrt(2 * np.log(2)) * np.sqrt(r2 / 2) * PIX

    assert out["FWHM"][0] == pytest.approx(truncated_fwhm(0.6), rel=0.05)
    assert out["FWHM"][1] == pytest.approx(truncated_fwhm(1.5), rel=0.05)


def test_moffat_with_aperture_correction():
    """Moffat stars lose light outside the aperture; the analytic correction restores it."""
    shape = (300, 300)
    beta, fwhm = 4.765, 0.65 / PIX
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    x = np.array([80.3, 150.0, 220.7])
    y = np.array([90.1, 210.4, 150.5])
    mags = np.array([17.0, 18.5, 20.0])
    flux = 10 ** (-0.4 * (mags - 32.0))
    w = _wcs(shape)
    img = NDData(SKY + _render_moffat(shape, x, y, flux, alpha, beta), wcs=w, meta={"ZP": 32.0})
    r = 1.0 / PIX
    frac = 1 - (1 + r**2 / alpha**2) ** (1 - beta)
    corr = 2.5 * np.log10(frac)
    plain = measure({"i": img}, w.pixel_to_world(x, y), aperture=1 * u.arcsec)
    fixed = measure({"i": img}, w.pixel_to_world(x, y), aperture=1 * u.arcsec,
                    aperture_correction={"i": corr})
    assert np.all(plain["imag"] - mags > 0.02)
    np.testing.assert_allclose(fixed["imag"], mags, atol=0.01)
    np.testing.assert_allclose(plain["imag"] - fixed["imag"], -corr)


def test_detection_completeness_two_mag_above_depth():
    rng = np.random.default_rng(7)
    shape = (800, 800)
    x, y = _grid(shape, 50, 30, rng)
    mag = _depth() - 2
    w = _wcs(shape)
    image = _observe(SKY + _render_gaussian(shape, x, y, np.full(x.size, 10 ** (-0.4 * (
        mag - 32.0))), 0.6 / PIX), rng)
    found = detect_sources(NDData(image, wcs=w), fwhm=0.6 * u.arcsec)
    truth = Table({"coord": w.pixel_to_world(x, y), "id": np.arange(x.size).astype(str)})
    m = match(truth, found, radius=0.5 * u.arcsec, name_column="id", into="det")
    completeness = np.mean(m["det"] != "")
    assert isinstance(found, Catalog)
    assert completeness > 0.95
    # few spurious detections on the pure-noise sky
    back = match(found, truth, radius=0.5 * u.arcsec, name_column="id", into="star")
    assert np.count_nonzero(back["star"] == "") < 0.05 * len(found)
    # centroids agree with the truth in pixels and on the sky
    good = back[back["star"] != ""]
    k = good["star"].astype(int)
    assert np.median(np.hypot(good["x"] - x[k], good["y"] - y[k])) < 0.2
    assert np.median(good["star_sep"]) < 0.2 * PIX


def test_deblending_splits_close_pairs():
    pytest.importorskip("skimage")
    rng = np.random.default_rng(11)
    shape = (200, 400)
    # two pairs 1.5 arcsec apart (2.5 FWHM), flux ratios 1 and 3
    x = np.array([100.0, 100.0 + 1.5 / PIX, 300.0, 300.0 + 1.5 / PIX])
    y = np.array([100.0, 100.0, 100.0, 100.0])
    flux = np.array([5e4, 5e4, 6e4, 2e4])
    w = _wcs(shape)
    img = NDData(_observe(SKY + _render_gaussian(shape, x, y, flux, 0.6 / PIX), rng), wcs=w)
    merged = detect_sources(img, deblend=False, box_size=50)
    split = detect_sources(img, box_size=50)
    assert len(merged) == 2 and len(split) == 4
    truth = Table({"coord": w.pixel_to_world(x, y), "id": ["a", "b", "c", "d"]})
    m = match(truth, split, radius=0.3 * u.arcsec, name_column="id", into="det")
    assert np.all(m["det"] != "")


def test_single_peaked_segments_skip_deblending(monkeypatch):
    """Segments with one local maximum are not deblended: the same catalogue as deblending all."""
    pytest.importorskip("skimage")
    import m31clusters.photometry.detection as detection

    rng = np.random.default_rng(5)
    shape = (300, 300)
    n = 400  # crowded: many blended segments besides isolated stars
    x, y = rng.uniform(5, 295, n), rng.uniform(5, 295, n)
    flux = 10 ** rng.uniform(3, 5, n)
    w = _wcs(shape)
    img = NDData(_observe(SKY + _render_gaussian(shape, x, y, flux, 0.6 / PIX), rng), wcs=w)
    calls = []
    original = detection._multi_peaked

    def spy(convolved, segm, labels):
        out = original(convolved, segm, labels)
        calls.append((len(segm.labels if labels is None else labels), len(out)))
        return out

    monkeypatch.setattr(detection, "_multi_peaked", spy)
    fast = detect_sources(img, box_size=50)
    n_all, n_multi = calls[0]
    assert 0 < n_multi < n_all  # some segments skipped, some deblended
    monkeypatch.setattr(detection, "_multi_peaked",
                        lambda convolved, segm, labels: segm.labels if labels is None else labels)
    full = detect_sources(img, box_size=50)
    assert len(full) > n_all  # more sources than segments: blends were split
    for name in ("x", "y", "flux", "area", "fwhm"):
        np.testing.assert_array_equal(np.asarray(fast[name]), np.asarray(full[name]))


def test_deblending_without_scikit_image(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # makes "import skimage" fail
    img = NDData(np.random.default_rng(0).normal(0, 1, (64, 64)), wcs=_wcs((64, 64)))
    with pytest.raises(ImportError, match="pip install scikit-image, or pass deblend=False"):
        detect_sources(img, box_size=32)


def test_saturation_flag():
    shape = (200, 300)
    x, y = np.array([80.0, 220.0]), np.array([100.0, 100.0])
    w = _wcs(shape)
    model = _render_gaussian(shape, x, y, np.array([1e6, 1e4]), 0.6 / PIX)
    level = 2e4  # the bright star's peak (~7e4) is clipped
    img = NDData(np.minimum(SKY + model, level), wcs=w, meta={"ZP": 32.0})
    coords = w.pixel_to_world(x, y)
    out = measure({"g": img}, coords, saturation=level)
    assert out["gflag"].tolist() == [1, 0]
    assert out["gmag"][0] > 32 - 2.5 * np.log10(1e6) + 0.1  # clipped: too faint
    assert out["gmag"][1] == pytest.approx(32 - 2.5 * np.log10(1e4), abs=1e-3)
    # from the header keywords: SATURATE includes the subtracted SKYLEVEL
    img.meta.update(SATURATE=level + 1000.0, SKYLEVEL=1000.0)
    assert measure({"g": img}, coords)["gflag"].tolist() == [1, 0]
    assert measure({"g": img}, coords, saturation=1e9)["gflag"].tolist() == [0, 0]


def test_nan_regions_and_off_image(field):
    images, truth, _ = field
    data = images["g"].data.copy()
    data[:, :300] = np.nan  # a chip gap / missing region
    img = NDData(data, wcs=images["g"].wcs, meta=images["g"].meta)
    with pytest.warns(OffImageWarning, match="NaN photometry"):
        out = measure({"g": img}, truth["coord"])
    r_ap = APERTURE / PIX
    affected = truth["x"] < 299 + r_ap  # the aperture reaches the NaN pixels (x < 299.5)
    assert np.count_nonzero(affected) > 10
    assert np.all(np.isnan(out["gmag"][affected]))
    clear = truth["x"] > 300 + r_ap  # aperture clear, most of the annulus valid
    ok = clear & (truth["gmag"] < 21)
    assert np.all(np.abs(out["gmag"][ok] - truth["gmag"][ok]) < 0.05)
    found = detect_sources(img)
    assert np.all(found["x"] > 300)
    assert len(found) > 50
    # a position off the image
    off = images["g"].wcs.pixel_to_world([-500.0, 500.0], [500.0, 500.0])
    with pytest.warns(OffImageWarning):
        out = measure({"g": images["g"]}, off)
    assert np.isnan(out["gmag"][0])


def test_inputs_hdu_table_and_empty(field):
    images, truth, _ = field
    hdu = fits.ImageHDU(images["g"].data, header=images["g"].wcs.to_header())
    hdu.header["PHOTZP"] = 32.0
    from_hdu = measure({"g": hdu}, truth[:10], gain=GAIN)
    from_nd = measure({"g": images["g"]}, truth["coord"][:10])
    np.testing.assert_allclose(from_hdu["gmag"], from_nd["gmag"])
    assert from_hdu.colnames[:5] == ["coord", "gmag", "imag", "x", "y"]  # table input kept
    assert "gmag_1" not in from_hdu.colnames
    empty = measure(images, truth["coord"][:0])
    assert len(empty) == 0 and "e_imag" in empty.colnames


def test_bad_input(field):
    images, truth, _ = field
    data = images["g"].data
    with pytest.raises(NoWCSError, match="no celestial WCS"):
        measure({"g": NDData(data)}, truth["coord"])
    with pytest.raises(NoWCSError):
        detect_sources(data)
    with pytest.raises(BandError, match="no zero point for band 'g'"):
        measure({"g": NDData(data, wcs=images["g"].wcs)}, truth["coord"])
    with pytest.raises(BandError, match="morphology_band"):
        measure(images, truth["coord"], morphology_band="r")
    with pytest.raises(TypeError, match="aperture must be an astropy Quantity"):
        measure(images, truth["coord"], aperture=2.0)
    with pytest.raises(ValueError, match="need 0 < aperture"):
        measure(images, truth["coord"], aperture=5 * u.arcsec)
    with pytest.raises(TypeError, match="images must be"):
        measure(images["g"], truth["coord"])
    with pytest.raises(ValueError, match="no valid pixel"):
        detect_sources(NDData(np.full((100, 100), np.nan), wcs=images["g"].wcs))
    with pytest.raises(ValueError, match="2-D"):
        detect_sources(NDData(np.zeros((2, 100, 100)), wcs=images["g"].wcs))
    flat = NDData(np.random.default_rng(0).normal(100, 1, (128, 128)), wcs=images["g"].wcs)
    with pytest.warns(NoDetectionsWarning):
        found = detect_sources(flat, nsigma=50, box_size=32)
    assert len(found) == 0 and "coord" in found.colnames


def test_magnitude_limit(field):
    images, truth, _ = field
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = measure(images, truth["coord"])
    bright = magnitude_limit(out, "g", 21 * u.mag)
    faint = magnitude_limit(out, "g", 21, brighter=False)
    finite = np.isfinite(out["gmag"])
    assert len(bright) + len(faint) == np.count_nonzero(finite)
    assert np.all(bright["gmag"] < 21) and np.all(faint["gmag"] >= 21)
    with pytest.raises(BandError, match="no 'rmag' column"):
        magnitude_limit(out, "r", 21)


# ---------------------------------------------------------------------------
# On a simulated PAndAS field (m31clusters.simulate.simulate_field): Moffat
# PSF, saturation, sky-subtracted ADU, header zero points and gain.  A sparse
# outer field (m211) with extra foreground stars gives many isolated stars.


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    simulate = pytest.importorskip("m31clusters.simulate")
    scene = simulate.M31_SCENE.replace(foreground_density=30.0, galaxy_density=5.0)
    sim = simulate.simulate_field(field=211, n_ccds=1, ccd_shape=(1600, 1600),
                                  out_dir=tmp_path_factory.mktemp("sim"), seed=3,
                                  progress=False, scene=scene)
    truth = sim.truth[sim.truth["on_ccd"]]
    hdus = {b: fits.open(sim.images[b]) for b in ("g", "i")}
    yield sim, truth, {b: h[1] for b, h in hdus.items()}
    for h in hdus.values():
        h.close()


def _moffat_correction(radius, fwhm, beta):
    """2.5 log10 of the fraction of a Moffat PSF's light within *radius* (closed form)."""
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    return 2.5 * np.log10(1 - (1 + radius**2 / alpha**2) ** (1 - beta))


def _contamination(coords, mags, radius):
    """Summed flux of the neighbours within *radius*, relative to each object."""
    i1, i2, _, _ = coords.search_around_sky(coords, radius)
    other = i1 != i2
    contam = np.zeros(len(coords))
    np.add.at(contam, i1[other], 10 ** (-0.4 * (mags[i2[other]] - mags[i1[other]])))
    return contam


def test_simulated_field_photometry(simulated):
    sim, truth, images = simulated
    meta = truth.meta
    corr = {b: _moffat_correction(APERTURE, meta[f"fwhm_{b}"], meta["beta"]) for b in "gi"}
    coords = SkyCoord(truth["ra"], truth["dec"], unit="deg")
    stars = (truth["kind"] == "star") & (truth["gmag"] < 22)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OffImageWarning)  # stars at the CCD edges
        out = measure(images, coords[stars], aperture_correction=corr)
    for b in "gi":
        true = np.asarray(truth[f"{b}mag"])[stars]
        # isolated out to the sky annulus' outer radius (6"): a neighbour in the
        # annulus biases the sky, which no pixel-noise error can describe
        contam = _contamination(coords, np.asarray(truth[f"{b}mag"]), 6 * u.arcsec)[stars]
        # the header SATURATE/SKYLEVEL flag the saturated stars: isolated ones are
        # all bright (a faint star beside a saturated one is flagged too)
        saturated = out[f"{b}flag"] == 1
        assert saturated.any() and np.all(true[saturated & (contam < 1e-3)] < 19.5)
        good = (contam < 1e-3) & (out[f"{b}flag"] == 0)
        assert np.count_nonzero(good) > 30
        dm = np.asarray(out[f"{b}mag"])[good] - true[good]
        e = np.asarray(out[f"e_{b}mag"])[good]
        assert np.median(np.abs(dm)) < 0.01
        # the reported errors describe the scatter (no systematic floor needed)
        pull = dm / e
        assert 0.75 < np.std(pull) < 1.3
        assert abs(np.median(pull)) < 0.4


def test_simulated_field_detection(simulated):
    sim, truth, images = simulated
    found = detect_sources(images["i"], fwhm=truth.meta["fwhm_i"] * u.arcsec)
    coords = SkyCoord(truth["ra"], truth["dec"], unit="deg")
    x, y = WCS(images["i"].header).world_to_pixel(coords)
    ny, nx = images["i"].data.shape
    inner = (x > 20) & (x < nx - 20) & (y > 20) & (y < ny - 20)
    i1, i2, _, _ = coords.search_around_sky(coords, 3 * u.arcsec)
    other = i1 != i2
    crowded = np.zeros(len(truth), bool)
    crowded[i1[other][truth["imag"][i2[other]] < truth["imag"][i1[other]] + 1]] = True
    # point sources 2 mag above the PAndAS i depth (24.5 at S/N = 10)
    sel = (truth["kind"] == "star") & (np.abs(truth["imag"] - 22.5) < 0.5) & inner & ~crowded
    assert np.count_nonzero(sel) > 40
    t = Table({"coord": coords[sel], "id": np.arange(np.count_nonzero(sel)).astype(str)})
    m = match(t, found, radius=0.5 * u.arcsec, name_column="id", into="det")
    assert np.mean(m["det"] != "") > 0.95
