"""
Multi-band image stamps ("cutouts") around sky positions.

`Cutout` holds N stamps of H x W pixels in C bands as an ``(N, H, W, C)``
float32 array with a mask, the sky positions, the sub-pixel offset of each
position from its stamp centre, and enough WCS information to rebuild the
WCS of every stamp.  Stamps are cut from FITS images, `~astropy.io.fits`
HDUs or `~astropy.nddata.NDData` with `Cutout.from_images` (or chunk by
chunk with `Cutout.iter_from_images`), including multi-extension PAndAS
stacks with one CCD per extension.  The pixel convention is exactly that of
`astropy.nddata.Cutout2D` (``mode="partial"``, ``fill_value=np.nan``).
"""

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import NDData
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning

from .exceptions import (
    BandError,
    CorruptFileError,
    ImageShapeError,
    NoWCSError,
    OffImageError,
    OffImageWarning,
    StampMemoryError,
)
from .utils._io import atomic_path
from .utils._sphere import unit_vectors
from .utils._stamps import (
    dihedral_array,
    dihedral_offsets,
    dihedral_pixel_map,
    dihedral_product,
    extract_stamps,
    sorted_quantile,
    stamp_origins,
    zscale_limits,
)
from .utils._wcs import celestial_wcs, check_pixel_scale

__all__ = ["Cutout", "NORMALIZATIONS"]

#: Normalisation methods of `Cutout.normalize` and their default parameters.
NORMALIZATIONS = {
    "asinh": {"softening": 1.0},
    "zscale": {
        "contrast": 0.25,
        "n_samples": 1000,
        "max_reject": 0.5,
        "min_npixels": 5,
        "krej": 2.5,
        "max_iterations": 5,
    },
    "percentile": {"lower": 0.5, "upper": 99.5},
    "standardize": {},
    "none": {},
}

_FORMAT_NAME = "M31CLUSTERS-CUTOUT"
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# Per-stamp WCS bookkeeping
# ---------------------------------------------------------------------------


