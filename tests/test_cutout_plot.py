"""Tests of m31clusters.cutout._plot (Cutout.plot)."""


import pytest
from _cutout_helpers import (
    random_cutout,
)


def test_plot_returns_figure():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    cut = random_cutout(n=6)
    fig = cut.plot(n=4, seed=1, labels=[str(i) for i in range(6)])
    assert len([a for a in fig.axes if a.images]) == 4
    fig2 = cut.plot(n=3, band="i")
    assert len([a for a in fig2.axes if a.images]) == 3
    plt.close("all")
