"""The ``m31clusters inspect`` subcommand (page mode and ``--combine``)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from m31clusters.catalog import Catalog
from m31clusters.cli import main
from m31clusters.cutout import Cutout
from m31clusters.geometry import M31_CENTER
from m31clusters.inspection import catalog_identity, combine_scores, write_scores


@pytest.fixture
def candidates(tmp_path):
    """A 5-candidate CDS catalogue near M31's centre and g, i images around it."""
    rng = np.random.default_rng(0)
    n = 5
    coords = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                              rng.uniform(0.001, 0.004, n) * u.deg)
    cat = Catalog.from_candidates(coords, gmag=rng.uniform(17, 20, n), e_gmag=[0.01] * n,
                                  imag=rng.uniform(16, 19, n), e_imag=[0.02] * n,
                                  conf=[0.9] * n)
    readme, _ = cat.write_cds(tmp_path / "ReadMe", title="Candidates", authors=["Doe J."])
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [M31_CENTER.ra.deg, M31_CENTER.dec.deg]
    w.wcs.crpix = [200.5, 200.5]
    w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    images = []
    for band in ("g", "i"):
        path = tmp_path / f"{band}.fits"
        fits.PrimaryHDU(rng.normal(10, 1, (400, 400)).astype("f4"),
                        header=w.to_header()).writeto(path)
        images.append(str(path))
    return cat, readme, images


def test_inspect_writes_a_page_from_images(tmp_path, candidates, capsys):
    cat, readme, (g, i) = candidates
    page = tmp_path / "ann.html"
    status = main(["inspect", str(readme), "--inspector", "Ann", "--images", g, i, "--size",
                   "16", "--out", str(page), "--stretch", "linear", "--quiet"])
    assert status == 0
    assert f"page for Ann (5 candidates): {page}" in capsys.readouterr().out
    text = page.read_text()
    assert catalog_identity(cat) in text and '"stretch":"linear"' in text
    assert text.count('"neigh_bin":3') == 1
    # Never over an existing page without --overwrite.
    assert main(["inspect", str(readme), "--inspector", "Ann", "--images", g, i,
                 "--out", str(page), "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_inspect_writes_a_page_from_a_cutout_file(tmp_path, candidates):
    cat, readme, _ = candidates
    cutout = Cutout(np.random.default_rng(1).normal(size=(5, 12, 12, 2)).astype("f4"))
    cpath = tmp_path / "stamps.fits"
    cutout.write(cpath)
    page = tmp_path / "bob.html"
    assert main(["inspect", str(readme), "--inspector", "Bob", "--cutouts", str(cpath),
                 "--out", str(page), "--quiet"]) == 0
    assert '"size":[12,12]' in page.read_text()


def test_inspect_combine_writes_cds_and_report(tmp_path, candidates, capsys):
    cat, readme, _ = candidates
    ident = catalog_identity(cat)
    a_scores, b_scores = [2, 2, 1, 0, 2], [2, 1, 1, 0, 0]
    a = write_scores(tmp_path / "scores_Ann.ecsv", cat["Seq"], a_scores, inspector="Ann",
                     catalog_id=ident, n_candidates=5)
    b = write_scores(tmp_path / "scores_Bob.ecsv", cat["Seq"], b_scores, inspector="Bob",
                     catalog_id=ident, n_candidates=5)
    out = tmp_path / "final"
    status = main(["inspect", str(readme), "--combine", str(a), str(b), "--out", str(out),
                   "--report", str(tmp_path / "report.txt"), "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "Cohen's kappa" in printed and "disagreements: 2" in printed
    assert (tmp_path / "report.txt").read_text().startswith("5 candidates; scored by Ann: 5")
    back = Catalog.read_cds(out / "ReadMe")
    score, kept = combine_scores(a_scores, b_scores)
    assert back["Seq"].tolist() == [s for s, k in zip(cat["Seq"], kept, strict=True) if k]
    assert back["Score"].tolist() == [s for s, k in zip(score.tolist(), kept, strict=True) if k]
    assert "Ann" in (out / "ReadMe").read_text()
    # --keep 4: only the candidates both are sure of.
    assert main(["inspect", str(readme), "--combine", str(a), str(b), "--out",
                 str(tmp_path / "sure"), "--keep", "4", "--quiet"]) == 0
    assert Catalog.read_cds(tmp_path / "sure" / "ReadMe")["Seq"].tolist() == [1]


def test_inspect_combine_bad_file_is_one_line_and_writes_nothing(tmp_path, candidates, capsys):
    cat, readme, _ = candidates
    ident = catalog_identity(cat)
    a = write_scores(tmp_path / "a.ecsv", [1, 2], [2, 2], inspector="Ann", catalog_id=ident,
                     n_candidates=5)
    b = write_scores(tmp_path / "b.ecsv", [1, 2], [2, 2], inspector="Ann", catalog_id=ident,
                     n_candidates=5)
    before = readme.read_bytes()
    status = main(["inspect", str(readme), "--combine", str(a), str(b), "--out",
                   str(tmp_path / "final"), "--quiet"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("m31clusters inspect: error: score files")
    assert "both by inspector 'Ann'" in err[0]
    assert not (tmp_path / "final").exists() and readme.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: CATALOG"),
        (["cat.ecsv"], "--inspector NAME is required"),
        (["cat.ecsv", "--inspector", "Ann"], "give the stamps"),
    ],
)
def test_inspect_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