class _StampWCS:
    """
    Compact record of the WCS of N stamps in C bands.

    ``sources`` is a list of celestial `~astropy.wcs.WCS` (one per image /
    CCD extension actually used), ``index`` (N, C) points into it (-1: no
    WCS), ``origin`` (N, C, 2) is the (x, y) pixel of the source image
    that is pixel (0, 0) of the stamp as cut, and ``turn`` (N,) the
    dihedral transform (0..7, see `Cutout.dihedral`) applied since.
    """

    def __init__(self, sources, index, origin, turn=None):
        self.sources = list(sources)
        self.index = np.asarray(index, dtype=np.int64)
        self.origin = np.asarray(origin, dtype=np.int64)
        n = self.index.shape[0]
        self.turn = (np.zeros(n, dtype=np.int8) if turn is None
                     else np.asarray(turn, dtype=np.int8).reshape(n))

    @classmethod
    def empty(cls, n, c):
        return cls([], np.full((n, c), -1), np.zeros((n, c, 2)))

    def take(self, item):
        return _StampWCS(self.sources, self.index[item], self.origin[item], self.turn[item])

    def select(self, band_idx):
        return _StampWCS(self.sources, self.index[:, band_idx], self.origin[:, band_idx],
                         self.turn)

    def turned(self, k):
        """The record after `dihedral_array` transform(s) *k* (int or (N,) array)."""
        return _StampWCS(self.sources, self.index, self.origin,
                         dihedral_product()[self.turn, np.asarray(k)])

    @classmethod
    def concatenate(cls, items):
        # the same WCS object (e.g. one CCD seen by several chunks) is kept once
        sources, seen, index, origin = [], {}, [], []
        turn = np.concatenate([it.turn for it in items])
        for it in items:
            remap = np.empty(len(it.sources) + 1, dtype=np.int64)
            remap[-1] = -1
            for j, w in enumerate(it.sources):
                if id(w) not in seen:
                    seen[id(w)] = len(sources)
                    sources.append(w)
                remap[j] = seen[id(w)]
            index.append(remap[it.index])
            origin.append(it.origin)
        return cls(sources, np.concatenate(index), np.concatenate(origin), turn)

    def compact(self):
        """The same record keeping only the source WCS actually referenced."""
        used = np.unique(self.index[self.index >= 0])
        remap = np.full(len(self.sources) + 1, -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        return _StampWCS([self.sources[j] for j in used], remap[self.index], self.origin,
                         self.turn)

    def build(self, i, c, shape):
        j = self.index[i, c]
        if j < 0:
            return None
        k = int(self.turn[i])
        cut_shape = tuple(shape) if k % 2 == 0 else tuple(shape)[::-1]
        w = self.sources[j].deepcopy()
        if k and _has_distortion(w):
            # a distortion table or polynomial is tied to the original pixel axes
            return None
        org = self.origin[i, c].astype(np.float64)
        w.wcs.crpix = w.wcs.crpix - org
        if w.sip is not None:
            from astropy.wcs import Sip

            w.sip = Sip(w.sip.a, w.sip.b, w.sip.ap, w.sip.bp, w.sip.crpix - org)
        if k:
            # stamp pixel p' (0-based x, y) shows pixel A p' + b of the stamp as cut;
            # with 1-based FITS pixels P = A P' + c, c = b + 1 - A (1, 1), so the new
            # linear matrix is M A and CRPIX' = A^T (CRPIX - c) (A is orthogonal)
            a, b = dihedral_pixel_map(k, cut_shape)
            cvec = b + 1.0 - a @ np.ones(2)
            crpix = a.T @ (w.wcs.crpix - cvec)
            if w.wcs.has_cd():
                w.wcs.cd = w.wcs.cd @ a
            else:
                w.wcs.pc = w.wcs.get_pc() @ a
            w.wcs.crpix = crpix
            w.wcs.set()
        w.array_shape = tuple(shape)
        return w


def _check_turn(turn, path):
    if turn is not None and turn.size and (turn.min() < 0 or turn.max() > 7):
        raise CorruptFileError(f"{str(path)!r} has dihedral transform numbers outside 0..7")
    return turn


def _has_distortion(w):
    return any(getattr(w, name, None) is not None
               for name in ("sip", "cpdis1", "cpdis2", "det2im1", "det2im2"))


class _StampWCSList(Sequence):
    """Lazy list of the WCS of each stamp in one band (see `Cutout.wcs`)."""

    def __init__(self, cutout, band_index):
        self._cutout = cutout
        self._c = band_index

    def __len__(self):
        return len(self._cutout)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        n = len(self)
        if i < -n or i >= n:
            raise IndexError(f"stamp index {i} out of range for {n} stamps")
        return self._cutout._wcsinfo.build(i % n, self._c, self._cutout.shape[1:3])

    def __repr__(self):
        return f"<{len(self)} stamp WCS in band {self._cutout.bands[self._c]!r}>"


def _check_bands(bands, what="bands"):
    """Band names as a tuple of str; `BandError` if empty or a name repeats."""
    if isinstance(bands, str):
        bands = (bands,)
    try:
        bands = tuple(str(b) for b in bands)
    except TypeError:
        raise BandError(f"{what} must be a band name or a sequence of them, got {bands!r}") from None
    if not bands:
        raise BandError(f"{what} must name at least one band")
    repeated = sorted({b for b in bands if bands.count(b) > 1})
    if repeated:
        raise BandError(f"band names must be unique, {what}={bands} repeats {repeated}")
    return bands


def _read_bands(bands, path):
    try:
        return _check_bands(bands)
    except BandError as exc:
        raise CorruptFileError(f"{str(path)!r}: {exc}") from None


# ---------------------------------------------------------------------------
# Cutout
# ---------------------------------------------------------------------------


class Cutout:
    """
    N multi-band stamps of H x W pixels in C bands.

    Parameters
    ----------
    data : array-like, shape (N, H, W, C)
        Pixel values, stored as float32 (C = ``len(bands)``).  A 3-D array
        is accepted when there is a single band.
    bands : sequence of str
        Band names, one per last axis of *data*.
    mask : array-like of bool, shape (N, H, W, C), optional
        True where a pixel has no valid value (off the image, NaN, chip
        gap).  None means no pixel is masked.  Non-finite pixels (NaN,
        +/-inf) in raw *data* are always treated as masked as well.
    positions : `~astropy.coordinates.SkyCoord`, shape (N,), optional
        Sky position of each stamp's source.
    offsets : array-like, shape (N, 2), optional
        Pixel offset (dx, dy) of the true source position from the
        geometric stamp centre ``((W - 1) / 2, (H - 1) / 2)`` (x along
        columns, y along rows; for stamps cut by `from_images` in the first
        band).  None means zero (sources exactly at the centre).
    wcs : `~astropy.wcs.WCS` or sequence of `~astropy.wcs.WCS`, optional
        One WCS shared by all stamps, or one per stamp (all bands).
    normalization : dict or None
        None for raw stamps, else the JSON-serialisable dict returned by
        `normalize` (it fully reproduces the transform).
    meta : dict, optional
        Free metadata (must be JSON-serialisable to be written to a file).

    Raises
    ------
    ValueError
        If the shapes of *data*, *mask*, *positions* or *offsets* disagree.
    BandError
        If the number of bands is not the size of the last axis of *data*
        or band names repeat.
    NoWCSError
        If a *wcs* is degenerate (zero or non-finite pixel scale, singular
        matrix).

    Examples
    --------
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> data = np.random.default_rng(0).normal(size=(10, 16, 16, 2))
    >>> cut = Cutout(data, bands=("g", "i"))
    >>> cut
    <Cutout: 10 stamps of 16x16 pixels in bands ('g', 'i'), raw>
    >>> cut.shape
    (10, 16, 16, 2)
    >>> len(cut[2:5]), cut.valid_fraction.shape
    (3, (10, 2))
    """

    def __init__(
        self,
        data,
        bands=("g", "i"),
        mask=None,
        positions=None,
        offsets=None,
        wcs=None,
        normalization=None,
        meta=None,
    ):
        bands = _check_bands(bands)
        data = np.asarray(data)
        if data.ndim == 3 and len(bands) == 1:
            data = data[..., None]
        if data.ndim != 4:
            raise ValueError(
                f"data must have shape (N, H, W, C), got an array of shape {data.shape}"
            )
        if data.shape[3] != len(bands):
            raise BandError(
                f"data has {data.shape[3]} band(s) on its last axis but bands={bands} "
                f"names {len(bands)}"
            )
        self._data = np.ascontiguousarray(data, dtype=np.float32)
        n = self._data.shape[0]
        if mask is None:
            mask = np.zeros(self._data.shape, dtype=bool)
        else:
            mask = np.asarray(mask)
            if mask.ndim == 3 and len(bands) == 1:
                mask = mask[..., None]
            if mask.shape != self._data.shape:
                raise ValueError(
                    f"mask shape {mask.shape} differs from data shape {self._data.shape}"
                )
            mask = mask.astype(bool, copy=False)
        if normalization is None:
            # raw data: NaN and +/-inf are never valid pixel values
            mask = mask | ~np.isfinite(self._data)
        self._mask = np.ascontiguousarray(mask)
        if positions is not None:
            if not isinstance(positions, SkyCoord):
                raise TypeError(
                    f"positions must be an astropy SkyCoord or None, got "
                    f"{type(positions).__name__}"
                )
            if positions.isscalar:
                positions = positions.reshape((1,))
            if positions.shape != (n,):
                raise ValueError(f"positions has shape {positions.shape}, expected ({n},)")
        self._positions = positions
        if offsets is None:
            offsets = np.zeros((n, 2))
        offsets = np.asarray(offsets, dtype=np.float64)
        if offsets.shape != (n, 2):
            raise ValueError(f"offsets must have shape ({n}, 2), got {offsets.shape}")
        self._offsets = offsets
        self._bands = bands
        if normalization is not None:
            normalization = _check_normalization_dict(normalization)
        self._normalization = normalization
        self.meta = dict(meta) if meta is not None else {}
        self._wcsinfo = self._make_wcsinfo(wcs, n, len(bands))

    @staticmethod
    def _make_wcsinfo(wcs, n, c):
        if wcs is None:
            return _StampWCS.empty(n, c)
        if isinstance(wcs, _StampWCS):
            if wcs.index.shape != (n, c):
                raise ValueError("internal stamp WCS record does not match the data")
            return wcs
        if isinstance(wcs, WCS):
            return _StampWCS([celestial_wcs(wcs, "wcs")], np.zeros((n, c)), np.zeros((n, c, 2)))
        wcs = list(wcs)
        if len(wcs) != n or not all(isinstance(w, WCS) for w in wcs):
            raise ValueError(
                f"wcs must be None, one astropy WCS, or a sequence of {n} WCS (one per stamp)"
            )
        index = np.repeat(np.arange(n)[:, None], c, axis=1)
        return _StampWCS([celestial_wcs(w, f"wcs[{i}]") for i, w in enumerate(wcs)], index,
                         np.zeros((n, c, 2)))

    # -- basic properties ---------------------------------------------------

    @property
    def data(self):
        """Pixel values, float32 array of shape (N, H, W, C)."""
        return self._data

    @property
    def mask(self):
        """True where a pixel has no valid value; bool array (N, H, W, C)."""
        return self._mask

    @property
    def bands(self):
        """Band names (tuple of str), one per last axis of `data`."""
        return self._bands

    @property
    def positions(self):
        """Sky positions of the stamps (`~astropy.coordinates.SkyCoord`) or None."""
        return self._positions

    @property
    def offsets(self):
        """Offset (dx, dy) in pixels of each source from its stamp's geometric centre."""
        return self._offsets

    @property
    def normalization(self):
        """None for raw stamps, else the dict that reproduces the normalisation."""
        return None if self._normalization is None else dict(self._normalization)

    @property
    def shape(self):
        """``(N, H, W, C)``."""
        return self._data.shape

    @property
    def valid_fraction(self):
        """Fraction of unmasked pixels per stamp and band, array (N, C)."""
        n, h, w, c = self.shape
        if n == 0:
            return np.zeros((0, c))
        return 1.0 - self._mask.reshape(n, h * w, c).mean(axis=1)

    @property
    def wcs(self):
        """
        Lazy list of the WCS of each stamp in the first band.

        ``cut.wcs[i]`` is a celestial `~astropy.wcs.WCS` (or None where no
        WCS is known); see `stamp_wcs` for other bands.
        """
        return _StampWCSList(self, 0)

    def stamp_wcs(self, index, band=None):
        """
        The WCS of stamp *index* in *band* (default: the first band).

        Parameters
        ----------
        index : int
            Stamp index.
        band : str, optional
            Band name.

        Returns
        -------
        wcs : `~astropy.wcs.WCS` or None
            None when the stamp has no WCS (off the image, simulated, or a
            distorted WCS transformed by `dihedral`).

        Raises
        ------
        BandError
            If *band* is not one of `bands`.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.wcs import WCS
        >>> from m31clusters.cutout import Cutout
        >>> w = WCS(naxis=2); w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        >>> cut = Cutout(np.zeros((3, 8, 8, 2)), wcs=w)
        >>> cut.stamp_wcs(0, "i").wcs.ctype[0]
        'RA---TAN'
        >>> turned = cut.dihedral(1).stamp_wcs(0)  # follows the rotated pixels
        >>> turned.wcs.crpix
        array([0., 9.])
        """
        c = 0 if band is None else self._band_index(band)
        return _StampWCSList(self, c)[index]

    def _band_index(self, band):
        try:
            return self._bands.index(band)
        except ValueError:
            raise BandError(f"band {band!r} not in this Cutout's bands {self._bands}") from None

    def __len__(self):
        return self._data.shape[0]

    def __repr__(self):
        n, h, w, _ = self.shape
        norm = "raw" if self._normalization is None else f"{self._normalization['method']}"
        return f"<Cutout: {n} stamps of {h}x{w} pixels in bands {self._bands}, {norm}>"

    @classmethod
    def _from_parts(cls, data, bands, mask, positions, offsets, wcsinfo, normalization, meta):
        """Build without validation or copies (internal use on trusted arrays)."""
        new = cls.__new__(cls)
        new._data = data
        new._mask = mask
        new._positions = positions
        new._offsets = offsets
        new._bands = tuple(bands)
        new._normalization = normalization
        new.meta = dict(meta)
        new._wcsinfo = wcsinfo
        return new

    def _new(self, data, mask, positions, offsets, wcsinfo, normalization=None, meta=None):
        new = Cutout.__new__(Cutout)
        new._data = data
        new._mask = mask
        new._positions = positions
        new._offsets = offsets
        new._bands = self._bands
        new._normalization = normalization
        new.meta = dict(self.meta if meta is None else meta)
        new._wcsinfo = wcsinfo
        return new

    def __getitem__(self, item):
        """
        Select stamps by int, slice, boolean mask or integer array.

        Always returns a `Cutout` (an int gives a Cutout of one stamp);
        positions, offsets and stamp WCS follow the selection.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> cut = Cutout(np.arange(4.0)[:, None, None, None] * np.ones((4, 2, 2, 1)),
        ...              bands="g")
        >>> cut[cut.data[:, 0, 0, 0] > 1].data[:, 0, 0, 0]
        array([2., 3.], dtype=float32)
        >>> len(cut[1]), len(cut[::2])
        (1, 2)
        """
        if isinstance(item, (int, np.integer)):
            n = len(self)
            if item < -n or item >= n:
                raise IndexError(f"stamp index {item} out of range for {n} stamps")
            item = slice(item % n, item % n + 1)
        elif not isinstance(item, slice):
            item = np.asarray(item)
            if item.dtype == bool:
                if item.shape != (len(self),):
                    raise IndexError(
                        f"boolean index has shape {item.shape}, expected ({len(self)},)"
                    )
            elif not np.issubdtype(item.dtype, np.integer):
                raise IndexError(
                    f"Cutout index must be int, slice, bool or int array, got {item.dtype}"
                )
        pos = None if self._positions is None else self._positions[item]
        return self._new(
            self._data[item],
            self._mask[item],
            pos,
            self._offsets[item],
            self._wcsinfo.take(item),
            self._normalization,
        )

    def select_bands(self, bands):
        """
        A new Cutout with only *bands*, in the given order.

        Parameters
        ----------
        bands : str or sequence of str
            Band names.

        Returns
        -------
        `Cutout`

        Raises
        ------
        BandError
            If a band is not present or repeats.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> Cutout(np.zeros((2, 8, 8, 2)), bands=("g", "i")).select_bands("i").bands
        ('i',)
        """
        bands = _check_bands(bands)
        idx = [self._band_index(b) for b in bands]
        new = self._new(
            self._data[..., idx],
            self._mask[..., idx],
            self._positions,
            self._offsets,
            self._wcsinfo.select(idx),
            self._normalization,
        )
        new._bands = tuple(bands)
        return new

    @classmethod
    def concatenate(cls, cutouts):
        """
        Join Cutouts with the same stamp shape, bands and normalisation.

        Parameters
        ----------
        cutouts : sequence of `Cutout`

        Returns
        -------
        `Cutout`

        Raises
        ------
        ValueError
            If the list is empty, or stamp shapes or normalisations differ.
        BandError
            If the bands differ.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> a = Cutout(np.zeros((3, 8, 8, 2)))
        >>> len(Cutout.concatenate([a, a[:1]]))
        4
        """
        cutouts = list(cutouts)
        if not cutouts:
            raise ValueError("cannot concatenate an empty list of Cutouts")
        first = cutouts[0]
        for i, c in enumerate(cutouts):
            if not isinstance(c, Cutout):
                raise TypeError(f"item {i} is a {type(c).__name__}, not a Cutout")
            if c.bands != first.bands:
                raise BandError(f"item {i} has bands {c.bands}, item 0 has {first.bands}")
            if c.shape[1:3] != first.shape[1:3]:
                raise ValueError(
                    f"item {i} has {c.shape[1]}x{c.shape[2]} stamps, item 0 has "
                    f"{first.shape[1]}x{first.shape[2]}"
                )
            if c._normalization != first._normalization:
                raise ValueError(
                    f"item {i} has normalization {c._normalization}, item 0 has "
                    f"{first._normalization}"
                )
        have_pos = [c._positions is not None for c in cutouts]
        if all(have_pos):
            pos = _concat_skycoords([c._positions for c in cutouts])
        elif not any(have_pos):
            pos = None
        else:
            raise ValueError("cannot concatenate Cutouts with and without positions")
        meta = {}
        for c in cutouts:
            meta.update(c.meta)
        return first._new(
            np.concatenate([c._data for c in cutouts]),
            np.concatenate([c._mask for c in cutouts]),
            pos,
            np.concatenate([c._offsets for c in cutouts]),
            _StampWCS.concatenate([c._wcsinfo for c in cutouts]),
            first._normalization,
            meta,
        )

    # -- augmentation ------------------------------------------------------

    def dihedral(self, k):
        """
        Apply one of the 8 rotations/flips to every stamp.

        ``k % 4`` quarter turns with `numpy.rot90` over the (row, column)
        axes, then for ``k >= 4`` a left-right flip (columns reversed).
        ``k = 0`` is the identity.  Offsets and the stamp WCS (`wcs`,
        `stamp_wcs`) follow the pixels, so a transformed stamp still maps
        to the sky; a stamp WCS with distortions (SIP, lookup tables) cannot
        be turned and becomes None.  Positions are kept.  Non-square stamps
        swap H and W for odd ``k``.

        Parameters
        ----------
        k : int
            Transform number, 0 to 7.

        Returns
        -------
        `Cutout`

        Raises
        ------
        ValueError
            If *k* is not an integer in 0..7.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> d = np.zeros((1, 3, 3, 1)); d[0, 0, 2, 0] = 1  # row 0, column 2
        >>> cut = Cutout(d, bands=("g",))
        >>> cut.dihedral(1).data[0, :, :, 0]
        array([[1., 0., 0.],
               [0., 0., 0.],
               [0., 0., 0.]], dtype=float32)
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= 7:
            raise ValueError(f"k must be an integer from 0 to 7, got {k!r}")
        k = int(k)
        if k == 0:
            return self[:]
        return self._new(
            np.ascontiguousarray(dihedral_array(self._data, k)),
            np.ascontiguousarray(dihedral_array(self._mask, k)),
            self._positions,
            dihedral_offsets(self._offsets, k),
            self._wcsinfo.turned(k),
            self._normalization,
        )

    def augment_dihedral(self):
        """
        All 8 dihedral transforms of every stamp: a Cutout 8 times longer.

        Stamp ``j * N + i`` is stamp ``i`` transformed by ``dihedral(j)``.
        Needs square stamps.

        Returns
        -------
        `Cutout`

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> len(Cutout(np.zeros((5, 8, 8, 2))).augment_dihedral())
        40
        """
        if self.shape[1] != self.shape[2]:
            raise ValueError(f"augment_dihedral needs square stamps, got {self.shape[1:3]}")
        n = len(self)
        data = np.empty((8 * n, *self.shape[1:]), dtype=np.float32)
        mask = np.empty(data.shape, dtype=bool)
        offsets = np.empty((8 * n, 2))
        for k in range(8):
            data[k * n : (k + 1) * n] = dihedral_array(self._data, k)
            mask[k * n : (k + 1) * n] = dihedral_array(self._mask, k)
            offsets[k * n : (k + 1) * n] = dihedral_offsets(self._offsets, k)
        pos = self._positions
        if pos is not None:
            pos = pos[np.tile(np.arange(n), 8)]
        wcsinfo = _StampWCS.concatenate([self._wcsinfo.turned(k) for k in range(8)])
        return self._new(data, mask, pos, offsets, wcsinfo, self._normalization)

    # -- normalisation -----------------------------------------------------

    def normalize(self, method="asinh", fill_value=0.0, **params):
        """
        Normalise every stamp, per stamp and per band.

        Statistics use only valid pixels (not masked, finite).  After the
        transform, masked and NaN pixels are set to *fill_value*.  A stamp
        band with no valid pixel is all *fill_value*.  Where the scale of a
        stamp band is zero or undefined (e.g. a constant stamp) it is
        replaced by 1 so the result is finite.

        Methods (``x`` a pixel, statistics over the valid pixels of one
        band of one stamp):

        ``"asinh"`` (parameter ``softening``, default 1)
            ``arcsinh((x - median) / (softening * sigma))`` with
            ``sigma = 1.4826 * median(|x - median|)`` (robust standard
            deviation).
        ``"zscale"`` (parameters of `~astropy.visualization.ZScaleInterval`)
            ``clip((x - z1) / (z2 - z1), 0, 1)`` with the IRAF zscale
            limits ``z1, z2``.  Loops over stamps (slower than the others).
        ``"percentile"`` (``lower``, ``upper`` in percent, default 0.5, 99.5)
            ``clip((x - p_lower) / (p_upper - p_lower), 0, 1)``, percentiles
            with numpy's linear rule.
        ``"standardize"``
            ``(x - mean) / std``.
        ``"none"``
            No change except the fill.

        Parameters
        ----------
        method : str
            One of `NORMALIZATIONS`.
        fill_value : float
            Value of masked pixels after normalisation.
        **params
            Method parameters (see above); unknown names raise.

        Returns
        -------
        `Cutout`
            With ``normalization`` set to ``{"method": method, **params,
            "fill_value": fill_value}`` (all parameters, defaults
            included); ``cut.normalize(**other.normalization)`` repeats
            the transform exactly.

        Raises
        ------
        ValueError
            If the Cutout is already normalised, *method* is unknown or a
            parameter is invalid.

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> d = np.random.default_rng(1).normal(100, 10, size=(4, 16, 16, 2))
        >>> norm = Cutout(d).normalize("standardize")
        >>> norm.normalization
        {'method': 'standardize', 'fill_value': 0.0}
        >>> bool(np.allclose(norm.data.mean(axis=(1, 2)), 0, atol=1e-5))
        True
        """
        if self._normalization is not None:
            raise ValueError(
                f"this Cutout is already normalised ({self._normalization}); normalise the "
                f"raw stamps instead"
            )
        config = _check_normalization_dict({"method": method, "fill_value": fill_value, **params})
        data = self._data
        n, h, w, c = data.shape
        out = np.empty_like(data)
        # small blocks keep the float64 temporaries in cache
        block = max(1, 2**18 // max(1, h * w * c))
        for start in range(0, n, block):
            sl = slice(start, start + block)
            out[sl] = _normalize_block(data[sl], self._mask[sl], config)
        return self._new(
            out, self._mask.copy(), self._positions, self._offsets, self._wcsinfo, config
        )

    # -- construction from images -------------------------------------------

    @classmethod
    def from_images(
        cls,
        images,
        positions,
        size=64,
        bands=("g", "i"),
        pixel_band=None,
        extension=None,
        chunk_size=None,
        progress=True,
    ):
        """
        Cut stamps around *positions* from images in several bands.

        Each band is centred on the same sky position with its own WCS.
        In a multi-extension file (such as a PAndAS stack with one CCD per
        extension, each with its own WCS) each source is cut from the
        extension that contains it, the one where it is farthest from an
        edge when several do.  Pixels off that extension (chip gaps, edges)
        are NaN and masked; stamps of sources outside every extension are
        fully masked and counted in an `~m31clusters.exceptions.OffImageWarning`.

        The stamp pixels are exactly those of
        ``Cutout2D(data, position, size, wcs=wcs, mode="partial",
        fill_value=np.nan)``: the first column is
        ``ceil(x - W / 2)`` (0-based pixels, integers at pixel centres),
        also for even sizes.

        Images are memory-mapped and read only where stamps fall; for a
        very large number of positions use `iter_from_images`.

        Parameters
        ----------
        images : dict
            Band name -> FITS path, `~astropy.io.fits.HDUList`,
            `~astropy.io.fits.ImageHDU` / `~astropy.io.fits.PrimaryHDU` /
            `~astropy.io.fits.CompImageHDU`, or `~astropy.nddata.NDData`
            with a celestial `~astropy.wcs.WCS` (its ``mask``, if any, is
            propagated).
        positions : `~astropy.coordinates.SkyCoord` or array-like
            Sky positions, or 0-based pixel positions ``(x, y)`` of shape
            (N, 2) in the image of *pixel_band* (subtract 1 from 1-based
            FITS-convention coordinates such as those of most catalogues).
        size : int, (int, int) or `~astropy.units.Quantity`
            Stamp size in pixels, ``(H, W)`` for a pair (as `Cutout2D`); an
            angle (or pair of angles) is converted to pixels with the pixel
            scale of the first band's image and rounded, as `Cutout2D` does.
        bands : sequence of str
            Bands to cut, in output order.
        pixel_band : str, optional
            The band whose pixel grid pixel *positions* refer to (required
            for pixel positions).
        extension : int or array-like of int, optional
            For pixel positions in a multi-extension image: the index,
            among that band's image extensions (0-based, not counting an
            empty primary HDU), of each position's extension (for a PAndAS
            stack, the CCD number counted from 0).
        chunk_size : int, optional
            Process positions in chunks of this many (all at once if None).
        progress : bool
            Show a progress bar over chunks.

        Returns
        -------
        `Cutout`

        Raises
        ------
        BandError
            If a requested band has no image, or *bands* repeats a band.
        NoWCSError
            If an image has no celestial WCS, or a degenerate one (pixel
            scale zero or not finite, singular CD / PC matrix); the message
            names the band and the file.
        CorruptFileError
            If an image file is truncated or not FITS (naming band, file
            and, for unreadable pixels, the extension).
        ImageShapeError
            If an image is not 2-D or its mask does not match it.
        OffImageError
            If every position is outside every image.
        StampMemoryError
            If the stamps (float32 data and mask) would need more memory
            than the machine has; the message gives the size.
        ValueError
            If *size* is not positive, or a position is not finite (the
            message names the row).

        Warns
        -----
        OffImageWarning
            When some (not all) positions are outside every image.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.io import fits
        >>> from astropy.wcs import WCS
        >>> from m31clusters.cutout import Cutout
        >>> from m31clusters.geometry import M31_CENTER
        >>> w = WCS(naxis=2)
        >>> w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        >>> w.wcs.crval = [M31_CENTER.ra.deg, M31_CENTER.dec.deg]
        >>> w.wcs.crpix = [50.5, 50.5]
        >>> w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
        >>> img = fits.ImageHDU(np.arange(100 * 100, dtype="f4").reshape(100, 100),
        ...                     header=w.to_header())
        >>> cut = Cutout.from_images({"g": img, "i": img}, M31_CENTER, size=5)
        >>> cut.shape
        (1, 5, 5, 2)
        >>> cut.data[0, 2, 2, 0]  # pixel (x=49.5 -> 49, y=49) = 49 * 100 + 49
        np.float32(4949.0)
        >>> cut.offsets
        array([[0.5, 0.5]])
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
        if n_total and n_none == n_total:
            raise OffImageError(
                f"all {n_total} positions are outside every image of bands {tuple(bands)}"
            )
        if n_off:
            warnings.warn(
                f"{n_off} of {n_total} positions are outside every image of at least one "
                f"band; their stamps in those bands are fully masked",
                OffImageWarning,
            )
        return parts[0] if len(parts) == 1 else Cutout.concatenate(parts)

    @classmethod
    def iter_from_images(
        cls,
        images,
        positions,
        size=64,
        bands=("g", "i"),
        pixel_band=None,
        extension=None,
        chunk_size=4096,
        progress=True,
    ):
        """
        Like `from_images`, but yield one `Cutout` per chunk of positions.

        Peak memory stays near the size of one output chunk (images are
        memory-mapped; only the pixels under the stamps are read).  Files
        opened from paths are closed when the iterator is exhausted or
        closed.

        Parameters
        ----------
        images, positions, size, bands, pixel_band, extension
            As in `from_images`.
        chunk_size : int
            Positions per yielded Cutout.
        progress : bool
            Show a progress bar over chunks.

        Yields
        ------
        `Cutout`
            Stamps of consecutive chunks of *positions*, in order.

        Warns
        -----
        OffImageWarning
            For each chunk with positions outside every image.

        Raises
        ------
        OffImageError
            At the end, if every position was outside every image.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.nddata import NDData
        >>> from astropy.wcs import WCS
        >>> from m31clusters.cutout import Cutout
        >>> w = WCS(naxis=2); w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        >>> w.wcs.crval = [10.68, 41.27]; w.wcs.cdelt = [-5e-5, 5e-5]
        >>> img = NDData(np.ones((200, 200), dtype="f4"), wcs=w)
        >>> xy = np.random.default_rng(0).uniform(0, 199, size=(10, 2))
        >>> chunks = Cutout.iter_from_images({"g": img}, xy, size=9, bands=("g",),
        ...                                  pixel_band="g", chunk_size=4, progress=False)
        >>> [len(c) for c in chunks]
        [4, 4, 2]
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
        if n_total and n_none == n_total:
            raise OffImageError(
                f"all {n_total} positions are outside every image of bands {tuple(bands)}"
            )

    # -- file I/O ------------------------------------------------------------

    def write(self, path, overwrite=False):
        """
        Write the Cutout to a FITS (or HDF5) file, atomically.

        FITS (any suffix but ``.h5``/``.hdf5``/``.hdf``), with checksums:
        HDUs ``DATA`` (float32 cube, FITS axes C, W, H, N), ``MASK``
        (uint8), ``STAMPS`` (table of positions in ICRS, offsets and stamp
        WCS origins) and one header-only ``SRCWCS`` HDU per source WCS.
        Bands, normalisation and meta are stored as JSON in the primary
        header.  HDF5 (needs the optional h5py): the same content as
        datasets (gzip-compressed, with Fletcher-32 checksums) and JSON
        attributes.  Positions are stored in ICRS.

        Parameters
        ----------
        path : str or path-like
            Output file; a ``.h5``, ``.hdf5`` or ``.hdf`` suffix selects HDF5.
        overwrite : bool
            Replace an existing file.

        Raises
        ------
        FileExistsError
            If *path* exists and *overwrite* is False.
        TypeError
            If `meta` is not JSON-serialisable.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> path = os.path.join(tempfile.mkdtemp(), "stamps.fits")
        >>> Cutout(np.ones((2, 8, 8, 2)), meta={"zeropoints": {"g": 30.0}}).write(path)
        >>> Cutout.read(path).meta
        {'zeropoints': {'g': 30.0}}
        """
        try:
            meta_json = json.dumps(self.meta)
        except TypeError as exc:
            raise TypeError(f"Cutout.meta must be JSON-serialisable to be written: {exc}") from exc
        wcsinfo = self._wcsinfo.compact()
        if _is_hdf5_path(path):
            return self._write_hdf5(path, overwrite, meta_json, wcsinfo)
        primary = fits.PrimaryHDU()
        hdr = primary.header
        hdr["CUTFMT"] = (_FORMAT_NAME, "file format")
        hdr["CUTVER"] = (_FORMAT_VERSION, "file format version")
        hdr["NSTAMPS"] = len(self)
        hdr["BANDS"] = json.dumps(list(self._bands))
        hdr["NORMLIZ"] = json.dumps(self._normalization)
        hdr["METAJSON"] = meta_json
        hdr["HASPOS"] = self._positions is not None
        data_hdu = fits.ImageHDU(self._data, name="DATA")
        mask_hdu = fits.ImageHDU(self._mask.astype(np.uint8), name="MASK")
        cols = [
            fits.Column("OFFSET", "2D", array=self._offsets),
            fits.Column(
                "WCSINDEX", f"{len(self._bands)}K", array=wcsinfo.index
            ),
            fits.Column(
                "ORIGIN",
                f"{2 * len(self._bands)}K",
                dim=f"(2,{len(self._bands)})",
                array=wcsinfo.origin,
            ),
            fits.Column("TURN", "B", array=wcsinfo.turn.astype(np.uint8)),
        ]
        if self._positions is not None:
            icrs = self._positions.icrs
            cols += [
                fits.Column("RA", "D", unit="deg", array=icrs.ra.deg),
                fits.Column("DEC", "D", unit="deg", array=icrs.dec.deg),
            ]
        table_hdu = fits.BinTableHDU.from_columns(cols, name="STAMPS")
        hdus = [primary, data_hdu, mask_hdu, table_hdu]
        for j, w in enumerate(wcsinfo.sources):
            h = fits.ImageHDU(name="SRCWCS", header=w.to_header(relax=True))
            h.header["EXTVER"] = j + 1
            hdus.append(h)
        with atomic_path(path, overwrite) as tmp:
            fits.HDUList(hdus).writeto(tmp, checksum=True)

    @classmethod
    def read(cls, path):
        """
        Read a Cutout written by `write`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        `Cutout`

        Raises
        ------
        FileNotFoundError
            If *path* does not exist.
        CorruptFileError
            If the file is truncated, fails its checksums or is not a
            Cutout file (the message names the file).
        ImportError
            For an HDF5 file (``.h5``, ``.hdf5``, ``.hdf``) without h5py.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> path = os.path.join(tempfile.mkdtemp(), "c.fits")
        >>> Cutout(np.ones((3, 8, 8, 2))).normalize("none").write(path)
        >>> Cutout.read(path)
        <Cutout: 3 stamps of 8x8 pixels in bands ('g', 'i'), none>
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such file: {str(path)!r}")
        if _is_hdf5_path(path):
            return cls._read_hdf5(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with fits.open(path, memmap=False, checksum=True) as hdul:
                    hdul.verify("exception")
                    return cls._from_hdulist(hdul, path, caught)
        except CorruptFileError:
            raise
        except Exception as exc:  # astropy raises many types on broken files
            raise CorruptFileError(
                f"{str(path)!r} is truncated, corrupt or not a Cutout file: {exc}"
            ) from exc

    def _write_hdf5(self, path, overwrite, meta_json, wcsinfo):
        h5py = _import_h5py()
        with atomic_path(path, overwrite) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = _FORMAT_NAME
                f.attrs["version"] = _FORMAT_VERSION
                f.attrs["bands"] = json.dumps(list(self._bands))
                f.attrs["normalization"] = json.dumps(self._normalization)
                f.attrs["meta"] = meta_json
                opts = {"compression": "gzip", "shuffle": True, "fletcher32": True}
                if len(self):
                    opts["chunks"] = (1, *self.shape[1:])
                else:
                    opts = {}
                f.create_dataset("data", data=self._data, **opts)
                f.create_dataset("mask", data=self._mask, **opts)
                f.create_dataset("offsets", data=self._offsets)
                f.create_dataset("wcs_index", data=wcsinfo.index)
                f.create_dataset("wcs_origin", data=wcsinfo.origin)
                f.create_dataset("wcs_turn", data=wcsinfo.turn)
                f.create_dataset(
                    "wcs_headers",
                    data=np.array(
                        [w.to_header(relax=True).tostring() for w in wcsinfo.sources],
                        dtype=h5py.string_dtype(),
                    ),
                )
                if self._positions is not None:
                    icrs = self._positions.icrs
                    f.create_dataset("ra", data=icrs.ra.deg)
                    f.create_dataset("dec", data=icrs.dec.deg)

    @classmethod
    def _read_hdf5(cls, path):
        h5py = _import_h5py()
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != _FORMAT_NAME:
                    raise CorruptFileError(f"{str(path)!r} is not a Cutout file")
                if int(f.attrs.get("version", 0)) > _FORMAT_VERSION:
                    raise CorruptFileError(
                        f"{str(path)!r} has Cutout format version {f.attrs['version']}, "
                        f"newer than this m31clusters understands ({_FORMAT_VERSION})"
                    )
                bands = _read_bands(json.loads(f.attrs["bands"]), path)
                data = f["data"][...]
                mask = f["mask"][...]
                sources = []
                for text in f["wcs_headers"].asstr()[...]:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", FITSFixedWarning)
                        sources.append(WCS(fits.Header.fromstring(text), naxis=2))
                index = f["wcs_index"][...]
                origin = f["wcs_origin"][...]
                turn = f["wcs_turn"][...] if "wcs_turn" in f else None
                positions = None
                if "ra" in f:
                    positions = SkyCoord(f["ra"][...] * u.deg, f["dec"][...] * u.deg,
                                         frame="icrs")
                n = data.shape[0]
                if index.size and index.max() >= len(sources):
                    raise CorruptFileError(f"{str(path)!r} refers to missing WCS headers")
                return cls(
                    data,
                    bands=bands,
                    mask=mask,
                    positions=positions,
                    offsets=f["offsets"][...],
                    wcs=_StampWCS(sources, index.reshape(n, len(bands)),
                                  origin.reshape(n, len(bands), 2), _check_turn(turn, path)),
                    normalization=json.loads(f.attrs["normalization"]),
                    meta=json.loads(f.attrs["meta"]),
                )
        except CorruptFileError:
            raise
        except Exception as exc:
            raise CorruptFileError(
                f"{str(path)!r} is truncated, corrupt or not a Cutout file: {exc}"
            ) from exc

    @classmethod
    def _from_hdulist(cls, hdul, path, caught):
        hdr = hdul[0].header
        if hdr.get("CUTFMT") != _FORMAT_NAME:
            raise CorruptFileError(f"{str(path)!r} is not a Cutout file (no CUTFMT keyword)")
        if hdr.get("CUTVER", 0) > _FORMAT_VERSION:
            raise CorruptFileError(
                f"{str(path)!r} has Cutout format version {hdr['CUTVER']}, newer than "
                f"this m31clusters understands ({_FORMAT_VERSION})"
            )
        data = np.asarray(hdul["DATA"].data, dtype=np.float32)
        mask = np.asarray(hdul["MASK"].data).astype(bool)
        table = hdul["STAMPS"].data
        bands = _read_bands(json.loads(hdr["BANDS"]), path)
        n = int(hdr["NSTAMPS"])
        if data.shape[0] != n or mask.shape != data.shape or len(table) != n:
            raise CorruptFileError(
                f"{str(path)!r} is inconsistent: NSTAMPS={n}, data {data.shape}, "
                f"mask {mask.shape}, table {len(table)} rows"
            )
        bad = [w for w in caught if "checksum" in str(w.message).lower()
               or "truncat" in str(w.message).lower()]
        if bad:
            raise CorruptFileError(f"{str(path)!r} is corrupt: {bad[0].message}")
        positions = None
        if hdr.get("HASPOS"):
            positions = SkyCoord(table["RA"] * u.deg, table["DEC"] * u.deg, frame="icrs")
        sources = []
        for h in hdul[4:]:
            if h.name == "SRCWCS":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FITSFixedWarning)
                    sources.append(WCS(h.header, naxis=2))
        index = np.asarray(table["WCSINDEX"], dtype=np.int64).reshape(n, len(bands))
        origin = np.asarray(table["ORIGIN"], dtype=np.int64).reshape(n, len(bands), 2)
        turn = np.asarray(table["TURN"]) if "TURN" in table.names else None
        turn = _check_turn(turn, path)
        if index.size and index.max() >= len(sources):
            raise CorruptFileError(f"{str(path)!r} refers to missing SRCWCS HDUs")
        return cls(
            data,
            bands=bands,
            mask=mask,
            positions=positions,
            offsets=np.asarray(table["OFFSET"], dtype=np.float64).reshape(n, 2),
            wcs=_StampWCS(sources, index, origin, turn),
            normalization=json.loads(hdr["NORMLIZ"]),
            meta=json.loads(hdr["METAJSON"]),
        )

    # -- plotting --------------------------------------------------------------

    def plot(self, n=16, band=None, ncols=None, stretch="asinh", seed=None, fig=None,
             labels=None):
        """
        Show a montage of stamps (needs matplotlib).

        Parameters
        ----------
        n : int
            Number of stamps (the first *n*, or a random *n* if *seed* is
            given).
        band : str, optional
            Band to show; default: a colour composite of the first two bands
            if there are at least two (first band blue, second red, mean
            green), else the first band.
        ncols : int, optional
            Columns of the montage (default ``ceil(sqrt(n))``).
        stretch : str
            Normalisation method applied for display if the stamps are raw
            (see `normalize`); ``"percentile"`` or ``"zscale"`` give [0, 1]
            images directly, others are rescaled to [0, 1] per stamp.
        seed : int, optional
            Pick a random subset of stamps reproducibly.
        fig : `matplotlib.figure.Figure`, optional
            Figure to draw in (a new one by default).
        labels : sequence of str, optional
            Title of each shown stamp.

        Returns
        -------
        fig : `matplotlib.figure.Figure`

        Examples
        --------
        >>> import numpy as np
        >>> from m31clusters.cutout import Cutout
        >>> cut = Cutout(np.random.default_rng(0).normal(size=(6, 16, 16, 2)))
        >>> fig = cut.plot(n=4, seed=0)
        >>> sum(bool(ax.images) for ax in fig.axes)
        4
        """
        import matplotlib.pyplot as plt

        total = len(self)
        n = min(int(n), total)
        if n < 1:
            raise ValueError("nothing to plot: the Cutout is empty")
        idx = (
            np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
            if seed is not None
            else np.arange(n)
        )
        sub = self[idx]
        if sub.normalization is None:
            sub = sub.normalize(stretch, fill_value=np.nan)
        img = sub.data
        if band is not None:
            img = img[..., [sub._band_index(band)]]
        finite = np.isfinite(img)
        lo = np.where(finite, img, np.inf).min(axis=(1, 2), keepdims=True)
        hi = np.where(finite, img, -np.inf).max(axis=(1, 2), keepdims=True)
        span = np.where(hi > lo, hi - lo, 1.0)
        img = np.clip((img - lo) / span, 0, 1)
        img = np.where(finite, img, np.nan)
        if img.shape[-1] >= 2 and band is None:
            b, r = img[..., 0], img[..., 1]
            rgb = np.stack([r, 0.5 * (r + b), b], axis=-1)
        else:
            rgb = None
        ncols = int(ncols) if ncols else int(np.ceil(np.sqrt(n)))
        nrows = int(np.ceil(n / ncols))
        if fig is None:
            fig = plt.figure(figsize=(1.6 * ncols, 1.6 * nrows))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            ax.set_axis_off()
            if k >= n:
                continue
            if rgb is not None:
                ax.imshow(np.nan_to_num(rgb[k], nan=0.0), origin="lower")
            else:
                ax.imshow(img[k, :, :, 0], origin="lower", cmap="gray", vmin=0, vmax=1)
            if labels is not None:
                ax.set_title(str(labels[idx[k]]), fontsize=7)
        return fig


