"""Tests for m31clusters._backend: Keras defaults to JAX without overriding the user's choice."""

import os
import subprocess
import sys


def test_backend_default_jax():
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", "import m31clusters, keras; print(keras.backend.backend())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "jax"


def test_backend_user_choice_respected():
    env = dict(os.environ, KERAS_BACKEND="numpy")
    out = subprocess.run(
        [sys.executable, "-c", "import m31clusters, keras; print(keras.backend.backend())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "numpy"


def test_backend_warning_when_keras_imported_first():
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    code = (
        "import os, warnings\n"
        "import astropy.units  # astropy's logger hooks warnings at import\n"
        "os.environ['KERAS_BACKEND'] = 'numpy'\n"
        "import keras\n"
        "del os.environ['KERAS_BACKEND']\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import m31clusters\n"
        "print([type(x.message).__name__ for x in w])\n"
        "print(str(w[0].message))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert "KerasBackendWarning" in out.stdout
    assert "KERAS_BACKEND=jax" in out.stdout
