"""Tests of m31clusters.cutout.Cutout."""

import json
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NDData
from astropy.visualization import ZScaleInterval
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_skycoord

from m31clusters.cutout import NORMALIZATIONS, Cutout
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

RA0, DEC0 = 10.6847, 41.2690


def make_wcs(crpix=(50.0, 60.0), scale_arcsec=0.187, rot_deg=0.0, crval=(RA0, DEC0)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = list(crpix)
    s = scale_arcsec / 3600.0
    c, n = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    w.wcs.cd = [[-s * c, s * n], [s * n, s * c]]
    return w


def make_image(shape=(120, 90), seed=0, wcs=None, nan_at=((10, 12),)):
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 5.0, size=shape).astype(np.float32)
    for yx in nan_at:
        data[yx] = np.nan
    return data, (wcs if wcs is not None else make_wcs())


def edge_positions(shape, n_random, seed):
    ny, nx = shape
    rng = np.random.default_rng(seed)
    xy = np.column_stack(
        [rng.uniform(-0.5, nx - 0.5, n_random), rng.uniform(-0.5, ny - 0.5, n_random)]
    )
    corners = [
        [-0.4999, -0.4999], [0.0, 0.0], [nx - 1.0, 0.0], [0.0, ny - 1.0], [nx - 1.0, ny - 1.0],
        [nx - 0.5, ny - 0.5], [0.5, 0.5], [3.5, ny - 2.5], [nx / 2, 0.2], [nx - 1.5, ny / 2],
    ]
    return np.vstack([corners, xy])


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


def make_mef(band_seed=0, ny=80, nx=60, gap=8, overlap=False):
    """2 x 2 CCDs sharing one tangent point, separated by chip gaps (MegaCam-like)."""
    rng = np.random.default_rng(band_seed)
    hdus = [fits.PrimaryHDU()]
    arrays = []
    for row in range(2):
        for col in range(2):
            # lower-left corner of this CCD in a global pixel frame
            gx = col * (nx + gap) - (nx if overlap and col else 0) // 3
            gy = row * (ny + gap)
            w = make_wcs(crpix=(nx + gap / 2 - gx + 1, ny + gap / 2 - gy + 1))
            arr = rng.normal(1000.0 * (1 + 2 * row + col), 3.0, size=(ny, nx)).astype("f4")
            arrays.append((arr, w))
            hdus.append(fits.ImageHDU(arr, header=w.to_header(), name=f"CCD{2 * row + col}"))
    return fits.HDUList(hdus), arrays


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


# --------------------------------------------------------------------------
# container behaviour
# --------------------------------------------------------------------------


def random_cutout(n=12, size=10, seed=0, bands=("g", "i")):
    rng = np.random.default_rng(seed)
    data = rng.normal(50, 4, size=(n, size, size, len(bands)))
    mask = rng.random(data.shape) < 0.05
    pos = SkyCoord(rng.uniform(10, 11, n), rng.uniform(41, 42, n), unit="deg")
    off = rng.uniform(-0.5, 0.5, size=(n, 2))
    return Cutout(data, bands=bands, mask=mask, positions=pos, offsets=off,
                  meta={"zeropoints": {"g": 30.0, "i": 29.5}})


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


# --------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------


def _valid(cut, i, b):
    v = cut.data[i, :, :, b].astype(np.float64)
    return np.where(cut.mask[i, :, :, b], np.nan, v)


@pytest.mark.parametrize("method", ["asinh", "percentile", "standardize", "zscale", "none"])
@pytest.mark.parametrize("bands", [("g", "i"), ("i",)])
def test_normalize_against_independent_computation(method, bands):
    cut = random_cutout(n=4).select_bands(bands)
    out = cut.normalize(method, fill_value=-1.0)
    assert out.normalization["method"] == method
    assert out.normalization["fill_value"] == -1.0
    json.dumps(out.normalization)
    assert np.all(out.data[cut.mask] == -1.0)
    for i in range(len(cut)):
        for b in range(len(bands)):
            x = _valid(cut, i, b)
            if method == "asinh":
                med = np.nanmedian(x)
                sig = 1.4826 * np.nanmedian(np.abs(x - med))
                ref = np.arcsinh((x - med) / sig)
            elif method == "percentile":
                lo, hi = np.nanpercentile(x, [0.5, 99.5])
                ref = np.clip((x - lo) / (hi - lo), 0, 1)
            elif method == "standardize":
                ref = (x - np.nanmean(x)) / np.nanstd(x)
            elif method == "zscale":
                lo, hi = ZScaleInterval().get_limits(x[np.isfinite(x)])
                ref = np.clip((x - lo) / (hi - lo), 0, 1)
            else:
                ref = x
            ok = ~cut.mask[i, :, :, b]
            np.testing.assert_allclose(out.data[i, :, :, b][ok], ref[ok], rtol=2e-6, atol=2e-6)
    # the recorded dict reproduces the transform exactly
    again = cut.normalize(**out.normalization)
    np.testing.assert_array_equal(again.data, out.data)
    with pytest.raises(ValueError, match="already normalised"):
        out.normalize(method)


