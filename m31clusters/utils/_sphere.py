"""Unit-sphere helpers shared by geometry, cutout and crossmatch."""

import numpy as np

__all__ = ["unit_vectors"]


def unit_vectors(lon, lat):
    """
    Cartesian unit vectors of spherical positions.

    Parameters
    ----------
    lon, lat : array-like
        Longitude and latitude in radians (broadcast together).

    Returns
    -------
    xyz : ndarray, shape (..., 3)
        float64 unit vectors.

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.utils._sphere import unit_vectors
    >>> unit_vectors(np.array([0.0, np.pi / 2]), np.array([0.0, 0.0])).round(12)
    array([[1., 0., 0.],
           [0., 1., 0.]])
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)
