"""
Training and evaluating a classifier
====================================

Train a cluster / not-cluster classifier on simulated stamps, choose the
probability threshold on a validation set, evaluate it on an independent test
set, and repeat the limiting-magnitude study of Zhang et al. (2025).

The paper trained a ResNet-50 on PHAT clusters (``architecture="resnet50"``,
64 x 64 stamps; hours on a GPU).  To build the documentation in a minute on
a CPU this tutorial trains the small ``"simple"`` network on a few thousand
16 x 16 stamps; the calls are the same.
"""

import matplotlib.pyplot as plt
import numpy as np

from m31clusters.classifier import ClusterClassifier
from m31clusters.simulate import simulate_stamps

# %%
# Training, validation and test sets with different seeds.  ``label`` is 1
# for clusters; the negatives mix single stars, blends, compact galaxies and
# empty crowded sky.
kw = dict(size=16, mag_range=(15.0, 22.0), progress=False)
train, t_train = simulate_stamps(2000, seed=1, **kw)
val, t_val = simulate_stamps(600, seed=2, **kw)
test, t_test = simulate_stamps(1000, seed=3, **kw)
print(np.unique(t_train["kind"], return_counts=True))
train[:16].plot(n=16, ncols=8)

# %%
# Train (Keras 3 on JAX; augmentation with the 8 rotations/flips; classes
# balanced; the best epoch on the validation set is restored).
clf = ClusterClassifier("simple", input_shape=(16, 16, 2), normalization="asinh", seed=0)
clf.fit(train, t_train["label"], validation=(val, t_val["label"]), epochs=6,
        batch_size=64)
for key in ("loss", "val_loss", "val_auc", "val_f1"):
    print(key, np.round(np.asarray(clf.history[key], dtype=float), 3))

# %%
# Choose the threshold that maximises F1 on the validation set (or pass
# ``target_purity=0.893`` for the paper's purity), then evaluate on the test set.
clf.select_threshold(val, t_val["label"], metric="f1")
metrics = clf.evaluate(test, t_test["label"])
print(f"threshold {clf.threshold:.3f}")
for key in ("purity", "recall", "f1", "accuracy", "roc_auc"):
    print(f"{key:9s} {metrics[key]:.3f}")

# %%
# ROC and precision-recall curves.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
clf.plot_roc(test, t_test["label"], ax=ax1)
clf.plot_pr(test, t_test["label"], ax=ax2)
fig.tight_layout()

# %%
# The limiting-magnitude study: metrics for the sources brighter than each
# limit.  As in the paper, purity and recall drop toward the faint end.
by_mag = clf.evaluate_by_magnitude(test, t_test["label"], t_test["gmag"],
                                   limits=(19, 20, 21, 22))
print(by_mag)
