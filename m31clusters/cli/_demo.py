"""``m31clusters demo``: the main job on a simulated (or your own) field."""

from .. import demo as _demo_module

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``demo`` subcommand on *subparsers*."""
    parser = subparsers.add_parser(
        "demo",
        help="find cluster candidates in a simulated (or your own) field, end to end",
        description="Find star-cluster candidates in a (simulated or real) PAndAS field and "
                    "write a CDS catalogue, a DS9 region file and a PNG montage.  Without "
                    f"--images it simulates field m{_demo_module.DEMO_FIELD:03d} with a "
                    "fixed seed, so the same command gives the same catalogue.",
    )
    parser.add_argument("--out", default="m31clusters-demo",
                        help="output directory (default %(default)s)")
    parser.add_argument("--images", nargs=2, metavar=("G", "I"),
                        help="your own g and i images (FITS files, single or multi-extension)")
    parser.add_argument("--field", type=int, default=_demo_module.DEMO_FIELD,
                        help="PAndAS field to simulate (default %(default)s)")
    parser.add_argument("--n-ccds", type=int, default=2,
                        help="CCDs to simulate (default %(default)s)")
    parser.add_argument("--ccd-shape", type=int, nargs=2, default=(1024, 1024),
                        metavar=("NY", "NX"), help="shape of each simulated CCD")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the simulation (default %(default)s, fixed so the demo "
                             "is reproducible)")
    parser.add_argument("--model", help="classifier file (default: the shipped demo model)")
    parser.add_argument("--threshold", type=float, help="score threshold "
                        "(default: the classifier's own)")
    parser.add_argument("--mag-limit", type=float, default=21.0,
                        help="keep candidates with g < MAG_LIMIT (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(run=run)
    return parser


def run(args):
    """Run the demo for the parsed *args*; returns the exit status."""
    images = None if args.images is None else {"g": args.images[0], "i": args.images[1]}
    result = _demo_module.run_demo(
        args.out, images, field=args.field, n_ccds=args.n_ccds,
        ccd_shape=tuple(args.ccd_shape), seed=args.seed, model=args.model,
        threshold=args.threshold, mag_limit=args.mag_limit, overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(f"{len(result.sources)} sources, {len(result.candidates)} candidates")
    for name, path in result.files.items():
        print(f"{name:8s} {path}")
    return 0
