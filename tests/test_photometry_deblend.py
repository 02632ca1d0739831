"""
The deblending of `detect_sources` against photutils' `deblend_sources`,
computed independently here on the same smoothed images: the same
segmentation, pixel for pixel and label for label, on crowded fields, on
saturated stars, on segments with a non-positive minimum (photutils' linear
levels), on a segment with more than 200 markers (photutils starts it again
with linear levels) and with parts below the contrast limit.
"""

import warnings

import numpy as np
import pytest
from astropy.nddata import NDData
from astropy.utils.exceptions import AstropyUserWarning

from m31clusters.photometry import detect_sources

pytest.importorskip("skimage")

from photutils.segmentation import SegmentationImage, deblend_sources  # noqa: E402
from photutils.segmentation import detect_sources as photutils_detect  # noqa: E402
from test_photometry import PIX, SKY, _observe, _render_gaussian, _wcs  # noqa: E402

from m31clusters.photometry._deblend import _deblend_sources  # noqa: E402


def _photutils(data, segm, n_pixels, labels=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        return deblend_sources(data, segm, n_pixels, labels=labels, progress_bar=False)


def _blobs(shape, n, rng, *, sigma=(1.0, 3.0), amp=(0.5, 50.0)):
    """Gaussian blobs on zero: a smoothed-image stand-in with many blends."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    for _ in range(n):
        x, y = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        s, a = rng.uniform(*sigma), 10 ** rng.uniform(*np.log10(amp))
        img += a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s**2))
    return img


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_segmentation_as_photutils_on_crowded_images(seed):
    rng = np.random.default_rng(seed)
    data = _blobs((160, 200), 260, rng) + rng.normal(0, 0.02, (160, 200))
    segm = photutils_detect(data, 0.3, 5)
    labels = segm.labels[:: 2] if seed == 2 else None  # a subset, as detect_sources passes
    ref = _photutils(data, segm, 5, labels)
    out = _deblend_sources(data, segm, 5, labels)
    assert ref.n_labels > segm.n_labels  # blends were split
    np.testing.assert_array_equal(out.data, ref.data)


def test_saturated_plateaus_and_faint_parts():
    rng = np.random.default_rng(3)
    data = np.minimum(_blobs((120, 120), 80, rng, amp=(0.5, 500.0)), 60.0)  # flat tops
    data += _blobs((120, 120), 40, rng, sigma=(0.7, 1.0), amp=(0.02, 0.05))  # tiny bumps
    segm = photutils_detect(data, 0.05, 5)
    ref = _photutils(data, segm, 5)
    np.testing.assert_array_equal(_deblend_sources(data, segm, 5).data, ref.data)
    # the contrast criterion was at work: photutils with contrast 0 keeps more parts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        loose = deblend_sources(data, segm, 5, contrast=0.0, progress_bar=False)
    assert loose.n_labels > ref.n_labels


def test_non_positive_minimum_uses_linear_levels():
    rng = np.random.default_rng(4)
    data = _blobs((80, 80), 12, rng, amp=(5.0, 50.0)) - 0.5
    segm = SegmentationImage(np.ones(data.shape, dtype=np.int32))  # one segment, min < 0
    with pytest.warns(AstropyUserWarning, match="linear"):
        ref = deblend_sources(data, segm, 5, progress_bar=False)
    assert ref.n_labels > 1
    np.testing.assert_array_equal(_deblend_sources(data, segm, 5).data, ref.data)


def test_more_than_200_markers_start_again_with_linear_levels():
    yy, xx = np.mgrid[:130, :130]
    data = np.full((130, 130), 1.0)
    for y in range(5, 130, 8):
        for x in range(5, 130, 8):  # 16 x 16 bumps on a pedestal
            data += (2.0 + 0.01 * (x + y)) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)
    segm = SegmentationImage(np.ones(data.shape, dtype=np.int32))
    with pytest.warns(AstropyUserWarning, match="linear"):
        ref = deblend_sources(data, segm, 5, progress_bar=False)
    assert ref.info["warnings"]["nmarkers"]["input_labels"].tolist() == [1]
    np.testing.assert_array_equal(_deblend_sources(data, segm, 5).data, ref.data)


def test_segments_with_fewer_than_two_markers_stay_whole():
    yy, xx = np.mgrid[:40, :40]
    data = 10 * np.exp(-((xx - 20) ** 2 + (yy - 20) ** 2) / 8.0) + 0.5
    data[5, 5] = 3.0  # a one-pixel second peak: smaller than n_pixels, never a marker
    segm = SegmentationImage(np.ones((40, 40), dtype=np.int32))
    ref = _photutils(data, segm, 5)
    out = _deblend_sources(data, segm, 5)
    assert ref.n_labels == out.n_labels == 1
    np.testing.assert_array_equal(out.data, ref.data)


def test_detect_sources_gives_photutils_catalogue(monkeypatch):
    """The whole detection, with photutils' deblending in place of ours: the same table."""
    import m31clusters.photometry.detection as detection

    rng = np.random.default_rng(5)
    shape = (300, 300)
    n = 500
    x, y = rng.uniform(5, 295, n), rng.uniform(5, 295, n)
    flux = 10 ** rng.uniform(3, 5.5, n)
    model = np.minimum(SKY + _render_gaussian(shape, x, y, flux, 0.6 / PIX), 3e4)
    img = NDData(_observe(model, rng), wcs=_wcs(shape))
    ours = detect_sources(img, box_size=50)
    monkeypatch.setattr(detection, "_deblend_sources",
                        lambda data, segm, n_pixels, labels, progress: _photutils(
                            data, segm, n_pixels, labels))
    theirs = detect_sources(img, box_size=50)
    assert len(ours) == len(theirs) > 250
    for name in ours.colnames:
        if name == "coord":
            np.testing.assert_array_equal(ours[name].ra.deg, theirs[name].ra.deg)
        else:
            np.testing.assert_array_equal(np.asarray(ours[name]), np.asarray(theirs[name]))


def test_detection_table_equals_photutils_source_catalog():
    """Centroids, flux, area and FWHM of detect_sources against photutils' SourceCatalog."""
    from astropy import units as u
    from photutils.segmentation import SourceCatalog

    import m31clusters.photometry.detection as detection
    from m31clusters.photometry._image import _bad_pixels, _image, _pixel_scale

    rng = np.random.default_rng(8)
    shape = (240, 260)
    n = 300
    x, y = rng.uniform(5, 255, n), rng.uniform(5, 235, n)
    flux = 10 ** rng.uniform(3, 5.5, n)
    data = _observe(np.minimum(SKY + _render_gaussian(shape, x, y, flux, 0.6 / PIX), 3e4), rng)
    data[100:104, 30:200] = np.nan  # a bad column block through sources
    mask = np.zeros(shape, dtype=bool)
    mask[:, 120:123] = True
    img = NDData(data, wcs=_wcs(shape))
    found = detect_sources(img, box_size=40, mask=mask)
    # photutils on the same stages
    arr, wcs, nd_mask, _ = _image(img, None)
    bad = _bad_pixels(arr, nd_mask) | mask
    sub, rms = detection._background(arr, bad, 40, 3)
    k1, kernel = detection._kernel(3.5)
    conv = detection._smooth(sub, k1)
    segm = detection._segment(conv, 5 * np.where(bad, np.inf, rms * np.sqrt(np.sum(kernel**2))),
                              bad, 5)
    segm = detection._deblend(conv, segm, 5, None, False)
    cat = SourceCatalog(sub, segm, convolved_data=conv, mask=bad, wcs=wcs)
    xs, ys = np.asarray(cat.x_centroid, float), np.asarray(cat.y_centroid, float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    assert len(found) == ok.sum() > 200
    np.testing.assert_array_equal(found["id"], np.asarray(cat.labels)[ok])
    np.testing.assert_allclose(found["x"], xs[ok], rtol=0, atol=1e-9)
    np.testing.assert_allclose(found["y"], ys[ok], rtol=0, atol=1e-9)
    np.testing.assert_allclose(found["flux"], np.asarray(cat.segment_flux, float)[ok],
                               rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(found["area"]), u.Quantity(cat.area).value[ok])
    fwhm = u.Quantity(cat.fwhm).value[ok] * _pixel_scale(wcs)
    np.testing.assert_allclose(np.asarray(found["fwhm"]), fwhm, rtol=1e-12,
                               equal_nan=True)
