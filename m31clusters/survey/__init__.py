"""
Survey-scale runs: map a per-field function over many PAndAS fields on Dask.

`run_survey` applies a user's per-field function (for example "open the g
and i stacks -> cut stamps -> classify -> `~m31clusters.catalog.Catalog`")
to many fields on a Dask scheduler (threads or worker processes on this
machine, or any ``distributed.Client``: a multi-node cluster, dask-jobqueue,
...).  Each finished field is written at once, atomically, to its own table
file in the output directory together with a small JSON manifest, so an
interrupted run resumes where it stopped and never loses finished fields.
A failing field is retried, then recorded with its traceback while the other
fields go on.  At the end the field tables are merged into one catalogue
and duplicate detections in field overlaps are removed with
`m31clusters.crossmatch.deduplicate`.

`search_field` and `search_fields` are the cluster search of Zhang et al.
(2025) built on it (the ``m31clusters search`` command): per field, the
sources of the CASU catalogue or detected ones, cuts before any stamp is
cut, classification, and over many fields one de-duplicated catalogue with
literature names, DS9 regions, a montage and a MOC of the area searched.
`check_stacks` checks a pair of g and i stacks before any work.

`iter_chunks` helps keep the memory of each worker bounded by processing a
field's sources in chunks.

Dask (``dask[distributed]``, the optional extra ``m31clusters[dask]``) is
imported only when a run uses it.
"""

from ._run import LOCK_NAME, iter_chunks, run_survey
from ._stacks import CCDPair, check_image_file, check_stacks
from ._survey_run import MANIFEST_NAME, SurveyRun
from .search import (
    SEARCH_STAGES,
    FieldSearch,
    SearchResult,
    find_fields,
    search_field,
    search_fields,
    write_products,
)

__all__ = ["run_survey", "SurveyRun", "iter_chunks", "MANIFEST_NAME", "LOCK_NAME",
           "search_field", "search_fields", "find_fields", "FieldSearch", "SearchResult",
           "SEARCH_STAGES", "write_products", "check_stacks", "check_image_file", "CCDPair"]
