import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from m31clusters.catalog import Catalog
from m31clusters.crossmatch import deduplicate, match
from m31clusters.datasets import load_caldwell2011, load_rbc_v5


def _random_sky(rng, n, center=(0.0, 0.0), size=0.05):
    """Uniform positions within *size* deg of *center* (deg); may cross RA = 0 or a pole."""
    c = SkyCoord(*center, unit="deg")
    out = c.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                  size * np.sqrt(rng.uniform(0, 1, n)) * u.deg)
    return SkyCoord(out.ra, out.dec)


def _brute_nearest(cat, ref, radius):
    sep = cat[:, None].separation(ref[None, :]).arcsec
    j = np.argmin(sep, axis=1)
    best = sep[np.arange(len(cat)), j]
    ok = best <= radius.to_value(u.arcsec)
    return np.where(ok, j, -1), np.where(ok, best, np.nan), sep


def _brute_fof(coords, radius):
    """Friends-of-friends labels by repeated label propagation on the full matrix."""
    adj = coords[:, None].separation(coords[None, :]) <= radius
    labels = np.arange(len(coords))
    while True:
        new = np.array([labels[row].min() for row in adj])
        if np.array_equal(new, labels):
            return labels
        labels = new


@pytest.mark.parametrize("center", [(0.0, 0.0), (10.68, 41.27), (120.0, 89.995)])
def test_match_nearest_against_brute_force(center):
    rng = np.random.default_rng(1)
    ref = _random_sky(rng, 300, center, size=0.02)
    # candidates near reference objects (within ~2 arcsec) and some random
    near = ref[rng.integers(0, 300, 200)].directional_offset_by(
        rng.uniform(0, 360, 200) * u.deg, rng.uniform(0, 2, 200) * u.arcsec
    )
    cat = SkyCoord(np.r_[near.ra.deg, _random_sky(rng, 100, center, 0.02).ra.deg],
                   np.r_[near.dec.deg, _random_sky(rng, 100, center, 0.02).dec.deg], unit="deg")
    names = np.array([f"R{i:03d}" for i in range(300)])
    reference = Table({"coord": ref, "name": names})
    radius = 1.2 * u.arcsec
    out = match(Table({"coord": cat, "x": np.arange(len(cat))}), reference, radius=radius)
    j, best, _ = _brute_nearest(cat, ref, radius)
    expected = np.where(j >= 0, names[np.maximum(j, 0)], "")
    assert np.count_nonzero(j >= 0) > 100
    np.testing.assert_array_equal(out["name"], expected)
    np.testing.assert_allclose(out["name_sep"].quantity.to_value(u.arcsec), best, atol=1e-6)
    assert out["name_sep"].unit == u.arcsec
    assert isinstance(out, Catalog)
    np.testing.assert_array_equal(out["x"], np.arange(len(cat)))


def test_match_all_matches_one_to_many():
    rng = np.random.default_rng(2)
    ref = _random_sky(rng, 400, (359.999, 30.0), size=0.01)  # crosses RA = 0
    cat = _random_sky(rng, 150, (359.999, 30.0), size=0.01)
    radius = 5 * u.arcsec
    names = np.array([f"R{i}" for i in range(400)])
    out = match(Table({"coord": cat, "row": np.arange(150)}), Table({"coord": ref, "id": names}),
                radius=radius, name_column="id", into="REF", all_matches=True)
    _, _, sep = _brute_nearest(cat, ref, radius)
    ii, jj = np.nonzero(sep <= radius.to_value(u.arcsec))
    got = {(r, n) for r, n in zip(out["row"], out["REF"], strict=True) if n}
    assert got == {(i, names[j]) for i, j in zip(ii, jj, strict=True)}
    assert np.bincount(ii).max() > 1  # really one-to-many
    # rows without a match appear once with a blank name and NaN separation
    unmatched = np.setdiff1d(np.arange(150), ii)
    blank = out["REF"] == ""
    np.testing.assert_array_equal(np.sort(out["row"][blank]), unmatched)
    assert np.all(np.isnan(out["REF_sep"][blank]))
    # sorted by row, then separation
    assert np.all(np.diff(out["row"]) >= 0)
    for r in np.unique(out["row"][~blank]):
        s = out["REF_sep"][out["row"] == r]
        assert np.all(np.diff(s) >= 0)


