"""Tests of the CDS reader and writer (m31clusters.io.cds) and their registration."""

import os
import re
import string
import tempfile

import numpy as np
import pytest
from _cds_readme import byte_description, slice_data
from astropy import units as u
from astropy.coordinates import FK5, SkyCoord
from astropy.io import ascii as astropy_ascii
from astropy.table import MaskedColumn, Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from m31clusters.catalog import Catalog
from m31clusters.exceptions import CDSFormatError, CorruptFileError, M31ClustersWarning
from m31clusters.io.cds import cds_unit_string, read_cds, write_cds

# Keep Hypothesis' cache out of the checkout: pytest would refuse to skip it.
set_hypothesis_home_dir(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
                        or tempfile.mkdtemp(prefix="m31clusters-hypothesis-"))

KW = {"title": "Test catalogue", "authors": ["Doe J.", "Roe R."], "year": 2026}

def small_table():
    t = Table()
    t["coord"] = SkyCoord([10.684708, 0.0001, 359.99999], [41.26875, -0.5, -89.9], unit="deg")
    t["n"] = [1, -22, 333]
    t["x"] = MaskedColumn([1.5, np.nan, -2.25], mask=[False, False, True], unit=u.kpc)
    t["x"].description = "A distance"
    t["name"] = ["B001", "", "NGC 224"]
    return t


# --------------------------------------------------------------------------
# The real Caldwell et al. (2011) catalogue


@pytest.mark.parametrize("table_name", ["table1.dat", "table2.dat"])
def test_caldwell_round_trip(shared_data, tmp_path, table_name):
    readme = shared_data / "caldwell2011" / "ReadMe"
    original = astropy_ascii.read(
        str(shared_data / "caldwell2011" / table_name), readme=str(readme), format="cds"
    )
    cat = Catalog.read_cds(readme, table_name)
    assert isinstance(cat, Catalog)
    assert "coord" in cat.colnames and "RAh" not in cat.colnames
    # The rebuilt positions, against the sexagesimal columns computed here.
    ra = 15 * (original["RAh"] + original["RAm"] / 60 + original["RAs"] / 3600)
    dec = original["DEd"] + original["DEm"] / 60 + original["DEs"] / 3600  # blank DE- = +
    np.testing.assert_allclose(cat["coord"].ra.deg, ra, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cat["coord"].dec.deg, dec, rtol=0, atol=1e-9)

    new_readme, new_data = cat.write_cds(
        tmp_path / "ReadMe", tmp_path / table_name, title="Star clusters in M31. II.",
        authors=["Caldwell N.", "Schiavon R."],
    )
    back = astropy_ascii.read(str(new_data), readme=str(new_readme), format="cds")
    assert back.colnames == original.colnames
    assert len(back) == len(original)
    for name in original.colnames:
        a, b = original[name], back[name]
        assert a.unit == b.unit, name
        np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b), name)
        keep = ~np.ma.getmaskarray(a)
        np.testing.assert_array_equal(np.asarray(a)[keep], np.asarray(b)[keep], name)
    # The layout is CDS: every line of the ReadMe fits in 80 characters and the
    # record length in the File Summary is that of the data lines.
    text = new_readme.read_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    lrecl = int(re.search(rf"^{re.escape(table_name)}\s+(\d+)\s+(\d+)", text, re.M).group(1))
    assert {len(line) for line in new_data.read_text().splitlines()} == {lrecl}
    # The notes survive.
    again = Catalog.read_cds(new_readme)
    assert again.meta["notes"] == cat.meta["notes"]
    assert again["Age"].description == original["Age"].description.removesuffix(" (3)")


def test_caldwell_notes_and_descriptions(shared_data):
    cat = read_cds(shared_data / "caldwell2011" / "ReadMe", "table1.dat")
    assert set(cat.meta["notes"]) == {"n_Name", "f_E(B-V)", "Age", "Notes"}
    assert cat.meta["notes"]["Notes"].startswith("Additional notes as follows:")
    assert "x = age could not be determined" in cat.meta["notes"]["Notes"]
    assert cat["Age"].description == "Age"
    assert cat["coord"].info.meta["cds_precision"] == (2, 1)
    # "J2000" in the explanations: the positions are FK5 J2000.
    assert isinstance(cat["coord"].frame, FK5)


