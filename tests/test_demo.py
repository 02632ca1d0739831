import subprocess
import sys

import numpy as np
import pytest
from astropy.io import ascii
from regions import Regions

from m31clusters.demo import DEMO_FIELD, demo_model_path, main, run_demo
from m31clusters.exceptions import BandError
from m31clusters.geometry import pandas_fields


def test_shipped_model_loads():
    from m31clusters.classifier import ClusterClassifier

    clf = ClusterClassifier.load(demo_model_path())
    assert clf.bands == ("g", "i")
    assert 0 < clf.threshold < 1
    # validation metrics recorded by the training script at the survey's base rate
    # (scripts/train_demo_model.py; about 1 cluster per 50 sources with g < 21 within
    # 30 kpc: 68 clusters / 3621 sources on the 17 fields there)
    assert clf.calibration["base_rate"] == clf.metrics["base_rate"]
    assert 0.01 < clf.calibration["base_rate"] < 0.03
    # the brightness- and colour-keeping normalisation, scales from the zero points
    assert clf.normalization["method"] == "asinh_flux"
    assert clf.metrics["roc_auc"] >= 0.9


def test_demo_field_within_30kpc():
    fields = pandas_fields()
    assert fields["Rproj"][fields["PAndAS"] == DEMO_FIELD][0] < 30


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, n_ccds=1, ccd_shape=(768, 768), seed=5)  # 2 candidates


def test_demo_outputs(demo):
    from m31clusters.classifier import ClusterClassifier

    files = demo.files
    for key in ("readme", "data", "regions", "montage", "sources"):
        assert files[key].is_file(), key
    assert files["montage"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the CDS table reads back with astropy's own reader
    back = ascii.read(files["data"], readme=files["readme"], format="cds")
    assert len(back) == len(demo.candidates)
    assert len(demo.sources) > 50
    assert len(back) > 0, "this seed gives candidates; the zero case has its own test"
    np.testing.assert_allclose(back["gmag"], demo.candidates["gmag"], atol=5e-4)
    assert np.all(back["gmag"] < 21)
    assert np.all(back["Rproj"] < 30)
    regs = Regions.read(files["regions"], format="ds9")
    assert len(regs) == len(back)
    # every candidate passed the classifier's threshold, and lies in the demo's field area
    threshold = ClusterClassifier.load(demo_model_path()).threshold
    assert np.all(np.asarray(demo.candidates["Conf"]) >= threshold)
    assert set(np.unique(demo.sources["PAndAS"])) <= {DEMO_FIELD, *range(200, 300)}
    # cuts before work: only sources passing the magnitude and radius cuts were classified
    passed = np.asarray(demo.sources["passed_cuts"])
    conf_given = ~np.ma.getmaskarray(demo.sources["Conf"])
    np.testing.assert_array_equal(conf_given & ~passed, False)
    assert passed.sum() < len(passed)


def test_demo_does_not_overwrite(demo):
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo(demo.out_dir, n_ccds=1, ccd_shape=(256, 256), progress=False)


def test_demo_bad_images(tmp_path):
    with pytest.raises(BandError, match="missing"):
        run_demo(tmp_path, images={"g": "x.fits"}, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_demo(tmp_path, images={"g": tmp_path / "g.fits", "i": tmp_path / "i.fits"},
                 progress=False)


def test_demo_cli_help():
    out = subprocess.run([sys.executable, "-m", "m31clusters.demo", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--images" in out.stdout and "--out" in out.stdout
    assert "usage: m31clusters demo" in out.stdout


def test_demo_cli_runs_on_user_images(demo, tmp_path, capsys):
    """The --images path: the demo's own simulated stacks given back as user files."""
    rc = main(["--out", str(tmp_path), "--images", str(demo.images["g"]),
               str(demo.images["i"]), "--quiet"])
    assert rc == 0
    assert "candidates" in capsys.readouterr().out
    assert (tmp_path / "ReadMe").is_file()
    assert not (tmp_path / "images").exists()  # nothing simulated


# --------------------------------------------------------------------------- issue 13


def test_demo_zero_candidates_is_a_normal_result(demo, tmp_path):
    """Nothing passes the cuts: sources first, then a valid empty catalogue, exit 0."""
    from m31clusters.catalog import Catalog

    out = tmp_path / "zero"
    res = _cli("demo", "--out", str(out), "--images", str(demo.images["g"]),
               str(demo.images["i"]), "--mag-limit", "5", "--quiet")
    assert res.returncode == 0, res.stderr
    assert " 0 candidates" in res.stdout
    sources = ascii.read(out / "sources.ecsv", format="ecsv")
    # (deblending follows the magnitude limit, so the source list can be shorter than
    # the default run's; every source is written and none passed the cuts)
    assert 0 < len(sources) <= len(demo.sources) and not np.any(sources["passed_cuts"])
    cat = Catalog.read_cds(out / "ReadMe", out / "candidates.dat")
    assert len(cat) == 0 and "Conf" in cat.colnames
    assert (out / "candidates.reg").read_text().strip() == ""
    assert (out / "candidates.png").read_bytes()[:4] == b"\x89PNG"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "m31clusters", *args], capture_output=True,
                          text=True)


def _bad_images(tmp_path, demo):
    """(name, g, i, expected message) of the images the demo must refuse with one line."""
    from astropy.io import fits

    g, i = str(demo.images["g"]), str(demo.images["i"])
    truncated = tmp_path / "truncated_g.fit"
    data = demo.images["g"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes_g.fit"
    text.write_text("this is not a FITS file\n")
    empty = tmp_path / "empty_g.fit"
    empty.write_bytes(b"")
    nowcs = tmp_path / "nowcs_g.fit"
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(nowcs)
    cube = tmp_path / "cube_g.fit"
    fits.PrimaryHDU(np.zeros((3, 64, 64), np.float32)).writeto(cube)
    far = tmp_path / "far_g.fit"
    with fits.open(g) as hdul:
        hdul[1].header["CRVAL1"] += 5.0  # 5 degrees away from the i image
        hdul.writeto(far)
    return [
        ("truncated", str(truncated), i, "truncated_g.fit', extension 1: the data are truncated"),
        ("text", str(text), i, "notes_g.fit' is not a readable FITS file"),
        ("zero-byte", str(empty), i, "empty_g.fit' is empty (0 bytes)"),
        ("no WCS", str(nowcs), i, "nowcs_g.fit', extension 0"),
        ("3-D", str(cube), i, "cube_g.fit', extension 0: a 3-D image (3, 64, 64)"),
        ("same file", i, i, "is given for the g and the i image"),
        ("no overlap", str(far), i, "no g coverage"),
        ("directories", str(tmp_path), str(tmp_path), "is a directory"),
    ]


def test_demo_refuses_bad_images_with_one_line(demo, tmp_path):
    for name, g, i, message in _bad_images(tmp_path, demo):
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        res = _cli("demo", "--out", str(out), "--images", g, i, "--quiet")
        assert res.returncode == 1, (name, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("m31clusters demo: error: "), \
            (name, res.stderr)
        assert message in lines[0], (name, lines[0])
        assert not out.exists(), name  # refused before anything is written


def test_demo_out_is_a_file(demo, tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("keep me")
    res = _cli("demo", "--out", str(path), "--images", str(demo.images["g"]),
               str(demo.images["i"]), "--quiet")
    assert res.returncode == 1
    assert res.stderr.strip() == (f"m31clusters demo: error: output directory {str(path)!r} "
                                  "is a file, not a directory")
    assert path.read_text() == "keep me"
