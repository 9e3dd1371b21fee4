"""Classical registration peers for the benchmark: elastix, ANTs SyN, dipy SyN, SimpleITK demons.

Every peer is a function ``peer(fixed, moving, fixed_mask=None) -> PeerResult`` whose field follows
the package's convention (DESIGN.md): ``(D, *S)`` float32, millimetres along the array axes, on the
fixed grid, pull-back, so that ``napari_deepreg.core.warp_image(moving, field, spacing)``
reproduces the peer's own warped image (``PeerResult.warped``; tests/test_peers.py checks this for
every peer).

Geometry: a moving image that is not on the fixed grid is first resampled onto it through physical
space (:func:`napari_deepreg.io.resample_to_grid`). Both images are then handed to the tools in the
fixed grid's own frame ``x = origin + index * spacing`` with an identity direction, whatever the
fixed image's direction cosines: that frame is the one the package's fields live in, so a tool's
physical vectors only need their ``(x, y, z)`` components reversed to become array-order
displacements. (Registration itself does not care about the direction: it rotates both images the
same way.)

The optional packages come from the ``bench`` extra (itk-elastix, antspyx, dipy; SimpleITK is a
core dependency). A peer whose package is missing reports ``available() == False`` and the runner
skips it with :func:`missing_note`. ``available()`` only looks the package up on the path: itk
takes some 20 s to import, so it is imported only when elastix actually runs. Each peer's runtime
covers registration and field extraction, not the import.

Settings are each tool's defaults, with iteration counts cut where the defaults take minutes on a
2-core CPU for a 2 mm brain (~95x115x100 voxels); every change is stated in the peer's docstring
and in ``PeerResult.note``.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk
import torch

from napari_deepreg.core import warp_image
from napari_deepreg.io import resample_to_grid
from napari_deepreg.volume import InputError, Volume, check_image


@dataclass
class PeerResult:
    """What a peer returns.

    Attributes:
        field: ``(D, *S)`` float32 pull-back displacement in mm along the array axes, on the fixed
            grid (frame ``origin + index * spacing``).
        runtime: seconds spent registering and extracting the field (imports excluded).
        note: the settings used, what was changed from the tool's defaults and anything ignored.
        warped: ``(*S)`` float32 moving image as the tool itself resampled it on the fixed grid
            (its own interpolator and padding); a check of the field, not what the benchmark scores.
    """

    field: np.ndarray
    runtime: float
    note: str
    warped: np.ndarray | None = None


PeerFunction = Callable[..., PeerResult]


class Peer(NamedTuple):
    """A registry entry: the registration function and its availability check."""

    run: PeerFunction
    available: Callable[[], bool]


# ----------------------------------------------------------------------------------------------
# shared helpers


@dataclass
class _Pair:
    fixed: np.ndarray  # (*S) float32
    moving: np.ndarray  # (*S) float32, on the fixed grid
    mask: np.ndarray | None  # (*S) bool or None
    spacing: tuple[float, ...]  # array order
    origin: tuple[float, ...]  # array order


def _found(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _prepare(fixed: Volume, moving: Volume, fixed_mask: Volume | np.ndarray | None) -> _Pair:
    """Validate the inputs and put the moving image (and the mask) on the fixed grid."""
    fixed_arr = check_image(fixed.array, "fixed image")
    check_image(moving.array, "moving image")
    if moving.ndim != fixed.ndim:
        raise InputError(
            f"the fixed image is {fixed.ndim}D and the moving image {moving.ndim}D; "
            "give two images of the same dimensionality"
        )
    if not moving.same_grid(fixed):
        moving = resample_to_grid(moving, fixed)
    moving_arr = np.asarray(moving.array, dtype=np.float32)
    mask = None
    if fixed_mask is not None:
        mask = np.asarray(fixed_mask.array if isinstance(fixed_mask, Volume) else fixed_mask)
        if mask.shape != fixed.shape:
            raise InputError(
                f"the fixed mask has shape {mask.shape} but the fixed image has shape "
                f"{fixed.shape}"
            )
        mask = mask > 0
        if not mask.any():
            raise InputError("the fixed mask is empty; give a mask with some voxels set")
    return _Pair(fixed_arr, moving_arr, mask, tuple(fixed.spacing), tuple(fixed.origin))


def _itk_order(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in reversed(values))


def _sitk_image(array: np.ndarray, pair: _Pair) -> sitk.Image:
    """A SimpleITK image on the pair's grid frame (identity direction)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(_itk_order(pair.spacing))
    image.SetOrigin(_itk_order(pair.origin))
    return image


