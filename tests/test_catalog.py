"""Tests of m31clusters.catalog: the candidate schema, CDS publishing, regions."""

import re

import numpy as np
import pytest
from _cds_readme import byte_description
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import ascii as astropy_ascii
from astropy.table import Table
from regions import CircleSkyRegion, Regions

from m31clusters.catalog import CANDIDATE_NAME_COLUMNS, Catalog
from m31clusters.exceptions import ColumnError
from m31clusters.geometry import M31_CENTER, pandas_fields

TABLE7 = ["Seq", "coord", "gmag", "e_gmag", "imag", "e_imag", "PAndAS", "Rproj", "Conf",
          "Score", "C09", "RBC", "C11", "W22", "W23", "H14"]


def candidates(n=40, seed=1):
    """Candidates with the value ranges of the seed paper's table 7."""
    rng = np.random.default_rng(seed)
    # Position angles and separations up to 6 deg (83 kpc at 785 kpc).
    sep = np.concatenate([[0.08, 6.0], rng.uniform(0.1, 2.2, n - 2)]) * u.deg
    coord = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg, sep)
    gmag = rng.uniform(13.5, 21, n)
    e_gmag = rng.uniform(0.001, 0.03, n)
    imag = rng.uniform(12.74, 20, n)
    imag[3] = 35.02  # a failed measurement, as in the real table
    e_imag = rng.uniform(0.001, 0.05, n)
    e_imag[3] = 9.4
    imag[5] = np.nan  # and a missing one
    conf = rng.uniform(0.669, 1, n)
    conf[0], conf[1] = 0.0, 1.0
    score = rng.integers(3, 5, n)
    rbc = [None] * n
    rbc[0], rbc[2] = "B001-G070", "B225-G280"
    names = {"RBC": rbc, "J15": ["AP 12" if k == 4 else "" for k in range(n)]}
    return Catalog.from_candidates(coord, gmag=gmag * u.mag, e_gmag=e_gmag, imag=imag,
                                   e_imag=e_imag, conf=conf, score=score, names=names), coord


def test_from_candidates_schema():
    cat, coord = candidates()
    assert cat.colnames == TABLE7 + ["J15"]
    assert list(cat["Seq"]) == list(range(1, len(cat) + 1))
    assert cat["gmag"].unit == u.mag and cat["e_imag"].unit == u.mag
    assert cat["Rproj"].unit == u.kpc
    assert cat["Conf"].unit is None and cat["PAndAS"].unit is None
    for name in TABLE7:
        assert cat[name].info.description, name
    assert cat["RBC"][0] == "B001-G070" and cat["RBC"].mask[1]
    assert cat["J15"][4] == "AP 12" and cat["J15"].mask[0]
    assert cat["C09"].mask.all()
    assert cat["imag"].mask[5] and not cat["imag"].mask[4]


def test_from_candidates_geometry_is_right():
    cat, coord = candidates()
    # Rproj = D tan(separation), separations by astropy.
    expected = 785 * np.tan(coord.separation(M31_CENTER).rad)
    np.testing.assert_allclose(cat["Rproj"], expected, rtol=1e-9)
    assert 1 < cat["Rproj"].min() < 2 and 82 < cat["Rproj"].max() < 83
    # The PAndAS field holds the position: the field centre is within the
    # half-diagonal of a 0.96 x 0.94 deg MegaCam field.
    fields = pandas_fields()
    centres = SkyCoord(fields["ra"], fields["dec"])
    ok = ~cat["PAndAS"].mask
    assert ok.sum() >= len(cat) - 2
    index = {f: k for k, f in enumerate(fields["PAndAS"])}
    for k in np.flatnonzero(ok):
        c = centres[index[int(cat["PAndAS"][k])]]
        assert c.separation(coord[k]) < 0.68 * u.deg
    # Given values are kept as they are.
    cat2 = Catalog.from_candidates(coord[:2], gmag=[20, 20], e_gmag=[0.01, 0.01],
                                   imag=[19, 19], e_imag=[0.01, 0.01], conf=[0.9, 0.8],
                                   pandas=[207, 285], rproj=[1.0, 83.0] * u.kpc)
    assert list(cat2["PAndAS"]) == [207, 285] and list(cat2["Rproj"]) == [1.0, 83.0]