def test_match_rbc_v5_against_caldwell2011():
    """Real data: RBC v5 confirmed clusters with a Caldwell et al. 2011 counterpart."""
    rbc = load_rbc_v5()
    c11 = load_caldwell2011()
    radius = 1 * u.arcsec
    out = match(rbc, c11, radius=radius, into="C11")
    j, best, _ = _brute_nearest(rbc["coord"], c11["coord"], radius)
    n_brute = np.count_nonzero(j >= 0)
    assert np.count_nonzero(out["C11"] != "") == n_brute
    np.testing.assert_array_equal(out["C11"], np.where(j >= 0, c11["name"][np.maximum(j, 0)], ""))
    np.testing.assert_allclose(out["C11_sep"].value, best, atol=1e-6)
    # most Caldwell old clusters are RBC confirmed GCs (the count is reported in the notes)
    assert 300 < n_brute <= len(c11)
    # matched names agree on the Bologna number for the pairs named "Bnnn..."
    m = out[out["C11"] != ""]
    same = [c.split("-")[0] == r for r, c in zip(m["name"], m["C11"], strict=True)
            if r.startswith("B") and c.startswith("B")]
    assert np.mean(same) > 0.95


def test_match_other_frame_reference():
    rng = np.random.default_rng(3)
    cat = _random_sky(rng, 50, (10.7, 41.3), 0.01)
    ref_icrs = cat.directional_offset_by(0 * u.deg, 0.3 * u.arcsec)
    ref_gal = ref_icrs.galactic
    a = match(Table({"coord": cat}), Table({"coord": ref_icrs, "name": np.arange(50)}))
    b = match(Table({"coord": cat}), Table({"coord": ref_gal, "name": np.arange(50)}))
    np.testing.assert_array_equal(a["name"], np.arange(50).astype(str))
    np.testing.assert_array_equal(a["name"], b["name"])
    np.testing.assert_allclose(b["name_sep"].value, 0.3, atol=1e-6)


def test_match_ra_dec_columns_and_replaces_into():
    cat = Table({"ra": [10.0, 20.0], "dec": [41.0, 0.0]})
    ref = Table({"RAdeg": [10.0], "DEdeg": [41.0 + 0.5 / 3600], "name": ["B1"]})
    once = match(cat, ref, into="RBC")
    twice = match(once, ref, into="RBC", radius=0.1 * u.arcsec)
    assert once["RBC"].tolist() == ["B1", ""]
    assert twice["RBC"].tolist() == ["", ""]
    assert twice.colnames == ["ra", "dec", "RBC", "RBC_sep"]
    moved = match(Table({"ra": [10.0], "dec": [41.0], "RBC": [""], "x": [1]}), ref, into="RBC")
    assert moved.colnames == ["ra", "dec", "RBC", "x", "RBC_sep"]
    assert "RBC" not in cat.colnames  # input not modified


def test_match_into_candidate_catalog_placeholders():
    rbc = load_rbc_v5()
    c = rbc["coord"][:3].directional_offset_by(0 * u.deg, [0.2, 0.5, 3.0] * u.arcsec)
    cands = Catalog.from_candidates(c, gmag=[18.0] * 3, e_gmag=[0.01] * 3, imag=[17.0] * 3,
                                    e_imag=[0.01] * 3, conf=[0.9, 0.8, 0.7])
    out = match(cands, rbc, into="RBC")
    assert out["RBC"].tolist() == ["B001", "B002", ""]
    np.testing.assert_allclose(out["RBC_sep"][:2], [0.2, 0.5], atol=1e-6)
    # replaced in place: the table-7 column order is kept, the separation goes last
    assert out.colnames[:-1] == cands.colnames and out.colnames[-1] == "RBC_sep"
    assert out["RBC"].info.description == cands["RBC"].info.description
    assert "C11" in out.colnames and isinstance(out, Catalog)


def test_match_empty_inputs():
    empty = Table({"coord": SkyCoord([], [], unit="deg")})
    ref = Table({"coord": SkyCoord([1.0], [2.0], unit="deg"), "name": ["A"]})
    out = match(empty, ref)
    assert len(out) == 0 and "name" in out.colnames and "name_sep" in out.colnames
    out = match(empty, ref, all_matches=True)
    assert len(out) == 0
    cat = Table({"coord": SkyCoord([1.0, 5.0], [2.0, 5.0], unit="deg")})
    no_ref = Table({"coord": SkyCoord([], [], unit="deg"), "name": np.array([], dtype=str)})
    out = match(cat, no_ref)
    assert out["name"].tolist() == ["", ""] and np.all(np.isnan(out["name_sep"]))
    out = match(cat, no_ref, all_matches=True)
    assert len(out) == 2 and out["name"].tolist() == ["", ""]