def test_read_cds_needs_data_path_when_ambiguous(shared_data):
    with pytest.raises(CDSFormatError, match="several data files"):
        read_cds(shared_data / "caldwell2011" / "ReadMe")


# --------------------------------------------------------------------------
# Layout


def test_byte_ranges_and_values(tmp_path):
    t = small_table()
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    ranges = byte_description(readme.read_text())
    labels = [r[0] for r in ranges]
    assert labels == ["RAh", "RAm", "RAs", "DE-", "DEd", "DEm", "DEs", "n", "x", "name"]
    cut = slice_data(data.read_text(), ranges)
    assert cut["n"] == ["1", "-22", "333"]
    assert cut["x"] == ["1.5", "", ""]
    assert cut["name"] == ["B001", "", "NGC 224"]
    # 10.684708 deg = 0h42m44.32992s; 359.99999 deg = 23h59m59.9976s.
    assert cut["RAh"] == ["0", "0", "23"]
    assert cut["RAs"] == ["44.330", "00.024", "59.998"]
    assert cut["DE-"] == ["+", "-", "-"]
    assert [cut["DEd"][k] + cut["DEm"][k] + cut["DEs"][k] for k in range(3)] == [
        "411607.50", "003000.00", "895400.00"]
    units = {r[0]: r[4] for r in ranges}
    assert units["x"] == "kpc" and units["RAs"] == "s" and units["name"] == "---"
    text = readme.read_text()
    assert "? A distance" in text and "[1.5/1.5]?" in text
    assert "[-22/333] n" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_read_back_with_astropy_and_read_cds(tmp_path):
    t = small_table()
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    back = astropy_ascii.read(str(data), readme=str(readme), format="cds")
    assert back["x"].unit == u.kpc
    assert list(back["n"]) == [1, -22, 333]
    assert back["x"].mask.tolist() == [False, True, True]
    assert back["x"].description == "A distance"
    cat = read_cds(readme)
    assert cat.colnames == ["coord", "n", "x", "name"]
    assert cat["coord"].separation(t["coord"]).max() < 0.01 * u.arcsec
    assert cat["name"].mask.tolist() == [False, True, False]


def test_coord_precision_and_carries(tmp_path):
    t = Table()
    # 23h59m59.99996s rounds up to 24h = 0h; -0.00000001 deg rounds to +00 00 00.
    t["coord"] = SkyCoord([359.9999998, 15.0], [-1e-8, -12.3456789], unit="deg")
    readme, data = write_cds(t, tmp_path / "ReadMe", coord_precision=(1, 0), **KW)
    ranges = byte_description(readme.read_text())
    fmts = {r[0]: r[3] + str(r[2] - r[1] + 1) for r in ranges}
    assert fmts["RAs"] == "F4" and fmts["DEs"] == "F2"
    cut = slice_data(data.read_text(), ranges)
    assert (cut["RAh"], cut["RAm"], cut["RAs"]) == (["0", "1"], ["00", "00"], ["00.0", "00.0"])
    assert cut["DE-"] == ["+", "-"]
    # -12.3456789 deg = -12d20m44.444s -> 44 arcsec at 0 decimals.
    assert (cut["DEd"], cut["DEm"], cut["DEs"]) == (["00", "12"], ["00", "20"], ["00", "44"])


def test_user_formats_and_python_format(tmp_path):
    t = Table({"a": [1.23456, -2.5], "b": [3, 40], "s": ["x", "yy"]})
    t["a"].info.format = "{:.2f}"
    readme, data = write_cds(t, tmp_path / "ReadMe", formats={"b": "I4", "s": "A5"}, **KW)
    ranges = byte_description(readme.read_text())
    assert [(r[0], r[3], r[2] - r[1] + 1) for r in ranges] == [
        ("a", "F", 5), ("b", "I", 4), ("s", "A", 5)]
    assert slice_data(data.read_text(), ranges)["a"] == ["1.23", "-2.50"]


