"""
Per-stamp WCS of a `~m31clusters.cutout.Cutout`.

A Cutout does not store one `~astropy.wcs.WCS` per stamp: `_StampWCS` keeps
the WCS of each source image (CCD extension) once, and for each stamp and
band which source it was cut from, the source pixel at the stamp's pixel
(0, 0) and the dihedral transform applied since.  A stamp's WCS is rebuilt
on request (`_StampWCS.build`), with CRPIX shifted and, after a rotation or
flip, the CD / PC matrix turned with the pixels.
"""

from collections.abc import Sequence

import numpy as np

from ..exceptions import CorruptFileError
from ..utils._stamps import dihedral_pixel_map, dihedral_product

__all__ = []


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
