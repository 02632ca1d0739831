"""
Write a table as a CDS (VizieR) catalogue: a ``ReadMe`` plus a fixed-width data file.

The writer follows the CDS standard for astronomical catalogues
(https://vizier.cds.unistra.fr/doc/catstd.htx): a header (title, authors,
keywords, abstract), a ``File Summary`` with the record length (``Lrecl``)
and number of records of the data file, a ``Byte-by-byte Description``
(``Bytes Format Units Label Explanations``), the notes, and the data file
itself.  Every value is checked against the format it is written with; a
value that does not fit raises `~m31clusters.exceptions.CDSFormatError`
naming the column and the row, never a silently wrong catalogue.
"""

import datetime
import re
import textwrap
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Context
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import FK5, ICRS, SkyCoord
from astropy.time import Time

from ...exceptions import CDSFormatError
from ...utils._io import atomic_paths, check_overwrite
from ...utils._tables import SEXAGESIMAL_LABELS, position_columns
from ...utils._validation import check_finite_coords

__all__ = ["write_cds", "cds_unit_string", "DEFAULT_COORD_PRECISION"]

#: Default number of decimals of the seconds of RA (s) and of Dec (arcsec):
#: 0.001 s = 15 mas and 0.01 arcsec.
DEFAULT_COORD_PRECISION = (3, 2)

_LINE = 80
_RULE = "-" * _LINE
_DOUBLE_RULE = "=" * _LINE
_FORMAT_RE = re.compile(r"^([AIFE])(\d+)(?:\.(\d+))?$")
_PYFORMAT_RE = re.compile(r"^(?:\{:|%)?[<>^=+\- #0]*(\d*)(?:\.(\d+))?([fFeEd])\}?$")
_LABEL_RE = re.compile(r"^[!-~]+$")
_MAX_AUTO_FIXED_WIDTH = 12
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SOLAR = {"solMass": "Msun", "solLum": "Lsun", "solRad": "Rsun"}


@dataclass
class _Field:
    """One column of the data file, fully formatted."""

    label: str
    fmt: str
    unit: str
    explanation: str
    values: list
    right: bool = True
    gap: int = 1
    note: str | None = None
    width: int = 0
    start: int = 0
    end: int = 0
    extra: dict = field(default_factory=dict)


def cds_unit_string(unit, label="?"):
    """
    The CDS spelling of an astropy unit (``---`` for none).

    Parameters
    ----------
    unit : `~astropy.units.UnitBase`, str or None
        The unit.
    label : str, optional
        Column label, used in the error message.

    Returns
    -------
    str
        E.g. ``"mag"``, ``"kpc"``, ``"km/s"``, ``"[Msun]"``, ``"---"``.

    Raises
    ------
    CDSFormatError
        If the unit has no CDS spelling.

    Examples
    --------
    >>> import astropy.units as u
    >>> from m31clusters.io.cds.write import cds_unit_string
    >>> cds_unit_string(u.km / u.s), cds_unit_string(u.dex(u.solMass)), cds_unit_string(None)
    ('km/s', '[Msun]', '---')
    """
    if unit is None:
        return "---"
    if isinstance(unit, str):
        unit = u.Unit(unit)
    if unit == u.dimensionless_unscaled:
        return "---"
    if isinstance(unit, u.MagUnit) and unit.physical_unit == u.dimensionless_unscaled:
        return "mag"
    if isinstance(unit, u.DexUnit):
        return "[" + cds_unit_string(unit.physical_unit, label) + "]"
    try:
        text = unit.to_string("cds")
    except (ValueError, TypeError) as exc:
        raise CDSFormatError(
            f"column {label!r}: unit {unit!s} cannot be written in CDS syntax ({exc})"
        ) from None
    for name, cds in _SOLAR.items():
        text = re.sub(rf"\b{name}\b", cds, text)
    # Prefer "km/s" to "km.s-1" when there is a single inverse factor.
    parts = text.split(".")
    inverse = [p for p in parts if re.fullmatch(r"[A-Za-z]+-1", p)]
    if len(inverse) == 1 and len(parts) > 1 and not re.search(r"-\d", text.replace(
            inverse[0], "")):
        numerator = ".".join(p for p in parts if p != inverse[0])
        if numerator and not numerator[0].isdigit():
            text = f"{numerator}/{inverse[0][:-2]}"
    if u.Unit(text, format="cds") != unit or re.search(r"\s", text):
        raise CDSFormatError(
            f"column {label!r}: unit {unit!s} has no exact CDS spelling (got {text!r})"
        )
    return text


