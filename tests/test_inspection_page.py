"""
Tests of the HTML inspection page, in a real (headless Chromium) browser.

The browser tests are marked ``browser``; they skip, saying why, only where
no Chromium and chromedriver are installed (``.ci/run`` installs them and
sets ``M31CLUSTERS_REQUIRE_BROWSER=1``, which turns that skip into a failure).
"""

import itertools
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from m31clusters.catalog import Catalog
from m31clusters.cutout import Cutout
from m31clusters.geometry import M31_CENTER
from m31clusters.inspection import (
    catalog_identity,
    cohen_kappa,
    combine_inspections,
    combine_scores,
    composite,
    read_scores,
    render_bands,
    score_file_name,
    write_inspection_page,
)

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


def _find(*names):
    for name in names:
        found = shutil.which(name) or (os.path.exists(f"/usr/bin/{name}") and f"/usr/bin/{name}")
        if found:
            return found
    return None


def _no_browser(reason):
    if os.environ.get("M31CLUSTERS_REQUIRE_BROWSER"):
        pytest.fail(f"M31CLUSTERS_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by selenium, with a fresh profile and download folder."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed (pip install selenium)")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if binary is None or driver_path is None:
        _no_browser("no Chromium/chromedriver installed "
                    "(apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="m31clusters-chromium-")
    downloads = Path(profile) / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(driver_path))
    drv.downloads = downloads
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _keys(drv, keys):
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(drv)
    for key in keys:
        chain.send_keys(key)
    chain.perform()


def _state(drv):
    return drv.execute_script("return window.m31State()")


def _open(drv, path):
    drv.get(Path(path).resolve().as_uri())
    _wait(drv, "return window.m31Timing && window.m31Timing.firstStamp !== null")
    errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _wait(drv, script, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = drv.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _catalog(n=6, seed=0, seq_start=1):
    rng = np.random.default_rng(seed)
    coords = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                              rng.uniform(0.001, 0.003, n) * u.deg)
    names = ["B001", None, "B017"] + [None] * (n - 3)
    return Catalog.from_candidates(coords, gmag=rng.uniform(17, 20, n), e_gmag=[0.01] * n,
                                   imag=rng.uniform(16, 19, n), e_imag=[0.02] * n,
                                   conf=np.round(rng.uniform(0.7, 1, n), 3),
                                   seq=np.arange(seq_start, seq_start + n),
                                   names={"RBC": names[:n]})


def _page_data(page):
    """The JSON data and the stamps (from the m31Stamps blocks) of a written page."""
    import json

    text = Path(page).read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="m31-data" type="application/json">(.*?)</script>',
                                text, re.S)[1])
    stamps, neigh = [], []
    for args in re.findall(r"<script>m31Stamps\((.*?)\);</script>", text):
        start, block, wide = json.loads("[" + args + "]")
        assert start == len(stamps)  # blocks in order, none missing
        stamps += block
        neigh += wide or []
    data["stamps"], data["neigh"] = stamps, neigh or None
    return data


def _cutout(n=6, size=16, seed=1):
    rng = np.random.default_rng(seed)
    data = rng.normal(100, 5, (n, size, size, 2)).astype("f4")
    y, x = np.mgrid[:size, :size] - size / 2
    data[..., 1] += (400 * np.exp(-(x**2 + y**2) / 6.0)).astype("f4")  # red blob
    mask = np.zeros(data.shape, bool)
    mask[0, :3, :, 0] = True  # three bottom rows of g missing in stamp 0
    return Cutout(data, bands=("g", "i"), mask=mask)


# --------------------------------------------------------------------------- without a browser


