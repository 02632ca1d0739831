"""Tests of m31clusters.simulate: physics of the simulated images, not just shapes."""

import dataclasses

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.modeling import fitting, models
from astropy.nddata import NDData
from astropy.table import Table
from photutils.aperture import CircularAperture, aperture_photometry

from m31clusters.exceptions import BandError
from m31clusters.geometry import M31_CENTER, deprojected_radius, pandas_field
from m31clusters.simulate import (
    M31_SCENE,
    PANDAS,
    inject_clusters,
    megacam_layout,
    simulate_field,
    simulate_stamps,
)

#: No foreground stars or background galaxies: isolated objects on empty sky.
EMPTY = M31_SCENE.replace(foreground_density=0.0, galaxy_density=0.0, resolved_fraction=0.0)
#: The same PSF in every stamp.
STEADY = dataclasses.replace(PANDAS, fwhm_scatter=0.0, beta_scatter=0.0)


def _isolated(kind, n, mag, size=64, seed=0, instrument=PANDAS, **kw):
    return simulate_stamps(n, size=size, seed=seed, mag_range=(mag, mag),
                           proportions={kind: 1.0}, crowding=0.0, scene=EMPTY,
                           instrument=instrument, progress=False, **kw)


def _centres(cut):
    size = cut.shape[1]
    return (size - 1) / 2 + cut.offsets[:, 0], (size - 1) / 2 + cut.offsets[:, 1]


# ---------------------------------------------------------------------------
# Photometry, PSF and depth
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("band", ["g", "i"])
def test_isolated_star_aperture_magnitude(band):
    # i = 19.5 - 1 = 18.5: far from saturation in both bands.
    cut, truth = _isolated("star", 8, 19.5, colour_range=(1.0, 1.0))
    c = cut.bands.index(band)
    x, y = _centres(cut)
    zp = cut.meta["zeropoints"][band]
    for k in range(len(cut)):
        ap = CircularAperture((x[k], y[k]), r=25.0)
        flux = aperture_photometry(cut.data[k, :, :, c], ap)["aperture_sum"][0]
        mag = zp - 2.5 * np.log10(flux)
        expected = truth["gmag" if band == "g" else "imag"][k]
        assert abs(mag - expected) < 0.05, (k, mag, expected)


@pytest.mark.parametrize("band", ["g", "i"])
def test_psf_fwhm_matches_input(band):
    cut, truth = _isolated("star", 6, 19.0, colour_range=(0.5, 0.5))
    c = cut.bands.index(band)
    x, y = _centres(cut)
    yy, xx = np.mgrid[: cut.shape[1], : cut.shape[2]]
    fitter = fitting.LevMarLSQFitter()
    for k in range(len(cut)):
        img = cut.data[k, :, :, c].astype(float)
        init = models.Moffat2D(amplitude=img.max(), x_0=x[k], y_0=y[k], gamma=3.0, alpha=3.0)
        fit = fitter(init, xx, yy, img)
        expected = truth[f"fwhm_{band}"][k] / PANDAS.pixel_scale
        assert fit.fwhm == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(("band", "colour"), [("g", 1.0), ("i", 1.0)])
def test_ten_sigma_depth(band, colour):
    # Stars at the stated 10-sigma depth: g = 25.5 (and i = 25.5 - 1 = 24.5).
    depth = {"g": 25.5, "i": 24.5}[band]
    cut, truth = _isolated("star", 300, 25.5, size=48, seed=3, instrument=STEADY,
                           colour_range=(colour, colour))
    c = cut.bands.index(band)
    zp = cut.meta["zeropoints"][band]
    fluxes = []
    for k in range(len(cut)):
        # Stamp centre 23.5 + offset: the PSF box centred on pixel 24 needs offset - 0.5.
        psf = STEADY.psf_image(band, offset=(cut.offsets[k, 0] - 0.5, cut.offsets[k, 1] - 0.5))
        r = psf.shape[0] // 2
        stamp = cut.data[k, 24 - r:24 + r + 1, 24 - r:24 + r + 1, c]
        # Linear least-squares PSF fit with the known PSF (the estimator of the depth).
        fluxes.append(np.sum(psf * stamp) / np.sum(psf**2))
    fluxes = np.array(fluxes)
    true_flux = 10 ** (-0.4 * (depth - zp))
    assert np.mean(fluxes) == pytest.approx(true_flux, rel=0.03)
    snr = true_flux / np.std(fluxes)
    assert 9.0 < snr < 11.0
    assert STEADY.depth(band) == pytest.approx(depth, abs=1e-6)