@pytest.mark.parametrize("size", [5, 40, 64])
@pytest.mark.parametrize("params", [{}, {"contrast": 0.1, "n_samples": 300, "krej": 1.5,
                                         "max_iterations": 8, "max_reject": 0.2}])
def test_zscale_matches_astropy_stamp_by_stamp(size, params):
    # zscale runs vectorised over stamps: compare every stamp and band with
    # astropy's ZScaleInterval, with stars, gradients, masks of varying size
    # (stamps with different numbers of valid pixels) and the sampling stride
    rng = np.random.default_rng(7)
    n = 60
    data = rng.normal(100.0, 5.0, size=(n, size, size, 2))
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for _ in range(rng.integers(0, 4)):
            x0, y0 = rng.uniform(0, size, 2)
            data[i, ..., 0] += rng.uniform(50, 5e3) * np.exp(
                -((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * rng.uniform(0.8, 3) ** 2))
        data[i, ..., 1] += rng.uniform(-2, 2) * xx  # gradient
    mask = np.zeros(data.shape, dtype=bool)
    for i in range(0, n, 3):
        mask[i, : rng.integers(1, size), : rng.integers(1, size), i % 2] = True
    mask[1] = True  # fully masked
    data[2, ..., 1] = 3.0  # constant
    cut = Cutout(data, bands=("g", "i"), mask=mask)
    out = cut.normalize("zscale", fill_value=-1.0, **params)
    interval = ZScaleInterval(**params)
    for i in range(n):
        for b in range(2):
            ok = ~mask[i, ..., b]
            if not ok.any():
                assert np.all(out.data[i, ..., b] == -1.0)
                continue
            x = data[i, ..., b].astype(np.float32).astype(np.float64)
            lo, hi = interval.get_limits(x[ok])
            ref = np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(x)
            np.testing.assert_allclose(out.data[i, ..., b][ok], ref[ok], rtol=1e-5, atol=1e-5)


def test_normalize_parameters_and_edge_cases():
    cut = random_cutout(n=2)
    p = cut.normalize("percentile", lower=5, upper=95)
    assert p.normalization == {"method": "percentile", "lower": 5.0, "upper": 95.0,
                               "fill_value": 0.0}
    a = cut.normalize("asinh", softening=3.0)
    assert a.normalization["softening"] == 3.0
    assert set(NORMALIZATIONS) == {"asinh", "zscale", "percentile", "standardize", "none"}
    with pytest.raises(ValueError, match="unknown normalisation method"):
        cut.normalize("log")
    with pytest.raises(ValueError, match="unknown parameter"):
        cut.normalize("asinh", lower=3)
    with pytest.raises(ValueError, match="lower < upper"):
        cut.normalize("percentile", lower=90, upper=10)
    # constant and fully masked stamps give finite values / the fill value
    const = Cutout(np.stack([np.full((5, 5, 1), 7.0), np.full((5, 5, 1), np.nan)]), bands="g")
    for method in ("asinh", "percentile", "standardize", "zscale"):
        n = const.normalize(method, fill_value=0.5)
        assert np.all(n.data[0] == 0.0) and np.all(n.data[1] == 0.5)


# --------------------------------------------------------------------------
# file I/O
# --------------------------------------------------------------------------


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


def test_plot_returns_figure():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    cut = random_cutout(n=6)
    fig = cut.plot(n=4, seed=1, labels=[str(i) for i in range(6)])
    assert len([a for a in fig.axes if a.images]) == 4
    fig2 = cut.plot(n=3, band="i")
    assert len([a for a in fig2.axes if a.images]) == 3
    plt.close("all")


def test_write_refuses_non_json_meta(tmp_path):
    cut = Cutout(np.ones((1, 4, 4, 1)), bands="g", meta={"bad": object()})
    with pytest.raises(TypeError, match="JSON"):
        cut.write(tmp_path / "x.fits")
    assert not (tmp_path / "x.fits").exists()


def test_no_warning_leak_on_clean_input():
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cut = Cutout.from_images({"g": hdu}, pixel_to_skycoord(30, 30, w, 0), size=5,
                                 bands="g", progress=False)
    assert cut.valid_fraction[0, 0] == 1


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


def test_duplicate_bands_are_refused_on_every_path(tmp_path):
    data, w = make_image()
    hdu = fits.ImageHDU(data, header=w.to_header())
    sky = pixel_to_skycoord(30.0, 30.0, w, 0)
    with pytest.raises(BandError, match=r"repeats \['g'\]"):
        Cutout.from_images({"g": hdu}, sky, size=5, bands=("g", "g"))
    with pytest.raises(BandError, match=r"repeats \['g'\]"):
        next(Cutout.iter_from_images({"g": hdu}, sky, size=5, bands=("g", "g")))
    cut = random_cutout(n=3)
    with pytest.raises(BandError, match=r"repeats \['i'\]"):
        cut.select_bands(("i", "g", "i"))
    with pytest.raises(BandError, match="unique"):
        Cutout(np.zeros((2, 4, 4, 2)), bands=("g", "g"))
    with pytest.raises(BandError, match="at least one band"):
        Cutout(np.zeros((2, 4, 4, 0)), bands=())
    # a file whose band list repeats (written by hand): read names the file
    path = tmp_path / "c.fits"
    cut.write(path)
    with fits.open(path, mode="update") as f:
        f[0].header["BANDS"] = json.dumps(["g", "g"])
    with pytest.raises(CorruptFileError, match=r"c\.fits.*repeats \['g'\]"):
        Cutout.read(path)
    # concatenate only joins valid Cutouts, whose bands are unique
    assert Cutout.concatenate([cut, cut]).bands == ("g", "i")


def test_infinite_pixels_are_masked():
    data, w = make_image(nan_at=())
    data[30, 30] = np.inf
    data[31, 31] = -np.inf
    sky = pixel_to_skycoord(30.0, 30.0, w, 0)
    for img in (NDData(data, wcs=w), fits.ImageHDU(data, header=w.to_header())):
        # interior (block-gathered) and edge (sliced) stamps
        cut = Cutout.from_images({"g": img}, SkyCoord([sky, pixel_to_skycoord(1, 30, w, 0)]),
                                 size=7, bands="g", progress=False)
        assert cut.mask[0, 3, 3, 0] and cut.mask[0, 4, 4, 0]
        assert cut.mask[0, ..., 0].sum() == 2
        assert cut.valid_fraction[0, 0] == 1 - 2 / 49
    raw = np.ones((2, 4, 4, 1))
    raw[0, 1, 1, 0] = np.inf
    raw[1, 2, 2, 0] = -np.inf
    cut = Cutout(raw, bands="g")
    assert cut.mask.sum() == 2 and np.all(cut.valid_fraction == 15 / 16)
    # and normalisation ignores them (a finite result, the fill value there)
    norm = cut.normalize("standardize", fill_value=-3.0)
    assert np.all(np.isfinite(norm.data)) and norm.data[0, 1, 1, 0] == -3.0


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


def test_stamps_too_large_for_memory_are_refused_up_front():
    data, w = make_image(nan_at=())
    img = {"g": NDData(data, wcs=w), "i": NDData(data, wcs=w)}
    xy = np.tile([[30.0, 40.0]], (3000, 1))
    # 3000 stamps of 4096 x 4096 in 2 bands: 469 GiB of data and mask
    with pytest.raises(StampMemoryError, match=r"3000 stamps .* would need 468\.8 GiB"):
        Cutout.from_images(img, xy, size=4096, pixel_band="g")
    with pytest.raises(StampMemoryError, match=r"a chunk of 3000 stamps"):
        next(Cutout.iter_from_images(img, xy, size=4096, pixel_band="g", chunk_size=5000))
    assert issubclass(StampMemoryError, ValueError)
    # chunks that fit are fine, whatever the total
    first = next(Cutout.iter_from_images(img, xy, size=4096, pixel_band="g", chunk_size=1,
                                         progress=False))
    assert first.shape == (1, 4096, 4096, 2)


def test_non_finite_pixel_position_names_row():
    data, w = make_image()
    with pytest.raises(ValueError, match=r"first at row 1: \[nan, 3\.0\]"):
        Cutout.from_images({"g": NDData(data, wcs=w)}, [[1.0, 2.0], [np.nan, 3.0]], size=5,
                           bands="g", pixel_band="g")
