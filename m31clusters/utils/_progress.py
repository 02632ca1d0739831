"""
The library's one progress helper.

Every long loop in m31clusters shows progress through `progress_bar`, and every
public function with a long loop takes the same keyword, ``progress``, with the
same default, `PROGRESS_DEFAULT` (``False``: library calls are quiet unless
asked; the command line turns progress on and ``--quiet`` turns it off).
"""

__all__ = ["PROGRESS_DEFAULT", "progress_bar"]

#: Default of every ``progress`` keyword in the library.
PROGRESS_DEFAULT = False


def progress_bar(iterable=None, *, progress=PROGRESS_DEFAULT, total=None, desc=None,
                 unit="it", leave=True):
    """
    Wrap *iterable* in a progress bar when *progress* is true.

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over; ``None`` gives a manually updated bar (call
        ``update(n)``) when *progress* is true, or a do-nothing stand-in.
    progress : bool, optional
        Show a bar (tqdm) on standard error.  Default `PROGRESS_DEFAULT`.
    total : int, optional
        Number of items, when *iterable* has no length.
    desc, unit : str, optional
        Label and unit shown by the bar.
    leave : bool, optional
        Keep the finished bar on screen.

    Returns
    -------
    iterable or bar
        *iterable* itself when *progress* is false (or a stand-in with
        ``update``/``close``/``set_postfix_str`` when *iterable* is ``None``).

    Examples
    --------
    >>> from m31clusters.utils._progress import progress_bar
    >>> list(progress_bar(range(3)))
    [0, 1, 2]
    >>> bar = progress_bar(total=3)
    >>> bar.update(1); bar.close()
    """
    if progress:
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    if iterable is None:
        return _NoBar()
    return iterable


class _NoBar:
    """A silent stand-in for a manually updated tqdm bar."""

    def update(self, n=1):
        pass

    def close(self):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
