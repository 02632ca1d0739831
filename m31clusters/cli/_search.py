"""``m31clusters search``: the cluster search over many PAndAS fields."""

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``search`` subcommand on *subparsers*."""
    parser = subparsers.add_parser(
        "search",
        help="search many fields (stacks + CASU catalogues) and publish one catalogue",
        description=(
            "Search PAndAS fields for star clusters: for each field (stacks m###_g.fit and "
            "m###_i.fit, and its CASU catalogue m###p.ascd where present; otherwise the "
            "sources are detected), cut by magnitude and projected radius, classify the "
            "sources that pass, and keep those scoring at least the threshold.  The fields "
            "are merged, de-duplicated across overlaps and cross-matched with the shipped "
            "literature, and OUT receives the CDS catalogue (ReadMe, candidates.dat), DS9 "
            "regions, a PNG montage and a MOC of the area searched (coverage.fits).  The "
            "per-field results are kept in OUT/fields/: running the same command again "
            "after an interruption resumes without recomputing finished fields."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="PATH",
                        help="directories holding the stacks (and catalogues), or the files")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--fields", type=int, nargs="+", metavar="N",
                        help="search only these field numbers (default: every field found)")
    parser.add_argument("--catalogs", choices=("auto", "require", "none"), default="auto",
                        help="use the m###p.ascd catalogues where present (auto, default), "
                             "require one for every field, or ignore them and detect (none)")
    parser.add_argument("--model", help="classifier file (default: the shipped demo model)")
    parser.add_argument("--threshold", type=float,
                        help="Conf cut: keep sources scoring at least this "
                             "(default: the classifier's threshold)")
    parser.add_argument("--mag-limit", type=float, default=21.0,
                        help="magnitude cut, g < MAG_LIMIT (default %(default)s)")
    parser.add_argument("--max-radius", type=float, default=30.0, metavar="KPC",
                        help="projected-radius cut in kpc (default %(default)s)")
    parser.add_argument("--nsigma", type=float, default=5.0,
                        help="detection threshold where there is no catalogue "
                             "(default %(default)s)")
    parser.add_argument("--match-radius", type=float, default=1.0, metavar="ARCSEC",
                        help="de-duplication and literature matching radius "
                             "(default %(default)s)")
    parser.add_argument("--fragment-radius", type=float, default=2.5, metavar="ARCSEC",
                        help="candidates closer than this are merged as fragments of one "
                             "object, 0 to keep them all (default %(default)s)")
    parser.add_argument("--scheduler", default="processes", metavar="ADDRESS",
                        help="'processes' (default: local Dask worker processes), 'threads', "
                             "'synchronous', or the address of a running Dask scheduler "
                             "(tcp://host:8786)")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a scheduler ADDRESS (default %(default)s)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="local worker processes (default: the number of CPUs)")
    parser.add_argument("--moc-depth", type=int, default=15,
                        help="HEALPix order of the MOC (default %(default)s)")
    parser.add_argument("--montage-max", type=int, default=100,
                        help="most candidates drawn in the montage (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="recompute every field and replace the outputs")
    parser.set_defaults(run=run)
    return parser


def run(args):
    """Run the search for the parsed *args*; returns the exit status."""
    import sys
    import warnings

    from astropy import units as u

    from ..exceptions import FieldFailedWarning
    from ..survey import find_fields, search_fields

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.max_radius <= 0:
        raise ValueError(f"--max-radius must be > 0 kpc, got {args.max_radius}")
    fields = find_fields(args.inputs, catalogs=args.catalogs)
    if args.fields:
        missing = sorted(set(args.fields) - set(fields))
        if missing:
            raise ValueError(f"--fields {missing}: no stacks found for these fields in "
                             f"{args.inputs}")
        fields = {k: v for k, v in fields.items() if k in set(args.fields)}
    progress = not args.quiet
    if not args.debug:
        import logging

        # distributed logs a worker's slow shutdown (JAX threads) as a warning
        logging.getLogger("distributed").setLevel(logging.ERROR)
    if progress:
        n_cat = sum(spec["catalog"] is not None for spec in fields.values())
        print(f"searching {len(fields)} field(s) ({n_cat} with a catalogue, "
              f"{len(fields) - n_cat} by detection)", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FieldFailedWarning)  # reported below, one line each
        result = search_fields(
            fields, args.out, model=args.model, threshold=args.threshold,
            mag_limit=args.mag_limit, max_radius=args.max_radius * u.kpc, nsigma=args.nsigma,
            match_radius=args.match_radius * u.arcsec,
            fragment_radius=args.fragment_radius * u.arcsec, scheduler=args.scheduler,
            n_workers=args.workers, moc_depth=args.moc_depth, montage_max=args.montage_max,
            overwrite=args.overwrite, progress=progress,
            connect_timeout=args.connect_timeout * u.s,
        )
    run_ = result.run
    if run_.failed:
        for key, error in run_.failed.items():
            print(f"m31clusters search: error: field {key}: {' '.join(error.split())}",
                  file=sys.stderr)
        print(f"m31clusters search: error: {len(run_.failed)} of {len(run_)} field(s) failed; "
              f"nothing published (finished fields are kept in {run_.out_dir}; run the same "
              "command again to retry)", file=sys.stderr)
        return 1
    n = len(result.catalog)
    print(f"{len(run_)} field(s) ({len(run_.computed)} searched now, {len(run_.resumed)} "
          f"resumed), {n} candidate(s)"
          + ("" if n else ": nothing passed the cuts; the catalogue is header-only"))
    if result.timings and run_.computed:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
        print(f"seconds per stage (fields searched now): {stages}")
    for name, path in result.files.items():
        print(f"{name:8s} {path}")
    return 0
