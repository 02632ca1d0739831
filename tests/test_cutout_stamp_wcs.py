"""Tests of m31clusters.cutout._stamp_wcs: the WCS of each stamp follows its pixels."""


import numpy as np
import pytest
from _cutout_helpers import (
    edge_positions,
    make_image,
    make_mef,
    make_wcs,
)
from astropy.io import fits
from astropy.nddata import NDData
from astropy.wcs.utils import pixel_to_skycoord

from m31clusters.cutout import Cutout


def _assert_wcs_follows_pixels(cut, data, image_wcs):
    """Every pixel of every stamp shows the image pixel at its stamp-WCS sky position."""
    h, w = cut.shape[1:3]
    yy, xx = np.mgrid[:h, :w]
    for i in range(len(cut)):
        sw = cut.stamp_wcs(i)
        sky = sw.pixel_to_world(xx.ravel(), yy.ravel())
        ix, iy = image_wcs.world_to_pixel(sky)
        ix, iy = np.round(ix).astype(int), np.round(iy).astype(int)
        inside = (ix >= 0) & (ix < data.shape[1]) & (iy >= 0) & (iy < data.shape[0])
        got = cut.data[i, :, :, 0].ravel()
        np.testing.assert_array_equal(got[inside], data[iy[inside], ix[inside]])
        assert np.all(np.isnan(got[~inside]))
        # the source sits at the (transformed) offset from the stamp centre
        px, py = sw.world_to_pixel(cut.positions[i])
        np.testing.assert_allclose([px - (w - 1) / 2, py - (h - 1) / 2], cut.offsets[i],
                                   atol=1e-6)


@pytest.mark.parametrize("size", [7, (6, 9)])
def test_dihedral_keeps_stamp_wcs(tmp_path, size):
    data, w = make_image(nan_at=())
    w = make_wcs(rot_deg=30.0)
    xy = edge_positions(data.shape, 20, seed=3)[10:]
    sky = pixel_to_skycoord(xy[:, 0], xy[:, 1], w, origin=0)
    cut = Cutout.from_images({"g": NDData(data, wcs=w)}, sky, size=size, bands="g",
                             progress=False)
    for k in range(8):
        turned = cut.dihedral(k)
        _assert_wcs_follows_pixels(turned, data, w)
        # compositions of transforms keep track too
        _assert_wcs_follows_pixels(turned.dihedral((3 * k + 1) % 8), data, w)
    if np.ndim(size) == 0:
        aug = cut.augment_dihedral()
        _assert_wcs_follows_pixels(aug[::3], data, w)
    turned = cut.dihedral(5)
    for name in ("t.fits", "t.h5"):
        if name.endswith(".h5"):
            pytest.importorskip("h5py")
        turned.write(tmp_path / name)
        back = Cutout.read(tmp_path / name)
        _assert_wcs_follows_pixels(back, data, w)
    # a distorted (SIP) WCS cannot follow a turn: None rather than a wrong WCS
    sip = make_wcs()
    sip.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    from astropy.wcs import Sip
    a = np.zeros((3, 3))
    a[2, 0] = 1e-6
    sip.sip = Sip(a, np.zeros((3, 3)), None, None, sip.wcs.crpix)
    scut = Cutout.from_images({"g": NDData(data, wcs=sip)}, [[40.0, 60.0]], size=7,
                              bands="g", pixel_band="g", progress=False)
    assert scut.stamp_wcs(0) is not None and scut.dihedral(0).stamp_wcs(0) is not None
    assert scut.dihedral(1).stamp_wcs(0) is None


def test_stamp_wcs_sources_are_shared_across_chunks(tmp_path):
    hdul, arrays = make_mef()
    xy = np.random.default_rng(0).uniform(5, 55, size=(40, 2))
    sky = pixel_to_skycoord(xy[:, 0], xy[:, 1], arrays[1][1], 0)
    parts = list(Cutout.iter_from_images({"g": hdul}, sky, size=5, bands="g", chunk_size=7,
                                         progress=False))
    joined = Cutout.concatenate(parts)
    assert len(joined._wcsinfo.sources) == 1  # one CCD, however many chunks
    joined[::2].write(tmp_path / "s.fits")
    with fits.open(tmp_path / "s.fits") as f:
        assert sum(h.name == "SRCWCS" for h in f) == 1
