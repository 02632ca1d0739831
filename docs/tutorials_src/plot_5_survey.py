"""
Running a survey on Dask
========================

A survey run maps *your* per-field function over many fields.  Each finished
field is written to disk as it completes, so an interrupted run resumes where
it stopped; failing fields are retried and reported; the results merge into
one de-duplicated catalogue.  The same code runs on local threads, local
worker processes or a multi-node ``distributed`` cluster (pass ``client=``).
"""

import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

import m31clusters as m31
from m31clusters.exceptions import NoDetectionsWarning
from m31clusters.photometry import detect_sources, measure
from m31clusters.simulate import simulate_field

work = Path(tempfile.mkdtemp())


def one_field(field):
    """Simulate a small piece of one PAndAS field and measure its sources."""
    out = work / f"m{field:03d}"
    out.mkdir(exist_ok=True)
    sim = simulate_field(field=field, n_ccds=1, ccd_shape=(512, 512), out_dir=out, seed=field,
                         progress=False, overwrite=True)
    with fits.open(sim.images["g"]) as hg, fits.open(sim.images["i"]) as hi:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)
            found = detect_sources(hi[1], nsigma=5)
        cat = measure({"g": hg[1], "i": hi[1]}, found["coord"])
    # a stand-in score (use ClusterClassifier.predict_proba on Cutouts in practice)
    cat["Conf"] = np.clip(np.nan_to_num(cat["CI"]) / 3, 0, 1)
    cat["PAndAS"] = field
    return cat


# %%
# Four fields near M31's centre, two threads.  ``run.done`` lists the fields
# whose result files are on disk; running the same call again recomputes
# nothing.
fields = [248, 249, 265, 266]
run = m31.run_survey(one_field, fields, work / "survey", scheduler="threads", n_workers=2,
                     progress=False)
print("done:", run.done, "failed:", run.failed)
print(len(run.catalog), "sources after de-duplication across overlaps")
print(sorted(p.name for p in (work / "survey").iterdir()))

# %%
# Where the sources are, coloured by field.
import matplotlib.pyplot as plt  # noqa: E402

from m31clusters.geometry import tangent_plane_offsets  # noqa: E402

xi, eta = tangent_plane_offsets(run.catalog.positions)
fig, ax = plt.subplots(figsize=(5, 5))
sc = ax.scatter(xi, eta, c=run.catalog["PAndAS"], s=2, cmap="tab10")
ax.invert_xaxis()
ax.set_xlabel(r"$\xi$ (deg)")
ax.set_ylabel(r"$\eta$ (deg)")
ax.set_title("Merged survey catalogue")
fig.colorbar(sc, ax=ax, label="PAndAS field")

# %%
# The cluster search itself is built on `run_survey`:
# `m31clusters.survey.search_fields` (the ``m31clusters search`` command)
# takes each field's stacks and, where present, its ``m###p.ascd``
# catalogue (`find_fields` finds them by name), cuts by magnitude and radius
# *before* cutting any stamp, classifies the rest, and publishes one
# de-duplicated catalogue with literature names, DS9 regions, a montage and
# a MOC of the area searched.
from m31clusters.survey import find_fields, search_fields  # noqa: E402

found = find_fields([work / "m248", work / "m249"])
print({k: sorted(n for n, p in v.items() if p is not None) for k, v in found.items()})
result = search_fields(found, work / "search", scheduler="synchronous")
print(result.counts)
print(len(result.catalog), "candidates;", sorted(p.name for p in result.files.values()))
