"""Training pairs from the label-map bank (``data.label_pairs``), as both learned families use
them with ``data: labelmaps`` (the default ``data: templates`` keeps the template warps of
:mod:`.template_pairs`).

Why: models trained on warps of two templates learned those templates, not anatomy (issue 13:
worse than no registration on a brain they never saw). Label-map pairs come from many
parcellations of other anatomies, random shapes, two independent subjects and two random
contrasts per pair, with motions from none to a large affine.

Held-out anatomy: training draws from ``label_train_families`` (``cat12`` + random shapes),
validation from ``label_val_families`` (``mni2009c``); ``mni2009a``, the bundled sample's
anatomy, is in neither (:data:`NEVER_TRAINED`). The trainer also validates on a few
``train``-split pairs (``train_val_pairs``) so the log shows the generalisation gap.

The task's config is the family's trained-model config plus :class:`LabelDataFields`; model
files keep only the family's fields (``config_dict``, :func:`model_fields`), so inference reads
them unchanged; checkpoints keep everything (``run_config_dict``).
Not a task itself (no ``register_task``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DATA_KINDS = ("templates", "labelmaps")
IMAGE_SIMILARITIES = ("mind_ssc", "mk_lncc", "deepsim", "none")
#: the bundled sample's anatomy: never a training family
NEVER_TRAINED = ("mni2009a",)


@dataclass
class LabelDataFields:
    """Training-data settings shared by the families' training configs (not saved in model
    files).

    Attributes:
        data: ``"templates"`` (warps of the templates, the shipped models' data) or
            ``"labelmaps"`` (pairs of synthetic subjects from the label bank).
        label_train_families, label_val_families: template families of the two splits
            (``mni2009a`` may be in neither).
        p_shapes: probability of a random-shapes pair, per split (``{"train": .., "val": ..}``).
        p_no_affine: share of pairs without any affine motion (the affine must learn "none").
        p_same_subject: share of pairs of one subject in two contrasts.
        lambda_labels: weight of the coarse-label loss where the family has none of its own
            (AVSM: soft Dice of the warped one-hot labels).
        image_similarity: AVSM's image term on label-map pairs: ``"mind_ssc"`` (measured
            contrast-robust; see ``configs/avsm_labelmaps_affine_3d.yaml``), ``"mk_lncc"`` (the
            family's), ``"deepsim"`` (1 - DeepSim through ``deepsim_ae_2d``'s frozen extractor,
            2D only; untried: that extractor saw one shared contrast per pair) or ``"none"``.
        lambda_image: its weight.
        lambda_affine: AVSM affine stage: weight of the supervised affine term, the mean squared
            distance (in units of 10 mm) between the predicted affine displacement and the
            pair's known motion (its inverse; none for affine-free pairs). 0: off.
        train_val_pairs: training-split pairs validated alongside the held-out ones (logged as
            ``val_train_*``; 0: off).
    """

    data: str = "templates"
    label_train_families: tuple[str, ...] = ("cat12",)
    label_val_families: tuple[str, ...] = ("mni2009c",)
    p_shapes: dict[str, float] = field(default_factory=lambda: {"train": 0.25, "val": 0.0})
    p_no_affine: float = 0.3
    p_same_subject: float = 0.15
    lambda_labels: float = 1.0
    image_similarity: str = "mind_ssc"
    lambda_image: float = 1.0
    lambda_affine: float = 0.0
    train_val_pairs: int = 4


def check_label_fields(config: Any) -> None:
    """Raise ValueError for bad :class:`LabelDataFields` values of ``config``."""
    if config.data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {config.data!r}")
    if config.image_similarity not in IMAGE_SIMILARITIES:
        raise ValueError(f"image_similarity must be one of {IMAGE_SIMILARITIES}, "
                         f"got {config.image_similarity!r}")
    if config.image_similarity == "deepsim" and getattr(config, "dims", 2) != 2:
        raise ValueError("image_similarity deepsim needs dims 2: the zoo's DeepSim feature "
                         "extractors are 2D")
    leaked = set(NEVER_TRAINED) & set(config.label_train_families)
    if leaked:
        raise ValueError(f"{sorted(leaked)} (the bundled sample's anatomy) must stay out of "
                         "training")
    bad = {k: v for k, v in config.p_shapes.items() if k not in ("train", "val")
           or not 0 <= float(v) <= 1}
    if bad:
        raise ValueError(f"p_shapes takes 'train' and 'val' probabilities in [0, 1], got {bad}")
    for name in ("p_no_affine", "p_same_subject"):
        if not 0 <= getattr(config, name) <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(config, name)}")
    if config.train_val_pairs < 0:
        raise ValueError(f"train_val_pairs must be >= 0, got {config.train_val_pairs}")


def model_fields(config: Any, family_class: type) -> dict[str, Any]:
    """The ``family_class`` fields of ``config`` as a JSON-ready dict (what a model file
    stores: inference builds the family's config from it and knows no training-data fields)."""
    from ..config import config_to_dict

    names = {f.name for f in dataclasses.fields(family_class)}
    return {k: v for k, v in config_to_dict(config).items() if k in names}


def pair_config(config: Any, ndim: int) -> Any:
    """The :class:`~napari_deepreg.data.label_pairs.LabelPairConfig` of a family config: its
    affine ranges (``rotation_deg``, ``scale``, ``translation_mm``) and label-data fields."""
    from ...data.label_pairs import LabelPairConfig

    return LabelPairConfig(
        ndim=ndim,
        train_families=tuple(config.label_train_families),
        val_families=tuple(config.label_val_families),
        p_shapes={k: float(v) for k, v in config.p_shapes.items()},
        p_same_subject=config.p_same_subject,
        p_no_affine=config.p_no_affine,
        rotation_deg=config.rotation_deg,
        scale=config.scale,
        translation_mm=config.translation_mm,
        slice_axis=getattr(config, "slice_axis", None),
    )


#: array axes (z, y, x) flipped between the bank's LPS grid and images as files give them
NATIVE_FLIP = (1, 2)


def native_orientation(label_map: Any) -> Any:
    """``label_map`` (:class:`~napari_deepreg.data.atlases.LabelMap` on the bank's LPS grid,
    identity direction) flipped along y and x to the array orientation of a NIfTI stored in RAS
    (direction ``diag(1, -1, -1)`` in (z, y, x) order): the MNI and CAT12 templates, the bundled
    samples, the zoo models' training anatomies and most scanner exports. The pipeline works on
    array axes without reorienting, so training pairs must come in the orientation real images
    do (measured: the bank's Left-GM sits at x fraction 0.65, the templates' and the sample's at
    0.34 and 0.31).
    """
    from dataclasses import replace

    def flip(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(np.flip(a, NATIVE_FLIP))

    return replace(label_map, labels=flip(label_map.labels), coarse=flip(label_map.coarse),
                   template=flip(label_map.template))


def native_sampler(split: str, spacing_mm: float, config: Any, seed: int = 0) -> Any:
    """A :class:`~napari_deepreg.data.label_pairs.LabelPairSampler` of ``split`` on the
    registry's bank at ``spacing_mm`` (2 or 4 mm), the maps in :func:`native_orientation`."""
    from ...data.label_pairs import LabelPairSampler, registry_sampler

    bank = registry_sampler(split, spacing_mm, config, seed=seed)
    maps = [native_orientation(m) for m in bank.maps]
    grid = (bank.shape3, bank.spacing3)
    return LabelPairSampler(maps, config, split, seed, grid=grid)


def label_sampler(config: Any, split: str, ndim: int) -> Any:
    """The :func:`native_sampler` of ``split`` at the config's ``voxel_size`` (pairs come from
    the caller's generator)."""
    return native_sampler(split, float(config.voxel_size), pair_config(config, ndim))


def fit_batch(batch: dict[str, Any], shape: Sequence[int]) -> dict[str, Any]:
    """The batch's ``(N, C, *S)`` grids zero-padded / cropped (centred) to ``shape``.

    The bank's grids (2 mm ``96x112x96``, slices ``112x112``) are one voxel short of the
    ``8 k + 1`` grids semantic_bspline works on; inference pads the same way (zeros around).
    A one-voxel pad goes at the end, so the grid origin (and ``affine``) stay where they were.
    """
    old = tuple(batch["fixed"].shape[2:])
    shape = tuple(int(n) for n in shape)
    if old == shape:
        return batch
    out = dict(batch)
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim == len(old) + 2 and value.shape[2:] == old:
            out[key] = _fit(value, shape)
    return out


def _fit(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    pads: list[int] = []
    for n, m in zip(reversed(x.shape[2:]), reversed(shape), strict=True):
        before = (m - n) // 2
        pads += [before, m - n - before]
    # F.pad crops with negative pads
    return F.pad(x, pads)


def label_counts(samplers: Sequence[Any], num_classes: int) -> Tensor:
    """``(num_classes,)`` float64 voxel counts of the coarse labels over the samplers' maps
    (for class weights)."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for sampler in samplers:
        for m in sampler.maps:
            lab = torch.as_tensor(m.coarse).flatten().long().clamp(0, num_classes - 1)
            counts += torch.bincount(lab, minlength=num_classes).double()
    return counts


def soft_label_loss(fixed_labels: Tensor, moving_labels: Tensor, field_mm: Tensor,
                    spacing: Sequence[float], num_classes: int) -> Tensor:
    """Soft Dice loss (foreground classes) between the fixed labels and the moving labels'
    one-hot maps warped by ``field_mm`` ``(N, D, *S)`` (linear: differentiable in the field).
    Labels ``(N, 1, *S)`` int; returns a scalar in [0, 1]."""
    from ...core import warp_image
    from ...losses.functional import one_hot, soft_dice

    fixed_oh = one_hot(fixed_labels, num_classes)
    warped = warp_image(one_hot(moving_labels, num_classes), field_mm, spacing)
    return soft_dice(warped, fixed_oh, include_background=False)


def motion_fields(batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """``(forward, backward)`` ``(N, D, *S)`` mm: the displacement fields of the known affine
    motion of a label-map batch, fixed -> moving (``B^-1``, the registration's answer up to
    the subjects' own deformations) and moving -> fixed (``B``); zeros for affine-free pairs."""
    from ...core import affine_to_field

    shape = tuple(batch["fixed"].shape[2:])
    spacing = batch["spacing"]
    fwd, bwd = [], []
    for matrix in batch["affine"]:
        matrix = matrix.double().cpu()
        fwd.append(affine_to_field(torch.linalg.inv(matrix), shape, spacing).float())
        bwd.append(affine_to_field(matrix, shape, spacing).float())
    device = batch["fixed"].device
    return torch.cat(fwd).to(device), torch.cat(bwd).to(device)


def field_distance(field: Tensor, target: Tensor) -> Tensor:
    """Mean squared distance of two ``(N, D, *S)`` mm fields in units of 10 mm (scalar)."""
    return (field - target).pow(2).sum(1).mean() / 100.0


def image_similarity(kind: str, warped: Tensor, fixed: Tensor) -> Tensor:
    """The image term on label-map pairs (0 best): MIND-SSC (contrast-independent
    descriptors), the family's mk-LNCC, DeepSim (the default zoo extractor, 2D), or 0."""
    from ...losses.functional import mind_ssc_loss
    from ...methods.avsm.losses import similarity_loss

    if kind == "deepsim":
        from ...losses.deepsim import deepsim_loss
        from ...methods.extractors import load_extractor, pad_to_grid

        extractor = load_extractor(device=warped.device).module
        return deepsim_loss(extractor, pad_to_grid(warped), pad_to_grid(fixed))
    if kind == "mind_ssc":
        return mind_ssc_loss(warped, fixed)
    if kind == "mk_lncc":
        return similarity_loss("mk_lncc", warped, fixed)
    return fixed.new_zeros(())


def describe(config: Any, family: str,
             contrasts: str = "with independent random contrasts") -> str:
    """The model file's ``training_data`` sentence for label-map training (``contrasts``: how
    the two images of a pair get their intensities)."""
    shapes = float(config.p_shapes.get("train", 0.0))
    return (
        f"synthetic pairs from the label bank ({family}): label maps of the "
        f"{', '.join(config.label_train_families)} atlases and {100 * shapes:g} % random shapes,"
        f" two synthetic subjects (random deformations, label edits) {contrasts}; affine "
        f"motion up to {config.rotation_deg:g} deg / +-{100 * config.scale:g}"
        f" % / {config.translation_mm:g} mm, none in {100 * config.p_no_affine:g} %; validated on "
        f"the held-out {', '.join(config.label_val_families)} atlases; MNI 2009a (the bundled "
        "samples) never seen"
    )


__all__ = [
    "DATA_KINDS",
    "IMAGE_SIMILARITIES",
    "NEVER_TRAINED",
    "NATIVE_FLIP",
    "LabelDataFields",
    "check_label_fields",
    "describe",
    "fit_batch",
    "field_distance",
    "image_similarity",
    "motion_fields",
    "label_counts",
    "label_sampler",
    "model_fields",
    "native_orientation",
    "native_sampler",
    "pair_config",
    "soft_label_loss",
]
