"""
File formats of m31clusters, registered with astropy's unified I/O registry.

Each format lives in its own sub-package (``read.py``, ``write.py`` and
``connect.py``, the layout of the ``regions`` package):

* ``m31clusters.io.cds``: CDS (VizieR) ReadMe plus fixed-width data file,
  format name ``"cds"`` on `m31clusters.catalog.Catalog`;
* ``m31clusters.io.pandas_ascd``: the PAndAS per-field source catalogues
  ``m###p.ascd``, format name ``"pandas-ascd"``.

Importing this package makes the registrations (``m31clusters`` imports it):
each format's ``connect.py`` imports `~m31clusters.catalog.Catalog` and
registers its reader, writer and identifier; nothing in ``catalog`` imports
the formats.
"""

from .cds import connect as _cds_connect  # noqa: F401
from .pandas_ascd import connect as _pandas_ascd_connect  # noqa: F401

__all__ = []
