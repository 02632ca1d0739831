"""Tests of m31clusters.cutout.extract: cutting stamps from images (Cutout.from_images)."""

import warnings

import numpy as np
import pytest
from _cutout_helpers import (
    DEC0,
    RA0,
    edge_positions,
    make_image,
    make_mef,
    make_wcs,
)
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NDData
from astropy.wcs.utils import pixel_to_skycoord

from m31clusters.cutout import Cutout
from m31clusters.exceptions import (
    BandError,
    CorruptFileError,
    ImageShapeError,
    NoWCSError,
    OffImageError,
    OffImageWarning,
    StampMemoryError,
)
from m31clusters.geometry import M31_CENTER

# --------------------------------------------------------------------------
# pixel exactness against Cutout2D
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 8, (6, 9), (9, 4), 1])
def test_pixel_positions_match_cutout2d(size):
    data, w = make_image()
    xy = edge_positions(data.shape, 300, seed=1)
    hdu = fits.ImageHDU(data, header=w.to_header())
    cut = Cutout.from_images({"g": hdu}, xy, size=size, bands=("g",), pixel_band="g",
                             progress=False)
    h, wd = (size, size) if np.ndim(size) == 0 else size
    assert cut.shape == (len(xy), h, wd, 1)
    assert cut.data.dtype == np.float32
    for i, (x, y) in enumerate(xy):
        ref = Cutout2D(data, (x, y), size, mode="partial", fill_value=np.nan)
        np.testing.assert_array_equal(cut.data[i, :, :, 0], ref.data)
        np.testing.assert_array_equal(cut.mask[i, :, :, 0], np.isnan(ref.data))
        # offset of the true position from the geometric stamp centre
        cx, cy = ref.input_position_cutout
        np.testing.assert_allclose(cut.offsets[i], [cx - (wd - 1) / 2, cy - (h - 1) / 2],
                                   atol=1e-9)
    assert np.all((cut.offsets > -0.5) & (cut.offsets <= 0.5))
    # edge/corner stamps really are partly masked, the valid fraction agrees
    assert cut.valid_fraction[0, 0] < 1 or size == 1
    np.testing.assert_allclose(cut.valid_fraction[:, 0], 1 - cut.mask[..., 0].mean(axis=(1, 2)))


def test_threaded_gather_matches_cutout2d_and_one_thread(monkeypatch):
    # Interior stamps are gathered in blocks spread over threads: force many
    # small blocks and several threads, with NaNs and an NDData mask.
    from m31clusters.utils import _stamps

    data, w = make_image(nan_at=((30, 40), (31, 41), (80, 20)))
    mask = np.zeros(data.shape, dtype=bool)
    mask[50:53, 40:45] = True
    # band i is located through the sky, so skip the corner cases at exact
    # half-pixel positions (the pixel -> sky -> pixel round trip may move them
    # across a rounding boundary); the random positions reach every edge
    xy = edge_positions(data.shape, 400, seed=1)[10:]
    images = {"g": NDData(data, wcs=w, mask=mask), "i": fits.ImageHDU(data * 2, w.to_header())}
    monkeypatch.setattr(_stamps, "_BLOCK_BYTES", 7 * 7 * 4 * 3)  # 3 stamps per block
    cuts = {}
    for threads in (1, 4):
        monkeypatch.setattr(_stamps, "_MAX_THREADS", threads)
        monkeypatch.setattr(_stamps.os, "sched_getaffinity", lambda pid: set(range(4)),
                            raising=False)
        cuts[threads] = Cutout.from_images(images, xy, size=7, pixel_band="g", progress=False)
    np.testing.assert_array_equal(cuts[4].data, cuts[1].data)
    np.testing.assert_array_equal(cuts[4].mask, cuts[1].mask)
    for i, (x, y) in enumerate(xy):
        ref = Cutout2D(data, (x, y), 7, mode="partial", fill_value=np.nan).data
        ref_mask = Cutout2D(mask.astype(float), (x, y), 7, mode="partial", fill_value=1.0).data
        np.testing.assert_array_equal(cuts[4].data[i, :, :, 0], ref)
        np.testing.assert_array_equal(cuts[4].data[i, :, :, 1], ref * 2)
        np.testing.assert_array_equal(cuts[4].mask[i, :, :, 0], np.isnan(ref) | (ref_mask > 0))
        np.testing.assert_array_equal(cuts[4].mask[i, :, :, 1], np.isnan(ref))


