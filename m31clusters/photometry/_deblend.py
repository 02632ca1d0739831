"""
Multi-threshold deblending of many segments at once.

`_deblend_sources` returns the segmentation image that
`photutils.segmentation.deblend_sources` returns (exponential levels,
8-connectivity, watershed with the contrast criterion, labels relabelled
consecutively), pixel for pixel and label for label, but does the
multi-thresholding of every segment together: photutils builds each segment's
markers from ``n_levels`` `scipy.ndimage.label` calls on that segment's
cutout (32 calls per segment, ~6 ms, thousands of segments per crowded CCD);
here each level is one labelling of all the segments' pixels above their own
level (the segments of a segmentation image never touch, so the connected
parts never mix segments), and the marker tree of photutils'
``make_marker_segment`` is followed with array operations on those pixels.
The watershed and the contrast criterion are photutils' own steps, per
segment.  ``tests/test_photometry_deblend.py`` compares the result with
photutils on crowded simulated images.
"""

import numpy as np
from scipy import ndimage

__all__ = []

#: photutils switches a segment to linear levels above this many markers
_MAX_MARKERS = 200

try:  # photutils' own NaN-ignoring sum (bottleneck when installed): the same float
    from photutils.utils._stats import nanmax as _nanmax
    from photutils.utils._stats import nanmin as _nanmin
    from photutils.utils._stats import nansum as _nansum
except ImportError:  # pragma: no cover
    _nanmax, _nanmin, _nansum = np.nanmax, np.nanmin, np.nansum


def _thresholds(vmin, vmax, n_levels, linear):
    """photutils' levels of one segment (its own arithmetic, so the same floats)."""
    lin = np.linspace(vmin, vmax, n_levels + 2)
    if linear:
        return lin[1:-1]
    norm = (lin - vmin) / (vmax - vmin)
    return (vmin * (vmax / vmin) ** norm)[1:-1]


def _pack(slices, width):
    """
    Places for the segments' bounding boxes on one compact canvas (shelf packing,
    one empty pixel between boxes, so that no two segments touch): the canvas
    shape and each box's (row, column) there.
    """
    h = np.array([sl[0].stop - sl[0].start for sl in slices]) + 1
    w = np.array([sl[1].stop - sl[1].start for sl in slices]) + 1
    width = max(int(width), int(w.max()))
    oy = np.zeros(len(slices), dtype=np.int64)
    ox = np.zeros(len(slices), dtype=np.int64)
    y = x = shelf = 0
    for j in np.argsort(-h, kind="stable"):
        if x + w[j] > width:
            y, x, shelf = y + shelf, 0, 0
        oy[j], ox[j] = y, x
        x += w[j]
        shelf = max(shelf, h[j])
    return (y + shelf, width), oy, ox