# ---------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------
def _half_light_radius(img, x, y, rmax=30.0):
    radii = np.linspace(0.5, rmax, 120)
    aps = [CircularAperture((x, y), r=r) for r in radii]
    cog = np.array([aperture_photometry(img, a)["aperture_sum"][0] for a in aps])
    return float(np.interp(0.5 * cog[-1], cog, radii))


def _brute_force_cluster(row, fwhm_pix, beta, flux, step=0.1, half=60.0):
    """Independent model: profile and PSF on a 0.1-pixel grid, FFT-convolved, binned."""
    from scipy.signal import fftconvolve

    reff = row["reff_pc"] / M31_SCENE.pc_per_arcsec / PANDAS.pixel_scale
    s = np.arange(-half, half, step) + step / 2
    xx, yy = np.meshgrid(s, s)
    r = np.hypot(xx, yy)
    if row["profile"] == "king":
        c = row["shape"]
        # King (1962) with half-light radius reff, solved numerically here.
        xt = 10**c
        grid = np.linspace(0, xt, 200001)
        prof = (1 / np.sqrt(1 + grid**2) - 1 / np.sqrt(1 + xt**2)) ** 2
        cum = np.cumsum(prof * grid)
        rc = reff / grid[np.searchsorted(cum / cum[-1], 0.5)]
        img = np.where(r / rc < xt, (1 / np.sqrt(1 + (r / rc) ** 2) - 1 / np.sqrt(1 + xt**2)) ** 2,
                       0)
    else:
        raise AssertionError("test only handles King profiles")
    alpha = fwhm_pix / (2 * np.sqrt(2 ** (1 / beta) - 1))
    psf = (1 + r**2 / alpha**2) ** (-beta)
    conv = fftconvolve(img, psf, mode="same")
    nb = int(round(1 / step))
    binned = conv.reshape(conv.shape[0] // nb, nb, conv.shape[1] // nb, nb).sum(axis=(1, 3))
    binned *= flux / binned.sum()
    c0 = binned.shape[0] // 2 - 0.5
    return binned, c0


def test_cluster_profiles_broader_than_psf_in_proportion_to_size():
    # Old (King) clusters at i = 19: unsaturated, noise small.
    star, _ = _isolated("star", 1, 20.0, instrument=STEADY, colour_range=(1.0, 1.0))
    x0, y0 = (v[0] for v in _centres(star))
    rh_psf = _half_light_radius(star.data[0, :, :, 1].astype(float), x0, y0, 50.0)
    fwhm_pix = STEADY.fwhm["i"] / STEADY.pixel_scale
    measured = []
    for reff in (1.0, 2.0, 4.0, 6.0):
        cut, truth = _isolated("cluster", 1, 20.0, instrument=STEADY, seed=5,
                               reff_range=(reff, reff) * u.pc, young_fraction=0.0,
                               colour_range=(1.0, 1.0), size=128)
        x, y = _centres(cut)
        rh = _half_light_radius(cut.data[0, :, :, 1].astype(float), x[0], y[0], 50.0)
        flux = 10 ** (-0.4 * (truth["imag"][0] - cut.meta["zeropoints"]["i"]))
        model, c0 = _brute_force_cluster(truth[0], fwhm_pix, STEADY.beta, flux)
        rh_model = _half_light_radius(model, c0, c0, 50.0)
        # The simulated light distribution matches an independent brute-force model
        # (elliptical clusters: q >= 0.8 changes the circular half-light radius little).
        assert rh == pytest.approx(rh_model, rel=0.08), (reff, rh, rh_model)
        measured.append(rh)
    assert measured[0] > rh_psf
    assert np.all(np.diff(measured) > 0)
    # Well resolved clusters: the size beyond the PSF grows in proportion to reff.
    excess = np.sqrt(np.array(measured) ** 2 - rh_psf**2)
    assert excess[3] / excess[2] == pytest.approx(6.0 / 4.0, rel=0.15)


def test_faint_compact_cluster_is_nearly_stellar():
    # A 0.5 pc cluster (0.7 pixel) is only ~20% wider than the PSF at half light.
    star, _ = _isolated("star", 1, 20.0, instrument=STEADY, colour_range=(1.0, 1.0))
    cl, _ = _isolated("cluster", 1, 20.0, instrument=STEADY, reff_range=(0.5, 0.5) * u.pc,
                      colour_range=(1.0, 1.0))
    rs = _half_light_radius(star.data[0, :, :, 1].astype(float), *[v[0] for v in _centres(star)])
    rc = _half_light_radius(cl.data[0, :, :, 1].astype(float), *[v[0] for v in _centres(cl)])
    assert 1.0 < rc / rs < 1.35


# ---------------------------------------------------------------------------
# Stamps: contract, determinism, classes
# ---------------------------------------------------------------------------
def test_stamps_contract_and_proportions():
    cut, truth = simulate_stamps(20, size=32, seed=2, progress=False)
    assert cut.shape == (20, 32, 32, 2)
    assert cut.bands == ("g", "i")
    assert cut.normalization is None
    assert cut.data.dtype == np.float32
    assert set(cut.meta["zeropoints"]) == {"g", "i"}
    assert cut.meta["zeropoints"]["g"] == pytest.approx(PANDAS.zeropoint("g"))
    for col in ("label", "kind", "gmag", "imag", "reff_pc"):
        assert col in truth.colnames
    counts = {k: int(np.sum(truth["kind"] == k)) for k in ("cluster", "star", "blend",
                                                          "galaxy", "sky")}
    assert counts == {"cluster": 10, "star": 4, "blend": 2, "galaxy": 2, "sky": 2}
    assert np.all(truth["label"] == (truth["kind"] == "cluster"))
    np.testing.assert_allclose(cut.offsets, np.column_stack([truth["dx"], truth["dy"]]))
    assert np.all(np.isnan(truth["gmag"][truth["kind"] == "sky"]))
    cl = truth["kind"] == "cluster"
    assert np.all((truth["reff_pc"][cl] >= 0.5) & (truth["reff_pc"][cl] <= 10))
    assert np.all((truth["gmag"][~np.isnan(truth["gmag"])] >= 15)
                  & (truth["gmag"][~np.isnan(truth["gmag"])] <= 22))


def test_stamps_deterministic():
    a, ta = simulate_stamps(6, size=32, seed=11, progress=False)
    b, tb = simulate_stamps(6, size=32, seed=11, progress=False)
    c, _ = simulate_stamps(6, size=32, seed=12, progress=False)
    np.testing.assert_array_equal(a.data, b.data)
    assert list(ta["kind"]) == list(tb["kind"])
    assert not np.array_equal(a.data, c.data)


def test_stamp_noise_matches_instrument():
    cut, _ = _isolated("sky", 20, 20.0, size=32, instrument=STEADY)
    for c, band in enumerate(cut.bands):
        assert np.std(cut.data[..., c]) == pytest.approx(STEADY.pixel_noise(band), rel=0.03)
        assert abs(np.mean(cut.data[..., c])) < 0.05 * STEADY.pixel_noise(band)


# ---------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------
def _field_at(offset_deg):
    return int(pandas_field(M31_CENTER.directional_offset_by(38 * u.deg, offset_deg * u.deg)))


def test_field_files_headers_and_wcs(tmp_path):
    sim = simulate_field(field="m211", n_ccds=2, ccd_shape=(120, 60), out_dir=tmp_path, seed=4,
                         progress=False)
    assert sim.field == 211
    for band in ("g", "i"):
        with fits.open(sim.images[band]) as hdul:
            assert len(hdul) == 3
            h = hdul[1].header
            assert h["MAGZPT"] == pytest.approx(PANDAS.zeropoint(band), abs=1e-3)
            for key in ("GAIN", "SATURATE", "SEEING", "PHOTZP", "EXTNAME", "CCDNUM"):
                assert key in h
            assert hdul[1].data.shape == (120, 60)
    # Each CCD's WCS puts it where the mosaic layout says.
    corners, size = megacam_layout((120, 60))
    with fits.open(sim.images["i"]) as hdul:
        from astropy.wcs import WCS
        for hdu in hdul[1:]:
            w = WCS(hdu.header)
            ccd = hdu.header["CCDNUM"]
            x0, y0 = corners[ccd]
            expect_x = (x0 + 30 - size[0] / 2) * PANDAS.pixel_scale
            c = w.pixel_to_world(29.5, 59.5)
            centre = w.pixel_to_world(w.wcs.crpix[0] - 1, w.wcs.crpix[1] - 1)
            dx = centre.spherical_offsets_to(c)[0].to_value(u.arcsec)
            assert dx == pytest.approx(-expect_x, abs=0.5)
    truth = sim.truth
    assert set(truth["kind"]) <= {"star", "cluster", "galaxy"}
    # The field id column has the library's one spelling (table 7 of Zhang et al. 2025).
    assert "field" not in truth.colnames
    assert np.all(truth["PAndAS"] == 211)
    assert truth["PAndAS"].description == "PAndAS field number"
    back = Table.read(sim.truth_path, format="ascii.ecsv")
    assert back.colnames == truth.colnames and len(back) == len(truth)
    np.testing.assert_allclose(back["imag"], truth["imag"])


def test_field_catalogue_readable_with_realistic_errors(tmp_path):
    from m31clusters.io.pandas_ascd import read_pandas_ascd

    sim = simulate_field(field=_field_at(0.8), n_ccds=1, ccd_shape=(300, 300),
                         out_dir=tmp_path, seed=6, progress=False)
    cat = read_pandas_ascd(sim.catalog_path)
    assert len(cat) == len(sim.catalog) > 50
    truth = sim.truth[sim.catalog["truth_row"]]
    pull = (np.asarray(cat["i"]) - np.asarray(truth["imag"])) / np.asarray(cat["di"])
    assert np.std(pull) == pytest.approx(1.0, abs=0.2)
    stars = truth["kind"] == "star"
    assert np.mean(np.isin(cat["ii"][stars], [-1, -2, -9])) > 0.8
    assert np.all(cat["di"] > 0)


def test_field_deterministic_and_no_clobber(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    kw = dict(field=211, n_ccds=1, ccd_shape=(64, 64), seed=9, progress=False)
    sa = simulate_field(out_dir=a, **kw)
    sb = simulate_field(out_dir=b, **kw)
    with fits.open(sa.images["g"]) as ha, fits.open(sb.images["g"]) as hb:
        np.testing.assert_array_equal(ha[1].data, hb[1].data)
    with pytest.raises(FileExistsError):
        simulate_field(out_dir=a, **kw)
    simulate_field(out_dir=a, overwrite=True, **kw)


def test_star_counts_rise_towards_m31_centre(tmp_path):
    from photutils.detection import DAOStarFinder

    from m31clusters.geometry import pandas_fields

    fields = pandas_fields()
    ids = fields["PAndAS"]
    radii, counts, n_on, n_bright = [], [], [], []
    for offset in (0.5, 1.5, 2.5):
        field = _field_at(offset)
        row = fields[ids == field][0]
        centre = SkyCoord(float(row["ra"]), float(row["dec"]), unit="deg")
        radii.append(deprojected_radius(centre).to_value(u.kpc))
        out = tmp_path / str(offset)
        out.mkdir()
        # One CCD at the field centre (the CCD nearest the mosaic centre).
        sim = simulate_field(field=field, n_ccds=1, ccd_shape=(400, 400), out_dir=out, seed=1,
                             progress=False, catalog=False)
        with fits.open(sim.images["i"]) as hdul:
            data = hdul[1].data.astype(float)
            noise = hdul[1].header["SKYNOISE"]
            fwhm = hdul[1].header["SEEING"] / PANDAS.pixel_scale
        found = DAOStarFinder(threshold=5 * noise, fwhm=fwhm)(data - np.median(data))
        counts.append(0 if found is None else len(found))
        on = sim.truth[sim.truth["on_ccd"]]
        n_on.append(len(on))
        n_bright.append(int(np.sum(on["imag"] < 23)))
    assert np.all(np.diff(radii) > 0)
    # Detected sources (independent detector) fall steeply with galactocentric radius.
    assert counts[0] > 1.5 * counts[1] > 10 * counts[2]
    # In the sparse outer field, where nothing is blended, the detector finds
    # at least half of the objects brighter than i = 23 and no more sources
    # than there are objects.
    assert n_bright[2] >= 3
    assert n_bright[2] / 2 <= counts[2] <= n_on[2]


# ---------------------------------------------------------------------------
# Injection
# ---------------------------------------------------------------------------
def test_inject_does_not_modify_input_and_adds_flux():
    rng = np.random.default_rng(0)
    g = rng.normal(0, 10, (300, 300)).astype(np.float32)
    i = rng.normal(0, 10, (300, 300)).astype(np.float32)
    g0, i0 = g.copy(), i.copy()
    out, truth = inject_clusters({"g": g, "i": i}, n=4, seed=1, mag_range=(18, 18),
                                 reff_range=(1, 3) * u.pc)
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(i, i0)
    assert len(truth) == 4
    diff = out["g"].astype(float) - g0
    expected = 4 * 10 ** (-0.4 * (18 - PANDAS.zeropoint("g")))
    assert diff.sum() == pytest.approx(expected, rel=0.02)
    peak = np.unravel_index(np.argmax(diff), diff.shape)
    d = np.hypot(truth["x"].value - peak[1], truth["y"].value - peak[0])
    assert d.min() < 3


def test_inject_hdu_and_nddata(tmp_path):
    sim = simulate_field(field=211, n_ccds=1, ccd_shape=(200, 200), out_dir=tmp_path, seed=2,
                         progress=False, catalog=False)
    with fits.open(sim.images["g"]) as hg, fits.open(sim.images["i"]) as hi:
        hdus = {"g": hg[1], "i": hi[1]}
        before = hdus["g"].data.copy()
        out, truth = inject_clusters(hdus, n=2, seed=3)
        np.testing.assert_array_equal(hdus["g"].data, before)
        assert isinstance(out["g"], fits.ImageHDU)
        assert out["g"].header["MAGZPT"] == hdus["g"].header["MAGZPT"]
        assert "ra" in truth.colnames
        from astropy.wcs import WCS
        nd = {b: NDData(hdus[b].data, wcs=WCS(hdus[b].header)) for b in hdus}
        out2, truth2 = inject_clusters(nd, n=1, seed=3)
        assert isinstance(out2["i"], NDData)
        # Clusters at given sky positions land on the right pixels.
        w = WCS(hdus["i"].header)
        where = w.pixel_to_world([50.0, 120.0], [60.0, 150.0])
        _, truth3 = inject_clusters(hdus, positions=where, seed=4)
        np.testing.assert_allclose(truth3["x"].value, [50.0, 120.0], atol=1e-6)
        np.testing.assert_allclose(truth3["y"].value, [60.0, 150.0], atol=1e-6)
        # The same clusters at the same pixels, given as pixels.
        out4, truth4 = inject_clusters(hdus, positions=[[50.0, 60.0], [120.0, 150.0]] * u.pix,
                                       seed=4, add_noise=False)
        out5, truth5 = inject_clusters(hdus, positions=where, seed=4, add_noise=False)
        np.testing.assert_allclose(truth4["ra"], truth3["ra"], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(truth5["gmag"], truth4["gmag"])
        np.testing.assert_allclose(out4["g"].data, out5["g"].data, rtol=1e-4, atol=1e-3)


def test_inject_fwhm_and_margin_are_quantities():
    g = np.zeros((120, 120))
    images = {"g": g, "i": g.copy()}
    zp = {"g": 30.0, "i": 30.0}
    where = [[60.0, 60.0]] * u.pix
    kw = dict(positions=where, zeropoints=zp, mag_range=(18, 18), reff_range=(0.5, 0.5) * u.pc,
              add_noise=False, young_fraction=1.0, seed=2)
    narrow, _ = inject_clusters(images, fwhm=0.6 * u.arcsec, **kw)
    wide, _ = inject_clusters(images, fwhm=1.2 * u.arcsec, **kw)
    same, _ = inject_clusters(images, fwhm={"g": 0.6 / PANDAS.pixel_scale * u.pix,
                                            "i": 0.6 * u.arcsec}, **kw)
    np.testing.assert_allclose(same["g"], narrow["g"], rtol=1e-12)
    # Twice the seeing: the peak drops by about four.
    assert 3.0 < narrow["g"].max() / wide["g"].max() < 4.5
    # Random positions keep the margin (in pixels or as an angle).
    _, truth = inject_clusters(images, n=50, margin=40 * u.pix, seed=1)
    assert np.all((truth["x"].value >= 40) & (truth["x"].value <= 79))
    _, truth = inject_clusters(images, n=50, margin=40 * PANDAS.pixel_scale * u.arcsec, seed=1)
    assert np.all((truth["y"].value >= 40 - 1e-9) & (truth["y"].value <= 79 + 1e-9))
    with pytest.raises(TypeError, match="fwhm must be a Quantity"):
        inject_clusters(images, n=1, fwhm=0.7)
    with pytest.raises(TypeError, match="margin must be a Quantity"):
        inject_clusters(images, n=1, margin=32)
    with pytest.raises(u.UnitTypeError, match="margin"):
        inject_clusters(images, n=1, margin=3 * u.kg)
    with pytest.raises(TypeError, match="positions must be a SkyCoord or a Quantity"):
        inject_clusters(images, positions=[[10.0, 10.0]])
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        inject_clusters(images, positions=[[1.0, 2.0, 3.0]] * u.pix)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_bad_input_raises_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="reff_range"):
        simulate_stamps(2, reff_range=(-1, 3) * u.pc, progress=False)
    with pytest.raises(TypeError, match="reff_range"):
        simulate_stamps(2, reff_range=(1, 3), progress=False)
    with pytest.raises(ValueError, match="mag_range"):
        simulate_stamps(2, mag_range=(40, 50), progress=False)
    with pytest.raises(ValueError, match="mag_range"):
        simulate_stamps(2, mag_range=(22, 15), progress=False)
    with pytest.raises(ValueError, match="mag_range"):
        simulate_stamps(2, mag_range=(np.nan, 20), progress=False)
    with pytest.raises(BandError, match="unknown band 'r'"):
        simulate_stamps(2, bands=("g", "r"), progress=False)
    with pytest.raises(BandError):
        PANDAS.depth("z")
    with pytest.raises(ValueError, match="n must be"):
        simulate_stamps(0, progress=False)
    with pytest.raises(ValueError, match="crowding"):
        simulate_stamps(2, crowding=-5, progress=False)
    with pytest.raises(ValueError, match="unknown stamp kind"):
        simulate_stamps(2, proportions={"quasar": 1.0}, progress=False)
    with pytest.raises(ValueError, match="unknown PAndAS field"):
        simulate_field(field=9999, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="n_ccds"):
        simulate_field(field=211, n_ccds=0, out_dir=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError):
        simulate_field(field=211, out_dir=tmp_path / "missing", progress=False)
    with pytest.raises(ValueError, match="pixel grid"):
        inject_clusters({"g": np.zeros((100, 100)), "i": np.zeros((90, 100))}, n=1)
    with pytest.raises(ValueError, match="fwhm"):
        dataclasses.replace(PANDAS, fwhm={"g": -0.6, "i": 0.6})
    with pytest.raises(BandError, match="no value for band"):
        dataclasses.replace(PANDAS, fwhm={"g": 0.6})
    with pytest.raises(ValueError, match="disc_density"):
        M31_SCENE.replace(disc_density=-1.0)


# ---------------------------------------------------------------------------
# Angles and lengths as Quantities
# ---------------------------------------------------------------------------
def test_instrument_angles_as_quantities_in_any_unit():
    numbers = dataclasses.replace(PANDAS, pixel_scale=0.2, fwhm={"g": 0.75, "i": 0.6})
    in_arcsec = dataclasses.replace(PANDAS, pixel_scale=0.2 * u.arcsec / u.pix,
                                    fwhm={"g": 0.75 * u.arcsec, "i": 0.6 * u.arcsec})
    in_other = dataclasses.replace(PANDAS, pixel_scale=200 * u.mas,  # the angle of one pixel
                                   fwhm={"g": 0.0125 * u.arcmin, "i": 600 * u.mas})
    for inst in (in_arcsec, in_other):
        assert isinstance(inst.pixel_scale, float) and inst.pixel_scale == pytest.approx(0.2)
        assert all(isinstance(v, float) for v in inst.fwhm.values())
        assert inst.fwhm == pytest.approx(numbers.fwhm)
        for band in ("g", "i"):
            assert inst.fwhm_pixels(band) == pytest.approx(numbers.fwhm_pixels(band))
            assert inst.pixel_noise(band) == pytest.approx(numbers.pixel_noise(band))
            np.testing.assert_allclose(inst.psf_image(band), numbers.psf_image(band))
    # The stored floats survive dataclasses.replace (which passes them back as numbers).
    assert dataclasses.replace(in_other, beta=2.5).fwhm == in_other.fwhm
    # Method arguments too.
    np.testing.assert_allclose(PANDAS.psf_image("g", fwhm=720 * u.mas),
                               PANDAS.psf_image("g", fwhm=0.72))
    assert PANDAS.depth("i", fwhm=0.01 * u.arcmin) == pytest.approx(PANDAS.depth("i", fwhm=0.6))


def test_instrument_wrong_unit_names_the_field():
    with pytest.raises(u.UnitTypeError, match=r"Instrument\.fwhm\['i'\] must have units of "
                                              r"angle, got kpc"):
        dataclasses.replace(PANDAS, fwhm={"g": 0.6 * u.arcsec, "i": 0.6 * u.kpc})
    with pytest.raises(u.UnitTypeError, match=r"Instrument\.pixel_scale"):
        dataclasses.replace(PANDAS, pixel_scale=0.187 * u.arcsec / u.s)
    with pytest.raises(u.UnitTypeError, match=r"^fwhm must have units of angle"):
        PANDAS.psf_image("g", fwhm=0.6 * u.pc)
    # Converted values are checked like numbers.
    with pytest.raises(ValueError, match=r"Instrument\.pixel_scale must be positive"):
        dataclasses.replace(PANDAS, pixel_scale=-0.1 * u.arcsec)


def test_scene_lengths_as_quantities_in_any_unit():
    numbers = M31_SCENE.replace(distance=780.0, disc_scale_length=5.0,
                                cluster_reff_range=(1.0, 8.0))
    quantities = M31_SCENE.replace(distance=0.78 * u.Mpc, disc_scale_length=5000 * u.pc,
                                   cluster_reff_range=(1e-3, 8e-3) * u.kpc)
    pairs = M31_SCENE.replace(distance=780 * u.kpc, disc_scale_length=5 * u.kpc,
                              cluster_reff_range=(1 * u.pc, 8e-3 * u.kpc))
    for scene in (quantities, pairs):
        assert isinstance(scene.distance, float)
        assert scene.distance == pytest.approx(780.0)
        assert scene.disc_scale_length == pytest.approx(5.0)
        assert scene.cluster_reff_range == pytest.approx((1.0, 8.0))
        assert scene.pc_per_arcsec == pytest.approx(numbers.pc_per_arcsec)
        here = M31_CENTER.directional_offset_by(38 * u.deg, 0.5 * u.deg)
        for a, b in zip(scene.cluster_density(here), numbers.cluster_density(here), strict=True):
            assert a.value == pytest.approx(b.value)
    assert quantities.replace(halo_slope=-2.5).distance == quantities.distance


def test_scene_wrong_unit_names_the_field():
    with pytest.raises(u.UnitTypeError, match=r"Scene\.distance must have units of length, "
                                              r"got deg"):
        M31_SCENE.replace(distance=1 * u.deg)
    with pytest.raises(u.UnitTypeError, match=r"Scene\.disc_scale_length"):
        M31_SCENE.replace(disc_scale_length=5 * u.arcmin)
    with pytest.raises(u.UnitTypeError, match=r"Scene\.cluster_reff_range"):
        M31_SCENE.replace(cluster_reff_range=(0.1, 1.0) * u.arcsec)
    with pytest.raises(u.UnitTypeError, match=r"Scene\.cluster_reff_range\[1\]"):
        M31_SCENE.replace(cluster_reff_range=(0.5 * u.pc, 1.0 * u.s))
    with pytest.raises(ValueError, match=r"Scene\.distance must be positive"):
        M31_SCENE.replace(distance=0 * u.kpc)


def test_inject_field_every_ccd(tmp_path):
    from m31clusters.simulate import inject_clusters, inject_field, simulate_field

    sim = simulate_field(248, n_ccds=2, ccd_shape=(200, 240), out_dir=tmp_path, seed=3,
                         catalog=False)
    out = tmp_path / "injected"
    out.mkdir()
    paths, truth = inject_field(sim.images, out, n_per_ccd=4, seed=9, mag_range=(16, 19),
                                young_fraction=0.5)
    assert {b: p.name for b, p in paths.items()} == {"g": "m248_g.fit", "i": "m248_i.fit"}
    assert len(truth) == 8 and truth["hdu"].tolist() == [1] * 4 + [2] * 4
    assert np.all((truth["gmag"] >= 16 * u.mag) & (truth["gmag"] <= 19 * u.mag))
    # each CCD is inject_clusters on that CCD with its own stream of the seed
    rng = np.random.default_rng(9)
    with fits.open(sim.images["g"]) as g, fits.open(sim.images["i"]) as i, \
            fits.open(paths["g"]) as cg, fits.open(paths["i"]) as ci:
        assert len(cg) == len(g) and cg[0].header["OBJECT"] == g[0].header["OBJECT"]
        for k in (1, 2):
            ref, t = inject_clusters({"g": g[k], "i": i[k]}, n=4, seed=int(rng.integers(2**31)),
                                     mag_range=(16, 19), young_fraction=0.5)
            np.testing.assert_array_equal(cg[k].data, ref["g"].data)
            np.testing.assert_array_equal(ci[k].data, ref["i"].data)
            assert cg[k].header["EXTNAME"] == g[k].header["EXTNAME"]
            assert cg[k].header["MAGZPT"] == g[k].header["MAGZPT"]
            sel = truth["hdu"] == k
            np.testing.assert_allclose(truth["ra"][sel], t["ra"])
            assert set(truth["extname"][sel]) == {g[k].header["EXTNAME"]}
            # the injected clusters are on their CCD's image
            assert np.all(cg[k].data.sum() > g[k].data.sum())
        # the inputs are untouched
        np.testing.assert_array_equal(fits.getdata(sim.images["g"], 1), g[1].data)
    # seeded: the same copies again (overwrite=True), never without it
    before = fits.getdata(paths["g"], 2)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        inject_field(sim.images, out, n_per_ccd=4, seed=9)
    again, _ = inject_field(sim.images, out, n_per_ccd=4, seed=9, mag_range=(16, 19),
                            young_fraction=0.5, overwrite=True)
    np.testing.assert_array_equal(fits.getdata(again["g"], 2), before)


def test_inject_field_bad_input(tmp_path):
    from m31clusters.simulate import inject_field, simulate_field

    sim = simulate_field(248, n_ccds=2, ccd_shape=(128, 128), out_dir=tmp_path, seed=3,
                         catalog=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="holds the g input"):
        inject_field(sim.images, tmp_path)
    with pytest.raises(TypeError, match="sets 'positions' itself"):
        inject_field(sim.images, out, positions=[[1, 2]] * u.pix)
    with pytest.raises(ValueError, match="n_per_ccd must be a non-negative integer"):
        inject_field(sim.images, out, n_per_ccd=2.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inject_field(sim.images, tmp_path / "nowhere")
    # stacks with different CCDs: an error, and no copy written (all or none)
    one = tmp_path / "one"
    one.mkdir()
    with fits.open(sim.images["i"]) as h:
        fits.HDUList([h[0].copy(), h[1].copy()]).writeto(one / "m248_i.fit")
    with pytest.raises(ValueError, match="does not have the same CCDs"):
        inject_field({"g": sim.images["g"], "i": one / "m248_i.fit"}, out)
    assert list(out.iterdir()) == []
    # a failure while writing leaves nothing either (here: a bad magnitude range)
    with pytest.raises(ValueError):
        inject_field(sim.images, out, n_per_ccd=2, mag_range=(20, 15))
    assert list(out.iterdir()) == []
