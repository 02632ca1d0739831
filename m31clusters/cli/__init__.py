"""
The ``m31clusters`` command line.

Installed as the console script ``m31clusters`` and runnable as
``python -m m31clusters``.  Each subcommand lives in its own module
``m31clusters/cli/_<name>.py`` with two functions:

* ``add_parser(subparsers)`` registers the subcommand's parser on the
  ``argparse`` sub-parser action and calls ``set_defaults(run=run)``;
* ``run(args) -> int`` does the work and returns the exit status.

`main` adds the options common to every subcommand (``--debug``: show the
traceback of an error; ``--quiet``: no progress output), and turns the
errors a user can cause (`~m31clusters.exceptions.M31ClustersError`,
`OSError`, `ValueError`, `KeyError`, `ImportError`) into one line
``m31clusters <subcommand>: error: ...`` on standard error and exit
status 1.  Usage errors (unknown option, bad value) exit with status 2
(argparse's convention); success exits 0.
"""

import argparse
import importlib
import sys

__all__ = ["main", "SUBCOMMANDS", "build_parser"]

#: Subcommand modules, ``m31clusters.cli._<name>``, in the order ``--help`` lists them.
SUBCOMMANDS = ("search", "demo", "train", "evaluate", "inspect")




def _user_errors():
    from ..exceptions import M31ClustersError

    return (M31ClustersError, OSError, ValueError, KeyError, ImportError)


def _add_common(parser):
    group = parser.add_argument_group("common options")
    group.add_argument("--debug", action="store_true",
                       help="show the full traceback of an error")
    group.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser():
    """
    The argument parser of the ``m31clusters`` command (all subcommands).

    Returns
    -------
    parser : `argparse.ArgumentParser`
    """
    from .._version import version

    parser = argparse.ArgumentParser(
        prog="m31clusters",
        description="Find star clusters in M31 PAndAS images with deep learning and "
                    "publish them as CDS catalogues.",
        epilog="Run 'm31clusters <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"m31clusters {version}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"._{name}", __name__)
        module.add_parser(subparsers)
    for sub in subparsers.choices.values():
        _add_common(sub)
    return parser


def _one_line(exc):
    """The message of *exc* on one line (KeyError without its quotes)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv=None):
    """
    Run the ``m31clusters`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (without the program name); default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 on an error of the run, 2 on a usage error.

    Examples
    --------
    >>> from m31clusters.cli import main
    >>> main(["demo", "--images", "no-such-g.fits", "no-such-i.fits", "--quiet"])
    1
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.run(args)
    except _user_errors() as exc:
        if args.debug:
            raise
        print(f"m31clusters {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"m31clusters {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