def _is_hdf5_path(path):
    return Path(path).suffix.lower() in (".h5", ".hdf5", ".hdf")


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "writing or reading HDF5 Cutout files needs h5py (pip install h5py); "
            "use a .fits file name instead"
        ) from None
    return h5py


# ---------------------------------------------------------------------------
# normalisation helpers
# ---------------------------------------------------------------------------


def _check_normalization_dict(config):
    """Validate and complete a normalisation dict (defaults filled in)."""
    if not isinstance(config, Mapping) or "method" not in config:
        raise ValueError(f"normalization must be a dict with a 'method' key, got {config!r}")
    config = dict(config)
    method = config.pop("method")
    if method not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalisation method {method!r}; choose one of {list(NORMALIZATIONS)}"
        )
    fill = config.pop("fill_value", 0.0)
    if fill is None:
        fill = float("nan")
    try:
        fill = float(fill)
    except (TypeError, ValueError):
        raise ValueError(f"fill_value must be a number, got {fill!r}") from None
    defaults = NORMALIZATIONS[method]
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for normalisation {method!r}; "
            f"valid: {sorted(defaults)}"
        )
    params = {**defaults, **config}
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"normalisation parameter {key}={value!r} must be a number")
        params[key] = type(defaults[key])(value)
    if method == "asinh" and not params["softening"] > 0:
        raise ValueError(f"softening must be positive, got {params['softening']}")
    if method == "percentile" and not 0 <= params["lower"] < params["upper"] <= 100:
        raise ValueError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got "
            f"lower={params['lower']}, upper={params['upper']}"
        )
    out = {"method": method, **params, "fill_value": fill}
    json.dumps(out)
    return out


