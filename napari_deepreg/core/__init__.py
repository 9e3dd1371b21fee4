"""Geometry and spatial maths on torch tensors, 2D and 3D alike (no GUI, no I/O)."""

from .affine import about_centre, affine_to_field, compose_affine_field, homogeneous, shift_origin
from .fields import (
    bspline_control_shape,
    bspline_to_field,
    compose,
    field_magnitude,
    invert_field,
    scale_field_to_voxels,
)
from .grid import (
    as_spacing,
    check_field,
    resized_spacing,
    sampling_grid,
    voxel_grid,
    voxel_to_world,
    world_grid,
    world_to_voxel,
)
from .jacobian import jacobian_determinant, jacobian_matrix
from .smooth import (
    gaussian_kernel1d,
    gaussian_matrix,
    gaussian_smooth,
    matmul_along,
    resize,
    resize_separable,
)
from .svf import exp_svf
from .warp import warp_image, warp_labels

__all__ = [
    "about_centre",
    "affine_to_field",
    "as_spacing",
    "bspline_control_shape",
    "bspline_to_field",
    "check_field",
    "compose",
    "compose_affine_field",
    "exp_svf",
    "field_magnitude",
    "gaussian_kernel1d",
    "gaussian_matrix",
    "gaussian_smooth",
    "homogeneous",
    "invert_field",
    "jacobian_determinant",
    "jacobian_matrix",
    "matmul_along",
    "resize",
    "resize_separable",
    "resized_spacing",
    "sampling_grid",
    "scale_field_to_voxels",
    "shift_origin",
    "voxel_grid",
    "voxel_to_world",
    "warp_image",
    "warp_labels",
    "world_grid",
    "world_to_voxel",
]