def test_match_bad_input():
    cat = Table({"coord": SkyCoord([1.0], [2.0], unit="deg")})
    ref = Table({"coord": SkyCoord([1.0], [2.0], unit="deg"), "id": ["A"]})
    with pytest.raises(KeyError, match="no name column 'name'"):
        match(cat, ref)
    with pytest.raises(TypeError, match="radius must be an astropy Quantity"):
        match(cat, ref, radius=1.0, name_column="id")
    with pytest.raises(u.UnitTypeError, match="radius must have units of angle"):
        match(cat, ref, radius=1 * u.m, name_column="id")
    with pytest.raises(ValueError, match="non-negative"):
        match(cat, ref, radius=-1 * u.arcsec, name_column="id")
    with pytest.raises(TypeError, match="catalog must be an astropy Table"):
        match(cat["coord"], ref, name_column="id")
    with pytest.raises(KeyError, match="catalog: no positions found"):
        match(Table({"x": [1]}), ref, name_column="id")
    nan = Table({"ra": [1.0, np.nan], "dec": [2.0, 3.0]})
    with pytest.raises(ValueError, match=r"catalog: the table has 1 non-finite "
                       r"position\(s\), first at row 1"):
        match(nan, ref, name_column="id")
    with pytest.raises(ValueError, match="position column"):
        match(cat, ref, name_column="id", into="coord")
    named = Table({"coord": SkyCoord([1.0], [2.0], unit="deg"), "id": ["mine"]})
    with pytest.raises(ValueError, match="already has a column 'id'"):
        match(named, ref, name_column="id")
    assert named["id"][0] == "mine"


def test_deduplicate_chain_duplicates_and_wrap():
    base = SkyCoord(359.9999 * u.deg, 10 * u.deg)
    # chain across RA = 0: each link 0.8", ends 2.4" apart
    chain = base.directional_offset_by(90 * u.deg, np.array([0, 0.8, 1.6, 2.4]) * u.arcsec)
    assert np.any(chain.ra.deg > 359) and np.any(chain.ra.deg < 1)  # really wraps
    far = SkyCoord([50.0, 50.0, 60.0], [-20.0, -20.0, 89.9999], unit="deg")  # exact duplicate
    coords = SkyCoord(np.r_[chain.ra.deg, far.ra.deg], np.r_[chain.dec.deg, far.dec.deg],
                      unit="deg")
    t = Table({"coord": coords, "Conf": [0.5, 0.9, 0.7, 0.6, 0.3, 0.8, 0.99],
               "PAndAS": [207, 208, 207, 209, 300, 301, 12]})
    out = deduplicate(t, radius=1 * u.arcsec)
    assert out["Conf"].tolist() == [0.9, 0.8, 0.99]
    assert out["n_det"].tolist() == [4, 2, 1]
    assert isinstance(out, Catalog)
    assert out["fields"].tolist() == ["207,208,209", "300,301", "12"]
    out = deduplicate(t, radius=1 * u.arcsec, keep="min:Conf")
    assert out["Conf"].tolist() == [0.5, 0.3, 0.99]
    out = deduplicate(t, radius=1 * u.arcsec, keep="first")
    assert out["Conf"].tolist() == [0.5, 0.3, 0.99]
    # a linking length below the link size keeps the chain apart, the duplicates merged
    out = deduplicate(t, radius=0 * u.arcsec)
    assert out["n_det"].tolist() == [1, 1, 1, 1, 2, 1]
    assert "PAndAS" in out.colnames and len(t) == 7


def test_deduplicate_against_brute_force_fof():
    rng = np.random.default_rng(4)
    centres = _random_sky(rng, 60, (0.0, 41.0), size=0.003)
    k = rng.integers(0, 60, 300)
    coords = centres[k].directional_offset_by(
        rng.uniform(0, 360, 300) * u.deg, rng.uniform(0, 1.5, 300) * u.arcsec
    )
    conf = rng.uniform(0, 1, 300)
    t = Table({"coord": coords, "Conf": conf, "PAndAS": rng.integers(200, 210, 300)})
    radius = 1 * u.arcsec
    out = deduplicate(t, radius=radius)
    labels = _brute_fof(coords, radius)
    groups = np.unique(labels)
    assert len(out) == groups.size
    expected_conf = sorted(conf[labels == g].max() for g in groups)
    np.testing.assert_array_equal(np.sort(out["Conf"]), expected_conf)
    sizes = {conf[labels == g].max(): np.count_nonzero(labels == g) for g in groups}
    assert [sizes[c] for c in out["Conf"]] == out["n_det"].tolist()
    assert out["n_det"].sum() == 300
    for row in out:
        members = labels == labels[np.flatnonzero(conf == row["Conf"])[0]]
        ids = np.unique(t["PAndAS"][members])
        assert row["fields"] == ",".join(map(str, ids))


