"""Tests of m31clusters.cutout.io: Cutout files (FITS and HDF5)."""

import json

import numpy as np
import pytest
from _cutout_helpers import (
    make_image,
    random_cutout,
)
from astropy import units as u
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_skycoord

from m31clusters.cutout import Cutout
from m31clusters.exceptions import (
    CorruptFileError,
)


def test_write_read_round_trip(tmp_path):
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    sky = pixel_to_skycoord(np.array([0.0, 40.0, 80.0]), np.array([5.0, 60.0, 119.0]), w, 0)
    cut = Cutout.from_images({"g": hdu, "i": hdu}, sky, size=(9, 8), progress=False)
    cut.meta["zeropoints"] = {"g": 30.1, "i": 29.8}
    path = tmp_path / "c.fits"
    cut.write(path)
    back = Cutout.read(path)
    np.testing.assert_array_equal(back.data, cut.data)
    np.testing.assert_array_equal(back.mask, cut.mask)
    np.testing.assert_array_equal(back.offsets, cut.offsets)
    assert back.bands == cut.bands and back.meta == cut.meta
    assert back.normalization is None
    assert np.all(back.positions.separation(cut.positions) < 1e-6 * u.arcsec)
    for i in range(3):
        np.testing.assert_allclose(back.stamp_wcs(i, "i").wcs.crpix,
                                   cut.stamp_wcs(i, "i").wcs.crpix)
    with pytest.raises(FileExistsError):
        cut.write(path)
    norm = cut.normalize("asinh")
    norm.write(path, overwrite=True)
    assert Cutout.read(path).normalization == norm.normalization
    # Cutouts without positions/WCS round-trip too
    plain = Cutout(np.ones((2, 4, 4, 1)), bands="g")
    plain.write(tmp_path / "p.fits")
    assert Cutout.read(tmp_path / "p.fits").positions is None


def test_read_corrupt_files(tmp_path):
    cut = random_cutout(n=30)
    path = tmp_path / "c.fits"
    cut.write(path)
    raw = path.read_bytes()
    trunc = tmp_path / "truncated.fits"
    trunc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="truncated.fits"):
        Cutout.read(trunc)
    flipped = bytearray(raw)
    flipped[2880 * 3 + 100] ^= 0xFF  # inside the DATA HDU
    bad = tmp_path / "flipped.fits"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match="flipped.fits"):
        Cutout.read(bad)
    other = tmp_path / "other.fits"
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(other)
    with pytest.raises(CorruptFileError, match="not a Cutout file"):
        Cutout.read(other)
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"hello world" * 10)
    with pytest.raises(CorruptFileError, match="garbage.fits"):
        Cutout.read(garbage)
    with pytest.raises(FileNotFoundError):
        Cutout.read(tmp_path / "missing.fits")


def test_hdf5_round_trip_and_corruption(tmp_path):
    pytest.importorskip("h5py")
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    sky = pixel_to_skycoord(np.array([0.0, 40.0]), np.array([5.0, 60.0]), w, 0)
    cut = Cutout.from_images({"g": hdu}, sky, size=7, bands="g", progress=False)
    cut = cut.normalize("standardize", fill_value=-2.0)
    cut.meta["note"] = "hdf5"
    path = tmp_path / "c.h5"
    cut.write(path)
    back = Cutout.read(path)
    np.testing.assert_array_equal(back.data, cut.data)
    np.testing.assert_array_equal(back.mask, cut.mask)
    assert back.normalization == cut.normalization and back.meta == cut.meta
    np.testing.assert_allclose(back.stamp_wcs(1).wcs.crpix, cut.stamp_wcs(1).wcs.crpix)
    with pytest.raises(FileExistsError):
        cut.write(path)
    raw = path.read_bytes()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="trunc.h5"):
        Cutout.read(trunc)


