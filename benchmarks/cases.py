"""The benchmark's cases: fixed, seeded image pairs with what is known about their answer.

A case is a fixed and a moving image on the same grid, with whatever the pair offers for scoring:
label maps on both sides (Dice, HD95), the true registration field (endpoint error), an image the
perfectly registered moving image should equal (``reference``: NCC), and the region those are
measured in. Groups:

``3d-2mm``, ``3d-1mm``
    Synthetic deformations of real anatomy (MNI 2009c + DKT, the CAT12 template + LPBA40, MNI
    2009a + tissue classes), brain-cropped. The moving image is the fixed one warped by a known
    map (a small random affine composed with the exponential of a smooth random SVF, up to about
    10 mm), then given a gamma curve, a bias field and noise; the true field is that map's inverse
    (fixed-point iteration, residual recorded). For 2 mm the warp runs at 1 mm and both images
    are then downsampled the same way, so they carry the same blur.
``2d-slices``
    The same recipe on 1 mm axial / coronal slices of those anatomies.
``3d-affine``
    The 2 mm recipe with a *large* random affine (rotations up to 20 deg about each axis,
    scaling +-15 % per axis, translations up to 15 mm per axis) composed with the same smooth
    SVF: the misalignment a learned affine stage (``avsm_affine``) is for, and what a
    deformable-only method meets without a pre-alignment. Held-out seeds; the crop keeps
    :data:`AFFINE_MARGIN_MM` around the brain (zero-padded beyond the template), as a head scan's
    field of view would, so the moved brain stays on the grid (``meta["outside_fov_percent"]``
    says how much of the fixed brain's true correspondents still fall off it).
``2d-real``
    ITK's T1 and proton-density slices (same anatomy: the true field is zero, or the known
    13 x 17 pixel shift; the B-spline-deformed one has no published field, but the undeformed PD
    slice is what the warped moving image should look like) and the elastix manual's brain pair
    with its two brain masks as labels.
``phantom``
    Small synthetic blobs with labels (no registry): for the tests and smoke runs.

Cases are built deterministically from a seed and cached as ``.npz`` files named after the case
and a hash of its recipe, so a changed recipe is rebuilt and an unchanged one loads in a second.
Registry data come through :mod:`napari_deepreg.data.registry` (pinned, checksummed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from napari_deepreg.core import (
    affine_to_field,
    compose,
    exp_svf,
    resize,
    warp_image,
    warp_labels,
)
from napari_deepreg.data.synthetic import (
    invert_field,
    make_generator,
    random_intensity_change,
    random_svf_field,
    smooth_noise,
)
from napari_deepreg.volume import Volume

# bump when a builder changes in a way its parameters do not show: every cached case is rebuilt
CASES_VERSION = 1
GROUPS = ("3d-2mm", "3d-1mm", "3d-affine", "2d-slices", "2d-real", "phantom")
MARGIN_MM = 8.0  # kept around the brain when cropping
# kept around the brain for the large-affine cases: 20 deg, 15 % and 15 mm move the edge of a
# 180 mm brain by 20-40 mm; 24 mm gives about the field of view the avsm models train on
# (192 x 224 x 192 mm)
AFFINE_MARGIN_MM = 24.0


class CaseUnavailable(RuntimeError):
    """A case whose data cannot be had here (registry unreachable, unknown name)."""


@dataclass
class BenchCase:
    """One benchmark pair; every array lives on the fixed grid.

    Attributes:
        name, group: identifiers (group is one of :data:`GROUPS`).
        fixed, moving: images ``(*S)`` with the fixed geometry (the moving one already on it).
        fixed_labels, moving_labels: int32 ``(*S)`` label maps (0 = background), or None.
        true_field: ``(D, *S)`` float32 pull-back displacement (mm, array axes) with
            ``moving(x + u(x)) = fixed(x)``, or None when unknown.
        mask: bool ``(*S)`` region where the endpoint error and the reference NCC are measured
            (the fixed foreground), or None for the whole grid. Not given to the methods.
        reference: ``(*S)`` the moving image as it would look perfectly registered, or None.
        description: one line saying what the pair is.
        meta: recipe, seeds and figures of the construction (max displacement, inverse residual).
    """

    name: str
    group: str
    fixed: Volume
    moving: Volume
    fixed_labels: np.ndarray | None = None
    moving_labels: np.ndarray | None = None
    true_field: np.ndarray | None = None
    mask: np.ndarray | None = None
    reference: np.ndarray | None = None
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.fixed.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return self.fixed.shape

    @property
    def spacing(self) -> tuple[float, ...]:
        return self.fixed.spacing

    def save(self, path: str | os.PathLike) -> Path:
        """Write the case to ``path`` (``.npz``) atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "fixed": np.asarray(self.fixed.array, np.float32),
            "moving": np.asarray(self.moving.array, np.float32),
            "spacing": np.asarray(self.fixed.spacing, np.float64),
            "origin": np.asarray(self.fixed.origin, np.float64),
            "direction": self.fixed.direction_matrix().astype(np.float64),
        }
        optional = {
            "fixed_labels": self.fixed_labels, "moving_labels": self.moving_labels,
            "true_field": self.true_field, "mask": self.mask, "reference": self.reference,
        }
        arrays.update({k: np.asarray(v) for k, v in optional.items() if v is not None})
        header = {"name": self.name, "group": self.group, "description": self.description,
                  "meta": self.meta}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            np.savez_compressed(tmp, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is for everyone
            os.replace(tmp, path)  # a reader never sees a half-written case
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchCase:
        """Read a case written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode())
            geometry = {"spacing": tuple(data["spacing"]), "origin": tuple(data["origin"]),
                        "direction": data["direction"]}
            get = {k: (data[k] if k in data.files else None) for k in
                   ("fixed_labels", "moving_labels", "true_field", "mask", "reference")}
            return cls(
                name=header["name"], group=header["group"],
                fixed=Volume(data["fixed"], name="fixed", **geometry),
                moving=Volume(data["moving"], name="moving", **geometry),
                description=header["description"], meta=header["meta"], **get,
            )


# ----------------------------------------------------------------------------------------------
# recipes and suites


@dataclass(frozen=True)
class CaseSpec:
    """How to build a case: ``build(**params)`` returns it; ``params`` (JSON-able) key the cache."""

    name: str
    group: str
    build: Callable[..., BenchCase]
    params: dict[str, Any]
    needs_registry: bool = True

    def cache_key(self) -> str:
        recipe = json.dumps([CASES_VERSION, self.name, self.build.__name__, self.params],
                            sort_keys=True)
        return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _spec(name: str, group: str, build: Callable[..., BenchCase], needs_registry: bool = True,
          **params: Any) -> CaseSpec:
    return CaseSpec(name, group, build, params, needs_registry)


def suite_cases(suite: str) -> list[str]:
    """Case names of a suite (``tiny``, ``quick``, ``full``)."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {sorted(SUITES)}")
    return list(SUITES[suite])