@pytest.mark.parametrize("size", [9, 10])
def test_sky_positions_match_cutout2d_and_wcs(size):
    data, w = make_image(wcs=make_wcs(rot_deg=17.0))
    hdu = fits.PrimaryHDU(data, header=w.to_header())
    xy = edge_positions(data.shape, 150, seed=2)[1:]
    xy = xy[(xy[:, 0] < 89) & (xy[:, 1] < 119)]  # not on the exact upper edges
    sky = pixel_to_skycoord(xy[:, 0], xy[:, 1], w, origin=0)
    cut = Cutout.from_images({"i": fits.HDUList([hdu])}, sky, size=size, bands=("i",),
                             progress=False)
    assert cut.positions is not None and len(cut.positions) == len(xy)
    for i in range(len(xy)):
        ref = Cutout2D(data, sky[i], size, wcs=w, mode="partial", fill_value=np.nan)
        np.testing.assert_array_equal(cut.data[i, :, :, 0], ref.data)
        np.testing.assert_array_equal(cut.mask[i, :, :, 0], np.isnan(ref.data))
        sw = cut.stamp_wcs(i, "i")
        np.testing.assert_allclose(sw.wcs.crpix, ref.wcs.wcs.crpix, atol=1e-9)
        # the source sits at the stamp centre plus the offset in the stamp WCS
        px, py = sw.world_to_pixel(sky[i])
        c = (size - 1) / 2
        np.testing.assert_allclose([px - c, py - c], cut.offsets[i], atol=1e-6)
    assert cut.wcs[3].array_shape == (size, size)


def test_bands_with_different_wcs_centred_on_same_sky_position(tmp_path):
    g, wg = make_image(shape=(100, 80), seed=3, wcs=make_wcs(crpix=(40, 50)))
    i, wi = make_image(shape=(150, 140), seed=4,
                       wcs=make_wcs(crpix=(70, 80), scale_arcsec=0.15, rot_deg=30))
    r, wr = make_image(shape=(90, 90), seed=5, wcs=make_wcs(crpix=(45, 45), rot_deg=-8))
    path = tmp_path / "g.fits"
    fits.PrimaryHDU(g, header=wg.to_header()).writeto(path)
    images = {
        "g": str(path),
        "i": fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(i, header=wi.to_header())]),
        "r": NDData(r, wcs=wr),
    }
    sky = pixel_to_skycoord(np.array([10.3, 40.0, 70.2]), np.array([20.7, 50.0, 90.0]), wg, 0)
    cut = Cutout.from_images(images, sky, size=11, bands=("i", "g", "r"), progress=False)
    assert cut.bands == ("i", "g", "r")
    for k, (band, arr, w) in enumerate([("i", i, wi), ("g", g, wg), ("r", r, wr)]):
        for n in range(len(sky)):
            ref = Cutout2D(arr, sky[n], 11, wcs=w, mode="partial", fill_value=np.nan)
            np.testing.assert_array_equal(cut.data[n, :, :, k], ref.data)
            np.testing.assert_array_equal(cut.mask[n, :, :, k], np.isnan(ref.data))
            px, py = cut.stamp_wcs(n, band).world_to_pixel(sky[n])
            assert abs(px - 5) <= 0.5 and abs(py - 5) <= 0.5


def test_angular_size_matches_cutout2d():
    data, w = make_image()
    sky = pixel_to_skycoord(40.2, 61.7, w, 0)
    for size in (3 * u.arcsec, (2.5 * u.arcsec, 12 * u.pix)):
        cut = Cutout.from_images({"g": NDData(data, wcs=w)}, sky, size=size, bands="g",
                                 progress=False)
        ref = Cutout2D(data, sky, size, wcs=w, mode="partial", fill_value=np.nan)
        np.testing.assert_array_equal(cut.data[0, :, :, 0], ref.data)
    assert cut.shape[1:3] == (13, 12)  # 2.5" / 0.187" = 13.4 -> 13 rows
    with pytest.raises(ValueError, match="size"):
        Cutout.from_images({"g": NDData(data, wcs=w)}, sky, size=3 * u.kg, bands="g")


