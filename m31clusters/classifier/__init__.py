"""
Binary star-cluster classifier over `~m31clusters.cutout.Cutout` stamps.

`ClusterClassifier` wraps a Keras 3 network (run on the JAX backend) with
everything needed around it: the stamp normalisation, seeded training with
dihedral augmentation and class balancing, best-epoch restoration,
threshold selection (also at the survey's class ratio), probability
calibration (temperature and prior shift, `expected_calibration_error`,
`plot_reliability`), evaluation (purity, recall, F1, ROC AUC, per limiting
magnitude as in Zhang et al. 2025) and safe saving/loading.

Keras is imported only when a classifier is created or loaded.
"""

from .calibration import expected_calibration_error, plot_reliability
from .core import ClusterClassifier

__all__ = ["ClusterClassifier", "expected_calibration_error", "plot_reliability"]