def test_candidate_catalogue_publishes(tmp_path):
    cat, coord = candidates()
    readme, data = cat.write_cds(
        tmp_path / "ReadMe", tmp_path / "table7.dat",
        title="Star cluster candidates in M31 from PAndAS images",
        authors=["Zhang J.", "Other A."], abstract="Candidates found by a ResNet-50.",
        keywords=["galaxies: individual (M31)", "galaxies: star clusters: general"],
        notes={"Conf": "Highest probability = most likely class.",
               "Score": "Sum of the scores of two inspectors."},
    )
    text = readme.read_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    # Byte-by-byte block: one line per column, parsed independently of the package.
    assert "Byte-by-byte Description of file: table7.dat" in lines
    ranges = byte_description(text)
    sexa = ["RAh", "RAm", "RAs", "DE-", "DEd", "DEm", "DEs"]
    assert [r[0] for r in ranges] == ["Seq"] + sexa + TABLE7[2:] + ["J15"]
    units = {r[0]: r[4] for r in ranges}
    assert units["gmag"] == "mag" and units["Rproj"] == "kpc" and units["Conf"] == "---"
    rows = data.read_text().splitlines()
    assert len(rows) == len(cat)
    lrecl = re.search(r"^table7\.dat\s+(\d+)\s+(\d+)", text, re.M)
    assert int(lrecl.group(1)) == ranges[-1][2] and int(lrecl.group(2)) == len(cat)
    cut = {label: [row[s - 1:e] for row in rows] for label, s, e, _, _ in ranges}
    # Fields are separated by blanks (the sign column touches its degrees).
    for (_, _, e1, _, _), (label, s2, _, _, _) in zip(ranges, ranges[1:], strict=False):
        assert s2 == e1 + (1 if label == "DEd" else 2), label
        assert label == "DEd" or all(row[s2 - 2] == " " for row in rows)
    np.testing.assert_array_equal([int(v) for v in cut["Seq"]], cat["Seq"])
    np.testing.assert_allclose([float(v) for v in cut["gmag"]], cat["gmag"], atol=5e-4 + 1e-9)
    assert cut["imag"][3].strip() == "35.020" and cut["e_imag"][3].strip() == "9.400"
    assert cut["imag"][5].strip() == ""
    assert [int(v) for v in cut["PAndAS"] if v.strip()] == list(cat["PAndAS"].compressed())
    assert cut["RBC"][0].strip() == "B001-G070" and cut["RBC"][1].strip() == ""
    ra = 15 * np.array([int(h) + int(m) / 60 + float(s) / 3600
                        for h, m, s in zip(cut["RAh"], cut["RAm"], cut["RAs"], strict=True)])
    dec = np.array([(-1 if g == "-" else 1) * (int(d) + int(m) / 60 + float(s) / 3600)
                    for g, d, m, s in zip(cut["DE-"], cut["DEd"], cut["DEm"], cut["DEs"],
                                          strict=True)])
    assert np.all(SkyCoord(ra, dec, unit="deg").separation(coord) < 0.02 * u.arcsec)
    # Limits and nullable flags in the explanations.
    assert "[13.5" in text and "[0.000/1.000]" in text
    assert re.search(r"imag\s+\[12\.\d{3}/35\.020\]\? PAndAS", text)
    # astropy reads it back.
    back = astropy_ascii.read(str(data), readme=str(readme), format="cds")
    assert back.colnames == ["Seq"] + sexa + TABLE7[2:] + ["J15"]
    np.testing.assert_allclose(back["Rproj"], cat["Rproj"], atol=0.005 + 1e-9)
    assert back["Rproj"].unit == u.kpc and back["gmag"].unit == u.mag
    assert back["imag"].mask[5] and back["C09"].mask.all()
    again = Catalog.read_cds(readme)
    assert again.colnames == cat.colnames
    assert again.meta["notes"]["Conf"] == "Highest probability = most likely class."


