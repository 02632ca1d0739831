"""
Issue 13 (reliability) regression tests that the module tests do not hold.

* the mode of every file the library writes: ``0o666 & ~umask`` for a new
  file (what a plain ``open(path, "w")`` gives), the replaced file's mode
  with ``overwrite=True``, and a real replacement (a new inode: the write is
  atomic);
* the photometry cases of the issue: non-finite pixels never counted as
  valid, ``detect_sources(nsigma<=0)`` refused.
"""

import os
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.nddata import NDData
from astropy.table import Table
from astropy.wcs import WCS

from m31clusters import (
    M31_CENTER,
    Catalog,
    ClusterClassifier,
    Cutout,
    detect_sources,
    measure,
    read_pandas_ascd,
    run_survey,
    simulate_field,
    write_pandas_ascd,
)
from m31clusters.exceptions import CorruptFileError, NoWCSError, OffImageWarning
from m31clusters.inspection import (
    catalog_identity,
    inspection_montage,
    write_inspection_page,
    write_scores,
)
from m31clusters.io.cds import write_cds
from m31clusters.survey import write_products

CDS_KW = {"title": "Mode test", "authors": ["Doe J."], "year": 2026}


# --------------------------------------------------------------------------- inputs


def _catalog(n=3):
    rng = np.random.default_rng(0)
    coords = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                              rng.uniform(0.001, 0.003, n) * u.deg)
    return Catalog.from_candidates(coords, gmag=rng.uniform(17, 20, n), e_gmag=[0.01] * n,
                                   imag=rng.uniform(16, 19, n), e_imag=[0.02] * n,
                                   conf=np.round(rng.uniform(0.7, 1, n), 3),
                                   seq=np.arange(1, n + 1))


def _cutout(n=3, size=8):
    rng = np.random.default_rng(1)
    return Cutout(rng.normal(100, 5, (n, size, size, 2)).astype("f4"), bands=("g", "i"))