# --------------------------------------------------------------------------
# Value formatting


def _parse_format(fmt, label):
    match = _FORMAT_RE.match(str(fmt).strip())
    if not match:
        raise CDSFormatError(
            f"column {label!r}: {fmt!r} is not a CDS format (expected Iw, Fw.d, Ew.d or Aw)"
        )
    kind, width, dec = match.group(1), int(match.group(2)), match.group(3)
    if kind in "FE" and dec is None:
        dec = 0
    if kind in "AI" and dec is not None:
        raise CDSFormatError(f"column {label!r}: format {fmt!r} takes no decimals")
    if width < 1:
        raise CDSFormatError(f"column {label!r}: format {fmt!r} has zero width")
    return kind, width, None if dec is None else int(dec)


def _python_decimals(col):
    """(kind, decimals) from an astropy column ``format`` like '{:.3f}', or None."""
    fmt = getattr(getattr(col, "info", None), "format", None)
    if not isinstance(fmt, str):
        return None
    match = _PYFORMAT_RE.match(fmt.strip())
    if not match or match.group(3) == "d":
        return None
    if match.group(2) is None:
        return None
    return ("E" if match.group(3) in "eE" else "F"), int(match.group(2))


def _fixed(value, dec):
    return f"{value:#.{dec}f}" if dec == 0 else f"{value:.{dec}f}"


def _sci(value, dec):
    return f"{value:.{dec}E}"


def _auto_float(values):
    """Smallest (kind, decimals) that writes every value so it reads back exactly."""
    if values.size == 0:
        return "F", 1
    decimals = 1
    for v in values:
        text = np.format_float_positional(v, unique=True, trim="-")
        if "." in text:
            decimals = max(decimals, len(text.split(".")[1]))
    # The widest fixed-point string is that of the smallest or largest value.
    if max(len(_fixed(v, decimals)) for v in (values.min(), values.max())) <= \
            _MAX_AUTO_FIXED_WIDTH:
        return "F", _exact_decimals(values, _fixed, decimals)
    mantissa = 1
    for v in values:
        text = np.format_float_scientific(v, unique=True, trim="-").split("e")[0]
        if "." in text:
            mantissa = max(mantissa, len(text.split(".")[1]))
    return "E", _exact_decimals(values, _sci, mantissa)


def _exact_decimals(values, fmt, decimals):
    """Raise *decimals* until ``fmt`` writes every value so it reads back exactly.

    The shortest unique repr (numpy's Dragon4) may round a tie away from the
    value while Python's correctly rounded formatting rounds it to even; at a
    power of two the two neighbouring doubles are unequally spaced, so
    the even-rounded string can read back as the double below (e.g. 2**-24
    written with 15 mantissa decimals).  One more digit always settles it.
    """
    for dec in range(decimals, decimals + 3):
        if all(float(fmt(v, dec)) == v for v in values):
            return dec
    return decimals + 3


def _row_error(label, row, value, text, fmt, width):
    return CDSFormatError(
        f"column {label!r}, row {row}: value {value!r} is written as {text!r} "
        f"({len(text)} characters), which does not fit format {fmt} ({width} characters)"
    )


def _null_mask(col, n):
    mask = np.zeros(n, dtype=bool)
    if hasattr(col, "mask") and col.mask is not None:
        mask |= np.broadcast_to(np.asarray(col.mask, dtype=bool), (n,))
    return mask