def test_page_is_self_contained(tmp_path):
    cat = _catalog()
    page = write_inspection_page(cat, _cutout(), tmp_path / "ann.html", inspector="Ann",
                                 neighbourhood=_cutout(size=48, seed=2), neighbourhood_bin=3)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # No network: nothing fetched from a URL, no external script/style/image.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)[a-z]+:""", text)
    assert "http://" not in text and "https://" not in text
    assert "default-src 'none'" in text  # the page's CSP forbids any fetch
    assert catalog_identity(cat) in text
    assert (page.stat().st_mode & 0o777) == (0o666 & ~_umask())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_inspection_page(cat, _cutout(), page, inspector="Ann")


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_png_stamps_decode_to_rendered_bands(tmp_path):
    # The embedded PNGs hold the rendered (percentile + stretch) bands, north up,
    # with no-data pixels transparent: decode them with Pillow (matplotlib's PNG reader).
    image = pytest.importorskip("PIL.Image")
    import base64
    import io

    def decode(b64):
        img = image.open(io.BytesIO(base64.b64decode(b64)))
        return img.mode, np.asarray(img, dtype=float) / 255

    cut = _cutout(2)
    page = write_inspection_page(_catalog(2), cut, tmp_path / "p.html", inspector="Ann",
                                 stretch="sqrt")
    data = _page_data(page)
    rendered = render_bands(cut.data, ~cut.mask, stretch="sqrt")
    mode, g0 = decode(data["stamps"][0][0])
    assert mode == "LA" and g0.shape == (16, 16, 2)  # grey + alpha where pixels are missing
    expect = np.flipud(rendered[0, :, :, 0])
    np.testing.assert_array_equal(g0[..., 1] == 0, np.isnan(expect))
    good = ~np.isnan(expect)
    np.testing.assert_allclose(g0[..., 0][good], expect[good], atol=0.5 / 255 + 1e-6)
    mode, i1 = decode(data["stamps"][1][1])
    assert mode == "L"  # no missing pixels: plain grey
    np.testing.assert_allclose(i1, np.flipud(rendered[1, :, :, 1]), atol=0.5 / 255 + 1e-6)
    assert data["neigh"] is None