def _field_table(field):
    return Table({"coord": SkyCoord([10.0 + 0.1 * field], [41.0], unit="deg"),
                  "Conf": [0.5 + 0.1 * field]})


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A tiny simulated field (its ascd catalogue feeds write_pandas_ascd)."""
    out = tmp_path_factory.mktemp("sim")
    return simulate_field(248, n_ccds=1, ccd_shape=(96, 96), out_dir=out, seed=1)


# --------------------------------------------------------------------------- writers
# Each writer writes into directory *d* and returns every path it wrote.


def _w_cds(d, overwrite):
    return list(write_cds(Catalog(_catalog()), d / "ReadMe", overwrite=overwrite, **CDS_KW))


def _w_regions(d, overwrite):
    return [_catalog().write_regions(d / "c.reg", overwrite=overwrite)]


def _w_cutout_fits(d, overwrite):
    return [_cutout().write(d / "c.fits", overwrite=overwrite)]


def _w_cutout_hdf5(d, overwrite):
    pytest.importorskip("h5py")
    return [_cutout().write(d / "c.h5", overwrite=overwrite)]


def _w_classifier(d, overwrite):
    clf = ClusterClassifier("simple", input_shape=(8, 8, 2), seed=0)
    clf.save(d / "model.zip", overwrite=overwrite)  # returns None (see the issue-13 audit)
    return [d / "model.zip"]


def _w_survey(d, overwrite):
    run = run_survey(_field_table, [1, 2], d / "run", scheduler="synchronous",
                     overwrite=overwrite)
    return [run.field_path(1), run.field_path(2), run.manifest_path]


def _w_products(d, overwrite):
    from mocpy import MOC

    moc = MOC.from_cone(M31_CENTER.ra, M31_CENTER.dec, radius=0.1 * u.deg, max_depth=10)
    files = write_products(_catalog(), d / "products", moc=moc, title="Mode test",
                           abstract="Files of the search.", overwrite=overwrite)
    assert sorted(p.name for p in files) == ["ReadMe", "candidates.dat", "candidates.png",
                                             "candidates.reg", "coverage.fits"]
    return files


def _w_page(d, overwrite):
    return [write_inspection_page(_catalog(), _cutout(), d / "ann.html", inspector="Ann",
                                  size=8, overwrite=overwrite)]


def _w_scores(d, overwrite):
    cat = _catalog()
    return [write_scores(d / "scores_Ann.ecsv", cat["Seq"], [2, 1, 0], inspector="Ann",
                         catalog_id=catalog_identity(cat), n_candidates=3,
                         overwrite=overwrite)]


def _w_montage(d, overwrite):
    path = d / "montage.png"
    inspection_montage(_cutout(), path=path, overwrite=overwrite)
    return [path]


def _w_simulate(d, overwrite):
    (d / "sim").mkdir(exist_ok=True)
    f = simulate_field(248, n_ccds=1, ccd_shape=(96, 96), out_dir=d / "sim", seed=2,
                       overwrite=overwrite)
    return [f.images["g"], f.images["i"], f.truth_path, f.catalog_path]


WRITERS = {
    "write_cds": _w_cds,
    "write_regions": _w_regions,
    "Cutout.write_fits": _w_cutout_fits,
    "Cutout.write_hdf5": _w_cutout_hdf5,
    "ClusterClassifier.save": _w_classifier,
    "run_survey": _w_survey,
    "write_products": _w_products,
    "write_inspection_page": _w_page,
    "write_scores": _w_scores,
    "inspection_montage": _w_montage,
    "simulate_field": _w_simulate,
}


@pytest.fixture
def umask():
    """Set the process umask for the test (restored afterwards)."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.mark.parametrize("mask", [0o022, 0o027])
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_gives_the_mode_of_open_and_keeps_it_on_overwrite(
        tmp_path, umask, name, mask):
    writer = WRITERS[name]
    umask(mask)
    paths = writer(tmp_path, False)
    with open(tmp_path / "plain.txt", "w"):
        pass
    assert _mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert paths and all(os.path.isfile(p) for p in paths)
    for path in paths:
        assert _mode(path) == 0o666 & ~mask, (name, path)
    # A replacement keeps whatever mode the user gave the old file.
    # (A marker appended to each old file shows that it was really replaced.)
    # (The JSON survey manifest is rewritten on every run: no marker there.)
    old = {}
    for path in map(Path, paths):
        os.chmod(path, 0o604)
        if path.suffix != ".json":
            with open(path, "ab") as f:
                f.write(b"\nold file\n")
        old[str(path)] = path.read_bytes()
    again = writer(tmp_path, True)
    assert sorted(map(str, again)) == sorted(map(str, paths))
    for path in map(Path, again):
        assert _mode(path) == 0o604, (name, path)
        if path.suffix != ".json":
            assert path.read_bytes() != old[str(path)], (name, path, "not replaced")
    # Nothing left behind: no temporaries, no staging directories.
    leftovers = [p for p in tmp_path.rglob(".*") if not p.name.startswith(".lock")]
    assert leftovers == [], leftovers


@pytest.mark.slow
def test_demo_outputs_mode(tmp_path, umask):
    """run_demo's files (simulated images, sources, CDS pair, regions, montage)."""
    from m31clusters.demo import run_demo

    umask(0o027)
    res = run_demo(tmp_path / "a", n_ccds=1, ccd_shape=(256, 256), seed=0)
    written = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(written) >= 9  # 5 products + g, i, truth and ascd of the simulation
    assert {p: _mode(p) for p in written} == {p: 0o640 for p in written}
    for path in res.files.values():
        os.chmod(path, 0o604)
    again = run_demo(tmp_path / "a", images=res.images, overwrite=True)
    assert {k: _mode(p) for k, p in again.files.items()} == {k: 0o604 for k in res.files}
    assert not [p for p in (tmp_path / "a").rglob(".*")]


