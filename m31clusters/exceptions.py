"""
Exceptions and warnings raised by m31clusters.

Every error is a subclass of `M31ClustersError` and of the matching
built-in exception (`ValueError`, `TypeError`, `OSError`), so code can
catch either.  Every warning is a subclass of `M31ClustersWarning`.
"""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = [
    "M31ClustersError",
    "M31ClustersWarning",
    "KerasBackendWarning",
    "NoWCSError",
    "BandError",
    "OffImageWarning",
    "OffImageError",
    "ImageShapeError",
    "StampMemoryError",
    "CDSFormatError",
    "ColumnError",
    "CorruptFileError",
    "IncompatibleModelError",
    "NoDetectionsWarning",
    "FieldFailedWarning",
    "CorruptFieldWarning",
    "SurveyLockedError",
]


class M31ClustersError(Exception):
    """Base class for all errors raised by m31clusters."""


class M31ClustersWarning(AstropyUserWarning):
    """Base class for all warnings issued by m31clusters."""


class KerasBackendWarning(M31ClustersWarning):
    """Keras was already imported with a backend other than JAX."""


class NoWCSError(M31ClustersError, ValueError):
    """An image has no (celestial) World Coordinate System."""


class BandError(M31ClustersError, ValueError):
    """A photometric band is missing, unknown or inconsistent."""


class OffImageWarning(M31ClustersWarning):
    """Some sources fall outside every image (their stamps are fully masked)."""


class OffImageError(M31ClustersError, ValueError):
    """Every requested position falls outside every image."""


class ImageShapeError(M31ClustersError, ValueError):
    """An image (or its mask) has the wrong number of axes or a mismatched shape."""


class StampMemoryError(M31ClustersError, ValueError):
    """The stamps requested would need more memory than the machine has."""


class CDSFormatError(M31ClustersError, ValueError):
    """A value or a column cannot be written in (or read from) the CDS format."""


class ColumnError(M31ClustersError, ValueError):
    """A table lacks a required column, or a column has the wrong type or values."""


class CorruptFileError(M31ClustersError, OSError):
    """A file is truncated, corrupt or not in the expected format."""


class IncompatibleModelError(M31ClustersError, ValueError):
    """A saved classifier does not fit the data it is applied to."""


class NoDetectionsWarning(M31ClustersWarning):
    """Source detection found no sources."""


class FieldFailedWarning(M31ClustersWarning):
    """Some fields of a survey run failed (after retries); the others finished."""


class CorruptFieldWarning(M31ClustersWarning):
    """A stored field table of a survey run could not be read; the field is recomputed."""


class SurveyLockedError(M31ClustersError, RuntimeError):
    """Another survey run is writing to the same output directory."""
