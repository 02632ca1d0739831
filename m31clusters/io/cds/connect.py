"""
Register the ``cds`` format of `m31clusters.catalog.Catalog` with astropy's
unified I/O registry.

Only the `~m31clusters.catalog.Catalog` class is registered: astropy picks
the reader of the nearest registered class in the MRO, so
``Catalog.read(..., format="cds")`` uses `read_cds` while
``Table.read(..., format="cds")`` keeps astropy's own reader.
"""

import os

from astropy.io import registry

from ...catalog import Catalog
from ...utils._io import path_of as _path_of
from .read import read_cds
from .write import write_cds

__all__ = []


def _identify(origin, path, fileobj, *args, **kwargs):
    """A file named ``ReadMe`` (any case) or ``*.readme``."""
    if not isinstance(path, str | os.PathLike):
        return False
    name = os.path.basename(os.fspath(path)).lower()
    return name == "readme" or name.endswith(".readme")


def _read(readme_path, data_path=None, **kwargs):
    return read_cds(_path_of(readme_path), data_path, **kwargs)


def _write(table, readme_path, data_path=None, **kwargs):
    return write_cds(table, readme_path, data_path, **kwargs)


registry.register_reader("cds", Catalog, _read, force=True)
registry.register_writer("cds", Catalog, _write, force=True)
registry.register_identifier("cds", Catalog, _identify, force=True)
