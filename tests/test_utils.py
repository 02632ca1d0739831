"""Tests of the private helpers in m31clusters.utils."""

import os

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from m31clusters.utils._io import atomic_path, atomic_paths
from m31clusters.utils._tables import table_skycoord


def test_table_skycoord_variants():
    c = SkyCoord([10.5, 359.9], [41.0, -2.5], unit="deg")
    t = Table({"coord": c, "x": [1, 2]})
    assert table_skycoord(t) is t["coord"]
    t2 = Table({"ra": [10.5, 359.9] * u.deg, "dec": [41.0, -2.5] * u.deg})
    assert table_skycoord(t2).separation(c).max() < 1e-9 * u.deg
    t3 = Table({"RAdeg": [10.5, 359.9], "DEdeg": [41.0, -2.5]})
    assert table_skycoord(t3).separation(c).max() < 1e-9 * u.deg
    # CDS sexagesimal, blank DE- means +
    ra_h = c.ra.hms
    dec = c.dec.signed_dms
    t4 = Table({
        "RAh": ra_h.h, "RAm": ra_h.m, "RAs": ra_h.s,
        "DE-": np.where(dec.sign < 0, "-", " "),
        "DEd": dec.d, "DEm": dec.m, "DEs": dec.s,
    })
    assert table_skycoord(t4).separation(c).max() < 1e-6 * u.arcsec


def test_table_skycoord_errors():
    with pytest.raises(TypeError, match="Table"):
        table_skycoord([1, 2])
    with pytest.raises(KeyError, match="no positions found"):
        table_skycoord(Table({"a": [1]}))
    with pytest.raises(KeyError, match="not in table"):
        table_skycoord(Table({"a": [1]}), column="coord")
    with pytest.raises(ValueError, match="first at row 1"):
        table_skycoord(Table({"ra": [1.0, np.nan], "dec": [2.0, 3.0]}))


def test_atomic_path_no_clobber(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("original")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_path(p) as tmp:
            pass
    with pytest.raises(RuntimeError):
        with atomic_path(p, overwrite=True) as tmp:
            with open(tmp, "w") as f:
                f.write("partial")
            raise RuntimeError("boom")
    assert p.read_text() == "original"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]
    with atomic_path(p, overwrite=True) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert p.read_text() == "new"


def _write(tmps, texts):
    for tmp, text in zip(tmps, texts, strict=True):
        with open(tmp, "w") as f:
            f.write(text)


def test_atomic_paths_restore_on_failed_replace(tmp_path, monkeypatch):
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text("old")
    os.chmod(old, 0o640)
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("boom")
        return real(src, dst)

    # new.txt is created first, then old.txt fails: new.txt is removed again.
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="boom"):
        with atomic_paths([new, old], overwrite=True) as tmps:
            _write(tmps, ["n", "o"])
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert old.read_text() == "old" and os.stat(old).st_mode & 0o777 == 0o640
    with atomic_paths([old, new], overwrite=True) as tmps:
        _write(tmps, ["o2", "n2"])
    assert (old.read_text(), new.read_text()) == ("o2", "n2")
    assert os.stat(old).st_mode & 0o777 == 0o640


def test_atomic_paths_refuse_before_writing(tmp_path):
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError, match="'.*b' already exists"):
        with atomic_paths([tmp_path / "a", tmp_path / "b"]):
            raise AssertionError("not reached")
    with pytest.raises(ValueError, match="distinct"):
        with atomic_paths([tmp_path / "a", tmp_path / "." / "a"]):
            raise AssertionError("not reached")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with atomic_paths([tmp_path / "a", tmp_path / "no" / "c"]):
            raise AssertionError("not reached")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_path_mode_follows_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "x") as tmp:
            _write([tmp], ["x"])
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "x").st_mode & 0o777 == mode