def test_page_from_images_cuts_stamps_and_neighbourhood(tmp_path):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [M31_CENTER.ra.deg, M31_CENTER.dec.deg]
    w.wcs.crpix = [150.5, 150.5]
    w.wcs.cdelt = [-0.187 / 3600, 0.187 / 3600]
    rng = np.random.default_rng(4)
    images = {b: fits.ImageHDU(rng.normal(10, 1, (300, 300)).astype("f4"),
                               header=w.to_header()) for b in ("g", "i")}
    cat = _catalog(3)
    page = write_inspection_page(cat, images, tmp_path / "p.html", inspector="Ann", size=20,
                                 neighbourhood=3)
    data = _page_data(page)
    assert data["meta"]["size"] == [20, 20]
    assert data["meta"]["neigh_size"] == [20, 20] and data["meta"]["neigh_bin"] == 3
    assert len(data["stamps"]) == len(data["neigh"]) == 3
    info = dict(data["cands"][0]["info"])
    assert info["g"].startswith(f"{cat['gmag'][0]:.3f} \u00b1 0.010")
    assert info["Conf"] == f"{cat['Conf'][0]:.3f}"
    assert data["cands"][0]["names"] == [["RBC", "B001"]]
    assert data["cands"][1]["names"] == []


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"inspector": ""}, ValueError, "inspector must be a name"),
        ({"inspector": "Ann,Bob"}, ValueError, "inspector must be a name"),
        ({"inspector": "Ann", "id_column": "ID"}, KeyError, "no id column 'ID'"),
        ({"inspector": "Ann", "stretch": "hist"}, ValueError, "stretch must be one of"),
        ({"inspector": "Ann", "neighbourhood": 3}, ValueError, "neighbourhood must be a Cutout"),
        ({"inspector": "Ann", "zoom": 0}, ValueError, "zoom must be"),
        ({"inspector": "Ann", "bands": ("g", "r")}, ValueError, "band 'r' is not in"),
    ],
)
def test_page_bad_input(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        write_inspection_page(_catalog(), _cutout(), tmp_path / "p.html", **kwargs)
    assert not list(tmp_path.iterdir())


def test_page_stamps_must_match_catalogue(tmp_path):
    with pytest.raises(ValueError, match="5 stamps for 6 catalogue rows"):
        write_inspection_page(_catalog(), _cutout(5), tmp_path / "p.html", inspector="Ann")
    cat = _catalog()
    cat["Seq"][2] = cat["Seq"][1]
    with pytest.raises(ValueError, match="id '2' repeats"):
        write_inspection_page(cat, _cutout(), tmp_path / "p.html", inspector="Ann")


# --------------------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_keys_score_undo_reload_and_export(browser, tmp_path):
    cat = _catalog(6)
    page = write_inspection_page(cat, _cutout(6), tmp_path / "ann.html", inspector="Ann Lee",
                                 neighbourhood=_cutout(6, size=48, seed=2))
    _open(browser, page)
    assert browser.find_element("id", "progress").text == "scored 0 of 6"
    assert _state(browser)["cur"] == 0
    _keys(browser, ["2", "1", "0"])
    state = _state(browser)
    assert state["cur"] == 3 and state["nScored"] == 3
    assert browser.find_element("id", "progress").text == "scored 3 of 6"
    assert browser.find_element("id", "position").text == "candidate 4 of 6"
    _keys(browser, ["u"])  # undo the 0 given to Seq 3
    state = _state(browser)
    assert state["cur"] == 2 and sorted(state["scores"]) == ["1", "2"]
    from selenium.webdriver.common.keys import Keys

    _keys(browser, [Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, "2", Keys.ARROW_LEFT])
    state = _state(browser)
    assert state["cur"] == 4 and {k: v[0] for k, v in state["scores"].items()} == \
        {"1": 2, "2": 1, "5": 2}
    # Reload: the scores come back from the browser's storage; the page opens at
    # the first unscored candidate (Seq 3).
    browser.refresh()
    _open(browser, page)
    state = _state(browser)
    assert {k: v[0] for k, v in state["scores"].items()} == {"1": 2, "2": 1, "5": 2}
    assert state["cur"] == 2
    assert browser.find_element("id", "progress").text == "scored 3 of 6"
    # A page rewritten for the same catalogue (another stretch) finds them too.
    page2 = write_inspection_page(cat, _cutout(6), tmp_path / "ann2.html", inspector="Ann Lee",
                                  stretch="linear")
    _open(browser, page2)
    assert _state(browser)["nScored"] == 3
    # Export: the download button writes scores_Ann_Lee.ecsv.
    browser.find_element("id", "b-export").click()
    target = browser.downloads / score_file_name("Ann Lee")
    end = time.monotonic() + 20
    while not target.exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert target.name == "scores_Ann_Lee.ecsv" and target.exists()
    table = read_scores(target, cat)
    assert table["id"].tolist() == [1, 2, 5] and table["score"].tolist() == [2, 1, 2]
    assert set(table["inspector"]) == {"Ann Lee"} and table.meta["n_candidates"] == 6
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", table["time"][0])
    assert target.read_text() == browser.execute_script("return window.m31Export()")
    target.unlink()


@pytest.mark.browser
def test_views_composite_and_neighbourhood(browser, tmp_path):
    cut = _cutout(8)
    page = write_inspection_page(_catalog(8, seed=3), cut, tmp_path / "v.html",
                                 inspector="Viewer", neighbourhood=_cutout(8, size=48, seed=2),
                                 neighbourhood_bin=3, grid_columns=3, zoom=4)
    _open(browser, page)
    # The composite drawn in the browser is `composite` of the rendered bands.
    _wait(browser, "return document.getElementById('img-c').width === 16")
    rgba = browser.execute_script(
        "const c = document.getElementById('img-c');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, 16, 16).data);")
    shown = np.array(rgba, dtype=float).reshape(16, 16, 4)[..., :3] / 255
    blue, red = render_bands(cut.data, ~cut.mask)[0].transpose(2, 0, 1)
    expect = np.flipud(composite(blue, red))
    np.testing.assert_allclose(shown, expect, atol=1.5 / 255)
    assert np.all(shown[-3:] == np.array([0x40, 0x60, 0xA0]) / 255)  # missing g rows
    assert browser.find_element("id", "img-b").size["width"] == 16 * 4
    # Neighbourhood on demand.
    assert not browser.find_element("id", "neigh").is_displayed()
    _keys(browser, ["n"])
    assert browser.find_element("id", "neigh").is_displayed()
    assert browser.execute_script("return document.getElementById('nb-b').naturalWidth") == 16
    # Zoom.
    _keys(browser, ["+"])
    assert _state(browser)["zoom"] == 5
    assert browser.find_element("id", "img-b").size["width"] == 16 * 5
    # Grid: 3 columns x 4 rows per page; arrows move by rows; keys score there too.
    from selenium.webdriver.common.keys import Keys

    _keys(browser, ["g"])
    assert _state(browser)["mode"] == "grid"
    assert len(browser.find_elements("css selector", "#grid .tile")) == 8
    _keys(browser, [Keys.ARROW_DOWN, "1"])
    assert _state(browser)["cur"] == 4 and _state(browser)["scores"]["4"][0] == 1
    tile = browser.find_elements("css selector", "#grid .tile")[3]
    assert "cur" not in tile.get_attribute("class") and tile.text.split() == ["4", "1"]
    assert browser.find_element("id", "progress").text == "scored 1 of 8"


@pytest.mark.browser
def test_two_inspectors_export_and_combine(browser, tmp_path):
    cat = _catalog(9, seed=5)
    before = cat.copy()
    stamps = _cutout(9)
    pairs = list(itertools.product([0, 1, 2], repeat=2))  # every pair of scores once
    keys_a = [str(a) for a, _ in pairs]
    keys_b = [str(b) for _, b in pairs]
    files = []
    for name, keys in (("Ann", keys_a), ("Bob", keys_b)):
        page = write_inspection_page(cat, stamps, tmp_path / f"{name}.html", inspector=name)
        _open(browser, page)
        _keys(browser, keys)
        assert browser.find_element("id", "progress").text == "scored 9 of 9"
        path = tmp_path / score_file_name(name)
        path.write_text(browser.execute_script("return window.m31Export()"))
        files.append(path)
    result = combine_inspections(cat, files)
    expect, kept = combine_scores([int(k) for k in keys_a], [int(k) for k in keys_b])
    assert result.catalog["Score"].tolist() == expect.tolist()
    np.testing.assert_array_equal(result.kept, kept)
    assert result.final["Seq"].tolist() == [s for s, k in zip(cat["Seq"], kept, strict=True) if k]
    assert result.inspectors == ("Ann", "Bob")
    # Every pair once: a uniform confusion matrix, agreement 1/3, kappa 0.
    np.testing.assert_array_equal(result.confusion, np.ones((3, 3)))
    assert result.kappa == pytest.approx(0.0) and result.weighted_kappa == pytest.approx(0.0)
    assert result.disagreements["id"].tolist() == \
        [s for s, (a, b) in zip(cat["Seq"], pairs, strict=True) if a != b]
    assert "disagreements: 6" in result.summary()
    # The catalogue passed in is untouched.
    assert cat.colnames == before.colnames and np.all(cat["Score"].mask)
    # Final CDS catalogue of the kept candidates.
    readme, data = result.write_cds(tmp_path / "ReadMe",
                                    title="Inspected candidates", authors=["Ann", "Bob"])
    back = Catalog.read_cds(readme)
    assert back["Seq"].tolist() == result.final["Seq"].tolist()
    assert back["Score"].tolist() == [s for s, k in zip(expect.tolist(), kept, strict=True) if k]


@pytest.mark.browser
def test_load_scores_into_a_fresh_browser(browser, tmp_path):
    # An inspector moves to another computer: the page loads an exported file.
    from m31clusters.inspection import write_scores

    cat = _catalog(6, seed=8)
    page = write_inspection_page(cat, _cutout(6), tmp_path / "m.html", inspector="Mover")
    ident = catalog_identity(cat)
    done = write_scores(tmp_path / "scores_Mover.ecsv", [2, 4, 5], [2, 0, 1],
                        inspector="Mover", catalog_id=ident, n_candidates=6)
    other = write_scores(tmp_path / "other.ecsv", [2], [2], inspector="Mover",
                         catalog_id="0123456789abcdef", n_candidates=6)
    wrong = write_scores(tmp_path / "wrong.ecsv", [2], [2], inspector="Someone",
                         catalog_id=ident, n_candidates=6)
    _open(browser, page)
    _keys(browser, ["1"])  # Seq 1 scored here, kept
    for path, why in ((other, "made for another catalogue"),
                      (wrong, "scores of Someone, not of Mover")):
        browser.find_element("id", "f-import").send_keys(str(path))
        _wait(browser, "return document.getElementById('warn').textContent"
                       ".startsWith('not loaded')")
        assert why in browser.find_element("id", "warn").text
        assert _state(browser)["nScored"] == 1
    browser.find_element("id", "f-import").send_keys(str(done))
    _wait(browser, "return window.m31State().nScored === 4")
    assert {k: v[0] for k, v in _state(browser)["scores"].items()} == \
        {"1": 1, "2": 2, "4": 0, "5": 1}
    assert browser.find_element("id", "warn").text == "loaded 3 of 3 scores"
    # ... and they are saved: a reload keeps them; its own export reads back.  (The
    # page has written them; Chromium commits a page's storage to its storage service
    # asynchronously, and a reload within milliseconds can race that commit.)
    _wait(browser, "return JSON.parse(window.localStorage.getItem("
                   "Object.keys(window.localStorage).find((k) => k.endsWith(':Mover')))"
                   ").scores['5'] !== undefined")
    time.sleep(1.0)
    browser.refresh()
    _open(browser, page)
    assert _state(browser)["nScored"] == 4
    assert browser.execute_script("return window.m31Import(window.m31Export())") == \
        "loaded 0 of 4 scores"


@pytest.mark.browser
def test_string_ids_with_commas_and_quotes_round_trip(browser, tmp_path):
    from astropy.table import Table

    ids = ['PAndAS-01', 'B 17, "G58"', "H\u00e9 7"]
    cat = Table({"name": ids, "Conf": [0.9, 0.8, 0.7]})
    page = write_inspection_page(cat, _cutout(3), tmp_path / "s.html", inspector="O'Neil",
                                 id_column="name")
    _open(browser, page)
    _keys(browser, ["1", "2", "0"])
    path = tmp_path / score_file_name("O'Neil")
    path.write_text(browser.execute_script("return window.m31Export()"), encoding="utf-8")
    table = read_scores(path, cat, id_column="name")
    assert table["id"].tolist() == ids and table["score"].tolist() == [1, 2, 0]
    assert table.meta["inspector"] == "O'Neil" and path.name == "scores_O_Neil.ecsv"


@pytest.mark.browser
def test_three_thousand_candidates_open_and_score(browser, tmp_path):
    # A catalogue the size of the paper's: the page opens and scores without lag.
    n = 3000
    rng = np.random.default_rng(0)
    coords = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                              rng.uniform(0.05, 2, n) * u.deg)
    cat = Catalog.from_candidates(coords, gmag=rng.uniform(17, 21, n), e_gmag=[0.01] * n,
                                  imag=rng.uniform(16, 20, n), e_imag=[0.02] * n,
                                  conf=rng.uniform(0.6, 1, n))
    stamps = Cutout(rng.normal(100, 5, (n, 8, 8, 2)).astype("f4"))
    page = write_inspection_page(cat, stamps, tmp_path / "big.html", inspector="Ann")
    _open(browser, page)
    _wait(browser, "return window.m31Timing.loaded === 3000")  # 60 blocks of stamps
    _keys(browser, ["2"] * 60)  # across a block boundary (50)
    state = _state(browser)
    assert state["nScored"] == 60 and state["cur"] == 60
    assert browser.find_element("id", "progress").text == "scored 60 of 3000"
    assert browser.execute_script("return document.getElementById('img-b').naturalWidth") == 8


