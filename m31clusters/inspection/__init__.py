"""
Visual inspection of cluster candidates.

The paper's candidates were inspected by eye by two people, each giving a
score of 2 (cluster), 1 (possible cluster) or 0 (not a cluster); a
candidate was kept where the sum of the two scores is 3 or 4.

* `write_inspection_page` writes the self-contained HTML page an inspector
  scores the candidates on (keys 0/1/2), which exports a score file;
* `combine_inspections` reads two inspectors' score files into the
  catalogue's ``Score`` column and reports their agreement (`cohen_kappa`);
  `combine_scores` does the same for two score lists;
* `inspection_montage` draws stamps with matplotlib; `render_bands` and
  `composite` are the stretch and colour composite every drawing of a
  stamp in the package uses.
"""

from .montage import STRETCHES, composite, inspection_montage, render_bands
from .page import write_inspection_page  # noqa: F401
from .scores import (
    INSPECTION_SCORES,
    SCORE_FILE_FORMAT,
    InspectionResult,
    ScoreFileError,
    catalog_identity,
    cohen_kappa,
    combine_inspections,
    combine_scores,
    read_scores,
    score_file_name,
    write_scores,
)

__all__ = [
    "INSPECTION_SCORES",
    "SCORE_FILE_FORMAT",
    "STRETCHES",
    "InspectionResult",
    "ScoreFileError",
    "catalog_identity",
    "cohen_kappa",
    "combine_inspections",
    "combine_scores",
    "composite",
    "inspection_montage",
    "read_scores",
    "render_bands",
    "score_file_name",
    "write_inspection_page",
    "write_scores",
]
