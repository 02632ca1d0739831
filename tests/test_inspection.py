"""Tests of m31clusters.inspection (combining visual scores, inspection montages)."""

import itertools

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from m31clusters.cutout import Cutout
from m31clusters.exceptions import BandError
from m31clusters.inspection import combine_scores, inspection_montage

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- combine_scores


def test_combine_scores_paper_rule_all_pairs():
    # The paper keeps a candidate where the two 0/1/2 scores sum to 3 or 4:
    # (2, 2), (2, 1) and (1, 2) -- 3 of the 9 possible pairs.
    pairs = list(itertools.product([0, 1, 2], repeat=2))
    a, b = (np.array(x) for x in zip(*pairs, strict=True))
    score, kept = combine_scores(a, b)
    assert score.name == "Score" and score.dtype == np.int64
    np.testing.assert_array_equal(score, [x + y for x, y in pairs])
    assert [p for p, k in zip(pairs, kept, strict=True) if k] == [(1, 2), (2, 1), (2, 2)]
    # Only the sure ones.
    _, sure = combine_scores(a, b, keep=4)
    assert [p for p, k in zip(pairs, sure, strict=True) if k] == [(2, 2)]


def test_combine_scores_missing_values():
    a = MaskedColumn([2, 2, 1, 2, 2], mask=[False, True, False, False, False])
    b = [2.0, 2.0, np.nan, None, 1.0]
    score, kept = combine_scores(a, b)
    np.testing.assert_array_equal(score.mask, [False, True, True, True, False])
    assert score.tolist() == [4, None, None, None, 3]
    np.testing.assert_array_equal(kept, [True, False, False, False, True])
    assert kept.dtype == bool and not isinstance(kept, np.ma.MaskedArray)


def test_combine_scores_into_catalog():
    t = Table({"Seq": [1, 2, 3], "insp1": [2, 0, 1], "insp2": [1, 1, 1]})
    t["Score"], kept = combine_scores(t["insp1"], t["insp2"])
    assert list(t[kept]["Seq"]) == [1]
    assert list(t["Score"]) == [3, 1, 2]


@pytest.mark.parametrize(
    ("a", "b", "keep", "exc", "match"),
    [
        ([2, 3], [1, 1], (3, 4), ValueError, r"score_a must be 0 .*first 3 at index 1"),
        ([2, 1], [1, -1], (3, 4), ValueError, r"score_b .* first -1 at index 1"),
        ([1.5], [1], (3, 4), ValueError, "first 1.5 at index 0"),
        ([1, 2], [1], (3, 4), ValueError, "same length, got 2 and 1"),
        ([[1, 2]], [[1, 2]], (3, 4), ValueError, r"1-D, got shape \(1, 2\)"),
        (2, 2, (3, 4), ValueError, "1-D, got shape"),
        ([True, False], [1, 1], (3, 4), TypeError, "dtype bool"),
        (["2", "1"], [1, 1], (3, 4), TypeError, "integer scores"),
        ("21", [1, 1], (3, 4), TypeError, "got a string"),
        ([1], [1], (5,), ValueError, "between 0 and 4"),
        ([1], [1], (), ValueError, "at least one"),
        ([1], [1], (3.5,), TypeError, "keep must be integers"),
    ],
)
def test_combine_scores_bad_input(a, b, keep, exc, match):
    with pytest.raises(exc, match=match):
        combine_scores(a, b, keep=keep)


# --------------------------------------------------------------------------- montage


def _blob(cx, cy, size=24, sigma=2.0):
    y, x = np.mgrid[:size, :size]
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))


def _cutout(n=3, size=24):
    rng = np.random.default_rng(1)
    g = np.stack([100 * _blob(7, 12, size) + rng.normal(10, 1, (size, size)) for _ in range(n)])
    i = np.stack([100 * _blob(16, 12, size) + rng.normal(20, 1, (size, size)) for _ in range(n)])
    data = np.stack([g, i], axis=-1)
    mask = np.zeros(data.shape, bool)
    mask[0, :4, :, 0] = True  # four rows of g missing in stamp 0
    return Cutout(data, bands=("g", "i"), mask=mask)