def _numeric_field(label, col, user_fmt, limits):
    data = np.ma.getdata(col)
    n = len(data)
    null = _null_mask(col, n)
    is_int = data.dtype.kind in "iub"
    if data.dtype.kind == "b":
        data = data.astype(np.int64)
    if not is_int:
        data = data.astype(np.float64)
        nan = np.isnan(data)
        bad = np.flatnonzero(np.isinf(data) & ~null)
        if bad.size:
            raise CDSFormatError(
                f"column {label!r}, row {bad[0]}: infinite values cannot be written "
                f"in a CDS catalogue (mask them or set them to NaN)"
            )
        null = null | nan
    valid = ~null
    vals = data[valid]

    if user_fmt is not None:
        kind, width, dec = _parse_format(user_fmt, label)
        if kind == "A":
            raise CDSFormatError(f"column {label!r}: numeric column cannot use format {user_fmt}")
        if kind == "I" and not is_int:
            frac = np.flatnonzero(valid & (data != np.round(data)))
            if frac.size:
                row = frac[0]
                raise CDSFormatError(
                    f"column {label!r}, row {row}: value {data[row].item()!r} is not an "
                    f"integer and would be truncated by format {user_fmt}"
                )
    elif is_int:
        kind, dec, width = "I", None, None
    else:
        pydec = _python_decimals(col)
        kind, dec = pydec if pydec is not None else _auto_float(vals)
        width = None

    if kind == "I":
        def fmt_one(v):
            return str(int(v))
    elif kind == "F":
        def fmt_one(v):
            return _fixed(float(v), dec)
    else:
        def fmt_one(v):
            return _sci(float(v), dec)

    texts = [""] * n
    for i in np.flatnonzero(valid):
        texts[i] = fmt_one(data[i])
    longest = max((len(t) for t in texts), default=1)
    if width is None:
        # An all-blank column still needs a well-formed format.
        least = 1 if kind == "I" else dec + (2 if kind == "F" else 6)
        width = max(longest, least)
        fmt = f"I{width}" if kind == "I" else f"{kind}{width}.{dec}"
    else:
        fmt = f"{kind}{width}" + ("" if kind == "I" else f".{dec}")
        if longest > width:
            row = next(i for i, t in enumerate(texts) if len(t) > width)
            raise _row_error(label, row, data[row].item(), texts[row], fmt, width)
    prefix = ""
    if limits and vals.size:
        if kind == "E":
            prefix = f"[{_outward(vals.min(), min(dec, 3), ROUND_FLOOR)}/" \
                     f"{_outward(vals.max(), min(dec, 3), ROUND_CEILING)}]"
        else:
            prefix = f"[{fmt_one(vals.min())}/{fmt_one(vals.max())}]"
    return _Field(label, fmt, "", "", texts, right=True, extra={
        "prefix": prefix, "nullable": bool(null.any())})


def _outward(value, dec, rounding):
    """Format *value* in E notation with *dec* decimals, rounded outwards."""
    ctx = Context(prec=dec + 1, rounding=rounding)
    d = ctx.create_decimal(float(value))
    return f"{d:.{dec}E}"


def _string_field(label, col, user_fmt):
    n = len(col)
    null = _null_mask(col, n)
    data = np.ma.getdata(col)
    texts = [""] * n
    for i in range(n):
        if null[i]:
            continue
        value = data[i]
        if isinstance(value, bytes | np.bytes_):
            try:
                value = value.decode("ascii")
            except UnicodeDecodeError:
                raise CDSFormatError(
                    f"column {label!r}, row {i}: bytes {value!r} are not ASCII"
                ) from None
        elif value is None or value is np.ma.masked:
            continue
        elif not isinstance(value, str):
            raise CDSFormatError(
                f"column {label!r}, row {i}: {type(value).__name__} value {value!r} is not "
                "text; a CDS column holds strings or numbers (convert the column, e.g. "
                "to str, or drop it)"
            )
        if not value.isascii():
            raise CDSFormatError(
                f"column {label!r}, row {i}: {value!r} contains non-ASCII characters; "
                "CDS data files are ASCII only (transliterate it, e.g. 'é' -> 'e')"
            )
        if not value.strip():
            continue
        if any(not c.isprintable() for c in value):
            raise CDSFormatError(
                f"column {label!r}, row {i}: {value!r} contains a control character "
                "(tab, newline, ...)"
            )
        if value != value.strip():
            raise CDSFormatError(
                f"column {label!r}, row {i}: {value!r} has leading or trailing spaces, "
                "which a fixed-width file cannot keep; strip them first"
            )
        texts[i] = value
    nullable = any(t == "" for t in texts)
    longest = max((len(t) for t in texts), default=1)
    if user_fmt is not None:
        kind, width, _ = _parse_format(user_fmt, label)
        if kind != "A":
            raise CDSFormatError(
                f"column {label!r}: text column must use an Aw format, not {user_fmt}"
            )
        if longest > width:
            row = next(i for i, t in enumerate(texts) if len(t) > width)
            raise CDSFormatError(
                f"column {label!r}, row {row}: {texts[row]!r} has {len(texts[row])} "
                f"characters and would be truncated by format {user_fmt}"
            )
    else:
        width = max(longest, 1)
    return _Field(label, f"A{width}", "", "", texts, right=False,
                  extra={"prefix": "", "nullable": nullable})


