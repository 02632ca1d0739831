"""Tests of m31clusters.training: the training-set recipe on hand-built cases."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from m31clusters.geometry import M31_CENTER
from m31clusters.training import (
    SPLIT_NAMES,
    TrainingSetError,
    build_training_set,
    hard_example_weights,
    resample,
)

SCALE = 0.187  # arcsec / pixel
#: everything in the training split (no split borders in the hand-built cases)
ONE_SPLIT = dict(tile_size=10 * u.arcmin, splits=(1, 0, 0))


def _image(n=600, seed=0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [M31_CENTER.ra.deg, M31_CENTER.dec.deg]
    w.wcs.crpix = [n / 2 + 0.5, n / 2 + 0.5]
    w.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    data = np.random.default_rng(seed).normal(100, 5, (n, n)).astype("f4")
    hdu = fits.ImageHDU(data, header=w.to_header())
    return {"g": hdu, "i": fits.ImageHDU(data.copy(), header=w.to_header())}, w


def _sky(w, x, y):
    return w.pixel_to_world(np.asarray(x, float), np.asarray(y, float))


def _offset(c, arcsec, pa=90):
    return c.directional_offset_by(pa * u.deg, arcsec * u.arcsec)


def _hand_built():
    """Image, sources and positives with one source of every kind (see the test)."""
    images, w = _image()
    # positives: P0..P3 form a square (the footprint's convex hull)
    p = _sky(w, [150, 450, 450, 150], [150, 150, 450, 450])
    src = {}
    src["A"] = _offset(p[0], 0.3, pa=315)  # cluster: nearest source of P0
    src["B"] = _offset(p[0], 0.8, pa=300)  # second source within 1": ambiguous
    src["C"] = _offset(p[1], 3.0, pa=45)  # between 1" and 5" of P1: ambiguous
    src["D"] = _sky(w, 300, 300)             # far from all, inside the hull: clear
    src["E"] = _sky(w, 40, 300)              # outside the hull: dropped
    src["F"] = _sky(w, 300, 200)             # clear but faint: dropped
    src["G"] = _offset(p[2], 0.5, pa=135)  # cluster of P2
    src["H"] = _sky(w, 350, 260)             # clear
    names = list(src)
    coords = SkyCoord([src[k] for k in names])
    mag = np.full(len(names), 19.0)
    mag[names.index("F")] = 22.5
    sources = Table({"name": names, "coord": coords, "g": mag * u.mag})
    positives = Table({"coord": p})
    return images, sources, positives


def _row(ts, name, sources):
    idx = list(sources["name"]).index(name)
    sel = np.flatnonzero(ts.table["source"] == idx)
    return ts.table[sel[0]] if sel.size else None


def test_labels_hand_built():
    images, sources, positives = _hand_built()
    ts = build_training_set(images, sources, positives, size=16, **ONE_SPLIT,
                            seed=0)
    got = {n: _row(ts, n, sources) for n in sources["name"]}
    assert got["A"]["label"] == 1 and got["A"]["why"] == "matched"
    assert got["A"]["positive"] == 0
    assert abs(got["A"]["sep"] - 0.3) < 1e-6 and ts.table["sep"].unit == u.arcsec
    assert got["G"]["label"] == 1 and got["G"]["positive"] == 2
    assert got["D"]["label"] == 0 and got["D"]["why"] == "clear"
    assert got["H"]["label"] == 0
    for n in ("B", "C", "E", "F"):
        assert got[n] is None, n
    m = ts.table.meta
    assert m["n_sources"] == 8
    assert m["n_ambiguous"] == 2          # B and C
    assert m["n_outside_footprint"] == 1  # E
    assert m["n_faint"] == 1              # F
    assert m["n_positives"] == 4 and m["n_positives_on_images"] == 4
    assert m["n_positives_matched"] == 2
    assert len(ts.cutouts) == len(ts.table) == 4
    assert ts.cutouts.shape[1:] == (16, 16, 2)
    # the stamps are those of the listed positions
    sep = ts.cutouts.positions.separation(ts.table["coord"]).to_value(u.arcsec)
    assert np.all(sep < 1e-6)


def test_match_radius_changes_labels():
    images, sources, positives = _hand_built()
    # with a 4" match radius, C (3" from P1) becomes P1's cluster
    ts = build_training_set(images, sources, positives, size=16, match_radius=4 * u.arcsec,
                            **ONE_SPLIT, seed=0)
    assert _row(ts, "C", sources)["label"] == 1
    # B (0.8" from P0) is still not P0's cluster: A is nearer
    assert _row(ts, "B", sources) is None


def test_footprint_images_and_callable():
    images, sources, positives = _hand_built()
    ts = build_training_set(images, sources, positives, size=16, **ONE_SPLIT,
                            footprint="images", seed=0)
    assert _row(ts, "E", sources)["label"] == 0
    assert ts.table.meta["n_outside_footprint"] == 0

    def only_d(c):
        return c.separation(sources["coord"][3]) < 1 * u.arcsec

    ts = build_training_set(images, sources, positives, size=16, **ONE_SPLIT,
                            footprint=only_d, seed=0)
    assert set(ts.table["source"]) == {0, 3, 6}  # the two matches and D


def test_footprint_region():
    from regions import CircleSkyRegion

    images, sources, positives = _hand_built()
    region = CircleSkyRegion(sources["coord"][3], 5 * u.arcsec)
    ts = build_training_set(images, sources, positives, size=16, **ONE_SPLIT,
                            footprint=region, seed=0)
    assert set(ts.table["source"]) == {0, 3, 6}


def test_off_image_stamps_dropped():
    images, w = _image()
    p = _sky(w, [100, 500, 500, 100], [100, 100, 500, 500])
    s = SkyCoord([_offset(p[0], 0.2), _sky(w, 300, 300), _sky(w, -1.0, 300)])
    sources = Table({"coord": s, "gmag": [18.0, 18.0, 18.0] * u.mag})
    ts = build_training_set(images, sources, Table({"coord": p}), size=16, footprint="images",
                            **ONE_SPLIT, seed=0)
    assert ts.table.meta["n_off_image"] == 1
    assert list(ts.table["source"]) == [0, 1]
    assert ts.table.meta["mag_column"] == "gmag"


def _random_case(seed=1, n_src=500, n_pos=60):
    images, w = _image(n=1500)
    rng = np.random.default_rng(seed)
    pos = _sky(w, rng.uniform(20, 1480, n_pos), rng.uniform(20, 1480, n_pos))
    src = _sky(w, rng.uniform(0, 1499, n_src), rng.uniform(0, 1499, n_src))
    near = pos[: n_pos // 2].directional_offset_by(
        rng.uniform(0, 360, n_pos // 2) * u.deg, rng.uniform(0, 0.5, n_pos // 2) * u.arcsec)
    coords = SkyCoord([src, near])
    sources = Table({"coord": coords, "g": rng.uniform(15, 20.9, len(coords)) * u.mag})
    return images, w, sources, Table({"coord": pos})


def test_splits_share_no_pixels():
    images, w, sources, positives = _random_case()
    size = 16
    ts = build_training_set(images, sources, positives, size=size, footprint="images",
                            tile_size=0.5 * u.arcmin, seed=3)
    assert set(ts.table["split"]) == set(SPLIT_NAMES)
    counts = ts.counts()
    assert np.all(counts["n_cluster"] > 0) and np.all(counts["n_other"] > 0)
    assert ts.table.meta["n_split_border"] > 0
    # stamp pixel boxes, as Cutout2D cuts them (first column ceil(x - W/2))
    x, y = w.world_to_pixel(ts.table["coord"])
    x0 = np.ceil(x - size / 2).astype(int)
    y0 = np.ceil(y - size / 2).astype(int)
    split = np.asarray(ts.table["split"])
    # brute force over every pair of stamps of different splits
    dx = np.abs(x0[:, None] - x0[None, :])
    dy = np.abs(y0[:, None] - y0[None, :])
    overlap = (dx < size) & (dy < size) & (split[:, None] != split[None, :])
    assert not overlap.any()
    # fractions roughly as asked
    frac = np.array([np.mean(split == s) for s in SPLIT_NAMES])
    assert abs(frac[0] - 0.7) < 0.15


def test_seeded():
    images, w, sources, positives = _random_case()
    kw = dict(size=16, footprint="images", tile_size=0.5 * u.arcmin)
    a = build_training_set(images, sources, positives, seed=5, **kw)
    b = build_training_set(images, sources, positives, seed=5, **kw)
    c = build_training_set(images, sources, positives, seed=6, **kw)
    assert np.array_equal(a.table["split"], b.table["split"])
    assert np.array_equal(a.cutouts.data, b.cutouts.data, equal_nan=True)
    assert set(a.table["source"]) != set(c.table["source"]) or \
        not np.array_equal(a.table["split"], c.table["split"])
    train, labels = a.subset("train")
    assert len(train) == np.sum(a.table["split"] == "train") == labels.size


def _field_with_clusters(out_dir, n=15, seed=3):
    """A small simulated field with *n* given clusters placed on its one CCD."""
    from m31clusters.simulate import simulate_field

    kw = dict(field=248, n_ccds=1, ccd_shape=(400, 400), seed=seed, overwrite=True)
    t = simulate_field(out_dir=out_dir, catalog=False, **kw).truth
    t = t[t["on_ccd"]]
    rng = np.random.default_rng(seed)
    pad = 5 / 3600
    ra = rng.uniform(t["ra"].min() + pad, t["ra"].max() - pad, n)
    dec = rng.uniform(t["dec"].min() + pad, t["dec"].max() - pad, n)
    g = rng.uniform(17, 20.5, n)
    clusters = Table({"coord": SkyCoord(ra, dec, unit="deg"), "g": g * u.mag,
                      "i": (g - 0.8) * u.mag, "Reff": rng.uniform(0.3, 1.2, n) * u.arcsec})
    return simulate_field(out_dir=out_dir, clusters=clusters, **kw), clusters


def test_simulated_field(tmp_path):
    sim, clusters = _field_with_clusters(tmp_path)
    truth = sim.truth
    # the same call as on real stacks: the placed clusters are the positives
    ts = build_training_set(sim.images, sim.catalog, clusters, footprint="images",
                            tile_size=0.5 * u.arcmin, seed=1)
    pos = ts.table["label"] == 1
    assert pos.sum() >= 10
    # every cluster-labelled source is a catalogue detection of a true cluster, and
    # every other one is not
    rows = np.asarray(sim.catalog["truth_row"])[ts.table["source"]]
    ccd = truth[truth["ccd"] == truth["ccd"][0]]
    kinds = np.asarray(ccd["kind"])[rows]
    assert np.all(kinds[pos] == "cluster")
    assert np.all(kinds[~pos] != "cluster")


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------


def test_no_overlap():
    images, sources, positives = _hand_built()
    far = Table({"coord": SkyCoord([10.0, 10.1, 10.2] * u.deg, [30.0, 30.1, 30.0] * u.deg)})
    with pytest.raises(TrainingSetError, match="none of the 3 positives falls on the g images"):
        build_training_set(images, sources, far, size=16, **ONE_SPLIT)


def test_negatives_only_field():
    """allow_one_class: a field without known clusters gives negatives only."""
    images, sources, positives = _hand_built()
    far = Table({"coord": SkyCoord([10.0, 10.1, 10.2] * u.deg, [30.0, 30.1, 30.0] * u.deg)})
    ts = build_training_set(images, sources, far, size=16, **ONE_SPLIT, footprint="images",
                            allow_one_class=True)
    # every bright source on the image is clear of every (far away) positive
    bright = np.flatnonzero(np.asarray(sources["g"]) < 21)
    assert sorted(ts.table["source"].tolist()) == bright.tolist()
    assert set(ts.table["label"].tolist()) == {0}
    assert ts.table.meta["n_positives_on_images"] == 0
    # one class of a field with clusters, too
    one = build_training_set(images, sources[[3, 7]], positives, size=16, **ONE_SPLIT,
                             allow_one_class=True, footprint="images")
    assert one.table["label"].tolist() == [0, 0]
    with pytest.raises(ValueError, match="explicit footprint"):
        build_training_set(images, sources, far, size=16, **ONE_SPLIT, allow_one_class=True)
    # nothing left at all is still an error
    with pytest.raises(TrainingSetError, match="single class .*0 clusters, 0 non"):
        build_training_set(images, sources[[5]], far, size=16, **ONE_SPLIT,
                           footprint="images", allow_one_class=True)


def test_no_sources_in_footprint():
    images, sources, positives = _hand_built()
    with pytest.raises(TrainingSetError, match="none of the 8 sources is inside the footprint"):
        build_training_set(images, sources, positives, size=16, **ONE_SPLIT,
                           footprint=lambda c: np.zeros(len(c), bool))


def test_one_class():
    images, sources, positives = _hand_built()
    with pytest.raises(TrainingSetError, match="single class .*0 clusters"):
        build_training_set(images, sources[[3, 7]], positives, size=16,
                           **ONE_SPLIT)


def test_units_missing():
    images, sources, positives = _hand_built()
    with pytest.raises(TypeError, match="match_radius must be an astropy Quantity"):
        build_training_set(images, sources, positives, match_radius=1.0)
    with pytest.raises(u.UnitTypeError, match="exclusion_radius must have units of angle"):
        build_training_set(images, sources, positives, exclusion_radius=5 * u.kg)
    with pytest.raises(TypeError, match="tile_size must be an astropy Quantity"):
        build_training_set(images, sources, positives, tile_size=60)


def test_other_bad_input():
    images, sources, positives = _hand_built()
    with pytest.raises(KeyError, match="no g magnitude column"):
        build_training_set(images, sources["coord", "name"], positives)
    with pytest.raises(ValueError, match="splits must be three"):
        build_training_set(images, sources, positives, splits=(0.5, 0.6, 0.1))
    with pytest.raises(ValueError, match="tile_size .* must be larger than the stamp"):
        build_training_set(images, sources, positives, size=64, tile_size=5 * u.arcsec)
    with pytest.raises(ValueError, match="at least match_radius"):
        build_training_set(images, sources, positives, exclusion_radius=0.5 * u.arcsec)
    with pytest.raises(TrainingSetError, match="at least 3 positives"):
        build_training_set(images, sources, positives[:2], size=16)


def test_hard_example_weights_and_resample():
    w = hard_example_weights([0, 0, 1, 1, 0], [0.2, 0.7, 0.9, 0.1, 0.5], threshold=0.5,
                             factor=3)
    assert w.tolist() == [1, 3, 1, 3, 3]
    idx = resample(1000, w, seed=0)
    counts = np.bincount(idx, minlength=5)
    assert counts.min() >= 1 and counts.sum() == 1000
    # hard examples are drawn about 3x as often
    assert counts[[1, 3, 4]].mean() > 2.0 * counts[[0, 2]].mean()
    assert np.array_equal(idx, resample(1000, w, seed=0))
    with pytest.raises(ValueError, match="at least the number"):
        resample(2, w)


def test_concatenate_training_sets():
    from m31clusters.training import TrainingSet

    kw = dict(size=16, footprint="images", tile_size=0.5 * u.arcmin)
    images, _, sources, positives = _random_case(seed=1)
    a = build_training_set(images, sources, positives, seed=5, **kw)
    images, _, sources, positives = _random_case(seed=2)
    b = build_training_set(images, sources, positives, seed=6, **kw)
    both = TrainingSet.concatenate([a, b])
    assert len(both) == len(a) + len(b)
    assert list(both.table["set"]) == [0] * len(a) + [1] * len(b)
    np.testing.assert_array_equal(both.cutouts.data[len(a):], b.cutouts.data)
    assert both.table.meta["n_sources"] == a.table.meta["n_sources"] + b.table.meta["n_sources"]
    assert both.table.meta["sets"][1]["seed"] == 6
    # counts and subsets add up split by split
    for s, na, nb, n in zip(SPLIT_NAMES, a.counts(), b.counts(), both.counts(), strict=True):
        assert n["n_cluster"] == na["n_cluster"] + nb["n_cluster"]
        assert n["n_other"] == na["n_other"] + nb["n_other"]
        _, labels = both.subset(s)
        assert labels.sum() == n["n_cluster"]
    with pytest.raises(ValueError, match="empty"):
        TrainingSet.concatenate([])
    with pytest.raises(TypeError, match="item 1"):
        TrainingSet.concatenate([a, a.table])
    from m31clusters.exceptions import BandError

    c = TrainingSet(a.cutouts.select_bands(["g"]), a.table)
    with pytest.raises(BandError, match="item 1"):
        TrainingSet.concatenate([a, c])


def test_thin_keeps_clusters_and_draws_negatives_at_random():
    images, _, sources, positives = _random_case(seed=1)
    ts = build_training_set(images, sources, positives, size=16, footprint="images",
                            tile_size=0.5 * u.arcmin, seed=5)
    before = {r["split"]: (r["n_cluster"], r["n_other"]) for r in ts.counts()}
    n_train = before["train"][1] // 2
    small = ts.thin({"train": n_train, "val": 0}, seed=3)
    after = {r["split"]: (r["n_cluster"], r["n_other"]) for r in small.counts()}
    # every cluster stays; the named splits are cut to their limits, the others kept whole
    assert after == {"train": (before["train"][0], n_train), "val": (before["val"][0], 0),
                     "test": before["test"]}
    assert small.table.meta["n_thinned"] == before["train"][1] - n_train + before["val"][1]
    assert small.table.meta["n_sources"] == ts.table.meta["n_sources"]
    # the stamps follow their rows, in the original order
    rows = np.flatnonzero(np.isin(np.asarray(ts.table["source"]),
                                  np.asarray(small.table["source"])))
    np.testing.assert_array_equal(small.cutouts.data, ts.cutouts.data[rows])
    np.testing.assert_array_equal(small.table["source"], ts.table["source"][rows])
    # seeded: same seed, same choice; another seed, another one
    again = ts.thin({"train": n_train, "val": 0}, seed=3)
    np.testing.assert_array_equal(again.table["source"], small.table["source"])
    other = ts.thin({"train": n_train, "val": 0}, seed=4)
    assert list(other.table["source"]) != list(small.table["source"])
    # one number for every split; a limit above the count keeps everything
    assert len(ts.thin(10**9)) == len(ts)
    assert ts.thin(0).counts()["n_other"].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        ts.thin({"validation": 3})
    with pytest.raises(ValueError, match="split 'train' must be a non-negative integer"):
        ts.thin({"train": -1})
    with pytest.raises(ValueError, match="non-negative integer; got 2.5"):
        ts.thin(2.5)
