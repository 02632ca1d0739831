"""Atomic, non-clobbering file writing."""

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "check_overwrite", "default_file_mode", "path_of"]


def _current_umask():
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover - not Linux
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def default_file_mode(path=None):
    """
    The permission bits a new file written at *path* should get.

    An existing *path* keeps its own mode (a replacement with ``overwrite=True``
    does not change who can read the file); a new file gets what a plain
    ``open(path, "w")`` would give: ``0o666`` less the process umask
    (``0o644`` under the usual umask 022).
    """
    if path is not None:
        try:
            return os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            pass
    return 0o666 & ~_current_umask()


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
    removed and *path* is left untouched.  The file put in place gets the mode
    a plain ``open(path, "w")`` would give (``0o666`` less the umask), or the
    mode of the file it replaces (see `default_file_mode`), not the ``0o600``
    of `tempfile.mkstemp`.

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
        if os.path.exists(tmp):
            os.chmod(tmp, default_file_mode(path))
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