# --------------------------------------------------------------------------- score files


def _write_export(path, ids, scores, inspector, cat):
    from m31clusters.inspection import write_scores

    return write_scores(path, ids, scores, inspector=inspector,
                        catalog_id=catalog_identity(cat), n_candidates=len(cat))


def test_bad_exports_raise_named_errors_and_leave_the_catalogue(tmp_path):
    from m31clusters.inspection import ScoreFileError

    cat = _catalog(4)
    before = cat.copy()
    a = _write_export(tmp_path / "a.ecsv", [1, 2, 3, 4], [2, 1, 0, 2], "Ann", cat)
    b = _write_export(tmp_path / "b.ecsv", [1, 2, 3, 4], [2, 2, 0, 1], "Bob", cat)
    other = _catalog(4, seq_start=101)
    alien = _write_export(tmp_path / "alien.ecsv", [101, 102], [2, 1], "Bob", other)
    same = _write_export(tmp_path / "a2.ecsv", [1, 2], [2, 1], "Ann", cat)
    text = b.read_text()
    bad_score = tmp_path / "bad_score.ecsv"
    bad_score.write_text(text.replace("\n3,0,", "\n3,7,"))
    cut_line = tmp_path / "cut_line.ecsv"
    cut_line.write_text(text[: text.rindex(",")])
    cut_rows = tmp_path / "cut_rows.ecsv"
    cut_rows.write_text(text[: text.rindex("\n4,") + 1])
    cut_head = tmp_path / "cut_head.ecsv"
    cut_head.write_text(text[: text.index("# schema") - 3] + "\n")
    forged = tmp_path / "forged.ecsv"  # right identity, ids from elsewhere
    forged.write_text(text.replace("\n4,", "\n44,"))
    cases = [
        (alien, ScoreFileError, r"alien\.ecsv' was made for another catalogue"),
        (same, ScoreFileError, r"both by inspector 'Ann'"),
        (bad_score, ScoreFileError, r"bad_score\.ecsv', row 3 \(id 3\): score 7 is not 0, 1 or 2"),
        (cut_line, ScoreFileError, r"cut_line\.ecsv' is truncated"),
        (cut_rows, ScoreFileError, r"cut_rows\.ecsv' is truncated: 3 rows, its header says 4"),
        (cut_head, ScoreFileError, r"cut_head\.ecsv' "),
        (forged, ScoreFileError, r"1 id\(s\) are not in the catalogue's 'Seq' column, first '44'"),
        (tmp_path / "none.ecsv", FileNotFoundError, "does not exist"),
    ]
    for second, exc, match in cases:
        with pytest.raises(exc, match=match):
            combine_inspections(cat, [a, second])
        assert cat.colnames == before.colnames and np.all(cat["Score"].mask)
    with pytest.raises(ValueError, match="exactly two score files"):
        combine_inspections(cat, [a])
    assert combine_inspections(cat, [a, b]).catalog["Score"].tolist() == [4, 3, 0, 3]


