"""
Read a CDS (VizieR) catalogue into a `~m31clusters.catalog.Catalog`.

The values are parsed by astropy's own CDS reader
(`astropy.io.ascii.Cds`); this module adds what astropy leaves out: the
sexagesimal position columns become one `~astropy.coordinates.SkyCoord`
column, the notes are kept in ``meta["notes"]``, ``[min/max]`` limits and
note references are removed from the descriptions, and float columns get
the number of decimals they were written with as their ``format``.  Every
record is checked against the ReadMe first (record count and length, byte
ranges, each numeric value against its format and nullability), so that a
truncated or damaged file raises `~m31clusters.exceptions.CorruptFileError`
naming the file, line and column instead of reading as wrong numbers.
"""

import fnmatch
import gzip
import re
import warnings
from pathlib import Path

import numpy as np
from astropy.coordinates import FK4, FK5, ICRS, SkyCoord
from astropy.io import ascii as astropy_ascii
from astropy.io.ascii import InconsistentTableError

from ...catalog import Catalog
from ...exceptions import CDSFormatError, CorruptFileError, M31ClustersWarning
from ...utils._tables import SEXAGESIMAL_LABELS, sexagesimal_degrees, text_values

__all__ = ["read_cds", "parse_readme"]

_RULE_RE = re.compile(r"^\s*(-{6,}|={6,})\s*$")
_COLUMN_RE = re.compile(
    r"^\s*(?:(?P<start>\d+)\s*-)?\s*(?P<end>\d+)\s+(?P<format>[AIFE]\d+(?:\.\d+)?)\s+"
    r"(?P<unit>\S+)\s+(?P<label>\S+)(?:\s+(?P<expl>.*))?$"
)
_NOTE_RE = re.compile(r"^Note\s*\((?P<number>[^)]+)\)\s*:?\s?(?P<text>.*)$", re.IGNORECASE)
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LIMITS_RE = re.compile(rf"^[\[\]]\s*(?:{_NUM})?\s*/\s*(?:{_NUM})?\s*[\[\]]\??\s*")
_NOTE_REF_RE = re.compile(r"\s*\((?P<number>[^()\s]+)\)$")
_FORMAT_WIDTH_RE = re.compile(r"^[AIFE](\d+)")
# astropy's rule for a nullable column: optional limits, then "?" (maybe "?=null").
_NULLABLE_RE = re.compile(r"(?:[\[\]]\S*[\[\]])?\?(?:=(?P<nullval>\S*))?")
_INT_RE = re.compile(r"^[-+]?\d+$")
_FLOAT_RE = re.compile(r"^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)$", re.I)


def _is_rule(line):
    return bool(_RULE_RE.match(line))


