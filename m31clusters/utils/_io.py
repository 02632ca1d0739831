"""Atomic, non-clobbering file writing (one file, or several all-or-nothing)."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_paths", "check_overwrite", "default_file_mode", "path_of"]


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
    of `tempfile.mkstemp`.  `atomic_paths` does the same for several files
    that must be replaced together.

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
    with atomic_paths([path], overwrite=overwrite) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths, overwrite=False):
    """
    Context manager for writing several files all-or-nothing.

    Yields one temporary path per entry of *paths* (each in its target's
    directory).  When the block succeeds every temporary replaces its target;
    if any replacement fails, the targets already replaced are restored (the
    old files put back, new files removed), so either all the files are the
    new ones or all are as they were.  On an exception inside the block
    nothing is touched.  The modes are those of `atomic_path`.

    Parameters
    ----------
    paths : sequence of str or path-like
        The files to write (distinct).
    overwrite : bool, optional
        Replace existing files (default False: `FileExistsError`, before
        anything is written, if any exists).

    Yields
    ------
    tmps : list of str
        The temporary paths, in the order of *paths*.

    Raises
    ------
    FileExistsError
        If a target exists and *overwrite* is false.
    FileNotFoundError
        If a target's directory does not exist.
    ValueError
        If two paths name the same file.

    Examples
    --------
    >>> import os, tempfile
    >>> from m31clusters.utils._io import atomic_paths
    >>> d = tempfile.mkdtemp()
    >>> with atomic_paths([os.path.join(d, "a.txt"), os.path.join(d, "b.txt")]) as tmps:
    ...     for tmp, text in zip(tmps, ("first", "second")):
    ...         with open(tmp, "w") as f:
    ...             _ = f.write(text)
    >>> sorted(os.listdir(d))
    ['a.txt', 'b.txt']
    """
    paths = [check_overwrite(p, overwrite) for p in paths]
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"the files to write must be distinct, got {[str(p) for p in paths]}")
    for path in paths:
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise FileNotFoundError(f"directory {str(directory)!r} does not exist")
    tmps, backups = [], []
    try:
        for path in paths:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                       dir=path.parent if str(path.parent) else ".")
            os.close(fd)
            tmps.append(tmp)
        yield list(tmps)
        # Re-check: another process may have created a file meanwhile.
        for path in paths:
            check_overwrite(path, overwrite)
        for tmp, path in zip(tmps, paths, strict=True):
            if os.path.exists(tmp):
                os.chmod(tmp, default_file_mode(path))
        if len(paths) > 1:
            backups = [_backup(path) for path in paths]
        done = []
        try:
            for tmp, path in zip(tmps, paths, strict=True):
                os.replace(tmp, path)
                done.append(path)
        except BaseException:
            for path, backup in zip(paths[: len(done)], backups, strict=False):
                if backup is None:
                    path.unlink(missing_ok=True)
                else:
                    os.replace(backup, path)
            raise
    finally:
        for name in tmps + [b for b in backups if b is not None]:
            if os.path.exists(name):
                os.remove(name)


def _backup(path):
    """A hard link (or copy) of an existing *path* next to it, or None if absent."""
    if not path.exists():
        return None
    fd, backup = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
    os.close(fd)
    os.remove(backup)
    try:
        os.link(path, backup)
    except OSError:  # pragma: no cover - file systems without hard links
        shutil.copy2(path, backup)
    return backup


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
