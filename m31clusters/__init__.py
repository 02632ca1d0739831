"""
m31clusters: find star clusters in M31 PAndAS images with deep learning
and publish them as CDS catalogues.

Importing this package makes Keras default to the JAX backend (without
overriding a ``KERAS_BACKEND`` you set yourself); Keras itself is only
imported when a classifier is used.
"""

from ._backend import _configure_keras_backend

_configure_keras_backend()

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - source tree without setuptools_scm
    __version__ = "0.0.0"

from . import (  # noqa: E402
    catalog,
    classifier,
    crossmatch,
    cutout,
    datasets,
    evaluation,
    exceptions,
    fragments,
    geometry,
    inspection,
    io,
    models,
    photometry,
    simulate,
    survey,
    training,
)
from .catalog import CANDIDATE_NAME_COLUMNS, Catalog  # noqa: E402
from .classifier import ClusterClassifier  # noqa: E402
from .crossmatch import deduplicate, match  # noqa: E402
from .cutout import Cutout  # noqa: E402
from .datasets import load_caldwell2011, load_rbc_v5, read_catalog  # noqa: E402
from .geometry import (  # noqa: E402
    M31_CENTER,
    deprojected_radius,
    pandas_field,
    pandas_fields,
    pandas_fields_containing,
    projected_radius,
)
from .inspection import combine_scores, inspection_montage  # noqa: E402
from .io.pandas_ascd import read_pandas_ascd, write_pandas_ascd  # noqa: E402
from .photometry import detect_sources, magnitude_limit, measure, snr_depth  # noqa: E402
from .simulate import inject_clusters, simulate_field, simulate_stamps  # noqa: E402
from .survey import SurveyRun, iter_chunks, run_survey  # noqa: E402

__all__ = [
    "__version__",
    "catalog",
    "classifier",
    "models",
    "ClusterClassifier",
    "photometry",
    "simulate",
    "detect_sources",
    "measure",
    "magnitude_limit",
    "snr_depth",
    "simulate_field",
    "simulate_stamps",
    "inject_clusters",
    "inspection",
    "survey",
    "combine_scores",
    "inspection_montage",
    "run_survey",
    "SurveyRun",
    "iter_chunks",
    "crossmatch",
    "evaluation",
    "fragments",
    "training",
    "datasets",
    "match",
    "deduplicate",
    "load_rbc_v5",
    "load_caldwell2011",
    "read_catalog",
    "cutout",
    "Cutout",
    "exceptions",
    "io",
    "geometry",
    "Catalog",
    "CANDIDATE_NAME_COLUMNS",
    "read_pandas_ascd",
    "write_pandas_ascd",
    "M31_CENTER",
    "projected_radius",
    "deprojected_radius",
    "pandas_fields",
    "pandas_field",
    "pandas_fields_containing",
]
