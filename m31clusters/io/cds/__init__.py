"""
The CDS (VizieR) catalogue format: a ``ReadMe`` plus fixed-width data files.

`read_cds` and `write_cds` are also available through astropy's unified
I/O registry as ``Catalog.read(path, format="cds")`` and
``Catalog.write(path, format="cds", ...)`` (registered by ``connect.py``
when `m31clusters.io` is imported, which importing `m31clusters` does).
"""

from ...utils._tables import SEXAGESIMAL_LABELS
from .read import parse_readme, read_cds
from .write import DEFAULT_COORD_PRECISION, cds_unit_string, write_cds

__all__ = [
    "read_cds",
    "write_cds",
    "parse_readme",
    "cds_unit_string",
    "DEFAULT_COORD_PRECISION",
    "SEXAGESIMAL_LABELS",
]
