"""Tests of m31clusters.cutout.core: the Cutout container, slicing, dihedral transforms."""


import numpy as np
import pytest
from _cutout_helpers import (
    random_cutout,
)

from m31clusters.cutout import Cutout
from m31clusters.exceptions import (
    BandError,
)
from m31clusters.geometry import M31_CENTER


def test_constructor_validation():
    with pytest.raises(BandError, match="2 band"):
        Cutout(np.zeros((2, 4, 4, 2)), bands=("g",))
    with pytest.raises(BandError, match="unique"):
        Cutout(np.zeros((2, 4, 4, 2)), bands=("g", "g"))
    with pytest.raises(ValueError, match="mask shape"):
        Cutout(np.zeros((2, 4, 4, 2)), mask=np.zeros((2, 4, 4, 1), bool))
    with pytest.raises(ValueError, match="offsets"):
        Cutout(np.zeros((2, 4, 4, 2)), offsets=np.zeros((3, 2)))
    with pytest.raises(TypeError, match="SkyCoord"):
        Cutout(np.zeros((2, 4, 4, 2)), positions=[(1, 2), (3, 4)])
    with pytest.raises(ValueError, match="normalization"):
        Cutout(np.zeros((2, 4, 4, 2)), normalization={"foo": 1})
    cut = Cutout(np.full((2, 4, 4, 1), np.nan), bands="g")
    assert cut.mask.all() and cut.valid_fraction.tolist() == [[0.0], [0.0]]


def test_indexing_and_concatenate():
    cut = random_cutout()
    sub = cut[3]
    assert isinstance(sub, Cutout) and len(sub) == 1
    np.testing.assert_array_equal(sub.data[0], cut.data[3])
    assert cut[-1].positions[0] == cut.positions[-1]
    sl = cut[2:9:3]
    np.testing.assert_array_equal(sl.offsets, cut.offsets[2:9:3])
    sel = cut.data[..., 0].mean(axis=(1, 2)) > 50
    b = cut[sel]
    assert len(b) == sel.sum()
    np.testing.assert_array_equal(b.mask, cut.mask[sel])
    idx = cut[[5, 0, 5]]
    np.testing.assert_array_equal(idx.data, cut.data[[5, 0, 5]])
    assert idx.positions[1] == cut.positions[0]
    with pytest.raises(IndexError):
        cut[12]
    with pytest.raises(IndexError):
        cut[np.ones(3, bool)]
    both = Cutout.concatenate([cut[:4], cut[4:]])
    np.testing.assert_array_equal(both.data, cut.data)
    np.testing.assert_array_equal(both.positions.ra.deg, cut.positions.ra.deg)
    with pytest.raises(BandError):
        Cutout.concatenate([cut, cut.select_bands(("i", "g"))])
    with pytest.raises(ValueError, match="normalization"):
        Cutout.concatenate([cut, cut.normalize("none")])
    with pytest.raises(ValueError, match="empty"):
        Cutout.concatenate([])
    swapped = cut.select_bands(["i", "g"])
    np.testing.assert_array_equal(swapped.data[..., 0], cut.data[..., 1])


def test_dihedral_group_and_offsets():
    cut = random_cutout(n=3, size=7)
    d = cut.data
    expected = [np.rot90(d, k, axes=(1, 2)) for k in range(4)]
    expected += [np.flip(e, axis=2) for e in expected]
    outs = [cut.dihedral(k) for k in range(8)]
    for k in range(8):
        np.testing.assert_array_equal(outs[k].data, expected[k])
        np.testing.assert_array_equal(outs[k].mask, cut.dihedral(k).mask)
    # the 8 transforms of an asymmetric stamp are all different
    flat = {outs[k].data.tobytes() for k in range(8)}
    assert len(flat) == 8
    # offsets follow the pixels: a single bright pixel off centre
    stamp = np.zeros((1, 7, 7, 1))
    stamp[0, 1, 5, 0] = 1.0  # row 1, column 5 -> (dx, dy) = (2, -2) + 0.25 sub-pixel
    one = Cutout(stamp, bands="g", offsets=[[2.25, -2.0]])
    for k in range(8):
        t = one.dihedral(k)
        r, c = np.argwhere(t.data[0, :, :, 0])[0]
        dx, dy = t.offsets[0]
        assert np.round(dx) == c - 3 and np.round(dy) == r - 3
        assert np.isclose(abs(dx) + abs(dy), 4.25)
    aug = cut.augment_dihedral()
    assert len(aug) == 24
    np.testing.assert_array_equal(aug.data[2 * 3 + 1], expected[2][1])
    for bad in (-1, 8, 1.0, True):
        with pytest.raises(ValueError, match="0 to 7"):
            cut.dihedral(bad)


def test_duplicate_bands_are_refused_by_the_container():
    cut = random_cutout(n=3)
    with pytest.raises(BandError, match=r"repeats \['i'\]"):
        cut.select_bands(("i", "g", "i"))
    with pytest.raises(BandError, match="unique"):
        Cutout(np.zeros((2, 4, 4, 2)), bands=("g", "g"))
    with pytest.raises(BandError, match="at least one band"):
        Cutout(np.zeros((2, 4, 4, 0)), bands=())
    # concatenate only joins valid Cutouts (unique bands), and keeps them
    assert Cutout.concatenate([cut, cut]).bands == ("g", "i")


def test_infinite_pixels_are_masked_in_raw_data():
    raw = np.ones((2, 4, 4, 1))
    raw[0, 1, 1, 0] = np.inf
    raw[1, 2, 2, 0] = -np.inf
    cut = Cutout(raw, bands="g")
    assert cut.mask.sum() == 2 and np.all(cut.valid_fraction == 15 / 16)
    # normalisation ignores them (a finite result, the fill value there)
    norm = cut.normalize("standardize", fill_value=-3.0)
    assert np.all(np.isfinite(norm.data)) and norm.data[0, 1, 1, 0] == -3.0


def test_arguments_after_the_first_ones_are_keyword_only():
    data = np.zeros((2, 4, 4, 1))
    with pytest.raises(TypeError):
        Cutout(data, ("g",), np.zeros(data.shape, bool))  # mask by position
    cut = Cutout(data, ("g",), mask=np.zeros(data.shape, bool))
    with pytest.raises(TypeError):
        cut.normalize("asinh", 0.0)  # fill_value by position
    with pytest.raises(TypeError):
        Cutout.from_images({"g": None}, M31_CENTER, 5)  # size by position
