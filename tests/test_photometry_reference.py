"""
`measure` against photutils computed independently here, source by source.

On a small simulated crowded disc field (m31clusters.simulate: Moffat PSF,
saturation, sky-subtracted float32 ADU, header zero points and gain) and on a
synthetic image with missing pixels and edges, every flux, error, flag,
concentration index and FWHM of the vectorised `measure` must equal what
photutils' `aperture_photometry` (``method="exact"``) and `ApertureStats`
(3-sigma clipped annulus, at most 5 iterations) give for the same positions.
"""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import NDData
from astropy.stats import SigmaClip
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from m31clusters.exceptions import OffImageWarning
from m31clusters.photometry import measure

photutils_aperture = pytest.importorskip("photutils.aperture")


def _photutils_measure(data, wcs, coords, *, zp, gain, saturation, morphology,
                       aperture=2.0, annulus=(4.0, 6.0), ci=(0.5, 1.5)):
    """The photometry `measure` documents, with photutils, one source at a time."""
    from photutils.aperture import (
        ApertureStats,
        CircularAnnulus,
        CircularAperture,
        aperture_photometry,
    )

    data = np.asarray(data, dtype=float)
    bad = ~np.isfinite(data)
    filled = np.where(bad, 0.0, data)
    scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600)
    r_ap, r_in, r_out = aperture / scale, annulus[0] / scale, annulus[1] / scale
    x, y = wcs.world_to_pixel(coords)
    ny, nx = data.shape
    n = len(coords)
    res = {k: np.full(n, np.nan) for k in ("flux", "err", "ci", "fwhm")}
    res["flag"] = np.full(n, 2)
    clip = SigmaClip(sigma=3.0, maxiters=5)
    for k in range(n):
        if not (-0.5 < x[k] < nx - 0.5 and -0.5 < y[k] < ny - 0.5):
            continue
        xy = (float(x[k]), float(y[k]))
        ap = CircularAperture(xy, r_ap)
        ann = CircularAnnulus(xy, r_in, r_out)
        total = float(aperture_photometry(filled, ap, mask=bad)["aperture_sum"][0])
        area = float(ap.area_overlap(data, mask=bad))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-masked annuli
            sky = ApertureStats(data, ann, mask=bad, sigma_clip=clip)
            # pixels the clipped mean is computed from (centre method)
            n_sky = float(ApertureStats(data, ann, mask=bad, sigma_clip=clip,
                                        sum_method="center").sum_aper_area.value)
        mean, std = float(sky.mean), float(sky.std)
        complete = (abs(area - ap.area) < 1e-6 * ap.area and np.isfinite(mean)
                    and np.isfinite(std) and n_sky > 0.5 * ann.area)
        if not complete:
            continue
        f = total - mean * ap.area
        res["flux"][k] = f
        res["err"][k] = np.sqrt(ap.area * std**2 * (1 + ap.area / n_sky) + max(f, 0) / gain)
        hot = ((data >= saturation * (1 - 1e-6)) & ~bad).astype(float)
        res["flag"][k] = 1 if aperture_photometry(hot, ap)["aperture_sum"][0] > 0 else 0
        if morphology:
            r1, r2 = ci[0] / scale, ci[1] / scale
            t1 = float(aperture_photometry(filled, CircularAperture(xy, r1), mask=bad)
                       ["aperture_sum"][0])
            t2 = float(aperture_photometry(filled, CircularAperture(xy, r2), mask=bad)
                       ["aperture_sum"][0])
            f1, f2 = t1 - mean * np.pi * r1**2, t2 - mean * np.pi * r2**2
            if f1 > 0 and f2 > 0:
                res["ci"][k] = -2.5 * np.log10(f1 / f2)
            st = ApertureStats(filled, CircularAperture(xy, r2), mask=bad, local_bkg=mean)
            res["fwhm"][k] = float(st.fwhm.value) * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        res["mag"] = np.where(res["flux"] > 0, zp - 2.5 * np.log10(res["flux"]), np.nan)
    return res


def _compare(out, ref, band, morphology):
    np.testing.assert_array_equal(np.asarray(out[f"{band}flag"]), ref["flag"])
    ok = ref["flag"] < 2
    assert np.count_nonzero(ok) > 20
    np.testing.assert_array_equal(np.isfinite(out[f"{band}flux"]), ok)
    np.testing.assert_allclose(out[f"{band}flux"][ok], ref["flux"][ok], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(out[f"e_{band}flux"][ok], ref["err"][ok], rtol=1e-9)
    pos = np.isfinite(ref["mag"])
    np.testing.assert_array_equal(np.isfinite(out[f"{band}mag"]), pos)
    np.testing.assert_allclose(out[f"{band}mag"].value[pos], ref["mag"][pos], rtol=0,
                               atol=1e-9)
    if morphology:
        for col, key in (("CI", "ci"), ("FWHM", "fwhm")):
            got = np.asarray(out[col].value)
            np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref[key]))
            fin = np.isfinite(got)
            np.testing.assert_allclose(got[fin], ref[key][fin], rtol=1e-9, atol=1e-9)


