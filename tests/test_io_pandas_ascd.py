"""Tests of the PAndAS per-field catalogue format (m###p.ascd)."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters.catalog import Catalog
from m31clusters.exceptions import ColumnError, CorruptFileError
from m31clusters.io.pandas_ascd import PANDAS_ASCD_COLUMNS, read_pandas_ascd, write_pandas_ascd

NAMES = [c[0] for c in PANDAS_ASCD_COLUMNS]


def sources(n=50, seed=3):
    rng = np.random.default_rng(seed)
    t = Table()
    t["RA"] = rng.uniform(9.5, 11.5, n) * u.deg
    t["Dec"] = rng.uniform(40.5, 42.0, n) * u.deg
    t["iccd"] = rng.integers(0, 36, n)
    for b in "gi":
        t[f"x{b}"] = rng.uniform(1, 2048, n)
        t[f"y{b}"] = rng.uniform(1, 4612, n)
    t["g"] = rng.uniform(16, 26, n)
    t["dg"] = rng.uniform(0.001, 0.3, n)
    t["ig"] = rng.choice([-9, -2, -1, 0, 1, 2], n)
    t["i"] = rng.uniform(15, 25, n)
    t["di"] = rng.uniform(0.001, 0.3, n)
    t["ii"] = rng.choice([-9, -2, -1, 0, 1, 2], n)
    t["ia"] = rng.uniform(0, 5, n)
    t["field"] = np.full(n, 207)
    t["g"][min(4, n - 1)] = np.nan  # undetected in g
    return t


def test_round_trip(tmp_path):
    t = sources()
    path = tmp_path / "m207p.ascd"
    write_pandas_ascd(t, path)
    lines = path.read_text().splitlines()
    assert len(lines) == len(t)
    assert all(len(line.split()) == 15 for line in lines)
    cat = read_pandas_ascd(path)
    assert isinstance(cat, Catalog) and cat.colnames == NAMES
    assert cat.meta["pandas_field"] == 207
    for name, kind, unit, _ in PANDAS_ASCD_COLUMNS:
        assert cat[name].unit == unit
        if kind is int:
            assert cat[name].dtype.kind == "i"
            np.testing.assert_array_equal(cat[name], t[name])
    np.testing.assert_allclose(cat["RA"], t["RA"], atol=0.5e-7)
    np.testing.assert_allclose(cat["Dec"], t["Dec"], atol=0.5e-7)
    np.testing.assert_allclose(cat["xg"], t["xg"], atol=0.5e-3)
    np.testing.assert_allclose(cat["i"], t["i"], atol=0.5e-4)
    assert np.isnan(cat["g"][4])
    # Positions are found by the shared helper (RA/Dec in degrees).
    assert cat.positions.separation(SkyCoord(t["RA"], t["Dec"])).max() < 1 * u.mas


def test_registry_and_skycoord_positions(tmp_path):
    t = sources(n=5)
    coord = SkyCoord(t["RA"], t["Dec"])
    t.remove_columns(["RA", "Dec"])
    t["coord"] = coord
    path = tmp_path / "m250p.ascd"
    Catalog(t).write(path)  # identified by the .ascd extension
    cat = Catalog.read(path)
    assert cat.colnames == NAMES and cat.meta["pandas_field"] == 250
    assert cat.positions.separation(coord).max() < 1 * u.mas
    same = Catalog.read(path, format="pandas-ascd")
    np.testing.assert_array_equal(same["iccd"], cat["iccd"])
    with pytest.raises(FileExistsError):
        Catalog(t).write(path, format="pandas-ascd")
    Catalog(t[:2]).write(path, format="pandas-ascd", overwrite=True)
    assert len(read_pandas_ascd(path)) == 2


def test_units_are_converted(tmp_path):
    t = sources(n=3)
    ra_deg = np.array(t["RA"])
    t["RA"] = np.deg2rad(ra_deg)
    t["RA"].unit = u.rad
    write_pandas_ascd(t, tmp_path / "x.ascd")
    np.testing.assert_allclose(read_pandas_ascd(tmp_path / "x.ascd")["RA"], ra_deg, atol=1e-7)
    t["g"].unit = u.kpc
    with pytest.raises(ColumnError, match="column 'g' has unit kpc, expected mag"):
        write_pandas_ascd(t, tmp_path / "y.ascd")


def test_write_errors(tmp_path):
    t = sources(n=3)
    with pytest.raises(ColumnError, match=r"lacks the PAndAS .ascd column\(s\) \['ia'\]"):
        write_pandas_ascd(t[[n for n in NAMES if n != "ia"]], tmp_path / "a.ascd")
    bad = t.copy()
    bad["ig"] = [0.5, 1, 2]
    with pytest.raises(ColumnError, match=r"column 'ig', row 0: 0.5 is not an integer"):
        write_pandas_ascd(bad, tmp_path / "a.ascd")
    bad = t.copy()
    bad["RA"][1] = np.nan
    with pytest.raises(ValueError, match=r"table has 1 non-finite position\(s\), first at row 1"):
        write_pandas_ascd(bad, tmp_path / "a.ascd")
    assert list(tmp_path.iterdir()) == []
    write_pandas_ascd(t, tmp_path / "a.ascd")
    with pytest.raises(FileExistsError):
        write_pandas_ascd(t, tmp_path / "a.ascd")


def test_read_errors(tmp_path):
    good = "10.5 41.2 3 100.0 200.0 20.1 0.02 -1 101.0 201.0 19.2 0.03 1 0.4 207"
    path = tmp_path / "m207p.ascd"
    path.write_text(f"# a comment\n{good}\n{good} 99\n")
    with pytest.raises(CorruptFileError, match="line 3: 16 columns, expected 15"):
        read_pandas_ascd(path)
    path.write_text(f"{good}\n{good.replace('20.1', 'abc')}\n")
    with pytest.raises(CorruptFileError, match="line 2: column 'g' has 'abc'"):
        read_pandas_ascd(path)
    path.write_text(good.replace(" 3 ", " 3.5 ") + "\n")
    with pytest.raises(CorruptFileError, match="column 'iccd' has '3.5', not an integer"):
        read_pandas_ascd(path)
    with pytest.raises(FileNotFoundError):
        read_pandas_ascd(tmp_path / "missing.ascd")
    path.write_text("")
    assert len(read_pandas_ascd(path)) == 0