def test_montage_layout_titles_and_pixels():
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval

    cut = _cutout(3)
    fig = inspection_montage(cut, ids=[11, 12, 13], scores=MaskedColumn([4, 3, 0],
                             mask=[False, False, True]), ncols=2)
    assert len(fig.axes) == 2 * 6  # 2 rows x (2 candidates x 3 panels)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:9] == ["11: g", "i", "Score 4", "12: g", "i", "Score 3",
                          "13: g", "i", "Score --"]
    assert all(not ax.images for ax in fig.axes[9:])  # unused panels are empty
    # g panel of stamp 0 = independent astropy percentile + asinh normalisation
    # of its valid pixels; missing pixels are not drawn as data.
    shown = fig.axes[0].images[0].get_array()
    g = cut.data[0, :, :, 0].astype(float)
    valid = ~cut.mask[0, :, :, 0]
    norm = ImageNormalize(g[valid], interval=PercentileInterval(99.5), stretch=AsinhStretch(),
                          clip=True)
    np.testing.assert_allclose(np.ma.getdata(shown)[valid], norm(g[valid]), rtol=1e-6, atol=1e-9)
    assert np.all(np.ma.getmaskarray(shown)[~valid])
    # Colour composite: red = i (blob at x = 16), blue = g (blob at x = 7).
    rgb = fig.axes[5].images[0].get_array()
    assert rgb.shape == (24, 24, 3)
    assert rgb[12, 16, 0] > rgb[12, 16, 2] + 0.3
    assert rgb[12, 7, 2] > rgb[12, 7, 0] + 0.3


def test_montage_default_ids_and_writes_png(tmp_path):
    cut = _cutout(2)
    path = tmp_path / "page1.png"
    fig = inspection_montage(cut, path=path)
    assert [ax.get_title() for ax in fig.axes] == ["0: g", "i", "g/i", "1: g", "i", "g/i"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        inspection_montage(cut[:1], path=path)
    assert path.read_bytes() == before
    inspection_montage(cut[:1], path=path, overwrite=True, stretch="linear")
    assert path.read_bytes() != before


def test_montage_errors():
    cut = _cutout(3)
    with pytest.raises(TypeError, match="must be an m31clusters Cutout"):
        inspection_montage(np.zeros((3, 8, 8, 2)))
    with pytest.raises(BandError, match="band 'r' is not in the cutout"):
        inspection_montage(cut, bands=("g", "r"))
    with pytest.raises(ValueError, match="ids has 2 entries for 3 candidates"):
        inspection_montage(cut, ids=[1, 2])
    with pytest.raises(ValueError, match="scores has 1 entries"):
        inspection_montage(cut, scores=[4])
    with pytest.raises(ValueError, match="more than max_candidates=2"):
        inspection_montage(cut, max_candidates=2)
    with pytest.raises(ValueError, match="stretch must be one of"):
        inspection_montage(cut, stretch="hist")
    with pytest.raises(ValueError, match="ncols must be a positive integer"):
        inspection_montage(cut, ncols=0)
    with pytest.raises(ValueError, match="percentile must be in"):
        inspection_montage(cut, percentile=0)


def test_cutout_plot_draws_through_the_montage_rendering():
    # One montage, one meaning of stretch: Cutout.plot shows render_bands' values.
    from m31clusters.inspection import composite, render_bands

    cut = _cutout(3)
    rendered = render_bands(cut.data, ~cut.mask, stretch="sqrt")
    fig = cut.plot(n=3, band="i", stretch="sqrt")
    for k in range(3):
        shown = fig.axes[k].images[0].get_array()
        np.testing.assert_allclose(np.ma.getdata(shown), rendered[k, :, :, 1])
    fig = cut.plot(n=3)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(),
                               composite(*render_bands(cut.data, ~cut.mask)[0]
                                         .transpose(2, 0, 1)))
    with pytest.raises(ValueError, match="stretch must be one of"):
        cut.plot(n=1, stretch="zscale")


def test_render_bands_matches_nanpercentile_with_missing_pixels():
    from m31clusters.inspection import render_bands

    rng = np.random.default_rng(5)
    data = rng.normal(0, 1, (7, 9, 11, 2))
    valid = rng.random(data.shape) > 0.3
    valid[3, :, :, 1] = False  # a band with no data at all
    valid[4, :, :, 0] = False
    valid[4, 2, 3, 0] = True  # a single valid pixel
    out = render_bands(data, valid, stretch="linear", percentile=90)
    for k in range(7):
        for c in range(2):
            good = valid[k, :, :, c]
            if not good.any():
                assert np.all(np.isnan(out[k, :, :, c]))
                continue
            lo, hi = np.percentile(data[k, :, :, c][good], [5, 95])
            hi = hi if hi > lo else lo + 1
            expect = np.clip((data[k, :, :, c] - lo) / (hi - lo), 0, 1)
            np.testing.assert_allclose(out[k, :, :, c][good], expect[good], atol=1e-12)
            assert np.all(np.isnan(out[k, :, :, c][~good]))
