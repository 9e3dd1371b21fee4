"""Cohort registration on Dask: many pairs, or every subject to one atlas, resumable.

* :mod:`.pairs`: the pair list (a CSV table, ``{subject}`` path patterns, subjects to an atlas);
* :mod:`.task`: what a worker does with one pair (read, ``pipeline.register``,
  ``io.write_outputs``) and when a pair counts as done;
* :mod:`.run`: :func:`run_batch`, the driver (local or external Dask cluster, faults, resume);
* :mod:`.cohort`: the cohort tables (``cohort.csv``, ``cohort_labels.csv``) and ``cohort.png``;
* :mod:`.command`: the ``napari-deepreg batch`` subcommand.

``dask.distributed`` is imported only when a batch runs.
"""

from .cohort import COHORT_CSV, COHORT_LABELS_CSV, COHORT_PNG, read_cohort_table
from .command import add_batch_arguments, batch_from_args
from .pairs import Pair, make_pairs, pairs_from_pattern, pairs_to_atlas, read_pairs_csv
from .run import CohortResult, plan_cluster, run_batch
from .task import FAILED, OK, SKIPPED, BatchJob, PairOutcome, register_pair

__all__ = [
    "COHORT_CSV",
    "COHORT_LABELS_CSV",
    "COHORT_PNG",
    "FAILED",
    "OK",
    "SKIPPED",
    "BatchJob",
    "CohortResult",
    "Pair",
    "PairOutcome",
    "add_batch_arguments",
    "batch_from_args",
    "make_pairs",
    "pairs_from_pattern",
    "pairs_to_atlas",
    "plan_cluster",
    "read_cohort_table",
    "read_pairs_csv",
    "register_pair",
    "run_batch",
]