def _position_fields(coord, precision, plus_sign, name):
    if coord.ndim != 1:
        raise CDSFormatError(f"column {name!r}: positions must be one-dimensional")
    frame = coord.frame
    if isinstance(frame, FK5) and frame.equinox == Time("J2000"):
        system = "J2000"
    else:
        if not isinstance(frame, ICRS):
            coord = coord.icrs
        system = "ICRS"
    ra = np.asarray(coord.spherical.lon.deg, dtype=float)
    dec = np.asarray(coord.spherical.lat.deg, dtype=float)
    check_finite_coords(ra, dec, f"column {name!r} (every row of a CDS catalogue needs a "
                        "position)", error=CDSFormatError, where="row")
    pra, pde = (int(p) for p in precision)
    for p in (pra, pde):
        if not 0 <= p <= 6:
            raise ValueError(f"coord_precision must be two integers in 0..6, got {precision}")
    # Round once, in integer units of the last written digit, then split:
    # carries (59.9996 s -> 60 s) and 24 h -> 0 h are handled exactly.
    ra_units = 3600 * 10**pra
    ra_total = np.round(np.mod(ra, 360.0) / 15.0 * ra_units).astype(np.int64) % (24 * ra_units)
    rah, rem = np.divmod(ra_total, ra_units)
    ram, ras = np.divmod(rem, 60 * 10**pra)
    de_units = 3600 * 10**pde
    de_total = np.round(np.abs(dec) * de_units).astype(np.int64)
    ded, rem = np.divmod(de_total, de_units)
    dem, des = np.divmod(rem, 60 * 10**pde)
    sign = np.where((dec < 0) & (de_total > 0), "-", plus_sign)

    def seconds(values, p):
        if p == 0:
            return [f"{v:02d}" for v in values.tolist()]
        return [f"{v // 10**p:02d}.{v % 10**p:0{p}d}" for v in values.tolist()]

    def sfmt(p):
        return f"F{3 + p}.{p}" if p else "F2.0"

    ra_text = f"Right ascension ({system})"
    de_text = f"Declination ({system})"
    sign_text = f"Declination sign ({system})"
    return [
        _Field("RAh", "I2", "h", ra_text,
               [f"{v:2d}" for v in rah.tolist()], extra={"nullable": False}),
        _Field("RAm", "I2", "min", ra_text,
               [f"{v:02d}" for v in ram.tolist()], extra={"nullable": False}),
        _Field("RAs", sfmt(pra), "s", ra_text,
               seconds(ras, pra), extra={"nullable": False}),
        _Field("DE-", "A1", "---", sign_text, list(sign),
               extra={"nullable": False}),
        _Field("DEd", "I2", "deg", de_text,
               [f"{v:02d}" for v in ded.tolist()], gap=0, extra={"nullable": False}),
        _Field("DEm", "I2", "arcmin", de_text,
               [f"{v:02d}" for v in dem.tolist()], extra={"nullable": False}),
        _Field("DEs", sfmt(pde), "arcsec", de_text,
               seconds(des, pde), extra={"nullable": False}),
    ]


def _find_positions(table):
    """(name of the SkyCoord or RA column, names replaced, SkyCoord) or None.

    The positions are those of `~m31clusters.utils._tables.position_columns`
    (a SkyCoord column or an RA/Dec pair in degrees; sexagesimal columns are
    written as they are).
    """
    skycoords = [n for n in table.colnames if isinstance(table[n], SkyCoord)]
    if len(skycoords) > 1:
        raise CDSFormatError(
            f"the table has {len(skycoords)} SkyCoord columns ({skycoords}); a CDS catalogue "
            "holds one position: convert the others to RA/Dec columns in degrees"
        )
    kind, names = position_columns(table)
    if kind == "skycoord":
        return names[0], names, table[names[0]]
    if kind == "radec":
        values = []
        for c in names:
            un = getattr(table[c], "unit", None)
            v = np.ma.filled(np.ma.asarray(table[c], dtype=float), np.nan)
            values.append(v if un is None else (v * un).to_value(u.deg))
        return names[0], names, SkyCoord(values[0], values[1], unit="deg")
    return None


