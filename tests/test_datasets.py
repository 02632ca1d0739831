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
