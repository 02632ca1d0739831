"""
Quick start: the demo's steps composed by hand
==============================================

``python -m m31clusters.demo`` runs the whole method of Zhang et al. (2025)
in one command.  Here are the same steps, one public function each, on a
small simulated PAndAS field: simulate, detect, measure, cut stamps,
classify, select, de-duplicate, cross-match and publish.
"""

import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

import m31clusters as m31
from m31clusters.classifier import ClusterClassifier
from m31clusters.demo import demo_model_path
from m31clusters.exceptions import NoDetectionsWarning
from m31clusters.photometry import detect_sources, measure
from m31clusters.simulate import simulate_field

work = Path(tempfile.mkdtemp())

# %%
# 1. A simulated PAndAS-like field: one 1024 x 1024 pixel CCD of field m248,
# the disc field nearest M31's centre (real images: pass your ``m###_g.fit``
# and ``m###_i.fit`` stacks instead).
sim = simulate_field(field=248, n_ccds=1, ccd_shape=(1024, 1024), out_dir=work, seed=4,
                     progress=False)
print(sim.images)
print(len(sim.truth), "objects simulated, of which",
      int(np.sum(sim.truth["kind"] == "cluster")), "clusters")

# %%
# 2. Detect sources in the i image and measure g and i magnitudes there.
with fits.open(sim.images["g"]) as hg, fits.open(sim.images["i"]) as hi:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        found = detect_sources(hi[1], nsigma=5)
    sources = measure({"g": hg[1], "i": hi[1]}, found["coord"])
print(len(sources), "sources; columns:", sources.colnames[:8], "...")

# %%
# 3. Cut two-band stamps and classify them with the small simulation-trained
# model shipped with the package.
clf = ClusterClassifier.load(demo_model_path())
stamps = m31.Cutout.from_images(sim.images, sources["coord"], size=clf.input_shape[:2],
                                progress=False)
sources["Conf"] = clf.predict_proba(stamps)
stamps[np.argsort(-sources["Conf"])[:16]].plot(n=16, ncols=8)

# %%
# 4. The paper's cuts: score above the threshold, g < 21, within 30 kpc.
sources["Rproj"] = m31.projected_radius(sources["coord"])
g = np.ma.filled(np.ma.asarray(sources["gmag"], dtype=float), np.nan)
keep = (sources["Conf"] >= clf.threshold) & (g < 21) & (sources["Rproj"].value < 30)
sel = sources[keep]
print(f"{len(sel)} candidates above threshold {clf.threshold:.3f}")

# %%
# 5. The table-7 catalogue, de-duplicated and cross-matched with RBC v5 and
# Caldwell et al. (2011), then published as a CDS ReadMe + data file.
cands = m31.Catalog.from_candidates(sel["coord"], gmag=sel["gmag"], e_gmag=sel["e_gmag"],
                                    imag=sel["imag"], e_imag=sel["e_imag"], conf=sel["Conf"])
cands = m31.deduplicate(cands, radius=1 * m31.geometry.u.arcsec)
cands = m31.match(cands, m31.load_rbc_v5(), into="RBC")
cands = m31.match(cands, m31.load_caldwell2011(), into="C11")
cands.remove_columns([c for c in cands.colnames if c.endswith("_sep") or c in
                      ("n_det", "fields", "group")])
cands["Seq"] = np.arange(1, len(cands) + 1)
cands.write_cds(work / "ReadMe", work / "table7.dat", title="Quick-start candidates",
                authors="A. Astronomer")
print((work / "ReadMe").read_text()[:1500])
