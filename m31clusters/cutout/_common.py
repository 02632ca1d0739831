"""
Helpers shared by the modules of `m31clusters.cutout`: band-name checks and
joining sky positions.
"""

import numpy as np

from ..exceptions import BandError

__all__ = []


def _check_bands(bands, what="bands"):
    """Band names as a tuple of str; `BandError` if empty or a name repeats."""
    if isinstance(bands, str):
        bands = (bands,)
    try:
        bands = tuple(str(b) for b in bands)
    except TypeError:
        raise BandError(
            f"{what} must be a band name or a sequence of them, got {bands!r}"
        ) from None
    if not bands:
        raise BandError(f"{what} must name at least one band")
    repeated = sorted({b for b in bands if bands.count(b) > 1})
    if repeated:
        raise BandError(f"band names must be unique, {what}={bands} repeats {repeated}")
    return bands


def _concat_skycoords(coords):
    """
    Concatenate SkyCoords (converted to ICRS if their frames differ).

    Component by component: ``np.concatenate`` of SkyCoords fills an empty
    array, and astropy wraps its uninitialised longitudes (a spurious
    ``RuntimeWarning`` now and then).
    """
    from astropy.coordinates import SkyCoord, UnitSphericalRepresentation

    first = coords[0]
    if not all(c.is_equivalent_frame(first) for c in coords[1:]):
        coords = [c.icrs for c in coords]
        first = coords[0]
    reps = [c.data.reshape((-1,)) for c in coords]
    if len({type(r) for r in reps}) != 1:
        reps = [r.represent_as(UnitSphericalRepresentation) for r in reps]
    cls = type(reps[0])
    data = cls(*[np.concatenate([getattr(r, k) for r in reps]) for k in reps[0].components],
               copy=False)
    return SkyCoord(first.frame.realize_frame(data))
