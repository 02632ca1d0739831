"""
Publishing a CDS catalogue
==========================

Candidate catalogues go to CDS/VizieR, whose submissions need a ReadMe with a
byte-by-byte description.  `~m31clusters.catalog.Catalog` writes one that
astropy (and VizieR) read back.
"""

import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import ascii

from m31clusters import M31_CENTER, Catalog

work = Path(tempfile.mkdtemp())
rng = np.random.default_rng(3)
n = 12
coord = M31_CENTER.directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                         rng.uniform(0.05, 1.5, n) * u.deg)
g = rng.uniform(16, 21, n)
i = g - rng.uniform(0.3, 1.3, n)
cands = Catalog.from_candidates(coord, gmag=g, e_gmag=rng.uniform(0.001, 0.03, n), imag=i,
                                e_imag=rng.uniform(0.001, 0.05, n),
                                conf=rng.uniform(0.67, 1.0, n), score=rng.integers(3, 5, n))
cands["RBC"][0] = "B001-G039"   # a name from an earlier catalogue
cands["imag"][3] = np.nan       # a failed measurement: a blank, nullable column
print(cands)

# %%
# Write the ReadMe and the fixed-width data file (atomically; an existing
# file is only replaced with ``overwrite=True``).
cands.write_cds(work / "ReadMe", work / "table7.dat",
                title="Star cluster candidates in M31 from PAndAS",
                authors=["A. Astronomer", "B. Astronomer"],
                abstract="Candidates found with m31clusters.",
                keywords=["Galaxies: individual (M31)", "Clusters, globular"])
print((work / "ReadMe").read_text())

# %%
# astropy's own CDS reader gives the same table back.
back = ascii.read(work / "table7.dat", readme=work / "ReadMe", format="cds")
print(back["Seq", "RAh", "RAm", "RAs", "DE-", "DEd", "gmag", "imag", "RBC"][:5])

# %%
# And a DS9 region file for the image viewer.
cands.write_regions(work / "candidates.reg", radius=2 * u.arcsec)
print((work / "candidates.reg").read_text().splitlines()[:4])
