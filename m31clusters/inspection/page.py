"""
The inspection page: one self-contained HTML file an inspector scores on.

`write_inspection_page` renders every candidate's g and i stamps (and a
wider neighbourhood) with `~m31clusters.inspection.render_bands`, embeds
them as PNG data, and writes one HTML file with its script and style
inline: it needs no server and no network, and opens in any browser.  The
inspector scores with the keys 0, 1, 2; scores are kept in the browser's
storage under the catalogue's identity and the inspector's name, and are
exported as the score file `~m31clusters.inspection.read_scores` reads.
"""

import base64
import json
import struct
import zlib

import numpy as np
from astropy.table import Table

from ..utils._io import atomic_path, check_overwrite
from ..utils._progress import progress_bar
from . import _assets
from .montage import _check_cutout, _check_percentile, _get_stretch, _render_pair
from .scores import SCORE_FILE_FORMAT, _check_inspector, _id_strings, score_file_name

__all__ = ["write_inspection_page"]

_MAG_COLUMNS = (("gmag", "e_gmag", "g"), ("g", "e_g", "g"), ("imag", "e_imag", "i"),
                ("i", "e_i", "i"))
_INFO_COLUMNS = ("Conf", "PAndAS", "Rproj")
_BLOCK = 50  # candidates per <script> block of stamps


