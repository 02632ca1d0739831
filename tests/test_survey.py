"""Tests of m31clusters.survey (resumable survey runs on Dask)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters.exceptions import (
    ColumnError,
    CorruptFieldWarning,
    CorruptFileError,
    FieldFailedWarning,
    SurveyLockedError,
)
from m31clusters.survey import LOCK_NAME, MANIFEST_NAME, SurveyRun, iter_chunks, run_survey

REPO = Path(__file__).resolve().parent.parent


def _count_call(calls_dir, field):
    with open(Path(calls_dir) / f"{field}.txt", "a") as f:
        f.write("call\n")


def _n_calls(calls_dir, field):
    path = Path(calls_dir) / f"{field}.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _field_table(field):
    """One source per field, at a position that depends on the field."""
    return Table({"ra": [10.0 + 0.01 * field] * u.deg, "dec": [41.0] * u.deg,
                  "Conf": [0.5 + 0.01 * field]})


def _no_conf(field):
    return Table({"ra": [10.0] * u.deg, "dec": [41.0] * u.deg})


def square(field):
    """Module-level (picklable) per-field function for worker processes."""
    if field == 13:  # the worker process dies (as if killed for using too much memory)
        time.sleep(0.5)  # let the worker report the fields it finished before
        os._exit(1)
    return Table({"x": [field], "x2": [field * field], "pid": [os.getpid()]})



def worker_cpus(field):
    """The CPUs a worker process's task, and a thread it starts, may run on."""
    from distributed import get_worker

    seen = {}
    thread = threading.Thread(target=lambda: seen.update(cpus=sorted(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    return Table({"worker": [int(get_worker().name)],
                  "cpus": [" ".join(map(str, sorted(os.sched_getaffinity(0))))],
                  "thread_cpus": [" ".join(map(str, seen["cpus"]))]})


# --------------------------------------------------------------------------- iter_chunks


def test_iter_chunks_covers_range_once():
    for n, size in [(0, 3), (1, 1), (10, 3), (9, 3), (5, 10)]:
        chunks = list(iter_chunks(n, size))
        covered = np.concatenate([np.arange(n)[s] for s in chunks]) if chunks else []
        np.testing.assert_array_equal(covered, np.arange(n))
        assert all(0 < s.stop - s.start <= size for s in chunks)
        assert len(chunks) == -(-n // size)


def test_iter_chunks_errors():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        list(iter_chunks(5, 0))
    with pytest.raises(ValueError, match="n must be >= 0"):
        list(iter_chunks(-1, 2))
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        list(iter_chunks(5, 2.0))


# --------------------------------------------------------------------------- resume


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from astropy import units as u
    from astropy.table import Table
    from m31clusters.survey import run_survey

    out, calls = Path(sys.argv[1]), Path(sys.argv[2])

    def field_func(field):
        with open(calls / f"{field}.txt", "a") as f:
            f.write("call\\n")
        time.sleep(0.4)
        return Table({"ra": [10.0 + 0.01 * field] * u.deg, "dec": [41.0] * u.deg,
                      "Conf": [0.5 + 0.01 * field]})

    run_survey(field_func, range(20), out, scheduler="threads", n_workers=2,
               progress=False, dedup_radius=None)
    """
)


def test_killed_run_resumes_without_recomputing(tmp_path):
    out, calls = tmp_path / "out", tmp_path / "calls"
    calls.mkdir()
    script = tmp_path / "survey_script.py"
    script.write_text(_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(calls), str(REPO)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 45
        while len(list(out.glob("field_*.fits"))) < 3:
            if proc.poll() is not None:
                pytest.fail(f"survey script ended early: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("survey script wrote no field in 45 s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    finished = sorted(int(p.stem.split("_")[1]) for p in out.glob("field_*.fits"))
    assert 3 <= len(finished) < 20, "the kill must interrupt the run"
    # The state on disk after the kill already shows the finished fields.
    state = SurveyRun.load(out)
    assert state.done == finished and not state.complete

    def field_func(field):
        _count_call(calls, field)
        return _field_table(field)

    run = run_survey(field_func, range(20), out, scheduler="synchronous", progress=False,
                     dedup_radius=None)
    assert run.complete
    assert run.resumed == finished
    assert run.computed == [f for f in range(20) if f not in finished]
    for field in finished:  # computed once, before the kill
        assert _n_calls(calls, field) == 1
    for field in range(20):
        assert _n_calls(calls, field) >= 1
    # No temporary file of the killed run is left behind; its lock was taken
    # over (dead process on this host) and released at the end.
    assert not list(out.glob(".*.tmp"))
    assert not (out / LOCK_NAME).exists()
    # Merged catalogue: one row per field, each from its own field.
    cat = run.catalog
    assert len(cat) == 20
    np.testing.assert_allclose(cat["ra"], 10.0 + 0.01 * np.asarray(cat["PAndAS"]))


def test_second_run_on_same_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    started, release = threading.Event(), threading.Event()

    def slow_field(field):
        started.set()
        assert release.wait(30)
        return _field_table(field)

    result = {}
    first = threading.Thread(target=lambda: result.update(run=run_survey(
        slow_field, [1], out, scheduler="synchronous", progress=False, dedup_radius=None)))
    first.start()
    try:
        assert started.wait(30)
        lock = json.loads((out / LOCK_NAME).read_text())
        assert lock["pid"] == os.getpid()
        with pytest.raises(SurveyLockedError, match="in use by another survey run"):
            run_survey(_field_table, [2], out, scheduler="synchronous", progress=False)
    finally:
        release.set()
        first.join()
    assert result["run"].complete and not (out / LOCK_NAME).exists()
    # the refused run changed nothing
    assert SurveyRun.load(out).done == [1]

    # a lock left by a dead process of this host is taken over ...
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    import socket

    host = socket.gethostname()
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": host}))
    run = run_survey(_field_table, [2], out, scheduler="synchronous", progress=False,
                     dedup_radius=None)
    assert run.computed == [2] and not (out / LOCK_NAME).exists()
    # ... one held by another host (shared disk) or unreadable is not
    for text in (json.dumps({"pid": 1, "host": host + "-elsewhere", "started": "x"}), "junk"):
        (out / LOCK_NAME).write_text(text)
        with pytest.raises(SurveyLockedError, match="delete the lock file"):
            run_survey(_field_table, [3], out, scheduler="synchronous", progress=False)
        assert (out / LOCK_NAME).read_text() == text


def test_file_without_manifest_entry_counts_as_finished(tmp_path):
    # Simulates a run killed between writing a field table and updating the manifest.
    run_survey(_field_table, [1, 2, 3], tmp_path, scheduler="synchronous", progress=False,
               merge=False)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    for rec in manifest["fields"]:
        rec["status"] = "pending"
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    # A finished field whose file was deleted is recomputed.
    (tmp_path / "field_002.fits").unlink()
    calls = []

    def func(field):
        calls.append(field)
        return _field_table(field)

    run = run_survey(func, [1, 2, 3], tmp_path, scheduler="synchronous", progress=False,
                     merge=False)
    assert calls == [2]
    assert run.resumed == [1, 3] and run.complete and run.catalog is None


def test_leftover_manifest_temporary_is_removed(tmp_path):
    # A run killed while writing the manifest leaves its temporary file behind.
    run_survey(_field_table, [1], tmp_path, scheduler="synchronous", progress=False)
    leftover = tmp_path / f".{MANIFEST_NAME}.abc123.tmp"
    leftover.write_text("{")
    run_survey(_field_table, [1], tmp_path, scheduler="synchronous", progress=False)
    assert not leftover.exists()


def test_survey_run_constructor_is_keyword_only_after_two(tmp_path):
    run_survey(_field_table, [1, 2], tmp_path, scheduler="synchronous", progress=False)
    records = SurveyRun.load(tmp_path).records
    with pytest.raises(TypeError):
        SurveyRun(tmp_path, [1, 2], records)
    state = SurveyRun(tmp_path, [1, 2], records=records, table_format="fits")
    assert state.done == [1, 2] and state.complete
    assert len(state.merge(dedup_radius=None)) == 2


def test_overwrite_recomputes_everything(tmp_path):
    run_survey(_field_table, [1, 2], tmp_path, scheduler="synchronous", progress=False)
    calls = []

    def func(field):
        calls.append(field)
        return Table({"ra": [1.0, 2.0] * u.deg, "dec": [0.0, 0.0] * u.deg, "Conf": [0.1, 0.2]})

    run_survey(_field_table, [3], tmp_path, scheduler="synchronous", progress=False)
    run = run_survey(func, [1, 2], tmp_path, scheduler="synchronous", progress=False,
                     overwrite=True)
    assert calls == [1, 2] and run.resumed == []
    assert SurveyRun.load(tmp_path).done == [1, 2, 3]  # field 3 is kept
    assert len(run.read_field(1)) == 2
    # The same two sources in both fields: de-duplicated into 2 rows.
    assert list(run.catalog["n_det"]) == [2, 2] and list(run.catalog["fields"]) == ["1,2"] * 2


# --------------------------------------------------------------------------- errors


def test_retries_and_error_report_on_dask_threads(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    out = tmp_path / "out"

    def func(field):
        _count_call(calls, field)
        if field == 1 and _n_calls(calls, 1) == 1:
            raise OSError("transient read error")
        if field == 2:
            raise ValueError(f"stack of field {field} is corrupt")
        return _field_table(field)

    with pytest.warns(FieldFailedWarning, match=r"1 of 4 fields failed .*field 2"):
        run = run_survey(func, [0, 1, 2, 3], out, scheduler="threads", n_workers=2,
                         retries=2, progress=False, dedup_radius=None)
    assert run.done == [0, 1, 3]
    assert run.failed == {2: "ValueError: stack of field 2 is corrupt"}
    tb = run.tracebacks[2]
    assert tb.startswith("Traceback") and "in func" in tb and tb.endswith("is corrupt\n")
    assert _n_calls(calls, 1) == 2 and run.records[1]["attempts"] == 2
    assert run.records[1]["earlier_errors"] == ["OSError: transient read error"]
    assert _n_calls(calls, 2) == 3 and run.records[2]["attempts"] == 3
    assert not (out / "field_002.fits").exists()
    assert sorted(run.catalog["PAndAS"]) == [0, 1, 3]
    # The error is in the manifest, and load() reports it.
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    rec = {r["field"]: r for r in manifest["fields"]}[2]
    assert rec["status"] == "failed" and "corrupt" in rec["traceback"]
    assert SurveyRun.load(out).failed == run.failed

    # Next call: only the failed field is tried again.
    def fixed(field):
        _count_call(calls, field)
        return _field_table(field)

    again = run_survey(fixed, [0, 1, 2, 3], out, scheduler="threads", n_workers=2,
                       progress=False, dedup_radius=None)
    assert again.computed == [2] and again.complete
    assert [_n_calls(calls, f) for f in range(4)] == [1, 2, 4, 1]


def test_threads_share_unpicklable_objects(tmp_path):
    # The default threaded scheduler pickles nothing: the function may use
    # objects of the calling process (a loaded model, a lock, open files).
    class Model:
        def __init__(self):
            self.lock = threading.Lock()
            self.seen = []

    model = Model()

    def func(field):
        with model.lock:
            model.seen.append(field)
        return Table({"x": [field]})

    run = run_survey(func, range(6), tmp_path, n_workers=3, progress=False, dedup_radius=None)
    assert run.complete and sorted(model.seen) == list(range(6))
    assert sorted(run.catalog["x"]) == list(range(6))


def test_bad_return_value_fails_without_retry(tmp_path):
    calls = []

    def func(field):
        calls.append(field)
        return [1, 2, 3]

    with pytest.warns(FieldFailedWarning):
        run = run_survey(func, [5], tmp_path, scheduler="synchronous", progress=False)
    assert calls == [5]
    assert "must return an astropy Table" in run.failed[5]
    assert len(run.catalog) == 0


def test_unwritable_table_is_reported(tmp_path):
    def func(field):
        return Table({"obj": np.array([object(), object()], dtype=object), "Conf": [0.5, 0.6]})

    with pytest.warns(FieldFailedWarning, match="could not write the table of field 3"):
        run = run_survey(func, [3], tmp_path, scheduler="synchronous", progress=False)
    assert run.records[3]["status"] == "failed"
    assert not list(tmp_path.glob("*.fits")) and not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------- schedulers


def test_worker_processes_and_user_client(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    # Field 13 kills its worker process; Dask gives up on it at once
    # (allowed-failures=0) and it is reported as failed.  It is the last field
    # (fields run in submission order) so that no other field dies with it.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with pytest.warns(FieldFailedWarning, match="field 13: KilledWorker"):
            run = run_survey(square, [2, 3, 4, 13], tmp_path / "p", scheduler="processes",
                             n_workers=1, progress=False, dedup_radius=None)
    assert run.done == [2, 3, 4] and list(run.failed) == [13]
    assert "KilledWorker" in run.tracebacks[13]
    np.testing.assert_array_equal(run.catalog["x2"], [4, 9, 16])
    assert os.getpid() not in set(run.catalog["pid"])

    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        run = run_survey(square, {"a": 2, "b": 5}, tmp_path / "c", client=client,
                         progress=False, dedup_radius=None)
        assert client.status == "running"  # a user's client is left open
    assert run.complete and [p.name for p in sorted((tmp_path / "c").glob("*.fits"))] == [
        "field_a.fits", "field_b.fits"]
    assert run.read_field("b")["x2"][0] == 25
    assert sorted(run.catalog["PAndAS"]) == ["a", "b"]



@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's")
def test_worker_processes_get_disjoint_cpu_shares(tmp_path):
    # Each local worker process is restricted to its own CPUs before any task runs
    # (a thread started later, like JAX's thread pool, inherits them), so the
    # workers never compete for a CPU.
    cpus = sorted(os.sched_getaffinity(0))
    n = min(2, len(cpus))
    per = len(cpus) // n
    run = run_survey(worker_cpus, list(range(6)), tmp_path / "a", scheduler="processes",
                     n_workers=n, progress=False, dedup_radius=None)
    seen = {}
    for row in run.catalog:
        assert row["cpus"] == row["thread_cpus"]
        seen[row["worker"]] = row["cpus"]
    for worker, got in seen.items():
        assert got == " ".join(map(str, cpus[worker * per : (worker + 1) * per]))
    assert len(set(seen.values())) == len(seen)  # disjoint

    # Asking for more threads than there are CPUs: no restriction at all.
    run = run_survey(worker_cpus, [0, 1], tmp_path / "b", scheduler="processes",
                     n_workers=n, cluster_kwargs={"threads_per_worker": len(cpus) + 1},
                     progress=False, dedup_radius=None)
    assert set(run.catalog["cpus"]) == {" ".join(map(str, cpus))}


def test_merge_deduplicates_overlaps(tmp_path):
    # Fields 207 and 208 overlap: source B is seen by both, 0.4 arcsec apart.
    a = SkyCoord(10.0, 41.0, unit="deg")
    b = SkyCoord(10.1, 41.0, unit="deg")
    b2 = b.directional_offset_by(0 * u.deg, 0.4 * u.arcsec)
    c = SkyCoord(10.2, 41.0, unit="deg")
    tables = {
        207: Table({"coord": SkyCoord([a, b]), "Conf": [0.9, 0.7], "PAndAS": [207, 207]}),
        208: Table({"coord": SkyCoord([b2, c]), "Conf": [0.8, 0.6], "PAndAS": [208, 208]}),
        209: Table({"coord": SkyCoord([], [], unit="deg"), "Conf": np.zeros(0),
                    "PAndAS": np.zeros(0, int)}),
    }
    run = run_survey(tables.get, [207, 208, 209], tmp_path, scheduler="synchronous",
                     progress=False)
    cat = run.catalog
    from m31clusters.catalog import Catalog

    assert isinstance(cat, Catalog) and len(cat) == 3
    assert cat.colnames.count("PAndAS") == 1  # the tables' own PAndAS column is kept
    np.testing.assert_allclose(cat["Conf"], [0.9, 0.8, 0.6])  # B kept from field 208
    assert cat["coord"][1].separation(b2) < 1e-6 * u.arcsec
    assert list(cat["n_det"]) == [1, 2, 1]
    assert list(cat["fields"]) == ["207", "207,208", "208"]
    # Tables without the Conf column keep="max:Conf" needs: refused at the first field,
    # before the others run, and nothing of that field is stored as finished.
    with pytest.raises(ColumnError, match=r"field 1: .* without column 'Conf'"):
        run_survey(_no_conf, [1, 2], tmp_path / "noconf", scheduler="synchronous",
                   progress=False)
    assert SurveyRun.load(tmp_path / "noconf").done == []
    run_nc = run_survey(_no_conf, [1, 2], tmp_path / "noconf", scheduler="synchronous",
                        progress=False, keep="first")
    assert len(run_nc.catalog) == 1 and list(run_nc.catalog["n_det"]) == [2]
    # Below the 0.4 arcsec separation nothing is merged.
    assert len(run.merge(dedup_radius=0.3 * u.arcsec)) == 4
    assert len(run.merge(dedup_radius=None)) == 4


def test_ecsv_format_and_none_result(tmp_path):
    def func(field):
        return None if field == 2 else _field_table(field)

    run = run_survey(func, [1, 2], tmp_path, scheduler="synchronous", progress=False,
                     table_format="ecsv", dedup_radius=None)
    assert run.complete and (tmp_path / "field_002.ecsv").exists()
    assert run.records[2]["rows"] == 0 and len(run.catalog) == 1
    with pytest.raises(ValueError, match="table_format='ecsv'"):
        run_survey(func, [1, 2], tmp_path, scheduler="synchronous", progress=False)
    run = run_survey(func, [1, 2], tmp_path, scheduler="synchronous", progress=False,
                     overwrite=True, dedup_radius=None)
    assert run.complete and (tmp_path / "field_001.fits").exists()


# --------------------------------------------------------------------------- validation


def test_input_validation(tmp_path):
    with pytest.raises(TypeError, match="func must be callable"):
        run_survey(3, [1], tmp_path)
    with pytest.raises(ValueError, match="fields is empty"):
        run_survey(square, [], tmp_path)
    with pytest.raises(ValueError, match="given more than once"):
        run_survey(square, [1, 1], tmp_path)
    with pytest.raises(ValueError, match="same file name"):
        run_survey(square, [7, "007"], tmp_path)
    with pytest.raises(ValueError, match="cannot be used in a file name"):
        run_survey(square, ["../x"], tmp_path)
    with pytest.raises(TypeError, match="field keys must be integers"):
        run_survey(square, [1.5], tmp_path)
    with pytest.raises(TypeError, match="fields must be a sequence"):
        run_survey(square, "207", tmp_path)
    with pytest.raises(ValueError, match="retries must be >= 0"):
        run_survey(square, [1], tmp_path, retries=-1)
    with pytest.raises(ValueError, match="scheduler must be one of"):
        run_survey(square, [1], tmp_path, scheduler="gpu")
    with pytest.raises(ValueError, match="either client or scheduler"):
        run_survey(square, [1], tmp_path, client=object(), scheduler="threads")
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        run_survey(square, [1], tmp_path, client=object())
    with pytest.raises(TypeError, match="dedup_radius must be an astropy Quantity"):
        run_survey(square, [1], tmp_path, dedup_radius=1.0)
    assert not list(tmp_path.iterdir())  # nothing written for bad input
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        run_survey(square, [1], tmp_path, scheduler="synchronous", progress=False)
    with pytest.raises(ValueError, match="cluster_kwargs is only used"):
        run_survey(square, [1], tmp_path, cluster_kwargs={"memory_limit": "1GiB"})
    with pytest.raises(FileNotFoundError, match="no survey manifest"):
        SurveyRun.load(tmp_path / "nowhere")


# --------------------------------------------------------------------------- issue 13


def _typed(field):
    """Field 2 returns its Conf column as text: a programming error of the user's function."""
    conf = ["0.7"] if field == 2 else [0.7]
    return Table({"coord": SkyCoord([10.0 + field], [41.0], unit="deg"), "Conf": conf})


def test_merge_names_fields_of_a_differently_typed_column(tmp_path):
    with pytest.raises(ColumnError, match=r"column 'Conf' is number in field 1 but text "
                                          r"in field 2") as excinfo:
        run_survey(_typed, [1, 2, 3], tmp_path, scheduler="synchronous")
    assert "SurveyRun.load(" in excinfo.value.__notes__[0]  # the field tables are safe
    assert SurveyRun.load(tmp_path).done == [1, 2, 3]


def test_corrupt_stored_field_is_recomputed_with_a_warning(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()

    def func(field):
        _count_call(calls, field)
        return _field_table(field)

    out = tmp_path / "run"
    run_survey(func, [1, 2], out, scheduler="synchronous")
    (out / "field_002.fits").write_bytes(b"SIMPLE  =  garbage, truncated by a full disc")
    with pytest.warns(CorruptFieldWarning, match=r"field 2: field table .*field_002.fits"):
        run = run_survey(func, [1, 2], out, scheduler="synchronous")
    assert run.resumed == [1] and run.computed == [2]
    assert _n_calls(calls, 1) == 1 and _n_calls(calls, 2) == 2
    assert (out / "field_002.fits.corrupt").exists()
    assert len(run.catalog) == 2


def test_out_dir_that_is_a_file(tmp_path):
    path = tmp_path / "results.fits"
    path.write_text("x")
    with pytest.raises(NotADirectoryError, match="results.fits.* is a file"):
        run_survey(_field_table, [1], path, scheduler="synchronous")
    assert path.read_text() == "x"


# --------------------------------------------------------------------------- search


def _tiny_field(directory, number, center, *, g=18.0, with_catalog=True):
    """A 96x96-pixel g and i stack centred on *center* with one bright blob, and its ascd."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from m31clusters.io.pandas_ascd import write_pandas_ascd

    n = 96
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [center.ra.deg, center.dec.deg]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    yy, xx = np.mgrid[:n, :n]
    blob = 2000.0 * np.exp(-((xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2) / (2 * 2.0**2))
    rng = np.random.default_rng(number)
    paths = {}
    for band in ("g", "i"):
        hdr = w.to_header()
        hdr["MAGZPT"] = 30.0
        hdr["CCDNUM"] = 0
        data = (blob + rng.normal(0, 5, (n, n))).astype(np.float32)
        paths[band] = directory / f"m{number:03d}_{band}.fit"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, hdr)]).writeto(paths[band])
    if with_catalog:
        paths["catalog"] = directory / f"m{number:03d}p.ascd"
        t = Table({"RA": [center.ra.deg], "Dec": [center.dec.deg], "iccd": [0],
                   "xg": [48.0], "yg": [48.0], "g": [g], "dg": [0.01], "ig": [1],
                   "xi": [48.0], "yi": [48.0], "i": [g - 1], "di": [0.01], "ii": [1],
                   "ia": [0.0], "field": [number]})
        write_pandas_ascd(t, paths["catalog"])
    return paths


def test_search_fields_fills_the_literature_columns(tmp_path, monkeypatch):
    """One tiny field on an RBC, a Wang+2023 and a Huxor halo cluster: their names are filled."""
    from m31clusters.catalog import Catalog
    from m31clusters.classifier import ClusterClassifier
    from m31clusters.datasets import load_hectospec2015, load_rbc_v5, load_wang2023
    from m31clusters.survey import search, search_fields

    loads = []
    original = ClusterClassifier.load.__func__

    def counting_load(cls, *args, **kwargs):
        loads.append(args)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(ClusterClassifier, "load", classmethod(counting_load))
    monkeypatch.setattr(search, "_MODELS", {})

    targets = {1: ("RBC", load_rbc_v5()[0]), 2: ("W23", load_wang2023()[0]),
               3: ("H14", load_hectospec2015(halo_only=True)[0])}
    fields = {}
    for number, (_, row) in targets.items():
        paths = _tiny_field(tmp_path, number, row["coord"])
        fields[number] = {"g": paths["g"], "i": paths["i"], "catalog": paths["catalog"]}
    # threshold 0: every source passing the cuts is a candidate; halo clusters lie far out
    res = search_fields(fields, tmp_path / "out", threshold=0.0, max_radius=300 * u.kpc,
                        scheduler="synchronous")
    assert res.run.complete and len(res.catalog) == 3
    cat = Catalog.read_cds(res.files["readme"], res.files["data"])
    for number, (column, row) in targets.items():
        (k,) = np.flatnonzero(np.asarray(cat["PAndAS"]) == number)
        assert cat[column][k] == row["name"], (column, cat[k])
    assert np.all(np.ma.getmaskarray(cat["C09"])) and np.all(np.ma.getmaskarray(cat["W22"]))
    assert res.counts["passed_cuts"] == 3 and res.counts["sources"] == 3
    assert set(res.timings) == {"read", "detect", "measure", "cut", "classify", "write"}
    assert len(loads) == 1  # the model is loaded once per process, not once per field


def test_search_field_merges_fragments(tmp_path):
    """Two pieces of one object 1.2" apart become one candidate (the brighter); a third stays."""
    from astropy.wcs import WCS

    from m31clusters.datasets import load_rbc_v5
    from m31clusters.io.pandas_ascd import write_pandas_ascd
    from m31clusters.survey import search_field

    center = load_rbc_v5()[0]["coord"]
    paths = _tiny_field(tmp_path, 7, center)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [center.ra.deg, center.dec.deg]
    w.wcs.crpix = [48.5, 48.5]
    w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    x = np.array([47.5, 47.5 + 1.2 / 0.187, 47.5 + 6.0 / 0.187])
    y = np.full(3, 47.5)
    sky = w.pixel_to_world(x, y)
    g = np.array([18.0, 19.5, 19.0])
    t = Table({"RA": sky.ra.deg, "Dec": sky.dec.deg, "iccd": [0] * 3, "xg": x + 1, "yg": y + 1,
               "g": g, "dg": [0.01] * 3, "ig": [1] * 3, "xi": x + 1, "yi": y + 1, "i": g - 1,
               "di": [0.01] * 3, "ii": [1] * 3, "ia": [0.0] * 3, "field": [7] * 3})
    write_pandas_ascd(t, paths["catalog"], overwrite=True)
    images = {"g": paths["g"], "i": paths["i"]}
    res = search_field(images, paths["catalog"], threshold=0.0, max_radius=300 * u.kpc,
                       keep_sources=True)
    assert len(res.candidates) == 2
    assert sorted(np.asarray(res.candidates["gmag"]).round(1).tolist()) == [18.0, 19.0]
    assert sorted(res.candidates["n_frag"].tolist()) == [1, 2]
    assert res.counts["fragments_merged"] == 1
    assert len(res.stamps) == 2  # the stamps follow the merged candidates
    every = search_field(images, paths["catalog"], threshold=0.0, max_radius=300 * u.kpc,
                         fragment_radius=0 * u.arcsec)
    assert len(every.candidates) == 3 and every.counts["fragments_merged"] == 0
    with pytest.raises(TypeError, match="fragment_radius"):
        search_field(images, paths["catalog"], fragment_radius=2.5)


@pytest.fixture(scope="module")
def detection_field(tmp_path_factory):
    """A small simulated disc field of 3 CCDs, with its ascd catalogue."""
    from m31clusters.simulate import simulate_field

    d = tmp_path_factory.mktemp("detfield")
    return simulate_field(field=249, n_ccds=3, ccd_shape=(320, 256), seed=11, out_dir=d)


def _same_sources(a, b):
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a["ccd"], b["ccd"])
    assert np.all(a["coord"].separation(b["coord"]).arcsec < 1e-9)
    for name in ("gmag", "imag", "e_gmag", "e_imag"):
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))


def test_search_field_executor_gives_the_same_result(detection_field):
    """The CCDs and stamp chunks of a search run as executor jobs: same sources, same candidates."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from m31clusters.classifier import ClusterClassifier
    from m31clusters.demo import demo_model_path
    from m31clusters.survey import search_field

    class Recording:
        """An executor that records which job functions it was given."""

        def __init__(self, pool):
            self.pool, self.jobs = pool, []

        def map(self, func, jobs):
            self.jobs.append(func.__name__)
            return self.pool.map(func, jobs)

    images = detection_field.images
    one = search_field(images, threshold=0.0, keep_sources=True, chunk_size=2)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        spy = Recording(pool)
        two = search_field(images, threshold=0.0, keep_sources=True, executor=spy,
                           chunk_size=2)
        # a classifier object of this process is not sent to the executor's workers
        local = Recording(pool)
        three = search_field(images, threshold=0.0, keep_sources=True, executor=local,
                             chunk_size=2, model=ClusterClassifier.load(demo_model_path()))
    assert spy.jobs == ["_detect_ccd", "_classify_chunk"]
    assert local.jobs == ["_detect_ccd"]
    _same_sources(one.sources, two.sources)
    assert len(set(np.asarray(one.sources["ccd"]))) == 3
    assert one.counts["passed_cuts"] > 2  # several chunks
    for other in (two, three):
        np.testing.assert_array_equal(np.ma.filled(one.sources["Conf"], -1),
                                      np.ma.filled(other.sources["Conf"], -1))
        np.testing.assert_array_equal(one.candidates["Conf"], other.candidates["Conf"])
        np.testing.assert_array_equal(one.stamps.data, other.stamps.data)
        assert one.counts == other.counts
    # stage times are summed over the jobs, whichever ran them
    assert two.timings["detect"] > 0 and two.timings["measure"] > 0
    assert two.timings["classify"] > 0
    with pytest.raises(TypeError, match="executor must have a map method"):
        search_field(images, executor=2)


def test_ascd_sources_are_assigned_to_their_ccds(detection_field):
    """Each catalogue source gets the CCD whose image holds it (brute force over every CCD)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from m31clusters.io.pandas_ascd import read_pandas_ascd
    from m31clusters.survey import search_field

    res = search_field(detection_field.images, detection_field.catalog_path, threshold=1.0,
                       keep_sources=True)
    cat = read_pandas_ascd(detection_field.catalog_path)
    ra, dec = np.asarray(cat["RA"], float), np.asarray(cat["Dec"], float)
    expected = np.full(len(cat), -1)
    with fits.open(detection_field.images["i"]) as hdul:
        for k, hdu in enumerate(hdul[1:]):
            ny, nx = hdu.data.shape
            x, y = WCS(hdu.header).all_world2pix(ra, dec, 0)
            on = (expected < 0) & (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
            expected[on] = hdu.header.get("CCDNUM", k)
    kept = expected >= 0
    assert kept.sum() == len(res.sources) > 100
    np.testing.assert_array_equal(np.asarray(res.sources["ccd"]), expected[kept])
    back = SkyCoord(ra[kept], dec[kept], unit="deg")
    assert np.all(res.sources["coord"].separation(back).arcsec < 1e-6)


def test_search_fields_spreads_a_fields_ccds_over_the_workers(detection_field, tmp_path):
    """Without a catalogue, each CCD is a task of its own on the worker processes."""
    import dask
    from distributed import Client, LocalCluster, get_task_stream

    from m31clusters.survey import search_fields

    spec = {249: {"g": detection_field.images["g"], "i": detection_field.images["i"]}}
    ref = search_fields(spec, tmp_path / "sync", threshold=0.0, scheduler="synchronous")
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    with cluster, Client(cluster) as client:
        with get_task_stream(client) as ts:
            res = search_fields(spec, tmp_path / "dist", threshold=0.0,
                                scheduler=cluster.scheduler_address)
        names = [t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in ts.data]
    assert sum(str(n).startswith("_detect_ccd") for n in names) == 3
    assert res.run.complete and len(res.catalog) == len(ref.catalog) > 0
    np.testing.assert_array_equal(res.catalog["Conf"], ref.catalog["Conf"])
    assert res.counts == ref.counts
