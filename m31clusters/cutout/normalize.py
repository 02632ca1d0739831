"""
Per-stamp, per-band normalisation of stamps.

`normalize_stamps` is the transform behind `Cutout.normalize
<m31clusters.cutout.Cutout.normalize>`; `NORMALIZATIONS` lists its methods
and their default parameters, and `check_normalization` completes and
checks the dict that records a normalisation, so that it can be repeated
exactly.  Statistics use only the valid pixels of one band of one stamp
(not masked, finite).  After the transform, invalid pixels are set to the
fill value; a stamp band with no valid pixel is all fill value, and where
the scale of a stamp band is zero or undefined (e.g. a constant stamp) it is
replaced by 1 so that the result is finite.

Methods (``x`` a pixel, statistics over the valid pixels of one
band of one stamp):

``"asinh"`` (parameter ``softening``, default 1)
    ``arcsinh((x - median) / (softening * sigma))`` with
    ``sigma = 1.4826 * median(|x - median|)`` (robust standard
    deviation).
``"asinh_flux"`` (parameter ``scale``, default 1; a number or one per band)
    ``arcsinh((x - median) / scale)`` with a *fixed* scale in image units
    instead of the stamp's noise: unlike ``"asinh"`` it keeps how bright a
    stamp is and, with scales in the ratio of the bands' zero-point fluxes
    (``scale_b = s * 10**(0.4 * (ZP_b - ZP_ref))``), its colour, which
    tell clusters from background galaxies.
``"zscale"`` (parameters of `~astropy.visualization.ZScaleInterval`)
    ``clip((x - z1) / (z2 - z1), 0, 1)`` with the IRAF zscale
    limits ``z1, z2`` (vectorised over stamps, but slower than the others).
``"percentile"`` (``lower``, ``upper`` in percent, default 0.5, 99.5)
    ``clip((x - p_lower) / (p_upper - p_lower), 0, 1)``, percentiles
    with numpy's linear rule.
``"standardize"``
    ``(x - mean) / std``.
``"none"``
    No change except the fill.
"""

import json
from collections.abc import Mapping

import numpy as np

from ..utils._stamps import sorted_quantile, zscale_limits

__all__ = ["NORMALIZATIONS", "check_normalization", "normalize_stamps", "zeropoint_scales"]

#: Normalisation methods of `Cutout.normalize` and their default parameters.
NORMALIZATIONS = {
    "asinh": {"softening": 1.0},
    "asinh_flux": {"scale": 1.0},
    "zscale": {
        "contrast": 0.25,
        "n_samples": 1000,
        "max_reject": 0.5,
        "min_npixels": 5,
        "krej": 2.5,
        "max_iterations": 5,
    },
    "percentile": {"lower": 0.5, "upper": 99.5},
    "standardize": {},
    "none": {},
}


