"""
The `Cutout` container: N multi-band stamps with mask, positions and WCS.

`Cutout` holds N stamps of H x W pixels in C bands as an ``(N, H, W, C)``
float32 array with a mask, the sky positions, the sub-pixel offset of each
position from its stamp centre, and enough WCS information to rebuild the
WCS of every stamp (`m31clusters.cutout._stamp_wcs`).  This module has the
container itself: validation, slicing, band selection, concatenation and
the eight dihedral transforms.  Cutting stamps from images lives in
`m31clusters.cutout.extract`, normalisation in
`m31clusters.cutout.normalize`, files in `m31clusters.cutout.io`; the
`Cutout` methods of the same names are thin calls of those.
"""

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from ..exceptions import BandError
from ..utils._progress import PROGRESS_DEFAULT
from ..utils._stamps import dihedral_array, dihedral_offsets
from ..utils._wcs import celestial_wcs
from ._common import _check_bands, _concat_skycoords
from ._stamp_wcs import _StampWCS, _StampWCSList
from .normalize import check_normalization, normalize_stamps

__all__ = ["Cutout"]


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

    def __init__(self, data, bands=("g", "i"), *, mask=None, positions=None, offsets=None,
                 wcs=None, normalization=None, meta=None):
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
            normalization = check_normalization(normalization)
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
        """`_from_parts` with this Cutout's bands and (by default) its meta."""
        return self._from_parts(data, self._bands, mask, positions, offsets, wcsinfo,
                                normalization, self.meta if meta is None else meta)

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

    def normalize(self, method="asinh", *, fill_value=0.0, **params):
        """
        Normalise every stamp, per stamp and per band.

        Statistics use only valid pixels (not masked, finite).  After the
        transform, masked and NaN pixels are set to *fill_value*.  A stamp
        band with no valid pixel is all *fill_value*.  Where the scale of a
        stamp band is zero or undefined (e.g. a constant stamp) it is
        replaced by 1 so the result is finite.

        The methods (``"asinh"``, ``"zscale"``, ``"percentile"``,
        ``"standardize"``, ``"none"``) and their parameters are described
        in `m31clusters.cutout.normalize`.

        Parameters
        ----------
        method : str
            One of `~m31clusters.cutout.NORMALIZATIONS`.
        fill_value : float
            Value of masked pixels after normalisation.
        **params
            Method parameters; unknown names raise.

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
        config = check_normalization({"method": method, "fill_value": fill_value, **params})
        out = normalize_stamps(self._data, self._mask, config)
        return self._new(
            out, self._mask.copy(), self._positions, self._offsets, self._wcsinfo, config
        )

    # -- construction from images -------------------------------------------

    @classmethod
    def from_images(cls, images, positions, *, size=64, bands=("g", "i"), pixel_band=None,
                    extension=None, chunk_size=None, progress=PROGRESS_DEFAULT):
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
        progress : bool, optional
            Show a progress bar over chunks (default False).

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
        from .extract import from_images

        return from_images(images, positions, size=size, bands=bands, pixel_band=pixel_band,
                           extension=extension, chunk_size=chunk_size, progress=progress)

    @classmethod
    def iter_from_images(cls, images, positions, *, size=64, bands=("g", "i"), pixel_band=None,
                         extension=None, chunk_size=4096, progress=PROGRESS_DEFAULT):
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
        progress : bool, optional
            Show a progress bar over chunks (default False).

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
        from .extract import iter_from_images

        return iter_from_images(images, positions, size=size, bands=bands,
                                pixel_band=pixel_band, extension=extension,
                                chunk_size=chunk_size, progress=progress)

    # -- file I/O ------------------------------------------------------------

    def write(self, path, *, overwrite=False):
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
        overwrite : bool, optional
            Replace an existing file (keeping its permission bits); a new
            file gets the mode a plain ``open()`` would give.

        Returns
        -------
        `~pathlib.Path`
            The file written.

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
        >>> Cutout(np.ones((2, 8, 8, 2)), meta={"zeropoints": {"g": 30.0}}).write(path).name
        'stamps.fits'
        >>> Cutout.read(path).meta
        {'zeropoints': {'g': 30.0}}
        """
        from .io import write_cutout

        return write_cutout(self, path, overwrite=overwrite)

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
        >>> _ = Cutout(np.ones((3, 8, 8, 2))).normalize("none").write(path)
        >>> Cutout.read(path)
        <Cutout: 3 stamps of 8x8 pixels in bands ('g', 'i'), none>
        """
        from .io import read_cutout

        return read_cutout(path)

    # -- plotting --------------------------------------------------------------

    def plot(self, n=16, *, band=None, ncols=None, stretch="asinh", seed=None, fig=None,
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
        stretch : {"asinh", "linear", "sqrt", "log"} or astropy stretch
            As everywhere in the package (`m31clusters.inspection.render_bands`):
            each band of each stamp is scaled between the 0.25 and 99.75
            percentiles of its valid pixels, then stretched.
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
        from ._plot import plot_cutout

        return plot_cutout(self, n, band=band, ncols=ncols, stretch=stretch, seed=seed,
                           fig=fig, labels=labels)
