"""
Training on PHAT labels
=======================

The recipe of Zhang et al. (2025) on the images a user has: a PAndAS stack
(``m###_g.fit``, ``m###_i.fit``), its CASU source catalogue (``m###p.ascd``)
and the PHAT Andromeda Project cluster catalogue as positives.  Sources
matched to a PHAT cluster are clusters, the other sources inside the PHAT
footprint are not, g < 21, and the training, validation and test stamps come
from disjoint patches of sky.

Here the stack is a simulated PAndAS field 266 (the PHAT field with the most
clusters) holding the real PHAT clusters at their real positions,
magnitudes and sizes (``simulate_field(clusters=...)``); on real data replace
the first step by the paths of your stacks.  Two small CCDs and a few epochs
keep the build to a minute; the shipped demo model and
``benchmarks/bench_search_quality.py`` use more.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits

from m31clusters.cutout import zeropoint_scales
from m31clusters.datasets import in_phat_footprint, load_phat_clusters
from m31clusters.io.pandas_ascd import read_pandas_ascd
from m31clusters.simulate import simulate_field
from m31clusters.training import TrainingSet, build_training_set, train_classifier

phat = load_phat_clusters()
sim = simulate_field(266, n_ccds=2, ccd_shape=(1024, 1024), clusters=phat, seed=1,
                     out_dir=Path(tempfile.mkdtemp()))
images = sim.images                          # real data: {"g": "m266_g.fit", "i": "m266_i.fit"}
sources = read_pandas_ascd(sim.catalog_path)  # real data: read_pandas_ascd("m266p.ascd")
print(f"{len(sources)} catalogue sources, {np.sum(sources['g'] < 21)} with g < 21")

# %%
# The training set: labels, the magnitude limit and the spatial split in one
# call.  ``table.meta`` counts what was dropped and why.
ts = build_training_set(images, sources, phat, footprint=in_phat_footprint, size=32,
                        seed=1)
print(ts.counts())
print({k: v for k, v in ts.table.meta.items() if k.startswith("n_")})

# %%
# Where the stamps of each split lie: whole sky tiles, no pixel shared.
fig, ax = plt.subplots(figsize=(5, 5))
for split, colour in (("train", "C0"), ("val", "C1"), ("test", "C2")):
    sel = ts.table["split"] == split
    c = ts.table["coord"][sel]
    ax.scatter(c.ra.deg, c.dec.deg, s=4, color=colour, label=split)
    cl = sel & (ts.table["label"] == 1)
    ax.scatter(ts.table["coord"][cl].ra.deg, ts.table["coord"][cl].dec.deg, s=40,
               facecolors="none", edgecolors=colour)
ax.invert_xaxis()
ax.set_xlabel("RA (deg)")
ax.set_ylabel("Dec (deg)")
ax.legend(title="split (circles: PHAT clusters)", fontsize="small")

# %%
# Some clusters and some of the negatives the search really meets.
clusters = ts.cutouts[np.flatnonzero(ts.table["label"] == 1)]
others = ts.cutouts[np.flatnonzero(ts.table["label"] == 0)]
clusters.plot(n=8, ncols=8)
others.plot(n=8, ncols=8, seed=0)

# %%
# Background galaxies are what a classifier trained on the PHAT area alone
# calls clusters: that area holds about one per cluster, the survey several.
# An outer field whose few clusters are all known adds them as negatives
# (``allow_one_class=True``: here it has no cluster at all), and
# `~m31clusters.training.TrainingSet.concatenate` joins the fields' sets.
outer = simulate_field(285, n_ccds=1, ccd_shape=(1024, 1024), seed=2,
                       out_dir=Path(tempfile.mkdtemp()))
truth = outer.truth
known = truth[truth["on_ccd"] & (truth["kind"] == "cluster")]
ts_outer = build_training_set(outer.images, read_pandas_ascd(outer.catalog_path), known,
                              footprint="images", allow_one_class=True, size=32, seed=2)
ts = TrainingSet.concatenate([ts, ts_outer])
print(ts.counts())

# %%
# Fit, oversample the hard examples in a second round, calibrate and pick the
# threshold at the survey's class ratio (about one cluster per hundred g < 21
# sources in the disc), and save.  ``wang2022`` is a compact two-band CNN
# that trains on 32 x 32 stamps on a CPU.
#
# On a survey-sized training set use the ``asinh_flux`` normalisation, with
# per-band scales from the stacks' zero points: it lets the network see each
# source's brightness and colour, which separate clusters from galaxies (the
# shipped model and ``benchmarks/bench_search_quality.py`` use it).  A network
# trained from scratch with it needs more than this tutorial's few dozen
# clusters and six epochs, so the tutorial keeps the noise-scaled ``asinh``.
zp = {b: fits.getheader(images[b], 1)["MAGZPT"] for b in ("g", "i")}
print("asinh_flux scales for these stacks:", zeropoint_scales(zp, scale=50.0))
clf, info = train_classifier(ts, architecture="wang2022", normalization="asinh", epochs=6,
                             hard_epochs=3, base_rate=0.01, seed=1)
print(info)
print(f"threshold {clf.threshold:.3f}")
path = clf.save(Path(tempfile.mkdtemp()) / "phat_model.zip")
