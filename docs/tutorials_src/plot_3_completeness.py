"""
A completeness curve from artificial clusters
=============================================

Add artificial clusters of known magnitude to copies of an image with
`~m31clusters.simulate.inject_clusters`, run the detection again, and count
how many are recovered as a function of magnitude, as the PHAT survey did.
Here the "real" image is a simulated PAndAS CCD; with real data pass your
own image HDUs.
"""

import tempfile
import warnings
from pathlib import Path

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from m31clusters.crossmatch import match
from m31clusters.exceptions import NoDetectionsWarning
from m31clusters.photometry import detect_sources
from m31clusters.simulate import inject_clusters, simulate_field

sim = simulate_field(field=249, n_ccds=1, ccd_shape=(1024, 1024),
                     out_dir=Path(tempfile.mkdtemp()), seed=5, progress=False)
hdus = {band: fits.open(path)[1] for band, path in sim.images.items()}
wcs = WCS(hdus["i"].header)

# %%
# Inject 40 clusters at a time (few enough not to crowd each other), eight
# times with different seeds, and match the detections to the injected ones.
rows = []
for seed in range(8):
    injected, truth = inject_clusters(hdus, n=40, mag_range=(19, 26), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        found = detect_sources(injected["i"], nsigma=5)
    truth["coord"] = SkyCoord(truth["ra"], truth["dec"], unit="deg")
    truth["name"] = [f"inj{k}" for k in range(len(truth))]
    found["name"] = [f"det{k}" for k in range(len(found))]
    m = match(truth, found, radius=1 * u.arcsec, into="det")
    rows.append(np.column_stack([truth["gmag"], m["det"] != ""]))
res = np.vstack(rows)

# %%
# Fraction recovered per 0.5 mag bin of g magnitude.
bins = np.arange(19, 26.5, 0.5)
idx = np.digitize(res[:, 0], bins) - 1
frac = [res[idx == k, 1].mean() if np.any(idx == k) else np.nan for k in range(len(bins) - 1)]
centres = 0.5 * (bins[1:] + bins[:-1])
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(centres, frac, "o-")
ax.set_xlabel("injected cluster g (AB mag)")
ax.set_ylabel("fraction detected")
ax.set_ylim(-0.05, 1.05)
ax.set_title("Completeness of detect_sources for artificial clusters")
print(np.round(frac, 2))