def test_floats_fall_back_to_E_format(tmp_path):
    t = Table({"f": [1.5e-300, 2.0, -3.25e200]})
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    (label, start, end, kind, _), = byte_description(readme.read_text())
    assert kind == "E"
    back = astropy_ascii.read(str(data), readme=str(readme), format="cds")
    assert back["f"].tolist() == [1.5e-300, 2.0, -3.25e200]


def test_floats_round_trip_exactly_at_powers_of_two(tmp_path):
    # Just above a power of two the neighbouring doubles are unequally spaced:
    # 2**-24 written with its shortest repr's 15 mantissa decimals rounds (half
    # to even) to a string that reads back as the double below (CI failure).
    values = []
    for k in list(range(-70, 70)) + [-1022, -1074, 1023]:
        v = 2.0**k
        values += [v, np.nextafter(v, 0), np.nextafter(v, np.inf), -v]
    values += [np.finfo(float).max, 0.1, 1 / 3]
    for chunk in ([v] for v in values):  # one value per file: F and E both chosen
        t = Table({"f": chunk})
        readme, data = write_cds(t, tmp_path / "ReadMe", overwrite=True, **KW)
        back = astropy_ascii.read(str(data), readme=str(readme), format="cds")
        assert back["f"].tolist() == chunk
    t = Table({"f": values})
    readme, data = write_cds(t, tmp_path / "ReadMe", overwrite=True, **KW)
    assert read_cds(readme)["f"].tolist() == values


def test_notes_and_wrapping(tmp_path):
    t = small_table()
    t["n"].description = ("A long explanation that goes on and on about how the number 2011 "
                          "was measured in 1990 2000 and 2010 with 3 different instruments "
                          "12 times over")
    notes = {"n": "First line of the note.\n  a = an indented list item that is quite long "
                  "indeed and must be wrapped because it is longer than eighty characters",
             "coord": "Positions from PAndAS."}
    readme, data = write_cds(t, tmp_path / "ReadMe", notes=notes, **KW)
    text = readme.read_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Note (1): Positions from PAndAS." in text
    assert "Note (2): First line of the note." in text
    back = astropy_ascii.read(str(data), readme=str(readme), format="cds")
    assert back["n"].description.endswith("12 times over (2)")
    assert back.colnames[:7] == ["RAh", "RAm", "RAs", "DE-", "DEd", "DEm", "DEs"]
    cat = read_cds(readme)
    assert cat["n"].description == " ".join(t["n"].description.split())
    assert cat.meta["notes"]["n"].startswith("First line of the note.\n  a = an indented")
    assert cat.meta["notes"]["coord"] == "Positions from PAndAS."


def test_units_in_cds_syntax():
    assert cds_unit_string(u.mag) == "mag"
    assert cds_unit_string(u.kpc) == "kpc"
    assert cds_unit_string(u.km / u.s) == "km/s"
    assert cds_unit_string(u.arcsec) == "arcsec"
    assert cds_unit_string(u.mas / u.yr) == "mas/yr"
    assert cds_unit_string(u.erg / u.s / u.cm**2) == "erg.s-1.cm-2"
    assert cds_unit_string(u.dex(u.solMass)) == "[Msun]"
    assert cds_unit_string(None) == "---"
    for text in ("mag", "kpc", "km/s", "mas/yr", "[Msun]", "erg.s-1.cm-2"):
        unit = u.Unit(text, format="cds")
        assert u.Unit(cds_unit_string(unit), format="cds") == unit


def test_ra_dec_degree_columns_become_sexagesimal(tmp_path):
    t = Table({"ra": [10.684708] * u.deg, "dec": [41.26875] * u.deg, "v": [1]})
    readme, _ = write_cds(t, tmp_path / "ReadMe", **KW)
    cat = read_cds(readme)
    assert cat.colnames == ["coord", "v"]
    assert cat["coord"].separation(SkyCoord(10.684708, 41.26875, unit="deg")) < 0.01 * u.arcsec


# --------------------------------------------------------------------------
# Errors


def test_error_non_ascii(tmp_path):
    t = Table({"name": ["B001", "Andromède"]})
    with pytest.raises(CDSFormatError, match=r"column 'name', row 1.*non-ASCII"):
        write_cds(t, tmp_path / "ReadMe", **KW)
    assert list(tmp_path.iterdir()) == []


