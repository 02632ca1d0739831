"""Atomic, non-clobbering file writing."""

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "check_overwrite", "path_of"]


def check_overwrite(path, overwrite):
    """
    Raise `FileExistsError` if *path* exists and *overwrite* is false.

    Returns the path as a `~pathlib.Path`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{str(path)!r} already exists; pass overwrite=True to replace it"
        )
    return path


@contextlib.contextmanager
def atomic_path(path, overwrite=False):
    """
    Context manager giving a temporary path that replaces *path* on success.

    The temporary file is created in the same directory (so the final
    `os.replace` is atomic on POSIX).  On any exception the temporary file is
    removed and *path* is left untouched.

    Examples
    --------
    >>> import os, tempfile
    >>> from m31clusters.utils._io import atomic_path
    >>> d = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(d, "x.txt")) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("hello")
    >>> with open(os.path.join(d, "x.txt")) as f:
    ...     f.read()
    'hello'
    """
    path = check_overwrite(path, overwrite)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        # Re-check: another process may have created the file meanwhile.
        check_overwrite(path, overwrite)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def path_of(arg):
    """
    The file name of *arg*, a path or an open file object.

    astropy's unified I/O registry passes an open file object when it has
    auto-identified the format; readers that need a name get it here.
    """
    name = getattr(arg, "name", None) if hasattr(arg, "read") else arg
    if not isinstance(name, str | os.PathLike):
        raise TypeError(f"expected a file name, got {type(arg).__name__}")
    return name
