"""
Keras backend selection.

m31clusters runs Keras 3 on the JAX backend.  Keras reads the
``KERAS_BACKEND`` environment variable once, when it is first imported, so
this module must run before anything imports :mod:`keras`.  It only *sets a
default*: a backend the user chose explicitly is never overridden.
"""

import os
import sys
import warnings

from .exceptions import KerasBackendWarning

__all__ = []

_PREFERRED = "jax"


def _configure_keras_backend():
    """
    Make Keras default to JAX without overriding an explicit choice.

    If Keras was already imported with another backend, a
    `~m31clusters.exceptions.KerasBackendWarning` explains how to fix it.
    Returns the backend name that Keras will use (or already uses).
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        try:
            current = keras.backend.backend()
        except Exception:  # pragma: no cover - half-imported keras
            current = os.environ.get("KERAS_BACKEND", "unknown")
        if current != _PREFERRED and "KERAS_BACKEND" not in os.environ:
            warnings.warn(
                f"Keras was imported before m31clusters and is using the "
                f"{current!r} backend; m31clusters is built and tested on "
                f"'jax'. Set the environment variable KERAS_BACKEND=jax "
                f"before importing keras (or import m31clusters first).",
                KerasBackendWarning,
                stacklevel=3,
            )
        return current
    return os.environ.setdefault("KERAS_BACKEND", _PREFERRED)
