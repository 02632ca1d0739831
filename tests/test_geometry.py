import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters import geometry
from m31clusters.geometry import (
    M31_CENTER,
    deprojected_radius,
    pandas_field,
    pandas_fields,
    pandas_fields_containing,
    projected_radius,
    tangent_plane_offsets,
)


def test_center():
    assert M31_CENTER.ra.to_string(u.hour, sep=":", precision=2) == "0:42:44.33"
    assert M31_CENTER.dec.to_string(u.deg, sep=":", precision=1) == "41:16:07.5"
    assert M31_CENTER.frame.name == "icrs"


def test_projected_radius_independent():
    rng = np.random.default_rng(0)
    c = SkyCoord(rng.uniform(0, 360, 1000) * u.deg, rng.uniform(-30, 89, 1000) * u.deg)
    sep = c.separation(M31_CENTER)
    expected = 785 * u.kpc * np.tan(sep)
    got = projected_radius(c)
    near = sep < 80 * u.deg
    assert got.unit == u.kpc
    np.testing.assert_allclose(got[near].value, expected[near].to_value(u.kpc), rtol=1e-10)
    assert np.all(np.isinf(got[sep > 90 * u.deg]))
    # other distance / center / frame
    gal = c.galactic
    np.testing.assert_allclose(projected_radius(gal, distance=0.77 * u.Mpc)[near].value,
                               770 * np.tan(sep[near]).value, rtol=1e-9)


def test_projected_radius_scalar_and_center():
    assert projected_radius(M31_CENTER).value == 0
    assert projected_radius(M31_CENTER).shape == ()


def test_projected_radius_against_shared_fields(shared_data):
    """pandas_fields.csv has Rproj = D * sep (arc length); agree to 0.1% within 30 kpc."""
    t = Table.read(shared_data / "pandas_fields.csv", format="ascii.csv")
    c = SkyCoord(t["ra_deg"], t["dec_deg"], unit="deg")
    sep = np.deg2rad(t["sep_from_M31_deg"])
    # The file's own separation column agrees with ours (to its 4 decimals).
    # the file rounds to 4 decimals
    np.testing.assert_allclose(c.separation(M31_CENTER).deg, t["sep_from_M31_deg"], atol=1.1e-4)
    np.testing.assert_allclose(785 * sep, t["Rproj_kpc_D785"], atol=0.006)
    r = projected_radius(c).value
    inner = t["Rproj_kpc_D785"] < 30
    assert inner.sum() == 17  # field centres within 30 kpc
    np.testing.assert_allclose(r[inner], t["Rproj_kpc_D785"][inner], rtol=1e-3, atol=0.01)


def test_deprojected_axes():
    d = 0.5 * u.deg
    major = M31_CENTER.directional_offset_by(38 * u.deg, d)
    minor = M31_CENTER.directional_offset_by(128 * u.deg, d)
    rp_major, rp_minor = projected_radius(major), projected_radius(minor)
    np.testing.assert_allclose(deprojected_radius(major).value, rp_major.value, rtol=1e-6)
    np.testing.assert_allclose(deprojected_radius(minor).value,
                               rp_minor.value / np.cos(np.deg2rad(77)), rtol=1e-6)
    # face-on: deprojected == projected everywhere
    rng = np.random.default_rng(1)
    c = M31_CENTER.directional_offset_by(rng.uniform(0, 360, 50) * u.deg,
                                         rng.uniform(0, 3, 50) * u.deg)
    np.testing.assert_allclose(deprojected_radius(c, inclination=0 * u.deg).value,
                               projected_radius(c).value, rtol=1e-9)


