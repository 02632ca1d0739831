"""Register the ``pandas-ascd`` format with astropy's unified I/O registry."""

import os

from astropy.io import registry

from ...catalog import Catalog
from ...utils._io import path_of as _path_of
from .read import read_pandas_ascd
from .write import write_pandas_ascd

__all__ = []


def _identify(origin, path, fileobj, *args, **kwargs):
    """A file named ``*.ascd`` (or ``*.ascd.gz`` for reading)."""
    if not isinstance(path, str | os.PathLike):
        return False
    name = os.fspath(path).lower()
    return name.endswith(".ascd") or (origin == "read" and name.endswith(".ascd.gz"))


def _read(path, **kwargs):
    return read_pandas_ascd(_path_of(path), **kwargs)


def _write(table, path, *, overwrite=False, **kwargs):
    return write_pandas_ascd(table, path, overwrite=overwrite, **kwargs)


registry.register_reader("pandas-ascd", Catalog, _read, force=True)
registry.register_writer("pandas-ascd", Catalog, _write, force=True)
registry.register_identifier("pandas-ascd", Catalog, _identify, force=True)