def test_deduplicate_nan_and_masked_keep_values():
    c = SkyCoord([10.0, 10.0, 10.0], [41.0, 41.0, 41.0], unit="deg")
    t = Table({"coord": c, "Conf": [np.nan, 0.2, 0.1]})
    assert deduplicate(t)["Conf"].tolist() == [0.2]
    t = Table({"coord": c, "Conf": np.ma.MaskedArray([5.0, 0.2, 0.1], mask=[True, False, False])})
    assert deduplicate(t)["Conf"].tolist() == [0.2]


def test_deduplicate_masked_fields():
    c = SkyCoord([10.0, 10.0, 10.0, 20.0], [41.0, 41.0, 41.0, 0.0], unit="deg")
    fields = np.ma.MaskedArray([230, 0, 229, 5], mask=[False, True, False, True])
    out = deduplicate(Table({"coord": c, "PAndAS": fields}), keep="first")
    assert out["fields"].tolist() == ["229,230", ""]
    names = np.ma.MaskedArray(["m230", "", "m229", "x"], mask=[False, True, False, True])
    out = deduplicate(Table({"coord": c, "PAndAS": names}), keep="first")
    assert out["fields"].tolist() == ["m229,m230", ""]
    # a table-7 candidate catalogue (masked columns, field ids computed from positions)
    cands = Catalog.from_candidates(c, gmag=[18.0] * 4, e_gmag=[0.01] * 4, imag=[17.0] * 4,
                                    e_imag=[0.01] * 4, conf=[0.6, 0.9, 0.7, 0.5])
    out = deduplicate(cands)
    assert out["Conf"].tolist() == [0.9, 0.5] and out["Seq"].tolist() == [2, 4]
    assert out["n_det"].tolist() == [3, 1] and out["fields"][1] == ""  # (20, 0) is off-survey


def test_deduplicate_empty_and_bad_input():
    empty = Table({"coord": SkyCoord([], [], unit="deg"), "Conf": np.zeros(0),
                   "PAndAS": np.zeros(0, int)})
    out = deduplicate(empty)
    assert len(out) == 0 and "n_det" in out.colnames and "fields" in out.colnames
    t = Table({"coord": SkyCoord([1.0], [2.0], unit="deg"), "name": ["a"]})
    with pytest.raises(KeyError, match="no column 'Conf'.*keep='first'"):
        deduplicate(t)
    with pytest.raises(ValueError, match="keep must be"):
        deduplicate(t, keep="best")
    with pytest.raises(TypeError, match="not numeric"):
        deduplicate(t, keep="max:name")
    with pytest.raises(TypeError, match="radius must be an astropy Quantity"):
        deduplicate(t, radius=1, keep="first")
    with pytest.raises(KeyError, match="field_column='PAndAS'"):
        deduplicate(t, keep="first", field_column="PAndAS")
    out = deduplicate(t, keep="first")
    assert out["n_det"].tolist() == [1] and "fields" not in out.colnames


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ra0=st.floats(0, 360), dec0=st.floats(-89.9, 89.9))
def test_deduplicate_invariant_under_rotation_and_order(seed, ra0, dec0):
    """Groups do not depend on where on the sky they are, nor on the row order."""
    rng = np.random.default_rng(seed)
    n = 40
    dx = rng.normal(0, 1.0, n)  # arcsec offsets in a small patch: chains are likely
    dy = rng.normal(0, 1.0, n)
    conf = rng.permutation(n) / n  # distinct values: no ties

    def place(ra_c, dec_c):
        c = SkyCoord(ra_c, dec_c, unit="deg")
        return c.spherical_offsets_by(dx * u.arcsec, dy * u.arcsec)

    a = deduplicate(Table({"coord": place(0.0, 0.0), "Conf": conf}), radius=1 * u.arcsec)
    b = deduplicate(Table({"coord": place(ra0, dec0), "Conf": conf}), radius=1 * u.arcsec)
    perm = rng.permutation(n)
    c = deduplicate(Table({"coord": place(ra0, dec0)[perm], "Conf": conf[perm]}),
                    radius=1 * u.arcsec)
    key = {}
    for out in (a, b, c):
        key.setdefault("conf", []).append(sorted(out["Conf"]))
        key.setdefault("size", []).append(sorted(zip(out["Conf"], out["n_det"], strict=True)))
    assert key["conf"][0] == key["conf"][1] == key["conf"][2]
    assert key["size"][0] == key["size"][1] == key["size"][2]
