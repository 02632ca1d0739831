"""
Montage of the stamps of a `~m31clusters.cutout.Cutout` (matplotlib).

`plot_cutout` draws `Cutout.plot <m31clusters.cutout.Cutout.plot>`
through `m31clusters.inspection`'s montage rendering
(`~m31clusters.inspection.render_bands` and
`~m31clusters.inspection.composite`): one meaning of ``stretch``.
"""

import numpy as np

__all__ = ["plot_cutout"]


def plot_cutout(cutout, n=16, *, band=None, ncols=None, stretch="asinh", seed=None, fig=None,
                labels=None):
    """
    Draw a montage of stamps of *cutout*: the implementation of `Cutout.plot
    <m31clusters.cutout.Cutout.plot>`, which documents the parameters.
    """
    import matplotlib.pyplot as plt

    total = len(cutout)
    n = min(int(n), total)
    if n < 1:
        raise ValueError("nothing to plot: the Cutout is empty")
    idx = (
        np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
        if seed is not None
        else np.arange(n)
    )
    from ..inspection.montage import BAD_COLOR, composite, render_bands

    sub = cutout[idx]
    img = render_bands(sub.data, ~np.asarray(sub.mask, dtype=bool), stretch=stretch)
    if band is not None:
        img = img[..., [sub._band_index(band)]]
    rgb = composite(img[..., 0], img[..., 1]) if img.shape[-1] >= 2 and band is None else None
    gray = plt.get_cmap("gray").with_extremes(bad=BAD_COLOR)
    ncols = int(ncols) if ncols else int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    if fig is None:
        fig = plt.figure(figsize=(1.6 * ncols, 1.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        if rgb is not None:
            ax.imshow(rgb[k], origin="lower", interpolation="nearest")
        else:
            ax.imshow(np.ma.masked_invalid(img[k, :, :, 0]), origin="lower", cmap=gray,
                      vmin=0, vmax=1, interpolation="nearest")
        if labels is not None:
            ax.set_title(str(labels[idx[k]]), fontsize=7)
    return fig