def test_deprojected_against_3d_disc():
    """Independent: place points on an inclined thin disc in 3-D and view them."""
    rng = np.random.default_rng(2)
    R = rng.uniform(0.5, 30, 200)
    phi = rng.uniform(0, 2 * np.pi, 200)
    inc, pa = np.deg2rad(77), np.deg2rad(38)
    xd, yd = R * np.cos(phi), R * np.sin(phi)  # x along major axis in the disc
    # sky-plane (orthographic) offsets: minor axis foreshortened by cos(i)
    x_sky, y_sky = xd, yd * np.cos(inc)
    east = x_sky * np.sin(pa) + y_sky * np.cos(pa)
    north = x_sky * np.cos(pa) - y_sky * np.sin(pa)
    # place on the sky with the tangent-plane inverse via astropy's offset frame
    frame = M31_CENTER.skyoffset_frame()
    lon = np.arctan(east / 785)
    lat = np.arctan(north / 785 * np.cos(lon))
    c = SkyCoord(lon * u.rad, lat * u.rad, frame=frame).icrs
    np.testing.assert_allclose(deprojected_radius(c).value, R, rtol=1e-6)
    xi, eta = tangent_plane_offsets(c)
    np.testing.assert_allclose(np.deg2rad(xi.value) * 785, east, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.deg2rad(eta.value) * 785, north, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("func", [projected_radius, deprojected_radius, pandas_field,
                                  pandas_fields_containing, tangent_plane_offsets])
def test_bad_coords(func):
    with pytest.raises(TypeError, match="SkyCoord"):
        func((10.68, 41.27))
    with pytest.raises(ValueError, match="non-finite.*index 1"):
        func(SkyCoord([10.0, np.nan], [41.0, 41.0], unit="deg"))


def test_bad_distance():
    with pytest.raises(TypeError, match="Quantity"):
        projected_radius(M31_CENTER, distance=785)
    with pytest.raises(u.UnitTypeError, match="length"):
        projected_radius(M31_CENTER, distance=785 * u.s)
    with pytest.raises(ValueError, match="positive"):
        projected_radius(M31_CENTER, distance=-1 * u.kpc)
    with pytest.raises(ValueError, match="inclination"):
        deprojected_radius(M31_CENTER, inclination=90 * u.deg)
    with pytest.raises(TypeError, match="Quantity"):
        deprojected_radius(M31_CENTER, inclination=77)


def test_pandas_fields_table(shared_data):
    t = pandas_fields()
    assert len(t) == 406
    assert t.colnames == ["PAndAS", "ra", "dec", "sep", "Rproj"]
    assert list(t["PAndAS"]) == list(range(1, 407))
    ref = Table.read(shared_data / "pandas_fields.csv", format="ascii.csv")
    np.testing.assert_array_equal(t["ra"].value, ref["ra_deg"])
    np.testing.assert_array_equal(t["dec"].value, ref["dec_deg"])
    assert t["ra"].unit == u.deg and t["Rproj"].unit == u.kpc
    np.testing.assert_array_equal(t["Rproj"].value, ref["Rproj_kpc_D785"])
    t["PAndAS"][0] = -5  # a copy: the cached table is not changed
    assert pandas_fields()["PAndAS"][0] == 1


def _brute_force_fields(c):
    """Reference: test every field's footprint, O(N * 406)."""
    t = pandas_fields()
    out = []
    for ci in c:
        offs = ci.transform_to(SkyCoord(t["ra"], t["dec"]).skyoffset_frame())
        # gnomonic: xi = tan(lon) for lat=0; general: xi = tan(lon), eta = tan(lat)/cos(lon)
        lon, lat = offs.lon.rad, offs.lat.rad
        xi = np.tan(lon)
        eta = np.tan(lat) / np.cos(lon)
        ok = (np.cos(lon) > 0) & (np.abs(xi) <= np.tan(np.deg2rad(0.48))) & (
            np.abs(eta) <= np.tan(np.deg2rad(0.47)))
        sep = ci.separation(SkyCoord(t["ra"], t["dec"])).deg
        ids = np.asarray(t["PAndAS"])[ok][np.argsort(sep[ok], kind="stable")]
        out.append(ids)
    return out


def test_pandas_field_brute_force():
    rng = np.random.default_rng(3)
    # M31 region plus a few far away and the RA=0 wrap
    ra = np.concatenate([rng.uniform(3, 20, 300), rng.uniform(-3, 3, 50) % 360, [180.0]])
    dec = np.concatenate([rng.uniform(33, 50, 300), rng.uniform(30, 45, 50), [-40.0]])
    c = SkyCoord(ra, dec, unit="deg")
    ref = _brute_force_fields(c)
    got_all = pandas_fields_containing(c)
    got = pandas_field(c)
    assert got.shape == (len(c),)
    for r, a, g in zip(ref, got_all, got, strict=True):
        assert list(a) == list(r)
        assert g == (r[0] if len(r) else -1)
    assert got[-1] == -1
    assert (got > 0).sum() > 200
    assert any(len(a) > 1 for a in got_all)  # overlaps exist


def test_field_centres_in_own_field():
    t = pandas_fields()
    c = SkyCoord(t["ra"], t["dec"])
    np.testing.assert_array_equal(pandas_field(c), t["PAndAS"])
    assert pandas_field(c.reshape(2, 203)).shape == (2, 203)


def test_pandas_field_scalar():
    f = pandas_field(M31_CENTER)
    assert isinstance(f, int) and f > 0
    assert len(pandas_fields_containing(SkyCoord(180, -40, unit="deg"))) == 0
    with pytest.raises(ValueError, match="1-D"):
        pandas_fields_containing(SkyCoord(np.zeros((2, 2)), np.zeros((2, 2)), unit="deg"))


def test_keyword_only_after_positions():
    with pytest.raises(TypeError, match="positional"):
        projected_radius(M31_CENTER, 785 * u.kpc)
    with pytest.raises(TypeError, match="positional"):
        deprojected_radius(M31_CENTER, 785 * u.kpc)
    with pytest.raises(TypeError, match="positional"):
        tangent_plane_offsets(M31_CENTER, M31_CENTER)
    assert projected_radius(positions=M31_CENTER, distance=1 * u.Mpc).value == 0


def test_module_all_is_the_public_names_defined():
    # __all__ lists exactly the public functions, classes and constants that
    # geometry defines itself (not what it imports), so a new public name left
    # out of __all__, or a stale entry, fails.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(geometry))
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    public = {name for name in defined if not name.startswith("_")}
    assert set(geometry.__all__) == public
    assert len(geometry.__all__) == len(set(geometry.__all__))
