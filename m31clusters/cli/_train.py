"""``m31clusters train``: a classifier from images and a label catalogue, by the paper's recipe."""

from pathlib import Path

from ._evaluate import _read_table

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    """Register the ``train`` subcommand on *subparsers*."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier on your images and a catalogue of known clusters",
        description="Build a training set from g and i images, their source list and a "
                    "catalogue of known clusters (sources matched to a known cluster are "
                    "clusters, the other sources of the labelled footprint are not; g < 21; "
                    "train/validation/test by sky tiles), fit a classifier, calibrate it and "
                    "pick its threshold at the survey's class ratio, and save it.",
    )
    parser.add_argument("--images", nargs=2, metavar=("G", "I"), required=True,
                        help="g and i images (FITS, single or multi-extension stacks)")
    parser.add_argument("--sources", required=True,
                        help="source list: a PAndAS m###p.ascd catalogue, or a table with "
                             "positions and a g magnitude (e.g. the sources.ecsv a search or "
                             "the demo writes)")
    parser.add_argument("--labels", required=True,
                        help="known clusters: 'phat' (the shipped PHAT catalogue, labelled "
                             "inside the PHAT footprint) or a table with positions; a "
                             "simulated truth table (with a 'kind' column) uses its clusters")
    parser.add_argument("--footprint", choices=("hull", "images", "phat"),
                        help="where the labels are complete: the convex hull of the known "
                             "clusters, the whole images, or the PHAT footprint (default: "
                             "phat for --labels phat, images for a truth table, else hull)")
    parser.add_argument("--out", required=True, help="model file to write (.zip)")
    parser.add_argument("--architecture", default="wang2022",
                        help="network (see m31clusters.models; default %(default)s)")
    parser.add_argument("--size", type=int, default=32, help="stamp size in pixels")
    parser.add_argument("--match-radius", type=float, default=1.0, help="arcsec")
    parser.add_argument("--exclusion-radius", type=float, default=5.0, help="arcsec")
    parser.add_argument("--tile-size", type=float, default=60.0,
                        help="side of the sky tiles given whole to one split, arcsec")
    parser.add_argument("--mag-limit", type=float, default=21.0)
    parser.add_argument("--splits", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                        metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--max-negatives", type=int, metavar="N",
                        help="keep every cluster and at most N random non-clusters per split "
                             "(default: all)")
    parser.add_argument("--normalization", choices=("asinh", "asinh_flux"), default="asinh",
                        help="stamp normalisation: asinh (each stamp by its own noise) or "
                             "asinh_flux (fixed per-band scales from the images' zero points, "
                             "so that the network sees brightness and colour)")
    parser.add_argument("--flux-scale", type=float, default=50.0,
                        help="asinh_flux scale of the g band, in image units (default 50)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hard-epochs", type=int, default=15,
                        help="epochs of the second round with hard examples oversampled "
                             "(0: none)")
    parser.add_argument("--base-rate", type=float,
                        help="fraction of clusters among the sources the search classifies, "
                             "for the calibration and the threshold")
    parser.add_argument("--init", help="continue training this saved classifier")
    parser.add_argument("--table", help="also write the training-set table (ECSV) here")
    parser.add_argument("--seed", type=int, help="seed of the splits and the training")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(run=run)
    return parser


def _read_sources(path):
    from ..io.pandas_ascd import read_pandas_ascd

    path = Path(path)
    if path.name.endswith(".ascd"):
        if not path.is_file():
            raise FileNotFoundError(f"source list {str(path)!r} does not exist")
        return read_pandas_ascd(path)
    return _read_table(path, "source list")


def _zeropoints(images):
    """{band: zero point} from the first image HDU of each band's file that has one."""
    from astropy.io import fits

    from ..photometry._image import _ZP_KEYS, _header_zeropoint

    out = {}
    for band, path in images.items():
        with fits.open(path) as hdul:
            for hdu in hdul:
                zp = _header_zeropoint(hdu.header)
                if zp is not None:
                    out[band] = float(zp)
                    break
        if band not in out:
            raise ValueError(
                f"--normalization asinh_flux needs the zero point of the {band} image "
                f"{str(path)!r}: none of the header cards {', '.join(_ZP_KEYS)} is set")
    return out