def test_write_refuses_non_json_meta(tmp_path):
    cut = Cutout(np.ones((1, 4, 4, 1)), bands="g", meta={"bad": object()})
    with pytest.raises(TypeError, match="JSON"):
        cut.write(tmp_path / "x.fits")
    assert not (tmp_path / "x.fits").exists()


def test_read_refuses_a_file_with_repeated_bands(tmp_path):
    # a file whose band list repeats (edited by hand): read names the file
    path = tmp_path / "c.fits"
    random_cutout(n=3).write(path)
    with fits.open(path, mode="update") as f:
        f[0].header["BANDS"] = json.dumps(["g", "g"])
    with pytest.raises(CorruptFileError, match=r"c\.fits.*repeats \['g'\]"):
        Cutout.read(path)


def test_write_returns_the_path_and_overwrite_is_keyword_only(tmp_path):
    cut = random_cutout(n=2)
    for name in ("a.fits", "a.h5"):
        if name.endswith(".h5"):
            pytest.importorskip("h5py")
        got = cut.write(str(tmp_path / name))
        assert got == tmp_path / name and got.is_file()
        with pytest.raises(TypeError):
            cut.write(tmp_path / name, True)
        assert cut.write(tmp_path / name, overwrite=True) == tmp_path / name


# --------------------------------------------------------------------------
# files written by m31clusters 0.1.dev42 (before cutout.py became a package)
# --------------------------------------------------------------------------


def _fixture_cutout():
    """The Cutout stored in tests/data/cutout_v1.fits, rebuilt (see tests/data/README.rst)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [10.6847, 41.2690]
    w.wcs.crpix = [20.0, 15.0]
    s = 0.187 / 3600
    c, n = np.cos(0.3), np.sin(0.3)
    w.wcs.cd = [[-s * c, s * n], [s * n, s * c]]
    data = np.arange(30 * 40, dtype="f4").reshape(30, 40)
    data[5, 5] = np.nan
    xy = np.array([[3.2, 4.7], [20.0, 15.0], [38.6, 28.9]])
    sky = pixel_to_skycoord(xy[:, 0], xy[:, 1], w, 0)
    cut = Cutout.from_images({"g": fits.ImageHDU(data, header=w.to_header()),
                              "i": NDData(data * 2, wcs=w)}, sky, size=(5, 6), progress=False)
    cut = cut.dihedral(5)
    cut.meta["zeropoints"] = {"g": 30.0, "i": 29.5}
    return cut, sky


def _assert_same_cutout(back, cut, sky):
    np.testing.assert_array_equal(back.data, cut.data)
    np.testing.assert_array_equal(back.mask, cut.mask)
    np.testing.assert_allclose(back.offsets, cut.offsets, atol=1e-9)
    assert back.bands == cut.bands and back.meta == cut.meta
    assert back.normalization == cut.normalization
    assert np.all(back.positions.separation(sky) < 1e-6 * u.arcsec)
    for i in range(len(cut)):
        for band in cut.bands:
            got, want = back.stamp_wcs(i, band), cut.stamp_wcs(i, band)
            np.testing.assert_allclose(got.wcs.crpix, want.wcs.crpix, atol=1e-9)
            np.testing.assert_allclose(got.pixel_scale_matrix, want.pixel_scale_matrix)
            px, py = got.world_to_pixel(sky[i])
            np.testing.assert_allclose([px - 2, py - 2.5], back.offsets[i], atol=1e-6)


def test_files_written_by_version_1_still_load():
    from pathlib import Path

    here = Path(__file__).parent / "data"
    cut, sky = _fixture_cutout()
    back = Cutout.read(here / "cutout_v1.fits")
    assert back.shape == (3, 6, 5, 2)  # dihedral 5 swapped H and W
    _assert_same_cutout(back, cut, sky)
    pytest.importorskip("h5py")
    back = Cutout.read(here / "cutout_v1_asinh.h5")
    _assert_same_cutout(back, cut.normalize("asinh", softening=2.0), sky)