def test_nddata_mask_is_propagated():
    data, w = make_image(nan_at=())
    mask = np.zeros(data.shape, dtype=bool)
    mask[50:53, 40:45] = True
    cut = Cutout.from_images({"g": NDData(data, wcs=w, mask=mask)}, [[42.0, 51.0]], size=9,
                             bands="g", pixel_band="g", progress=False)
    ref = Cutout2D(mask.astype(float), (42.0, 51.0), 9, mode="partial", fill_value=1.0)
    np.testing.assert_array_equal(cut.mask[0, :, :, 0], ref.data.astype(bool))
    assert cut.mask[0, :, :, 0].sum() == 15


def test_compressed_and_scaled_fits_files(tmp_path):
    data, w = make_image(nan_at=())
    ints = np.round(data * 10).astype(np.int16)
    scaled = fits.PrimaryHDU(ints, header=w.to_header())
    scaled.header["BSCALE"] = 0.5
    scaled.header["BZERO"] = 100.0
    scaled.writeto(tmp_path / "scaled.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=w.to_header(),
                                                       quantize_level=0)]).writeto(
        tmp_path / "comp.fits")
    xy = edge_positions(data.shape, 20, seed=5)
    for name in ("scaled.fits", "comp.fits"):
        full = fits.getdata(tmp_path / name)  # scaled / decompressed by astropy
        cut = Cutout.from_images({"g": tmp_path / name}, xy, size=6, bands="g",
                                 pixel_band="g", progress=False)
        for i, (x, y) in enumerate(xy):
            ref = Cutout2D(full, (x, y), 6, mode="partial", fill_value=np.nan)
            np.testing.assert_array_equal(cut.data[i, :, :, 0], ref.data)


# --------------------------------------------------------------------------
# multi-extension (PAndAS-like) images
# --------------------------------------------------------------------------


def test_multi_extension_chooses_containing_ccd_and_masks_gaps(tmp_path):
    hdul, arrays = make_mef()
    path = tmp_path / "m001_g.fit"
    hdul.writeto(path)
    # sources: centre of each CCD, near a CCD edge (partial stamp), in the gap
    pts = [(30.0, 40.0, 0), (30.0, 40.0, 1), (30.0, 40.0, 2), (30.0, 40.0, 3),
           (58.6, 20.0, 0), (1.0, 78.9, 3)]
    sky = SkyCoord([pixel_to_skycoord(x, y, arrays[k][1], 0) for x, y, k in pts])
    gap = pixel_to_skycoord(63.5, 40.0, arrays[0][1], 0)  # between CCD0 and CCD1
    coords = SkyCoord([*sky, gap])
    with pytest.warns(OffImageWarning, match="1 of 7 positions"):
        cut = Cutout.from_images({"g": str(path)}, coords, size=13, bands=("g",),
                                 progress=False)
    for n, (_, _, k) in enumerate(pts):
        arr, w = arrays[k]
        ref = Cutout2D(arr, coords[n], 13, wcs=w, mode="partial", fill_value=np.nan)
        np.testing.assert_array_equal(cut.data[n, :, :, 0], ref.data)
        np.testing.assert_array_equal(cut.mask[n, :, :, 0], np.isnan(ref.data))
    assert 0 < cut.valid_fraction[4, 0] < 1 and 0 < cut.valid_fraction[5, 0] < 1
    # the gap source: fully masked, never a stamp from a neighbouring CCD
    assert cut.valid_fraction[6, 0] == 0
    assert np.all(np.isnan(cut.data[6])) and np.all(np.isnan(cut.offsets[6]))
    assert cut.stamp_wcs(6) is None