def _prepare_fields(table, formats, coord_precision, limits):
    formats = dict(formats or {})
    unknown = [k for k in formats if k not in table.colnames]
    if unknown:
        raise CDSFormatError(f"formats given for unknown column(s) {unknown}")
    positions = _find_positions(table)
    if positions is not None:
        for key in formats:
            if key in positions[1]:
                raise CDSFormatError(
                    f"the format of the position column {key!r} is set by coord_precision, "
                    "not by formats"
                )
    fields = []
    for name in table.colnames:
        col = table[name]
        if positions is not None and name in positions[1]:
            if name == positions[0]:
                coord = positions[2]
                meta = getattr(getattr(col, "info", None), "meta", None) or {}
                precision = coord_precision or meta.get("cds_precision", DEFAULT_COORD_PRECISION)
                plus = meta.get("cds_plus_sign", "+") if isinstance(col, SkyCoord) else "+"
                fields.extend(_position_fields(coord, precision, plus, name))
            continue
        if not _LABEL_RE.match(name):
            raise CDSFormatError(
                f"column label {name!r} is not valid in CDS: labels are printable ASCII "
                "without spaces (rename the column)"
            )
        if not isinstance(col, np.ndarray) or getattr(col, "ndim", 1) != 1:
            raise CDSFormatError(
                f"column {name!r} ({type(col).__name__}, shape {getattr(col, 'shape', '?')}) "
                "cannot be written: CDS columns hold one scalar per row"
            )
        kind = col.dtype.kind
        if kind in "iubf":
            fld = _numeric_field(name, col, formats.get(name), limits)
        elif kind in "USO":
            fld = _string_field(name, col, formats.get(name))
        else:
            raise CDSFormatError(f"column {name!r}: dtype {col.dtype} cannot be written to CDS")
        fld.unit = cds_unit_string(getattr(col, "unit", None), name)
        description = getattr(col.info, "description", None) or name
        fld.explanation = " ".join(str(description).split())
        if not fld.explanation.isascii():
            raise CDSFormatError(f"column {name!r}: description {description!r} is not ASCII")
        fields.append(fld)
    # Labels must be unique (CDS readers match columns by label); VizieR
    # compares them without regard to case.
    seen = {}
    for fld in fields:
        key = fld.label.lower()
        if key in seen:
            raise CDSFormatError(
                f"label {fld.label!r} repeats ({seen[key]!r} is already a column"
                + (", from the position columns" if fld.label in SEXAGESIMAL_LABELS
                   or seen[key] in SEXAGESIMAL_LABELS else "")
                + "); rename one of them"
            )
        seen[key] = fld.label
    return fields


def _layout(fields):
    pos = 0
    for i, fld in enumerate(fields):
        fld.width = int(_parse_format(fld.fmt, fld.label)[1])
        gap = 0 if i == 0 else fld.gap
        fld.start = pos + gap + 1
        fld.end = fld.start + fld.width - 1
        pos = fld.end
    return pos


def _data_lines(fields, nrows):
    columns = []
    for fld in fields:
        w = fld.width
        pad = (str.rjust if fld.right else str.ljust)
        columns.append([" " * fld.gap + pad(t, w) if fld.start > 1 else pad(t, w)
                        for t in fld.values])
    return ["".join(parts) for parts in zip(*columns, strict=True)] if fields else []


# --------------------------------------------------------------------------
# ReadMe


