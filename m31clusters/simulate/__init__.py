"""
Simulated PAndAS-like images, catalogues and labelled stamps.

The simulator has three uses: test and tutorial data, training and
benchmark sets for the cluster classifier, and artificial-cluster
injection into real images to measure completeness.

* `Instrument` / `PANDAS`: CFHT/MegaCam g and i, Moffat PSF, noise model
  calibrated to the PAndAS 10-sigma depths (g = 25.5, i = 24.5 AB);
* `Scene` / `M31_SCENE`: M31 disc, halo, Milky Way foreground, background
  galaxies and star clusters at 785 kpc;
* `simulate_field`: multi-extension FITS images, a PAndAS-format source
  catalogue and the truth table of one MegaCam field;
* `simulate_stamps`: labelled two-band stamps for training;
* `inject_clusters`: artificial clusters added to copies of real images;
  `inject_field` does it for every CCD of a field's stacks.
"""

from .field import SimulatedField, megacam_layout, simulate_field
from .inject import inject_clusters, inject_field
from .instrument import PANDAS, Instrument, moffat_alpha
from .scene import M31_SCENE, Scene
from .stamps import STAMP_PROPORTIONS, simulate_stamps

__all__ = [
    "Instrument",
    "PANDAS",
    "moffat_alpha",
    "Scene",
    "M31_SCENE",
    "simulate_field",
    "SimulatedField",
    "megacam_layout",
    "simulate_stamps",
    "STAMP_PROPORTIONS",
    "inject_clusters",
    "inject_field",
]
