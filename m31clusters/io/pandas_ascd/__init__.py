"""
The PAndAS per-field source catalogue format ``m###p.ascd``.

Fifteen whitespace-separated columns per source, no header:
``RA Dec iccd xg yg g dg ig xi yi i di ii ia field``.  Registered with
astropy's unified I/O registry as ``format="pandas-ascd"`` on
`m31clusters.catalog.Catalog` by ``connect.py`` when `m31clusters.io` is
imported (importing `m31clusters` does).
"""

from .read import PANDAS_ASCD_COLUMNS, read_pandas_ascd
from .write import write_pandas_ascd

__all__ = ["PANDAS_ASCD_COLUMNS", "read_pandas_ascd", "write_pandas_ascd"]