def _wrap(text, first_indent, rest_indent, protect_digits=False):
    """Wrap *text* to 80 columns; with *protect_digits* no line starts with a digit."""
    if protect_digits:
        text = re.sub(r" (?=\d)", "\0", text)
    lines = textwrap.wrap(
        text,
        width=_LINE,
        initial_indent=" " * first_indent,
        subsequent_indent=" " * rest_indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [" " * first_indent]
    return [line.replace("\0", " ") for line in lines]


def _check_lines(lines, what):
    for line in lines:
        if len(line) > _LINE:
            raise CDSFormatError(
                f"{what}: line {line!r} is {len(line)} characters long, more than the "
                f"{_LINE} allowed by CDS (a word or label is too long to wrap)"
            )
    return lines


def _paragraphs(text, indent=4):
    out = []
    for k, para in enumerate(re.split(r"\n\s*\n", str(text).strip())):
        if k:
            out.append("")
        out.extend(_wrap(" ".join(para.split()), indent, indent))
    return out


def _note_lines(number, text):
    lines = []
    raw = [line.rstrip() for line in str(text).rstrip().splitlines()] or [""]
    head = f"Note ({number}): "
    for k, line in enumerate(raw):
        if k == 0:
            if not line.strip():
                lines.append(head.rstrip())
                continue
            wrapped = _wrap(line.strip(), len(head), 4)
            wrapped[0] = head + wrapped[0][len(head):]
        else:
            indent = len(line) - len(line.lstrip())
            indent = max(indent, 2)
            wrapped = _wrap(line.strip(), indent, indent + 2)
        lines.extend(wrapped)
    return lines


def _bytebybyte(fields, data_name, lrecl):
    nd = max(3, len(str(lrecl)))
    fw = max(6, *(len(f.fmt) for f in fields))
    uw = max(5, *(len(f.unit) for f in fields))
    lw = max(5, *(len(f.label) for f in fields))

    def byte_range(f):
        if f.start == f.end:
            return " " * (nd + 2) + f"{f.end:>{nd}}"
        return f"{f.start:>{nd + 1}}-{f.end:>{nd}}"

    bw = 2 * nd + 2
    header = f"{'Bytes':>{bw}} {'Format':<{fw}} {'Units':<{uw}} {'Label':<{lw}} Explanations"
    lines = [f"Byte-by-byte Description of file: {data_name}", _RULE, header.rstrip(), _RULE]
    start = bw + fw + uw + lw + 4
    if start > _LINE - 20:
        raise CDSFormatError(
            f"labels or units are too long: explanations would start at column {start + 1}, "
            "leaving less than 20 of the 80 characters a CDS line may have"
        )
    for f in fields:
        text = f.explanation
        if f.note is not None:
            text = f"{text} ({f.note})"
        lead = f"{byte_range(f)} {f.fmt:<{fw}} {f.unit:<{uw}} {f.label:<{lw}} "
        wrapped = _wrap(text, start, start + 2, protect_digits=True)
        wrapped[0] = lead + wrapped[0][start:]
        lines.extend(_check_lines(wrapped, f"explanation of column {f.label!r}"))
    lines.append(_RULE)
    return lines


def _authors_list(authors):
    if isinstance(authors, str):
        authors = [a.strip() for a in authors.split(",") if a.strip()] if ";" not in authors \
            else [a.strip() for a in authors.split(";") if a.strip()]
    authors = [str(a) for a in authors]
    if not authors:
        raise ValueError("authors must name at least one author")
    return authors


def _check_ascii(**texts):
    """Raise CDSFormatError naming the first ReadMe field that is not ASCII text."""
    for name, value in texts.items():
        if value is None:
            continue
        items = [value] if isinstance(value, str) else list(value) \
            if isinstance(value, list | tuple) else [value]
        for item in items:
            if not isinstance(item, str):
                raise CDSFormatError(f"{name} must be text, got {type(item).__name__} {item!r}")
            if not item.isascii():
                bad = next(c for c in item if not c.isascii())
                raise CDSFormatError(
                    f"{name} {item!r} contains the non-ASCII character {bad!r}; a CDS "
                    "ReadMe is ASCII only (transliterate it, e.g. 'é' -> 'e')"
                )


def _build_readme(fields, data_name, nrows, lrecl, *, title, authors, abstract, keywords,
                  description, explanation, catalog_id, year, date, notes):
    authors = _authors_list(authors)
    if date is None:
        date = datetime.date.today()
    elif not isinstance(date, datetime.date):
        date = datetime.date.fromisoformat(str(date))
    year = int(year) if year is not None else date.year
    first_author = authors[0].split()[0].rstrip(",.")
    short = " ".join(str(title).split())
    cite = f"({first_author}{'+' if len(authors) > 1 else ''}, {year})"
    ident = catalog_id or ""
    room = _LINE - len(ident) - len(cite) - 2
    if len(short) > room:
        short = short[: max(room - 3, 0)].rstrip() + "..."
    first = f"{ident} {short:<{room}} {cite}" if ident else f"{short:<{room + 1}} {cite}"
    lines = [first, _DOUBLE_RULE]
    lines += _wrap(" ".join(str(title).split()), 0, 4)
    lines += _wrap(", ".join(authors), 4, 4)
    lines.append(_DOUBLE_RULE)
    if keywords:
        if isinstance(keywords, str):
            keywords = [keywords]
        lines += _wrap("Keywords: " + " - ".join(" ".join(k.split()) for k in keywords), 0, 10)
        lines.append("")
    if abstract:
        lines.append("Abstract:")
        lines += _paragraphs(abstract)
        lines.append("")
    if description:
        lines.append("Description:")
        lines += _paragraphs(description)
        lines.append("")
    name_w = max(10, len(data_name), len("ReadMe"))
    rec_w = max(7, len(str(nrows)))
    lines += ["File Summary:", _RULE,
              f" {'FileName':<{name_w}} {'Lrecl':>5} {'Records':>{rec_w}}   Explanations",
              _RULE]
    lines.append(f"{'ReadMe':<{name_w + 1}} {80:>5} {'.':>{rec_w}}   This file")
    expl = " ".join(str(explanation or title).split())
    start = name_w + 1 + 1 + 5 + 1 + rec_w + 3
    wrapped = _wrap(expl, start, start + 1)
    wrapped[0] = f"{data_name:<{name_w + 1}} {lrecl:>5} {nrows:>{rec_w}}   " + wrapped[0][start:]
    lines += wrapped
    lines += [_RULE, ""]
    lines += _bytebybyte(fields, data_name, lrecl)
    if notes:
        for number, text in notes:
            lines += _note_lines(number, text)
        lines.append(_RULE)
    lines += ["", _DOUBLE_RULE,
              f"{'(End)':<{_LINE - 11}}{date.day:02d}-{_MONTHS[date.month - 1]}-{date.year}"]
    return _check_lines(lines, "ReadMe")


def write_cds(table, readme_path, data_path=None, *, title, authors, abstract=None,
              keywords=None, notes=None, description=None, explanation=None,
              formats=None, coord_precision=None, limits=True, catalog_id=None,
              year=None, date=None, overwrite=False):
    """
    Write *table* as a CDS catalogue: a ``ReadMe`` and a fixed-width data file.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalogue.  A `~astropy.coordinates.SkyCoord` column (or, without
        one, an RA/Dec pair of columns in degrees such as ``ra``/``dec``) is
        written as the sexagesimal columns ``RAh RAm RAs DE- DEd DEm DEs``.
        Each column's ``unit`` and ``description`` give the Units and
        Explanations; a float column's ``format`` (e.g. ``"{:.3f}"`` or
        ``".2e"``) sets its number of decimals.
    readme_path : str or path-like
        The ``ReadMe`` file to write.
    data_path : str or path-like, optional
        The data file; default ``table1.dat`` next to the ReadMe.
    title : str
        Catalogue title.
    authors : str or list of str
        Authors, e.g. ``["Zhang J.", "Smith A."]``.
    abstract, description : str, optional
        Abstract and description (paragraphs separated by blank lines).
    keywords : str or list of str, optional
        Keywords.
    notes : dict, optional
        Notes keyed by column label (``"coord"`` or the name of the RA
        column attaches to the position).  Each note is numbered, referenced
        at the end of its column's explanation as ``(n)`` and written in the
        Notes section; line breaks in a note are kept and long lines
        wrapped.  ``table.meta["notes"]`` (filled by `read_cds`) is used for
        columns not given here.
    explanation : str, optional
        The data file's explanation in the File Summary (default: *title*).
    formats : dict, optional
        CDS formats (``"I3"``, ``"F6.3"``, ``"E10.3"``, ``"A12"``) forced
        for some columns.  A format that would overflow or truncate any
        value raises `~m31clusters.exceptions.CDSFormatError`.  Other
        columns get the narrowest format that writes every value: integers
        exactly, floats with the decimals of their ``format`` or, without
        one, enough digits to read back exactly.
    coord_precision : tuple of int, optional
        Decimals of the seconds of RA and of Dec, default the
        ``cds_precision`` of the position column's ``info.meta`` or (3, 2).
    limits : bool, optional
        Add ``[min/max]`` to the explanations of numeric columns (default True).
    catalog_id : str, optional
        Catalogue designation for the first line (e.g. ``"J/ApJS/278/16"``).
    year : int, optional
        Year in the first line (default: the year of *date*).
    date : `datetime.date` or str, optional
        Date of the ``(End)`` line, ``"2026-11-25"`` or a date (default:
        today).  Fix it to make the output reproducible.
    overwrite : bool, optional
        Replace existing files (default False).

    Returns
    -------
    readme_path, data_path : `~pathlib.Path`
        The files written.

    Raises
    ------
    CDSFormatError
        A value that does not fit its format (the message names the column
        and the row), non-ASCII text, a label that repeats or is not valid,
        a unit with no CDS spelling, a NaN position.
    FileExistsError
        If a file exists and *overwrite* is False (nothing is written).

    Notes
    -----
    Masked and NaN values are written as blanks and mark their column as
    nullable (``?`` in the explanation).  Empty strings are blanks too, so
    they read back as masked.  Both files are written to temporary files
    first and moved into place only when everything succeeded; if moving the
    second fails, the first is put back, so an existing pair is either
    replaced whole or left as it was.  New files get the mode a plain
    ``open()`` would give (``0o644`` under umask 022); replaced files keep
    theirs.

    Examples
    --------
    >>> import os, tempfile
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table
    >>> from m31clusters.io.cds.write import write_cds
    >>> t = Table({"coord": SkyCoord([10.68, 10.70], [41.27, -0.5], unit="deg"),
    ...            "gmag": [18.123, 19.5] * u.mag})
    >>> t["gmag"].info.format = ".2f"
    >>> d = tempfile.mkdtemp()
    >>> readme, data = write_cds(t, os.path.join(d, "ReadMe"), title="Two sources",
    ...                          authors=["Doe J."], year=2026)
    >>> print(data.read_text(), end="")
     0 42 43.200 +41 16 12.00 18.12
     0 42 48.000 -00 30 00.00 19.50
    """
    readme_path = Path(readme_path)
    data_path = Path(data_path) if data_path is not None else readme_path.with_name("table1.dat")
    if readme_path.resolve() == data_path.resolve():
        raise ValueError("readme_path and data_path must be different files")
    check_overwrite(readme_path, overwrite)
    check_overwrite(data_path, overwrite)
    _check_ascii(title=title, authors=authors, abstract=abstract, keywords=keywords,
                 description=description, explanation=explanation, catalog_id=catalog_id,
                 data_path=data_path.name)

    fields = _prepare_fields(table, formats, coord_precision, limits)
    if not fields:
        raise CDSFormatError("the table has no columns to write")
    lrecl = _layout(fields)

    notes = _collect_notes(table, fields, notes)
    for fld in fields:
        prefix = fld.extra.get("prefix", "")
        if fld.extra.get("nullable"):
            prefix += "?"
        if prefix:
            fld.explanation = f"{prefix} {fld.explanation}"

    lines = _data_lines(fields, len(table))
    readme = _build_readme(
        fields, data_path.name, len(table), lrecl, title=title, authors=authors,
        abstract=abstract, keywords=keywords, description=description,
        explanation=explanation, catalog_id=catalog_id, year=year, date=date, notes=notes,
    )
    with atomic_paths([readme_path, data_path], overwrite=overwrite) as (tmp_readme, tmp_data):
        with open(tmp_data, "w", encoding="ascii", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
        with open(tmp_readme, "w", encoding="ascii", newline="\n") as f:
            f.write("\n".join(readme) + "\n")
    return readme_path, data_path


def _collect_notes(table, fields, notes):
    """Attach note numbers to fields; return [(number, text)]."""
    by_label = {f.label: f for f in fields}
    positions = _find_positions(table)
    aliases = {}
    if positions is not None:
        for name in positions[1]:
            aliases[name] = "RAh" if name == positions[0] else "DEd"
    merged = {}
    for key, text in (table.meta.get("notes") or {}).items():
        label = aliases.get(key, key)
        if label in by_label:
            merged[label] = text
    for key, text in (notes or {}).items():
        label = aliases.get(key, key)
        if label not in by_label:
            raise CDSFormatError(
                f"note for unknown column {key!r} (columns: {list(by_label)})"
            )
        merged[label] = text
    out, numbers = [], {}
    for fld in fields:
        if fld.label not in merged:
            continue
        text = str(merged[fld.label])
        if not text.isascii():
            raise CDSFormatError(f"note of column {fld.label!r} is not ASCII")
        if text not in numbers:
            numbers[text] = len(numbers) + 1
            out.append((numbers[text], text))
        fld.note = numbers[text]
    return out
