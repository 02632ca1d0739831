"""The ``m31clusters`` command line, through subprocess as a user runs it."""

import subprocess
import sys

import pytest

from m31clusters.cli import SUBCOMMANDS, build_parser, main


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "m31clusters", *args], capture_output=True,
                          text=True, **kwargs)


def test_help_lists_every_subcommand():
    out = _cli("--help")
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert name in out.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_of_each_subcommand(name):
    out = _cli(name, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: m31clusters {name}" in out.stdout
    assert "--debug" in out.stdout and "--quiet" in out.stdout


def test_no_subcommand_is_a_usage_error():
    out = _cli()
    assert out.returncode == 2
    assert "usage: m31clusters" in out.stderr


def test_unknown_option_is_a_usage_error():
    out = _cli("demo", "--no-such-option")
    assert out.returncode == 2
    assert "unrecognized arguments: --no-such-option" in out.stderr


def test_error_is_one_line_and_debug_shows_traceback(tmp_path):
    args = ("demo", "--out", str(tmp_path / "out"), "--images", str(tmp_path / "g.fits"),
            str(tmp_path / "i.fits"), "--quiet")
    out = _cli(*args)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("m31clusters demo: error: ")
    assert "g.fits" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written for a bad argument
    out = _cli(*args, "--debug")
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "m31clusters"]
    assert ep.value == "m31clusters.cli:main"
    assert ep.load() is main


def test_parser_registers_run_for_each_subcommand():
    import argparse

    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(action.choices) == list(SUBCOMMANDS)
    for name, sub in action.choices.items():
        assert callable(sub.get_default("run")), name
        options = {s for a in sub._actions for s in a.option_strings}
        assert {"--debug", "--quiet"} <= options, name


# --------------------------------------------------------------------------- search

import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from astropy import units as u  # noqa: E402
from astropy.coordinates import SkyCoord  # noqa: E402
from astropy.io import ascii, fits  # noqa: E402


@pytest.fixture(scope="module")
def two_fields(tmp_path_factory):
    """Two tiny simulated fields: m248 with its ascd catalogue, m249 without (detection)."""
    from m31clusters.simulate import simulate_field

    d = tmp_path_factory.mktemp("fields")
    simulate_field(field=248, n_ccds=1, ccd_shape=(320, 256), seed=2, out_dir=d)
    sim = simulate_field(field=249, n_ccds=2, ccd_shape=(384, 256), seed=3, out_dir=d)
    sim.catalog_path.unlink()
    for p in d.glob("*_truth.ecsv"):
        p.unlink()
    return d


def _ccd_centres(path):
    from astropy.wcs import WCS

    out = []
    with fits.open(path) as hdul:
        for hdu in hdul[1:]:
            ny, nx = hdu.data.shape
            out.append(WCS(hdu.header).pixel_to_world((nx - 1) / 2, (ny - 1) / 2))
    return SkyCoord(out)