def test_multi_extension_overlap_picks_ccd_farthest_from_edge():
    hdul, arrays = make_mef(overlap=True)
    # CCD1 starts 20 px inside CCD0 in x (overlap); a source 3 px from CCD0's right
    # edge is 17+ px inside CCD1, so it must come from CCD1, and vice versa.
    a0, w0 = arrays[0]
    a1, w1 = arrays[1]
    near_edge_of_0 = pixel_to_skycoord(56.0, 40.0, w0, 0)
    near_edge_of_1 = pixel_to_skycoord(2.0, 40.0, w1, 0)
    cut = Cutout.from_images({"g": hdul}, SkyCoord([near_edge_of_0, near_edge_of_1]), size=5,
                             bands="g", progress=False)
    ref1 = Cutout2D(a1, near_edge_of_0, 5, wcs=w1, mode="partial", fill_value=np.nan)
    ref0 = Cutout2D(a0, near_edge_of_1, 5, wcs=w0, mode="partial", fill_value=np.nan)
    np.testing.assert_array_equal(cut.data[0, :, :, 0], ref1.data)
    np.testing.assert_array_equal(cut.data[1, :, :, 0], ref0.data)


def test_iter_from_images_matches_from_images():
    hdul, arrays = make_mef(band_seed=1)
    hdul_i, _ = make_mef(band_seed=2)
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 59, size=(23, 2))
    sky = pixel_to_skycoord(xy[:, 0], xy[:, 1], arrays[3][1], 0)
    images = {"g": hdul, "i": hdul_i}
    whole = Cutout.from_images(images, sky, size=8, progress=False)
    chunks = list(Cutout.iter_from_images(images, sky, size=8, chunk_size=5, progress=False))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    joined = Cutout.concatenate(chunks)
    np.testing.assert_array_equal(joined.data, whole.data)
    np.testing.assert_array_equal(joined.mask, whole.mask)
    np.testing.assert_array_equal(joined.offsets, whole.offsets)


def test_iter_from_images_memory_stays_near_one_chunk():
    import tracemalloc

    data, w = make_image(shape=(300, 300), nan_at=())
    img = {"g": NDData(data, wcs=w)}
    xy = np.random.default_rng(0).uniform(0, 299, size=(1200, 2))
    chunk_bytes = 100 * 32 * 32 * (4 + 1)

    def peak(fn):
        tracemalloc.start()
        fn()
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    def chunked():
        for part in Cutout.iter_from_images(img, xy, size=32, bands="g", pixel_band="g",
                                            chunk_size=100, progress=False):
            del part

    p_all = peak(lambda: Cutout.from_images(img, xy, size=32, bands="g", pixel_band="g",
                                            progress=False))
    p_chunk = peak(chunked)
    assert p_all > 12 * chunk_bytes  # the whole output
    assert p_chunk < 3 * chunk_bytes


def test_pixel_positions_in_multi_extension_need_extension():
    hdul, arrays = make_mef()
    with pytest.raises(ValueError, match="extension="):
        Cutout.from_images({"g": hdul}, [[10.0, 10.0]], size=5, bands="g", pixel_band="g")
    cut = Cutout.from_images({"g": hdul}, [[10.0, 10.0], [20.0, 30.0]], size=5, bands="g",
                             pixel_band="g", extension=[2, 1], progress=False)
    np.testing.assert_array_equal(cut.data[0, :, :, 0], arrays[2][0][8:13, 8:13])
    np.testing.assert_array_equal(cut.data[1, :, :, 0], arrays[1][0][28:33, 18:23])
    with pytest.raises(ValueError, match=r"in 0\.\.3 for band 'g'; row 1 has 4"):
        Cutout.from_images({"g": hdul}, [[10.0, 10.0], [20.0, 30.0]], size=5, bands="g",
                           pixel_band="g", extension=[2, 4])
    with pytest.raises(ValueError, match=r"one integer per position \(2\)"):
        Cutout.from_images({"g": hdul}, [[10.0, 10.0], [20.0, 30.0]], size=5, bands="g",
                           pixel_band="g", extension=[2, 1, 0])


def test_progress_is_off_by_default(capsys):
    data, w = make_image()
    img = {"g": NDData(data, wcs=w)}
    xy = np.random.default_rng(0).uniform(0, 80, size=(12, 2))
    Cutout.from_images(img, xy, size=5, bands="g", pixel_band="g", chunk_size=4)
    list(Cutout.iter_from_images(img, xy, size=5, bands="g", pixel_band="g", chunk_size=4))
    assert capsys.readouterr().err == ""
    Cutout.from_images(img, xy, size=5, bands="g", pixel_band="g", chunk_size=4,
                       progress=True)
    assert "cutouts" in capsys.readouterr().err


