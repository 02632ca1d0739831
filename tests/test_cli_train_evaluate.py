"""The ``m31clusters train`` and ``m31clusters evaluate`` subcommands, through subprocess."""

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table


def _cli(*args, cwd=None):
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "jax")
    return subprocess.run([sys.executable, "-m", "m31clusters", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    from test_training import _field_with_clusters

    sim, _ = _field_with_clusters(tmp_path_factory.mktemp("field"), n=20)
    return sim


def _candidates(sim, path):
    """A candidate list: 4 true clusters, 1 twice, and 3 stars, written as ECSV."""
    t = sim.truth[sim.truth["on_ccd"]]
    cl = t[(t["kind"] == "cluster") & (t["gmag"] < 21)][:4]
    st = t[(t["kind"] == "star") & (t["gmag"] < 20)][:3]
    rows = Table({"ra": np.r_[cl["ra"], cl["ra"][:1] + 1e-4, st["ra"]] * u.deg,
                  "dec": np.r_[cl["dec"], cl["dec"][:1], st["dec"]] * u.deg,
                  "gmag": np.r_[cl["gmag"], cl["gmag"][:1], st["gmag"]]})
    rows.write(path, overwrite=True)
    return rows


def test_evaluate(field, tmp_path):
    from m31clusters.evaluation import evaluate_catalog

    cands = _candidates(field, tmp_path / "cands.ecsv")
    out = _cli("evaluate", tmp_path / "cands.ecsv", field.truth_path, "--table",
               tmp_path / "ev.ecsv", "--plot", tmp_path / "ev.png", "--quiet")
    assert out.returncode == 0, out.stderr
    ev = evaluate_catalog(cands, Table.read(field.truth_path))
    assert f"purity {ev.purity:.3f}" in out.stdout
    assert f"completeness {ev.completeness:.3f}" in out.stdout
    written = Table.read(tmp_path / "ev.ecsv")
    assert np.array_equal(written["n_correct"], ev.summary["n_correct"])
    assert written["n_correct"][0] == 4 and written["n_candidates"][0] == 8
    assert (tmp_path / "ev.png").read_bytes()[:4] == b"\x89PNG"

def _main(capsys, *args):
    """The same command line in this process (for the quick error paths)."""
    from m31clusters.cli import main

    try:
        status = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        status = exc.code
    return status, capsys.readouterr()


def test_evaluate_bad_input(field, tmp_path, capsys):
    out = _cli("evaluate", tmp_path / "missing.ecsv", field.truth_path)
    assert out.returncode == 1
    assert out.stderr.startswith("m31clusters evaluate: error: candidate catalogue")
    assert len(out.stderr.strip().splitlines()) == 1
    _candidates(field, tmp_path / "cands.ecsv")
    status, err = _main(capsys, "evaluate", tmp_path / "cands.ecsv", "nosuchlist")
    assert status == 1 and "'nosuchlist' does not exist" in err.err
    status, err = _main(capsys, "evaluate", tmp_path / "cands.ecsv", field.truth_path,
                        "--radius", "x")
    assert status == 2
    # no overwrite without --overwrite: one line, exit 1
    (tmp_path / "ev.ecsv").write_text("keep me")
    status, err = _main(capsys, "evaluate", tmp_path / "cands.ecsv", field.truth_path,
                        "--table", tmp_path / "ev.ecsv")
    assert status == 1 and err.err.startswith("m31clusters evaluate: error: ")
    assert "already exists" in err.err and len(err.err.strip().splitlines()) == 1
    assert (tmp_path / "ev.ecsv").read_text() == "keep me"


def test_train(field, tmp_path, capsys):
    from m31clusters.classifier import ClusterClassifier

    model = tmp_path / "model.zip"
    args = ["train", "--images", field.images["g"], field.images["i"],
            "--sources", field.catalog_path, "--labels", field.truth_path, "--out", model,
            "--architecture", "simple", "--size", "16", "--epochs", "1", "--hard-epochs", "1",
            "--mag-limit", "23", "--tile-size", "20", "--splits", "0.6", "0.4", "0",
            "--seed", "1", "--table", tmp_path / "ts.ecsv", "--quiet"]
    out = _cli(*args)
    assert out.returncode == 0, out.stderr
    assert "training set: train" in out.stdout and "threshold" in out.stdout
    clf = ClusterClassifier.load(model)
    assert clf.input_shape == (16, 16, 2) and 0 <= clf.threshold <= 1
    ts = Table.read(tmp_path / "ts.ecsv")
    assert set(ts["split"]) == {"train", "val"} and set(ts["label"]) == {0, 1}
    # the model file exists now: refused without --overwrite
    status, err = _main(capsys, *args)
    assert status == 1 and "already exists" in err.err


def test_train_bad_input(field, tmp_path, capsys):
    far = Table({"ra": [1.0, 1.1, 1.2] * u.deg, "dec": [1.0, 1.1, 1.0] * u.deg})
    far.write(tmp_path / "far.ecsv")
    status, err = _main(capsys, "train", "--images", field.images["g"], field.images["i"],
                        "--sources", field.catalog_path, "--labels", tmp_path / "far.ecsv",
                        "--out", tmp_path / "m.zip", "--quiet")
    assert status == 1
    assert err.err.startswith("m31clusters train: error: none of the 3 positives falls on "
                              "the g images")
    assert len(err.err.strip().splitlines()) == 1
    assert not (tmp_path / "m.zip").exists()
    status, err = _main(capsys, "train", "--images", tmp_path / "no_g.fit", field.images["i"],
                        "--sources", field.catalog_path, "--labels", "phat", "--out",
                        tmp_path / "m.zip")
    assert status == 1 and "g image" in err.err
    status, err = _main(capsys, "train", "--images", field.images["g"], field.images["i"],
                        "--out", "m.zip")
    assert status == 2 and "--labels" in err.err


def test_train_thinned_with_flux_normalization(field, tmp_path, capsys):
    from astropy.io import fits

    from m31clusters.classifier import ClusterClassifier
    from m31clusters.cutout import zeropoint_scales

    model, table = tmp_path / "model.zip", tmp_path / "ts.ecsv"
    common = ["--sources", field.catalog_path, "--labels", field.truth_path,
              "--architecture", "simple", "--size", "16", "--epochs", "1", "--hard-epochs", "0",
              "--mag-limit", "23", "--tile-size", "20", "--splits", "0.6", "0.4", "0",
              "--seed", "1", "--quiet"]
    status, _ = _main(capsys, "train", "--images", field.images["g"], field.images["i"],
                      "--out", model, "--table", table, "--max-negatives", "5",
                      "--normalization", "asinh_flux", "--flux-scale", "40", *common)
    assert status == 0
    ts = Table.read(table)
    for split in ("train", "val"):
        sel = ts["split"] == split
        assert np.sum(ts["label"][sel] == 0) == 5 and np.sum(ts["label"][sel] == 1) >= 1
    assert ts.meta["n_thinned"] > 0
    clf = ClusterClassifier.load(model)
    zps = {b: fits.getheader(field.images[b], 1)["MAGZPT"] for b in "gi"}
    assert clf.normalization["method"] == "asinh_flux"
    np.testing.assert_allclose(clf.normalization["scale"], zeropoint_scales(zps, scale=40))
    # bad input: a negative number; images without a zero point
    status, err = _main(capsys, "train", "--images", field.images["g"], field.images["i"],
                        "--out", tmp_path / "m2.zip", "--max-negatives", "-1", *common)
    assert status == 1 and "--max-negatives must be >= 0, got -1" in err.err
    bare = {}
    for b in "gi":
        with fits.open(field.images[b]) as hdul:
            for hdu in hdul:
                for key in ("ZP", "MAGZP", "PHOTZP", "MAGZPT", "ZEROPOINT"):
                    hdu.header.remove(key, ignore_missing=True, remove_all=True)
            bare[b] = tmp_path / f"bare_{b}.fit"
            hdul.writeto(bare[b])
    status, err = _main(capsys, "train", "--images", bare["g"], bare["i"],
                        "--out", tmp_path / "m3.zip", "--normalization", "asinh_flux", *common)
    assert status == 1
    assert "asinh_flux needs the zero point of the g image" in err.err
    assert not (tmp_path / "m2.zip").exists() and not (tmp_path / "m3.zip").exists()
