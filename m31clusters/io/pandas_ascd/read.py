"""Read PAndAS per-field source catalogues (``m###p.ascd``)."""

import re
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u

from ...catalog import Catalog
from ...exceptions import CorruptFileError

__all__ = ["PANDAS_ASCD_COLUMNS", "read_pandas_ascd"]

#: The 15 columns of a PAndAS ``.ascd`` file, in order: name, dtype, unit, description.
PANDAS_ASCD_COLUMNS = (
    ("RA", float, u.deg, "Right ascension (ICRS)"),
    ("Dec", float, u.deg, "Declination (ICRS)"),
    ("iccd", int, None, "MegaCam CCD number"),
    ("xg", float, u.pix, "x position on the g-band CCD"),
    ("yg", float, u.pix, "y position on the g-band CCD"),
    ("g", float, u.mag, "g magnitude"),
    ("dg", float, u.mag, "Uncertainty in g"),
    ("ig", int, None, "g morphology flag (-9 saturated, -2/-1 star-like, 0 noise, "
                      "+1/+2 extended)"),
    ("xi", float, u.pix, "x position on the i-band CCD"),
    ("yi", float, u.pix, "y position on the i-band CCD"),
    ("i", float, u.mag, "i magnitude"),
    ("di", float, u.mag, "Uncertainty in i"),
    ("ii", int, None, "i morphology flag (-9 saturated, -2/-1 star-like, 0 noise, "
                      "+1/+2 extended)"),
    ("ia", float, None, "ia column of the PAndAS catalogue"),
    ("field", int, None, "PAndAS field number (the ### of m###)"),
)

_NAMES = tuple(c[0] for c in PANDAS_ASCD_COLUMNS)
_FIELD_FILE_RE = re.compile(r"^m(\d+)p\.ascd(\.gz)?$")


def _diagnose(path):
    """Find the first bad line of *path* and raise a CorruptFileError naming it."""
    with open(path, encoding="ascii", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split()
            if len(parts) != len(_NAMES):
                raise CorruptFileError(
                    f"{str(path)!r}, line {lineno}: {len(parts)} columns, expected "
                    f"{len(_NAMES)} ({' '.join(_NAMES)})"
                )
            for (name, kind, _, _), value in zip(PANDAS_ASCD_COLUMNS, parts, strict=True):
                try:
                    number = float(value)
                except ValueError:
                    raise CorruptFileError(
                        f"{str(path)!r}, line {lineno}: column {name!r} has {value!r}, "
                        "not a number"
                    ) from None
                if kind is int and not float(number).is_integer():
                    raise CorruptFileError(
                        f"{str(path)!r}, line {lineno}: column {name!r} has {value!r}, "
                        "not an integer"
                    )
    raise CorruptFileError(f"{str(path)!r} could not be parsed as a PAndAS .ascd file")


def read_pandas_ascd(path):
    """
    Read a PAndAS per-field source catalogue (``m###p.ascd``).

    Parameters
    ----------
    path : str or path-like
        The file: 15 whitespace-separated columns ``RA Dec iccd xg yg g dg
        ig xi yi i di ii ia field`` per line (``#`` starts a comment).

    Returns
    -------
    catalog : `~m31clusters.catalog.Catalog`
        One row per source, the 15 columns with units (RA/Dec in deg,
        positions in pix, magnitudes in mag) and descriptions;
        ``meta["pandas_field"]`` holds the field number when the file name
        is ``m###p.ascd``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CorruptFileError
        If a line does not have 15 numeric columns or a flag column is not
        an integer (the message names the line and the column).

    Examples
    --------
    >>> import os, tempfile
    >>> from m31clusters.io.pandas_ascd import read_pandas_ascd
    >>> path = os.path.join(tempfile.mkdtemp(), "m001p.ascd")
    >>> with open(path, "w") as f:
    ...     _ = f.write("10.6847 41.2688 12 1000.5 2000.2 20.1 0.02 -1 "
    ...                 "1001.0 2000.9 19.3 0.03 1 0.5 1\\n")
    >>> cat = read_pandas_ascd(path)
    >>> print(cat["RA", "Dec", "g", "ig", "field"])
       RA     Dec     g   ig field
      deg     deg    mag
    ------- ------- ---- --- -----
    10.6847 41.2688 20.1  -1     1
    >>> cat.meta["pandas_field"]
    1
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"PAndAS catalogue {str(path)!r} not found")
    try:
        with warnings.catch_warnings():
            # An empty catalogue (a field with no sources) is valid.
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            data = np.loadtxt(path, dtype=float, comments="#", ndmin=2, encoding="ascii")
    except (ValueError, UnicodeDecodeError):
        _diagnose(path)
    if data.shape[0] == 0:
        data = np.zeros((0, len(_NAMES)))
    if data.shape[1] != len(_NAMES):
        _diagnose(path)
    cat = Catalog()
    for k, (name, kind, unit, description) in enumerate(PANDAS_ASCD_COLUMNS):
        values = data[:, k]
        if kind is int:
            if not np.all(values == np.round(values)):
                _diagnose(path)
            values = values.astype(np.int64)
        cat[name] = values
        cat[name].unit = unit
        cat[name].description = description
    match = _FIELD_FILE_RE.match(path.name)
    if match:
        cat.meta["pandas_field"] = int(match.group(1))
    return cat
