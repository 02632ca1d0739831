"""
Check a pair of g and i stacks before any work, and describe their CCDs.

A PAndAS stack is a multi-extension FITS file, one image extension per CCD
with its own WCS (a single 2-D image is a one-CCD stack).  `check_stacks`
opens both files, checks what would otherwise fail deep inside astropy or
numpy after minutes of work (not a FITS file, truncated data, no WCS, not
2-D, the same file given for both bands, bands that do not overlap), and
returns the CCD pairs with their WCS and sky footprints.  Headers are read,
data are only memory-mapped.
"""

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from ..exceptions import BandError, CorruptFileError, ImageShapeError, OffImageError
from ..utils._wcs import celestial_wcs

__all__ = ["CCDPair", "check_image_file", "check_stacks", "stack_field"]


@dataclass(frozen=True)
class CCDPair:
    """
    One CCD of a pair of stacks.

    Attributes
    ----------
    ccd : int
        CCD number (``CCDNUM`` of the i extension, else its position in the stack).
    ext : dict
        Extension index per band (``{"g": 3, "i": 3}``).
    shape : tuple of int
        Shape (ny, nx) of the i image of the CCD.
    wcs : dict
        Celestial `~astropy.wcs.WCS` per band.
    footprint : `~numpy.ndarray`
        (4, 2) RA, Dec (deg) of the corners of the i image of the CCD.
    """

    ccd: int
    ext: dict
    shape: tuple
    wcs: dict
    footprint: np.ndarray


def _open_error(band, path, exc):
    return CorruptFileError(
        f"{band} image {str(path)!r} is not a readable FITS file: {' '.join(str(exc).split())}"
    )


def check_image_file(path, band):
    """
    Check one image file and describe its 2-D image extensions.

    Parameters
    ----------
    path : str or path-like
        FITS file (single image or multi-extension stack).
    band : str
        Band name, for the messages.

    Returns
    -------
    list of tuple
        ``(extension index, ccd number, shape, celestial WCS)`` per 2-D
        image extension, in file order.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If *path* does not exist or is a directory.
    m31clusters.exceptions.CorruptFileError
        If the file is not FITS (a text or zero-byte file) or an extension's
        data are truncated (names file and extension).
    m31clusters.exceptions.ImageShapeError
        If an image extension is not 2-D, or there is none.
    m31clusters.exceptions.NoWCSError
        If an image extension has no usable celestial WCS.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{band} image {str(path)!r} is a directory; give a FITS file")
    if not path.is_file():
        raise FileNotFoundError(f"{band} image {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{band} image {str(path)!r} is empty (0 bytes), not a FITS file")
    out = []
    with warnings.catch_warnings():
        # "File may have been truncated" is checked below, extension by extension.
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            hdul = fits.open(path, memmap=True)
        except (OSError, ValueError, TypeError) as exc:
            raise _open_error(band, path, exc) from None
        with hdul:
            try:
                hdus = list(hdul)
            except (OSError, ValueError, TypeError) as exc:
                raise _open_error(band, path, exc) from None
            for index, hdu in enumerate(hdus):
                if not hdu.is_image:
                    continue
                naxis = int(hdu.header.get("ZNAXIS", hdu.header.get("NAXIS", 0)))
                if naxis == 0:
                    continue
                if naxis != 2:
                    shape = tuple(int(hdu.header.get(f"NAXIS{k}", 0))
                                  for k in range(naxis, 0, -1))
                    raise ImageShapeError(
                        f"{band} image {str(path)!r}, extension {index}: a {naxis}-D image "
                        f"{shape}; give 2-D images (one per CCD extension)"
                    )
                try:
                    data = hdu.data
                except (OSError, ValueError, TypeError) as exc:
                    raise CorruptFileError(
                        f"{band} image {str(path)!r}, extension {index}: the data are "
                        f"truncated or corrupt ({exc})"
                    ) from None
                if data is None or data.ndim != 2:
                    raise CorruptFileError(
                        f"{band} image {str(path)!r}, extension {index}: no image data"
                    )
                wcs = celestial_wcs(hdu.header, f"{band} image {str(path)!r}, extension "
                                    f"{index}", fobj=hdul)
                ccd = hdu.header.get("CCDNUM", len(out))
                out.append((index, int(ccd), tuple(int(n) for n in data.shape), wcs))
    if not out:
        raise ImageShapeError(f"{band} image {str(path)!r} has no 2-D image extension")
    return out


def _grid(shape, n=5):
    ny, nx = shape
    xs, ys = np.meshgrid(np.linspace(-0.5, nx - 0.5, n), np.linspace(-0.5, ny - 0.5, 2 * n + 1))
    return xs.ravel(), ys.ravel()


def check_stacks(images):
    """
    Check a pair of g and i stacks and pair their CCDs.

    Parameters
    ----------
    images : dict
        ``{"g": path, "i": path}``.

    Returns
    -------
    list of `CCDPair`
        One per i CCD, paired with the g extension that covers most of it;
        i CCDs without any g coverage are left out.

    Raises
    ------
    m31clusters.exceptions.BandError
        If a band is missing or the same file is given for g and i.
    m31clusters.exceptions.OffImageError
        If the g image does not overlap the i image at all ("no g coverage").
    FileNotFoundError, m31clusters.exceptions.CorruptFileError, ...
        From `check_image_file`.
    """
    images = {band: Path(p) for band, p in dict(images).items()}
    missing = {"g", "i"} - set(images)
    if missing:
        raise BandError(f"images must give the g and i bands; missing {sorted(missing)}")
    info = {band: check_image_file(images[band], band) for band in ("g", "i")}
    if os.path.samefile(images["g"], images["i"]):
        raise BandError(
            f"the same file {str(images['g'])!r} is given for the g and the i image; "
            "a catalogue would be published with g == i"
        )
    pairs = []
    for ei, ccd, shape_i, wi in info["i"]:
        x, y = _grid(shape_i)
        ra, dec = wi.all_pix2world(x, y, 0)
        best, eg, wg = 0, None, None
        for index, _, shape, w in info["g"]:
            with np.errstate(invalid="ignore"):
                gx, gy = w.all_world2pix(ra, dec, 0)
            n = np.count_nonzero((gx > -0.5) & (gx < shape[1] - 0.5)
                                 & (gy > -0.5) & (gy < shape[0] - 0.5))
            if n > best:
                best, eg, wg = n, index, w
        if eg is None:
            continue  # this CCD has no g coverage
        ny, nx = shape_i
        corners = wi.all_pix2world([-0.5, nx - 0.5, nx - 0.5, -0.5],
                                   [-0.5, -0.5, ny - 0.5, ny - 0.5], 0)
        pairs.append(CCDPair(ccd=ccd, ext={"g": eg, "i": ei}, shape=shape_i,
                             wcs={"g": wg, "i": wi}, footprint=np.column_stack(corners)))
    if not pairs:
        raise OffImageError(
            f"no g coverage: the g image {str(images['g'])!r} does not overlap the i image "
            f"{str(images['i'])!r} anywhere"
        )
    return pairs


def stack_field(path):
    """
    PAndAS field number of a stack, from its header (``FIELD``) or name (``m###_i.fit``).

    Returns None when neither says.
    """
    import re

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            value = fits.getval(path, "FIELD", ext=0)
        return int(value)
    except (KeyError, OSError, ValueError, TypeError):
        pass
    match = re.match(r"^m(\d{3})", Path(path).name)
    return int(match.group(1)) if match else None
