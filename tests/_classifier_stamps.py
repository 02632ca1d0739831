"""
Shared stamps and classifiers for the tests of m31clusters.classifier (small
networks only; no ResNet-50 training).
"""

import functools

import numpy as np

from m31clusters.classifier import ClusterClassifier
from m31clusters.cutout import Cutout

SIZE = 16


def make_stamps(n, size=SIZE, seed=0, overlap=0.0):
    """
    Raw two-band stamps: an extended Gaussian (label 1, sigma 1.6-3 px) or a
    point-like source (label 0, sigma 0.7-1.0 px, or up to 1.0 + overlap)
    on a noisy sky, returned with labels and an "i magnitude".
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    sig = np.where(y == 1, rng.uniform(1.6, 3.0, n), rng.uniform(0.7, 1.0 + overlap, n))
    dx, dy = rng.uniform(-1, 1, (2, n))
    flux = 10 ** rng.uniform(2.0, 3.3, n)
    r2 = (xx[None] - dx[:, None, None]) ** 2 + (yy[None] - dy[:, None, None]) ** 2
    img = flux[:, None, None] / (2 * np.pi * sig[:, None, None] ** 2)
    img = img * np.exp(-r2 / (2 * sig[:, None, None] ** 2))
    data = np.stack([img, 0.7 * img], -1) + rng.normal(0, 3, (n, size, size, 2)) + 100.0
    mag = 25.0 - 2.5 * np.log10(flux)
    return Cutout(data.astype(np.float32), bands=("g", "i")), y, mag


@functools.cache
def stamp_sets():
    """Training, validation and test stamps (labels, magnitudes), made once per session."""
    return {
        "train": make_stamps(400, seed=1, overlap=0.4),
        "val": make_stamps(200, seed=2, overlap=0.4),
        "test": make_stamps(300, seed=3, overlap=0.4),
    }


@functools.cache
def trained_classifier():
    """A ``simple`` network trained 6 epochs, threshold chosen on validation (once)."""
    data = stamp_sets()
    clf = ClusterClassifier("simple", input_shape=(SIZE, SIZE, 2), seed=0)
    tr, ytr, _ = data["train"]
    va, yva, _ = data["val"]
    clf.fit(tr, ytr, validation=(va, yva), epochs=6, batch_size=32, progress=False)
    clf.select_threshold(va, yva)
    return clf


def tiny(seed=0):
    """An untrained ``simple`` network on 8 x 8 x 2 stamps."""
    return ClusterClassifier("simple", input_shape=(8, 8, 2), seed=seed)


def tiny_stamps(n=16, seed=0):
    """*n* noise stamps 8 x 8 x 2 and alternating labels."""
    rng = np.random.default_rng(seed)
    return Cutout(rng.normal(100, 5, (n, 8, 8, 2)).astype(np.float32)), np.arange(n) % 2