def _tan_wcs(crpix):
    """A TAN WCS at the PAndAS pixel scale (0.187 arcsec) near M31's centre."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.6847, 41.2688]
    w.wcs.crpix = crpix
    w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    return w


@pytest.fixture(scope="module")
def disc_field(tmp_path_factory):
    simulate = pytest.importorskip("m31clusters.simulate")
    sim = simulate.simulate_field(field=248, n_ccds=1, ccd_shape=(420, 360),
                                  out_dir=tmp_path_factory.mktemp("disc"), seed=4,
                                  progress=False)
    truth = sim.truth[sim.truth["on_ccd"]]
    hdus = {b: fits.open(sim.images[b]) for b in ("g", "i")}
    yield truth, {b: h[1] for b, h in hdus.items()}
    for h in hdus.values():
        h.close()


def test_measure_equals_photutils_on_simulated_disc_field(disc_field):
    truth, images = disc_field
    coords = SkyCoord(truth["ra"], truth["dec"], unit="deg")
    sel = np.asarray(truth["imag"]) < 22.5
    # positions near the edges and off the image too
    w = WCS(images["i"].header)
    ny, nx = images["i"].data.shape
    extra = w.pixel_to_world([3.2, nx - 2.7, 180.0, -40.0], [200.0, 5.5, ny - 1.2, 100.0])
    positions = SkyCoord(np.concatenate([coords.ra.deg[sel], extra.ra.deg]),
                         np.concatenate([coords.dec.deg[sel], extra.dec.deg]), unit="deg")
    assert len(positions) > 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OffImageWarning)
        out = measure(images, positions)
    for band in ("g", "i"):
        hdr = images[band].header
        sat = hdr["SATURATE"] - hdr.get("SKYLEVEL", 0.0)
        ref = _photutils_measure(images[band].data, WCS(hdr), positions, zp=hdr["MAGZPT"],
                                 gain=hdr["GAIN"], saturation=sat, morphology=band == "i")
        assert np.count_nonzero(ref["flag"] == 2) >= 4  # edges and off-image
        _compare(out, ref, band, morphology=band == "i")


def test_measure_equals_photutils_with_missing_pixels():
    rng = np.random.default_rng(3)
    shape = (260, 330)
    w = _tan_wcs([165.0, 130.0])
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    x = rng.uniform(-5, shape[1] + 5, 120)
    y = rng.uniform(-5, shape[0] + 5, 120)
    data = rng.normal(50.0, 6.0, shape) + 0.02 * xx  # a gradient, so the clipping matters
    for x0, y0, f in zip(x, y, 10 ** rng.uniform(2.5, 5, x.size), strict=True):
        data += f / (2 * np.pi * 1.6**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.6**2))
    data[:, 200:203] = np.nan  # a column gap
    data[40:44, 10:90] = np.inf
    data[150, 150:160] = -np.inf
    data = data.astype(np.float32)
    img = NDData(data, wcs=w, meta={"ZP": 30.0, "GAIN": 1.5, "SATURATE": 2000.0})
    with pytest.warns(OffImageWarning):
        out = measure({"i": img}, w.pixel_to_world(x, y))
    ref = _photutils_measure(data, w, w.pixel_to_world(x, y), zp=30.0, gain=1.5,
                             saturation=2000.0, morphology=True)
    assert np.count_nonzero(ref["flag"] == 1) > 0
    _compare(out, ref, "i", morphology=True)


def test_measure_pixel_apertures_and_float64():
    """Radii in pixels, a float64 image and an NDData mask give the photutils values too."""
    rng = np.random.default_rng(8)
    shape = (150, 150)
    w = _tan_wcs([75.0, 75.0])
    data = rng.normal(10.0, 2.0, shape)
    mask = np.zeros(shape, bool)
    mask[70:75, 20:30] = True
    x, y = rng.uniform(10, 140, 40), rng.uniform(10, 140, 40)
    masked = np.where(mask, np.nan, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OffImageWarning)
        out = measure({"g": NDData(data, wcs=w, mask=mask, meta={"ZP": 25.0, "GAIN": 4.0})},
                      w.pixel_to_world(x, y), aperture=4 * u.pix, annulus=(8, 14) * u.pix,
                      ci_radii=(1, 3) * u.pix)
    scale = 0.187
    ref = _photutils_measure(masked, w, w.pixel_to_world(x, y), zp=25.0, gain=4.0,
                             saturation=np.inf, morphology=True, aperture=4 * scale,
                             annulus=(8 * scale, 14 * scale), ci=(scale, 3 * scale))
    _compare(out, ref, "g", morphology=True)