def _normalize_block(data, mask, config):
    """Normalise a block of stamps (n, H, W, C), fill invalid pixels; float32."""
    method = config["method"]
    fill = config["fill_value"]
    invalid = mask | ~np.isfinite(data)
    if method == "none":
        return np.where(invalid, np.float32(fill), data)
    y = _transform_block(data.astype(np.float64), invalid, config)
    return np.where(invalid | ~np.isfinite(y), fill, y).astype(np.float32)


def _transform_block(x, invalid, config):
    """The normalisation of `_normalize_block` in float64, before the fill."""
    method = config["method"]
    n, h, w, c = x.shape
    any_invalid = bool(invalid.any())
    # (n, c, H*W) copy with NaN at invalid pixels, so statistics run along the last axis
    # (always a copy: it is modified in place; for C = 1 the transpose is contiguous)
    vals = x.transpose(0, 3, 1, 2).reshape(n, c, h * w).copy()
    if any_invalid:
        vals[invalid.transpose(0, 3, 1, 2).reshape(n, c, h * w)] = np.nan
        nval = h * w - np.count_nonzero(invalid, axis=(1, 2))
    else:
        nval = np.full((n, c), h * w)
    if method == "standardize":
        if any_invalid:
            vals = np.where(np.isnan(vals), 0.0, vals)
        denom = np.maximum(nval, 1)
        mean = vals.sum(axis=-1) / denom
        dev = vals - mean[..., None]
        if any_invalid:
            dev[invalid.transpose(0, 3, 1, 2).reshape(n, c, h * w)] = 0.0
        dev *= dev
        scale = np.sqrt(dev.sum(axis=-1) / denom)
        y = (x - mean[:, None, None, :]) / _safe_scale(scale)[:, None, None, :]
    elif method == "asinh":
        vals.sort(axis=-1)  # NaN last
        med = sorted_quantile(vals, nval, 0.5)
        vals -= med[..., None]
        np.abs(vals, out=vals)
        vals.sort(axis=-1)
        sigma = 1.4826 * sorted_quantile(vals, nval, 0.5)
        scale = _safe_scale(config["softening"] * sigma)
        y = np.arcsinh((x - med[:, None, None, :]) / scale[:, None, None, :])
    elif method == "percentile":
        vals.sort(axis=-1)
        lo = sorted_quantile(vals, nval, config["lower"] / 100.0)
        hi = sorted_quantile(vals, nval, config["upper"] / 100.0)
        y = _unit_interval(x, lo, hi)
    elif method == "zscale":
        params = {k: v for k, v in config.items() if k not in ("method", "fill_value")}
        params["n_samples"] = int(params["n_samples"])
        params["min_npixels"] = int(params["min_npixels"])
        params["max_iterations"] = int(params["max_iterations"])
        lo, hi = zscale_limits(vals.reshape(n * c, h * w), np.asarray(nval).reshape(n * c),
                               **params)
        y = _unit_interval(x, lo.reshape(n, c), hi.reshape(n, c))
    else:  # pragma: no cover - checked before
        raise ValueError(method)
    return y


