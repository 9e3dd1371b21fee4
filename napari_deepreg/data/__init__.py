"""Data: pinned registry sources (``sources``) fetched into a verified cache (``download``) and
read by the template loaders (``templates``); seeded random draws (``draws``), deformations
(``deform``), appearance changes and label-map synthesis (``appearance``) and a label phantom
(``phantoms``); synthetic registration pairs with known answers (``pair_config``,
``working_anatomy``, ``pairs``) and label-aware downsampling (``resample``). ``registry`` and
``synthetic`` re-export the old names for importers outside the package. See ``DATA.md`` for what
the registries hold."""

from .appearance import (
    LabelContrast,
    draw_contrast,
    random_bias_field,
    random_intensity_change,
    synthesize_image,
)
from .deform import invert_field, random_affine, random_affine_field, random_svf_field
from .download import (
    ChecksumMismatch,
    RegistryError,
    RegistryUnreachable,
    cache_root,
    fetch,
    fetch_file,
)
from .draws import smooth_noise
from .pair_config import PairConfig
from .pairs import PairSampler, SyntheticPair, make_pair, pair_from_anatomy, slice_pair
from .phantoms import random_label_map
from .resample import downsample_labels, downsample_volume
from .sources import SOURCES
from .templates import (
    cat12_template_atlas,
    elastix_example_pair,
    itk_brain_slices,
    mni2009a_t1_tissues,
    mni2009c_t1_dkt,
)
from .working_anatomy import Anatomy, prepare_anatomy

__all__ = [
    "SOURCES",
    "Anatomy",
    "ChecksumMismatch",
    "LabelContrast",
    "PairConfig",
    "PairSampler",
    "RegistryError",
    "RegistryUnreachable",
    "SyntheticPair",
    "cache_root",
    "cat12_template_atlas",
    "downsample_labels",
    "downsample_volume",
    "draw_contrast",
    "elastix_example_pair",
    "fetch",
    "fetch_file",
    "invert_field",
    "itk_brain_slices",
    "make_pair",
    "mni2009a_t1_tissues",
    "mni2009c_t1_dkt",
    "pair_from_anatomy",
    "prepare_anatomy",
    "random_affine",
    "random_affine_field",
    "random_bias_field",
    "random_intensity_change",
    "random_label_map",
    "random_svf_field",
    "slice_pair",
    "smooth_noise",
    "synthesize_image",
]
