"""
Cutting stamps from images: `from_images` and `iter_from_images`.

The implementation of `Cutout.from_images
<m31clusters.cutout.Cutout.from_images>` and `Cutout.iter_from_images
<m31clusters.cutout.Cutout.iter_from_images>`, which document the
parameters.  Each band's image is opened as a list of layers (one per 2-D
image extension with a celestial WCS, e.g. the CCDs of a PAndAS stack),
each source is located in the layer that contains it farthest from an edge,
and stamps are gathered from the memory-mapped pixels chunk by chunk with
`m31clusters.utils._stamps.extract_stamps` (the `astropy.nddata.Cutout2D`
pixel convention).
"""

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import NDData
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ..exceptions import (
    BandError,
    CorruptFileError,
    ImageShapeError,
    NoWCSError,
    OffImageError,
    OffImageWarning,
    StampMemoryError,
)
from ..utils._progress import PROGRESS_DEFAULT, progress_bar
from ..utils._sphere import unit_vectors
from ..utils._stamps import extract_stamps, stamp_origins
from ..utils._validation import check_finite_coords
from ..utils._wcs import celestial_wcs
from ._common import _check_bands, _concat_skycoords
from ._stamp_wcs import _StampWCS
from .core import Cutout

__all__ = ["from_images", "iter_from_images"]


def from_images(images, positions, *, size=64, bands=("g", "i"), pixel_band=None,
                extension=None, chunk_size=None, progress=PROGRESS_DEFAULT):
    """
    Stamps around *positions* from *images*, as one `~m31clusters.cutout.Cutout`.

    See `Cutout.from_images <m31clusters.cutout.Cutout.from_images>`.
    """
    n_total = 0
    n_off = 0
    n_none = 0
    parts = []
    for part, off, none in _iter_cutouts(
        images, positions, size, bands, pixel_band, extension, chunk_size, progress
    ):
        parts.append(part)
        n_total += len(part)
        n_off += off
        n_none += none
    _check_some_on_image(n_total, n_none, bands)
    if n_off:
        warnings.warn(
            f"{n_off} of {n_total} positions are outside every image of at least one "
            f"band; their stamps in those bands are fully masked",
            OffImageWarning,
        )
    return parts[0] if len(parts) == 1 else Cutout.concatenate(parts)


def iter_from_images(images, positions, *, size=64, bands=("g", "i"), pixel_band=None,
                     extension=None, chunk_size=4096, progress=PROGRESS_DEFAULT):
    """
    Stamps around *positions* from *images*, one `~m31clusters.cutout.Cutout` per chunk.

    See `Cutout.iter_from_images <m31clusters.cutout.Cutout.iter_from_images>`.
    """
    if chunk_size is None or int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n_total = 0
    n_none = 0
    for part, off, none in _iter_cutouts(
        images, positions, size, bands, pixel_band, extension, chunk_size, progress,
        whole=False,
    ):
        n_total += len(part)
        n_none += none
        if off:
            warnings.warn(
                f"{off} of {len(part)} positions in this chunk are outside every image "
                f"of at least one band; their stamps there are fully masked",
                OffImageWarning,
            )
        yield part
        del part  # so that only the consumer holds the previous chunk
    _check_some_on_image(n_total, n_none, bands)


def _check_some_on_image(n_total, n_none, bands):
    """Raise `OffImageError` when every one of *n_total* positions missed every image."""
    if n_total and n_none == n_total:
        raise OffImageError(
            f"all {n_total} positions are outside every image of bands {tuple(bands)}"
        )


class _Layer:
    """One 2-D image with a celestial WCS: a single image or one CCD extension."""

    def __init__(self, hdu_or_array, wcs, mask, label):
        self.source = hdu_or_array
        self.wcs = wcs
        self.mask = mask
        self.label = label
        if isinstance(hdu_or_array, np.ndarray):
            self.shape = hdu_or_array.shape
        else:
            hdr = hdu_or_array.header
            self.shape = (hdr["NAXIS2"], hdr["NAXIS1"])
        self._array = None

    def array(self):
        """The pixel array: an ndarray (memory-mapped for plain FITS) or a section."""
        if self._array is None:
            src = self.source
            try:
                if isinstance(src, np.ndarray):
                    self._array = src
                elif isinstance(src, fits.CompImageHDU) or _is_scaled(src):
                    # reads (and scales/decompresses) only the pixels asked for
                    self._array = src.section
                else:
                    self._array = src.data
            except (TypeError, ValueError, OSError) as exc:
                # e.g. "buffer is too small for requested array" for a truncated file
                raise CorruptFileError(
                    f"{self.label}: cannot read the pixels (truncated or corrupt file?): {exc}"
                ) from exc
            if getattr(self._array, "shape", self.shape) != self.shape:
                raise CorruptFileError(
                    f"{self.label}: the pixel array has shape {self._array.shape}, the "
                    f"header says {self.shape}"
                )
        return self._array


