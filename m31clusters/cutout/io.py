"""
Cutout files: FITS (with checksums) and HDF5.

`write_cutout` and `read_cutout` implement `Cutout.write
<m31clusters.cutout.Cutout.write>` and `Cutout.read
<m31clusters.cutout.Cutout.read>`.  A FITS file holds HDUs ``DATA``,
``MASK``, ``STAMPS`` (positions, offsets, stamp WCS records) and one
``SRCWCS`` header per source WCS, with bands, normalisation and metadata as
JSON in the primary header (``CUTFMT`` / ``CUTVER`` name the format and its
version); an HDF5 file holds the same as datasets and attributes.
"""

import json
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from ..exceptions import BandError, CorruptFileError
from ..utils._io import atomic_path
from ._common import _check_bands
from ._stamp_wcs import _check_turn, _StampWCS
from .core import Cutout

__all__ = ["read_cutout", "write_cutout"]

_FORMAT_NAME = "M31CLUSTERS-CUTOUT"
_FORMAT_VERSION = 1


def write_cutout(cutout, path, *, overwrite=False):
    """
    Write *cutout* to a FITS (or, for a ``.h5``/``.hdf5``/``.hdf`` suffix, HDF5) file.

    The implementation of `Cutout.write <m31clusters.cutout.Cutout.write>`,
    which documents the format, parameters and errors.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.cutout.io import read_cutout, write_cutout
    >>> path = os.path.join(tempfile.mkdtemp(), "c.fits")
    >>> write_cutout(Cutout(np.ones((2, 4, 4, 1)), bands="g"), path).name
    'c.fits'
    >>> read_cutout(path).shape
    (2, 4, 4, 1)
    """
    try:
        meta_json = json.dumps(cutout.meta)
    except TypeError as exc:
        raise TypeError(f"Cutout.meta must be JSON-serialisable to be written: {exc}") from exc
    wcsinfo = cutout._wcsinfo.compact()
    if _is_hdf5_path(path):
        return _write_hdf5(cutout, path, overwrite, meta_json, wcsinfo)
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["CUTFMT"] = (_FORMAT_NAME, "file format")
    hdr["CUTVER"] = (_FORMAT_VERSION, "file format version")
    hdr["NSTAMPS"] = len(cutout)
    hdr["BANDS"] = json.dumps(list(cutout.bands))
    hdr["NORMLIZ"] = json.dumps(cutout.normalization)
    hdr["METAJSON"] = meta_json
    hdr["HASPOS"] = cutout.positions is not None
    data_hdu = fits.ImageHDU(cutout.data, name="DATA")
    mask_hdu = fits.ImageHDU(cutout.mask.astype(np.uint8), name="MASK")
    cols = [
        fits.Column("OFFSET", "2D", array=cutout.offsets),
        fits.Column(
            "WCSINDEX", f"{len(cutout.bands)}K", array=wcsinfo.index
        ),
        fits.Column(
            "ORIGIN",
            f"{2 * len(cutout.bands)}K",
            dim=f"(2,{len(cutout.bands)})",
            array=wcsinfo.origin,
        ),
        fits.Column("TURN", "B", array=wcsinfo.turn.astype(np.uint8)),
    ]
    if cutout.positions is not None:
        icrs = cutout.positions.icrs
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
    return Path(path)


