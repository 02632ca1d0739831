"""
Private helpers shared by the modules of `m31clusters.classifier`: argument
checks, the normalisation option, empty-stamp detection, JSON conversion and
the device distribution.
"""

import math

import numpy as np

__all__ = []


def _keras():
    import keras

    return keras


def _normalization_kwargs(normalization, name="normalization"):
    """
    Turn ``"asinh"`` or ``{"method": "asinh", ...}`` into Cutout.normalize kwargs.

    The method and its parameters are checked here (by normalising a dummy
    stamp), so that a bad normalisation fails when the classifier is made or
    loaded, not at the first prediction.
    """
    from ..cutout import Cutout

    if normalization is None:
        kwargs = {"method": "none"}
    elif isinstance(normalization, str):
        kwargs = {"method": normalization}
    elif isinstance(normalization, dict) and "method" in normalization:
        kwargs = dict(normalization)
    else:
        raise ValueError(
            f"{name} must be a method name (e.g. 'asinh') or a dict with a 'method' key; "
            f"got {normalization!r}"
        )
    try:
        config = Cutout(np.ones((1, 2, 2, 2), np.float32)).normalize(**kwargs).normalization
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad {name} {normalization!r}: {exc}") from None
    bad = [k for k, v in config.items() if k not in ("method", "fill_value")
           and not all(math.isfinite(x) for x in (v if isinstance(v, list) else [v]))]
    if bad:
        raise ValueError(f"bad {name} {normalization!r}: {bad[0]} must be finite")
    return kwargs


def _as_int(value, name, minimum=None):
    """*value* as an int (refusing 2.5, "x", True), at least *minimum*."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return value


def _as_float(value, name, low=None, high=None, low_open=False):
    """*value* as a finite float in [low, high] (or (low, high] with *low_open*)."""
    try:
        if isinstance(value, bool | str | bytes):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}; got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"{name} must be <= {high:g}; got {value!r}")
    return out


def _check_threshold(threshold, name="threshold"):
    """A decision threshold: a finite probability in [0, 1]."""
    return _as_float(threshold, name, 0.0, 1.0)


def _check_both_classes(y, what):
    """Raise ValueError unless the 0/1 labels *y* hold both classes."""
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"{what} hold one class only ({n_pos} clusters and {y.size - n_pos} "
            "non-clusters); a classifier needs both clusters (1) and non-clusters (0)"
        )


def _unscorable(cutouts):
    """
    Stamps that cannot be scored: (N,) bool, True where a band of the stamp has
    no valid pixel (every pixel masked or non-finite).
    """
    n = len(cutouts)
    if n == 0:
        return np.zeros(0, bool)
    invalid = np.asarray(cutouts.mask) | ~np.isfinite(np.asarray(cutouts.data))
    return invalid.reshape(n, -1, invalid.shape[-1]).all(axis=1).any(axis=1)


def _empty_band_message(cutouts, empty, offset=0, what="stamp"):
    i = int(np.flatnonzero(empty)[0])
    invalid = np.asarray(cutouts.mask[i]) | ~np.isfinite(np.asarray(cutouts.data[i]))
    bands = [b for b, e in zip(cutouts.bands, invalid.reshape(-1, invalid.shape[-1]).all(axis=0),
                               strict=True) if e]
    return (f"{int(empty.sum())} {what}s have no valid pixel in a band (first: {what} "
            f"{i + offset}, band {', '.join(bands)})")


def _safe_mode_scope():
    """
    Keras' own safe-mode scope: inside it, deserialisation refuses to run code
    (``Lambda`` layers, arbitrary functions) whatever the session's global
    setting (``keras.config.enable_unsafe_deserialization()`` included).
    """
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(True)


def _to_builtin(obj):
    """Make numpy scalars/arrays JSON serialisable."""
    if isinstance(obj, dict):
        return {str(k): _to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_builtin(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_builtin(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else obj
    return obj


def _default_distribution(distribution):
    """``"auto"``: DataParallel over all devices when there is more than one."""
    if distribution is None:
        return None
    keras = _keras()
    if isinstance(distribution, str):
        if distribution != "auto":
            raise ValueError(
                f"distribution must be 'auto', None or a keras.distribution object; "
                f"got {distribution!r}"
            )
        devices = keras.distribution.list_devices()
        if len(devices) < 2:
            return None
        return keras.distribution.DataParallel(devices=devices)
    if not isinstance(distribution, keras.distribution.Distribution):
        raise TypeError(
            f"distribution must be 'auto', None or a keras.distribution.Distribution; "
            f"got {type(distribution).__name__}"
        )
    return distribution

