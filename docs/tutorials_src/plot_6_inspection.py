"""
Two inspectors score the candidates
===================================

The last step of the paper: two people look at every candidate and score it
2 (cluster), 1 (possible) or 0 (not); the candidates whose two scores sum to
3 or 4 are published.  Here a page is written for each inspector, two score
files stand in for what they export from it, and the files are combined
into the final CDS catalogue, with the inspectors' agreement.
"""

import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np

from m31clusters import M31_CENTER, Catalog, Cutout
from m31clusters.inspection import (
    catalog_identity,
    combine_inspections,
    inspection_montage,
    write_inspection_page,
    write_scores,
)

work = Path(tempfile.mkdtemp())
rng = np.random.default_rng(7)

# %%
# Twelve candidates: extended red blobs of several sizes on a noisy sky
# (in real use, the catalogue of a search and its stamps, or the images).
n = 12
coords = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                          rng.uniform(0.1, 1.5, n) * u.deg)
g = rng.uniform(17, 21, n)
cands = Catalog.from_candidates(coords, gmag=g, e_gmag=rng.uniform(0.001, 0.03, n),
                                imag=g - rng.uniform(0.3, 1.3, n),
                                e_imag=rng.uniform(0.001, 0.05, n),
                                conf=rng.uniform(0.67, 1.0, n))
y, x = np.mgrid[:48, :48] - 23.5
width = rng.uniform(1.5, 6, n)
blob = np.exp(-(x**2 + y**2)[None] / (2 * width[:, None, None] ** 2))
stamps = Cutout(np.stack([100 + 60 * blob + rng.normal(0, 3, blob.shape),
                          200 + 150 * blob + rng.normal(0, 4, blob.shape)],
                         axis=-1).astype("float32"), bands=("g", "i"))

# %%
# One self-contained page per inspector (open it in any browser: keys 0, 1,
# 2 score, ``u`` undoes, ``n`` shows the neighbourhood, ``g`` the grid;
# *export scores* downloads ``scores_<name>.ecsv``).  From the command
# line: ``m31clusters inspect ReadMe --inspector Ann --images g.fits i.fits``.
for name in ("Ann", "Bob"):
    page = write_inspection_page(cands, stamps, work / f"inspection_{name}.html",
                                 inspector=name)
    print(page.name, f"{page.stat().st_size / 1e3:.0f} kB")

# %%
# Here the two exports are made up: Ann and Bob agree on most candidates.
ann = rng.integers(0, 3, n)
bob = np.where(rng.random(n) < 0.75, ann, rng.integers(0, 3, n))
ident = catalog_identity(cands)
files = [write_scores(work / f"scores_{name}.ecsv", cands["Seq"], s, inspector=name,
                      catalog_id=ident, n_candidates=n)
         for name, s in (("Ann", ann), ("Bob", bob))]

# %%
# Combine: the ``Score`` column, the agreement and the disagreements.  From
# the command line: ``m31clusters inspect ReadMe --combine scores_Ann.ecsv
# scores_Bob.ecsv --out final``.
result = combine_inspections(cands, files)
print(result.summary())

# %%
# The candidates they disagree on, to look at together.
rows = np.flatnonzero(np.isin(cands["Seq"], result.disagreements["id"]))
if rows.size:
    fig = inspection_montage(stamps[rows], ids=cands["Seq"][rows],
                             scores=result.catalog["Score"][rows], ncols=3)

# %%
# The kept candidates (Score 3 or 4) become the published catalogue.
readme, data = result.write_cds(work / "ReadMe", title="Inspected candidates",
                                authors=["Ann", "Bob"])
print(Catalog.read_cds(readme)["Seq", "gmag", "Conf", "Score"])