def test_identity_tells_catalogues_with_the_same_ids_apart(tmp_path):
    from m31clusters.inspection import ScoreFileError

    cat = _catalog(5, seed=0)
    rerun = _catalog(5, seed=1)  # another search, also numbered 1..5
    assert catalog_identity(cat) != catalog_identity(rerun)
    assert catalog_identity(cat) != catalog_identity(cat["Seq"])  # positions count
    old = _write_export(tmp_path / "old.ecsv", [1, 2], [2, 2], "Ann", cat)
    with pytest.raises(ScoreFileError, match="made for another catalogue"):
        read_scores(old, rerun)
    # Neither the row order nor a CDS round trip (rounded positions) changes it.
    readme, _ = cat.write_cds(tmp_path / "ReadMe", title="T", authors=["Doe J."])
    assert catalog_identity(Catalog.read_cds(readme)) == catalog_identity(cat)
    assert catalog_identity(cat[::-1]) == catalog_identity(cat)
    assert read_scores(old, Catalog.read_cds(readme))["id"].tolist() == [1, 2]


def test_incomplete_scores_are_masked(tmp_path):
    cat = _catalog(4)
    a = _write_export(tmp_path / "a.ecsv", [1, 2, 3], [2, 2, 1], "Ann", cat)
    b = _write_export(tmp_path / "b.ecsv", [4, 2, 1], [2, 1, 2], "Bob", cat)
    result = combine_inspections(cat, [a, b], keep=4)
    assert result.catalog["Score"].tolist() == [4, 3, None, None]
    assert result.kept.tolist() == [True, False, False, False]
    assert result.n_scored == (3, 3) and result.confusion.sum() == 2
    assert "scored by Ann: 3, by Bob: 3, by both: 2" in result.summary()