def case_path(spec: CaseSpec, cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / f"{spec.name}-{spec.cache_key()}.npz"


def get_case(name: str, cache_dir: str | os.PathLike | None = None,
             rebuild: bool = False) -> BenchCase:
    """The case ``name``, from the cache when it holds this recipe's build, else built (and cached).

    Raises:
        CaseUnavailable: unknown name, or its registry data cannot be had here.
    """
    spec = CASES.get(name)
    if spec is None:
        raise CaseUnavailable(f"unknown case {name!r}; known: {', '.join(sorted(CASES))}")
    path = case_path(spec, cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file() and not rebuild:
        return BenchCase.load(path)
    from napari_deepreg.data.registry import RegistryError

    try:
        case = spec.build(**spec.params)
    except RegistryError as error:
        raise CaseUnavailable(f"case {name} needs registry data that cannot be had: {error}") \
            from error
    case.name = spec.name  # the registry's name wins over the builder's default
    case.meta = dict(case.meta, recipe=spec.params, cache_key=spec.cache_key(),
                     cases_version=CASES_VERSION)
    if path is not None:
        case.save(path)
    return case


# ----------------------------------------------------------------------------------------------
# anatomy


def _downsample_labels_fn() -> Callable[[np.ndarray, int], np.ndarray]:
    """The project's majority-vote label downsampling (shared with the sample-data builder)."""
    try:
        from napari_deepreg.data.resample import downsample_labels  # type: ignore[import-not-found]

        return downsample_labels
    except ImportError:
        script = Path(__file__).resolve().parents[1] / "sample_data" / "build_sample_data.py"
        spec = importlib.util.spec_from_file_location("_build_sample_data", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module.downsample_labels


def downsample_image(array: np.ndarray, factor: int = 2) -> np.ndarray:
    """Anti-aliased align-corners downsampling (size ``(n - 1) / factor + 1`` per axis)."""
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    return resize(x, [(n - 1) // factor + 1 for n in array.shape])[0, 0].numpy()


def load_anatomy(anatomy: str) -> tuple[Volume, np.ndarray, str]:
    """A 1 mm brain image, its int32 label map on the same grid, and a description.

    ``anatomy``: ``mni2009c_dkt`` (MNI ICBM152 2009c T1 + DKT), ``mni2009a_tissues`` (2009a T1
    + hemisphere-split GM/WM/CSF), ``cat12_lpba40`` (CAT12 template, anti-aliased from 0.5 mm
    onto the LPBA40 atlas's 1 mm grid).
    """
    from napari_deepreg.data import registry

    if anatomy == "mni2009c_dkt":
        t1, labels, _ = registry.mni2009c_t1_dkt()
        return t1, labels.array.astype(np.int32), "MNI 2009c T1 + DKT labels"
    if anatomy == "mni2009a_tissues":
        t1, labels, _ = registry.mni2009a_t1_tissues()
        return t1, labels.array.astype(np.int32), "MNI 2009a T1 + GM/WM/CSF (L/R) labels"
    if anatomy == "cat12_lpba40":
        from napari_deepreg.io import resample_to_grid

        template, atlas, _ = registry.cat12_template_atlas("lpba40")
        ratio = [a / t for a, t in zip(atlas.spacing, template.spacing, strict=True)]
        # Gaussian of half an output voxel before going from 0.5 mm to 1 mm: no aliasing
        smooth = ndimage.gaussian_filter(template.array.astype(np.float32),
                                         [0.5 * r for r in ratio])
        template = dataclasses.replace(template, array=smooth)
        image = resample_to_grid(template, atlas)
        image.array = np.clip(image.array, 0, None).astype(np.float32)
        return image, atlas.array.astype(np.int32), "CAT12 T1 template + LPBA40 labels"
    raise CaseUnavailable(f"unknown anatomy {anatomy!r}")


def foreground(image: np.ndarray, labels: np.ndarray | None = None,
               fraction: float = 0.05) -> np.ndarray:
    """Bool mask of the object: intensity above ``fraction`` of the 99th percentile (or
    labelled), its largest connected component, holes filled (background noise stays out)."""
    high = float(np.percentile(image, 99))
    mask = image > fraction * high
    if labels is not None:
        mask |= labels > 0
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


def crop_box(mask: np.ndarray, spacing: Sequence[float], step: int = 1,
             margin_mm: float = MARGIN_MM, inside: bool = True) -> tuple[slice, ...]:
    """Bounding box of ``mask`` plus ``margin_mm``, each size ``step * k + 1`` voxels (so a
    ``step``-times coarser align-corners grid shares the corner voxels).

    With ``inside`` the box is clipped to the array; without, it keeps the whole margin and may
    reach past either end (a negative start, a stop past the size): cut it with
    :func:`crop_padded`, which pads with zeros.
    """
    box = []
    for axis, n in enumerate(mask.shape):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        margin = int(math.ceil(margin_mm / spacing[axis]))
        lo, hi = int(hits[0]) - margin, int(hits[-1]) + margin
        if not inside:
            box.append(slice(lo, lo + step * max(1, math.ceil((hi - lo) / step)) + 1))
            continue
        lo, hi = max(0, lo), min(n - 1, hi)
        k = max(1, math.ceil((hi - lo) / step))
        lo = max(0, min(lo, n - 1 - step * k))
        k = min(k, (n - 1 - lo) // step)
        box.append(slice(lo, lo + step * k + 1))
    return tuple(box)


def crop_padded(array: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """``array[box]`` for a box that may reach outside the array (zeros there)."""
    before = [max(0, -s.start) for s in box]
    after = [max(0, s.stop - n) for s, n in zip(box, array.shape, strict=True)]
    padded = np.pad(array, list(zip(before, after, strict=True)))
    return np.ascontiguousarray(padded[tuple(slice(s.start + b, s.stop + b)
                                             for s, b in zip(box, before, strict=True))])


def _crop(volume: Volume, box: tuple[slice, ...]) -> Volume:
    start = np.array([s.start for s in box], dtype=float)
    origin = np.asarray(volume.origin) + volume.direction_matrix() @ (start * volume.spacing)
    return Volume(crop_padded(volume.array, box), volume.spacing, tuple(origin),
                  volume.direction, volume.name)


# ----------------------------------------------------------------------------------------------
# synthetic deformation of a real image


def random_affine_matrix(ndim: int, centre: Sequence[float], generator: torch.Generator,
                         rotate_deg: float, scale: float, shift_mm: float) -> np.ndarray:
    """``(D+1, D+1)`` physical affine ``x -> R S (x - c) + c + t``: rotations about each plane up
    to ``rotate_deg``, scales ``1 +- scale`` per axis, shifts up to ``shift_mm`` (uniform)."""

    def uniform(limit: float, n: int) -> np.ndarray:
        return (torch.rand(n, generator=generator).numpy().astype(np.float64) * 2 - 1) * limit

    rotation = np.eye(ndim)
    planes = [(0, 1)] if ndim == 2 else [(0, 1), (0, 2), (1, 2)]
    for (i, j), angle in zip(planes, np.deg2rad(uniform(rotate_deg, len(planes))), strict=True):
        r = np.eye(ndim)
        r[i, i] = r[j, j] = math.cos(angle)
        r[i, j], r[j, i] = -math.sin(angle), math.sin(angle)
        rotation = r @ rotation
    linear = rotation @ np.diag(1 + uniform(scale, ndim))
    centre = np.asarray(centre, dtype=np.float64)
    matrix = np.eye(ndim + 1)
    matrix[:ndim, :ndim] = linear
    matrix[:ndim, ndim] = centre - linear @ centre + uniform(shift_mm, ndim)
    return matrix


def deformation_pair(shape: Sequence[int], spacing: Sequence[float], seed: int, svf_mm: float,
                     smooth_mm: float, rotate_deg: float, scale: float, shift_mm: float,
                     ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """A random map and its inverse on one grid: ``(u, w, info)``, both ``(1, D, *shape)`` mm.

    ``u`` (to warp the fixed image into the moving one) is an affine about the grid centre
    composed with ``exp(v)`` of a smooth SVF; ``w`` solves ``compose(u, w) = 0`` (the true
    registration field: ``moving(x + w(x)) = fixed(x)``), by fixed-point iteration started from
    the analytic inverse of each part. ``info`` holds the peak displacements and the residual.
    """
    gen = make_generator(seed)
    ndim = len(shape)
    svf, velocity = random_svf_field(shape, spacing, svf_mm, smooth_mm, gen, return_velocity=True)
    centre = [0.5 * (n - 1) * s for n, s in zip(shape, spacing, strict=True)]
    matrix = random_affine_matrix(ndim, centre, gen, rotate_deg, scale, shift_mm)
    affine = affine_to_field(torch.from_numpy(matrix).float(), shape, spacing)
    affine_inv = affine_to_field(torch.from_numpy(np.linalg.inv(matrix)).float(), shape, spacing)
    u = compose(affine, svf, spacing)  # phi_a o phi_s
    init = compose(exp_svf(-velocity, spacing), affine_inv, spacing)
    w = invert_field(u, spacing, iterations=100, init=init, tol_mm=1e-4)
    residual = compose(u, w, spacing).norm(dim=1)[0]
    inner = residual[(slice(4, -4),) * ndim] if min(shape) > 8 else residual
    info = {"max_displacement_mm": float(w.norm(dim=1).max()),
            "mean_displacement_mm": float(w.norm(dim=1).mean()),
            "inverse_residual_max_interior_mm": float(inner.max()),
            "inverse_residual_mean_mm": float(residual.mean())}
    return u, w, info


def contrast_change(image: np.ndarray, spacing: Sequence[float], seed: int,
                    gamma: Sequence[float], bias: float, noise: float,
                    ) -> tuple[np.ndarray, dict[str, float]]:
    """Gamma + bias field (:func:`random_intensity_change`) + Gaussian noise, clipped at 0."""
    gen = make_generator(seed)
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    changed, info = random_intensity_change(x, spacing, tuple(gamma), bias, generator=gen)
    sigma = noise * float(np.percentile(image, 99))
    changed = changed + sigma * torch.randn(changed.shape, generator=gen)
    return np.clip(changed[0, 0].numpy(), 0, None).astype(np.float32), dict(info, noise=sigma)


def _warp(image: np.ndarray, u: torch.Tensor, spacing: Sequence[float]) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    return warp_image(x, u, spacing)[0, 0].numpy()


def _warp_labels(labels: np.ndarray, u: torch.Tensor, spacing: Sequence[float]) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(labels, np.int64))[None, None]
    return warp_labels(x, u, spacing)[0, 0].numpy().astype(np.int32)


def synthetic_case(name: str, group: str, image: Volume, labels: np.ndarray, seed: int,
                   deform: dict[str, float], contrast: dict[str, Any], factor: int = 1,
                   description: str = "") -> BenchCase:
    """Fixed = ``image`` (downsampled by ``factor``), moving = its warp by a random map.

    With ``factor > 1`` the map is drawn on the coarse grid, interpolated to ``image``'s grid,
    applied there, and the warped image and labels are downsampled exactly like the fixed ones.
    """
    fine_spacing = image.spacing
    spacing = tuple(s * factor for s in fine_spacing)
    if factor > 1:
        down_labels = _downsample_labels_fn()
        fixed = downsample_image(image.array, factor)
        fixed_labels = down_labels(labels, factor).astype(np.int32)
    else:
        fixed, fixed_labels = image.array.astype(np.float32), labels.astype(np.int32)
    u, w, info = deformation_pair(fixed.shape, spacing, seed, **deform)
    u_fine = resize(u, image.shape, antialias=False) if factor > 1 else u
    moving = _warp(image.array, u_fine, fine_spacing)
    moving_labels = _warp_labels(labels, u_fine, fine_spacing)
    if factor > 1:
        moving = downsample_image(moving, factor)
        moving_labels = _downsample_labels_fn()(moving_labels, factor).astype(np.int32)
    moving, intensity = contrast_change(moving, spacing, seed + 1, **contrast)
    geometry = {"spacing": spacing, "origin": image.origin, "direction": image.direction}
    return BenchCase(
        name=name, group=group,
        fixed=Volume(fixed, name="fixed", **geometry),
        moving=Volume(moving, name="moving", **geometry),
        fixed_labels=fixed_labels, moving_labels=moving_labels,
        true_field=w[0].numpy().astype(np.float32),
        mask=foreground(fixed, fixed_labels),
        description=description,
        meta={"deformation": info, "intensity_change": intensity,
              "labels": int(len(np.unique(fixed_labels)) - 1)},
    )


def build_synthetic_3d(anatomy: str, resolution_mm: int, seed: int, svf_mm: float,
                       smooth_mm: float, rotate_deg: float, scale: float, shift_mm: float,
                       gamma: Sequence[float], bias: float, noise: float) -> BenchCase:
    """A brain-cropped 3D pair at ``resolution_mm`` (1 or 2) from ``anatomy`` (1 mm source)."""
    image, labels, what = load_anatomy(anatomy)
    factor = int(round(resolution_mm / min(image.spacing)))
    box = crop_box(foreground(image.array, labels), image.spacing, step=factor)
    image = _crop(image, box)
    labels = np.ascontiguousarray(labels[box])
    deform = {"svf_mm": svf_mm, "smooth_mm": smooth_mm, "rotate_deg": rotate_deg,
              "scale": scale, "shift_mm": shift_mm}
    contrast = {"gamma": gamma, "bias": bias, "noise": noise}
    name = f"{anatomy}_{resolution_mm}mm"
    return synthetic_case(
        name, f"3d-{resolution_mm}mm", image, labels, seed, deform, contrast, factor,
        f"{what} at {resolution_mm} mm, synthetic affine + SVF deformation and contrast change",
    )


def outside_fov_percent(field: np.ndarray, spacing: Sequence[float],
                        mask: np.ndarray) -> float:
    """Percent of ``mask`` voxels ``x`` whose correspondent ``x + field(x)`` (``field`` ``(D, *S)``
    mm, pull-back) lies outside the grid: moving-image content no registration can recover."""
    shape = mask.shape
    axes = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    outside = np.zeros(shape, bool)
    for axis, (grid, s, n) in enumerate(zip(axes, spacing, shape, strict=True)):
        position = grid + field[axis] / s
        outside |= (position < 0) | (position > n - 1)
    return float(100.0 * outside[mask].mean()) if mask.any() else 0.0


def build_affine_3d(anatomy: str, resolution_mm: int, seed: int, margin_mm: float,
                    svf_mm: float, smooth_mm: float, rotate_deg: float, scale: float,
                    shift_mm: float, gamma: Sequence[float], bias: float,
                    noise: float) -> BenchCase:
    """A ``3d-affine`` pair: like :func:`build_synthetic_3d` with a large affine, on a grid that
    keeps ``margin_mm`` around the brain (zero-padded past the template's own grid)."""
    image, labels, what = load_anatomy(anatomy)
    factor = int(round(resolution_mm / min(image.spacing)))
    box = crop_box(foreground(image.array, labels), image.spacing, step=factor,
                   margin_mm=margin_mm, inside=False)
    image = _crop(image, box)
    labels = crop_padded(labels, box)
    deform = {"svf_mm": svf_mm, "smooth_mm": smooth_mm, "rotate_deg": rotate_deg,
              "scale": scale, "shift_mm": shift_mm}
    contrast = {"gamma": gamma, "bias": bias, "noise": noise}
    case = synthetic_case(
        f"{anatomy}_{resolution_mm}mm_affine", "3d-affine", image, labels, seed, deform,
        contrast, factor,
        f"{what} at {resolution_mm} mm, large synthetic affine (up to {rotate_deg:g} deg, "
        f"+-{100 * scale:g} %, {shift_mm:g} mm) + SVF deformation and contrast change",
    )
    case.meta["outside_fov_percent"] = outside_fov_percent(case.true_field, case.spacing,
                                                           case.mask)
    return case


def build_synthetic_slice(anatomy: str, plane: str, position: float, seed: int, svf_mm: float,
                          smooth_mm: float, rotate_deg: float, scale: float, shift_mm: float,
                          gamma: Sequence[float], bias: float, noise: float) -> BenchCase:
    """A 1 mm slice (``plane`` axial = array axis 0, coronal = axis 1) at ``position`` (fraction
    of the brain's extent along that axis), brain-cropped, with a 2D synthetic deformation."""
    image, labels, what = load_anatomy(anatomy)
    axis = {"axial": 0, "coronal": 1}[plane]
    brain = foreground(image.array, labels)
    hits = np.flatnonzero(brain.any(axis=tuple(a for a in range(3) if a != axis)))
    index = int(round(hits[0] + position * (hits[-1] - hits[0])))
    keep = [a for a in range(3) if a != axis]
    take = [slice(None)] * 3
    take[axis] = index
    direction = image.direction_matrix()[np.ix_(keep, keep)]
    plane_image = Volume(np.ascontiguousarray(image.array[tuple(take)]),
                         tuple(image.spacing[a] for a in keep),
                         tuple(image.origin[a] for a in keep), direction)
    plane_labels = np.ascontiguousarray(labels[tuple(take)])
    box = crop_box(foreground(plane_image.array, plane_labels), plane_image.spacing)
    plane_image, plane_labels = _crop(plane_image, box), plane_labels[box]
    deform = {"svf_mm": svf_mm, "smooth_mm": smooth_mm, "rotate_deg": rotate_deg,
              "scale": scale, "shift_mm": shift_mm}
    contrast = {"gamma": gamma, "bias": bias, "noise": noise}
    case = synthetic_case(
        f"slice_{anatomy}_{plane}", "2d-slices", plane_image, plane_labels, seed, deform,
        contrast, 1, f"{what}, {plane} slice {index}, synthetic 2D deformation and contrast change",
    )
    case.meta["slice_index"] = index
    return case


# ----------------------------------------------------------------------------------------------
# real 2D pairs


# The ITK "shifted" and "BSplined" PD slices carry a 20-pixel border: their pixel (20, 20) is the
# PD slice's pixel (0, 0). The shifted one then moves the content by 13 px in x and 17 px in y:
# measured, shifted[y + 37, x + 33] = pd[y, x] (mean abs difference 2.4 of 255, the next best
# integer offset 11.7).
ITK_BORDER_PX = 20
ITK_SHIFT_YX = (17.0, 13.0)


def build_itk_pair(fixed_key: str, moving_key: str) -> BenchCase:
    """ITK example slices: ``fixed_key`` (t1 / pd) against ``moving_key`` (pd, pd_shifted,
    pd_bspline), the moving one resampled onto the fixed grid (its border offset honoured)."""
    from napari_deepreg.data.registry import itk_brain_slices
    from napari_deepreg.io import resample_to_grid

    slices = itk_brain_slices()
    fixed, moving = slices[fixed_key], slices[moving_key]
    if moving_key in ("pd_shifted", "pd_bspline"):
        moving = dataclasses.replace(
            moving, origin=tuple(o - ITK_BORDER_PX * s for o, s in
                                 zip(moving.origin, moving.spacing, strict=True)))
    fixed = Volume(fixed.array.astype(np.float32), fixed.spacing, fixed.origin, None, "fixed")
    moving = resample_to_grid(dataclasses.replace(moving, direction=None), fixed)
    moving.array = moving.array.astype(np.float32)
    true_field = None
    if moving_key == "pd":
        true_field = np.zeros((2, *fixed.shape), np.float32)
    elif moving_key == "pd_shifted":
        true_field = np.stack([np.full(fixed.shape, v * s, np.float32)
                               for v, s in zip(ITK_SHIFT_YX, fixed.spacing, strict=True)])
    what = {"pd": "the PD slice (same anatomy: true field zero)",
            "pd_shifted": "the PD slice shifted by 13 x 17 px (true field: that shift)",
            "pd_bspline": "the PD slice under an unpublished B-spline warp (reference: PD)"}
    return BenchCase(
        name=f"itk_{fixed_key}_{moving_key}", group="2d-real",
        fixed=fixed, moving=dataclasses.replace(moving, name="moving"),
        true_field=true_field,
        mask=foreground(fixed.array, fraction=0.15),
        reference=slices["pd"].array.astype(np.float32),
        description=f"ITK BrainWeb {fixed_key.upper()} slice vs {what[moving_key]}",
        meta={"source": "Debian insighttoolkit5-examples", "moving_key": moving_key},
    )


def build_elastix_pair() -> BenchCase:
    """The elastix manual's 2D brain MR pair; its brain masks serve as one-label label maps."""
    from napari_deepreg.data.registry import elastix_example_pair
    from napari_deepreg.io import resample_to_grid

    pair = elastix_example_pair()
    fixed = pair["fixed"]
    moving, mask_moving = pair["moving"], pair["mask_moving"]
    if not moving.same_grid(fixed):
        moving = resample_to_grid(moving, fixed)
        mask_moving = resample_to_grid(mask_moving, fixed, labels=True)
    fixed_labels = (pair["mask_fixed"].array > 0).astype(np.int32)
    return BenchCase(
        name="elastix_pair", group="2d-real",
        fixed=Volume(fixed.array.astype(np.float32), fixed.spacing, fixed.origin,
                     fixed.direction, "fixed"),
        moving=Volume(moving.array.astype(np.float32), fixed.spacing, fixed.origin,
                      fixed.direction, "moving"),
        fixed_labels=fixed_labels,
        moving_labels=(mask_moving.array > 0).astype(np.int32),
        mask=fixed_labels > 0,
        description="elastix manual 2D brain MR pair (real), brain masks as labels",
        meta={"source": "Debian elastix-doc"},
    )


# ----------------------------------------------------------------------------------------------
# phantom (no registry)


def build_phantom(shape: Sequence[int], spacing: Sequence[float], seed: int, svf_mm: float,
                  smooth_mm: float) -> BenchCase:
    """Smooth blobs inside an ellipse(oid), 3 labels from intensity bands, a known SVF warp.

    The fixed image is piecewise smooth (one intensity per label plus texture); the moving one is
    its warp by ``exp(v)`` of a random SVF (peak ``svf_mm``), with the labels warped alike.
    """
    shape, spacing = tuple(int(n) for n in shape), tuple(float(s) for s in spacing)
    ndim = len(shape)
    gen = make_generator(seed)
    blobs = smooth_noise(shape, spacing, 3.0 * max(spacing), 1, gen)[0, 0].numpy()
    texture = smooth_noise(shape, spacing, 1.0 * max(spacing), 1, gen)[0, 0].numpy()
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = sum(a**2 for a in axes) < 0.8**2
    bands = np.quantile(blobs[inside], [0.33, 0.66])
    labels = np.where(inside, 1 + np.digitize(blobs, bands), 0).astype(np.int32)
    levels = np.array([0.0, 0.35, 0.65, 1.0], np.float32)
    image = levels[labels] + 0.05 * texture / (np.abs(texture).max() + 1e-12)
    image = ndimage.gaussian_filter(image.astype(np.float32), 0.7)
    deform = {"svf_mm": svf_mm, "smooth_mm": smooth_mm, "rotate_deg": 0.0, "scale": 0.0,
              "shift_mm": 0.0}
    u, w, info = deformation_pair(shape, spacing, seed + 1, **deform)
    geometry = {"spacing": spacing, "origin": (0.0,) * ndim}
    return BenchCase(
        name=f"phantom_{ndim}d", group="phantom",
        fixed=Volume(image, name="fixed", **geometry),
        moving=Volume(_warp(image, u, spacing), name="moving", **geometry),
        fixed_labels=labels, moving_labels=_warp_labels(labels, u, spacing),
        true_field=w[0].numpy().astype(np.float32), mask=inside,
        description=f"{ndim}D synthetic phantom, SVF deformation up to {svf_mm} mm",
        meta={"deformation": info},
    )


# ----------------------------------------------------------------------------------------------
# the registry of cases and the suites


# deformation recipe shared by the 3D cases: SVF peak + a mild affine give up to about 10 mm
_DEFORM_3D = {"svf_mm": 6.0, "smooth_mm": 16.0, "rotate_deg": 2.0, "scale": 0.02,
              "shift_mm": 2.0}
_DEFORM_2D = {"svf_mm": 6.0, "smooth_mm": 12.0, "rotate_deg": 3.0, "scale": 0.03,
              "shift_mm": 2.0}
# the 3d-affine cases: the large affines (as the avsm models train on) + the same SVF
_DEFORM_AFFINE = {"svf_mm": 6.0, "smooth_mm": 16.0, "rotate_deg": 20.0, "scale": 0.15,
                  "shift_mm": 15.0}
# contrast change: gamma in range, smooth multiplicative bias of +-bias, Gaussian noise (fraction
# of the 99th intensity percentile)
_CONTRAST = {"gamma": (0.75, 1.33), "bias": 0.15, "noise": 0.01}


def _build_registry_specs() -> list[CaseSpec]:
    specs = []
    anatomies = (("mni2009c_dkt", 101), ("cat12_lpba40", 202), ("mni2009a_tissues", 303))
    for anatomy, seed in anatomies:
        for mm, group in ((2, "3d-2mm"), (1, "3d-1mm")):
            specs.append(_spec(f"{anatomy}_{mm}mm", group, build_synthetic_3d, anatomy=anatomy,
                               resolution_mm=mm, seed=seed + mm, **_DEFORM_3D, **_CONTRAST))
        # held-out seeds: no other case uses them
        specs.append(_spec(f"{anatomy}_2mm_affine", "3d-affine", build_affine_3d,
                           anatomy=anatomy, resolution_mm=2, seed=seed + 5000,
                           margin_mm=AFFINE_MARGIN_MM, **_DEFORM_AFFINE, **_CONTRAST))
    slices = (("mni2009c_dkt", "axial", 0.55, 411), ("mni2009c_dkt", "coronal", 0.5, 412),
              ("cat12_lpba40", "axial", 0.6, 421), ("mni2009a_tissues", "coronal", 0.45, 431))
    for anatomy, plane, position, seed in slices:
        specs.append(_spec(f"slice_{anatomy}_{plane}", "2d-slices", build_synthetic_slice,
                           anatomy=anatomy, plane=plane, position=position, seed=seed,
                           **_DEFORM_2D, **_CONTRAST))
    for name, fixed, moving in (("itk_t1_pd", "t1", "pd"),
                                ("itk_t1_pd_shifted", "t1", "pd_shifted"),
                                ("itk_t1_pd_bspline", "t1", "pd_bspline"),
                                ("itk_pd_bspline", "pd", "pd_bspline")):
        specs.append(_spec(name, "2d-real", build_itk_pair, fixed_key=fixed, moving_key=moving))
    specs.append(_spec("elastix_pair", "2d-real", build_elastix_pair))
    return specs


def _phantom_specs() -> list[CaseSpec]:
    return [
        _spec("phantom_2d", "phantom", build_phantom, False, shape=(64, 64), spacing=(1.0, 1.0),
              seed=7, svf_mm=4.0, smooth_mm=8.0),
        _spec("phantom_3d", "phantom", build_phantom, False, shape=(32, 36, 32),
              spacing=(2.0, 2.0, 2.0), seed=8, svf_mm=5.0, smooth_mm=12.0),
    ]


CASES: dict[str, CaseSpec] = {s.name: s for s in _phantom_specs() + _build_registry_specs()}

_ALL_2D = [n for n, s in CASES.items() if s.group in ("2d-slices", "2d-real")]
SUITES: dict[str, list[str]] = {
    "tiny": ["phantom_2d", "phantom_3d"],
    "quick": ["slice_mni2009c_dkt_axial", "slice_mni2009a_tissues_coronal", "itk_t1_pd",
              "itk_t1_pd_shifted", "itk_pd_bspline", "elastix_pair", "mni2009c_dkt_2mm",
              "mni2009a_tissues_2mm_affine"],
    "full": [n for n, s in CASES.items() if s.group == "3d-2mm"]
    + [n for n, s in CASES.items() if s.group == "3d-1mm"]
    + [n for n, s in CASES.items() if s.group == "3d-affine"] + _ALL_2D,
}



__all__ = [
    "AFFINE_MARGIN_MM",
    "CASES",
    "GROUPS",
    "SUITES",
    "BenchCase",
    "CaseSpec",
    "CaseUnavailable",
    "build_affine_3d",
    "build_elastix_pair",
    "build_itk_pair",
    "build_phantom",
    "build_synthetic_3d",
    "build_synthetic_slice",
    "case_path",
    "crop_box",
    "crop_padded",
    "deformation_pair",
    "get_case",
    "load_anatomy",
    "outside_fov_percent",
    "random_affine_matrix",
    "suite_cases",
]
