"""
The state of a survey directory: `SurveyRun`, its JSON manifest and the
per-field table files (see `m31clusters.survey`).
"""

import datetime
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table, TableMergeError, vstack

from ..catalog import Catalog
from ..exceptions import ColumnError, CorruptFieldWarning, CorruptFileError
from ..utils._io import atomic_path
from ..utils._validation import as_quantity

__all__ = ["SurveyRun", "MANIFEST_NAME"]

#: Name of the JSON manifest written in the output directory of a survey run.
MANIFEST_NAME = "survey.json"

_MANIFEST_KIND = "m31clusters-survey"
_MANIFEST_VERSION = 1
_FORMATS = {"fits": ("fits", "fits"), "ecsv": ("ascii.ecsv", "ecsv")}
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

def _field_key(key):
    """Validate a field key (int or simple string) and return it as int or str."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        key = int(key)
        if key < 0:
            raise ValueError(f"field ids must be >= 0, got {key}")
        return key
    if isinstance(key, str):
        if not _KEY_RE.match(key):
            raise ValueError(
                f"field name {key!r} cannot be used in a file name; use letters, digits "
                "and _ . + - only (starting with a letter or digit)"
            )
        return key
    raise TypeError(
        f"field keys must be integers (e.g. PAndAS field numbers) or strings, got {key!r}"
    )


def _field_filename(key, ext):
    if isinstance(key, int):
        return f"field_{key:03d}.{ext}"
    return f"field_{key}.{ext}"


def _now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class SurveyRun:
    """
    The state and results of a survey run made by
    `~m31clusters.survey.run_survey`.

    Reflects the output directory: which fields are finished (their table
    file exists), which failed (with error and traceback), which are still
    pending.  Use `SurveyRun.load` to look at the directory of a run made
    earlier (or one still going on elsewhere).

    Parameters
    ----------
    out_dir : str or path-like
        The output directory of the run.
    fields : sequence
        The field keys of the run, in order.
    records : dict
        Per-field records (see *Attributes*), keyword-only like every
        argument after *fields*.
    table_format : {"fits", "ecsv"}
        Format of the per-field tables.
    computed, resumed : sequence
        Keys of the fields computed or resumed by this run.
    catalog : `~m31clusters.catalog.Catalog`, optional
        The merged catalogue.

    Attributes
    ----------
    out_dir : `~pathlib.Path`
        The output directory.
    fields : list
        The field keys of the run, in the order given.
    records : dict
        Per-field record (field key -> dict) as stored in the manifest:
        ``status`` (``"done"``, ``"failed"`` or ``"pending"``), ``file``,
        ``rows``, ``attempts``, ``seconds``, ``finished`` (UTC), and for
        failures ``error`` and ``traceback``.
    computed : list
        Keys of the fields computed (successfully or not) by this call of
        `~m31clusters.survey.run_survey`; empty for `SurveyRun.load`.
    resumed : list
        Keys of the fields found finished in the output directory and
        therefore not recomputed.
    catalog : `~m31clusters.catalog.Catalog` or None
        The merged (and de-duplicated) catalogue, when `~m31clusters.survey.run_survey` was
        called with ``merge=True``.
    """

    def __init__(self, out_dir, fields, *, records, table_format="fits", computed=(),
                 resumed=(), catalog=None):
        self.out_dir = Path(out_dir)
        self.fields = list(fields)
        self.records = records
        self.table_format = table_format
        self.computed = list(computed)
        self.resumed = list(resumed)
        self.catalog = catalog

    # ------------------------------------------------------------------ state
    @property
    def manifest_path(self):
        """Path of the JSON manifest."""
        return self.out_dir / MANIFEST_NAME

    @property
    def done(self):
        """Keys of the finished fields (list)."""
        return [k for k in self.fields if self.records[k]["status"] == "done"]

    @property
    def failed(self):
        """Failed fields: dict field key -> error message (``"Type: message"``)."""
        return {
            k: self.records[k]["error"]
            for k in self.fields
            if self.records[k]["status"] == "failed"
        }

    @property
    def tracebacks(self):
        """Failed fields: dict field key -> full traceback text of the last attempt."""
        return {
            k: self.records[k].get("traceback", "")
            for k in self.fields
            if self.records[k]["status"] == "failed"
        }

    @property
    def pending(self):
        """Keys of the fields neither finished nor failed (list)."""
        return [k for k in self.fields if self.records[k]["status"] == "pending"]

    @property
    def complete(self):
        """True when every field is finished."""
        return all(self.records[k]["status"] == "done" for k in self.fields)

    def __len__(self):
        return len(self.fields)

    def __repr__(self):
        return (
            f"<SurveyRun {str(self.out_dir)!r}: {len(self.fields)} fields, "
            f"{len(self.done)} done ({len(self.resumed)} resumed), "
            f"{len(self.failed)} failed, {len(self.pending)} pending>"
        )

    # ------------------------------------------------------------------ I/O
    def field_path(self, key):
        """Path of the table file of field *key*."""
        key = _field_key(key)
        if key not in self.records:
            raise KeyError(f"field {key!r} is not part of this survey run")
        return self.out_dir / self.records[key]["file"]

    def read_field(self, key):
        """
        Read the table of a finished field.

        Raises
        ------
        KeyError
            If *key* is not a field of the run or the field is not finished.
        """
        path = self.field_path(key)
        if self.records[_field_key(key)]["status"] != "done" or not path.exists():
            raise KeyError(f"field {key!r} is not finished (no file {str(path)!r})")
        return Catalog(_read_table(path, self.table_format), copy=False)

    def merge(self, dedup_radius=1 * u.arcsec, keep="max:Conf", *, field_column="PAndAS"):
        """
        Merge the finished fields into one catalogue, then remove duplicates.

        Parameters
        ----------
        dedup_radius : `~astropy.units.Quantity` or None
            Linking length for `m31clusters.crossmatch.deduplicate` (sources
            seen in two overlapping fields); ``None`` merges without
            de-duplication.
        keep : str
            Which detection of a duplicate group to keep (see
            `~m31clusters.crossmatch.deduplicate`), default the most
            confident one.
        field_column : str
            Column holding the field of each row (default ``PAndAS``, the
            name of table 7 of Zhang et al. 2025); added with the field key
            of each row when the tables do not have it.

        Returns
        -------
        `~m31clusters.catalog.Catalog`
            Rows of all finished fields in field order (empty if none).

        Raises
        ------
        m31clusters.exceptions.ColumnError
            If the fields' tables cannot be stacked: a column has different
            types (or units) in different fields (the message names the
            fields and the column).
        m31clusters.exceptions.CorruptFileError
            If a field table cannot be read (the message names the file).
        """
        return _merge_field_tables({key: self.read_field(key) for key in self.done},
                                  dedup_radius, keep, field_column=field_column)

    @classmethod
    def load(cls, out_dir):
        """
        Read the state of a survey directory written by `~m31clusters.survey.run_survey`.

        A field whose table file exists counts as finished even if the
        manifest was not updated (the run was killed in between).

        Raises
        ------
        FileNotFoundError
            If *out_dir* has no manifest.
        m31clusters.exceptions.CorruptFileError
            If the manifest is not a valid survey manifest.
        """
        out_dir = Path(out_dir)
        manifest = _read_manifest(out_dir)
        if manifest is None:
            raise FileNotFoundError(f"no survey manifest {str(out_dir / MANIFEST_NAME)!r}")
        fmt = manifest["table_format"]
        records = {}
        for rec in manifest["fields"]:
            key = _field_key(rec["field"])
            records[key] = _reconcile(dict(rec), out_dir)
        return cls(out_dir, list(records), records=records, table_format=fmt)

    def _write_manifest(self, func_name=None):
        doc = {
            "kind": _MANIFEST_KIND,
            "version": _MANIFEST_VERSION,
            "table_format": self.table_format,
            "func": func_name,
            "updated": _now(),
            "fields": [{"field": k, **rec} for k, rec in self.records.items()],
        }
        with atomic_path(self.manifest_path, overwrite=True) as tmp:
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=1)


def _read_table(path, table_format):
    try:
        return Table.read(path, format=_FORMATS[table_format][0])
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CorruptFileError(
            f"field table {str(path)!r} cannot be read as {table_format.upper()}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _column_kind(col):
    """What must agree between fields for a column to stack: class, dtype kind, unit."""
    dtype = getattr(col, "dtype", None)
    kind = {"i": "number", "u": "number", "f": "number", "b": "bool", "U": "text",
            "S": "text", "O": "object"}.get(getattr(dtype, "kind", None))
    unit = getattr(col, "unit", None)
    name = type(col).__name__
    if name in ("Column", "MaskedColumn", "Quantity", "Masked"):
        name = "column"
    return name, kind, None if unit is None else str(unit)


def _check_stackable(tables, keys):
    """Raise ColumnError naming the fields and the column where field tables disagree."""
    first = {}
    for table, key in zip(tables, keys, strict=True):
        for name in table.colnames:
            kind = _column_kind(table[name])
            if name not in first:
                first[name] = (key, kind)
                continue
            key0, kind0 = first[name]
            if kind != kind0:
                def say(k):
                    what = f"{k[1] or k[0]}"
                    return what + (f" in {k[2]}" if k[2] else "")
                raise ColumnError(
                    f"column {name!r} is {say(kind0)} in field {key0!r} but {say(kind)} in "
                    f"field {key!r}: the per-field function must return the same columns "
                    "with the same types for every field"
                )


def _write_table(table, path, table_format, mode=None):
    """Write a field table atomically; *mode*: that of the file it replaces, if deleted."""
    with atomic_path(path, overwrite=True) as tmp:
        table.write(tmp, format=_FORMATS[table_format][0], overwrite=True)
    if mode is not None:
        os.chmod(path, mode)


def _read_manifest(out_dir):
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"survey manifest {str(path)!r} is not valid JSON: {exc}") from exc
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != _MANIFEST_KIND
        or doc.get("table_format") not in _FORMATS
        or not isinstance(doc.get("fields"), list)
    ):
        raise CorruptFileError(f"{str(path)!r} is not an m31clusters survey manifest")
    if doc.get("version", 0) > _MANIFEST_VERSION:
        raise CorruptFileError(
            f"survey manifest {str(path)!r} has version {doc['version']}, newer than "
            f"this m31clusters understands ({_MANIFEST_VERSION}); upgrade m31clusters"
        )
    return doc


def _reconcile(rec, out_dir):
    """Make a record agree with the files: the table file is the proof of a finished field."""
    exists = (Path(out_dir) / rec["file"]).exists()
    if exists and rec.get("status") != "done":
        # Killed between writing the table and updating the manifest.
        rec.update(status="done", rows=None, error=None, traceback=None)
    elif not exists and rec.get("status") == "done":
        rec.update(status="pending", rows=None)
    rec.setdefault("status", "pending")
    return rec


def _recompute_corrupt(out_dir, keys, records, table_format):
    """
    Check that the stored table of each finished field reads; recompute those that do not.

    An unreadable table (truncated by a full disc, damaged by a copy) is
    moved aside to ``<name>.corrupt`` and its field set pending, with a
    `~m31clusters.exceptions.CorruptFieldWarning` naming the file.
    """
    for k in keys:
        rec = records[k]
        if rec["status"] != "done":
            continue
        path = out_dir / rec["file"]
        try:
            _read_table(path, table_format)
        except CorruptFileError as exc:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            rec.update(status="pending", rows=None)
            warnings.warn(
                f"field {k!r}: {exc}; moved to {str(aside)!r} and computing the field again",
                CorruptFieldWarning,
                stacklevel=3,
            )


def _pending_record(filename):
    return {"status": "pending", "file": filename, "rows": None, "attempts": 0}


def _merge_field_tables(tables, dedup_radius=1 * u.arcsec, keep="max:Conf", *,
                       field_column="PAndAS"):
    """
    Stack field tables (``{field key: table}``, in order), then de-duplicate.

    The work of `SurveyRun.merge` on tables already read (the search reads
    each field table once, for its metadata and for the merge).
    """
    if dedup_radius is not None:
        dedup_radius = as_quantity(dedup_radius, u.arcsec, "dedup_radius")
    stack, keys = [], []
    for key, t in tables.items():
        if len(t) == 0 or not t.colnames:
            continue
        if field_column not in t.colnames:
            t[field_column] = np.full(len(t), key)
        stack.append(t)
        keys.append(key)
    if not stack:
        return Catalog(Table(), copy=False)
    _check_stackable(stack, keys)
    try:
        merged = vstack(stack, join_type="outer", metadata_conflicts="silent")
    except TableMergeError as exc:  # pragma: no cover - _check_stackable finds these first
        raise ColumnError(f"the tables of fields {keys} cannot be merged: {exc}") from exc
    merged = Catalog(merged, copy=False)
    if dedup_radius is None:
        return merged
    from ..crossmatch import deduplicate

    return deduplicate(merged, radius=dedup_radius, keep=keep, field_column=field_column)
