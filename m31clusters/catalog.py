"""
Cluster catalogues: an `~astropy.table.Table` that publishes itself as a
CDS (VizieR) catalogue, turns into DS9 regions, and builds the candidate
table of Zhang et al. (2025, ApJS 278, 16, table 7).

The file formats live in `m31clusters.io`, which registers them with
astropy's unified I/O registry for `Catalog` when the package is imported:
``"cds"`` (``Catalog.read(readme, format="cds")`` / ``Catalog.write(readme,
format="cds", title=..., authors=...)``, or `Catalog.read_cds` /
`Catalog.write_cds`) and ``"pandas-ascd"`` (the PAndAS per-field source
catalogues ``m###p.ascd``).  This module imports none of them: the formats
import `Catalog`, never the other way round.
"""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import registry
from astropy.table import MaskedColumn, Table

from .exceptions import ColumnError
from .geometry import M31_DISTANCE, pandas_field, projected_radius
from .utils._io import atomic_path
from .utils._tables import table_skycoord
from .utils._validation import as_quantity, as_skycoord

__all__ = [
    "Catalog",
    "CANDIDATE_NAME_COLUMNS",
]

#: Name columns of the candidate catalogue (table 7 of Zhang et al. 2025),
#: with their explanations: the identifiers of earlier M31 cluster catalogues.
CANDIDATE_NAME_COLUMNS = {
    "C09": "Name in Caldwell et al. (2009, AJ 137, 94)",
    "RBC": "Name in the Revised Bologna Catalogue v5 (Galleti et al. 2004-2012)",
    "C11": "Name in Caldwell et al. (2011, AJ 141, 61)",
    "W22": "Name in Wang S. et al. (2022, A&A 658, A51)",
    "W23": "Sequence number in Wang Y. et al. (2023, ApJ 954, 206, table 10)",
    "H14": "Halo cluster name of Huxor et al. (2008-2014; PAndAS-xx, Hxx, HECxx)",
}