def _from_itk_vectors(vectors: np.ndarray) -> np.ndarray:
    """``(*S, D)`` physical vectors in (x, y, z) order -> ``(D, *S)`` float32 in array order."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(vectors), -1, 0)[::-1], dtype=np.float32)


def _positions(pair: _Pair) -> np.ndarray:
    """``(D, *S)`` physical positions (mm, array order) of the fixed voxel centres."""
    axes = [o + s * np.arange(n) for o, s, n in zip(pair.origin, pair.spacing, pair.fixed.shape,
                                                   strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def warp_with_field(moving: np.ndarray, field: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """``moving`` ``(*S)`` warped by ``field`` ``(D, *S)`` mm with the package's warp (linear,
    border padding); returns ``(*S)`` float32."""
    image = torch.from_numpy(np.ascontiguousarray(moving, dtype=np.float32))[None, None]
    disp = torch.from_numpy(np.ascontiguousarray(field, dtype=np.float32))[None]
    return warp_image(image, disp, tuple(spacing))[0, 0].numpy()


def missing_note(name: str) -> str:
    """The note a runner prints when skipping the peer ``name`` because it is not installed."""
    package = {"elastix": "itk-elastix", "ants_syn": "antspyx", "dipy_syn": "dipy",
               "sitk_demons": "SimpleITK"}.get(name, name)
    return f"{name} skipped: {package} is not installed (pip install 'napari-deepreg[bench]')"


# ----------------------------------------------------------------------------------------------
# elastix


ELASTIX_AFFINE_ITERATIONS = 256  # elastix default
ELASTIX_BSPLINE_ITERATIONS = 256  # elastix default


def elastix_available() -> bool:
    """True if itk-elastix is installed (looked up, not imported)."""
    return _found("itk") and _found("itk.ElastixPython")


def elastix(
    fixed: Volume,
    moving: Volume,
    fixed_mask: Volume | np.ndarray | None = None,
    affine_iterations: int = ELASTIX_AFFINE_ITERATIONS,
    bspline_iterations: int = ELASTIX_BSPLINE_ITERATIONS,
    resolutions: int = 4,
    seed: int = 0,
) -> PeerResult:
    """elastix (itk-elastix): the default "affine" then "bspline" parameter maps.

    Both maps are elastix's defaults (Mattes MI, adaptive stochastic gradient descent,
    ``resolutions`` levels (default 4), 2048 random samples; B-spline grid 10 mm with a
    bending-energy penalty) with ``MaximumNumberOfIterations`` per level set to
    ``affine_iterations`` and ``bspline_iterations`` and a fixed ``RandomSeed`` (same seed, same
    field). On a 2 mm brain (95x115x100) the defaults cost about 47 s of CPU time, so they are
    kept. The dense field is transformix's deformation field: the physical displacement
    ``T(x) - x`` (not the point ``T(x)``) in (x, y, z) order on the fixed grid. elastix's own
    warped image uses cubic B-spline interpolation and 0 outside the moving image.
    """
    import itk

    pair = _prepare(fixed, moving, fixed_mask)
    start = time.perf_counter()
    fixed_image = _itk_image(itk, pair.fixed, pair)
    moving_image = _itk_image(itk, pair.moving, pair)
    parameters = itk.ParameterObject.New()
    for name, iterations in (("affine", affine_iterations), ("bspline", bspline_iterations)):
        parameter_map = parameters.GetDefaultParameterMap(name, int(resolutions))
        parameter_map["MaximumNumberOfIterations"] = [str(int(iterations))]
        parameter_map["RandomSeed"] = [str(int(seed))]
        parameters.AddParameterMap(parameter_map)
    options = {}
    if pair.mask is not None:
        options["fixed_mask"] = _itk_image(itk, pair.mask.astype(np.uint8), pair)
    warped_image, transform_parameters = itk.elastix_registration_method(
        fixed_image, moving_image, parameter_object=parameters, log_to_console=False, **options
    )
    deformation = itk.transformix_deformation_field(moving_image, transform_parameters)
    field = _from_itk_vectors(itk.array_from_image(deformation))
    runtime = time.perf_counter() - start
    note = (
        f"elastix default affine + bspline maps, {affine_iterations} / {bspline_iterations} "
        f"iterations per resolution (default 256 / 256), {resolutions} resolutions (default 4), "
        f"RandomSeed {seed}"
        + ("; fixed mask used" if pair.mask is not None else "")
    )
    warped = np.asarray(itk.array_from_image(warped_image), dtype=np.float32)
    return PeerResult(field, runtime, note, warped)


def _itk_image(itk, array: np.ndarray, pair: _Pair):
    image = itk.image_from_array(np.ascontiguousarray(array))
    image.SetSpacing(_itk_order(pair.spacing))
    image.SetOrigin(_itk_order(pair.origin))
    return image


# ----------------------------------------------------------------------------------------------
# ANTs


def ants_available() -> bool:
    """True if antspyx is installed (looked up, not imported)."""
    return _found("ants")


def ants_syn(
    fixed: Volume,
    moving: Volume,
    fixed_mask: Volume | np.ndarray | None = None,
    type_of_transform: str = "SyN",
    seed: int = 0,
    **options,
) -> PeerResult:
    """ANTs SyN (antspyx ``ants.registration``) with antspyx's defaults.

    ``type_of_transform="SyN"`` is affine (Mattes MI) then SyN (Mattes MI, ``reg_iterations``
    (40, 20, 0)); ``options`` go to ``ants.registration`` unchanged. The forward transforms
    (warp, then affine) are composed into one displacement field on the fixed grid by
    ``ants.apply_transforms(..., compose=...)``: ITK's physical displacement ``T(x) - x``,
    (x, y, z) order. antspyx arrays are indexed (x, y, z), hence the transposes. ``seed`` is
    passed to ANTs, yet the affine stage is not reproducible here even on one ITK thread: on a
    small 2D test pair 10 runs in 76 ended far off, while ``type_of_transform="SyNOnly"`` gave
    the same result every time (on the 3D test pair all 76 runs were close). Benchmark rows of
    this peer can therefore vary between runs.
    """
    import ants

    pair = _prepare(fixed, moving, fixed_mask)
    start = time.perf_counter()
    fixed_image = _ants_image(ants, pair.fixed, pair)
    moving_image = _ants_image(ants, pair.moving, pair)
    if pair.mask is not None:
        options["mask"] = _ants_image(ants, pair.mask.astype(np.float32), pair)
    with tempfile.TemporaryDirectory(prefix="ants_syn_") as folder:
        result = ants.registration(
            fixed_image, moving_image, type_of_transform=type_of_transform,
            outprefix=f"{folder}/reg_", random_seed=seed, **options,
        )
        path = ants.apply_transforms(
            fixed_image, moving_image, result["fwdtransforms"], compose=f"{folder}/composed_"
        )
        vectors = ants.image_read(path).numpy()  # (x, y, z, D)
    field = _from_itk_vectors(vectors.transpose(*reversed(range(pair.fixed.ndim)), pair.fixed.ndim))
    runtime = time.perf_counter() - start
    changed = ", ".join(f"{k}={v!r}" for k, v in options.items() if k != "mask")
    note = (
        f"antspyx registration type_of_transform={type_of_transform!r}, defaults"
        + (f" except {changed}" if changed else "")
        + f", random_seed {seed}"
        + ("; fixed mask used" if pair.mask is not None else "")
    )
    warped = np.asarray(result["warpedmovout"].numpy().T, dtype=np.float32)
    return PeerResult(field, runtime, note, warped)


def _ants_image(ants, array: np.ndarray, pair: _Pair):
    # antspyx indexes arrays (x, y, z): reverse the axes of an array-order image
    return ants.from_numpy(
        np.ascontiguousarray(np.asarray(array, dtype=np.float32).T),
        origin=_itk_order(pair.origin), spacing=_itk_order(pair.spacing),
    )


# ----------------------------------------------------------------------------------------------
# dipy


DIPY_LEVEL_ITERS = (100, 100, 25)  # dipy default
DIPY_AFFINE_LEVEL_ITERS = (100, 10, 0)  # dipy 1.12 default: (1000, 500, 100)


def dipy_available() -> bool:
    """True if dipy is installed (looked up, not imported)."""
    return _found("dipy")


def dipy_syn(
    fixed: Volume,
    moving: Volume,
    fixed_mask: Volume | np.ndarray | None = None,
    level_iters: Sequence[int] = DIPY_LEVEL_ITERS,
    prealign: bool = True,
    affine_level_iters: Sequence[int] = DIPY_AFFINE_LEVEL_ITERS,
) -> PeerResult:
    """dipy SyN: ``SymmetricDiffeomorphicRegistration`` with ``CCMetric`` (defaults: radius 4,
    ``level_iters`` (100, 100, 25)), after dipy's affine pipeline (centre of mass, translation,
    rigid, affine; MI) when ``prealign``.

    The grid-to-world matrix given to dipy is ``diag(spacing)`` plus ``origin`` in array order,
    so dipy's world coordinates are the package's (mm, array order) and its fields need no
    reordering. dipy's SyN takes no mask: a fixed mask only serves the affine stage.
    """
    from dipy.align import VerbosityLevels
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric

    pair = _prepare(fixed, moving, fixed_mask)
    ndim = pair.fixed.ndim
    start = time.perf_counter()
    grid2world = np.eye(ndim + 1)
    grid2world[:ndim, :ndim] = np.diag(pair.spacing)
    grid2world[:ndim, ndim] = pair.origin
    static = pair.fixed.astype(np.float64)
    moving_arr = pair.moving.astype(np.float64)
    affine = None
    if prealign:
        affine = _dipy_affine(static, moving_arr, grid2world, pair.mask, affine_level_iters)
    registration = SymmetricDiffeomorphicRegistration(CCMetric(ndim), level_iters=list(level_iters))
    registration.verbosity = VerbosityLevels.NONE  # no per-level log lines
    mapping = registration.optimize(
        static, moving_arr, static_grid2world=grid2world, moving_grid2world=grid2world,
        prealign=affine,
    )
    field = _dipy_field(mapping, pair, grid2world)
    runtime = time.perf_counter() - start
    note = (
        f"dipy SyN CCMetric defaults, level_iters {tuple(level_iters)}"
        + (
            f"; affine prealign (com, translation, rigid, affine; MI) with level_iters "
            f"{tuple(affine_level_iters)} (dipy default (1000, 500, 100))"
            if prealign else "; no affine prealign"
        )
        + ("; fixed mask used by the affine stage only" if pair.mask is not None and prealign
           else "; fixed mask ignored (dipy SyN takes none)" if pair.mask is not None else "")
    )
    warped = np.asarray(mapping.transform(moving_arr), dtype=np.float32)
    return PeerResult(field, runtime, note, warped)


def _dipy_affine(
    static: np.ndarray,
    moving: np.ndarray,
    grid2world: np.ndarray,
    mask: np.ndarray | None,
    level_iters: Sequence[int],
) -> np.ndarray:
    """dipy's affine pipeline, as ``dipy.align.affine_registration`` runs it (that helper is
    3D-only): centres of mass, then translation, rigid and affine, each by dense mutual
    information (32 bins) on the pyramid sigmas (3, 1, 0) / factors (4, 2, 1).

    Returns:
        ``(D+1, D+1)`` world matrix taking fixed points to moving points: dipy's ``prealign``.
    """
    from dipy.align.imaffine import (
        AffineRegistration,
        MutualInformationMetric,
        transform_centers_of_mass,
    )
    from dipy.align.transforms import regtransforms

    ndim = static.ndim
    registration = AffineRegistration(
        metric=MutualInformationMetric(nbins=32), level_iters=list(level_iters),
        sigmas=[3.0, 1.0, 0.0], factors=[4, 2, 1], verbosity=0,
    )
    affine = transform_centers_of_mass(static, grid2world, moving, grid2world).affine
    for name in ("TRANSLATION", "RIGID", "AFFINE"):
        affine = registration.optimize(
            static, moving, regtransforms[(name, ndim)], None, static_grid2world=grid2world,
            moving_grid2world=grid2world, starting_affine=affine,
            static_mask=None if mask is None else mask.astype(np.int32),
        ).affine
    return affine


def _dipy_field(mapping, pair: _Pair, grid2world: np.ndarray) -> np.ndarray:
    """The pull-back field of a dipy ``DiffeomorphicMap`` from the fixed to the moving grid.

    ``mapping.transform`` samples the moving image at ``T(x)``, with (dipy's ``_warp_forward`` /
    ``_warp_backward``) ``T(x) = P x + f(P x)`` for a forward map and ``T(x) = P^-1 (x + b(x))``
    for an inverted one, ``f``/``b`` being ``mapping.get_forward_field()`` and ``P`` the prealign.
    Both need the displacement grid to be the fixed grid, as SyN's optimize makes it.
    """
    ndim = pair.fixed.ndim
    if tuple(mapping.disp_shape) != pair.fixed.shape or not np.allclose(
        mapping.disp_grid2world, grid2world
    ):
        raise RuntimeError("dipy's displacement grid is not the fixed grid; cannot convert")
    disp = np.moveaxis(np.asarray(mapping.get_forward_field(), dtype=np.float64), -1, 0)
    x = _positions(pair)
    if mapping.is_inverse:
        matrix = np.eye(ndim + 1) if mapping.prealign_inv is None else mapping.prealign_inv
        y = x + disp
    else:
        matrix = np.eye(ndim + 1) if mapping.prealign is None else mapping.prealign
        # sample f at P x: pull f back by the affine displacement P x - x (package warp, linear)
        shift = np.einsum("ij,j...->i...", matrix[:ndim, :ndim], x) - x
        shift += matrix[:ndim, ndim].reshape((ndim,) + (1,) * ndim)
        at_px = np.stack([warp_with_field(c, shift, pair.spacing) for c in disp])
        return (shift + at_px).astype(np.float32)
    mapped = np.einsum("ij,j...->i...", matrix[:ndim, :ndim], y)
    mapped += matrix[:ndim, ndim].reshape((ndim,) + (1,) * ndim)
    return (mapped - x).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# SimpleITK demons


DEMONS_SHRINK = (4, 2, 1)
DEMONS_ITERATIONS = (50, 50, 25)
DEMONS_STD_VOXELS = 1.5


def sitk_demons_available() -> bool:
    """True if SimpleITK is installed (it is a core dependency)."""
    return _found("SimpleITK")


def sitk_demons(
    fixed: Volume,
    moving: Volume,
    fixed_mask: Volume | np.ndarray | None = None,
    shrink_factors: Sequence[int] = DEMONS_SHRINK,
    iterations: Sequence[int] = DEMONS_ITERATIONS,
    smoothing_voxels: float = DEMONS_STD_VOXELS,
) -> PeerResult:
    """SimpleITK diffeomorphic demons on histogram-matched images, coarse to fine.

    The moving image is histogram-matched to the fixed one (1024 levels, 7 match points,
    threshold at mean intensity), then ``DiffeomorphicDemonsRegistrationFilter`` runs on a
    pyramid (``shrink_factors``, Gaussian pre-smoothing of half a shrunken voxel, ``iterations``
    per level; the filter's default is one level of 10 iterations) with the displacement field
    smoothed by ``smoothing_voxels`` (filter default 1.0) and carried to the next level by linear
    resampling. Its output is ITK's physical displacement (x, y, z) on the fixed grid. Demons take
    no mask: a fixed mask is ignored.
    """
    if len(shrink_factors) != len(iterations):
        raise ValueError("shrink_factors and iterations need one entry per pyramid level")
    pair = _prepare(fixed, moving, fixed_mask)
    start = time.perf_counter()
    fixed_image = _sitk_image(pair.fixed, pair)
    moving_image = _sitk_image(pair.moving, pair)
    matcher = sitk.HistogramMatchingImageFilter()
    matcher.SetNumberOfHistogramLevels(1024)
    matcher.SetNumberOfMatchPoints(7)
    matcher.ThresholdAtMeanIntensityOn()
    matched = matcher.Execute(moving_image, fixed_image)

    demons = sitk.DiffeomorphicDemonsRegistrationFilter()
    demons.SetStandardDeviations(float(smoothing_voxels))
    displacement = None
    for factor, count in zip(shrink_factors, iterations, strict=True):
        level_fixed = _shrink(fixed_image, factor)
        level_moving = _shrink(matched, factor)
        if displacement is None:
            initial = sitk.Image(level_fixed.GetSize(), sitk.sitkVectorFloat64)
            initial.CopyInformation(level_fixed)
        else:
            initial = sitk.Resample(displacement, level_fixed, sitk.Transform(),
                                    sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        demons.SetNumberOfIterations(int(count))
        displacement = demons.Execute(level_fixed, level_moving, initial)
    vectors = sitk.GetArrayFromImage(displacement)  # (*S, D), (x, y, z)
    field = _from_itk_vectors(vectors)
    runtime = time.perf_counter() - start
    # the tool's own warp of the original moving image, for the convention check; the transform
    # takes the field image over, so give it a copy
    transform = sitk.DisplacementFieldTransform(sitk.Image(displacement))
    warped = sitk.GetArrayFromImage(
        sitk.Resample(moving_image, fixed_image, transform, sitk.sitkLinear, 0.0)
    ).astype(np.float32)
    note = (
        f"SimpleITK DiffeomorphicDemons on histogram-matched images, shrink {tuple(shrink_factors)}"
        f", iterations {tuple(iterations)} (filter default: 1 level, 10), field smoothing "
        f"{smoothing_voxels} voxels (default 1.0)"
        + ("; fixed mask ignored (demons take none)" if pair.mask is not None else "")
    )
    return PeerResult(field, runtime, note, warped)


def _shrink(image: sitk.Image, factor: int) -> sitk.Image:
    """``image`` smoothed and subsampled by ``factor`` (each axis keeps at least 8 voxels)."""
    factors = [max(1, min(int(factor), n // 8)) for n in image.GetSize()]
    if all(f == 1 for f in factors):
        return image
    # Gaussian of half a shrunken voxel (mm); an axis that is not shrunk is not smoothed
    variances = [
        (0.5 * f * s) ** 2 if f > 1 else 0.0
        for f, s in zip(factors, image.GetSpacing(), strict=True)
    ]
    return sitk.Shrink(sitk.DiscreteGaussian(image, variances), factors)


# ----------------------------------------------------------------------------------------------
# registry


PEERS: dict[str, Peer] = {
    "elastix": Peer(elastix, elastix_available),
    "ants_syn": Peer(ants_syn, ants_available),
    "dipy_syn": Peer(dipy_syn, dipy_available),
    "sitk_demons": Peer(sitk_demons, sitk_demons_available),
}
