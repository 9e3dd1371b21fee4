"""Training pairs from the label bank: two synthetic subjects, two contrasts, an affine motion.

A pair (all draws from one CPU ``torch.Generator``, so a seed reproduces a batch exactly):

1. a source: with probability ``p_shapes`` (of the split) a fresh random-shapes map, else an
   atlas of the split, uniformly (:func:`split_maps`: training and validation hold out whole
   template families, and optionally single atlases);
2. a motion ``B``: with probability ``p_no_affine`` none (models must learn not to invent one),
   else a random affine about the grid centre whose ranges (rotation, scale, translation) are
   scaled by a strength uniform in [0, 1], so motions spread from identity to large;
3. the fixed subject ``F = source o phi_F`` and the moving subject ``M = source o phi_M o B``
   (:func:`~napari_deepreg.data.subjects.make_subject`: independent label edits and large
   deformations); with probability ``p_same_subject`` the moving one is the fixed one moved by
   ``B`` (same anatomy, another contrast: the multi-modal case);
4. two independent contrasts (:func:`~napari_deepreg.data.contrasts.synthesize_contrast`).

2D pairs (``ndim=2``) slice the source map first (a random axis unless fixed, a slice in the
middle of the brain), pad it to a square and do everything above in 2D.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core import affine_to_field
from . import random_affine
from .atlases import LabelMap
from .contrasts import ContrastConfig, synthesize_contrast
from .subjects import (
    Seed,
    Subject,
    SubjectConfig,
    chance,
    make_generator,
    make_subject,
    shapes_map,
    uniform,
    warp_label_stack,
)

SPLITS = ("train", "val")


@dataclass
class LabelPairConfig:
    """How pairs are drawn.

    Attributes:
        ndim: 3, or 2 for slices.
        train_families, val_families: template families of each split (atlases of other
            families are in neither; ``mni2009a``, the bundled sample's anatomy, stays out).
        held_out_atlases: atlases moved from training to validation whatever their family.
        p_shapes: probability that a pair is made from random shapes, per split.
        p_same_subject: probability that the moving subject is the fixed one (new contrast).
        p_no_affine: probability of no affine motion at all.
        rotation_deg, scale, translation_mm: the largest affine motion (per plane, log-scale
            range ``1 / (1 + s) .. 1 + s`` per axis, per axis in mm).
        slice_axis: 2D: the array axis slices are taken along (None: random per pair).
        slice_range: 2D: slices are drawn in this fraction of the brain's extent.
        subject, contrast: :class:`SubjectConfig` and :class:`ContrastConfig`.
    """

    ndim: int = 3
    train_families: tuple[str, ...] = ("cat12",)
    val_families: tuple[str, ...] = ("mni2009c",)
    held_out_atlases: tuple[str, ...] = ()
    p_shapes: dict[str, float] = field(default_factory=lambda: {"train": 0.25, "val": 0.0})
    p_same_subject: float = 0.15
    p_no_affine: float = 0.3
    rotation_deg: float = 20.0
    scale: float = 0.15
    translation_mm: float = 15.0
    slice_axis: int | None = None
    slice_range: tuple[float, float] = (0.3, 0.7)
    subject: SubjectConfig = field(default_factory=SubjectConfig)
    contrast: ContrastConfig = field(default_factory=ContrastConfig)

    def __post_init__(self) -> None:
        if self.ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {self.ndim}")
        overlap = set(self.train_families) & set(self.val_families)
        if overlap:
            raise ValueError(f"families {sorted(overlap)} are in both training and validation")


def split_maps(bank: Sequence[LabelMap], config: LabelPairConfig, split: str) -> list[LabelMap]:
    """The bank's maps of ``split``: ``"train"``: families in ``train_families`` minus
    ``held_out_atlases``; ``"val"``: families in ``val_families`` plus ``held_out_atlases``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    held = set(config.held_out_atlases)
    if split == "train":
        return [m for m in bank if m.family in config.train_families and m.name not in held]
    return [m for m in bank if m.family in config.val_families or m.name in held]


def slice_map(source: LabelMap, axis: int, index: int, side: int) -> LabelMap:
    """The 2D slice ``index`` along ``axis`` of a 3D map, zero-padded (centred) to
    ``(side, side)``."""
    take = [slice(None)] * 3
    take[axis] = index
    in_plane = [a for a in range(3) if a != axis]

    def cut(array: np.ndarray | None) -> np.ndarray | None:
        if array is None:
            return None
        plane = array[tuple(take)]
        pads = [((side - n) // 2, side - n - (side - n) // 2) for n in plane.shape]
        if any(p < 0 for pad in pads for p in pad):
            raise ValueError(f"slice {plane.shape} is larger than {side}")
        return np.pad(plane, pads)

    spacing = tuple(source.spacing[a] for a in in_plane)
    return LabelMap(source.name, source.family, cut(source.labels), cut(source.coarse),
                    cut(source.template), spacing, source.names)


class LabelPairSampler:
    """Batches of synthetic pairs from a label bank, one split, deterministic per seed.

    Args:
        bank: label maps on one working grid (:func:`~napari_deepreg.data.atlases.
            load_label_bank`, or made-up ones); the split picks its part (:func:`split_maps`).
        config: :class:`LabelPairConfig`.
        split: ``"train"`` or ``"val"``.
        seed: int seed or CPU generator (used when :meth:`sample` gets none).
        device: where pairs are made.
        grid: ``(shape, spacing)`` for random shapes when the split has no atlas.
    """

    def __init__(
        self,
        bank: Sequence[LabelMap],
        config: LabelPairConfig | None = None,
        split: str = "train",
        seed: Seed = 0,
        device: torch.device | str = "cpu",
        grid: tuple[Sequence[int], Sequence[float]] | None = None,
    ) -> None:
        self.config = config or LabelPairConfig()
        self.split = split
        self.maps = split_maps(bank, self.config, split)
        self.p_shapes = float(self.config.p_shapes.get(split, 0.0))
        if not self.maps and self.p_shapes <= 0:
            raise ValueError(
                f"no label map of the bank is in the {split!r} split (families "
                f"{sorted({m.family for m in bank})}) and random shapes are off for it"
            )
        first = self.maps[0] if self.maps else (bank[0] if bank else None)
        if grid is None and first is None:
            raise ValueError("give grid=(shape, spacing) for a bank without label maps")
        shape, spacing = grid if grid is not None else (first.shape, first.spacing)
        self.shape3 = tuple(int(n) for n in shape)
        self.spacing3 = tuple(float(s) for s in spacing)
        for m in self.maps:
            if m.shape != self.shape3 or not np.allclose(m.spacing, self.spacing3):
                raise ValueError(f"label map {m.name} is on {m.shape} x {m.spacing} mm, not on "
                                 f"the sampler's grid {self.shape3} x {self.spacing3} mm")
        self.device = torch.device(device)
        self.generator = make_generator(seed)

    # -- one pair ---------------------------------------------------------------------------

    def _source(self, gen: torch.Generator) -> LabelMap:
        use_shapes = chance(gen, self.p_shapes) or not self.maps
        which = int(torch.randint(max(1, len(self.maps)), (), generator=gen))
        axis = int(torch.randint(3, (), generator=gen))
        position = uniform(gen, self.config.slice_range)
        map_seed = int(torch.randint(2**62, (), generator=gen))
        if self.config.ndim == 2:
            axis = axis if self.config.slice_axis is None else self.config.slice_axis
            side = max(n for a, n in enumerate(self.shape3) if a != axis)
            if self.config.slice_axis is None:
                side = max(self.shape3)  # one square for every axis: batches stack
        if use_shapes:
            if self.config.ndim == 2:
                spacing = [s for a, s in enumerate(self.spacing3) if a != axis]
                return shapes_map((side, side), spacing, self.config.subject, map_seed,
                                  self.device)
            return shapes_map(self.shape3, self.spacing3, self.config.subject, map_seed,
                              self.device)
        source = self.maps[which]
        if self.config.ndim == 2:
            brain = np.nonzero(np.moveaxis(source.coarse > 0, axis, 0).any((1, 2)))[0]
            lo, hi = (int(brain[0]), int(brain[-1])) if len(brain) else (0, self.shape3[axis])
            index = int(round(lo + position * (hi - lo)))
            source = slice_map(source, axis, index, side)
        return source

    def _affine(
        self, shape: Sequence[int], spacing: Sequence[float], gen: torch.Generator
    ) -> tuple[torch.Tensor, bool]:
        """``(matrix (D+1, D+1) float64, moved)``: identity with ``p_no_affine``, else a random
        affine about the grid centre at a strength uniform in [0, 1] of the largest motion."""
        cfg = self.config
        none = chance(gen, cfg.p_no_affine)
        strength = uniform(gen, (0.0, 1.0))
        centre = [(n - 1) * s / 2 for n, s in zip(shape, spacing, strict=True)]
        matrix = random_affine(
            len(shape), cfg.rotation_deg * strength, cfg.scale * strength, 0.0,
            cfg.translation_mm * strength, gen, centre,
        )
        if none:
            matrix = torch.eye(len(shape) + 1, dtype=torch.float64)
        return matrix, not none

    def pair(self, generator: torch.Generator | None = None) -> dict[str, Any]:
        """One pair as a dict of ``(1, ...)`` tensors and its ``info`` (advances the generator)."""
        gen = self.generator if generator is None else generator
        source = self._source(gen)
        shape, spacing = source.shape, tuple(source.spacing)
        matrix, moved = self._affine(shape, spacing, gen)
        same = chance(gen, self.config.p_same_subject)
        seeds = [int(torch.randint(2**62, (), generator=gen)) for _ in range(4)]
        motion = affine_to_field(matrix.to(self.device), shape, spacing).float()
        fixed = make_subject(source, self.config.subject, seeds[0], self.device)
        if same:
            stack = torch.cat([fixed.synth, fixed.fine, fixed.coarse])
            warped = warp_label_stack(stack, motion, spacing,
                                      self.config.subject.label_interpolation)
            moving = Subject(warped[0:1], warped[1:2], warped[2:3], motion, spacing,
                             dict(fixed.info))
        else:
            moving = make_subject(source, self.config.subject, seeds[1], self.device, motion)
        fixed_image, fixed_info = synthesize_contrast(
            fixed.synth, spacing, self.config.contrast, seeds[2], fixed.coarse)
        moving_image, moving_info = synthesize_contrast(
            moving.synth, spacing, self.config.contrast, seeds[3], moving.coarse)
        info = {
            "source": source.name, "family": source.family, "same_subject": same,
            "has_affine": moved, "fixed_subject": fixed.info, "moving_subject": moving.info,
            "fixed_contrast": fixed_info, "moving_contrast": moving_info,
        }
        return {
            "fixed": fixed_image, "moving": moving_image,
            "fixed_labels": fixed.coarse, "moving_labels": moving.coarse,
            "fixed_fine_labels": fixed.fine, "moving_fine_labels": moving.fine,
            "fixed_synth_labels": fixed.synth, "moving_synth_labels": moving.synth,
            "affine": matrix[None], "spacing": spacing, "info": info,
        }

    def sample(self, batch_size: int = 1, generator: torch.Generator | None = None
               ) -> dict[str, Any]:
        """``batch_size`` pairs stacked, in the trainer's key convention:

        ``fixed``, ``moving`` ``(N, 1, *S)`` float32 in [0, 1]; ``fixed_labels``,
        ``moving_labels`` ``(N, 1, *S)`` int64 coarse labels (0 .. 6, shared by every atlas);
        ``fixed_fine_labels``, ``moving_fine_labels`` the source atlas' own labels (comparable
        within one pair: both subjects come from one source); ``fixed_synth_labels``,
        ``moving_synth_labels`` what the images were made from; ``affine`` ``(N, D+1, D+1)``
        float64 (the moving subject's motion ``B``, mm about the grid origin; identity for
        affine-free pairs); ``has_affine`` ``(N,)`` bool; ``spacing`` tuple (mm); ``source``
        and ``family`` lists of str; ``info`` a list of dicts (what was drawn).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pairs = [self.pair(generator) for _ in range(batch_size)]
        keys = ("fixed", "moving", "fixed_labels", "moving_labels", "fixed_fine_labels",
                "moving_fine_labels", "fixed_synth_labels", "moving_synth_labels", "affine")
        batch: dict[str, Any] = {k: torch.cat([p[k] for p in pairs]) for k in keys}
        batch["has_affine"] = torch.tensor([p["info"]["has_affine"] for p in pairs])
        batch["spacing"] = pairs[0]["spacing"]
        batch["source"] = [p["info"]["source"] for p in pairs]
        batch["family"] = [p["info"]["family"] for p in pairs]
        batch["info"] = [p["info"] for p in pairs]
        return batch


def registry_sampler(
    split: str = "train",
    spacing_mm: float = 2.0,
    config: LabelPairConfig | None = None,
    seed: Seed = 0,
    device: torch.device | str = "cpu",
    cache: str | None = None,
) -> LabelPairSampler:
    """A :class:`LabelPairSampler` of ``split`` on the registry's label bank, loading only the
    atlases that split draws from (its families' :data:`~napari_deepreg.data.atlases.
    DEFAULT_BANK` atlases, and the held-out ones for ``"val"``)."""
    from .atlases import ATLASES, DEFAULT_BANK, load_atlas

    config = config or LabelPairConfig()
    families = config.train_families if split == "train" else config.val_families
    names = [n for n in DEFAULT_BANK if ATLASES[n].family in families]
    if split == "val":
        names += [n for n in config.held_out_atlases if n not in names]
    bank = [load_atlas(n, spacing_mm, None, cache) for n in names]
    grid = None
    if not bank:
        from .atlases import working_grid

        g = working_grid(spacing_mm)
        grid = (g.shape, g.spacing)
    return LabelPairSampler(bank, config, split, seed, device, grid)


__all__ = [
    "SPLITS",
    "LabelPairConfig",
    "LabelPairSampler",
    "registry_sampler",
    "slice_map",
    "split_maps",
]