# --------------------------------------------------------------------------
# real WCS
# --------------------------------------------------------------------------


def test_dss_stamp_on_m31_nucleus(shared_data):
    from scipy.ndimage import gaussian_filter

    path = shared_data / "dss_m31.fits"
    cut = Cutout.from_images({"dss": path}, M31_CENTER, size=31, bands=("dss",),
                             progress=False)
    assert cut.valid_fraction[0, 0] == 1
    # The DSS bulge is saturated (a plateau at ~11800 counts with noise), so the
    # peak is measured on the image smoothed with a 3-pixel (108") Gaussian.
    full = fits.getdata(path).astype(np.float64)
    peak_y, peak_x = np.unravel_index(np.argmax(gaussian_filter(full, 3)), full.shape)
    stamp = gaussian_filter(cut.data[0, :, :, 0].astype(np.float64), 3, mode="nearest")
    sy, sx = np.unravel_index(np.argmax(stamp), stamp.shape)
    # the brightest pixel is the central one, the one touching the nucleus position
    cx, cy = 15 + cut.offsets[0]
    assert abs(sx - cx) < 1 and abs(sy - cy) < 1
    # and is the same image pixel as found independently on the whole image
    ox, oy = cut._wcsinfo.origin[0, 0]
    assert (sx + ox, sy + oy) == (peak_x, peak_y)
    # the stamp WCS puts M31's centre at the stamp centre + offset
    px, py = cut.wcs[0].world_to_pixel(M31_CENTER)
    np.testing.assert_allclose([px, py], [cx, cy], atol=1e-6)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_errors_are_specific(tmp_path):
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    pos = [[10.0, 10.0]]
    with pytest.raises(NoWCSError, match="celestial WCS"):
        Cutout.from_images({"g": fits.ImageHDU(data)}, M31_CENTER, size=5, bands="g")
    with pytest.raises(NoWCSError, match="bare array"):
        Cutout.from_images({"g": data}, M31_CENTER, size=5, bands="g")
    with pytest.raises(NoWCSError):
        Cutout.from_images({"g": NDData(data)}, M31_CENTER, size=5, bands="g")
    with pytest.raises(BandError, match=r"no image for band\(s\) \['i'\]"):
        Cutout.from_images({"g": hdu}, M31_CENTER, size=5, bands=("g", "i"))
    for bad in (0, -3, 2.5, (5, 0)):
        with pytest.raises(ValueError, match="size"):
            Cutout.from_images({"g": hdu}, pos, size=bad, bands="g", pixel_band="g")
    far = SkyCoord(RA0 + 1, DEC0 - 1, unit="deg")
    with pytest.raises(OffImageError, match="all 2 positions"):
        Cutout.from_images({"g": hdu}, SkyCoord([far, far]), size=5, bands="g")
    with pytest.raises(ImageShapeError, match="3 axes"):
        cube = fits.ImageHDU(np.zeros((2, 5, 5), "f4"))
        Cutout.from_images({"g": cube}, M31_CENTER, size=5, bands="g")
    with pytest.raises(ImageShapeError, match="mask shape"):
        Cutout.from_images({"g": NDData(data, wcs=w, mask=np.zeros((3, 3), bool))},
                           M31_CENTER, size=5, bands="g")
    with pytest.raises(ValueError, match="pixel_band"):
        Cutout.from_images({"g": hdu}, pos, size=5, bands="g")
    with pytest.raises(FileNotFoundError, match="nope.fits"):
        Cutout.from_images({"g": tmp_path / "nope.fits"}, M31_CENTER, size=5, bands="g")


def test_partly_off_image_warns_and_masks_fully():
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    inside = pixel_to_skycoord(20.0, 30.0, w, 0)
    outside = pixel_to_skycoord(-2.0, 30.0, w, 0)  # stamp would overlap the image
    with pytest.warns(OffImageWarning, match="1 of 2"):
        cut = Cutout.from_images({"g": hdu}, SkyCoord([inside, outside]), size=9, bands="g",
                                 progress=False)
    assert cut.valid_fraction[:, 0].tolist() == [1.0, 0.0]