def normalize_stamps(data, mask, config):
    """
    Normalise stamps per stamp and band, and fill invalid pixels.

    Parameters
    ----------
    data : ndarray, shape (N, H, W, C)
        Raw pixel values.
    mask : ndarray of bool, shape (N, H, W, C)
        True where a pixel is invalid (non-finite pixels are invalid too).
    config : dict
        A normalisation dict from `check_normalization`.

    Returns
    -------
    ndarray of float32, shape (N, H, W, C)
        The transform of `Cutout.normalize <m31clusters.cutout.Cutout.normalize>`,
        ``config["fill_value"]`` at invalid pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout.normalize import check_normalization, normalize_stamps
    >>> x = np.arange(8.0).reshape(1, 2, 4, 1)
    >>> mask = np.zeros(x.shape, bool); mask[0, 0, 0, 0] = True
    >>> out = normalize_stamps(x, mask, check_normalization({"method": "percentile",
    ...                                                      "lower": 0, "upper": 100}))
    >>> out[0, :, :, 0]
    array([[0.        , 0.        , 0.16666667, 0.33333334],
           [0.5       , 0.6666667 , 0.8333333 , 1.        ]], dtype=float32)
    """
    n, h, w, c = data.shape
    out = np.empty(data.shape, dtype=np.float32)
    # small blocks keep the float64 temporaries in cache
    block = max(1, 2**18 // max(1, h * w * c))
    for start in range(0, n, block):
        sl = slice(start, start + block)
        out[sl] = _normalize_block(data[sl], mask[sl], config)
    return out


def zeropoint_scales(zeropoints, *, scale=50.0, reference=None):
    """
    Per-band scales of the ``"asinh_flux"`` normalisation from zero points.

    ``scale_b = scale * 10**(0.4 * (ZP_b - ZP_ref))``: the same physical
    flux in every band, so that the normalised stamps keep the sources'
    colours as well as their brightness.

    Parameters
    ----------
    zeropoints : dict
        ``{band: zero point}`` (AB mag of one image unit per second, e.g. the
        ``MAGZPT`` header card of a PAndAS stack), in the stamps' band order.
    scale : float
        Scale of the reference band, in its image units (about the sky
        noise of a pixel keeps faint sources visible).
    reference : str, optional
        The reference band (default: the first).

    Returns
    -------
    list of float
        One scale per band, in the order of *zeropoints*.

    Examples
    --------
    >>> from m31clusters.cutout.normalize import zeropoint_scales
    >>> s = zeropoint_scales({"g": 34.3258, "i": 33.7258})
    >>> [round(v, 2) for v in s]
    [50.0, 28.77]
    """
    if not hasattr(zeropoints, "items") or not zeropoints:
        raise ValueError(f"zeropoints must be a non-empty dict {{band: zero point}}, got "
                         f"{zeropoints!r}")
    zp = {b: _number(f"zero point of band {b!r}", v) for b, v in zeropoints.items()}
    bad = [b for b, v in zp.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(f"zero point of band {bad[0]!r} must be finite, got {zp[bad[0]]}")
    scale = _number("scale", scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    ref = next(iter(zp)) if reference is None else reference
    if ref not in zp:
        raise ValueError(f"reference band {ref!r} is not one of {list(zp)}")
    return [scale * 10 ** (0.4 * (v - zp[ref])) for v in zp.values()]


def check_normalization(config):
    """
    Validate and complete a normalisation dict (defaults filled in).

    Parameters
    ----------
    config : dict
        ``{"method": name, **parameters, "fill_value": value}``; missing
        parameters get the defaults of `NORMALIZATIONS`, a missing
        ``fill_value`` is 0 and ``None`` means NaN.

    Returns
    -------
    dict
        The JSON-serialisable dict stored as `Cutout.normalization
        <m31clusters.cutout.Cutout.normalization>`.

    Raises
    ------
    ValueError
        If the method is unknown, a parameter is unknown or out of range.

    Examples
    --------
    >>> from m31clusters.cutout.normalize import check_normalization
    >>> check_normalization({"method": "percentile", "upper": 99})
    {'method': 'percentile', 'lower': 0.5, 'upper': 99.0, 'fill_value': 0.0}
    """
    if not isinstance(config, Mapping) or "method" not in config:
        raise ValueError(f"normalization must be a dict with a 'method' key, got {config!r}")
    config = dict(config)
    method = config.pop("method")
    if method not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalisation method {method!r}; choose one of {list(NORMALIZATIONS)}"
        )
    fill = config.pop("fill_value", 0.0)
    if fill is None:
        fill = float("nan")
    try:
        fill = float(fill)
    except (TypeError, ValueError):
        raise ValueError(f"fill_value must be a number, got {fill!r}") from None
    defaults = NORMALIZATIONS[method]
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for normalisation {method!r}; "
            f"valid: {sorted(defaults)}"
        )
    params = {**defaults, **config}
    for key, value in params.items():
        if method == "asinh_flux" and key == "scale" and isinstance(value, (list, tuple,
                                                                            np.ndarray)):
            params[key] = [_number(key, v) for v in value]
            if not params[key]:
                raise ValueError("scale must be a number or one number per band, got []")
            continue
        params[key] = type(defaults[key])(_number(key, value))
    if method == "asinh_flux":
        scales = params["scale"] if isinstance(params["scale"], list) else [params["scale"]]
        if not all(np.isfinite(v) and v > 0 for v in scales):
            raise ValueError(f"scale must be positive and finite, got {params['scale']}")
    if method == "asinh" and not params["softening"] > 0:
        raise ValueError(f"softening must be positive, got {params['softening']}")
    if method == "percentile" and not 0 <= params["lower"] < params["upper"] <= 100:
        raise ValueError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got "
            f"lower={params['lower']}, upper={params['upper']}"
        )
    out = {"method": method, **params, "fill_value": fill}
    json.dumps(out)
    return out


