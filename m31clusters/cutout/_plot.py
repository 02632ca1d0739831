"""
Montage of the stamps of a `~m31clusters.cutout.Cutout` (matplotlib).

`plot_cutout` draws `Cutout.plot <m31clusters.cutout.Cutout.plot>`.
(Drawing stamps is to move to `m31clusters.inspection`'s montage, so that
the library has one montage and one meaning of ``stretch``.)
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
    sub = cutout[idx]
    if sub.normalization is None:
        sub = sub.normalize(stretch, fill_value=np.nan)
    img = sub.data
    if band is not None:
        img = img[..., [sub._band_index(band)]]
    finite = np.isfinite(img)
    lo = np.where(finite, img, np.inf).min(axis=(1, 2), keepdims=True)
    hi = np.where(finite, img, -np.inf).max(axis=(1, 2), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    img = np.clip((img - lo) / span, 0, 1)
    img = np.where(finite, img, np.nan)
    if img.shape[-1] >= 2 and band is None:
        b, r = img[..., 0], img[..., 1]
        rgb = np.stack([r, 0.5 * (r + b), b], axis=-1)
    else:
        rgb = None
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
            ax.imshow(np.nan_to_num(rgb[k], nan=0.0), origin="lower")
        else:
            ax.imshow(img[k, :, :, 0], origin="lower", cmap="gray", vmin=0, vmax=1)
        if labels is not None:
            ax.set_title(str(labels[idx[k]]), fontsize=7)
    return fig

