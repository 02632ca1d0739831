"""``m31clusters inspect``: the visual-inspection page, and combining two inspectors' scores."""

import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``inspect`` subcommand on *subparsers*."""
    from ..inspection.montage import STRETCHES

    parser = subparsers.add_parser(
        "inspect",
        help="write the page an inspector scores candidates on; combine two inspectors' scores",
        description="Without --combine: write one self-contained HTML page (no server, no "
                    "network) on which INSPECTOR scores every candidate of CATALOG with the "
                    "keys 0/1/2 and exports a score file scores_<inspector>.ecsv.  With "
                    "--combine A B: read the two inspectors' score files, put their sum in "
                    "the catalogue's Score column, report their agreement (Cohen's kappa) "
                    "and disagreements, and write the kept candidates as a CDS catalogue.",
        epilog="Examples: m31clusters inspect cands/ReadMe --inspector Ann --images g.fits "
               "i.fits;  m31clusters inspect cands/ReadMe --combine scores_Ann.ecsv "
               "scores_Bob.ecsv --out final",
    )
    parser.add_argument("catalog", nargs="?", metavar="CATALOG",
                        help="the candidate catalogue: a CDS ReadMe, or a table astropy reads "
                             "(ECSV, FITS, VOTable, CSV)")
    parser.add_argument("--inspector", help="the inspector's name (page mode)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", nargs=2, metavar=("G", "I"),
                        help="g and i images (FITS, single or multi-extension) to cut the "
                             "stamps from at the catalogue positions")
    source.add_argument("--cutouts", metavar="FILE",
                        help="a Cutout file (Cutout.write) with one stamp per catalogue row")
    source.add_argument("--combine", nargs=2, metavar=("A", "B"),
                        help="combine two inspectors' score files instead of writing a page")
    parser.add_argument("--out", help="page mode: the HTML file (default "
                        "inspection_<inspector>.html); --combine: the directory for the CDS "
                        "ReadMe and table1.dat (default 'inspected')")
    parser.add_argument("--id-column", default="Seq", help="id column (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    page = parser.add_argument_group("page options")
    page.add_argument("--stretch", default="asinh", choices=STRETCHES,
                      help="stretch after the percentile scaling (default %(default)s)")
    page.add_argument("--percentile", type=float, default=99.5,
                      help="central percentage of each stamp mapped to the full range "
                           "(default %(default)s)")
    page.add_argument("--size", type=int, default=64,
                      help="stamp size in pixels with --images (default %(default)s)")
    page.add_argument("--neighbourhood", type=int, default=3,
                      help="with --images: field of the neighbourhood view, in stamp widths "
                           "(binned to the stamp's pixel count; 0 for none; default "
                           "%(default)s)")
    page.add_argument("--zoom", type=int, help="initial zoom (default: stamps ~256 px wide)")
    page.add_argument("--title", help="page title, or with --combine the CDS title")
    combine = parser.add_argument_group("--combine options")
    combine.add_argument("--keep", type=int, nargs="+", default=[3, 4], metavar="SUM",
                         help="kept score sums (default 3 4, the paper's rule)")
    combine.add_argument("--authors", nargs="+", metavar="NAME",
                         help="authors of the CDS catalogue (default: the two inspectors)")
    combine.add_argument("--report", metavar="FILE",
                         help="also write the agreement report to FILE")
    parser.set_defaults(run=run, _parser=parser)
    return parser


def _read_catalog(path):
    from ..catalog import Catalog

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {str(path)!r} does not exist")
    if path.name.lower() == "readme":
        return Catalog.read_cds(path)
    from astropy.table import Table

    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many kinds for unreadable files
        if isinstance(exc, OSError | ValueError | KeyError):
            raise type(exc)(f"cannot read catalogue {str(path)!r}: {exc}") from None
        raise ValueError(f"cannot read catalogue {str(path)!r}: {exc}") from None
    return Catalog(table, copy=False)


def run(args):
    """Run ``inspect`` for the parsed *args*; returns the exit status."""
    usage = args._parser.error
    if args.catalog is None:
        usage("the following arguments are required: CATALOG")
    if args.combine:
        return _run_combine(args)
    if not args.inspector:
        usage("--inspector NAME is required (or --combine A B)")
    if not (args.images or args.cutouts):
        usage("give the stamps: --images G I or --cutouts FILE")
    from ..inspection import write_inspection_page
    from ..inspection.scores import _check_inspector

    _check_inspector(args.inspector)
    catalog = _read_catalog(args.catalog)
    if args.images:
        stamps = {"g": args.images[0], "i": args.images[1]}
        for band, image in stamps.items():
            if not Path(image).is_file():
                raise FileNotFoundError(f"{band} image {image!r} does not exist")
        neighbourhood = args.neighbourhood
    else:
        from ..cutout import Cutout

        stamps = Cutout.read(args.cutouts)
        neighbourhood = None
    out = args.out or "inspection_" + args.inspector.replace(" ", "_") + ".html"
    path = write_inspection_page(
        catalog, stamps, out, inspector=args.inspector, stretch=args.stretch,
        percentile=args.percentile, size=args.size, neighbourhood=neighbourhood,
        id_column=args.id_column, title=args.title, zoom=args.zoom,
        overwrite=args.overwrite, progress=not args.quiet)
    print(f"page for {args.inspector} ({len(catalog)} candidates): {path}")
    return 0


def _run_combine(args):
    from ..inspection import combine_inspections
    from ..utils._io import check_overwrite

    catalog = _read_catalog(args.catalog)
    result = combine_inspections(catalog, args.combine, keep=args.keep,
                                 id_column=args.id_column)
    out = Path(args.out or "inspected")
    readme, data = out / "ReadMe", out / "table1.dat"
    for path in (readme, data) + ((Path(args.report),) if args.report else ()):
        check_overwrite(path, args.overwrite)
    report = result.summary()
    print(report)
    out.mkdir(parents=True, exist_ok=True)
    title = args.title or "M31 star cluster candidates, visually inspected"
    authors = args.authors or list(result.inspectors)
    written = result.write_cds(readme, data, title=title, authors=authors,
                               overwrite=args.overwrite)
    if args.report:
        from ..utils._io import atomic_path

        with atomic_path(args.report, overwrite=args.overwrite) as tmp:
            Path(tmp).write_text(report + "\n", encoding="utf-8")
    print(f"{int(result.kept.sum())} kept candidates written: "
          + ", ".join(str(p) for p in written), file=sys.stdout)
    return 0