def read_cutout(path):
    """
    Read a Cutout file written by `write_cutout` (any format version up to the current one).

    The implementation of `Cutout.read <m31clusters.cutout.Cutout.read>`,
    which documents the errors.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if _is_hdf5_path(path):
        return _read_hdf5(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with fits.open(path, memmap=False, checksum=True) as hdul:
                hdul.verify("exception")
                return _from_hdulist(hdul, path, caught)
    except CorruptFileError:
        raise
    except Exception as exc:  # astropy raises many types on broken files
        raise CorruptFileError(
            f"{str(path)!r} is truncated, corrupt or not a Cutout file: {exc}"
        ) from exc


def _write_hdf5(cutout, path, overwrite, meta_json, wcsinfo):
    h5py = _import_h5py()
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = _FORMAT_NAME
            f.attrs["version"] = _FORMAT_VERSION
            f.attrs["bands"] = json.dumps(list(cutout.bands))
            f.attrs["normalization"] = json.dumps(cutout.normalization)
            f.attrs["meta"] = meta_json
            opts = {"compression": "gzip", "shuffle": True, "fletcher32": True}
            if len(cutout):
                opts["chunks"] = (1, *cutout.shape[1:])
            else:
                opts = {}
            f.create_dataset("data", data=cutout.data, **opts)
            f.create_dataset("mask", data=cutout.mask, **opts)
            f.create_dataset("offsets", data=cutout.offsets)
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
            if cutout.positions is not None:
                icrs = cutout.positions.icrs
                f.create_dataset("ra", data=icrs.ra.deg)
                f.create_dataset("dec", data=icrs.dec.deg)
    return Path(path)


def _read_hdf5(path):
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
            has_pos = "ra" in f
            return _assemble(
                path, "WCS headers",
                data=f["data"][...], mask=f["mask"][...],
                bands=_read_bands(json.loads(f.attrs["bands"]), path),
                offsets=f["offsets"][...],
                radec=(f["ra"][...], f["dec"][...]) if has_pos else None,
                headers=[fits.Header.fromstring(t) for t in f["wcs_headers"].asstr()[...]],
                index=f["wcs_index"][...], origin=f["wcs_origin"][...],
                turn=f["wcs_turn"][...] if "wcs_turn" in f else None,
                normalization=json.loads(f.attrs["normalization"]),
                meta=json.loads(f.attrs["meta"]),
            )
    except CorruptFileError:
        raise
    except Exception as exc:
        raise CorruptFileError(
            f"{str(path)!r} is truncated, corrupt or not a Cutout file: {exc}"
        ) from exc


def _from_hdulist(hdul, path, caught):
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
    return _assemble(
        path, "SRCWCS HDUs",
        data=data, mask=mask, bands=bands, offsets=table["OFFSET"],
        radec=(table["RA"], table["DEC"]) if hdr.get("HASPOS") else None,
        headers=[h.header for h in hdul[4:] if h.name == "SRCWCS"],
        index=table["WCSINDEX"], origin=table["ORIGIN"],
        turn=table["TURN"] if "TURN" in table.names else None,
        normalization=json.loads(hdr["NORMLIZ"]),
        meta=json.loads(hdr["METAJSON"]),
    )


def _assemble(path, what, *, data, mask, bands, offsets, radec, headers, index, origin, turn,
              normalization, meta):
    """The Cutout of the arrays and records read from a file (either format)."""
    n, c = data.shape[0], len(bands)
    sources = []
    for header in headers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            sources.append(WCS(header, naxis=2))
    index = np.asarray(index, dtype=np.int64).reshape(n, c)
    origin = np.asarray(origin, dtype=np.int64).reshape(n, c, 2)
    turn = _check_turn(None if turn is None else np.asarray(turn), path)
    if index.size and index.max() >= len(sources):
        raise CorruptFileError(f"{str(path)!r} refers to missing {what}")
    positions = None
    if radec is not None:
        positions = SkyCoord(radec[0] * u.deg, radec[1] * u.deg, frame="icrs")
    return Cutout(
        data, bands=bands, mask=mask, positions=positions,
        offsets=np.asarray(offsets, dtype=np.float64).reshape(n, 2),
        wcs=_StampWCS(sources, index, origin, turn),
        normalization=normalization, meta=meta,
    )


def _read_bands(bands, path):
    try:
        return _check_bands(bands)
    except BandError as exc:
        raise CorruptFileError(f"{str(path)!r}: {exc}") from None


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