def test_search_two_fields_catalogue_and_detection(two_fields, tmp_path):
    from mocpy import MOC

    from m31clusters.catalog import Catalog
    from m31clusters.survey import SurveyRun

    out = tmp_path / "out"
    res = _cli("search", str(two_fields), "--out", str(out), "--threshold", "0",
               "--scheduler", "synchronous", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "2 field(s) (2 searched now, 0 resumed)" in res.stdout
    cat = Catalog.read_cds(out / "ReadMe", out / "candidates.dat")
    back = ascii.read(out / "candidates.dat", readme=out / "ReadMe", format="cds")
    assert len(cat) == len(back) > 0
    # with threshold 0, every source passing the cuts (and with valid stamps) is a candidate
    assert np.all(np.asarray(cat["gmag"]) < 21) and np.all(np.asarray(cat["Rproj"]) < 30)
    assert set(np.asarray(cat["PAndAS"])) <= {248, 249}
    run = SurveyRun.load(out / "fields")
    assert run.complete and run.fields == [248, 249]
    counts = {k: run.read_field(k).meta["counts"] for k in run.fields}
    assert counts[248]["sources"] > counts[248]["passed_cuts"] > 0  # ascd: cut before stamps
    assert counts[249]["ccds"] == 2 and counts[249]["sources"] > counts[249]["passed_cuts"]
    assert sum(c["candidates"] for c in counts.values()) >= len(cat)  # duplicates merged
    # the MOC covers the CCDs searched, and nothing far from them
    moc = MOC.from_fits(out / "coverage.fits")
    for name in ("m248_i.fit", "m249_i.fit"):
        centres = _ccd_centres(two_fields / name)
        assert moc.contains_skycoords(centres).all()
        away = centres.directional_offset_by(0 * u.deg, 0.2 * u.deg)
        assert not moc.contains_skycoords(away).any()
    assert moc.contains_skycoords(cat["coord"]).all()
    ccd_area = (320 * 256 + 2 * 384 * 256) * (0.187 / 3600) ** 2  # deg^2 of the 3 CCDs
    assert 0.9 < moc.sky_fraction * 41252.96 / ccd_area < 1.6  # 6" cells along the edges
    assert len((out / "candidates.reg").read_text().splitlines()) >= len(cat)
    assert (out / "candidates.png").read_bytes()[:4] == b"\x89PNG"
    # a second run finds the products: never overwritten without --overwrite
    again = _cli("search", str(two_fields), "--out", str(out), "--scheduler", "synchronous",
                 "--quiet")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_search_resumes_after_sigkill(two_fields, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "m31clusters", "search", str(two_fields), "--out", str(out),
           "--scheduler", "synchronous", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = out / "fields" / "field_248.ecsv"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert first.exists(), "the first field never finished"
    assert not (out / "fields" / "field_249.ecsv").exists(), "killed too late"
    assert not (out / "ReadMe").exists()
    stamp = first.stat().st_mtime_ns
    res = _cli(*cmd[3:])
    assert res.returncode == 0, res.stderr
    assert "2 field(s) (1 searched now, 1 resumed)" in res.stdout
    assert first.stat().st_mtime_ns == stamp  # not recomputed
    assert (out / "ReadMe").exists() and (out / "coverage.fits").exists()


def test_search_nothing_passing_the_cuts_is_a_valid_empty_result(two_fields, tmp_path):
    from m31clusters.catalog import Catalog

    out = tmp_path / "out"
    res = _cli("search", str(two_fields), "--out", str(out), "--mag-limit", "5",
               "--fields", "248", "--scheduler", "synchronous", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "0 candidate(s): nothing passed the cuts" in res.stdout
    cat = Catalog.read_cds(out / "ReadMe", out / "candidates.dat")
    assert len(cat) == 0 and "gmag" in cat.colnames
    assert (out / "candidates.reg").read_text().strip() == ""
    assert (out / "coverage.fits").is_file() and (out / "candidates.png").is_file()


def test_search_mismatched_and_missing_catalogues(two_fields, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("m249_g.fit", "m249_i.fit"):
        os.symlink(two_fields / name, src / name)
    shutil.copy(two_fields / "m248p.ascd", src / "m249p.ascd")  # another field's catalogue
    out = tmp_path / "out"
    res = _cli("search", str(src), "--out", str(out), "--scheduler", "synchronous", "--quiet")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("m31clusters search: error: field 249: ColumnError: catalogue")
    assert "m249p.ascd" in lines[0] and "mismatched catalogue" in lines[0]
    assert "nothing published" in lines[-1]
    assert not (out / "ReadMe").exists()
    (src / "m249p.ascd").unlink()
    res = _cli("search", str(src), "--out", str(tmp_path / "o2"), "--catalogs", "require")
    assert res.returncode == 1
    assert res.stderr.strip() == ("m31clusters search: error: field 249: no catalogue "
                                  f"m249p.ascd for the stacks {str(src / 'm249_i.fit')!r} "
                                  "(catalogs='require')")


def test_search_bad_arguments(two_fields, tmp_path):
    cases = [
        (["search", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], 1,
         "does not exist"),
        (["search", str(tmp_path), "--out", str(tmp_path / "o")], 1, "no PAndAS stacks"),
        (["search", str(two_fields), "--out", str(tmp_path / "o"), "--workers", "0"], 1,
         "--workers must be >= 1"),
        (["search", str(two_fields), "--out", str(tmp_path / "o"), "--fields", "300"], 1,
         "--fields [300]: no stacks found"),
        (["search", str(two_fields), "--out", str(tmp_path / "o"), "--catalogs", "some"], 2,
         "invalid choice: 'some'"),
        (["search", str(two_fields)], 2, "the following arguments are required: --out"),
        (["search", str(two_fields), "--out", str(tmp_path / "o"), "--fragment-radius", "-1",
          "--quiet"],
         1, "fragment_radius must be >= 0 arcsec"),
    ]
    for args, status, message in cases:
        res = _cli(*args)
        assert res.returncode == status, (args, res.stderr)
        assert message in res.stderr, (args, res.stderr)
        if status == 1:
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(two_fields / "m249_i.fit", lonely / "m249_i.fit")
    assert main(["search", str(lonely), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert not (tmp_path / "o").exists()  # nothing written for bad input


def test_search_unreachable_scheduler(two_fields, tmp_path):
    out = tmp_path / "out"
    res = _cli("search", str(two_fields), "--out", str(out), "--scheduler",
               "tcp://127.0.0.1:9", "--connect-timeout", "1", "--quiet")
    assert res.returncode == 1
    assert res.stderr.strip().startswith(
        "m31clusters search: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")
    assert not out.exists()  # nothing written