def test_no_warning_leak_on_clean_input():
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cut = Cutout.from_images({"g": hdu}, pixel_to_skycoord(30, 30, w, 0), size=5,
                                 bands="g", progress=False)
    assert cut.valid_fraction[0, 0] == 1


# --------------------------------------------------------------------------
# issue 13: silent failures and weak errors
# --------------------------------------------------------------------------


def _header_with_cd(value):
    h = make_wcs().to_header()
    for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        h.remove(k, ignore_missing=True)
    h["CDELT1"] = h["CDELT2"] = 1.0
    for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        h[k] = value
    return h


def test_degenerate_wcs_in_a_header_is_refused(tmp_path):
    # astropy's cdfix turns an all-zero CD matrix into the identity: a position
    # 30 degrees away then still landed on the image with a full stamp
    data, _ = make_image(nan_at=())
    path = tmp_path / "zero_cd.fits"
    fits.PrimaryHDU(data, header=_header_with_cd(0.0)).writeto(path)
    far = SkyCoord(RA0 + 30, DEC0, unit="deg")
    with pytest.raises(NoWCSError, match=r"band 'g' file .*zero_cd\.fits.*degenerate"):
        Cutout.from_images({"g": path}, far, size=5, bands="g")
    with pytest.raises(NoWCSError, match=r"band 'i' HDU .*singular"):
        Cutout.from_images({"i": fits.ImageHDU(data, header=_header_with_cd(0.0))}, far,
                           size=5, bands="i")
    # a singular but non-zero CD matrix, and a multi-extension file
    h = _header_with_cd(1e-5)
    mef = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=make_wcs().to_header()),
                  fits.ImageHDU(data, header=h)]).writeto(mef)
    with pytest.raises(NoWCSError, match=r"band 'g' file .*mef\.fits' extension 2.*singular"):
        Cutout.from_images({"g": mef}, far, size=5, bands="g")
    # a zero CDELT with a PC matrix
    h = make_wcs().to_header()
    h["CDELT1"] = 0.0
    with pytest.raises(NoWCSError, match="band 'g' HDU"):
        Cutout.from_images({"g": fits.ImageHDU(data, header=h)}, far, size=5, bands="g")


@pytest.mark.parametrize("cd", [np.zeros((2, 2)), np.full((2, 2), np.nan),
                                [[1e-5, 2e-5], [2e-5, 4e-5]], [[np.inf, 0], [0, 1e-5]]])
def test_degenerate_wcs_object_is_refused(cd):
    data, _ = make_image(nan_at=())
    w = make_wcs()
    w.wcs.cd = cd
    with pytest.raises(NoWCSError, match="band 'g' NDData has a degenerate WCS"):
        Cutout.from_images({"g": NDData(data, wcs=w)}, SkyCoord(RA0 + 30, DEC0, unit="deg"),
                           size=5, bands="g")
    with pytest.raises(NoWCSError, match=r"wcs\[1\] has a degenerate WCS"):
        Cutout(np.zeros((2, 4, 4, 1)), bands="g", wcs=[make_wcs(), w])
    with pytest.raises(NoWCSError, match="wcs has a degenerate WCS"):
        Cutout(np.zeros((2, 4, 4, 1)), bands="g", wcs=w)


def test_duplicate_bands_are_refused_when_cutting():
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    sky = pixel_to_skycoord(30.0, 30.0, w, 0)
    with pytest.raises(BandError, match=r"repeats \['g'\]"):
        Cutout.from_images({"g": hdu}, sky, size=5, bands=("g", "g"))
    with pytest.raises(BandError, match=r"repeats \['g'\]"):
        next(Cutout.iter_from_images({"g": hdu}, sky, size=5, bands=("g", "g")))