def test_write_pandas_ascd_mode(tmp_path, umask, sim):
    table = read_pandas_ascd(sim.catalog_path)
    umask(0o027)
    path = write_pandas_ascd(table, tmp_path / "m248p.ascd")
    assert _mode(path) == 0o640
    os.chmod(path, 0o604)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_pandas_ascd(table, path)
    inode = os.stat(path).st_ino
    assert write_pandas_ascd(table, path, overwrite=True) == path
    assert _mode(path) == 0o604 and os.stat(path).st_ino != inode
    assert len(read_pandas_ascd(path)) == len(table)


# --------------------------------------------------------------------------- photometry


def _image(seed=0, n=128):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [M31_CENTER.ra.deg, M31_CENTER.dec.deg]
    w.wcs.crpix = [n / 2, n / 2]
    w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 3.0, (n, n))
    yy, xx = np.mgrid[:n, :n]
    for x0, y0 in ((40, 40), (90, 80)):
        data += 3000 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 8.0)
    return data, w


@pytest.mark.parametrize("nsigma", [-1, 0, np.nan, np.inf])
def test_detect_sources_refuses_non_positive_nsigma(nsigma):
    data, w = _image()
    with pytest.raises(ValueError, match=r"nsigma must be a positive number"):
        detect_sources(NDData(data, wcs=w), nsigma=nsigma, box_size=32)


def test_infinite_pixels_are_never_valid_in_photometry():
    data, w = _image()
    clean = detect_sources(NDData(data, wcs=w), box_size=32)
    assert len(clean) == 2
    bad = data.copy()
    bad[5:8, 5:8] = np.inf  # far from the sources: no new detection there
    bad[120, 10] = -np.inf
    found = detect_sources(NDData(bad, wcs=w), box_size=32)
    assert len(found) == 2
    for col in found.colnames:
        if getattr(found[col], "dtype", np.dtype(int)).kind == "f":
            assert np.all(np.isfinite(found[col])), col
    # An infinite pixel inside an aperture: a missing pixel (NaN, flagged),
    # like NaN, never an infinite or finite-looking magnitude.
    positions = SkyCoord(w.pixel_to_world([40, 90], [40, 80]))
    ref = measure({"g": NDData(data, wcs=w, meta={"ZP": 30.0})}, positions)
    assert np.all(np.isfinite(ref["gmag"]))
    for value in (np.inf, -np.inf, np.nan):
        holed = data.copy()
        holed[40, 41] = value
        with pytest.warns(OffImageWarning, match="touch missing pixels"):
            got = measure({"g": NDData(holed, wcs=w, meta={"ZP": 30.0})}, positions)
        assert np.isnan(got["gmag"][0]) and got["gflag"][0] != 0, value
        assert got["gmag"][1] == ref["gmag"][1] and got["gflag"][1] == ref["gflag"][1]


@pytest.mark.parametrize("cd", [np.zeros((2, 2)), np.full((2, 2), np.nan),
                                [[1e-5, 2e-5], [2e-5, 4e-5]]])
def test_degenerate_wcs_is_refused_by_photometry(cd):
    # Bug 1 on the photometry side: no cdfix to the identity there either.
    data, w = _image()
    w.wcs.cd = cd
    with pytest.raises(NoWCSError, match="degenerate WCS"):
        detect_sources(NDData(data, wcs=w), box_size=32)
    with pytest.raises(NoWCSError, match="band 'g' image has a degenerate WCS"):
        measure({"g": NDData(data, wcs=w, meta={"ZP": 30.0})},
                SkyCoord([M31_CENTER.ra], [M31_CENTER.dec]))


# --------------------------------------------------------------------------- cutout files


def test_hdf5_file_with_repeated_bands_is_refused(tmp_path):
    # Bug 2 on the HDF5 reading path (the FITS one is in test_cutout_io).
    h5py = pytest.importorskip("h5py")
    path = _cutout().write(tmp_path / "c.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["bands"] = '["g", "g"]'
    with pytest.raises(CorruptFileError, match=r"c\.h5.*repeats \['g'\]"):
        Cutout.read(path)
