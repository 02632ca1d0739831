"""Tests of m31clusters.cutout.normalize."""

import json

import numpy as np
import pytest
from _cutout_helpers import (
    random_cutout,
)
from astropy.visualization import ZScaleInterval

from m31clusters.cutout import NORMALIZATIONS, Cutout


def _valid(cut, i, b):
    v = cut.data[i, :, :, b].astype(np.float64)
    return np.where(cut.mask[i, :, :, b], np.nan, v)


@pytest.mark.parametrize("method", ["asinh", "asinh_flux", "percentile", "standardize",
                                    "zscale", "none"])
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
            elif method == "asinh_flux":  # default scale 1: the stamp's own brightness
                ref = np.arcsinh(x - np.nanmedian(x))
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
    assert set(NORMALIZATIONS) == {"asinh", "asinh_flux", "zscale", "percentile",
                                   "standardize", "none"}
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


def test_asinh_flux_keeps_brightness_and_colour():
    """Fixed per-band scales: a source twice as bright in g as in i stays so."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 1.0, (2, 9, 9, 2))
    x[0, 4, 4] += [400.0, 100.0]   # bright, blue
    x[1, 4, 4] += [40.0, 10.0]     # ten times fainter, same colour
    cut = Cutout(x.astype("f4"), bands=("g", "i"))
    out = cut.normalize("asinh_flux", scale=[4.0, 1.0])
    assert out.normalization == {"method": "asinh_flux", "scale": [4.0, 1.0], "fill_value": 0.0}
    for i in range(2):
        for b, s in enumerate((4.0, 1.0)):
            v = x[i, :, :, b]
            ref = np.arcsinh((v - np.median(v)) / s)
            np.testing.assert_allclose(out.data[i, :, :, b], ref, rtol=2e-6, atol=2e-6)
    # with scales in the ratio of the bands' fluxes the peaks are equal (colour kept) and
    # the fainter stamp stays fainter (brightness kept); "asinh" equalises both away
    peak = out.data[:, 4, 4]
    np.testing.assert_allclose(peak[:, 0], peak[:, 1], rtol=0.02)
    assert peak[0, 0] > peak[1, 0] + 2
    # a scalar scale is used for every band; the record reproduces the transform
    one = cut.normalize("asinh_flux", scale=2)
    np.testing.assert_array_equal(cut.normalize(**one.normalization).data, one.data)
    for bad, match in ((-1.0, "positive"), ([1.0, float("nan")], "positive"), ([], "scale"),
                       ("x", "must be a number"), ([1.0, 2.0, 3.0], "3 scales for stamps of 2")):
        with pytest.raises(ValueError, match=match):
            cut.normalize("asinh_flux", scale=bad)


def test_zeropoint_scales():
    from m31clusters.cutout import zeropoint_scales

    s = zeropoint_scales({"g": 34.3258, "i": 33.7258}, scale=50.0)
    # independent: a g = i = 20 source gives these counts; its two bands' counts over the
    # scales are then equal
    counts = {b: 10 ** (0.4 * (zp - 20.0)) for b, zp in (("g", 34.3258), ("i", 33.7258))}
    assert s[0] == 50.0
    assert counts["g"] / s[0] == pytest.approx(counts["i"] / s[1], rel=1e-12)
    assert zeropoint_scales({"g": 30.0, "i": 31.0}, scale=2, reference="i") == \
        pytest.approx([2 * 10 ** -0.4, 2.0])
    for bad, kw, match in (({}, {}, "non-empty"), ({"g": float("nan")}, {}, "band 'g'"),
                           ({"g": 30.0}, {"scale": 0}, "scale must be positive"),
                           ({"g": 30.0}, {"reference": "r"}, "reference band 'r'"),
                           ({"g": "x"}, {}, "must be a number")):
        with pytest.raises(ValueError, match=match):
            zeropoint_scales(bad, **kw)
