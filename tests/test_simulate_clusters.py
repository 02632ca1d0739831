"""Tests of simulate_field with a given cluster population, and of what its truth table says."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import CircularAperture, aperture_photometry

from m31clusters.geometry import M31_CENTER
from m31clusters.simulate import M31_SCENE, PANDAS, simulate_field

#: Clusters on empty sky: no stars, galaxies or member stars.
BARE = M31_SCENE.replace(disc_density=0.0, halo_density=0.0, foreground_density=0.0,
                         galaxy_density=0.0, resolved_fraction=0.0,
                         young_cluster_density=0.0, gc_number=0.0)
PHAT_FILE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "phat_ap_johnson2015"
             / "J_ApJ_802_127_table2.fits")
SHAPE = (200, 160)


def _wcs_of(sim, band="i"):
    with fits.open(sim.images[band]) as hdul:
        return {h.header["CCDNUM"]: (WCS(h.header), h.data.astype(float), h.header)
                for h in hdul[1:]}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """WCS of the two CCDs of a small field 211 (a first, empty simulation)."""
    out = tmp_path_factory.mktemp("layout")
    sim = simulate_field(211, n_ccds=2, ccd_shape=SHAPE, out_dir=out, seed=1, scene=BARE,
                         catalog=False)
    return {ccd: w for ccd, (w, _, _) in _wcs_of(sim).items()}


def _clusters(layout):
    """Five clusters on the two CCDs, one far away, one with a masked magnitude."""
    (ca, wa), (cb, wb) = sorted(layout.items())
    pix = [(wa, 50.3, 60.7), (wa, 110.0, 140.2), (wa, 80.6, 100.1), (wb, 70.2, 90.8),
           (wb, 100.5, 40.25)]
    coords = [w.pixel_to_world(x, y) for w, x, y in pix]
    coords.append(M31_CENTER)  # not in field 211
    coords.append(coords[0].directional_offset_by(90 * u.deg, 2 * u.arcsec))
    t = Table()
    t["coord"] = SkyCoord(coords)
    t["g"] = np.ma.masked_array([18.0, 18.5, 19.0, 18.2, 18.8, 18.0, 18.0],
                                mask=[0, 0, 0, 0, 0, 0, 1])
    t["i"] = [17.5, 18.4, 18.2, 17.0, 18.9, 17.0, 17.5]
    t["Reff"] = [0.3, 0.5, 0.4, 0.6, 0.35, 0.5, 0.5] * u.arcsec
    t["population"] = ["young"] * 7
    return t, [(ca if w is wa else cb, x, y) for w, x, y in pix]


def test_given_clusters_land_where_asked_with_their_brightness(layout, tmp_path):
    clusters, where = _clusters(layout)
    sim = simulate_field(211, n_ccds=2, ccd_shape=SHAPE, out_dir=tmp_path, seed=3, scene=BARE,
                         clusters=clusters)
    pl = sim.placement
    assert list(pl["status"]) == ["placed"] * 5 + ["outside", "invalid"]
    assert list(pl["placed"]) == [True] * 5 + [False, False]
    assert list(pl["truth_id"][5:]) == [-1, -1]
    truth = sim.truth
    on = truth[truth["on_ccd"]]
    assert set(on["kind"]) == {"cluster"} and len(on) == 5
    images = {b: _wcs_of(sim, b) for b in ("g", "i")}
    for k, (ccd, x, y) in enumerate(where):
        row = truth[pl["truth_id"][k]]
        assert row["cluster_row"] == k and row["ccd"] == ccd == pl["ccd"][k]
        # Pixel position from the written image's own WCS: within 0.1 pixel.
        w, data, hdr = images["i"][ccd]
        px, py = w.world_to_pixel(clusters["coord"][k])
        assert abs(row["x"] - px) < 0.1 and abs(row["y"] - py) < 0.1
        assert abs(pl["x"][k] - x) < 0.1 and abs(pl["y"][k] - y) < 0.1
        # The light is centred there (flux-weighted centroid of an 11 x 11 box).
        ix, iy = int(round(x)), int(round(y))
        box = data[iy - 5:iy + 6, ix - 5:ix + 6]
        yy, xx = np.mgrid[iy - 5:iy + 6, ix - 5:ix + 6]
        assert abs(np.sum(box * xx) / box.sum() - x) < 0.1
        assert abs(np.sum(box * yy) / box.sum() - y) < 0.1
        # Brightness: aperture photometry of the image against the requested magnitudes.
        assert row["reff_arcsec"] == pytest.approx(clusters["Reff"].quantity[k].value)
        for band in ("g", "i"):
            w, data, hdr = images[band][ccd]
            flux = aperture_photometry(data, CircularAperture((x, y), r=30.0))["aperture_sum"][0]
            mag = hdr["MAGZPT"] - 2.5 * np.log10(flux)
            assert mag == pytest.approx(float(clusters[band][k]), abs=0.03), (k, band)


def test_given_clusters_are_reproducible_and_leave_the_rest_alone(layout, tmp_path):
    clusters, _ = _clusters(layout)
    scene = M31_SCENE.replace(foreground_density=30.0)
    runs = []
    for name, given in (("a", clusters), ("b", clusters), ("c", None)):
        out = tmp_path / name
        out.mkdir()
        runs.append(simulate_field(211, n_ccds=2, ccd_shape=SHAPE, out_dir=out, seed=5,
                                   scene=scene, clusters=given, catalog=False))
    a, b, c = runs
    with fits.open(a.images["g"]) as ha, fits.open(b.images["g"]) as hb:
        for x, y in zip(ha[1:], hb[1:], strict=True):
            np.testing.assert_array_equal(x.data, y.data)
    # Stars and galaxies do not depend on the clusters given; the scene's own
    # clusters are replaced by the given ones.
    for kind in ("star", "galaxy"):
        sa, sc = a.truth[a.truth["kind"] == kind], c.truth[c.truth["kind"] == kind]
        np.testing.assert_array_equal(sa["x"], sc["x"])
        np.testing.assert_array_equal(sa["gmag"], sc["gmag"])
    cl = a.truth[a.truth["kind"] == "cluster"]
    assert np.all(cl["cluster_row"] >= 0)
    assert np.all(c.truth["cluster_row"] == -1)


def test_given_clusters_bad_input(tmp_path, layout):
    good, _ = _clusters(layout)
    kw = dict(n_ccds=1, ccd_shape=(32, 32), out_dir=tmp_path, seed=1, scene=BARE)
    with pytest.raises(TypeError, match="Table"):
        simulate_field(211, clusters={"g": [18.0]}, **kw)
    t = good.copy()
    del t["Reff"]
    with pytest.raises(ValueError, match="lacks column.*Reff"):
        simulate_field(211, clusters=t, **kw)
    t = good.copy()
    t["Reff"] = [0.5] * len(t)
    with pytest.raises(ValueError, match="'Reff' has no unit"):
        simulate_field(211, clusters=t, **kw)
    t["Reff"] = [0.5] * len(t) * u.Jy
    with pytest.raises(u.UnitTypeError, match="'Reff' must have angle"):
        simulate_field(211, clusters=t, **kw)
    t = good.copy()
    t["g"] = t["g"] * u.Jy
    with pytest.raises(u.UnitTypeError, match="'g' must hold AB magnitudes"):
        simulate_field(211, clusters=t, **kw)
    t = good.copy()
    del t["coord"]
    with pytest.raises(ValueError, match=r"coord \(or ra and dec\)"):
        simulate_field(211, clusters=t, **kw)
    t["ra"] = good["coord"].ra.deg
    t["dec"] = good["coord"].dec.deg
    with pytest.raises(ValueError, match="'ra' has no unit"):
        simulate_field(211, clusters=t, **kw)
    t = good.copy()
    t["population"] = ["young", "young", "middle-aged"] + ["young"] * 4
    with pytest.raises(ValueError, match="row 2 has 'middle-aged'"):
        simulate_field(211, clusters=t, **kw)
    assert not any(tmp_path.iterdir())  # nothing written


def test_given_clusters_ra_dec_and_physical_sizes(layout, tmp_path):
    good, _ = _clusters(layout)
    t = Table()
    t["ra"] = good["coord"].ra.to(u.deg)
    t["dec"] = good["coord"].dec.to(u.deg)
    t["g"], t["i"] = good["g"], good["i"]
    t["Reff"] = good["Reff"].quantity.to_value(u.arcsec) * M31_SCENE.pc_per_arcsec * u.pc
    sim = simulate_field(211, n_ccds=2, ccd_shape=SHAPE, out_dir=tmp_path, seed=3,
                         scene=BARE, clusters=t, catalog=False)
    placed = sim.placement[sim.placement["placed"]]
    assert len(placed) == 5
    rows = sim.truth[placed["truth_id"]]
    np.testing.assert_allclose(rows["reff_arcsec"], good["Reff"][:5], rtol=1e-9)
    # No population column: the colour decides (g - i < 0.8 is young).
    gi = np.asarray(good["g"][:5]) - np.asarray(good["i"][:5])
    assert list(rows["population"]) == ["young" if c < 0.8 else "old" for c in gi]


# ---------------------------------------------------------------------------
# Default cluster density against PHAT
# ---------------------------------------------------------------------------
def _phat():
    if not PHAT_FILE.exists():
        pytest.skip(f"PHAT catalogue not found at {PHAT_FILE}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        return Table.read(PHAT_FILE)


def test_default_cluster_density_matches_phat():
    """Scene.cluster_density over the PHAT clusters' convex hull vs PHAT's own counts."""
    from scipy.spatial import ConvexHull, Delaunay

    phat = _phat()
    frame = M31_CENTER.skyoffset_frame()
    off = SkyCoord(phat["RAdeg"], phat["DEdeg"], unit="deg").transform_to(frame)
    xy = np.column_stack([off.lon.deg, off.lat.deg])
    hull = ConvexHull(xy)
    area = hull.volume * 3600.0  # arcmin^2
    assert 0.5 < area / 3600 < 0.65  # "~0.5 deg^2" (a convex hull is a little larger)
    rng = np.random.default_rng(0)
    pts = rng.uniform(xy.min(0), xy.max(0), (20000, 2))
    pts = pts[Delaunay(xy[hull.vertices]).find_simplex(pts) >= 0]
    where = SkyCoord(pts[:, 0] * u.deg, pts[:, 1] * u.deg, frame=frame)
    young, old = M31_SCENE.cluster_density(where, g_limit=21.0)
    model = float(np.mean(young + old).value * area)
    f475w = np.asarray(phat["F475W"].filled(np.nan))
    observed = int(np.sum(f475w < 21))
    assert observed == 1399
    assert model == pytest.approx(observed, rel=0.15)
    # The bright end is not swamped: PHAT has 110 with F475W < 18.
    y18, o18 = M31_SCENE.cluster_density(where, g_limit=18.0)
    assert 0.5 < float(np.mean(y18 + o18).value * area) / np.sum(f475w < 18) < 2.0


def test_field_draws_clusters_at_the_scene_density(tmp_path):
    # Many clusters (50x the default density) on an otherwise empty disc CCD.
    scene = BARE.replace(young_cluster_density=50 * M31_SCENE.young_cluster_density,
                         gc_number=50 * M31_SCENE.gc_number)
    sim = simulate_field(266, n_ccds=2, ccd_shape=(300, 300), out_dir=tmp_path, seed=2,
                         scene=scene, catalog=False)
    cl = sim.truth[(sim.truth["kind"] == "cluster") & sim.truth["on_ccd"]]
    wcs = _wcs_of(sim)
    expected = expected21 = 0.0
    for w, _data, _ in wcs.values():
        yy, xx = np.mgrid[0:300:30, 0:300:30]
        pos = w.pixel_to_world(xx.ravel() + 15, yy.ravel() + 15)
        area = (300 * PANDAS.pixel_scale / 60) ** 2
        young, old = scene.cluster_density(pos)
        expected += float(np.mean(young + old).value) * area
        y21, o21 = scene.cluster_density(pos, g_limit=21.0)
        expected21 += float(np.mean(y21 + o21).value) * area
    assert abs(len(cl) - expected) < 4 * math.sqrt(expected)
    n21 = int(np.sum(cl["gmag"] < 21))
    assert abs(n21 - expected21) < 4 * math.sqrt(expected21)
    assert np.all((cl["gmag"] >= 15) & (cl["gmag"] <= 22))


# ---------------------------------------------------------------------------
# What the truth table carries: the hard negatives
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def disc(tmp_path_factory):
    out = tmp_path_factory.mktemp("disc")
    scene = M31_SCENE.replace(foreground_density=40.0, galaxy_density=60.0)
    return simulate_field(248, n_ccds=1, ccd_shape=(400, 400), out_dir=out, seed=8,
                          scene=scene)


def test_truth_describes_every_object(disc):
    t = disc.truth
    for col in ("kind", "population", "gmag", "imag", "reff_arcsec", "x", "y", "ra", "dec",
                "crowding", "n_blend", "blend_gmag", "saturated", "edge_distance",
                "cluster_row"):
        assert t[col].description, col
    assert set(t["kind"]) <= {"star", "cluster", "galaxy"}
    stars = t["kind"] == "star"
    assert set(t["population"][stars]) == {"disc_old", "disc_young", "halo", "foreground"}
    young = t[stars & (t["population"] == "disc_young")]
    assert np.median(young["gmag"] - young["imag"]) < 0
    on = np.asarray(t["on_ccd"])
    assert np.all((t["edge_distance"] > 0) == on)


def test_truth_crowding_and_blends_against_brute_force(disc):
    t = disc.truth
    x, y = np.asarray(t["x"]), np.asarray(t["y"])
    g = np.asarray(t["gmag"])
    bright = np.flatnonzero((t["kind"] == "star") & (g < 23))
    r = 15.0 / PANDAS.pixel_scale
    inner = np.flatnonzero((x - r > -20.5) & (x + r < 419.5) & (y - r > -20.5)
                           & (y + r < 419.5))
    for k in inner[:: max(1, inner.size // 25)]:
        d = np.hypot(x[bright] - x[k], y[bright] - y[k])
        n = np.sum((d < r) & (bright != k))
        assert t["crowding"][k] == pytest.approx(n / (math.pi * 0.25**2), rel=1e-9)
    fwhm = t.meta["fwhm_i"] / PANDAS.pixel_scale
    flux = 10 ** (-0.4 * g)
    sample = np.flatnonzero(t["on_ccd"])[:: 50]
    for k in sample:
        d = np.hypot(x - x[k], y - y[k])
        near = (d < fwhm) & (np.arange(len(t)) != k)
        assert t["n_blend"][k] == np.sum(near & (flux >= 0.25 * flux[k]))
        assert t["blend_gmag"][k] == pytest.approx(-2.5 * np.log10(flux[k] + flux[near].sum()))
    assert np.any(t["n_blend"][t["on_ccd"]] > 0)


def test_truth_saturated_stars_are_saturated_in_the_image(disc):
    t = disc.truth
    with fits.open(disc.images["i"]) as hdul:
        data, hdr = hdul[1].data, hdul[1].header
    level = hdr["SATURATE"] - hdr["SKYLEVEL"]
    inside = t["edge_distance"] > 3 * u.pix
    sat = t[t["saturated"] & inside]
    assert len(sat) >= 1
    for row in sat[sat["imag"] < 17]:
        ix, iy = int(round(row["x"])), int(round(row["y"]))
        assert np.max(data[iy - 1:iy + 2, ix - 1:ix + 2]) == pytest.approx(level, rel=1e-6)
    # Stars 10x brighter than saturation are flagged; faint stars with no bright
    # neighbour are not.
    assert np.all(t["saturated"][inside & (t["imag"] < 16)])
    x, y, i = (np.asarray(t[c]) for c in ("x", "y", "imag"))
    brightxy = np.column_stack([x[i < 18], y[i < 18]])
    for k in np.flatnonzero(inside & (t["imag"] > 21))[::20]:
        if np.min(np.hypot(*(brightxy - [x[k], y[k]]).T), initial=1e9) > 30:
            assert not t["saturated"][k]
    # The catalogue flags very bright stars -9 when it lists them.
    cat = disc.catalog
    very = np.asarray(t["imag"])[cat["truth_row"]] < 16
    assert np.all(cat["ii"][very] == -9)


def test_background_galaxies_include_cluster_sized_ones(tmp_path):
    sim = simulate_field(211, n_ccds=1, ccd_shape=(300, 300), out_dir=tmp_path, seed=4,
                         scene=BARE.replace(galaxy_density=300.0), catalog=False)
    gal = sim.truth[sim.truth["kind"] == "galaxy"]
    mid = gal[(gal["imag"] > 21) & (gal["imag"] < 23)]
    assert len(mid) > 30
    # Median half-light radius ~0.5 arcsec at i ~ 22, and some as compact as
    # a typical PHAT cluster (0.56 arcsec) or smaller than 0.3 arcsec.
    assert 0.35 < np.median(mid["reff_arcsec"]) < 0.8
    assert np.mean(mid["reff_arcsec"] < 0.3) > 0.01
    assert {"sersic"} == set(gal["profile"])
    assert np.any(gal["shape"] > 2.5) and np.any(gal["shape"] < 1.5)
