"""Compatibility re-exports: the registry data now lives in :mod:`.sources` (the pinned
packages), :mod:`.download` (fetch, checksum, cache) and :mod:`.templates` (the loaders).

Kept for importers outside ``data/``: ``methods/semantic_bspline.py``, ``benchmarks/cases.py``,
``benchmarks/bench_core.py``, ``sample_data/build_sample_data.py`` and the ablation and benchmark
tests. New code imports from the modules above (or from :mod:`napari_deepreg.data`).
"""

from .download import (
    CACHE_ENV,
    ChecksumMismatch,
    RegistryError,
    RegistryUnreachable,
    cache_root,
    fetch,
    fetch_file,
)
from .sources import SOURCES, Source
from .templates import (
    CAT12_ATLASES,
    cat12_template_atlas,
    elastix_example_pair,
    itk_brain_slices,
    mni2009a_t1_tissues,
    mni2009c_t1_dkt,
)

__all__ = [
    "CACHE_ENV",
    "CAT12_ATLASES",
    "SOURCES",
    "ChecksumMismatch",
    "RegistryError",
    "RegistryUnreachable",
    "Source",
    "cache_root",
    "cat12_template_atlas",
    "elastix_example_pair",
    "fetch",
    "fetch_file",
    "itk_brain_slices",
    "mni2009a_t1_tissues",
    "mni2009c_t1_dkt",
]