def _number(key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"normalisation parameter {key}={value!r} must be a number")
    return float(value)


def _normalize_block(data, mask, config):
    """Normalise a block of stamps (n, H, W, C), fill invalid pixels; float32."""
    method = config["method"]
    fill = config["fill_value"]
    invalid = mask | ~np.isfinite(data)
    if method == "none":
        return np.where(invalid, np.float32(fill), data)
    y = _transform_block(data.astype(np.float64), invalid, config)
    return np.where(invalid | ~np.isfinite(y), fill, y).astype(np.float32)


def _transform_block(x, invalid, config):
    """The normalisation of `normalize_stamps` in float64, before the fill."""
    method = config["method"]
    n, h, w, c = x.shape
    any_invalid = bool(invalid.any())
    # (n, c, H*W) copy with NaN at invalid pixels, so statistics run along the last axis
    # (always a copy: it is modified in place; for C = 1 the transpose is contiguous)
    vals = x.transpose(0, 3, 1, 2).reshape(n, c, h * w).copy()
    if any_invalid:
        vals[invalid.transpose(0, 3, 1, 2).reshape(n, c, h * w)] = np.nan
        nval = h * w - np.count_nonzero(invalid, axis=(1, 2))
    else:
        nval = np.full((n, c), h * w)
    if method == "standardize":
        if any_invalid:
            vals = np.where(np.isnan(vals), 0.0, vals)
        denom = np.maximum(nval, 1)
        mean = vals.sum(axis=-1) / denom
        dev = vals - mean[..., None]
        if any_invalid:
            dev[invalid.transpose(0, 3, 1, 2).reshape(n, c, h * w)] = 0.0
        dev *= dev
        scale = np.sqrt(dev.sum(axis=-1) / denom)
        y = (x - mean[:, None, None, :]) / _safe_scale(scale)[:, None, None, :]
    elif method == "asinh":
        vals.sort(axis=-1)  # NaN last
        med = sorted_quantile(vals, nval, 0.5)
        vals -= med[..., None]
        np.abs(vals, out=vals)
        vals.sort(axis=-1)
        sigma = 1.4826 * sorted_quantile(vals, nval, 0.5)
        scale = _safe_scale(config["softening"] * sigma)
        y = np.arcsinh((x - med[:, None, None, :]) / scale[:, None, None, :])
    elif method == "asinh_flux":
        vals.sort(axis=-1)  # NaN last
        med = sorted_quantile(vals, nval, 0.5)  # NaN only where every pixel is filled
        scale = np.asarray(config["scale"], dtype=np.float64)
        if scale.ndim and scale.size != c:
            raise ValueError(f"asinh_flux has {scale.size} scales for stamps of {c} bands")
        y = np.arcsinh((x - med[:, None, None, :]) / scale)
    elif method == "percentile":
        vals.sort(axis=-1)
        lo = sorted_quantile(vals, nval, config["lower"] / 100.0)
        hi = sorted_quantile(vals, nval, config["upper"] / 100.0)
        y = _unit_interval(x, lo, hi)
    elif method == "zscale":
        params = {k: v for k, v in config.items() if k not in ("method", "fill_value")}
        params["n_samples"] = int(params["n_samples"])
        params["min_npixels"] = int(params["min_npixels"])
        params["max_iterations"] = int(params["max_iterations"])
        lo, hi = zscale_limits(vals.reshape(n * c, h * w), np.asarray(nval).reshape(n * c),
                               **params)
        y = _unit_interval(x, lo.reshape(n, c), hi.reshape(n, c))
    else:  # pragma: no cover - checked before
        raise ValueError(method)
    return y


def _safe_scale(scale):
    scale = np.asarray(scale, dtype=np.float64)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _unit_interval(x, lo, hi):
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    span = np.where(ok, span, 1.0)
    y = (x - lo[:, None, None, :]) / span[:, None, None, :]
    y = np.clip(y, 0.0, 1.0)
    # constant stamps: everything at the lower limit
    return np.where(ok[:, None, None, :], y, 0.0)