def test_infinite_pixels_are_masked():
    data, w = make_image(nan_at=())
    data[30, 30] = np.inf
    data[31, 31] = -np.inf
    sky = pixel_to_skycoord(30.0, 30.0, w, 0)
    for img in (NDData(data, wcs=w), fits.ImageHDU(data, header=w.to_header())):
        # interior (block-gathered) and edge (sliced) stamps
        cut = Cutout.from_images({"g": img}, SkyCoord([sky, pixel_to_skycoord(1, 30, w, 0)]),
                                 size=7, bands="g")
        assert cut.mask[0, 3, 3, 0] and cut.mask[0, 4, 4, 0]
        assert cut.mask[0, ..., 0].sum() == 2
        assert cut.valid_fraction[0, 0] == 1 - 2 / 49


def test_truncated_image_file_names_file(tmp_path):
    data, w = make_image(nan_at=())
    path = tmp_path / "full.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=w.to_header()),
                  fits.ImageHDU(data, header=w.to_header())]).writeto(path)
    raw = path.read_bytes()
    for cut_at in (len(raw) - 3000, len(raw) // 2, 2880 * 2 + 100):
        trunc = tmp_path / f"trunc{cut_at}.fits"
        trunc.write_bytes(raw[:cut_at])
        with pytest.raises(CorruptFileError, match=rf"band 'g' file .*trunc{cut_at}\.fits"):
            Cutout.from_images({"g": trunc}, [[30.0, 30.0]], size=5, bands="g",
                               pixel_band="g", extension=[0])
    # an HDUList opened by the caller from a truncated file: the pixels cannot be read
    trunc = tmp_path / "short.fits"
    trunc.write_bytes(raw[: len(raw) - 3000])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own truncation warning
        with fits.open(trunc) as hdul:
            with pytest.raises(CorruptFileError, match="band 'g' HDUList extension 2"):
                Cutout.from_images({"g": hdul}, [[30.0, 30.0]], size=5, bands="g",
                                   pixel_band="g", extension=[1])
    for name, content in (("text.fits", b"not a FITS file\n" * 10), ("empty.fits", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CorruptFileError, match=rf"band 'g'.*{name}"):
            Cutout.from_images({"g": tmp_path / name}, M31_CENTER, size=5, bands="g")


def test_stamps_too_large_for_memory_are_refused_up_front(monkeypatch):
    from m31clusters.cutout import extract

    data, w = make_image(nan_at=())
    img = {"g": NDData(data, wcs=w), "i": NDData(data, wcs=w)}
    xy = np.tile([[30.0, 40.0]], (3000, 1))
    # 3000 stamps of 4096 x 4096 in 2 bands: 469 GiB of data and mask, more
    # than this machine has
    assert 2**30 < extract._physical_memory() < 3000 * 4096**2 * 2 * 5
    with pytest.raises(StampMemoryError, match=r"3000 stamps .* would need 468\.8 GiB"):
        Cutout.from_images(img, xy, size=4096, pixel_band="g")
    # the limit is the machine's memory, named in the message
    monkeypatch.setattr(extract, "_physical_memory", lambda: 64 * 2**30)
    with pytest.raises(StampMemoryError, match=r"need 78\.1 GiB .* machine's 64\.0 GiB"):
        Cutout.from_images(img, xy[:500], size=4096, pixel_band="g")
    with pytest.raises(StampMemoryError, match=r"a chunk of 3000 stamps"):
        next(Cutout.iter_from_images(img, xy, size=4096, pixel_band="g", chunk_size=5000))
    assert issubclass(StampMemoryError, ValueError)
    # chunks that fit are fine, whatever the total
    first = next(Cutout.iter_from_images(img, xy, size=4096, pixel_band="g", chunk_size=1,
                                         progress=False))
    assert first.shape == (1, 4096, 4096, 2)


def test_non_finite_pixel_position_names_row():
    data, w = make_image()
    with pytest.raises(ValueError, match=r"pixel positions \(x, y\) of shape \(N, 2\)"):
        Cutout.from_images({"g": NDData(data, wcs=w)}, [["a", "b"]], size=5, bands="g",
                           pixel_band="g")
    with pytest.raises(ValueError, match=r"first at row 1: \[nan, 3\.0\]"):
        Cutout.from_images({"g": NDData(data, wcs=w)}, [[1.0, 2.0], [np.nan, 3.0]], size=5,
                           bands="g", pixel_band="g")
