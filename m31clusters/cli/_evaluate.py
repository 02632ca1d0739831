"""``m31clusters evaluate``: purity and completeness of a candidate catalogue."""

from pathlib import Path

__all__ = ["add_parser", "run"]


def _read_table(path, what):
    """A table file read with astropy (format from its name or content), or a clear error."""
    from astropy.io.registry import IORegistryError
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return Table.read(path)
    except IORegistryError as exc:
        raise ValueError(f"cannot tell the format of {what} {str(path)!r} (use .ecsv, .fits, "
                         f".vot, .csv): {str(exc).splitlines()[0]}") from None

_REFERENCES = ("phat", "rbc", "c11")


def add_parser(subparsers):
    """Register the ``evaluate`` subcommand on *subparsers*."""
    parser = subparsers.add_parser(
        "evaluate",
        help="purity, completeness and false positives of a candidate catalogue",
        description="Compare a candidate catalogue with the truth table of a simulated field "
                    "or a reference list of real clusters: purity and completeness overall "
                    "and by magnitude, projected radius, crowding and size, the kinds of "
                    "false positives and the inspection budget; as a table and a plot.",
    )
    parser.add_argument("candidates",
                        help="candidate catalogue: a CDS ReadMe (with its data file beside "
                             "it, e.g. the search's or the demo's output) or a table file")
    parser.add_argument("truth",
                        help="truth table of a simulated field (m###_truth.ecsv), a reference "
                             "table file, or a shipped list: " + ", ".join(_REFERENCES))
    parser.add_argument("--data", help="the CDS data file, if not beside the ReadMe")
    parser.add_argument("--radius", type=float, default=1.0, help="match radius, arcsec")
    parser.add_argument("--mag-limit", type=float, default=21.0,
                        help="completeness over clusters brighter than this (default "
                             "%(default)s)")
    parser.add_argument("--sources", help="all detected sources (table), for the crowding")
    parser.add_argument("--table", help="write the summary table here (ECSV)")
    parser.add_argument("--plot", help="write the plot here (PNG)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(run=run)
    return parser


def _read_candidates(path, data):
    from ..catalog import Catalog

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"candidate catalogue {str(path)!r} does not exist")
    if path.name == "ReadMe" or path.suffix.lower() == ".readme":
        if data is None:
            dats = sorted(path.parent.glob("*.dat"))
            if len(dats) != 1:
                raise FileNotFoundError(
                    f"cannot tell the data file of {str(path)!r} ({len(dats)} .dat files "
                    f"beside it); pass --data")
            data = dats[0]
        return Catalog.read_cds(path, data)
    return _read_table(path, "candidate catalogue")


def _read_truth(spec):
    from ..datasets import load_caldwell2011, load_phat_clusters, load_rbc_v5

    if spec in _REFERENCES:
        return {"phat": load_phat_clusters, "rbc": load_rbc_v5, "c11": load_caldwell2011}[spec]()
    if not Path(spec).is_file():
        raise FileNotFoundError(
            f"truth or reference {spec!r} does not exist (nor is it one of {_REFERENCES})")
    return _read_table(spec, "truth or reference table")


def run(args):
    """Evaluate the candidates for the parsed *args*; returns the exit status."""
    from astropy import units as u

    from ..evaluation import evaluate_catalog
    from ..utils._io import atomic_path, check_overwrite

    for p in (args.table, args.plot):
        if p:
            check_overwrite(Path(p), args.overwrite)
    cands = _read_candidates(args.candidates, args.data)
    truth = _read_truth(args.truth)
    sources = None
    if args.sources:
        sources = _read_table(args.sources, "source list")
    ev = evaluate_catalog(cands, truth, radius=args.radius * u.arcsec,
                          mag_limit=args.mag_limit, sources=sources)
    s = ev.summary
    print(f"{len(cands)} candidates, {int(s['n_true'][0])} clusters with g < "
          f"{args.mag_limit:g}: purity {ev.purity:.3f}, completeness {ev.completeness:.3f}, "
          f"{ev.inspection_budget:.2f} candidates per cluster found")
    fps = ", ".join(f"{k} {v}" for k, v in ev.false_positives.items() if v)
    print(f"false positives: {fps or 'none'}")
    if not args.quiet:
        s.pprint(max_lines=-1, max_width=-1)
    if args.table:
        with atomic_path(Path(args.table), overwrite=args.overwrite) as tmp:
            s.write(tmp, format="ascii.ecsv", overwrite=True)
        print(f"table    {args.table}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = ev.plot()
        with atomic_path(Path(args.plot), overwrite=args.overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        print(f"plot     {args.plot}")
    return 0