def _markers(values, where, shape, seg, levels, n_pixels, structure):
    """
    Marker id of every pixel after the multi-threshold tree of photutils'
    ``make_markers``, followed for all segments at once.

    *values* are the pixels' values, *where* their flat indices on a canvas of
    *shape* on which no two segments touch, *seg* their segment index and
    *levels* the (n_segments, n_levels) thresholds.  Returns an int64 array
    (0: no marker).

    A marker is replaced only by >= 2 parts of a higher level, and every part
    holds a local maximum of its segment (its brightest pixel), so a marker
    with a single local maximum is final: its pixels leave the higher levels,
    as do those outside every marker of a segment that has markers (every
    part of a higher level lies inside a marker).
    """
    n_seg, n_levels = levels.shape
    canvas = np.full(shape, -np.inf)
    canvas.reshape(-1)[where] = values
    peak = np.flatnonzero(values >= ndimage.maximum_filter(
        canvas, size=3, mode="constant", cval=-np.inf).reshape(-1)[where])
    marker = np.zeros(where.size, dtype=np.int64)
    has_lower = np.zeros(n_seg, dtype=bool)
    canvas = np.zeros(shape, dtype=bool)
    canvas_flat = canvas.reshape(-1)
    next_id = 1
    alive = np.arange(where.size)  # pixels above the previous level (the levels increase)
    for k in range(n_levels):
        alive = alive[values[alive] > levels[seg[alive], k]]
        if alive.size == 0:
            break
        canvas_flat[where[alive]] = True
        lab, n = ndimage.label(canvas, structure=structure)
        canvas_flat[where[alive]] = False
        comp = lab.reshape(-1)[where[alive]].astype(np.int64)
        size = np.bincount(comp, minlength=n + 1)
        big = size >= n_pixels
        big[0] = False
        comp_seg = np.zeros(n + 1, dtype=np.int64)
        comp_seg[comp] = seg[alive]
        n_up = np.bincount(comp_seg[big], minlength=n_seg)
        use = big[comp] & (n_up >= 2)[seg[alive]]  # photutils skips 0 or 1 parts
        pix, cu = alive[use], comp[use]
        if pix.size == 0:
            continue
        # segments without markers yet take this level's parts as their markers
        first = ~has_lower[seg[pix]]
        marker[pix[first]] = next_id + cu[first]
        has_lower[seg[pix[first]]] = True
        # segments with markers: a marker holding >= 2 parts is replaced by them
        rest = ~first
        if rest.any():
            m, c, sel = marker[pix[rest]], cu[rest], pix[rest]
            inside = m > 0
            m, c, sel = m[inside], c[inside], sel[inside]
            pairs = np.unique(m * (n + 1) + c)
            split = np.bincount(pairs // (n + 1), minlength=next_id + n + 1) >= 2
            if split.any():
                marker[split[marker]] = 0
                repl = split[m]
                marker[sel[repl]] = next_id + c[repl]
        next_id += n + 1
        # only the pixels of markers that can still split stay for the next levels
        multi = np.bincount(marker[peak], minlength=next_id) >= 2
        multi[0] = False
        alive = alive[~has_lower[seg[alive]] | multi[marker[alive]]]
    return marker


def _watershed(data, markers, mask, contrast, structure):
    """photutils' ``apply_watershed``: watershed, then drop markers below *contrast*."""
    from skimage.segmentation import watershed

    total = _nansum(data[mask])
    while True:
        markers = watershed(-data, markers, mask=mask, connectivity=structure)
        labels = np.unique(markers)
        labels = labels[labels != 0]
        if labels.size == 1:
            return markers
        frac = ndimage.sum_labels(data, markers, index=labels) / total
        if not np.any(frac < contrast):
            return markers
        markers[markers == labels[np.argmin(frac)]] = 0


def _watershed_all(values, where, shape, seg, marker, seg_of_marker, bounds, all_values,
                   contrast, structure, progress):
    """
    photutils' ``apply_watershed`` for many segments: one watershed floods them all
    on the packed canvas (the segments never touch there, so they flood
    independently); a segment with a part below *contrast* of its flux then
    loses its faintest part and continues photutils' loop on its own box.
    Returns each pixel's marker.
    """
    from skimage.segmentation import watershed

    from ..utils._progress import progress_bar

    n_seg = bounds.size - 1
    total = np.array([_nansum(all_values[bounds[j] : bounds[j + 1]]) for j in range(n_seg)])
    image = np.zeros(shape)
    image.reshape(-1)[where] = -values
    mk = np.zeros(shape, dtype=np.int64)
    mk.reshape(-1)[where] = marker
    mask = np.zeros(shape, dtype=bool)
    mask.reshape(-1)[where] = True
    lab = watershed(image, mk, mask=mask, connectivity=structure).reshape(-1)[where]
    del image, mk, mask
    # flux of every part (ndimage.sum_labels' bincount, in the same pixel order)
    flux = np.bincount(lab, weights=values, minlength=seg_of_marker.size)
    present = np.unique(lab)
    present = present[present != 0]
    owner = seg_of_marker[present]
    frac = flux[present] / total[owner]
    n_parts = np.bincount(owner, minlength=n_seg)
    again = np.zeros(n_seg, dtype=bool)
    again[owner[frac < contrast]] = True
    again &= n_parts >= 2
    # the faintest part of each such segment (the first label among equals) goes
    order = np.lexsort((present, frac, owner))
    o = owner[order]
    head = np.ones(o.size, dtype=bool)
    head[1:] = o[1:] != o[:-1]
    lab[np.isin(lab, present[order][head & again[o]])] = 0
    redo = np.flatnonzero(again[seg])
    starts = np.flatnonzero(np.r_[True, seg[redo][1:] != seg[redo][:-1]]) if redo.size else []
    ends = np.r_[starts[1:], redo.size] if redo.size else []
    rows, cols = np.divmod(where, shape[1])
    for a, b in progress_bar(list(zip(starts, ends, strict=True)), progress=progress,
                             desc="deblend (contrast)", unit="segment"):
        p = redo[a:b]
        r0, c0 = rows[p].min(), cols[p].min()
        box = (rows[p].max() - r0 + 1, cols[p].max() - c0 + 1)
        rr, cc = rows[p] - r0, cols[p] - c0
        data = np.zeros(box)
        data[rr, cc] = values[p]
        local = np.zeros(box, dtype=np.int64)
        local[rr, cc] = lab[p]
        keep = np.zeros(box, dtype=bool)
        keep[rr, cc] = True
        lab[p] = _watershed(data, local, keep, contrast, structure)[rr, cc]
    return lab


def _deblend_sources(convolved, segm, n_pixels, labels=None, *, n_levels=32, contrast=0.001,
                     progress=False):
    """
    `photutils.segmentation.deblend_sources` (``mode="exponential"``,
    ``connectivity=8``, ``relabel=True``) with the multi-thresholding of all
    segments done together; returns the same `~photutils.segmentation.SegmentationImage`.
    *progress* shows a bar over the segments that need more than one watershed.
    """
    from photutils.segmentation import SegmentationImage

    structure = np.ones((3, 3), dtype=bool)
    data = np.asarray(convolved)
    labels = segm.labels if labels is None else np.atleast_1d(np.asarray(labels))
    segm.check_labels(labels)
    labels = labels[segm.areas[segm.get_indices(labels)] >= 2 * n_pixels]
    if labels.size == 0:
        return segm.copy()
    out = segm.data.copy()
    max_label = int(segm.max_label)
    # the pixels of the segments to deblend, grouped by segment (raster order inside)
    lut = np.zeros(max_label + 1, dtype=np.int64)
    lut[labels] = np.arange(1, labels.size + 1)
    seg_of = lut[segm.data.reshape(-1)]
    flat = np.flatnonzero(seg_of)
    seg = seg_of[flat] - 1
    order = np.argsort(seg, kind="stable")
    flat, seg = flat[order], seg[order]
    bounds = np.searchsorted(seg, np.arange(labels.size + 1))
    values = data.reshape(-1)[flat]
    slices = [segm.slices[i] for i in segm.get_indices(labels)]
    y0 = np.array([sl[0].start for sl in slices])
    x0 = np.array([sl[1].start for sl in slices])
    shape, oy, ox = _pack(slices, 2048)
    width = data.shape[1]
    where = (oy[seg] + flat // width - y0[seg]) * shape[1] + ox[seg] + flat % width - x0[seg]
    vmin = np.full(labels.size, np.nan)
    vmax = np.full(labels.size, np.nan)
    for j in range(labels.size):
        v = values[bounds[j] : bounds[j + 1]]
        vmin[j], vmax[j] = _nanmin(v), _nanmax(v)
    linear = vmin <= 0  # photutils' fallback for a non-positive minimum
    todo = vmin != vmax  # photutils leaves a flat segment alone

    def markers_for(which, lin):
        levels = np.full((labels.size, n_levels), np.inf)
        for j in np.flatnonzero(which):
            levels[j] = _thresholds(vmin[j], vmax[j], n_levels, lin[j])
        return _markers(values, where, shape, seg, levels, n_pixels, structure)

    marker = markers_for(todo, linear)
    # photutils starts a segment again with linear levels above 200 markers
    ids, first = np.unique(marker, return_index=True)
    n_markers = np.bincount(seg[first[ids > 0]], minlength=labels.size)
    redo = todo & ~linear & (n_markers > _MAX_MARKERS)
    if redo.any():
        again = markers_for(redo, np.ones(labels.size, dtype=bool))
        marker[redo[seg]] = again[redo[seg]]
        n_markers[redo] = 0
        ids, first = np.unique(marker[redo[seg]], return_index=True)
        n_markers += np.bincount(seg[redo[seg]][first[ids > 0]], minlength=labels.size)
    several = n_markers >= 2
    sel = np.flatnonzero(several[seg])
    # marker ids numbered segment after segment, in raster order of each marker's
    # first pixel inside a segment (photutils' labels are in that order)
    ids, first = np.unique(marker[sel], return_index=True)
    ids, first = ids[ids > 0], first[ids > 0]
    by = np.lexsort((first, seg[sel][first]))
    gid = np.zeros(int(ids.max()) + 1 if ids.size else 1, dtype=np.int64)
    gid[ids[by]] = np.arange(1, ids.size + 1)
    seg_of_gid = np.zeros(ids.size + 1, dtype=np.int64)
    seg_of_gid[1:] = seg[sel][first[by]]
    final = _watershed_all(values[sel], where[sel], shape, seg[sel], gid[marker[sel]],
                           seg_of_gid, bounds, values, contrast, structure, progress)
    # the segments left with >= 2 parts get labels after max_label, in segment order
    kept = np.unique(final)
    kept = kept[kept != 0]
    n_kept = np.bincount(seg_of_gid[kept], minlength=labels.size)
    keep_ids = kept[n_kept[seg_of_gid[kept]] >= 2]
    remap = np.zeros(ids.size + 1, dtype=out.dtype)
    remap[keep_ids] = np.arange(1, keep_ids.size + 1) + max_label
    split = remap[final] > 0
    out.reshape(-1)[flat[sel[split]]] = remap[final[split]]
    # consecutive labels over the whole image, in label order
    present = np.unique(out)
    present = present[present != 0]
    if present.size and (present[0] != 1 or present[-1] != present.size):
        remap = np.zeros(int(present[-1]) + 1, dtype=out.dtype)
        remap[present] = np.arange(1, present.size + 1)
        out = remap[out]
    return SegmentationImage(out)
