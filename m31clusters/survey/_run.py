"""
Generic survey runner: a per-field function mapped over many fields on Dask
(threads, worker processes or a ``distributed.Client``), with a lock on the
output directory and resumable, atomic per-field output (see
`m31clusters.survey`; the directory's state is `SurveyRun`).
"""

import contextlib
import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from ..exceptions import ColumnError, FieldFailedWarning, SurveyLockedError
from ..utils._io import default_file_mode
from ..utils._progress import progress_bar
from ..utils._validation import as_quantity
from ._survey_run import (
    _FORMATS,
    MANIFEST_NAME,
    SurveyRun,
    _field_filename,
    _field_key,
    _now,
    _pending_record,
    _read_manifest,
    _recompute_corrupt,
    _reconcile,
    _write_table,
)

__all__ = ["run_survey", "iter_chunks", "LOCK_NAME"]

#: Lock file held in the output directory while a run writes to it.
LOCK_NAME = "survey.lock"

_SCHEDULERS = ("threads", "processes", "synchronous")


def iter_chunks(n, chunk_size):
    """
    Slices that cover ``range(n)`` in consecutive chunks of at most *chunk_size*.

    Use it inside a per-field function to process a field's sources a chunk
    at a time, so that the memory a worker needs (stamps, network
    activations) is set by *chunk_size*, not by the number of sources in
    the field.

    Parameters
    ----------
    n : int
        Number of items (sources); ``0`` yields nothing.
    chunk_size : int
        Largest number of items per chunk (at least 1).

    Yields
    ------
    slice
        ``slice(start, stop)`` with ``stop - start <= chunk_size``.

    Raises
    ------
    TypeError
        If *n* or *chunk_size* is not an integer.
    ValueError
        If *n* is negative or *chunk_size* is smaller than 1.

    Examples
    --------
    >>> from m31clusters.survey import iter_chunks
    >>> list(iter_chunks(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    >>> import numpy as np
    >>> mags = np.arange(7.0)
    >>> [float(mags[s].sum()) for s in iter_chunks(mags.size, 3)]
    [3.0, 12.0, 6.0]
    """
    n = _as_int(n, "n")
    chunk_size = _as_int(chunk_size, "chunk_size")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _as_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _callable_name(func):
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or type(func).__name__
    return f"{module}.{name}" if module else name


def _run_field(func, key, arg, retries):
    """
    Run ``func(arg)`` with up to *retries* retries (executed on a worker).

    Never raises for an error of *func*: returns a dict with the table or
    the error and its traceback.
    """
    t0 = time.perf_counter()
    earlier = []
    attempts = 0
    while True:
        attempts += 1
        try:
            result = func(arg)
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            message = f"{type(exc).__name__}: {exc}"
            if attempts > retries:
                return {
                    "status": "failed",
                    "attempts": attempts,
                    "seconds": time.perf_counter() - t0,
                    "error": message,
                    "traceback": traceback.format_exc(),
                    "earlier_errors": earlier,
                }
            earlier.append(message)
            continue
        break
    record = {
        "attempts": attempts,
        "seconds": time.perf_counter() - t0,
        "earlier_errors": earlier,
    }
    if result is None:
        result = Table()
    if not isinstance(result, Table):
        # A wrong return type is a programming error: retrying will not help.
        record.update(
            status="failed",
            error=(
                f"TypeError: the per-field function returned {type(result).__name__} for "
                f"field {key!r}; it must return an astropy Table (or Catalog), or None "
                "for a field without sources"
            ),
            traceback="",
        )
        return record
    record.update(status="done", table=result)
    return record


def _needed_column(merge, dedup_radius, keep):
    """The column the merge's de-duplication needs in every table (or None)."""
    if not merge or dedup_radius is None or not isinstance(keep, str) or ":" not in keep:
        return None
    return keep.split(":", 1)[1]


def _cleanup_temporaries(out_dir, filenames):
    """Remove temporary files left by a run killed while writing a field table or the manifest."""
    for name in filenames:
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:  # pragma: no cover - e.g. removed concurrently
                pass