def write_inspection_page(catalog, stamps, path, *, inspector, stretch="asinh",
                          percentile=99.5, bands=("g", "i"), size=64, neighbourhood=None,
                          neighbourhood_bin=None, id_column="Seq", info_columns=None,
                          name_columns=None, title=None, zoom=None, grid_columns=6,
                          chunk_size=256, overwrite=False, progress=False):
    """
    Write the HTML page on which one inspector scores the candidates.

    The page shows one candidate at a time (or a grid of them): its g and
    i stamps and their colour composite (`~m31clusters.inspection.composite`)
    at the chosen *stretch*, its id, magnitudes, ``Conf``, field, radius
    and literature names, and on demand a wider stamp of its neighbourhood.
    Keys: **0**, **1**, **2** score (0 = not a cluster, 1 = possible,
    2 = cluster) and advance; arrows move; **u** undoes; **n** shows the
    neighbourhood; **g** switches between one candidate and the grid;
    **+**/**-** zoom; space jumps to the next unscored candidate.  The
    progress (scored n of N) is always shown.  Scores are saved in the
    browser's local storage under the catalogue's
    `~m31clusters.inspection.catalog_identity` and the inspector's name,
    so they survive reloads and a page rewritten for the same catalogue;
    the *Export* button downloads them as
    `score_file_name(inspector) <m31clusters.inspection.score_file_name>`,
    the file `~m31clusters.inspection.combine_inspections` reads.

    The file is self-contained (stamps as PNG data, script and style
    inline): no server, no network.  Stamps are scaled to 8 bits after the
    stretch; the page's brightness and contrast sliders only change the
    display.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        The candidates (e.g. a `~m31clusters.catalog.Catalog` from
        `~m31clusters.catalog.Catalog.from_candidates`), with the id column.
        Positions are needed when *stamps* are images.
    stamps : `~m31clusters.cutout.Cutout` or dict
        Either one stamp per catalogue row (same order) with the two
        *bands*, or the images (band -> FITS path, HDUList, HDU or NDData,
        as for `Cutout.from_images <m31clusters.cutout.Cutout.from_images>`)
        to cut the stamps from at the catalogue positions.
    path : str or path-like
        The HTML file to write.
    inspector : str
        The inspector's name (letters, digits, spaces, ``.``, ``'``, ``-``,
        ``_``); it names the exported file.
    stretch : {"asinh", "linear", "sqrt", "log"} or astropy stretch
        Stretch after the percentile scaling (see
        `~m31clusters.inspection.render_bands`).
    percentile : float
        Central percentage of each stamp's valid pixels mapped to the full range.
    bands : tuple of two str
        The blue and red bands of the composite, default ``("g", "i")``.
    size : int
        Stamp size in pixels when cutting from images.
    neighbourhood : int or `~m31clusters.cutout.Cutout`, optional
        The wider stamps: from images, a field *neighbourhood* times the
        stamp's (default 3; 0 for none); or a Cutout of one wider stamp per
        row.  Without it (and with a Cutout as *stamps*) the page has no
        neighbourhood view.
    neighbourhood_bin : int, optional
        Bin the neighbourhood by this factor (default: the *neighbourhood*
        factor when cutting from images, so it takes as many pixels as a
        stamp; 1 for a given Cutout).
    id_column : str
        The catalogue's id column (shown and exported).
    info_columns : sequence of str, optional
        Columns shown with each candidate (default: those of ``gmag e_gmag
        imag e_imag Conf PAndAS Rproj`` present, and RA/Dec).
    name_columns : sequence of str, optional
        Literature-name columns shown (default: those of
        `~m31clusters.catalog.CANDIDATE_NAME_COLUMNS` present).
    title : str, optional
        Page title (default from the catalogue's size).
    zoom : int, optional
        Initial display zoom (default: stamps shown about 256 pixels wide).
    grid_columns : int
        Candidates per row in the grid view.
    chunk_size : int
        Candidates rendered (and cut) at a time, bounding the memory used.
    overwrite : bool
        Replace an existing page.
    progress : bool
        Show a progress bar over chunks.

    Returns
    -------
    `~pathlib.Path`
        The page written.

    Raises
    ------
    ValueError
        For a bad inspector name, repeated or masked ids, stamps that do not
        match the catalogue, or an option out of range.
    KeyError
        If the id column (or a requested info column) is missing.
    m31clusters.exceptions.BandError
        If a band is missing from the stamps.
    FileExistsError
        If *path* exists and *overwrite* is False.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> from m31clusters.cutout import Cutout
    >>> from m31clusters.inspection import write_inspection_page
    >>> cat = Table({"Seq": [1, 2], "Conf": [0.9, 0.8]})
    >>> stamps = Cutout(np.random.default_rng(0).normal(size=(2, 16, 16, 2)))
    >>> page = write_inspection_page(cat, stamps, os.path.join(tempfile.mkdtemp(), "a.html"),
    ...                              inspector="Ann")
    >>> text = page.read_text()
    >>> text.startswith("<!DOCTYPE html>"), text.count("<script>m31Stamps(")
    (True, 1)
    """
    from ..cutout import Cutout

    path = check_overwrite(path, overwrite)
    _check_inspector(inspector)
    if not isinstance(catalog, Table):
        raise TypeError(f"catalog must be an astropy Table, got {type(catalog).__name__}")
    if id_column not in catalog.colnames:
        raise KeyError(f"the catalogue has no id column {id_column!r} "
                       f"(columns {catalog.colnames})")
    n = len(catalog)
    if n == 0:
        raise ValueError("the catalogue has no candidates")
    keys = _id_strings(catalog[id_column], f"catalogue column {id_column!r}")
    from .scores import catalog_identity

    identity = catalog_identity(catalog, id_column=id_column)
    _check_percentile(percentile)
    _get_stretch(stretch)
    if len(bands) != 2:
        raise ValueError(f"bands must name two bands (blue, red), got {bands!r}")
    for name, value in (("grid_columns", grid_columns), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if zoom is not None and (isinstance(zoom, bool) or not isinstance(zoom, (int, np.integer))
                             or not 1 <= zoom <= 16):
        raise ValueError(f"zoom must be an integer from 1 to 16, got {zoom!r}")

    if isinstance(stamps, Cutout):
        _check_cutout(stamps, bands)
        if len(stamps) != n:
            raise ValueError(f"the cutout has {len(stamps)} stamps for {n} catalogue rows; "
                             "give one stamp per row, in the catalogue's order")
        neigh = neigh_cutout = neighbourhood if isinstance(neighbourhood, Cutout) else None
        if neighbourhood is not None and neigh is None and neighbourhood != 0:
            raise ValueError("with a Cutout of stamps, neighbourhood must be a Cutout of "
                             "wider stamps (one per row) or None")
        if neigh is not None:
            _check_cutout(neigh, bands)
            if len(neigh) != n:
                raise ValueError(f"the neighbourhood cutout has {len(neigh)} stamps for "
                                 f"{n} catalogue rows")
        nbin = 1 if neighbourhood_bin is None else _check_bin(neighbourhood_bin)
        stamp_size = stamps.shape[1:3]

        def chunks():
            for start in range(0, n, chunk_size):
                rows = slice(start, min(start + chunk_size, n))
                yield stamps[rows], None if neigh is None else neigh[rows]
    elif isinstance(stamps, dict):
        from ..utils._tables import table_skycoord

        positions = table_skycoord(catalog)
        neigh_cutout = None
        factor = 3 if neighbourhood is None else neighbourhood
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 0:
            raise ValueError(f"neighbourhood must be a non-negative integer factor when "
                             f"cutting from images, got {neighbourhood!r}")
        nbin = max(1, int(factor)) if neighbourhood_bin is None else _check_bin(neighbourhood_bin)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise ValueError(f"size must be an integer number of pixels >= 2, got {size!r}")
        stamp_size = (int(size), int(size))

        def chunks():
            for start in range(0, n, chunk_size):
                pos = positions[start:start + chunk_size]
                cut = Cutout.from_images(stamps, pos, size=int(size), bands=bands,
                                         progress=False)
                wide = (Cutout.from_images(stamps, pos, size=int(size) * int(factor),
                                           bands=bands, progress=False) if factor else None)
                yield cut, wide
    else:
        raise TypeError(f"stamps must be a Cutout or a dict of images (band -> image), "
                        f"got {type(stamps).__name__}")

    cands = _candidate_info(catalog, keys, id_column, info_columns, name_columns)
    if zoom is None:
        zoom = max(1, min(16, round(256 / max(stamp_size))))
    id_numeric = np.asarray(catalog[id_column]).dtype.kind in "iu"
    if neigh_cutout is not None:
        neigh_size = [int(s) // nbin for s in neigh_cutout.shape[1:3]]
    elif isinstance(stamps, dict) and factor:
        neigh_size = [int(size) * int(factor) // nbin] * 2
    else:
        neigh_size = None
    if neigh_size is not None and min(neigh_size) < 1:
        raise ValueError(f"cannot bin the neighbourhood by {nbin}: it is smaller than that")
    meta = {
        "format": SCORE_FILE_FORMAT, "catalog": identity, "inspector": inspector,
        "file_name": score_file_name(inspector), "n": n, "bands": list(bands),
        "stretch": stretch if isinstance(stretch, str) else type(stretch).__name__,
        "percentile": float(percentile), "size": [int(s) for s in stamp_size],
        "neigh_size": neigh_size, "neigh_bin": int(nbin), "zoom": int(zoom),
        "grid_columns": int(grid_columns), "id_numeric": bool(id_numeric),
        "id_column": id_column, "title": title or f"Visual inspection of {n} candidates",
    }
    head, tail = _assets.page_parts(title=meta["title"],
                                    data_json=_script_json({"meta": meta, "cands": cands}))
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(head)
            start = 0
            for cut, wide in progress_bar(chunks(), progress=progress,
                                          total=-(-n // chunk_size), desc="rendering stamps",
                                          unit="chunk"):
                blue, red = _render_pair(cut, bands, stretch, percentile)
                pairs = list(zip(_png_b64(blue), _png_b64(red), strict=True))
                wide_pairs = None
                if wide is not None:
                    wide_blue, wide_red = _render_pair(_binned(wide, nbin), bands, stretch,
                                                       percentile)
                    if list(wide_blue.shape[1:3]) != neigh_size:
                        raise ValueError(f"neighbourhood stamps of {wide_blue.shape[1:3]} "
                                         f"pixels, expected {neigh_size}")
                    wide_pairs = list(zip(_png_b64(wide_blue), _png_b64(wide_red),
                                          strict=True))
                for k in range(0, len(pairs), _BLOCK):
                    f.write(_assets.stamp_block(
                        start + k, pairs[k:k + _BLOCK],
                        None if wide_pairs is None else wide_pairs[k:k + _BLOCK]))
                start += len(pairs)
            f.write(tail)
    return path


def _check_bin(value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"neighbourhood_bin must be a positive integer, got {value!r}")
    return int(value)


def _binned(cutout, factor):
    """A Cutout binned by *factor* (mean of the valid pixels of each block)."""
    if factor == 1:
        return cutout
    from ..cutout import Cutout

    data = np.asarray(cutout.data, dtype=np.float32)
    n, h, w, c = data.shape
    hb, wb = h // factor, w // factor
    if hb == 0 or wb == 0:
        raise ValueError(f"cannot bin {h}x{w} neighbourhood stamps by {factor}")
    y0, x0 = (h - hb * factor) // 2, (w - wb * factor) // 2
    data = data[:, y0:y0 + hb * factor, x0:x0 + wb * factor]
    valid = ~np.asarray(cutout.mask, dtype=bool)[:, y0:y0 + hb * factor, x0:x0 + wb * factor]
    valid &= np.isfinite(data)
    data = np.where(valid, data, np.float32(0))
    total = np.zeros((n, hb, wb, c))
    count = np.zeros((n, hb, wb, c), dtype=np.int32)
    for dy in range(factor):  # factor**2 strided adds: faster than a 6-D reduction
        for dx in range(factor):
            total += data[:, dy::factor, dx::factor]
            count += valid[:, dy::factor, dx::factor]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return Cutout(mean.astype(np.float32), bands=tuple(cutout.bands), mask=count == 0)


def _candidate_info(catalog, keys, id_column, info_columns, name_columns):
    """Per candidate: id and the [label, text] pairs shown next to its stamps."""
    from ..catalog import CANDIDATE_NAME_COLUMNS

    cols = catalog.colnames
    rows = [[] for _ in keys]
    try:
        from ..utils._tables import table_skycoord

        coords = table_skycoord(catalog)
    except (KeyError, ValueError):
        coords = None
    if coords is not None:
        ra = coords.ra.to_string(unit="hourangle", sep=":", precision=2, pad=True)
        dec = coords.dec.to_string(unit="deg", sep=":", precision=1, pad=True,
                                   alwayssign=True)
        for row, r, d in zip(rows, np.atleast_1d(ra), np.atleast_1d(dec), strict=True):
            row.append(["RA, Dec", f"{r} {d}"])
    if info_columns is None:
        done = set()
        for mag, err, label in _MAG_COLUMNS:
            if mag in cols and label not in done:
                done.add(label)
                _add_column(rows, catalog, mag, err if err in cols else None, label)
        for name in _INFO_COLUMNS:
            if name in cols:
                _add_column(rows, catalog, name, None, name)
    else:
        for name in info_columns:
            if name not in cols:
                raise KeyError(f"info column {name!r} is not in the catalogue")
            _add_column(rows, catalog, name, None, name)
    if name_columns is None:
        name_columns = [c for c in CANDIDATE_NAME_COLUMNS if c in cols]
    for name in name_columns:
        if name not in cols:
            raise KeyError(f"name column {name!r} is not in the catalogue")
    names = [[] for _ in keys]
    for name in name_columns:
        for entry, value in zip(names, catalog[name], strict=True):
            if not np.ma.is_masked(value) and str(value).strip():
                entry.append([name, str(value).strip()])
    return [{"id": key, "info": info, "names": nm}
            for key, info, nm in zip(keys, rows, names, strict=True)]


def _add_column(rows, catalog, name, err, label):
    col = catalog[name]
    unit = getattr(col, "unit", None)
    unit = f" {unit}" if unit is not None and str(unit) not in ("", "mag") else ""
    fmt = _value_format(col)
    values, masked = _plain(col)
    if err is not None:
        errors, err_masked = _plain(catalog[err])
        err_fmt = _value_format(catalog[err])
    for k, row in enumerate(rows):
        if masked[k]:
            row.append([label, "--"])
            continue
        text = fmt(values[k])
        if err is not None and not err_masked[k]:
            text += " \u00b1 " + err_fmt(errors[k])
        row.append([label, text + unit])


def _plain(col):
    """Values (a list of Python scalars) and mask of a column."""
    data = getattr(col, "value", col)
    data = np.ma.asarray(data)
    mask = np.ma.getmaskarray(data)
    raw = np.ma.getdata(data)
    if raw.dtype.kind == "f":
        mask = mask | ~np.isfinite(raw)
    return raw.tolist(), mask


def _value_format(col):
    fmt = getattr(col.info, "format", None)
    kind = np.asarray(col).dtype.kind

    def apply(value):
        if fmt:
            try:
                return fmt.format(value) if "{" in fmt else format(value, fmt.lstrip("%"))
            except (ValueError, TypeError):
                pass
        if kind == "f":
            return f"{float(value):.3f}"
        return str(value)

    return apply


def _script_json(data):
    """JSON safe to put inside a <script> element."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _png_b64(rendered):
    """Rendered bands (N, H, W) in [0, 1] (NaN = no data) as base64 PNGs, north up."""
    img = np.asarray(rendered)[:, ::-1]  # row 0 of a stamp is its bottom
    bad = np.isnan(img)
    gray = np.round(np.where(bad, 0.0, img) * 255).astype(np.uint8)
    any_bad = bad.any(axis=(1, 2))
    out = [None] * len(img)
    plain = np.flatnonzero(~any_bad)
    if plain.size:  # grey only: filter all rows of all these stamps at once
        for k, raw in zip(plain, _filtered_rows(gray[plain, :, :, None]), strict=True):
            out[k] = _png(raw, gray.shape[2], gray.shape[1], 0)
    for k in np.flatnonzero(any_bad):  # grey + alpha: pixels without data are transparent
        pixels = np.stack([gray[k], np.where(bad[k], 0, 255).astype(np.uint8)], axis=-1)
        out[k] = _png(_filtered_rows(pixels[None])[0], gray.shape[2], gray.shape[1], 4)
    return [base64.b64encode(b).decode("ascii") for b in out]


def _filtered_rows(pixels):
    """PNG scanlines of (N, H, W, C) uint8 pixels with the Sub filter: (N, H, 1 + W*C) bytes."""
    n, h, w, c = pixels.shape
    flat = pixels.reshape(n, h, w * c)
    raw = np.empty((n, h, w * c + 1), dtype=np.uint8)
    raw[:, :, 0] = 1
    raw[:, :, 1:c + 1] = flat[:, :, :c]
    np.subtract(flat[:, :, c:], flat[:, :, :-c], out=raw[:, :, c + 1:])  # wraps modulo 256
    return raw


def _png(raw, width, height, color_type):
    """A PNG file from filtered scanlines *raw*."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))
