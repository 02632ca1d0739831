"""
File formats of m31clusters, registered with astropy's unified I/O registry.

Each format lives in its own sub-package (``read.py``, ``write.py`` and
``connect.py``, the layout of the ``regions`` package):

* ``m31clusters.io.cds``: CDS (VizieR) ReadMe plus fixed-width data file,
  format name ``"cds"`` on `m31clusters.catalog.Catalog`;
* ``m31clusters.io.pandas_ascd``: the PAndAS per-field source catalogues
  ``m###p.ascd``, format name ``"pandas-ascd"``.

The registrations are made when `m31clusters.catalog` is imported.
"""

__all__ = []