def _cpu_shares(n_workers, threads_per_worker):
    """
    Disjoint sets of this process's CPUs, one per local worker process.

    Each worker gets ``max(threads_per_worker, n_cpus // n_workers)`` CPUs, so
    that the workers together use every CPU and no two share one.  None where
    that is impossible (more threads asked for than CPUs) or the platform
    cannot restrict a process to some CPUs.
    """
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        return None  # pragma: no cover - not Linux
    cpus = sorted(os.sched_getaffinity(0))
    per = max(int(threads_per_worker), len(cpus) // n_workers)
    if per < 1 or n_workers * per > len(cpus):
        return None
    return [cpus[i * per : (i + 1) * per] for i in range(n_workers)]


def _set_process_affinity(cpus):
    """Restrict every thread of this process (and the threads it starts later) to *cpus*."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # pragma: no cover - no procfs
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:  # pragma: no cover - the thread ended meanwhile
            pass


def _cpu_share_plugin(shares):
    """A Dask worker plugin giving local worker ``i`` the CPUs ``shares[i]``."""
    from distributed import WorkerPlugin

    class _CpuShare(WorkerPlugin):
        name = "m31clusters-cpu-share"

        def __init__(self, shares):
            self.shares = shares

        def setup(self, worker):
            try:
                index = int(worker.name)
            except (TypeError, ValueError):  # pragma: no cover - not a LocalCluster name
                return
            _set_process_affinity(self.shares[index % len(self.shares)])

    return _CpuShare(shares)


def _make_client(n_workers, cluster_kwargs):
    from distributed import Client, LocalCluster

    kwargs = {"dashboard_address": None, "processes": True,
              "n_workers": n_workers or os.cpu_count(), "threads_per_worker": 1}
    kwargs.update(cluster_kwargs or {})
    import dask

    # Worker processes are spawned, never forked: a forked copy of a process that has
    # started JAX (or its thread pools) can deadlock.
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = LocalCluster(**kwargs)
    client = Client(cluster)
    # Each worker process gets its own share of the CPUs before any task runs, so
    # that the thread pool JAX/XLA starts in a worker (sized to every CPU it may
    # use, whatever threads_per_worker says) does not compete with the others.
    shares = _cpu_shares(kwargs["n_workers"], kwargs["threads_per_worker"] or 1)
    if kwargs["processes"] and shares is not None:
        try:
            client.register_plugin(_cpu_share_plugin(shares))
        except BaseException:
            client.close()
            cluster.close()
            raise
    return client, cluster


def _run_threads(func, todo, args, retries, finish, bar, n_workers):
    """Dask's threaded scheduler: nothing is pickled, *func* may hold any object."""
    import dask

    lock = threading.Lock()

    def task(key):
        result = _run_field(func, key, args[key], retries)
        with lock:
            finish(key, result)
            bar.update()

    tasks = [dask.delayed(task, pure=False)(k) for k in todo]
    dask.compute(*tasks, scheduler="threads", num_workers=n_workers or os.cpu_count())


def run_survey(func, fields, out_dir, *, client=None, scheduler=None, n_workers=None,
               retries=2, overwrite=False, progress=False, merge=True,
               dedup_radius=1 * u.arcsec, keep="max:Conf", table_format="fits",
               cluster_kwargs=None):
    """
    Map a per-field function over many fields on Dask, with resumable output.

    ``func(field)`` (or ``func(fields[key])`` when *fields* is a mapping) is
    run once per field and must return an `~astropy.table.Table` (typically
    a `~m31clusters.catalog.Catalog` of candidates), or None for a field
    without sources.  As each field completes, its table is written
    atomically to ``out_dir/field_###.fits`` (``field_<name>.fits`` for
    string keys) and the manifest ``out_dir/survey.json`` is updated, so:

    * a run that is interrupted or killed resumes, when called again with
      the same *out_dir*, with the fields that are not finished: a field
      whose file exists is never recomputed (unless ``overwrite=True``);
    * a field whose function raises is retried *retries* times, then
      recorded as failed with its error and traceback (in the manifest and
      in `SurveyRun.failed` / `SurveyRun.tracebacks`) while the other
      fields go on; failed fields are tried again by the next call;
    * finished fields are merged into one catalogue, and sources detected
      in two overlapping fields are merged with
      `m31clusters.crossmatch.deduplicate`.

    Memory per worker is that of one field (one per thread or process): in
    *func*, process a field's sources in chunks with `iter_chunks`.

    Parameters
    ----------
    func : callable
        The per-field function.  With ``scheduler="processes"`` or a
        *client* it must be picklable (a module-level function, or anything
        cloudpickle handles, e.g. a `functools.partial` or a closure over
        picklable objects).
    fields : sequence or mapping
        Field keys (integers, e.g. PAndAS field numbers, or strings of
        letters, digits and ``_ . + -``), passed to *func*; or a mapping
        ``{key: argument}`` where *func* receives the argument (for example
        the paths of the field's stacks) and the key names the output file.
    out_dir : str or path-like
        Output directory (created if needed).  Holds one table per field
        and the manifest; use one directory per survey and one run at a
        time per directory.
    client : ``distributed.Client``, optional
        Run on this Dask cluster (local, multi-node, dask-jobqueue, ...).
        Not closed at the end.  Workers send the field tables back to this
        process, which writes them, so *out_dir* need not be shared with the
        workers.
    scheduler : {"threads", "processes", "synchronous"}, optional
        Without *client*: ``"threads"`` (default) runs fields in threads of
        this process with Dask's threaded scheduler (nothing is pickled, so
        *func* may use a loaded model or open files); ``"processes"`` in
        worker processes of a ``distributed.LocalCluster`` (one thread
        each; for GIL-bound Python code, and to cap the memory of each
        worker with ``cluster_kwargs={"memory_limit": "4GiB"}``); on Linux
        each worker process is restricted to its own share of the CPUs
        (``n_cpus // n_workers``, at least ``threads_per_worker``) before
        any field runs, so that thread pools started inside a worker (JAX's
        uses every CPU it may run on) do not compete with the other workers;
        ``"synchronous"`` one field after the other in this process without
        Dask (debugging, profiling).
    n_workers : int, optional
        Number of fields processed at once without *client* (default: the
        number of CPUs).
    retries : int
        Number of times a failing field is retried (default 2).
    overwrite : bool
        If True, recompute every field of *fields* and replace its file
        (these files are deleted first; the new ones keep their modes).
        If False (default), finished fields are kept and not recomputed.
    progress : bool
        Show a progress bar over the fields (default False).
    merge : bool
        Merge the finished fields into ``SurveyRun.catalog`` at the end.
    dedup_radius : `~astropy.units.Quantity` or None
        Linking length for the de-duplication of the merged catalogue
        (default 1 arcsec); None to keep all rows.
    keep : str
        Which detection of a duplicate group is kept (default
        ``"max:Conf"``, the most confident; see
        `~m31clusters.crossmatch.deduplicate`).
    table_format : {"fits", "ecsv"}
        Format of the per-field tables.
    cluster_kwargs : dict, optional
        Extra arguments for the ``distributed.LocalCluster`` made for
        ``scheduler="processes"`` (e.g. ``memory_limit``).

    Returns
    -------
    `SurveyRun`
        Which fields were computed, resumed or failed, and the merged
        catalogue in ``.catalog`` (None if ``merge=False``).

    Raises
    ------
    TypeError
        If *func* is not callable, a field key is neither an integer nor a
        string, or *client* is not a ``distributed.Client``.
    ValueError
        If *fields* is empty or has duplicate keys, a key cannot be used in
        a file name, an option is invalid, or *out_dir* holds a run
        written in another *table_format*.
    m31clusters.exceptions.CorruptFileError
        If the manifest in *out_dir* is unreadable.
    m31clusters.exceptions.ColumnError
        As soon as a field returns a table without the column *keep* needs
        (``Conf`` by default), before the other fields run; or at the merge,
        if two fields return a column with different types (naming both).
    NotADirectoryError
        If *out_dir* is an existing file.

    Warns
    -----
    m31clusters.exceptions.FieldFailedWarning
        If some fields failed after all retries (the others are finished).
    m31clusters.exceptions.CorruptFieldWarning
        If the stored table of a finished field cannot be read: it is moved
        to ``<file>.corrupt`` and the field is computed again.

    Examples
    --------
    A per-field function returning a catalogue (here made up; in real use
    it opens the field's stacks, cuts stamps and classifies them):

    >>> import tempfile
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.table import Table, vstack

    >>> from m31clusters.survey import run_survey, iter_chunks
    >>> def classify_field(field):
    ...     # three sources 0.1 deg apart; the last one is also the first of
    ...     # the next field (fields overlap)
    ...     ra = 10.0 + 0.2 * (field - 207) + np.array([0.0, 0.1, 0.2])
    ...     coord = SkyCoord(ra, np.full(3, 41.0), unit="deg")
    ...     conf = np.random.default_rng(field).uniform(0.5, 1.0, 3)
    ...     parts = [Table({"coord": coord[s], "Conf": conf[s]})
    ...              for s in iter_chunks(len(coord), 2)]  # 2 sources at a time
    ...     return vstack(parts)
    >>> out = tempfile.mkdtemp()
    >>> run = run_survey(classify_field, [207, 208, 209], out,
    ...                  scheduler="synchronous", progress=False)
    >>> run  # doctest: +ELLIPSIS
    <SurveyRun '...': 3 fields, 3 done (0 resumed), 0 failed, 0 pending>
    >>> len(run.catalog)  # 9 detections of 7 sources
    7
    >>> run.catalog["fields"].tolist()  # the fields each source was found in
    ['207', '207', '207,208', '208', '208,209', '209', '209']

    Calling it again finds every field finished and recomputes nothing:

    >>> again = run_survey(classify_field, [207, 208, 209], out,
    ...                    scheduler="synchronous", progress=False)
    >>> again.resumed, again.computed
    ([207, 208, 209], [])
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    keys, args = _parse_fields(fields)
    retries = _as_int(retries, "retries")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if n_workers is not None:
        n_workers = _as_int(n_workers, "n_workers")
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    if table_format not in _FORMATS:
        raise ValueError(f"table_format must be one of {sorted(_FORMATS)}, got {table_format!r}")
    if client is not None:
        if scheduler is not None:
            raise ValueError("give either client or scheduler, not both")
        if not (hasattr(client, "submit") and hasattr(client, "scheduler_info")):
            raise TypeError(
                f"client must be a distributed.Client, got {type(client).__name__}"
            )
    else:
        scheduler = "threads" if scheduler is None else scheduler
        if scheduler not in _SCHEDULERS:
            raise ValueError(f"scheduler must be one of {_SCHEDULERS}, got {scheduler!r}")
    if dedup_radius is not None:
        dedup_radius = as_quantity(dedup_radius, u.arcsec, "dedup_radius")
    if cluster_kwargs is not None and not (client is None and scheduler == "processes"):
        raise ValueError('cluster_kwargs is only used with scheduler="processes"')

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"out_dir {str(out_dir)!r} is a file, not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    need = _needed_column(merge, dedup_radius, keep)
    with _directory_lock(out_dir):
        ext = _FORMATS[table_format][1]
        filenames = {k: _field_filename(k, ext) for k in keys}
        if len(set(filenames.values())) != len(keys):
            raise ValueError("field keys map to the same file name (e.g. 7 and '007')")

        manifest = _read_manifest(out_dir)
        if manifest is not None and manifest["table_format"] != table_format:
            if not overwrite:
                raise ValueError(
                    f"{str(out_dir)!r} holds a survey written with table_format="
                    f"{manifest['table_format']!r}; use it, another directory, or overwrite=True"
                )
            manifest = None
        old_modes = {}  # a recomputed table keeps the mode of the file it replaces
        if overwrite:
            for name in filenames.values():
                if (out_dir / name).is_file():
                    old_modes[name] = default_file_mode(out_dir / name)
                (out_dir / name).unlink(missing_ok=True)
        _cleanup_temporaries(out_dir, [*filenames.values(), MANIFEST_NAME])

        # Records: previous manifest entries (other than the fields to overwrite),
        # reconciled with the files.
        old = {}
        for rec in manifest["fields"] if manifest is not None else []:
            try:
                key = _field_key(rec["field"])
            except (TypeError, ValueError, KeyError):
                continue
            if isinstance(rec.get("file"), str) and not (overwrite and key in args):
                old[key] = rec
        records = {}
        for k in keys:
            rec = dict(old.get(k, _pending_record(filenames[k])))
            rec["file"] = filenames[k]
            records[k] = _reconcile(rec, out_dir)
        # Keep (in the manifest) the records of other fields run earlier in the same directory.
        for k in old:
            if k not in records:
                records[k] = _reconcile(dict(old[k]), out_dir)

        _recompute_corrupt(out_dir, keys, records, table_format)
        resumed = [k for k in keys if records[k]["status"] == "done"]
        todo = [k for k in keys if records[k]["status"] != "done"]
        run = SurveyRun(out_dir, keys, records=records, table_format=table_format,
                        resumed=resumed)
        func_name = _callable_name(func)
        run._write_manifest(func_name)

        def finish(key, result):
            rec = records[key]
            rec.update(
                attempts=result["attempts"],
                seconds=round(result["seconds"], 3),
                finished=_now(),
                earlier_errors=result.get("earlier_errors", []),
            )
            if result["status"] == "done":
                table = result["table"]
                if need is not None and table.colnames and need not in table.colnames:
                    # Found on the first table, not after every field has run.
                    raise ColumnError(
                        f"field {key!r}: the per-field function returned a table without "
                        f"column {need!r} (columns: {table.colnames}), which keep={keep!r} "
                        "needs to choose between duplicates; return it, or pass keep='first' "
                        "or dedup_radius=None"
                    )
                try:
                    _write_table(table, out_dir / rec["file"], table_format,
                                 mode=old_modes.get(rec["file"]))
                except Exception as exc:  # noqa: BLE001 - recorded as a failure of the field
                    rec.update(
                        status="failed",
                        rows=None,
                        error=f"could not write the table of field {key!r}: "
                        f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc(),
                    )
                else:
                    rec.update(status="done", rows=len(table), error=None, traceback=None)
            else:
                rec.update(status="failed", rows=None, error=result["error"],
                           traceback=result["traceback"])
            run.computed.append(key)
            run._write_manifest(func_name)

        bar = progress_bar(total=len(todo), progress=progress, desc="survey", unit="field")
        with bar:
            if todo and client is None and scheduler == "synchronous":
                for k in todo:
                    finish(k, _run_field(func, k, args[k], retries))
                    bar.update()
            elif todo and client is None and scheduler == "threads":
                _run_threads(func, todo, args, retries, finish, bar, n_workers)
            elif todo:
                own_cluster = None
                if client is None:
                    client, own_cluster = _make_client(n_workers, cluster_kwargs)
                try:
                    _run_distributed(client, func, todo, args, retries, finish, bar)
                finally:
                    if own_cluster is not None:
                        client.close()
                        own_cluster.close()

        if run.failed:
            import warnings

            failed = run.failed
            first = next(iter(failed))
            warnings.warn(
                f"{len(failed)} of {len(keys)} fields failed (each tried up to "
                f"{retries + 1} times) (first: field {first!r}: {failed[first]}); see "
                "SurveyRun.failed and "
                f"SurveyRun.tracebacks, or {str(run.manifest_path)!r}; calling run_survey "
                "again retries them",
                FieldFailedWarning,
                stacklevel=2,
            )
        if merge:
            try:
                run.catalog = run.merge(dedup_radius=dedup_radius, keep=keep)
            except Exception as exc:
                exc.add_note(
                    f"The field tables are safe in {str(out_dir)!r}: merge them with "
                    f"SurveyRun.load({str(out_dir)!r}).merge(...)"
                )
                raise
        return run


@contextlib.contextmanager
def _directory_lock(out_dir):
    """
    Hold ``out_dir/survey.lock`` (created exclusively) while a run writes.

    A lock left by a process of this host that no longer exists (a killed
    run) is taken over; any other lock raises `SurveyLockedError`.
    """
    path = Path(out_dir) / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, host = {}, None, None
            if attempt == 0 and host == me["host"] and pid is not None and not _alive(pid):
                path.unlink(missing_ok=True)  # left by a killed run: take it over
                continue
            raise SurveyLockedError(
                f"{str(out_dir)!r} is in use by another survey run (lock file "
                f"{str(path)!r}: process {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')}, started {holder.get('started', '?')}); wait for "
                "it to finish, use another directory, or delete the lock file if no run is "
                "active"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == me["pid"]:
                path.unlink()
        except (OSError, ValueError):
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _parse_fields(fields):
    if isinstance(fields, Mapping):
        items = list(fields.items())
    elif isinstance(fields, (str, bytes)) or not hasattr(fields, "__iter__"):
        raise TypeError(
            f"fields must be a sequence of field keys or a mapping, got {type(fields).__name__}"
        )
    else:
        items = [(k, k) for k in fields]
    if not items:
        raise ValueError("fields is empty: nothing to run")
    keys, args = [], {}
    for key, arg in items:
        k = _field_key(key)
        if k in args:
            raise ValueError(f"field {k!r} is given more than once")
        keys.append(k)
        args[k] = arg if isinstance(fields, Mapping) else k
    return keys, args


def _run_distributed(client, func, todo, args, retries, finish, bar):
    from distributed import as_completed

    futures = {}
    for k in todo:
        fut = client.submit(_run_field, func, k, args[k], retries, pure=False,
                            key=f"m31clusters-survey-field-{k}-{os.urandom(4).hex()}")
        futures[fut] = k
    try:
        for fut in as_completed(list(futures)):
            key = futures[fut]
            if fut.status == "finished":
                result = fut.result()
            else:
                # The task itself failed (worker died: KilledWorker, out of memory, ...).
                exc = fut.exception()
                result = {
                    "status": "failed",
                    "attempts": 1,
                    "seconds": 0.0,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": "".join(traceback.format_exception(exc)),
                }
            fut.release()
            finish(key, result)
            bar.update()
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
