"""
Evaluating a candidate catalogue
================================

How right is the catalogue a search writes?  Run the search's steps on a
field -- sources, stamps, the classifier, the g < 21 cut, fragment merging,
de-duplication -- and compare the written candidates with the truth:
purity, completeness, what the false positives are, and how many candidates
an inspector must look at per cluster found.

The field is simulated (so every object's nature is known); on real stacks
compare with a reference list instead (``evaluate_catalog(cands,
load_phat_clusters(), area=in_phat_footprint)``), where false positives can
only be called ``unmatched``.
"""

import tempfile
import warnings
from pathlib import Path

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np

from m31clusters.classifier import ClusterClassifier
from m31clusters.crossmatch import deduplicate
from m31clusters.cutout import Cutout
from m31clusters.demo import demo_model_path
from m31clusters.evaluation import evaluate_catalog, plot_evaluation
from m31clusters.exceptions import OffImageWarning
from m31clusters.fragments import merge_fragments
from m31clusters.io.pandas_ascd import read_pandas_ascd
from m31clusters.simulate import simulate_field

sim = simulate_field(248, n_ccds=2, ccd_shape=(1024, 1024), seed=0,
                     out_dir=Path(tempfile.mkdtemp()))
sources = read_pandas_ascd(sim.catalog_path)
bright = sources[sources["g"] < 21]
clf = ClusterClassifier.load(demo_model_path())

# %%
# The search's steps: stamps of the g < 21 sources, Conf, the threshold,
# stamps mostly on the image, fragments merged, duplicates removed.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", OffImageWarning)
    stamps = Cutout.from_images(sim.images, bright.positions, size=clf.input_shape[:2],
                                bands=clf.bands)
bright["Conf"] = clf.predict_proba(stamps)
keep = (bright["Conf"] >= clf.threshold) & (stamps.valid_fraction.min(axis=1) > 0.5)
cands = merge_fragments(bright[keep], keep="min:g")
cands = deduplicate(cands, radius=1 * u.arcsec, keep="max:Conf")
print(f"{len(bright)} sources with g < 21 -> {len(cands)} candidates")

# %%
# The evaluation against the field's truth.
ev = evaluate_catalog(cands, sim.truth, radius=1 * u.arcsec, mag_limit=21,
                      mag_column="g", sources=sources)
print(f"purity {ev.purity:.2f}, completeness {ev.completeness:.2f}, "
      f"{ev.inspection_budget:.1f} candidates per cluster found")
print("false positives:", ev.false_positives)
ev.summary[ev.summary["quantity"] == "mag"].pprint(max_width=-1)

# %%
# The plot: purity and completeness per bin, and what the false positives are.
fig = plot_evaluation(ev)

# %%
# The clusters that were missed and the false positives, side by side with
# their Conf.
fp = ev.candidates[ev.candidates["match_type"] != "cluster"]
print(fp["g", "Conf", "match_type"][np.argsort(-fp["Conf"])][:10])
missed = ev.clusters[~ev.clusters["recovered"]]
print(missed["gmag", "reff_arcsec"])
plt.show()
