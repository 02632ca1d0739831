"""Tests of m31clusters.evaluation and m31clusters.fragments."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters.evaluation import (
    FALSE_POSITIVE_TYPES,
    evaluate_catalog,
    match_one_to_one,
    plot_evaluation,
)
from m31clusters.fragments import merge_fragments
from m31clusters.geometry import M31_CENTER


def _brute_greedy(cand, ref, radius_arcsec):
    """O(N*M) greedy one-to-one match written out independently."""
    sep = cand[:, None].separation(ref[None, :]).arcsec
    pairs = sorted((sep[a, b], a, b) for a in range(len(cand)) for b in range(len(ref))
                   if sep[a, b] <= radius_arcsec)
    used_a, used_b, out = set(), set(), {}
    for _, a, b in pairs:
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            out[a] = b
    return out


def _random(seed=0, n_true=80, n_cand=120):
    rng = np.random.default_rng(seed)
    ra0, dec0 = M31_CENTER.ra.deg, M31_CENTER.dec.deg
    box = 0.02  # deg: dense enough for many near-matches
    tc = SkyCoord(ra0 + rng.uniform(0, box, n_true), dec0 + rng.uniform(0, box, n_true),
                  unit="deg")
    truth = Table({"coord": tc, "g": rng.uniform(16, 22.5, n_true),
                   "Reff": rng.uniform(0.2, 3, n_true) * u.arcsec})
    # half of the candidates near true clusters (some two per cluster), the rest random
    k = n_cand // 2
    host = rng.integers(0, n_true, k)
    near = tc[host].directional_offset_by(rng.uniform(0, 360, k) * u.deg,
                                         rng.uniform(0, 1.6, k) * u.arcsec)
    far = SkyCoord(ra0 + rng.uniform(0, box, n_cand - k), dec0 + rng.uniform(0, box, n_cand - k),
                   unit="deg")
    cc = SkyCoord([near, far])
    cand = Table({"coord": cc, "gmag": rng.uniform(16, 21, n_cand)})
    return cand, truth


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_against_brute_force(seed):
    cand, truth = _random(seed)
    ev = evaluate_catalog(cand, truth, radius=1 * u.arcsec)
    pairs = _brute_greedy(cand["coord"], truth["coord"], 1.0)
    n_correct = len(pairs)
    bright = np.asarray(truth["g"]) < 21
    found = set(pairs.values())
    n_true = int(bright.sum())
    n_rec = sum(1 for b in np.flatnonzero(bright) if b in found)
    row = ev.summary[0]
    assert row["quantity"] == "all"
    assert row["n_candidates"] == len(cand) and row["n_correct"] == n_correct
    assert row["n_true"] == n_true and row["n_recovered"] == n_rec
    assert ev.purity == pytest.approx(n_correct / len(cand))
    assert ev.completeness == pytest.approx(n_rec / n_true)
    assert ev.inspection_budget == pytest.approx(len(cand) / n_correct)
    assert ev.false_positives["unmatched"] == len(cand) - n_correct
    # per candidate
    expect = np.array([pairs.get(a, -1) for a in range(len(cand))])
    assert np.array_equal(ev.candidates["match_index"], expect)
    # magnitude bins: true magnitudes for completeness, candidate ones for purity
    gm = np.asarray(cand["gmag"])
    for r in ev.summary[ev.summary["quantity"] == "mag"]:
        in_c = (gm >= r["lo"]) & (gm < r["hi"])
        assert r["n_candidates"] == in_c.sum()
        assert r["n_correct"] == sum(1 for a in np.flatnonzero(in_c) if a in pairs)
        in_t = bright & (np.asarray(truth["g"]) >= r["lo"]) & (np.asarray(truth["g"]) < r["hi"])
        assert r["n_true"] == in_t.sum()
        assert r["n_recovered"] == sum(1 for b in np.flatnonzero(in_t) if b in found)
    # size bins use the true half-light radii
    size = ev.summary[ev.summary["quantity"] == "size"]
    assert size["n_true"].sum() == n_true and size["n_recovered"].sum() == n_rec


def test_match_one_to_one_against_brute_force():
    cand, truth = _random(3)
    idx, sep = match_one_to_one(cand["coord"], truth["coord"], 1.5 * u.arcsec)
    pairs = _brute_greedy(cand["coord"], truth["coord"], 1.5)
    assert {a: b for a, b in enumerate(idx.tolist()) if b >= 0} == pairs
    ok = idx >= 0
    d = cand["coord"][ok].separation(truth["coord"][idx[ok]]).arcsec
    assert np.allclose(sep[ok], d, atol=1e-6)
    assert np.all(np.isnan(sep[~ok]))


def _sim_truth():
    """A hand-built simulated truth table around M31 with one case of every kind."""
    c0 = M31_CENTER.directional_offset_by(0 * u.deg, 0.1 * u.deg)
    rows = []  # (name, kind, offset east arcsec, offset north arcsec, g, reff arcsec)
    rows.append(("cl1", "cluster", 0, 0, 19.0, 1.5))
    rows.append(("cl2", "cluster", 60, 0, 20.5, 0.5))
    rows.append(("cl3", "cluster", 120, 0, 20.8, 0.5))   # missed
    rows.append(("cl4", "cluster", 180, 0, 22.0, 0.5))   # fainter than the limit
    rows.append(("gal", "galaxy", 0, 60, 19.5, 2.0))
    rows.append(("s1", "star", 0, 120, 19.0, 0.0))
    rows.append(("b1", "star", 60, 120, 19.8, 0.0))
    rows.append(("b2", "star", 60.5, 120, 20.2, 0.0))
    rows.append(("faint", "star", 0, 180, 25.0, 0.0))
    names, kinds, ex, no, g, reff = zip(*rows, strict=True)
    pos = c0.spherical_offsets_by(np.array(ex) * u.arcsec, np.array(no) * u.arcsec)
    truth = Table({"name": names, "kind": kinds, "ra": pos.ra.deg * u.deg,
                   "dec": pos.dec.deg * u.deg, "gmag": np.array(g) * u.mag,
                   "reff_arcsec": np.array(reff) * u.arcsec, "on_ccd": np.ones(len(rows), bool)})
    return c0, truth


def test_false_positive_types():
    c0, truth = _sim_truth()
    cands = [  # (east, north, g, expected type)
        (0.2, 0, 19.1, "cluster"),      # cl1
        (2.5, 0, 20.0, "fragment"),     # a piece of cl1's light, off its centre
        (0.3, 0.1, 19.3, "fragment"),   # a second candidate on cl1
        (60, 0.3, 20.4, "cluster"),     # cl2
        (180, 0.2, 21.9, "cluster"),    # cl4: correct, though fainter than the limit
        (0.3, 60, 19.6, "galaxy"),
        (0, 120.2, 19.0, "star"),
        (60.25, 120, 19.4, "blend"),
        (0, 180, 20.0, "artefact"),     # only a 25th-mag star there
        (300, 300, 20.0, "artefact"),   # nothing at all
    ]
    e, n, g, expect = zip(*cands, strict=True)
    pos = c0.spherical_offsets_by(np.array(e) * u.arcsec, np.array(n) * u.arcsec)
    cand = Table({"coord": pos, "gmag": g})
    ev = evaluate_catalog(cand, truth, radius=1 * u.arcsec)
    assert list(ev.candidates["match_type"]) == list(expect)
    assert ev.false_positives == {"star": 1, "blend": 1, "galaxy": 1, "fragment": 2,
                                  "artefact": 2, "unmatched": 0}
    assert set(ev.false_positives) == set(FALSE_POSITIVE_TYPES)
    # completeness over cl1..cl3 (cl4 is fainter than 21): cl1 and cl2 found
    assert ev.completeness == pytest.approx(2 / 3)
    assert ev.purity == pytest.approx(3 / 10)
    assert list(ev.clusters["name"]) == ["cl1", "cl2", "cl3"]
    assert list(ev.clusters["recovered"]) == [True, True, False]
    assert list(ev.clusters["candidate"]) == [0, 3, -1]
    # crowding bins exist (density from the truth table) and add up
    crowd = ev.summary[ev.summary["quantity"] == "crowding"]
    assert crowd["n_true"].sum() == 3 and crowd["n_candidates"].sum() == 10
    # off_ccd rows are ignored
    truth["on_ccd"][truth["name"] == "cl3"] = False
    assert evaluate_catalog(cand, truth).completeness == 1.0


def test_area_and_rproj():
    c0, truth = _sim_truth()
    cand = Table({"coord": c0[None], "gmag": [19.0]})
    ev = evaluate_catalog(cand, truth[truth["kind"] == "cluster"]["ra", "dec", "gmag"],
                          area=lambda c: c.separation(c0) < 30 * u.arcsec)
    assert ev.completeness == 1.0 and ev.false_positives["unmatched"] == 0
    rp = ev.summary[ev.summary["quantity"] == "Rproj"]
    assert rp["n_true"].sum() == 1 and rp["n_true"][rp["lo"] == 0][0] == 1


def test_empty_candidates():
    _, truth = _sim_truth()
    ev = evaluate_catalog(Table({"coord": SkyCoord([], [], unit="deg"), "gmag": []}), truth)
    assert ev.completeness == 0.0 and np.isnan(ev.purity)
    assert ev.inspection_budget == np.inf


def test_bad_input():
    cand, truth = _random(0)
    with pytest.raises(TypeError, match="radius must be an astropy Quantity"):
        evaluate_catalog(cand, truth, radius=1.0)
    with pytest.raises(KeyError, match="candidate magnitude"):
        evaluate_catalog(cand["coord",], truth)


def test_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c0, truth = _sim_truth()
    cand = Table({"coord": c0[None], "gmag": [19.0]})
    ev = evaluate_catalog(cand, truth)
    fig = plot_evaluation(ev)
    # one panel per binned quantity (mag, Rproj, crowding, size) + false positives
    assert len(fig.axes) == 5
    assert "purity 1.00" in fig._suptitle.get_text()
    fig.savefig(tmp_path / "ev.png")
    plt.close(fig)


# ----------------------------------------------------------------------------
# fragments
# ----------------------------------------------------------------------------


def test_merge_fragments_brute_force():
    rng = np.random.default_rng(4)
    n = 150
    c = SkyCoord(10 + rng.uniform(0, 0.01, n), 41 + rng.uniform(0, 0.01, n), unit="deg")
    size = rng.uniform(0, 2, n)
    t = Table({"coord": c, "gmag": rng.uniform(16, 21, n), "FWHM": size * u.arcsec})
    out = merge_fragments(t, radius=2 * u.arcsec, size_column="FWHM")
    # independent friends-of-friends by repeated relaxation over the full matrix
    sep = c[:, None].separation(c[None, :]).arcsec
    link = sep <= np.maximum(2.0, size[:, None] + size[None, :])
    label = np.arange(n)
    while True:
        new = np.array([label[link[k]].min() for k in range(n)])
        if np.array_equal(new, label):
            break
        label = new
    groups = {}
    for k in range(n):
        groups.setdefault(label[k], []).append(k)
    brightest = sorted(min(g, key=lambda k: (t["gmag"][k], k)) for g in groups.values())
    assert len(out) == len(groups)
    assert np.allclose(out["gmag"], t["gmag"][brightest])
    assert sorted(out["n_frag"]) == sorted(len(g) for g in groups.values())


def test_merge_fragments_keep_and_errors():
    c = SkyCoord([10.0, 10.0005, 10.0], [41.0, 41.0, 41.01], unit="deg")
    t = Table({"coord": c, "gmag": [19.5, 18.2, 20.0], "Conf": [0.9, 0.6, 0.8]})
    out = merge_fragments(t, keep="max:Conf")
    assert list(out["Conf"]) == [0.9, 0.8] and list(out["n_frag"]) == [2, 1]
    # 1.36" apart: not merged with a 1" radius
    assert len(merge_fragments(t, radius=1 * u.arcsec)) == 3
    # a large size links them
    t["FWHM"] = [1.0, 1.0, 0.0]
    assert len(merge_fragments(t, radius=1 * u.arcsec, size_column="FWHM")) == 2
    assert len(merge_fragments(t[:0])) == 0
    with pytest.raises(TypeError, match="radius must be an astropy Quantity"):
        merge_fragments(t, radius=2.5)
    with pytest.raises(KeyError, match="size_column 'size'"):
        merge_fragments(t, size_column="size")
    with pytest.raises(KeyError, match="no column 'Score'"):
        merge_fragments(t, keep="max:Score")