def test_error_repeated_label(tmp_path):
    t = small_table()
    t["RAh"] = [1, 2, 3]
    with pytest.raises(CDSFormatError, match="label 'RAh' repeats"):
        write_cds(t, tmp_path / "ReadMe", **KW)
    t = Table({"Vel": [1], "vel": [2]})
    with pytest.raises(CDSFormatError, match="repeats"):
        write_cds(t, tmp_path / "ReadMe", **KW)


def test_error_invalid_label(tmp_path):
    with pytest.raises(CDSFormatError, match="'my col' is not valid"):
        write_cds(Table({"my col": [1]}), tmp_path / "ReadMe", **KW)


@pytest.mark.parametrize(
    ("column", "values", "fmt", "row"),
    [
        ("g", [18.123, 123.456], "F5.2", 1),  # overflow: "123.46" needs 6 characters
        ("n", [5, -10], "I2", 1),  # "-10" needs 3 characters
        ("s", ["ab", "abcdef"], "A4", 1),  # truncation of a string
        ("x", [1.0, 2.5], "I3", 1),  # 2.5 would be truncated to an integer
    ],
)
def test_error_format_too_narrow(tmp_path, column, values, fmt, row):
    t = Table({column: values})
    with pytest.raises(CDSFormatError, match=rf"column '{column}', row {row}"):
        write_cds(t, tmp_path / "ReadMe", formats={column: fmt}, **KW)
    assert list(tmp_path.iterdir()) == []


def test_error_bad_values(tmp_path):
    with pytest.raises(CDSFormatError, match=r"column 'f', row 1: infinite"):
        write_cds(Table({"f": [1.0, np.inf]}), tmp_path / "ReadMe", **KW)
    t = Table({"coord": SkyCoord([1.0, np.nan], [2.0, 3.0], unit="deg")})
    with pytest.raises(CDSFormatError, match=r"column 'coord' \(every row .*\) has 1 "
                                             r"non-finite position\(s\), first at row 1"):
        write_cds(t, tmp_path / "ReadMe", **KW)
    with pytest.raises(CDSFormatError, match="leading or trailing"):
        write_cds(Table({"s": [" x"]}), tmp_path / "ReadMe", **KW)
    with pytest.raises(CDSFormatError, match="not a CDS format"):
        write_cds(Table({"s": [1]}), tmp_path / "ReadMe", formats={"s": "X3"}, **KW)


