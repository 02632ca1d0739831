import csv
import filecmp
import shutil

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters.catalog import Catalog
from m31clusters.datasets import load_caldwell2011, load_rbc_v5, read_catalog
from m31clusters.exceptions import CorruptFileError
from m31clusters.geometry import M31_CENTER


def _parse_fixed_width(path, ra_cols, dec_cols, name_cols):
    """Independent parser of the Caldwell CDS files, using the ReadMe byte ranges."""
    names, ra, dec = [], [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n").ljust(90)
            h, m, s = (float(line[a - 1:b]) for a, b in ra_cols)
            sign, d, dm, ds = line[dec_cols[0][0] - 1], *(
                float(line[a - 1:b]) for a, b in dec_cols[1:])
            ra.append(15 * (h + m / 60 + s / 3600))
            dec.append((-1 if sign == "-" else 1) * (d + dm / 60 + ds / 3600))
            names.append(line[name_cols[0] - 1:name_cols[1]].strip())
    return names, SkyCoord(ra, dec, unit="deg")


def test_rbc_v5():
    rbc = load_rbc_v5()
    assert len(rbc) == 625
    assert isinstance(rbc, Catalog)
    assert rbc.colnames[:2] == ["name", "coord"]
    assert len(set(rbc["name"])) == 625
    assert rbc["vmag"].unit == u.mag
    from importlib import resources
    with resources.as_file(resources.files("m31clusters") / "data" / "rbc_v5_confirmed.csv") as p:
        with open(p) as f:
            rows = list(csv.DictReader(f))
    raw = SkyCoord([float(r["ra_deg"]) for r in rows], [float(r["dec_deg"]) for r in rows],
                   unit="deg")
    assert rbc["coord"].separation(raw).max() < 1e-6 * u.arcsec
    assert [r["name"] for r in rows] == rbc["name"].tolist()
    # M31 GCs: most in the inner disc, the outer halo ones within ~140 kpc (10 deg)
    sep = rbc["coord"].separation(M31_CENTER)
    assert np.median(sep) < 1 * u.deg and sep.max() < 10 * u.deg


def test_caldwell2011_against_raw_files():
    from importlib import resources
    old = load_caldwell2011("old")
    young = load_caldwell2011("young")
    both = load_caldwell2011()
    assert (len(old), len(young), len(both)) == (323, 37, 360)
    assert all(isinstance(c, Catalog) for c in (old, young, both))
    assert both["table"].tolist() == ["old"] * 323 + ["young"] * 37
    with resources.as_file(resources.files("m31clusters") / "data" / "caldwell2011") as d:
        n1, c1 = _parse_fixed_width(d / "table1.dat", [(13, 13), (15, 16), (18, 22)],
                                    [(23, 23), (24, 25), (27, 28), (30, 33)], (1, 10))
        n2, c2 = _parse_fixed_width(d / "table2.dat", [(21, 21), (23, 24), (26, 30)],
                                    [(32, 32), (33, 34), (36, 37), (39, 42)], (1, 17))
    assert old["name"].tolist() == n1 and young["name"].tolist() == n2
    assert old["coord"].separation(c1).max() < 1e-6 * u.arcsec
    assert young["coord"].separation(c2).max() < 1e-6 * u.arcsec
    for col in ("RAh", "DEd", "DE-", "Name"):
        assert col not in both.colnames
    assert old["Vel"].unit == u.km / u.s
    # published values of the first row (B291-G009: -213.5 km/s, [Fe/H] = -1.2)
    assert old["Vel"][0] == -213.5 and old["[Fe/H]"][0] == -1.2
    with pytest.raises(ValueError, match="table must be"):
        load_caldwell2011("table1")


def test_shipped_copies_match_shared_data(shared_data):
    from importlib import resources
    with resources.as_file(resources.files("m31clusters") / "data") as d:
        assert filecmp.cmp(d / "rbc_v5_confirmed.csv", shared_data / "rbc_v5_confirmed.csv",
                           shallow=False)
        for name in ("ReadMe", "table1.dat", "table2.dat"):
            assert filecmp.cmp(d / "caldwell2011" / name, shared_data / "caldwell2011" / name,
                               shallow=False)


@pytest.mark.parametrize("fmt,suffix", [("ascii.csv", ".csv"), ("fits", ".fits"),
                                        ("ascii.ecsv", ".ecsv"), ("votable", ".vot")])
def test_read_catalog_formats(tmp_path, fmt, suffix):
    t = Table({"ID": ["A1", "A2"], "ra": [10.68, 359.99] * u.deg, "dec": [41.27, -1.0] * u.deg,
               "mag": [17.0, 18.5]})
    path = tmp_path / f"cat{suffix}"
    t.write(path, format=fmt)
    cat = read_catalog(path, name_column="ID")
    assert cat.colnames == ["name", "coord", "mag"]
    assert cat["name"].tolist() == ["A1", "A2"]
    expected = SkyCoord([10.68, 359.99], [41.27, -1.0], unit="deg")
    assert cat["coord"].separation(expected).max() < 1e-6 * u.arcsec
    assert cat["mag"].tolist() == [17.0, 18.5]


def test_read_catalog_cds(tmp_path):
    from importlib import resources
    with resources.as_file(resources.files("m31clusters") / "data" / "caldwell2011") as d:
        for name in ("ReadMe", "table2.dat"):
            shutil.copy(d / name, tmp_path / name)
    cat = read_catalog(tmp_path / "table2.dat", name_column="Name", readme=tmp_path / "ReadMe")
    ref = load_caldwell2011("young")
    assert cat["name"].tolist() == ref["name"].tolist()
    assert cat["coord"].separation(ref["coord"]).max() < 1e-9 * u.arcsec
    assert "RAh" not in cat.colnames


def test_read_catalog_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_catalog(tmp_path / "missing.csv")
    path = tmp_path / "c.csv"
    Table({"ID": ["A"], "ra": [1.0], "dec": [2.0]}).write(path)
    with pytest.raises(KeyError, match="no name column 'name'"):
        read_catalog(path)
    nopos = tmp_path / "nopos.csv"
    Table({"name": ["A"], "x": [1.0]}).write(nopos)
    with pytest.raises(KeyError, match="no positions found"):
        read_catalog(nopos)
    nan = tmp_path / "nan.csv"
    Table({"name": ["A", "B"], "ra": [1.0, np.nan], "dec": [2.0, 3.0]}).write(nan)
    with pytest.raises(ValueError, match="NaN or masked position"):
        read_catalog(nan)
    odd = tmp_path / "c.txt"
    odd.write_text("name ra dec\nA 1 2\n")
    with pytest.raises(ValueError, match="cannot guess the format"):
        read_catalog(odd)
    assert read_catalog(odd, format="ascii.basic")["name"].tolist() == ["A"]
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = this is not a FITS file")
    with pytest.raises(CorruptFileError, match="bad.fits"):
        read_catalog(bad)
    with pytest.raises(FileNotFoundError, match="ReadMe"):
        read_catalog(path, readme=tmp_path / "ReadMe")


# --- PHAT, Wang 2023, Hectospec ----------------------------------------------------------

def _raw_phat(shared_data):
    import warnings

    from astropy.units import UnitsWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        clusters = Table.read(shared_data / "phat_ap_johnson2015" / "J_ApJ_802_127_table2.fits")
        ages = Table.read(shared_data / "phat_ap_johnson2015" / "J_ApJ_827_33_table4.fits")
    return clusters, ages


def test_phat_clusters_against_raw_files(shared_data):
    from m31clusters.datasets import PHAT_VEGA_TO_AB, load_phat_clusters
    phat = load_phat_clusters()
    raw, ages = _raw_phat(shared_data)
    assert isinstance(phat, Catalog)
    assert len(phat) == len(raw) == 2753
    assert phat.colnames[:2] == ["name", "coord"]
    assert phat["APID"].tolist() == sorted(raw["APID"].tolist())
    order = np.argsort(raw["APID"])
    raw = raw[order]
    sep = phat["coord"].separation(SkyCoord(raw["RAdeg"], raw["DEdeg"], unit="deg"))
    assert sep.max() < 1e-6 * u.arcsec
    assert phat["Reff"].unit == u.arcsec and phat["Rap"].unit == u.arcsec
    assert int(np.ma.count_masked(phat["Reff"])) == 10
    # ages and masses joined by APID, independently: a dict lookup
    by_id = {int(a): (float(t), float(m)) for a, t, m in
             zip(ages["APID"], ages["logAge"], ages["logMass"], strict=True)}
    assert int((~np.ma.getmaskarray(phat["logAge"])).sum()) == len(ages) == 1249
    for row in phat[~np.ma.getmaskarray(phat["logAge"])][::97]:
        assert (float(row["logAge"]), float(row["logMass"])) == by_id[int(row["APID"])]
    # the documented Vega-to-AB approximation
    ok = ~np.ma.getmaskarray(phat["F475W"])
    assert np.allclose(np.asarray(phat["g"])[ok],
                       np.asarray(phat["F475W"])[ok] + PHAT_VEGA_TO_AB["F475W"], atol=6e-4)
    assert np.ma.getmaskarray(phat["g"]).sum() == 10


def test_phat_published_facts():
    """The facts of ../shared/data/README.md, computed from the loader."""
    from m31clusters.crossmatch import match
    from m31clusters.datasets import load_phat_clusters
    from m31clusters.geometry import pandas_fields_containing, projected_radius
    bright = load_phat_clusters(mag_limit=21)
    assert len(bright) == 1399
    assert np.ma.median(bright["Reff"]) == pytest.approx(0.56, abs=0.005)
    phat = load_phat_clusters()
    fields = pandas_fields_containing(phat["coord"])
    first = [int(f[0]) if len(f) else -1 for f in fields]
    counts = {k: first.count(k) for k in set(first)}
    assert counts == {248: 693, 257: 9, 266: 1902, 279: 138, -1: 11}
    rproj = projected_radius(phat["coord"]).to_value(u.kpc)
    assert rproj.min() == pytest.approx(0.17, abs=0.01)
    assert rproj.max() == pytest.approx(18.7, abs=0.05)
    rbc = match(phat, load_rbc_v5(), radius=1 * u.arcsec, into="RBC")
    assert int((rbc["RBC"] != "").sum()) == 227
    c11 = match(phat, load_caldwell2011(), radius=1 * u.arcsec, into="C11")
    assert int((c11["C11"] != "").sum()) == 136


def test_phat_mag_limit_checks():
    from m31clusters.datasets import load_phat_clusters
    assert len(load_phat_clusters(mag_limit=21 * u.mag)) == 1399
    with pytest.raises(ValueError, match="mag_limit"):
        load_phat_clusters(mag_limit=np.nan)


def test_phat_footprint():
    from regions import PolygonSkyRegion

    from m31clusters.datasets import in_phat_footprint, load_phat_clusters, phat_footprint
    region = phat_footprint()
    assert isinstance(region, PolygonSkyRegion)
    phat = load_phat_clusters()
    inside = in_phat_footprint(phat["coord"])
    # hull vertices sit on the edge; every other cluster is strictly inside
    assert inside.sum() >= len(phat) - len(region.vertices)
    # PHAT covers the bulge (clusters from 0.17 kpc) and the NE disc, not the SW disc or halo
    pos = SkyCoord([10.6847, 10.2, 12.5, 8.0], [41.2688, 40.6, 43.0, 39.0], unit="deg")
    assert in_phat_footprint(pos).tolist() == [True, False, False, False]
    # independent check: area of the hull on the tangent plane ~ 0.5 deg^2 (PHAT)
    off = region.vertices.transform_to(M31_CENTER.skyoffset_frame())
    x, y = off.lon.deg, off.lat.deg
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert 0.3 < area < 0.7
    # shape is kept, and non-SkyCoord input refused
    assert in_phat_footprint(phat["coord"][:6].reshape(2, 3)).shape == (2, 3)
    with pytest.raises(TypeError, match="SkyCoord"):
        in_phat_footprint([11.3, 41.7])


def test_wang2023_against_raw_file(shared_data):
    import warnings

    from astropy.units import UnitsWarning

    from m31clusters.datasets import load_wang2023
    w23 = load_wang2023()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        raw = Table.read(shared_data / "wang2023" / "J_ApJ_954_206_table10.dat.fits")
    assert len(w23) == 50 and isinstance(w23, Catalog)
    assert w23["name"].tolist() == [str(s) for s in raw["Seq"]]
    assert w23["coord"].separation(
        SkyCoord(raw["RAdeg"], raw["DEdeg"], unit="deg")).max() < 1e-6 * u.arcsec
    # the ReadMe's stated ranges
    assert 16.7 <= float(np.min(w23["gmag"])) and float(np.max(w23["gmag"])) <= 19.5


def test_hectospec2015_against_raw_file(shared_data):
    from m31clusters.datasets import load_hectospec2015
    hs = load_hectospec2015()
    halo = load_hectospec2015(halo_only=True)
    # independent parse of the tab-separated file: name, RA (h:m:s), Dec (d:m:s)
    names, ra, dec = [], [], []
    with open(shared_data / "hectospec2015" / "M31_Hectospec_old_catalog.dat") as f:
        lines = f.read().splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith("object")][0] + 2
    for line in lines[start:]:
        if line.strip():
            parts = line.split("\t")
            names.append(parts[0].strip())
            h, m, s = map(float, parts[1].split(":"))
            d, dm, ds = map(float, parts[2].split(":"))
            ra.append(15 * (h + m / 60 + s / 3600))
            dec.append(d + dm / 60 + ds / 3600)
    assert hs["name"].tolist() == names
    assert hs["coord"].separation(SkyCoord(ra, dec, unit="deg")).max() < 1e-6 * u.arcsec
    assert len(halo) == sum(n.startswith(("PAndAS-", "HEC")) or
                            (n.startswith("H") and n[1:].isdigit()) for n in names)
    assert "PAndAS-04" in halo["name"] and "B001" not in halo["name"]
    assert hs["Vel"].unit == u.km / u.s
    b001 = hs[hs["name"] == "B001-G070"] if "B001-G070" in hs["name"] else hs[:0]
    assert len(b001) <= 1


def test_match_literature_fills_columns():
    from m31clusters.crossmatch import LITERATURE_SOURCES, match_literature
    from m31clusters.datasets import load_hectospec2015, load_wang2023
    rbc, w23 = load_rbc_v5(), load_wang2023()
    halo = load_hectospec2015(halo_only=True)
    coords = SkyCoord(np.concatenate([rbc["coord"].ra.deg[:3], w23["coord"].ra.deg[:2],
                                      halo["coord"].ra.deg[:2], [5.0]]),
                      np.concatenate([rbc["coord"].dec.deg[:3], w23["coord"].dec.deg[:2],
                                      halo["coord"].dec.deg[:2], [30.0]]), unit="deg")
    cands = Catalog({"coord": coords})
    out = match_literature(cands)
    assert set(LITERATURE_SOURCES) <= set(out.colnames)
    assert out["RBC"].tolist()[:3] == rbc["name"].tolist()[:3]
    assert out["W23"].tolist()[3:5] == ["1", "2"]
    assert out["H14"].tolist()[5:7] == halo["name"].tolist()[:2]
    assert [out[c][7] for c in LITERATURE_SOURCES] == ["", "", "", ""]
    with pytest.raises(ValueError, match="C09"):
        match_literature(cands, columns=["C09"])