def _safe_scale(scale):
    scale = np.asarray(scale, dtype=np.float64)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def _unit_interval(x, lo, hi):
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    span = np.where(ok, span, 1.0)
    y = (x - lo[:, None, None, :]) / span[:, None, None, :]
    y = np.clip(y, 0.0, 1.0)
    # constant stamps: everything at the lower limit
    return np.where(ok[:, None, None, :], y, 0.0)


# ---------------------------------------------------------------------------
# image access helpers
# ---------------------------------------------------------------------------


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
        if progress and len(starts) > 1:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="cutouts", unit="chunk")
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


def _concat_skycoords(coords):
    """Concatenate SkyCoords (converted to ICRS if their frames differ)."""
    first = coords[0]
    if not all(c.is_equivalent_frame(first) for c in coords[1:]):
        coords = [c.icrs for c in coords]
    return np.concatenate([c.reshape((-1,)) for c in coords])


def _check_finite(coords):
    sph = coords.spherical
    bad = ~(np.isfinite(sph.lon.deg) & np.isfinite(sph.lat.deg))
    if np.any(bad):
        idx = np.flatnonzero(bad)
        raise ValueError(
            f"positions has {idx.size} non-finite position(s), first at index {idx[0]}"
        )


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
    xy = np.asarray(positions, dtype=np.float64)
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
        ext = np.broadcast_to(np.asarray(extension, dtype=np.int64), (n,)).copy()
        if ext.min() < 0 or ext.max() >= len(band_layers):
            raise ValueError(
                f"extension must be in 0..{len(band_layers) - 1} for band {pixel_band!r}"
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
