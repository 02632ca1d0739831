"""
Test configuration shared by the test suite and the doctests.

Sets up an isolated Keras home and the JAX compilation cache *before*
anything imports Keras, and provides the ``shared_data`` fixture pointing
at the real reference data in ``../shared/data`` (skipped when absent).
"""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="m31clusters-keras-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="m31clusters-hypothesis-")
)
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), "m31clusters-jax-cache"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

try:  # Property tests: the same examples on every run unless asked otherwise.
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("m31clusters", derandomize=True, database=None)
    # ``HYPOTHESIS_PROFILE=explore`` draws fresh random examples (and more of them).
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