def _kappa_by_hand(a, b, w):
    n = len(a)
    po = sum(w(x, y) for x, y in zip(a, b, strict=True)) / n
    pa = [a.count(k) / n for k in range(3)]
    pb = [b.count(k) / n for k in range(3)]
    pe = sum(pa[i] * pb[j] * w(i, j) for i in range(3) for j in range(3))
    return 1 - po / pe


def test_cohen_kappa_against_its_definition():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 3, 200).tolist()
    b = [x if rng.random() < 0.7 else int(rng.integers(0, 3)) for x in a]
    assert cohen_kappa(a, b) == pytest.approx(_kappa_by_hand(a, b, lambda i, j: i != j))
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(
        _kappa_by_hand(a, b, lambda i, j: abs(i - j)))
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(
        _kappa_by_hand(a, b, lambda i, j: (i - j) ** 2))
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa([2, 2], [2, 2]) == 1.0
    assert np.isnan(cohen_kappa([2, None], [None, 1]))
    with pytest.raises(ValueError, match="weights must be"):
        cohen_kappa(a, b, weights="cubic")
    with pytest.raises(ValueError, match="score_b must be 0"):
        cohen_kappa([1], [3])


def test_montage_and_page_share_the_stretch(tmp_path):
    # One meaning of stretch: the montage draws render_bands' values.
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from m31clusters.inspection import inspection_montage

    cut = _cutout(2)
    with warnings.catch_warnings():
        fig = inspection_montage(cut, stretch="log")
    rendered = render_bands(cut.data, ~cut.mask, stretch="log")
    shown = fig.axes[4].images[0].get_array()  # i panel of stamp 1
    np.testing.assert_allclose(np.ma.getdata(shown), rendered[1, :, :, 1])
    rgb = fig.axes[5].images[0].get_array()
    np.testing.assert_allclose(rgb, composite(rendered[1, ..., 0], rendered[1, ..., 1]))
    plt.close(fig)