def test_error_object_column_and_non_ascii_readme_text(tmp_path):
    # An object column used to be written as the text "{'a': 1}".
    t = Table({"n": [1, 2], "meta": np.array([{"a": 1}, "x"], dtype=object)})
    with pytest.raises(CDSFormatError, match=r"column 'meta', row 0: dict value \{'a': 1\} "
                                             "is not text"):
        write_cds(t, tmp_path / "ReadMe", **KW)
    t = Table({"s": np.array(["ok", None], dtype=object)})
    write_cds(t, tmp_path / "ReadMe", **KW)  # None is a blank, as in a masked column
    assert read_cds(tmp_path / "ReadMe")["s"].mask.tolist() == [False, True]
    # Non-ASCII text in the ReadMe used to raise UnicodeEncodeError.
    for key, value in [("title", "Amas d'Androm\u00e8de"), ("authors", ["Zh\u0101ng J."]),
                       ("abstract", "\u03c3 clipping"), ("keywords", ["M31", "\u00e9toiles"])]:
        kw = dict(KW, **{key: value})
        with pytest.raises(CDSFormatError, match=rf"^{key} .* non-ASCII character"):
            write_cds(Table({"n": [1]}), tmp_path / "new" / "ReadMe", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ReadMe", "table1.dat"]


def test_no_overwrite_without_permission(tmp_path):
    t = small_table()
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    before = (readme.read_text(), data.read_text())
    t["n"] = [7, 8, 9]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_cds(t, readme, **KW)
    # Only the data file exists: still refused, and no ReadMe is created.
    readme.unlink()
    with pytest.raises(FileExistsError):
        write_cds(t, readme, data, **KW)
    assert not readme.exists() and data.read_text() == before[1]
    write_cds(t, readme, data, overwrite=True, **KW)
    assert slice_data(data.read_text(), byte_description(readme.read_text()))["n"] == [
        "7", "8", "9"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ReadMe", "table1.dat"]


# --------------------------------------------------------------------------
# The data file is checked against its ReadMe (issue 13)


def _written(tmp_path, **kwargs):
    """A 3-row catalogue; the last column ``x`` (F6.3, bytes 31-36) is not nullable."""
    t = Table()
    t["coord"] = SkyCoord([10.684708, 10.7, 10.8], [41.26875, 41.3, -0.5], unit="deg")
    t["n"] = [1, 22, 333]
    t["x"] = [0.91, 18.123, 2.5]
    t["x"].info.format = ".3f"
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW, **kwargs)
    return readme, data, data.read_text().splitlines()


def _rewrite(path, lines, end="\n"):
    path.write_text("".join(line + end for line in lines))


def test_read_refuses_fewer_or_more_records_than_the_file_summary(tmp_path):
    readme, data, lines = _written(tmp_path)
    _rewrite(data, lines[:2])
    with pytest.raises(CorruptFileError, match=r"has 2 records, but the File Summary .* says 3"):
        read_cds(readme)
    _rewrite(data, lines + lines[:1])
    with pytest.raises(CorruptFileError, match=r"has 4 records, .* says 3"):
        read_cds(readme)


def test_read_refuses_zero_byte_data_file(tmp_path):
    readme, data, _ = _written(tmp_path)
    data.write_bytes(b"")
    with pytest.raises(CorruptFileError, match=rf"{re.escape(str(data))}.* is empty"):
        read_cds(readme)


def test_read_refuses_trailing_blank_line(tmp_path):
    # astropy reads it as a fourth, fully masked row, and read_cds then
    # silently kept RAh... instead of the coord column.
    readme, data, lines = _written(tmp_path)
    _rewrite(data, lines + [""])
    with pytest.raises(CorruptFileError, match=r"line 4: blank line"):
        read_cds(readme)
    _rewrite(data, lines + ["   "])
    with pytest.raises(CorruptFileError, match=r"line 4: blank line"):
        read_cds(readme)


def test_read_refuses_values_cut_by_a_short_line(tmp_path):
    readme, data, lines = _written(tmp_path)
    # " 0.910" cut to " 0.9" and "18.123" cut to "18.12": astropy read 0.9 and 18.12.
    _rewrite(data, [lines[0][:-2], lines[1], lines[2]])
    with pytest.raises(CorruptFileError,
                       match=r"line 1, column 'x' \(bytes 31-36, format F6.3\).*cut short"):
        read_cds(readme)
    _rewrite(data, [lines[0], lines[1][:-1], lines[2]])
    with pytest.raises(CorruptFileError, match=r"line 2, column 'x'.*'18.12' is cut short"):
        read_cds(readme)
    # The column missing altogether: an error, since x is not nullable.
    _rewrite(data, [lines[0], lines[1], lines[2][:-7]])
    with pytest.raises(CorruptFileError,
                       match=r"line 3, column 'x'.*ends before the column.*not nullable"):
        read_cds(readme)


def test_read_short_line_ending_before_a_nullable_column_is_masked(tmp_path):
    t = Table({"n": [1, 2], "x": [1.5, np.nan], "s": ["ab", ""]})
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    lines = data.read_text().splitlines()
    # Trailing blanks stripped, as in many real CDS files.
    _rewrite(data, [line.rstrip() for line in lines])
    assert len(data.read_text().splitlines()[1]) < len(lines[1])
    cat = read_cds(readme)
    assert cat["x"].mask.tolist() == [False, True]
    assert cat["s"].mask.tolist() == [False, True]
    assert cat["x"][0] == 1.5


def test_read_refuses_garbage_and_values_that_do_not_fit_the_format(tmp_path):
    readme, data, lines = _written(tmp_path)
    n = slice(26, 29)  # bytes 27-29
    assert lines[1][n] == " 22"
    _rewrite(data, [lines[0], lines[1][:n.start] + " x2" + lines[1][n.stop:], lines[2]])
    with pytest.raises(CorruptFileError,
                       match=r"line 2, column 'n' \(bytes \d+-\d+, format I3\): 'x2' is not "
                             "an integer"):
        read_cds(readme)
    # A decimal point in an integer column: the format does not fit the value.
    _rewrite(data, [lines[0], lines[1][:n.start] + "2.2" + lines[1][n.stop:], lines[2]])
    with pytest.raises(CorruptFileError, match=r"line 2, column 'n'.*'2.2' is not an integer"):
        read_cds(readme)
    # A line longer than Lrecl.
    _rewrite(data, [lines[0], lines[1] + " 7", lines[2]])
    with pytest.raises(CorruptFileError, match=r"line 2: 38 characters, more than .*Lrecl\) 36"):
        read_cds(readme)
    # Text in a float column.
    _rewrite(data, [lines[0], lines[1][:-6] + "18.1x3", lines[2]])
    with pytest.raises(CorruptFileError, match=r"line 2, column 'x'.*'18.1x3' is not a number"):
        read_cds(readme)


@pytest.mark.parametrize("old, new, match", [
    ("  31- 36 F6.3", "  29- 34 F6.3", r"column 'x' \(bytes 29-34\): overlaps column 'n'"),
    ("  31- 36 F6.3", "  36- 31 F6.3", r"column 'x' \(bytes 36-31\): the byte range is reversed"),
    ("  31- 36 F6.3", "  31- 37 F6.3", r"column 'x' \(bytes 31-37\): format F6.3 is 6 "
                                        "characters wide but the byte range holds 7"),
])
def test_read_refuses_bad_byte_ranges(tmp_path, old, new, match):
    readme, _, _ = _written(tmp_path)
    text = readme.read_text()
    assert old in text
    readme.write_text(text.replace(old, new))
    lineno = next(k for k, line in enumerate(readme.read_text().splitlines(), 1)
                  if line.startswith(new))
    with pytest.raises(CorruptFileError,
                       match=rf"{re.escape(str(readme))}', line {lineno}: .*{match}"):
        read_cds(readme)


def test_read_refuses_empty_or_non_cds_readme(tmp_path):
    readme = tmp_path / "ReadMe"
    readme.write_text("")
    (tmp_path / "table1.dat").write_text(" 1\n")
    with pytest.raises(CorruptFileError, match=r"is not a CDS ReadMe.*\(the file is empty\)"):
        read_cds(readme)
    # Only a byte-by-byte description, no File Summary: say so, not "([])".
    (tmp_path / "w").mkdir()
    text = _written(tmp_path / "w")[0].read_text()
    readme.write_text(text[text.index("Byte-by-byte"):])
    with pytest.raises(CDSFormatError, match=r"File Summary of .* lists no data file; pass "
                                             "data_path"):
        read_cds(readme)
    readme.write_text("Just some notes about my data.\nNothing else.\n")
    with pytest.raises(CorruptFileError, match=r"is not a CDS ReadMe: it has no File Summary"):
        read_cds(readme, "table1.dat")


def test_read_warns_when_nullable_positions_are_missing(tmp_path):
    t = Table({"RAh": MaskedColumn([0, 1], mask=[False, True]), "RAm": [42, 0],
               "RAs": [44.3, 1.0], "DEd": [41, 2], "DEm": [16, 0], "DEs": [7.5, 1.0]})
    readme, _ = write_cds(t, tmp_path / "ReadMe", **KW)
    with pytest.warns(M31ClustersWarning, match=r"1 record\(s\) have no position "
                                                r"\(the first on line 2\)"):
        cat = read_cds(readme)
    assert "coord" not in cat.colnames and cat["RAh"].mask.tolist() == [False, True]
    # skycoord=False keeps the columns and says nothing.
    assert read_cds(readme, skycoord=False).colnames[:3] == ["RAh", "RAm", "RAs"]


def test_empty_catalogue_round_trip(tmp_path):
    t = Table({"coord": SkyCoord([], [], unit="deg"), "x": np.array([], float),
               "n": np.array([], int)})
    t["x"].unit = u.mag
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    assert data.read_bytes() == b""
    assert re.search(r"^table1.dat\s+\d+\s+0\s", readme.read_text(), re.M)
    cat = read_cds(readme)
    assert len(cat) == 0 and cat.colnames == ["coord", "x", "n"]
    assert cat["x"].unit == u.mag


def test_real_wang2023_readme_reads_with_its_data(shared_data, tmp_path):
    # The ReadMe as served by CDS; the fixed-width table10.dat rebuilt from the
    # FITS copy of the same table with the byte ranges of the ReadMe.
    import shutil
    import warnings

    from astropy.units import UnitsWarning

    src = shared_data / "wang2023"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)  # "[-]" of E(BP/RP)
        fits_table = Table.read(src / "J_ApJ_954_206_table10.dat.fits")
    shutil.copy(src / "ReadMe", tmp_path / "ReadMe")
    text = (src / "ReadMe").read_text()
    section = text[text.index("Byte-by-byte Description of file: table10.dat"):]
    ranges = byte_description(section)
    decimals = {label: dec for dec, label in
                re.findall(r"^\s*\d+-\s*\d+ F\d+\.(\d+)\s+\S+\s+(\S+)", section, re.M)}
    lines = []
    for row in fits_table:
        line = ""
        for label, start, end, kind, _ in ranges:
            width = end - start + 1
            value = (f"{row[label]:{width}d}" if kind == "I"
                     else f"{row[label]:{width}.{decimals[label]}f}")
            line = line.ljust(start - 1) + value
        lines.append(line)
    _rewrite(tmp_path / "table10.dat", lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        cat = read_cds(tmp_path / "ReadMe", "table10.dat")
        assert len(cat) == 50 and cat.colnames == fits_table.colnames
        np.testing.assert_allclose(cat["RAdeg"], fits_table["RAdeg"], rtol=0, atol=5e-7)
        np.testing.assert_array_equal(cat["Seq"], fits_table["Seq"])
        # One record lost: the File Summary's 50 records catch it.
        _rewrite(tmp_path / "table10.dat", lines[:-1])
        with pytest.raises(CorruptFileError, match="has 49 records.*says 50"):
            read_cds(tmp_path / "ReadMe", "table10.dat")


def _failing_replace(monkeypatch, fail_on):
    """Make the *fail_on*-th call of os.replace raise, as a full disk would."""
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == fail_on:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("fail_on", [1, 2])
def test_overwrite_is_all_or_nothing(tmp_path, monkeypatch, fail_on):
    # The second file failing to go in place used to leave the new ReadMe with
    # the old data file: a broken pair.
    t = small_table()
    readme, data = write_cds(t, tmp_path / "ReadMe", **KW)
    before = (readme.read_bytes(), data.read_bytes())
    t["n"] = [7, 8, 9]
    calls = _failing_replace(monkeypatch, fail_on)
    with pytest.raises(OSError, match="No space left"):
        write_cds(t, readme, overwrite=True, **KW)
    assert len(calls) >= fail_on
    assert (readme.read_bytes(), data.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ReadMe", "table1.dat"]
    monkeypatch.undo()
    write_cds(t, readme, overwrite=True, **KW)
    assert read_cds(readme)["n"].tolist() == [7, 8, 9]


def test_failed_first_write_leaves_no_files(tmp_path, monkeypatch):
    _failing_replace(monkeypatch, 2)
    with pytest.raises(OSError, match="No space left"):
        write_cds(small_table(), tmp_path / "ReadMe", **KW)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_get_the_mode_of_a_plain_open(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        readme, data = write_cds(small_table(), tmp_path / "ReadMe", **KW)
        cat = Catalog(small_table())
        regions = cat.write_regions(tmp_path / "c.reg")
        cat.write(tmp_path / "other.ReadMe", format="cds", **KW, overwrite=True)
        with open(tmp_path / "plain.txt", "w"):
            pass
    finally:
        os.umask(old)
    for path in (readme, data, regions, tmp_path / "other.ReadMe", tmp_path / "plain.txt"):
        assert os.stat(path).st_mode & 0o777 == mode, path


def test_overwrite_keeps_the_mode_of_the_replaced_files(tmp_path):
    readme, data = write_cds(small_table(), tmp_path / "ReadMe", **KW)
    os.chmod(readme, 0o640)
    os.chmod(data, 0o604)
    write_cds(small_table(), readme, overwrite=True, **KW)
    assert os.stat(readme).st_mode & 0o777 == 0o640
    assert os.stat(data).st_mode & 0o777 == 0o604


# --------------------------------------------------------------------------
# Registry


def test_registry(tmp_path):
    t = Catalog(small_table())
    t.write(tmp_path / "ReadMe", format="cds", **KW)
    cat = Catalog.read(tmp_path / "ReadMe", format="cds")
    assert isinstance(cat, Catalog) and cat.colnames == ["coord", "n", "x", "name"]
    # Auto-identification by the file name ReadMe.
    assert Catalog.read(str(tmp_path / "ReadMe")).colnames == cat.colnames
    # astropy's own Table reader is untouched.
    plain = Table.read(str(tmp_path / "table1.dat"), readme=str(tmp_path / "ReadMe"),
                       format="cds")
    assert type(plain) is Table and "RAh" in plain.colnames
    with pytest.raises(Exception, match="No writer defined"):
        Table(small_table()).write(tmp_path / "x", format="cds")


# --------------------------------------------------------------------------
# Property tests

_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -+_.()/", max_size=12).filter(
    lambda s: s == s.strip())


@st.composite
def random_tables(draw):
    n = draw(st.integers(1, 6))
    ints = draw(st.lists(st.integers(-(10**12), 10**12), min_size=n, max_size=n))
    floats = draw(st.lists(st.floats(allow_infinity=False, allow_nan=True), min_size=n,
                           max_size=n))
    texts = draw(st.lists(_TEXT, min_size=n, max_size=n))
    ra = draw(st.lists(st.one_of(st.floats(0, 360, exclude_max=True),
                                 st.floats(359.9999, 360, exclude_max=True),
                                 st.floats(0, 1e-4)), min_size=n, max_size=n))
    dec = draw(st.lists(st.floats(-90, 90), min_size=n, max_size=n))
    mask = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    t = Table()
    t["coord"] = SkyCoord(ra, dec, unit="deg")
    t["i"] = MaskedColumn(ints, mask=mask, dtype=np.int64)
    t["f"] = MaskedColumn(floats, dtype=float)
    t["s"] = texts
    return t


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(t=random_tables())
def test_property_round_trip(tmp_path, t):
    readme, data = write_cds(t, tmp_path / "ReadMe", overwrite=True, **KW)
    text = readme.read_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    back = astropy_ascii.read(str(data), readme=str(readme), format="cds")
    cat = read_cds(readme)
    for got in (back, cat):
        # Integers: exact, masked where masked.
        mask = np.asarray(t["i"].mask)
        np.testing.assert_array_equal(np.ma.getmaskarray(got["i"]), mask)
        np.testing.assert_array_equal(np.asarray(got["i"])[~mask], np.asarray(t["i"])[~mask])
        # Floats: exact; NaN reads back as masked.
        f = np.asarray(t["f"], dtype=float)
        nan = np.isnan(f)
        np.testing.assert_array_equal(np.ma.getmaskarray(got["f"]), nan)
        np.testing.assert_array_equal(np.asarray(got["f"])[~nan], f[~nan])
        # Strings: exact, empty strings read back as masked.
        s = np.asarray(t["s"], dtype=str)
        empty = s == ""
        np.testing.assert_array_equal(np.ma.getmaskarray(got["s"]), empty)
        np.testing.assert_array_equal(np.asarray(got["s"], dtype=str)[~empty], s[~empty])
    # Positions: within half the last written digit (0.001 s of RA, 0.01 arcsec of Dec).
    dra = (cat["coord"].ra.deg - t["coord"].ra.deg + 180) % 360 - 180
    ddec = cat["coord"].dec.deg - t["coord"].dec.deg
    assert np.all(np.abs(dra) <= 0.5e-3 * 15 / 3600 + 1e-10)
    assert np.all(np.abs(ddec) <= 0.5e-2 / 3600 + 1e-10)