class Catalog(Table):
    """
    A table of sources (clusters, candidates) that can be published as a
    CDS catalogue.

    Positions live in a `~astropy.coordinates.SkyCoord` column (canonical
    name ``coord``) or in RA/Dec columns in degrees.  Everything else is
    an ordinary `~astropy.table.Table`; see `Catalog.from_candidates` for
    the candidate schema of Zhang et al. (2025, table 7).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from m31clusters.catalog import Catalog
    >>> cat = Catalog({"coord": SkyCoord([10.68, 10.9], [41.27, 41.5], unit="deg"),
    ...                "gmag": [18.1, 19.4] * u.mag})
    >>> cat.positions.ra.deg
    array([10.68, 10.9 ])
    """

    @property
    def positions(self):
        """
        The positions of the rows as a `~astropy.coordinates.SkyCoord`.

        Taken from the first SkyCoord column, else an RA/Dec pair in
        degrees, else the CDS sexagesimal columns.

        Raises
        ------
        KeyError
            If the catalogue has no position columns.
        ValueError
            If a position is NaN or masked.
        """
        return table_skycoord(self)

    # ------------------------------------------------------------------
    # CDS

    def write_cds(self, readme_path, data_path=None, *, title, authors, abstract=None,
                  keywords=None, notes=None, overwrite=False, **kwargs):
        """
        Publish the catalogue as a CDS ReadMe plus fixed-width data file.

        A thin call of the writer registered for ``format="cds"``,
        `m31clusters.io.cds.write_cds`; see it for every option
        (``formats``, ``coord_precision``, ``description``, ``explanation``,
        ``limits``, ``catalog_id``, ``year``, ``date``).

        Parameters
        ----------
        readme_path : str or path-like
            The ReadMe to write.
        data_path : str or path-like, optional
            The data file (default ``table1.dat`` next to the ReadMe).
        title : str
            Catalogue title.
        authors : str or list of str
            Authors.
        abstract : str, optional
            Abstract.
        keywords : str or list of str, optional
            Keywords.
        notes : dict, optional
            Notes keyed by column label.
        overwrite : bool, optional
            Replace existing files (default False).
        **kwargs
            Passed to `m31clusters.io.cds.write_cds`.

        Returns
        -------
        readme_path, data_path : `~pathlib.Path`
            The files written.

        Raises
        ------
        CDSFormatError
            A value that does not fit its format (naming column and row),
            non-ASCII text, a repeated or invalid label.
        FileExistsError
            If a file exists and *overwrite* is False.

        Examples
        --------
        >>> import os, tempfile
        >>> from astropy.coordinates import SkyCoord
        >>> from m31clusters.catalog import Catalog
        >>> cat = Catalog({"coord": SkyCoord([10.68], [41.27], unit="deg"), "Conf": [0.91]})
        >>> readme, data = cat.write_cds(os.path.join(tempfile.mkdtemp(), "ReadMe"),
        ...                              title="Test", authors=["Doe J."])
        >>> Catalog.read_cds(readme)["Conf"][0]
        np.float64(0.91)
        """
        write_cds = registry.get_writer("cds", type(self))
        return write_cds(self, readme_path, data_path, title=title, authors=authors,
                         abstract=abstract, keywords=keywords, notes=notes,
                         overwrite=overwrite, **kwargs)

    @classmethod
    def read_cds(cls, readme_path, data_path=None, **kwargs):
        """
        Read a CDS catalogue (astropy's CDS reader underneath).

        A thin call of the reader registered for ``format="cds"``,
        `m31clusters.io.cds.read_cds`.  Every record is checked against the
        ReadMe; the sexagesimal columns ``RAh RAm RAs DE- DEd DEm DEs`` become
        one SkyCoord column ``coord`` (a blank ``DE-`` means +) unless
        ``skycoord=False``.

        Parameters
        ----------
        readme_path : str or path-like
            The ReadMe.
        data_path : str or path-like, optional
            The data file (default: the only one in the File Summary).
        **kwargs
            Passed to `m31clusters.io.cds.read_cds` (``skycoord``).

        Returns
        -------
        catalog : `Catalog`

        Raises
        ------
        FileNotFoundError, CDSFormatError
            A missing file, or a data file the ReadMe does not describe.
        CorruptFileError
            A data file that does not match its ReadMe (the message names the
            file, line and column).

        Examples
        --------
        See `Catalog.write_cds`.
        """
        read_cds = registry.get_reader("cds", cls)
        cat = read_cds(readme_path, data_path, **kwargs)
        return cat if type(cat) is cls else cls(cat, copy=False)

    # ------------------------------------------------------------------
    # Candidate schema

    @classmethod
    def from_candidates(cls, positions, *, gmag, e_gmag, imag, e_imag, conf, score=None,
                        seq=None, pandas=None, rproj=None, names=None,
                        distance=M31_DISTANCE):
        """
        A candidate catalogue in the schema of Zhang et al. (2025), table 7.

        Columns, in order: ``Seq, coord, gmag, e_gmag, imag, e_imag, PAndAS,
        Rproj, Conf, Score`` and the name columns ``C09 RBC C11 W22 W23
        H14`` (see `CANDIDATE_NAME_COLUMNS`) followed by any other name
        columns given in *names*, with units, descriptions and formats
        (3 decimals for magnitudes and confidences, 2 for Rproj) filled in.

        Parameters
        ----------
        positions : `~astropy.coordinates.SkyCoord`
            Positions (N,), the ``coord`` column.  Everything else is
            keyword-only.
        gmag, e_gmag, imag, e_imag : array-like or `~astropy.units.Quantity`
            PAndAS g and i magnitudes and uncertainties (mag); NaN or
            masked for missing values.
        conf : array-like
            Classifier confidence in [0, 1].
        score : array-like of int, optional
            Visual-inspection score (sum of two inspectors, 0-4); masked if
            not given.
        seq : array-like of int, optional
            Sequence numbers (default 1..N).
        pandas : array-like of int, optional
            PAndAS field number; default computed with
            `m31clusters.geometry.pandas_field` (masked outside the survey).
        rproj : `~astropy.units.Quantity`, optional
            Projected radius; default computed with
            `m31clusters.geometry.projected_radius` at *distance*.
        names : dict, optional
            Name columns: label -> sequence of names (``None`` or ``""``
            where the source is not in that catalogue).
        distance : `~astropy.units.Quantity`, optional
            Distance of M31 for Rproj (default 785 kpc).

        Returns
        -------
        catalog : `Catalog`

        Raises
        ------
        TypeError
            If *positions* is not a SkyCoord.
        ColumnError
            If an input has the wrong length, *conf* is outside [0, 1],
            *score* is not an integer in 0-4, or a name column label is not
            valid.

        Examples
        --------
        >>> import astropy.units as u
        >>> from m31clusters.catalog import Catalog
        >>> from m31clusters.geometry import M31_CENTER
        >>> c = M31_CENTER.directional_offset_by([0, 90] * u.deg, [1, 0.5] * u.deg)
        >>> cat = Catalog.from_candidates(
        ...     c, gmag=[18.2, 19.9], e_gmag=[0.004, 0.01], imag=[17.1, 18.8],
        ...     e_imag=[0.005, 0.02], conf=[0.95, 0.72], score=[4, 3],
        ...     names={"RBC": ["B001", None]})
        >>> cat["Seq", "gmag", "PAndAS", "Rproj", "Conf", "Score", "RBC"].pprint()
        ... # doctest: +NORMALIZE_WHITESPACE
        Seq  gmag  PAndAS Rproj  Conf Score RBC
             mag           kpc
        --- ------ ------ ----- ----- ----- ----
          1 18.200    266 13.70 0.950     4 B001
          2 19.900    248  6.85 0.720     3   --
        """
        coord = as_skycoord(positions, "positions")
        if coord.ndim != 1:
            raise ColumnError("positions must be a one-dimensional SkyCoord")
        n = len(coord)

        def column(values, name, dtype=float, unit=None):
            if isinstance(values, u.Quantity):
                if unit is None:
                    raise ColumnError(f"{name} must not have units")
                try:
                    values = values.to_value(unit)
                except u.UnitConversionError:
                    raise ColumnError(
                        f"{name} has units {values.unit}, expected {unit}"
                    ) from None
            arr = np.ma.masked_invalid(np.ma.asarray(values, dtype=dtype)) \
                if dtype is float else np.ma.asarray(values)
            if arr.shape != (n,):
                raise ColumnError(
                    f"{name} has shape {arr.shape}, expected ({n},) like positions")
            return arr

        cat = cls()
        cat["Seq"] = np.arange(1, n + 1) if seq is None else column(seq, "seq", int)
        cat["Seq"].description = "Sequential number"
        cat["coord"] = coord
        cat["coord"].info.description = "Position"
        for name, values, text in (
            ("gmag", gmag, "PAndAS (CFHT/MegaCam) g magnitude"),
            ("e_gmag", e_gmag, "Uncertainty in gmag"),
            ("imag", imag, "PAndAS (CFHT/MegaCam) i magnitude"),
            ("e_imag", e_imag, "Uncertainty in imag"),
        ):
            cat[name] = MaskedColumn(column(values, name, unit=u.mag), unit=u.mag,
                                     description=text, format="{:.3f}")
        if pandas is None:
            field = np.asarray(pandas_field(coord), dtype=int).reshape(n)
            pandas = np.ma.masked_less(field, 0)
        cat["PAndAS"] = MaskedColumn(column(pandas, "pandas", int),
                                     description="PAndAS field number (the ### of m###)")
        if rproj is None:
            rproj = projected_radius(coord, distance=distance)
        dist = as_quantity(distance, u.kpc, "distance")
        cat["Rproj"] = MaskedColumn(
            column(rproj, "rproj", unit=u.kpc), unit=u.kpc, format="{:.2f}",
            description=f"Projected radius from the centre of M31 (at {dist.value:g} kpc)")
        conf = column(conf, "conf")
        bad = np.flatnonzero(~np.ma.getmaskarray(conf) & ((conf < 0) | (conf > 1)).filled(False))
        if bad.size:
            raise ColumnError(f"conf must lie in [0, 1]; row {bad[0]} has {conf[bad[0]]}")
        cat["Conf"] = MaskedColumn(
            conf, format="{:.3f}",
            description="Classifier confidence (highest probability = most likely class)")
        if score is None:
            score = np.ma.masked_all(n, dtype=int)
        score = column(score, "score", None)
        if score.dtype.kind not in "iu" and np.ma.count(score):
            raise ColumnError(f"score must be integers, got dtype {score.dtype}")
        score = score.astype(int)
        bad = np.flatnonzero(~np.ma.getmaskarray(score) & ((score < 0) | (score > 4)).filled(False))
        if bad.size:
            raise ColumnError(f"score must lie in 0-4; row {bad[0]} has {score[bad[0]]}")
        cat["Score"] = MaskedColumn(
            score, description="Visual inspection score: sum of two inspectors' scores "
                               "(2 = cluster, 1 = possible, 0 = not)")
        names = dict(names or {})
        labels = list(CANDIDATE_NAME_COLUMNS) + [k for k in names if k not in
                                                 CANDIDATE_NAME_COLUMNS]
        for label in labels:
            if not isinstance(label, str) or not label or not label.isascii() \
                    or any(c.isspace() for c in label) or label in cat.colnames:
                raise ColumnError(f"name column label {label!r} is not valid or repeats")
            values = names.get(label)
            if values is None:
                col = MaskedColumn(np.zeros(n, dtype="U1"), mask=np.ones(n, dtype=bool))
            else:
                if len(values) != n:
                    raise ColumnError(f"names[{label!r}] has {len(values)} entries, expected {n}")
                filled = ["" if v is None or np.ma.is_masked(v) else str(v).strip()
                          for v in values]
                col = MaskedColumn(filled, mask=[v == "" for v in filled])
            col.description = CANDIDATE_NAME_COLUMNS.get(label, f"Name in {label}")
            cat[label] = col
        return cat

    # ------------------------------------------------------------------
    # Regions

    def to_regions(self, *, radius=1 * u.arcsec, label="Seq"):
        """
        One labelled circle per row, as `regions.Regions`.

        Parameters
        ----------
        radius : `~astropy.units.Quantity`, optional
            Circle radius, scalar or one per row (default 1 arcsec).
        label : str or None, optional
            Column whose values label the circles (default ``"Seq"``; no
            labels when None or when the column is absent).

        Returns
        -------
        regions : `regions.Regions`
            `regions.CircleSkyRegion` objects with ``meta["text"]`` set
            to the label.

        Raises
        ------
        TypeError, astropy.units.UnitTypeError
            If *radius* is not an angle Quantity.
        ValueError
            If a radius is not positive or a position is NaN.
        KeyError
            If the catalogue has no positions.

        Examples
        --------
        >>> import astropy.units as u
        >>> from astropy.coordinates import SkyCoord
        >>> from m31clusters.catalog import Catalog
        >>> cat = Catalog({"Seq": [1, 2],
        ...                "coord": SkyCoord([10.68, 10.9], [41.27, 41.5], unit="deg")})
        >>> regs = cat.to_regions(radius=2 * u.arcsec)
        >>> len(regs), regs[1].meta["text"], regs[1].radius
        (2, '2', <Quantity 2. arcsec>)
        """
        from regions import CircleSkyRegion, Regions

        radius = as_quantity(radius, u.arcsec, "radius")
        if radius.ndim == 0:
            radii = u.Quantity(np.full(len(self), radius.value), radius.unit)
        else:
            radii = radius
        if radii.shape != (len(self),):
            raise ValueError(f"radius has shape {radius.shape}, expected () or ({len(self)},)")
        if np.any(~(radii.value > 0)):
            raise ValueError("radius must be positive")
        coords = self.positions
        coords = coords if coords.ndim else coords.reshape((1,))
        texts = None
        if label is not None and label in self.colnames:
            texts = [str(v) for v in np.ma.filled(np.ma.asarray(self[label]).astype(str), "")]
        regs = []
        for k in range(len(self)):
            meta = {"text": texts[k]} if texts is not None and texts[k] else None
            regs.append(CircleSkyRegion(coords[k], radii[k], meta=meta))
        return Regions(regs)

    def write_regions(self, path, *, format="ds9", radius=1 * u.arcsec, label="Seq",
                      overwrite=False):
        """
        Write the catalogue as a region file (DS9 by default).

        Parameters
        ----------
        path : str or path-like
            Output file.
        format : str, optional
            Any format `regions.Regions.write` knows (``"ds9"``, ``"crtf"``).
        radius, label
            As `to_regions`.
        overwrite : bool, optional
            Replace an existing file (default False).

        Returns
        -------
        path : `~pathlib.Path`
            The file written.

        Raises
        ------
        FileExistsError
            If *path* exists and *overwrite* is False.

        Examples
        --------
        >>> import os, tempfile
        >>> from astropy.coordinates import SkyCoord
        >>> from regions import Regions
        >>> from m31clusters.catalog import Catalog
        >>> cat = Catalog({"Seq": [7], "coord": SkyCoord([10.68], [41.27], unit="deg")})
        >>> path = cat.write_regions(os.path.join(tempfile.mkdtemp(), "cands.reg"))
        >>> Regions.read(path, format="ds9")[0].meta["text"]  # the DS9 parser reads "7" as 7
        7
        """
        regs = self.to_regions(radius=radius, label=label)
        path = Path(path)
        with atomic_path(path, overwrite) as tmp:
            regs.write(tmp, format=format, overwrite=True)
        return path

