"""
Test configuration shared by the test suite and the doctests.

Sets up an isolated Keras home and the JAX compilation cache *before*
anything imports Keras, and provides the ``shared_data`` fixture pointing
at the real reference data in ``../shared/data`` (skipped when absent).
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_TEMP_DIRS = []


def _temp_dir_env(name, prefix):
    """Point *name* at a new temporary directory unless the user set it; removed at exit."""
    if name not in os.environ:
        os.environ[name] = tempfile.mkdtemp(prefix=prefix)
        _TEMP_DIRS.append(os.environ[name])


atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _TEMP_DIRS])

os.environ.setdefault("KERAS_BACKEND", "jax")
_temp_dir_env("KERAS_HOME", "m31clusters-keras-")
os.environ.setdefault("MPLBACKEND", "Agg")
_temp_dir_env("HYPOTHESIS_STORAGE_DIRECTORY", "m31clusters-hypothesis-")
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), "m31clusters-jax-cache"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

try:  # Property tests: the same examples on every run unless asked otherwise.
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("m31clusters", derandomize=True, database=None)
    # ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples (500 where a test sets no
    # max_examples of its own).
    _hypothesis_settings.register_profile("explore", max_examples=500, database=None)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "m31clusters"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass

_SHARED = Path(
    os.environ.get(
        "M31CLUSTERS_SHARED_DATA", Path(__file__).resolve().parent.parent / "shared" / "data"
    )
)


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow test (minutes on 2 CPU cores); use --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    """Path to ``../shared/data`` (real reference data); skip if absent."""
    if not _SHARED.is_dir():
        pytest.skip(f"shared reference data not found at {_SHARED}")
    return _SHARED