def _labels(spec, footprint):
    import numpy as np

    from ..datasets import in_phat_footprint, load_phat_clusters

    if spec == "phat":
        positives = load_phat_clusters()
        default = "phat"
    else:
        positives = _read_table(spec, "label catalogue")
        default = "hull"
        if "kind" in positives.colnames:
            positives = positives[np.asarray(positives["kind"]).astype(str) == "cluster"]
            default = "images"
    footprint = footprint or default
    region = {"phat": in_phat_footprint, "images": "images", "hull": None}[footprint]
    return positives, region


def run(args):
    """Train and save a classifier for the parsed *args*; returns the exit status."""
    from astropy import units as u

    from ..classifier import ClusterClassifier
    from ..training import build_training_set, train_classifier
    from ..utils._io import check_overwrite

    out = Path(args.out)
    check_overwrite(out, args.overwrite)
    if args.table:
        check_overwrite(Path(args.table), args.overwrite)
    images = {"g": Path(args.images[0]), "i": Path(args.images[1])}
    for band, p in images.items():
        if not p.is_file():
            raise FileNotFoundError(f"{band} image {str(p)!r} does not exist")
    if args.max_negatives is not None and args.max_negatives < 0:
        raise ValueError(f"--max-negatives must be >= 0, got {args.max_negatives}")
    normalization = args.normalization
    if normalization == "asinh_flux":  # checked before any work
        from ..cutout import zeropoint_scales

        normalization = {"method": "asinh_flux",
                         "scale": zeropoint_scales(_zeropoints(images),
                                                   scale=args.flux_scale)}
    progress = not args.quiet
    sources = _read_sources(args.sources)
    positives, footprint = _labels(args.labels, args.footprint)
    ts = build_training_set(
        images, sources, positives, match_radius=args.match_radius * u.arcsec,
        exclusion_radius=args.exclusion_radius * u.arcsec, mag_limit=args.mag_limit,
        size=args.size, splits=tuple(args.splits), tile_size=args.tile_size * u.arcsec,
        footprint=footprint, seed=args.seed, progress=progress)
    if args.max_negatives is not None:
        ts = ts.thin(args.max_negatives, seed=args.seed)
    counts = ts.counts()
    print("training set: " + ", ".join(
        f"{r['split']} {r['n_cluster']} clusters / {r['n_other']} others" for r in counts))
    m = ts.table.meta
    print(f"dropped: {m['n_ambiguous']} ambiguous, {m['n_outside_footprint']} outside the "
          f"footprint, {m['n_faint']} fainter than {args.mag_limit:g}, {m['n_off_image']} "
          f"off the image, {m['n_split_border']} on split borders")
    init = ClusterClassifier.load(args.init) if args.init else None
    clf, info = train_classifier(ts, classifier=init, architecture=args.architecture,
                                 normalization=normalization, epochs=args.epochs,
                                 hard_epochs=args.hard_epochs, base_rate=args.base_rate,
                                 seed=args.seed, progress=progress)
    if args.table:
        from ..utils._io import atomic_path

        with atomic_path(Path(args.table), overwrite=args.overwrite) as tmp:
            ts.table.write(tmp, format="ascii.ecsv", overwrite=True)
    clf.save(out, overwrite=args.overwrite)
    print(f"threshold {clf.threshold:.4f} ({info['calibration']}); {info['n_hard']} hard "
          f"examples oversampled")
    if "test" in info:
        t = info["test"]
        print(f"test split: purity {t['purity']:.3f}, recall {t['recall']:.3f}, "
              f"ROC AUC {t['roc_auc']:.3f}")
    print(f"model    {out}")
    if args.table:
        print(f"table    {args.table}")
    return 0
