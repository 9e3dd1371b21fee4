"""Compatibility re-exports: the synthetic generators now live in :mod:`.draws` (seeded
generator, ranges, smooth noise), :mod:`.deform` (random SVFs, inverses, affines),
:mod:`.appearance` (intensity changes, bias fields, label-map -> image synthesis) and
:mod:`.phantoms` (the random label phantom).

Kept for importers outside ``data/``: ``benchmarks/cases.py``,
``sample_data/build_sample_data.py`` and ``tests/test_avsm.py``. New code imports from the
modules above (or from :mod:`napari_deepreg.data`).
"""

from .appearance import (
    LabelContrast,
    draw_contrast,
    random_bias_field,
    random_intensity_change,
    synthesize_image,
)
from .deform import (
    apply_random_deformation,
    grid_center,
    invert_field,
    random_affine,
    random_affine_field,
    random_svf_field,
    rotation_planes,
    svf_grid_factor,
)
from .draws import Range, Seed, make_generator, smooth_noise
from .phantoms import random_label_map

__all__ = [
    "LabelContrast",
    "Range",
    "Seed",
    "apply_random_deformation",
    "draw_contrast",
    "grid_center",
    "invert_field",
    "make_generator",
    "random_affine",
    "random_affine_field",
    "random_bias_field",
    "random_intensity_change",
    "random_label_map",
    "random_svf_field",
    "rotation_planes",
    "smooth_noise",
    "svf_grid_factor",
    "synthesize_image",
]