def test_from_candidates_errors():
    c = SkyCoord([10, 11], [41, 42], unit="deg")
    good = dict(gmag=[20, 20], e_gmag=[0.01, 0.01], imag=[19, 19], e_imag=[0.01, 0.01])
    with pytest.raises(ColumnError, match=r"conf must lie in \[0, 1\]; row 1"):
        Catalog.from_candidates(c, conf=[0.5, 1.5], **good)
    with pytest.raises(ColumnError, match="score must lie in 0-4; row 0"):
        Catalog.from_candidates(c, conf=[0.5, 0.6], score=[5, 3], **good)
    with pytest.raises(ColumnError, match=r"gmag has shape \(3,\)"):
        Catalog.from_candidates(c, conf=[0.5, 0.6], **{**good, "gmag": [1, 2, 3]})
    with pytest.raises(ColumnError, match="units of kpc|expected mag"):
        Catalog.from_candidates(c, conf=[0.5, 0.6], **{**good, "gmag": [1, 2] * u.kpc})
    with pytest.raises(TypeError, match="SkyCoord"):
        Catalog.from_candidates([10, 11], conf=[0.5, 0.6], **good)
    with pytest.raises(ColumnError, match="'bad label'"):
        Catalog.from_candidates(c, conf=[0.5, 0.6], names={"bad label": ["a", "b"]}, **good)
    assert set(CANDIDATE_NAME_COLUMNS) == {"C09", "RBC", "C11", "W22", "W23", "H14"}


def test_positions_from_any_columns():
    cat = Catalog({"ra": [10.0, 11.0] * u.deg, "dec": [41.0, 42.0] * u.deg})
    np.testing.assert_allclose(cat.positions.dec.deg, [41, 42])
    with pytest.raises(KeyError, match="no positions"):
        _ = Catalog({"x": [1]}).positions


def test_regions(tmp_path):
    cat, coord = candidates()
    cat, coord = cat[:5], coord[:5]
    regs = cat.to_regions(radius=1.5 * u.arcsec)
    assert isinstance(regs, Regions) and len(regs) == 5
    assert all(isinstance(r, CircleSkyRegion) for r in regs)
    assert [r.meta["text"] for r in regs] == ["1", "2", "3", "4", "5"]
    assert max(r.center.separation(c).arcsec for r, c in zip(regs, coord, strict=True)) < 1e-9
    assert regs[0].radius == 1.5 * u.arcsec
    per_row = cat.to_regions(radius=np.arange(1, 6) * u.arcsec, label="RBC")
    assert per_row[4].radius == 5 * u.arcsec
    assert per_row[0].meta["text"] == "B001-G070" and "text" not in per_row[1].meta
    path = tmp_path / "cands.reg"
    cat.write_regions(path, radius=2 * u.arcsec)
    back = Regions.read(path, format="ds9")
    assert len(back) == 5
    assert back[2].center.separation(coord[2]).arcsec < 1e-3
    assert back[2].radius.to_value(u.arcsec) == pytest.approx(2, abs=1e-4)
    with pytest.raises(FileExistsError):
        cat.write_regions(path)
    cat.write_regions(path, format="crtf", overwrite=True)
    # CRTF keeps 6 decimals of a degree.
    radius = Regions.read(path, format="crtf")[0].radius.to_value(u.arcsec)
    assert radius == pytest.approx(1, abs=2e-3)
    with pytest.raises(ValueError, match="positive"):
        cat.to_regions(radius=0 * u.arcsec)
    with pytest.raises(TypeError, match="Quantity"):
        cat.to_regions(radius=1.0)


def test_catalog_is_a_table():
    cat, _ = candidates()
    assert isinstance(cat, Table)
    assert isinstance(cat[:2], Catalog)