def _is_scaled(hdu):
    hdr = hdu.header
    return hdr.get("BSCALE", 1) != 1 or hdr.get("BZERO", 0) != 0 or hdr.get("BLANK") is not None


def _hdu_layers(hdu, label, fobj=None):
    hdr = hdu.header
    naxis = hdr.get("ZNAXIS", hdr.get("NAXIS", 0)) if isinstance(hdu, fits.CompImageHDU) else (
        hdr.get("NAXIS", 0)
    )
    if naxis == 0:
        return None
    if naxis != 2:
        raise ImageShapeError(f"{label} has {naxis} axes; only 2-D images are supported")
    w = celestial_wcs(hdr, label, fobj=fobj)
    return _Layer(hdu, w, None, label)


def _open_band(obj, band, opened):
    """List of `_Layer` for one band; files opened here are appended to *opened*."""
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.exists():
            raise FileNotFoundError(f"image for band {band!r} not found: {str(path)!r}")
        label = f"band {band!r} file {str(path)!r}"
        with warnings.catch_warnings():
            # astropy only warns when the file is shorter than its headers say
            warnings.filterwarnings("error", message=".*truncated", category=AstropyUserWarning)
            try:
                # memmap=None: memory-mapped, but scaled (BZERO/BSCALE) images can
                # still be read through .section (memmap=True refuses them)
                hdul = fits.open(path, memmap=None)
            except (OSError, AstropyUserWarning) as exc:
                raise CorruptFileError(
                    f"cannot read the image of band {band!r}, {str(path)!r}: {exc}"
                ) from exc
            opened.append(hdul)
            try:
                hdul.readall()  # every header now, so that a truncation is seen here
            except (OSError, AstropyUserWarning) as exc:
                raise CorruptFileError(f"{label} is truncated or corrupt: {exc}") from exc
            return _hdulist_layers(hdul, label)
    if isinstance(obj, fits.HDUList):
        return _hdulist_layers(obj, f"band {band!r} HDUList")
    if isinstance(obj, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        layer = _hdu_layers(obj, f"band {band!r} HDU")
        if layer is None:
            raise ImageShapeError(f"band {band!r} HDU has no image data")
        return [layer]
    if isinstance(obj, NDData):
        label = f"band {band!r} NDData"
        data = np.asanyarray(obj.data)
        if data.ndim != 2:
            raise ImageShapeError(f"{label} has shape {data.shape}; only 2-D images are supported")
        w = obj.wcs
        if w is not None and not isinstance(w, WCS):
            w = getattr(w, "low_level_wcs", w)
        if not isinstance(w, WCS):
            raise NoWCSError(f"{label} has no astropy WCS (wcs={obj.wcs!r})")
        w = celestial_wcs(w, label)
        mask = None
        if obj.mask is not None:
            mask = np.asarray(obj.mask, dtype=bool)
            if mask.shape != data.shape:
                raise ImageShapeError(
                    f"{label}: mask shape {mask.shape} differs from data shape {data.shape}"
                )
        return [_Layer(data, w, mask, label)]
    if isinstance(obj, np.ndarray):
        raise NoWCSError(
            f"band {band!r} is a bare array with no WCS; wrap it as NDData(data, wcs=...) "
            f"or an ImageHDU with a WCS header"
        )
    raise TypeError(
        f"image for band {band!r} must be a FITS path, HDUList, image HDU or NDData, "
        f"got {type(obj).__name__}"
    )


def _hdulist_layers(hdul, label):
    layers = []
    for k, hdu in enumerate(hdul):
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue
        layer = _hdu_layers(hdu, f"{label} extension {k}", fobj=hdul)
        if layer is not None:
            layer.extension = k
            layers.append(layer)
    if not layers:
        raise ImageShapeError(f"{label} contains no 2-D image extension")
    return layers


def _parse_size(size, wcs=None):
    """
    Stamp shape (H, W) from an int, a pair, or angular / pixel Quantities.

    Angles are converted with the pixel scale of *wcs* and rounded to the
    nearest integer, as `astropy.nddata.Cutout2D` does.
    """
    if isinstance(size, u.Quantity):
        size = [size] * 2 if size.isscalar else list(size)
    elif not isinstance(size, (tuple, list)) and np.ndim(size) == 0:
        size = (size, size)
    if len(size) != 2:
        raise ValueError(f"size must be an int or a pair (H, W), got {size!r}")
    out = []
    for axis, s in enumerate(size):
        if isinstance(s, u.Quantity):
            if s.unit == u.pix:
                s = s.value
            elif s.unit.physical_type == "angle" and wcs is not None:
                from astropy.wcs.utils import proj_plane_pixel_scales

                # axis 0 of size is rows (y), the second WCS pixel axis
                scales = proj_plane_pixel_scales(wcs)
                scale = scales[1 - axis] * u.Unit(wcs.wcs.cunit[1 - axis])
                s = float(np.round((s / scale).decompose().value))
            else:
                raise ValueError(f"size must be pixels or an angle, got {size!r}")
        if isinstance(s, (bool, np.bool_)) or not np.issubdtype(np.asarray(s).dtype, np.number):
            raise ValueError(f"size must be positive integers, got {size!r}")
        if not np.isfinite(s) or s != int(s) or int(s) < 1:
            raise ValueError(f"size must be positive integers (pixels), got {size!r}")
        out.append(int(s))
    return tuple(out)


def _locate(coords, layers, cache=None):
    """
    For each position, the layer that contains it farthest from an edge.

    Pixel positions are those of `astropy.wcs.utils.skycoord_to_pixel`
    (``mode="all"``), computed once per celestial frame (see
    `_frame_lonlat`).  Returns (layer index (-1 if none), x, y) arrays.
    """
    n = len(coords)
    best = np.full(n, -1, dtype=np.int64)
    margin = np.full(n, -np.inf)
    bx = np.full(n, np.nan)
    by = np.full(n, np.nan)
    if n == 0:
        return best, bx, by
    cache = {} if cache is None else cache
    if len(layers) > 1:
        vec = cache.get("icrs_vectors")
        if vec is None:
            sph = coords.icrs
            vec = cache["icrs_vectors"] = unit_vectors(sph.ra.rad, sph.dec.rad)
    for j, layer in enumerate(layers):
        lon, lat = _frame_lonlat(coords, layer, cache)
        if len(layers) > 1:
            # coarse sky prefilter: a padded circle around the layer
            cand = np.flatnonzero(vec @ _layer_centre_icrs(layer) >= layer.cos_radius)
            if cand.size == 0:
                continue
            lon, lat = lon[cand], lat[cand]
        else:
            cand = np.arange(n)
        world = (lon, lat) if layer.wcs.wcs.lng == 0 else (lat, lon)
        x, y = layer.wcs.all_world2pix(*world, 0)
        ny, nx = layer.shape
        m = np.minimum.reduce([x + 0.5, nx - 0.5 - x, y + 0.5, ny - 0.5 - y])
        inside = (x > -0.5) & (x <= nx - 0.5) & (y > -0.5) & (y <= ny - 0.5)
        m = np.where(inside, m, -np.inf)
        better = inside & (m > margin[cand])
        sel = cand[better]
        best[sel] = j
        margin[sel] = m[better]
        bx[sel] = x[better]
        by[sel] = y[better]
    return best, bx, by


def _frame_lonlat(coords, layer, cache):
    """Longitude/latitude of *coords* in the layer WCS's frame and units (cached)."""
    from astropy.wcs.utils import wcs_to_celestial_frame

    if not hasattr(layer, "frame"):
        layer.frame = wcs_to_celestial_frame(layer.wcs)
        lng, lat = layer.wcs.wcs.lng, layer.wcs.wcs.lat
        layer.units = (u.Unit(layer.wcs.wcs.cunit[lng]), u.Unit(layer.wcs.wcs.cunit[lat]))
    frames = cache.setdefault("frames", [])
    for frame, units, lonlat in frames:
        if units == layer.units and frame.is_equivalent_frame(layer.frame):
            return lonlat
    c = coords.transform_to(layer.frame)
    # as in astropy.wcs.utils.skycoord_to_pixel
    try:
        lon, lat = c.data.lon, c.data.lat
    except AttributeError:
        lon, lat = c.spherical.lon, c.spherical.lat
    lonlat = (lon.to_value(layer.units[0]), lat.to_value(layer.units[1]))
    frames.append((layer.frame, layer.units, lonlat))
    return lonlat


def _layer_centre_icrs(layer):
    if not hasattr(layer, "_centre_icrs"):
        from astropy.wcs.utils import pixel_to_skycoord

        ny, nx = layer.shape
        c = pixel_to_skycoord((nx - 1) / 2, (ny - 1) / 2, layer.wcs, origin=0).icrs
        layer._centre_icrs = unit_vectors(c.ra.rad, c.dec.rad)
        # recompute the radius in ICRS
        xs = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
        ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        corners = pixel_to_skycoord(xs, ys, layer.wcs, origin=0).icrs
        cv = unit_vectors(corners.ra.rad, corners.dec.rad)
        radius = np.arccos(np.clip(np.min(cv @ layer._centre_icrs), -1, 1))
        layer.cos_radius = np.cos(min(np.pi, 1.05 * radius + np.radians(1 / 3600)))
    return layer._centre_icrs


def _iter_cutouts(images, positions, size, bands, pixel_band, extension, chunk_size, progress,
                  whole=True):
    """
    Yield (Cutout, number of off-image sources) per chunk.

    *whole*: the caller keeps every chunk (`Cutout.from_images`), so the
    memory check is on all stamps, not on one chunk.
    """
    has_angle = isinstance(size, u.Quantity) or (
        isinstance(size, (tuple, list)) and any(isinstance(v, u.Quantity) for v in size)
    )
    shape = None if has_angle else _parse_size(size)
    bands = _check_bands(bands)
    if not isinstance(images, Mapping):
        raise TypeError(
            f"images must be a dict mapping band name -> image, got {type(images).__name__}"
        )
    missing = [b for b in bands if b not in images]
    if missing:
        raise BandError(
            f"no image for band(s) {missing}; images are given for {sorted(images)}"
        )
    opened = []
    try:
        layers = {b: _open_band(images[b], b, opened) for b in bands}
        if shape is None:  # angular size: pixel scale of the first band's (first) image
            shape = _parse_size(size, layers[bands[0]][0].wcs)
        pix = None
        if isinstance(positions, SkyCoord):
            coords = positions.reshape((1,)) if positions.isscalar else positions
            if coords.ndim != 1:
                coords = coords.ravel()
            if pixel_band is not None:
                raise ValueError("pixel_band is only used with pixel positions")
        else:
            coords, pix = _pixel_positions(positions, pixel_band, extension, layers, images)
        n = len(coords)
        if n == 0:
            raise ValueError("no positions given")
        _check_finite(coords)
        step = n if chunk_size is None else int(chunk_size)
        if step < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        _check_memory(n if whole else min(n, step), shape, len(bands), whole)
        starts = range(0, n, step)
        starts = progress_bar(starts, progress=progress and len(starts) > 1, desc="cutouts",
                              unit="chunk")
        for start in starts:
            sl = slice(start, min(n, start + step))
            chunk_pix = None if pix is None else tuple(p[sl] for p in pix)
            yield _cut_chunk(coords[sl], chunk_pix, layers, bands, shape, pixel_band)
    finally:
        with warnings.catch_warnings():
            # closing a truncated file repeats astropy's truncation warning
            warnings.simplefilter("ignore", AstropyUserWarning)
            for hdul in opened:
                hdul.close()


def _physical_memory():
    """Bytes of physical memory of this machine (None if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _check_memory(n, shape, n_bands, whole):
    """Refuse stamps (float32 data + bool mask) that cannot fit in memory."""
    h, w = shape
    need = n * h * w * n_bands * (np.dtype(np.float32).itemsize + 1)
    have = _physical_memory()
    if have is not None and need > have:
        what = f"{n} stamps" if whole else f"a chunk of {n} stamps"
        hint = ("use Cutout.iter_from_images with a smaller chunk_size, or smaller stamps"
                if whole else "use a smaller chunk_size or smaller stamps")
        raise StampMemoryError(
            f"{what} of {h}x{w} pixels in {n_bands} band(s) would need "
            f"{need / 2**30:.1f} GiB (float32 data and mask), more than this machine's "
            f"{have / 2**30:.1f} GiB of memory; {hint}"
        )


def _check_finite(coords):
    sph = coords.spherical
    check_finite_coords(np.atleast_1d(sph.lon.deg), np.atleast_1d(sph.lat.deg), "positions")


def _pixel_positions(positions, pixel_band, extension, layers, images):
    if pixel_band is None:
        raise ValueError(
            "positions are not a SkyCoord: give pixel positions (x, y) together with "
            "pixel_band=<band whose pixel grid they refer to>"
        )
    if pixel_band not in layers:
        if pixel_band not in images:
            raise BandError(f"pixel_band {pixel_band!r} has no image")
        raise BandError(f"pixel_band {pixel_band!r} must be one of the requested bands")
    try:
        xy = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"positions must be a SkyCoord or pixel positions (x, y) of shape (N, 2) "
            f"in band {pixel_band!r}: {exc}"
        ) from None
    if xy.ndim == 1 and xy.shape == (2,):
        xy = xy[None, :]
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"pixel positions must have shape (N, 2) as (x, y), got {xy.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(xy), axis=1))
    if bad.size:
        raise ValueError(
            f"pixel positions has {bad.size} non-finite position(s), first at row {bad[0]}: "
            f"{xy[bad[0]].tolist()}"
        )
    band_layers = layers[pixel_band]
    n = xy.shape[0]
    if extension is None:
        if len(band_layers) > 1:
            raise ValueError(
                f"band {pixel_band!r} has {len(band_layers)} image extensions: pass "
                f"extension= (index of each position's extension) with pixel positions"
            )
        ext = np.zeros(n, dtype=np.int64)
    else:
        try:
            ext = np.broadcast_to(np.asarray(extension, dtype=np.int64), (n,)).copy()
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"extension must be an integer or one integer per position ({n}): {exc}"
            ) from None
        bad = np.flatnonzero((ext < 0) | (ext >= len(band_layers)))
        if bad.size:
            raise ValueError(
                f"extension must be in 0..{len(band_layers) - 1} for band {pixel_band!r}; "
                f"row {bad[0]} has {ext[bad[0]]} ({bad.size} row(s) out of range)"
            )
    from astropy.wcs.utils import pixel_to_skycoord

    pieces = []
    for j in np.unique(ext):
        sel = np.flatnonzero(ext == j)
        c = pixel_to_skycoord(xy[sel, 0], xy[sel, 1], band_layers[j].wcs, origin=0, mode="all")
        pieces.append((sel, c))
    if len(pieces) == 1:
        coords = pieces[0][1]
    else:
        order = np.argsort(np.concatenate([s for s, _ in pieces]))
        coords = _concat_skycoords([c for _, c in pieces])[order]
    return coords, (xy[:, 0], xy[:, 1], ext)


def _cut_chunk(coords, pix, layers, bands, shape, pixel_band):
    h, w = shape
    n = len(coords)
    nb = len(bands)
    data = np.empty((n, h, w, nb), dtype=np.float32)
    # extract_stamps masks pixels off the image (chip gaps), not finite or masked in NDData
    mask = np.empty((n, h, w, nb), dtype=bool)
    index = np.full((n, nb), -1, dtype=np.int64)
    origin = np.zeros((n, nb, 2), dtype=np.int64)
    offsets = np.full((n, 2), np.nan)
    sources = []
    any_in = np.zeros(n, dtype=bool)
    all_in = np.ones(n, dtype=bool)
    cache = {}
    for c, band in enumerate(bands):
        band_layers = layers[band]
        if pix is not None and band == pixel_band:
            x, y, which = pix
            ny_nx = np.array([layer.shape for layer in band_layers])[which]
            inside = (x > -0.5) & (x <= ny_nx[:, 1] - 0.5) & (y > -0.5) & (y <= ny_nx[:, 0] - 0.5)
            which = np.where(inside, which, -1)
        else:
            which, x, y = _locate(coords, band_layers, cache)
        found = which >= 0
        any_in |= found
        all_in &= found
        x0 = np.zeros(n, dtype=np.int64)
        y0 = np.zeros(n, dtype=np.int64)
        if np.any(found):
            x0[found], y0[found] = stamp_origins(x[found], y[found], shape)
        dview = data[..., c] if nb > 1 else data.reshape(n, h, w)
        mview = mask[..., c] if nb > 1 else mask.reshape(n, h, w)
        dview[~found] = np.nan
        mview[~found] = True
        for j in np.unique(which[found]):
            layer = band_layers[j]
            sel = np.flatnonzero(which == j)
            extract_stamps(
                layer.array(), x0[sel], y0[sel], shape, dview, rows=sel,
                image_mask=layer.mask, out_mask=mview,
            )
            index[sel, c] = len(sources)
            sources.append(layer.wcs)
            origin[sel, c, 0] = x0[sel]
            origin[sel, c, 1] = y0[sel]
        if c == 0:
            offsets[found, 0] = x[found] - x0[found] - (w - 1) / 2.0
            offsets[found, 1] = y[found] - y0[found] - (h - 1) / 2.0
    n_off = int(np.count_nonzero(~all_in))
    n_none = int(np.count_nonzero(~any_in))
    cut = Cutout._from_parts(
        data, bands, mask, coords, offsets, _StampWCS(sources, index, origin), None, {}
    )
    return cut, n_off, n_none