def parse_readme(readme_path):
    """
    Parse the File Summary, byte-by-byte descriptions and notes of a ReadMe.

    Parameters
    ----------
    readme_path : str or path-like
        A CDS ReadMe file.

    Returns
    -------
    info : dict
        ``"files"``: list of ``(name, lrecl, records)`` from the File
        Summary (``records`` is None for ``.``); ``"tables"``: a list with
        one dict per byte-by-byte block, with ``"names"`` (file names or
        patterns), ``"columns"`` (list of dicts with ``start``, ``end``,
        ``format``, ``unit``, ``label``, ``explanation``) and ``"notes"``
        (dict number -> text).

    Raises
    ------
    CorruptFileError
        If the file cannot be decoded.

    Examples
    --------
    >>> import os, tempfile
    >>> from astropy.table import Table
    >>> from m31clusters.io.cds.write import write_cds
    >>> from m31clusters.io.cds.read import parse_readme
    >>> d = tempfile.mkdtemp()
    >>> _ = write_cds(Table({"n": [1, 22]}), os.path.join(d, "ReadMe"), title="T",
    ...               authors="Doe J.")
    >>> info = parse_readme(os.path.join(d, "ReadMe"))
    >>> info["files"]
    [('ReadMe', 80, None), ('table1.dat', 2, 2)]
    >>> [(c["label"], c["format"], c["start"], c["end"]) for c in info["tables"][0]["columns"]]
    [('n', 'I2', 1, 2)]
    """
    try:
        lines = Path(readme_path).read_text(encoding="ascii", errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{str(readme_path)!r} is not an ASCII CDS ReadMe: {exc}") from None
    info = {"files": [], "tables": []}
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("File Summary"):
            i += 1
            rules = 0
            while i < n and rules < 3:
                if _is_rule(lines[i]):
                    rules += 1
                elif rules == 2 and lines[i][:1].strip():
                    parts = lines[i].split()
                    if len(parts) >= 3 and parts[1].isdigit():
                        rec = None if parts[2] == "." else _int_or_none(parts[2])
                        info["files"].append((parts[0], int(parts[1]), rec))
                i += 1
            continue
        match = re.match(r"Byte-by-byte Description of file:\s*(?P<names>.+)$", line, re.I)
        if match:
            names = [s for s in re.split(r"[, ]+", match.group("names").strip()) if s]
            table = {"names": names, "columns": [], "notes": {}}
            i += 1
            rules = 0
            format_at = 0
            while i < n and rules < 3:
                if _is_rule(lines[i]):
                    rules += 1
                elif rules == 1:
                    # The header: "Bytes Format Units Label Explanations".
                    format_at = max(lines[i].find("Format"), 0)
                elif rules == 2:
                    m = _COLUMN_RE.match(lines[i])
                    if m and not (table["columns"]
                                  and _continuation(m, lines[i], format_at, table["columns"])):
                        table["columns"].append({
                            "start": int(m.group("start") or m.group("end")),
                            "end": int(m.group("end")),
                            "format": m.group("format"),
                            "unit": m.group("unit"),
                            "label": m.group("label"),
                            "explanation": (m.group("expl") or "").strip(),
                            "line": i + 1,
                        })
                    elif table["columns"]:
                        prev = table["columns"][-1]
                        prev["explanation"] = (prev["explanation"] + " " + lines[i].strip()).strip()
                i += 1
            # Notes follow, up to the next rule.
            current = None
            while i < n and not _is_rule(lines[i]):
                m = _NOTE_RE.match(lines[i])
                if m:
                    current = m.group("number").strip()
                    table["notes"][current] = m.group("text").rstrip()
                elif current is not None:
                    table["notes"][current] += "\n" + lines[i].rstrip()
                elif lines[i].strip():
                    break
                i += 1
            for key, text in table["notes"].items():
                table["notes"][key] = text.rstrip()
            info["tables"].append(table)
            continue
        i += 1
    return info


def _continuation(m, line, format_at, columns):
    """Whether a line that looks like a column is an explanation's continuation.

    A column's byte range ends left of the header's ``Format`` while a
    continuation is indented to the explanations, so the position tells
    them apart (an overlapping or reversed byte range is still a column, for
    `read_cds` to refuse).  Without a usable header, byte ranges increase
    down the description, so a "column" starting at or before the end of the
    previous one is text that happens to start with a number.
    """
    if format_at:
        return m.end("end") > format_at
    start = int(m.group("start") or m.group("end"))
    return start <= columns[-1]["end"]


def _check_description(readme_path, tinfo, data_name):
    """Refuse byte ranges that are reversed, overlap, or disagree with their format."""
    previous = None
    for col in tinfo["columns"]:
        where = (f"{str(readme_path)!r}, line {col['line']}: byte-by-byte description of "
                 f"{data_name!r}, column {col['label']!r} (bytes {col['start']}-{col['end']})")
        if col["start"] < 1 or col["start"] > col["end"]:
            raise CorruptFileError(f"{where}: the byte range is reversed or starts before 1")
        width = int(_FORMAT_WIDTH_RE.match(col["format"]).group(1))
        if width != col["end"] - col["start"] + 1:
            raise CorruptFileError(
                f"{where}: format {col['format']} is {width} characters wide but the byte "
                f"range holds {col['end'] - col['start'] + 1}"
            )
        if previous is not None and col["start"] <= previous["end"]:
            raise CorruptFileError(
                f"{where}: overlaps column {previous['label']!r} (bytes "
                f"{previous['start']}-{previous['end']}); byte ranges must increase"
            )
        previous = col


def _nulls(explanation):
    """The texts a nullable column (``?`` in its explanation) uses for null, or None."""
    m = _NULLABLE_RE.match(explanation)
    if not m:
        return None
    if m.group("nullval") == "-":
        return {"", "-", "--", "---", "----"}
    return {"", (m.group("nullval") or "").strip()}


def _data_lines(data_path):
    """The records of a data file (``.gz`` too) as a list of str, line ends removed."""
    opener = gzip.open if data_path.name.endswith(".gz") else open
    try:
        with opener(data_path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"CDS data file {str(data_path)!r} cannot be read: {exc}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorruptFileError(
            f"{str(data_path)!r}, line {line}: byte {raw[exc.start]:#04x} is not ASCII "
            "(CDS data files are ASCII)"
        ) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _check_data(data_path, lines, tinfo, records, lrecl):
    """Check every record against the File Summary and the byte-by-byte description.

    Raises `CorruptFileError` naming the file, the line and the column for a
    record count that differs from the File Summary, a blank line, a line
    longer than ``Lrecl``, a numeric value cut by the end of a short line, a
    missing or blank value in a column that is not nullable (a blank line
    where some column is not), and a value that its format cannot hold
    (text in an ``I`` or ``F`` column, a decimal point in an ``I`` column).
    A character (``A``) column may be blank, or cut by a line whose trailing
    blanks were removed.  Each column is checked at once with numpy; the
    record at fault is looked for only when a column fails.
    """
    name = str(data_path)
    lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    required = [c["label"] for c in tinfo["columns"]
                if c["format"][0] != "A" and _nulls(c["explanation"]) is None]
    if required:
        blank = next((k for k, line in enumerate(lines, 1) if not line.strip()), None)
        if blank is not None:
            raise CorruptFileError(
                f"{name!r}, line {blank}: blank line (a CDS data file holds one record per "
                f"line, and column {required[0]!r} is not nullable)"
            )
    if lrecl is not None and lines:
        long = np.flatnonzero(lengths > lrecl)
        if long.size:
            k = long[0]
            raise CorruptFileError(
                f"{name!r}, line {k + 1}: {lengths[k]} characters, more than the record "
                f"length (Lrecl) {lrecl} of the File Summary"
            )
    numeric = [c for c in tinfo["columns"] if c["format"][0] != "A"]
    if numeric and lines:
        width = max(int(lengths.max()), max(c["end"] for c in numeric))
        # One fixed-width byte matrix: a column is a slice of it.
        chars = np.frombuffer("".join(line.ljust(width) for line in lines).encode("ascii"),
                              dtype="S1").reshape(len(lines), width)
        for col in numeric:
            _check_numeric_column(name, lines, lengths, chars, col)
    if records is not None and len(lines) != records:
        what = "is empty" if not lines else f"has {len(lines)} records"
        raise CorruptFileError(
            f"{name!r} {what}, but the File Summary of its ReadMe says {records} "
            "(truncated or extended file?)"
        )


def _check_numeric_column(name, lines, lengths, chars, col):
    kind, start, end, label = col["format"][0], col["start"], col["end"], col["label"]

    def where(k):
        return (f"{name!r}, line {k + 1}, column {label!r} (bytes {start}-{end}, "
                f"format {col['format']})")

    cut = np.flatnonzero((lengths >= start) & (lengths < end))
    if cut.size:
        k = cut[0]
        raise CorruptFileError(
            f"{where(k)}: the line ends at byte {lengths[k]}, inside the column, so the "
            f"value {lines[k][start - 1:end].strip()!r} is cut short"
        )
    field = np.ascontiguousarray(chars[:, start - 1:end]).view(f"S{end - start + 1}").ravel()
    values = np.char.strip(field)
    nulls = _nulls(col["explanation"])
    null = np.isin(values, sorted(v.encode("ascii") for v in nulls)) if nulls is not None \
        else np.zeros(len(values), bool)
    if nulls is None:
        empty = np.flatnonzero(values == b"")
        if empty.size:
            k = empty[0]
            raise CorruptFileError(
                f"{where(k)}: " + ("the line ends before the column" if lengths[k] < start
                                   else "the value is blank")
                + ", and the column is not nullable (no '?' in its explanation)"
            )
    present = values[~null]
    try:  # the fast path: numpy parses the whole column
        if kind == "I":
            ok = not np.any(np.char.find(present, b".") >= 0)
            present.astype(np.int64)
        else:
            ok = True
            present.astype(np.float64)
    except (ValueError, OverflowError):
        ok = False
    if ok:
        return
    pattern = _INT_RE if kind == "I" else _FLOAT_RE
    for k in np.flatnonzero(~null):
        value = values[k].decode("ascii")
        if not pattern.match(value):
            raise CorruptFileError(
                f"{where(k)}: {value!r} is not "
                + ("an integer" if kind == "I" else "a number")
            )


def _summary_entry(info, data_name):
    """(Lrecl, records) of *data_name* in the File Summary; None where not given."""
    bare = data_name.removesuffix(".gz")
    for name, lrecl, records in info["files"]:
        if name.removesuffix(".gz") == bare:
            return lrecl, records
    return None, None


def _int_or_none(text):
    return int(text) if text.isdigit() else None


def _table_info(info, data_name):
    for table in info["tables"]:
        if any(fnmatch.fnmatch(data_name.removesuffix(".gz"), p) for p in table["names"]):
            return table
    return None


def _resolve_data_path(readme_path, data_path, info):
    readme_path = Path(readme_path)
    if data_path is not None:
        data_path = Path(data_path)
        if not data_path.is_absolute() and not data_path.exists():
            candidate = readme_path.parent / data_path
            if candidate.exists():
                return candidate
        return data_path
    names = [name for name, _, _ in info["files"] if name.lower() != "readme"]
    if not names:
        raise CDSFormatError(
            f"the File Summary of {str(readme_path)!r} lists no data file; pass data_path"
        )
    existing = [readme_path.parent / nm for nm in names if (readme_path.parent / nm).exists()]
    if len(existing) == 1:
        return existing[0]
    if not existing:
        raise FileNotFoundError(
            f"no data file of the File Summary of {str(readme_path)!r} ({names}) was found "
            "next to it; pass data_path"
        )
    raise CDSFormatError(
        f"{str(readme_path)!r} describes several data files ({[p.name for p in existing]}); "
        "pass data_path to choose one"
    )


def read_cds(readme_path, data_path=None, *, skycoord=True):
    """
    Read a CDS catalogue (ReadMe plus data file) as a `~m31clusters.catalog.Catalog`.

    Every record of the data file is checked against the ReadMe before it is
    parsed (astropy's CDS reader does the parsing): the number of records
    and the record length of the File Summary, the byte ranges, and each
    numeric value against its format and nullability.

    Parameters
    ----------
    readme_path : str or path-like
        The ``ReadMe`` file.
    data_path : str or path-like, optional
        The data file (a bare name is looked for next to the ReadMe; ``.gz``
        files are read too).  By default the only data file of the ReadMe's
        File Summary.
    skycoord : bool, optional
        Replace the sexagesimal columns ``RAh RAm RAs DE- DEd DEm DEs`` by
        one `~astropy.coordinates.SkyCoord` column ``coord`` (default True).
        A blank or missing ``DE-`` means +.  The frame is FK5 (J2000) or
        FK4 (B1950) when the explanations say so, ICRS otherwise.  If the
        position columns are nullable and some record has no position, the
        sexagesimal columns are kept and a
        `~m31clusters.exceptions.M31ClustersWarning` says so.

    Returns
    -------
    catalog : `~m31clusters.catalog.Catalog`
        Units and descriptions from the ReadMe; masked entries where the
        data file is blank.  ``meta["notes"]`` maps column labels to their
        notes; ``coord.info.meta["cds_precision"]`` records the decimals of
        the seconds, so that writing the catalogue back keeps them.  A data
        file that the File Summary gives 0 records gives an empty catalogue
        with the described columns.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    CDSFormatError
        If the ReadMe has no description of the data file, or describes
        several data files and *data_path* is not given.
    CorruptFileError
        If the ReadMe is not a CDS ReadMe (no File Summary, no byte-by-byte
        description) or describes byte ranges that are reversed, overlap or
        disagree with their format; or if the data file does not match it:
        a zero-byte file, another number of records than the File Summary
        says, a blank line (where a column is not nullable), a line longer
        than ``Lrecl``, a numeric value cut short by the end of the line, a
        missing or blank value in a column that is not nullable (``?``),
        text in a numeric column.  The message names the file, the line and
        the column.

    Examples
    --------
    >>> import os, tempfile
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from m31clusters.io.cds.write import write_cds
    >>> from m31clusters.io.cds.read import read_cds
    >>> d = tempfile.mkdtemp()
    >>> t = Table({"coord": SkyCoord([10.684708], [41.26875], unit="deg"), "n": [3]})
    >>> readme, _ = write_cds(t, os.path.join(d, "ReadMe"), title="One", authors="Doe J.")
    >>> cat = read_cds(readme)
    >>> cat.colnames
    ['coord', 'n']
    >>> print(cat["coord"].to_string("hmsdms", precision=2)[0])
    00h42m44.33s +41d16m07.50s
    """
    readme_path = Path(readme_path)
    if not readme_path.exists():
        raise FileNotFoundError(f"CDS ReadMe {str(readme_path)!r} not found")
    info = parse_readme(readme_path)
    if not info["files"] and not info["tables"]:
        raise CorruptFileError(
            f"{str(readme_path)!r} is not a CDS ReadMe: it has no File Summary and no "
            "Byte-by-byte Description"
            + (" (the file is empty)" if readme_path.stat().st_size == 0 else "")
        )
    data_path = _resolve_data_path(readme_path, data_path, info)
    if not data_path.exists():
        raise FileNotFoundError(f"CDS data file {str(data_path)!r} not found")
    tinfo = _table_info(info, data_path.name)
    if tinfo is None:
        raise CDSFormatError(
            f"{str(readme_path)!r} has no byte-by-byte description of {data_path.name!r}"
        )
    _check_description(readme_path, tinfo, data_path.name)
    lrecl, records = _summary_entry(info, data_path.name)
    lines = _data_lines(data_path)
    if records is None and not lines:
        raise CorruptFileError(f"CDS data file {str(data_path)!r} is empty")
    _check_data(data_path, lines, tinfo, records, lrecl)
    try:
        table = astropy_ascii.read(str(data_path), readme=str(readme_path), format="cds")
    except (ValueError, TypeError, IndexError, InconsistentTableError) as exc:
        raise CorruptFileError(
            f"{str(data_path)!r} cannot be read with the description in "
            f"{str(readme_path)!r}: {exc}"
        ) from None
    cat = Catalog(table, copy=False)
    formats = {c["label"]: c["format"] for c in tinfo["columns"]}
    notes = {}
    for name in cat.colnames:
        col = cat[name]
        text = col.info.description or ""
        text = _LIMITS_RE.sub("", text, count=1)
        ref = _NOTE_REF_RE.search(text)
        if ref and ref.group("number") in tinfo["notes"]:
            notes[name] = tinfo["notes"][ref.group("number")]
            text = text[: ref.start()].rstrip()
        col.info.description = text
        fmt = formats.get(name, "")
        if fmt[:1] in "FE" and "." in fmt and col.dtype.kind == "f":
            kind = "f" if fmt[0] == "F" else "E"
            col.info.format = f"{{:.{int(fmt.split('.')[1])}{kind}}}"
    if notes:
        cat.meta["notes"] = notes
    present = [c for c in SEXAGESIMAL_LABELS if c in cat.colnames]
    if skycoord and set(SEXAGESIMAL_LABELS) - {"DE-"} <= set(present) \
            and "coord" not in cat.colnames:
        _rebuild_coord(cat, present, formats, notes, str(data_path))
    return cat


def _rebuild_coord(cat, names, formats, notes, path):
    ra, dec = sexagesimal_degrees(cat)
    missing = np.flatnonzero(~(np.isfinite(ra) & np.isfinite(dec)))
    if missing.size:
        warnings.warn(
            f"{path!r}: {missing.size} record(s) have no position (the first on line "
            f"{missing[0] + 1}); the sexagesimal columns are kept and no 'coord' column "
            "is made", M31ClustersWarning, stacklevel=3)
        return
    plus = " "
    if "DE-" in cat.colnames:
        signs = text_values(cat["DE-"])
        if np.any(signs == "+"):
            plus = "+"
    text = " ".join(str(cat[c].info.description or "") for c in ("RAh", "DEd")).upper()
    if "B1950" in text or "FK4" in text:
        frame = FK4(equinox="B1950")
    elif "J2000" in text or "FK5" in text:
        frame = FK5(equinox="J2000")
    else:
        frame = ICRS()
    coords = SkyCoord(ra, dec, unit="deg", frame=frame)

    def decimals(label):
        fmt = formats.get(label, "")
        return int(fmt.split(".")[1]) if "." in fmt else 0

    coords.info.meta = {
        "cds_precision": (decimals("RAs"), decimals("DEs")),
        "cds_plus_sign": plus,
    }
    coords.info.description = "Position"
    index = cat.colnames.index("RAh")
    for label in ("RAh", "DEd"):
        if label in notes:
            notes.setdefault("coord", notes.pop(label))
    cat.remove_columns(names)
    cat.add_column(coords, name="coord", index=index)
