"""
Multi-band image stamps ("cutouts") around sky positions.

`Cutout` holds N stamps of H x W pixels in C bands as an ``(N, H, W, C)``
float32 array with a mask, the sky positions, the sub-pixel offset of each
position from its stamp centre, and enough WCS information to rebuild the
WCS of every stamp.  Stamps are cut from FITS images, `~astropy.io.fits`
HDUs or `~astropy.nddata.NDData` with `Cutout.from_images` (or chunk by
chunk with `Cutout.iter_from_images`), including multi-extension PAndAS
stacks with one CCD per extension.  The pixel convention is exactly that of
`astropy.nddata.Cutout2D` (``mode="partial"``, ``fill_value=np.nan``).

Modules: `~m31clusters.cutout.core` (the container, slicing, dihedral
transforms), `~m31clusters.cutout.extract` (cutting stamps from images),
`~m31clusters.cutout.normalize` (and `zeropoint_scales`, the per-band scales of the
brightness- and colour-keeping ``"asinh_flux"``), `~m31clusters.cutout.io` (Cutout files).
"""

from .core import Cutout
from .normalize import NORMALIZATIONS, zeropoint_scales

__all__ = ["Cutout", "NORMALIZATIONS", "zeropoint_scales"]
