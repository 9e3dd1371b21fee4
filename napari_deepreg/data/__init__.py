"""Data: pinned registry sources with loaders (``registry``) and seeded synthetic transforms
(``synthetic``). See ``DATA.md`` for what the registries hold."""

from .registry import (
    SOURCES,
    ChecksumMismatch,
    RegistryError,
    RegistryUnreachable,
    cache_root,
    cat12_template_atlas,
    elastix_example_pair,
    fetch,
    fetch_file,
    itk_brain_slices,
    mni2009a_t1_tissues,
    mni2009c_t1_dkt,
)
from .synthetic import (
    invert_field,
    random_bias_field,
    random_intensity_change,
    random_svf_field,
    smooth_noise,
)

__all__ = [
    "SOURCES",
    "ChecksumMismatch",
    "RegistryError",
    "RegistryUnreachable",
    "cache_root",
    "cat12_template_atlas",
    "elastix_example_pair",
    "fetch",
    "fetch_file",
    "invert_field",
    "itk_brain_slices",
    "mni2009a_t1_tissues",
    "mni2009c_t1_dkt",
    "random_bias_field",
    "random_intensity_change",
    "random_svf_field",
    "smooth_noise",
]
