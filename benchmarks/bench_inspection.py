"""
Benchmark of the HTML inspection page for a paper-sized candidate list.

Writes the page for N candidates (default 3,000; the paper inspected 2,228)
with 64 x 64 stamps and a 3x neighbourhood binned to 64 x 64, then opens it
in headless Chromium and reports

* the time to write the page and its size (total and per candidate);
* the time to first stamp: from navigation start to the first stamp image
  decoded (``window.m31Timing.firstStamp``; the page's stamps come in
  ``<script>`` blocks of 50 candidates after its script, so the first one
  shows before the rest of the file is read), the time until every block is
  read, and the DOMContentLoaded time;
* the time the page's key handler takes per score (0/1/2 key press),
  mean and max, over 200 presses, and the wall time of those presses;
* the same page size and load time for the obvious alternative, a page with
  every stamp as an ``<img>`` element (what a simple exporter writes).

Stamps are simulated crowded M31 stamps (`simulate_stamps`, 192 x 192): a
pool of them is reused with random dihedral turns and fresh sky noise, so
each candidate has its own noise (the noise sets the PNG size).

Run: ``python benchmarks/bench_inspection.py [--n 3000] [--pool 60]``.
"""

import argparse
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np


def _browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options,
                            service=Service(shutil.which("chromedriver") or
                                            "/usr/bin/chromedriver"))


def _wait(drv, script, timeout, what):
    """Poll *script* in the page until it returns a value; return it."""
    end = time.monotonic() + timeout
    while (value := drv.execute_script(script)) is None:
        if time.monotonic() > end:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(0.02)
    return value


def _stamps(n, pool, seed):
    from m31clusters.cutout import Cutout
    from m31clusters.simulate import simulate_stamps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base, _ = simulate_stamps(pool, size=192, seed=seed, progress=False)
    rng = np.random.default_rng(seed)
    data = np.asarray(base.data)
    sky = np.median(data, axis=(1, 2), keepdims=True)
    pick = rng.integers(0, pool, n)
    out = np.empty((n, 192, 192, 2), dtype=np.float32)
    for k, j in enumerate(pick):
        img = np.rot90(data[j], k=int(rng.integers(4)), axes=(0, 1))
        out[k] = img + rng.normal(0, np.sqrt(np.maximum(sky[j], 1.0)), img.shape)
    return Cutout(out[:, 64:128, 64:128].copy(), bands=("g", "i")), Cutout(out, bands=("g", "i"))


def _naive_page(path, stamps_json):
    """Every stamp as an <img> element: the obvious alternative."""
    imgs = "".join(f'<div><img src="data:image/png;base64,{g}"><img src="data:image/png;'
                   f'base64,{i}"></div>' for g, i in stamps_json)
    path.write_text("<!DOCTYPE html><html><body>" + imgs + "<script>window.addEventListener("
                    "'load', () => { window.loaded = performance.now(); });</script>"
                    "</body></html>")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--pool", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import json

    from selenium.webdriver.common.action_chains import ActionChains

    from m31clusters.catalog import Catalog
    from m31clusters.geometry import M31_CENTER
    from m31clusters.inspection import write_inspection_page

    n = args.n
    rng = np.random.default_rng(args.seed)
    coords = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                              rng.uniform(0.05, 2, n) * u.deg)
    cat = Catalog.from_candidates(coords, gmag=rng.uniform(15, 21, n),
                                  e_gmag=rng.uniform(0.001, 0.03, n),
                                  imag=rng.uniform(14, 20, n), e_imag=rng.uniform(0.001, 0.05, n),
                                  conf=rng.uniform(0.669, 1, n))
    t = time.perf_counter()
    stamps, wide = _stamps(n, args.pool, args.seed)
    print(f"simulated {args.pool} stamps, {n} candidates: {time.perf_counter() - t:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-inspection-"))
    profile = work / "profile"
    try:
        t = time.perf_counter()
        page = write_inspection_page(cat, stamps, work / "page.html", inspector="Bench",
                                     neighbourhood=wide, neighbourhood_bin=3)
        t_write = time.perf_counter() - t
        size = page.stat().st_size
        print(f"page written in {t_write:.1f} s: {size / 1e6:.1f} MB "
              f"({size / n / 1e3:.1f} kB per candidate, with the neighbourhood)")
        text = page.read_text()
        pairs = []
        for args in re.findall(r"<script>m31Stamps\((.*?)\);</script>", text):
            pairs += json.loads("[" + args + "]")[1]
        naive = _naive_page(work / "naive.html", pairs)
        del text, pairs
        drv = _browser(profile)
        try:
            for label in ("cold", "warm"):
                drv.get(page.as_uri())
                first = _wait(drv, "return window.m31Timing && window.m31Timing.firstStamp",
                              120, "no stamp shown")
                dcl = drv.execute_script(
                    "const e = performance.getEntriesByType('navigation')[0];"
                    "return e.domContentLoadedEventEnd;")
                loaded_all = _wait(drv, "return window.m31Timing.allLoaded", 300,
                                   "stamps not all loaded")
                print(f"{label}: time to first stamp {first / 1e3:.2f} s; all stamps "
                      f"loaded {loaded_all / 1e3:.2f} s (DOMContentLoaded {dcl / 1e3:.2f} s)")
            t = time.perf_counter()
            chain = ActionChains(drv)
            for k in range(200):
                chain.send_keys("012"[k % 3])
            chain.perform()
            wall = time.perf_counter() - t
            timing = drv.execute_script("return window.m31Timing")
            state = drv.execute_script("return window.m31State()")
            assert state["nScored"] == 200, state["nScored"]
            print(f"200 scores: key handler {timing['keyMsTotal'] / timing['keys']:.2f} ms "
                  f"mean, {timing['keyMsMax']:.1f} ms max; {wall:.2f} s wall through "
                  "chromedriver")
            drv.get(naive.as_uri())
            loaded = _wait(drv, "return window.loaded", 300, "naive page not loaded")
            print(f"alternative (every stamp an <img>, no neighbourhood): "
                  f"{naive.stat().st_size / 1e6:.1f} MB, load {loaded / 1e3:.2f} s "
                  f"= {loaded / first:.1f}x the page's time to first stamp")
        finally:
            drv.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
