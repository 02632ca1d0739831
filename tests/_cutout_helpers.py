"""Images, WCS and Cutouts shared by the tests of m31clusters.cutout (tests/test_cutout_*.py)."""

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from m31clusters.cutout import Cutout

RA0, DEC0 = 10.6847, 41.2690


def make_wcs(crpix=(50.0, 60.0), scale_arcsec=0.187, rot_deg=0.0, crval=(RA0, DEC0)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = list(crpix)
    s = scale_arcsec / 3600.0
    c, n = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    w.wcs.cd = [[-s * c, s * n], [s * n, s * c]]
    return w


def make_image(shape=(120, 90), seed=0, wcs=None, nan_at=((10, 12),)):
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 5.0, size=shape).astype(np.float32)
    for yx in nan_at:
        data[yx] = np.nan
    return data, (wcs if wcs is not None else make_wcs())


def edge_positions(shape, n_random, seed):
    ny, nx = shape
    rng = np.random.default_rng(seed)
    xy = np.column_stack(
        [rng.uniform(-0.5, nx - 0.5, n_random), rng.uniform(-0.5, ny - 0.5, n_random)]
    )
    corners = [
        [-0.4999, -0.4999], [0.0, 0.0], [nx - 1.0, 0.0], [0.0, ny - 1.0], [nx - 1.0, ny - 1.0],
        [nx - 0.5, ny - 0.5], [0.5, 0.5], [3.5, ny - 2.5], [nx / 2, 0.2], [nx - 1.5, ny / 2],
    ]
    return np.vstack([corners, xy])


def make_mef(band_seed=0, ny=80, nx=60, gap=8, overlap=False):
    """2 x 2 CCDs sharing one tangent point, separated by chip gaps (MegaCam-like)."""
    rng = np.random.default_rng(band_seed)
    hdus = [fits.PrimaryHDU()]
    arrays = []
    for row in range(2):
        for col in range(2):
            # lower-left corner of this CCD in a global pixel frame
            gx = col * (nx + gap) - (nx if overlap and col else 0) // 3
            gy = row * (ny + gap)
            w = make_wcs(crpix=(nx + gap / 2 - gx + 1, ny + gap / 2 - gy + 1))
            arr = rng.normal(1000.0 * (1 + 2 * row + col), 3.0, size=(ny, nx)).astype("f4")
            arrays.append((arr, w))
            hdus.append(fits.ImageHDU(arr, header=w.to_header(), name=f"CCD{2 * row + col}"))
    return fits.HDUList(hdus), arrays


def random_cutout(n=12, size=10, seed=0, bands=("g", "i")):
    rng = np.random.default_rng(seed)
    data = rng.normal(50, 4, size=(n, size, size, len(bands)))
    mask = rng.random(data.shape) < 0.05
    pos = SkyCoord(rng.uniform(10, 11, n), rng.uniform(41, 42, n), unit="deg")
    off = rng.uniform(-0.5, 0.5, size=(n, 2))
    return Cutout(data, bands=bands, mask=mask, positions=pos, offsets=off,
                  meta={"zeropoints": {"g": 30.0, "i": 29.5}})
