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
    assert clf.metrics["f1"] >= 0.8  # test-set metrics recorded by the training script


def test_demo_field_within_30kpc():
    fields = pandas_fields()
    assert fields["Rproj"][fields["PAndAS"] == DEMO_FIELD][0] < 30


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, n_ccds=1, ccd_shape=(768, 768), seed=3, progress=False)


def test_demo_outputs(demo):
    files = demo.files
    for key in ("readme", "data", "regions", "montage", "sources"):
        assert files[key].is_file(), key
    assert files["montage"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the CDS table reads back with astropy's own reader
    back = ascii.read(files["data"], readme=files["readme"], format="cds")
    assert len(back) == len(demo.candidates)
    assert len(demo.sources) > 50
    if len(back):
        np.testing.assert_allclose(back["gmag"], demo.candidates["gmag"], atol=5e-4)
        assert np.all(back["gmag"] < 21)
        assert np.all(back["Rproj"] < 30)
        regs = Regions.read(files["regions"], format="ds9")
        assert len(regs) == len(back)
    # every candidate passed the threshold and lies in the demo field
    assert np.all(demo.candidates["Conf"] >= 0)
    assert set(np.unique(demo.sources["PAndAS"])) <= {DEMO_FIELD, *range(200, 300)}


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


def test_demo_cli_runs_on_user_images(demo, tmp_path, capsys):
    """The --images path: the demo's own simulated stacks given back as user files."""
    rc = main(["--out", str(tmp_path), "--images", str(demo.images["g"]),
               str(demo.images["i"]), "--quiet"])
    assert rc == 0
    assert "candidates" in capsys.readouterr().out
    assert (tmp_path / "ReadMe").is_file()
    assert not (tmp_path / "images").exists()  # nothing simulated
