"""Synthetic "subjects" made from label maps (SynthMorph's lesson: train on label maps, not images).

A subject is one label map (an atlas of the bank, :mod:`napari_deepreg.data.atlases`, or purely
random shapes) changed into a new anatomy:

1. label merges (random neighbouring labels become one) and splits (a label cut by a random plane
   or by the zero level of smooth noise): the *synthesis* labels, whose count and layout differ
   from subject to subject, so that no fixed parcellation can be learnt;
2. unlabelled brain voxels (the white matter of a cortical atlas) get labels of their coarse
   tissue class, and optionally the background gets random shapes (clutter outside the brain);
3. a large random smooth deformation (an SVF integrated by scaling and squaring; larger and
   smoother than a pair's own motion) applied to the synthesis, fine and coarse maps alike.

The fine labels (the atlas' own, unmerged) serve Dice within one atlas; the coarse labels (left /
right GM, WM, CSF, :data:`~napari_deepreg.data.atlases.COARSE_NAMES`) are shared by every atlas
and serve the label loss. Images are synthesised from the synthesis labels by
:func:`~napari_deepreg.data.contrasts.synthesize_contrast`; pairs by
:class:`~napari_deepreg.data.label_pairs.LabelPairSampler`.

Everything random is drawn from one CPU ``torch.Generator``: the same seed, the same subject.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core import (
    as_spacing,
    compose,
    exp_svf,
    gaussian_smooth,
    resize,
    resized_spacing,
    warp_image,
    warp_labels,
)
from . import smooth_noise
from .atlases import LabelMap

Range = float | tuple[float, float]
Seed = int | torch.Generator | None

#: synthesis label values given to unlabelled brain voxels (plus their coarse class) and to
#: background shapes (plus the shape number): far above any atlas value
TISSUE_FILL = 10_000_000
BACKGROUND_SHAPES = 20_000_000


def make_generator(seed: Seed) -> torch.Generator:
    """A CPU generator from an int seed (None: 0), or ``seed`` itself if it is one."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    return gen


def uniform(gen: torch.Generator, value: Range) -> float:
    """``value``, or a draw uniform in ``(low, high)``; always consumes exactly one number so
    that changing a range never shifts the draws that follow."""
    u = float(torch.rand((), generator=gen, dtype=torch.float64))
    if isinstance(value, (int, float)):
        return float(value)
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"range must satisfy low <= high, got {value}")
    return low + u * (high - low)


def chance(gen: torch.Generator, probability: float) -> bool:
    """True with ``probability`` (one draw)."""
    return float(torch.rand((), generator=gen, dtype=torch.float64)) < probability


@dataclass
class SubjectConfig:
    """How a subject is made from a label map. Ranges are ``(low, high)``, drawn per subject.

    Attributes:
        magnitude_mm: largest displacement (mm) of the subject's deformation.
        smoothness_mm: smoothing (Gaussian standard deviation, mm) of its velocity noise.
        p_merge: probability that labels are merged at all.
        merge_fraction: share of the foreground labels merged into a neighbour.
        p_split: probability that labels are split at all.
        splits: how many labels are split (drawn as an integer in the range).
        p_background_shapes: probability that the background of an atlas subject is filled
            with random shapes (clutter around the brain; fine and coarse labels stay 0 there).
        shape_labels: number of labels of random-shape maps (integer range).
        shape_smoothness_mm: smoothing of their noise channels.
        label_interpolation: ``"nearest"`` or ``"vote"`` (see :func:`warp_label_stack`).
    """

    magnitude_mm: Range = (4.0, 14.0)
    smoothness_mm: Range = (10.0, 24.0)
    p_merge: float = 0.5
    merge_fraction: Range = (0.05, 0.6)
    p_split: float = 0.5
    splits: tuple[int, int] = (1, 12)
    p_background_shapes: float = 0.1
    shape_labels: tuple[int, int] = (8, 32)
    shape_smoothness_mm: Range = (4.0, 12.0)
    label_interpolation: str = "nearest"


@dataclass
class Subject:
    """A synthetic subject on the working grid.

    Attributes:
        synth: ``(1, 1, *S)`` int64 labels the image is synthesised from (merged, split, filled).
        fine: ``(1, 1, *S)`` int64 the source map's own labels, deformed (0 unlabelled).
        coarse: ``(1, 1, *S)`` int64 coarse labels (0 .. 6), deformed.
        field: ``(1, D, *S)`` displacement (mm, pull-back) that made it from the source map.
        spacing: voxel size (mm) per array axis.
        info: what was drawn (source, magnitude, merges, splits...).
    """

    synth: Tensor
    fine: Tensor
    coarse: Tensor
    field: Tensor
    spacing: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------- label edits


def random_shapes(
    shape: Sequence[int],
    spacing: float | Sequence[float] | None = None,
    n_labels: int = 16,
    smoothness_mm: float = 8.0,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Random shapes: the argmax of ``n_labels`` smoothed white-noise channels (SynthMorph).

    Returns:
        ``(1, 1, *shape)`` int64 with values in ``1 .. n_labels`` (every voxel labelled).
    """
    if n_labels < 1:
        raise ValueError(f"n_labels must be >= 1, got {n_labels}")
    sp = as_spacing(spacing, len(shape))
    # the noise is smooth: draw it on a grid with about one voxel per standard deviation and
    # resize (the argmax of K channels at full size would cost K full-size smoothings)
    factor = max(1, int(smoothness_mm / min(sp)))
    coarse = [(n - 1) // factor + 1 for n in shape]
    coarse_sp = [s * factor for s in sp]
    noise = smooth_noise(coarse, coarse_sp, smoothness_mm, n_labels, make_generator(generator),
                         device)
    # resize a few channels at a time, keeping the running maximum: K full-size channels at once
    # would take K times the memory of the result
    best = torch.full((1, 1, *shape), -torch.inf, device=device)
    labels = torch.zeros((1, 1, *shape), dtype=torch.long, device=device)
    for start in range(0, n_labels, 8):
        chunk = resize(noise[:, start:start + 8], shape, antialias=False)
        value, index = chunk.max(1, keepdim=True)
        better = value > best
        best = torch.where(better, value, best)
        labels = torch.where(better, index + start + 1, labels)
    return labels


def neighbour_pairs(labels: Tensor) -> Tensor:
    """Distinct label values that touch along an array axis: ``(P, 2)`` int64, ``a < b``."""
    values, index = torch.unique(labels, return_inverse=True)
    k = len(values)
    codes = []
    for axis in range(2, labels.ndim):
        n = labels.shape[axis]
        a, b = index.narrow(axis, 0, n - 1), index.narrow(axis, 1, n - 1)
        touch = a != b
        lo, hi = torch.minimum(a, b)[touch], torch.maximum(a, b)[touch]
        codes.append(torch.unique(lo * k + hi))
    code = torch.unique(torch.cat(codes)) if codes else torch.zeros(0, dtype=torch.long)
    return torch.stack([values[code // k], values[code % k]], 1)


def merge_neighbours(labels: Tensor, fraction: float, generator: Seed = None) -> Tensor:
    """Merge about ``fraction`` of the foreground labels into a touching foreground label.

    Touching pairs are taken in random order and merged (union-find) until the count of merges
    is reached; the background (0) never takes part, so the brain keeps its outline.

    Returns:
        ``labels`` with merged labels carrying one of their values (same shape and dtype).
    """
    gen = make_generator(generator)
    pairs = neighbour_pairs(labels)
    pairs = pairs[(pairs > 0).all(1)]
    n_fg = int((torch.unique(labels) > 0).sum())
    wanted = int(round(fraction * n_fg))
    if wanted <= 0 or len(pairs) == 0:
        return labels
    pairs = pairs[torch.randperm(len(pairs), generator=gen)].tolist()
    parent: dict[int, int] = {}

    def root(v: int) -> int:
        while parent.get(v, v) != v:
            v = parent[v]
        return v

    merged = 0
    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
            merged += 1
            if merged >= wanted:
                break
    values = torch.unique(labels)
    target = torch.tensor([root(int(v)) for v in values], dtype=labels.dtype,
                          device=labels.device)
    return target[torch.bucketize(labels, values.to(labels.device))]


def split_label(
    labels: Tensor,
    value: int,
    new_value: int,
    spacing: float | Sequence[float] | None = None,
    generator: Seed = None,
    by_noise: bool = False,
    smoothness_mm: float = 8.0,
) -> Tensor:
    """Give part of label ``value`` the label ``new_value``: the side of a random plane through
    a random point near its centroid, or (``by_noise``) where smooth noise is positive.

    Returns:
        a new ``(1, 1, *S)`` label map.
    """
    gen = make_generator(generator)
    ndim = labels.ndim - 2
    sp = as_spacing(spacing, ndim)
    inside = labels == value
    if by_noise:
        noise = smooth_noise(labels.shape[2:], sp, smoothness_mm, 1, gen, labels.device)
        part = inside & (noise > 0)
    else:
        normal = torch.randn(ndim, generator=gen, dtype=torch.float64)
        normal = normal / normal.norm().clamp_min(1e-12)
        offset = torch.rand(ndim, generator=gen, dtype=torch.float64) - 0.5
        where = torch.nonzero(inside[0, 0]).double()
        if len(where) < 2:
            return labels
        # a plane through the centroid, shifted by up to half the label's spread per axis
        centre = (where.mean(0) + offset.to(where.device) * where.std(0)).tolist()
        proj = torch.zeros((), dtype=torch.float64, device=labels.device)
        for axis in range(ndim):
            view = [1] * ndim
            view[axis] = labels.shape[2 + axis]
            x = torch.arange(labels.shape[2 + axis], device=labels.device, dtype=torch.float64)
            proj = proj + ((x - centre[axis]) * float(normal[axis]) * sp[axis]).view(view)
        part = inside & (proj > 0)
    return torch.where(part, int(new_value), labels)


def _edit_labels(
    synth: Tensor, config: SubjectConfig, spacing: Sequence[float], gen: torch.Generator
) -> tuple[Tensor, dict[str, Any]]:
    """Merges, then splits, of the synthesis labels (draws always consumed in the same order)."""
    info: dict[str, Any] = {"labels_before": int((torch.unique(synth) > 0).sum())}
    do_merge = chance(gen, config.p_merge)
    fraction = uniform(gen, config.merge_fraction)
    merge_seed = int(torch.randint(2**62, (), generator=gen))
    if do_merge:
        synth = merge_neighbours(synth, fraction, merge_seed)
    do_split = chance(gen, config.p_split)
    count = int(torch.randint(config.splits[0], config.splits[1] + 1, (), generator=gen))
    split_seed = int(torch.randint(2**62, (), generator=gen))
    if do_split:
        sgen = make_generator(split_seed)
        values = torch.unique(synth)
        values = values[(values > 0) & (values < TISSUE_FILL)].tolist() or [
            v for v in torch.unique(synth).tolist() if v > 0]
        next_value = int(synth.max()) + 1
        for _ in range(count):
            if not values:
                break
            value = values[int(torch.randint(len(values), (), generator=sgen))]
            by_noise = chance(sgen, 0.5)
            smooth = uniform(sgen, (4.0, 16.0))
            synth = split_label(synth, value, next_value, spacing, sgen, by_noise, smooth)
            next_value += 1
    info.update(merged=do_merge, merge_fraction=fraction if do_merge else 0.0,
                splits=count if do_split else 0,
                labels_after=int((torch.unique(synth) > 0).sum()))
    return synth, info


# ------------------------------------------------------------------------------- subjects


def subject_field(
    shape: Sequence[int],
    spacing: Sequence[float],
    magnitude_mm: float,
    smoothness_mm: float,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A large smooth diffeomorphism, cheaply: white noise on a control grid of about one node
    per ``smoothness_mm``, lightly smoothed there, resized to half the working grid, scaled to a
    largest velocity of ``magnitude_mm``, integrated by scaling and squaring, resized back.

    :func:`~napari_deepreg.data.random_svf_field` calibrates its peak exactly but smooths
    full-size noise and integrates four times (about 0.4 s a field at 4 mm, 3 s at 2 mm on one
    CPU thread); a subject needs variety, not an exact peak: the result's largest displacement
    is near ``magnitude_mm`` (an SVF's exponential moves little further than its velocity).

    Returns:
        ``(1, D, *shape)`` displacement in mm (pull-back).
    """
    gen = make_generator(generator)
    ndim = len(shape)
    sp = as_spacing(spacing, ndim)
    nodes = [max(3, math.ceil((n - 1) * s / smoothness_mm) + 1) for n, s in zip(shape, sp,
                                                                                 strict=True)]
    noise = torch.randn((1, ndim, *nodes), generator=gen).to(device)
    noise = gaussian_smooth(noise, [0.7] * ndim)
    half = [max(2, (n + 1) // 2) for n in shape]
    velocity = resize(noise, half, antialias=False)
    peak = velocity.norm(dim=1).max().clamp_min(1e-12)
    velocity = velocity * (magnitude_mm / peak)
    field_ = exp_svf(velocity, resized_spacing(shape, sp, half), 7)
    return resize(field_, shape, antialias=False).contiguous()



def shapes_map(
    shape: Sequence[int],
    spacing: Sequence[float],
    config: SubjectConfig,
    generator: Seed = None,
    device: torch.device | str = "cpu",
) -> LabelMap:
    """A random-shapes "atlas" (:func:`random_shapes`) as a :class:`LabelMap` of family
    ``"synthetic"``: its coarse labels cycle through the six tissue classes (a shape pair is
    made from one such map, so its labels correspond; the classes mean nothing anatomical)."""
    gen = make_generator(generator)
    n = int(torch.randint(config.shape_labels[0], config.shape_labels[1] + 1, (), generator=gen))
    smooth = uniform(gen, config.shape_smoothness_mm)
    labels = random_shapes(shape, spacing, n, smooth, gen, device)[0, 0].cpu().numpy()
    coarse = ((labels - 1) % 6 + 1).astype(np.uint8)
    names = {0: "background", **{k: f"shape-{k}" for k in range(1, n + 1)}}
    return LabelMap("shapes", "synthetic", labels.astype(np.int32), coarse, None,
                    tuple(float(s) for s in spacing), names)


def make_subject(
    source: LabelMap,
    config: SubjectConfig | None = None,
    generator: Seed = None,
    device: torch.device | str = "cpu",
    inner: Tensor | None = None,
) -> Subject:
    """A new subject from ``source`` (2D or 3D): label edits, background shapes, a deformation.

    Args:
        source: the label map on the working grid.
        config: :class:`SubjectConfig` (default settings if None).
        generator: int seed or CPU ``torch.Generator``.
        device: where the work runs.
        inner: ``(1, D, *S)`` displacement (mm) applied before the subject's deformation, e.g. a
            pair's affine motion: the subject is ``source o phi_subject o phi_inner``.
    """
    config = config or SubjectConfig()
    gen = make_generator(generator)
    shape = source.shape
    sp = tuple(float(s) for s in source.spacing)
    fine = torch.as_tensor(source.labels, dtype=torch.long, device=device)[None, None]
    coarse = torch.as_tensor(source.coarse, dtype=torch.long, device=device)[None, None]
    # unlabelled brain voxels: one synthesis label per tissue, both hemispheres alike (a label
    # per hemisphere would give each half its own intensity: a step at the midline no scan has)
    synth = torch.where((fine == 0) & (coarse > 0), TISSUE_FILL + (coarse + 1) // 2, fine)
    synth, info = _edit_labels(synth, config, sp, gen)
    background = chance(gen, config.p_background_shapes) and source.family != "synthetic"
    bg_seed = int(torch.randint(2**62, (), generator=gen))
    if background:
        clutter = shapes_map(shape, sp, config, bg_seed, device)
        shapes = torch.as_tensor(clutter.labels, dtype=torch.long, device=device)[None, None]
        synth = torch.where(synth == 0, BACKGROUND_SHAPES + shapes, synth)
    magnitude = uniform(gen, config.magnitude_mm)
    smoothness = uniform(gen, config.smoothness_mm)
    svf_seed = int(torch.randint(2**62, (), generator=gen))
    field_ = subject_field(shape, sp, magnitude, smoothness, svf_seed, device)
    if inner is not None:
        field_ = compose(field_, inner.to(field_), sp)
    warped = warp_label_stack(torch.cat([synth, fine, coarse]), field_, sp,
                              config.label_interpolation)
    info.update(source=source.name, family=source.family, magnitude_mm=magnitude,
                smoothness_mm=smoothness, background_shapes=background)
    return Subject(warped[0:1], warped[1:2], warped[2:3], field_, sp, info)


def warp_label_stack(
    stack: Tensor, field_: Tensor, spacing: Sequence[float], mode: str = "nearest"
) -> Tensor:
    """Warp several label maps ``(M, 1, *S)`` with one field ``(1, D, *S)`` (mm).

    ``"nearest"``: the maps are relabelled to consecutive indices (exact in float32), stacked as
    channels and sampled once at nearest neighbour, so the sampling grid is built once: at 2 mm
    on a CPU several times faster than ``"vote"``
    (:func:`~napari_deepreg.core.warp_labels`, the label of largest linear weight, smoother
    borders)."""
    if mode == "vote":
        return warp_labels(stack, field_.expand(len(stack), *field_.shape[1:]).contiguous(),
                           spacing)
    if mode != "nearest":
        raise ValueError(f"mode must be 'nearest' or 'vote', got {mode!r}")
    values, index = torch.unique(stack, return_inverse=True)
    channels = index.transpose(0, 1).float()  # (1, M, *S)
    warped = warp_image(channels, field_.to(channels), spacing, mode="nearest")
    return values[warped.round().long()].transpose(0, 1).contiguous()


def label_count(labels: Tensor) -> int:
    """Number of distinct foreground labels in a map."""
    return int((torch.unique(labels) > 0).sum())


def degrees(matrix: Tensor) -> float:
    """Rotation angle (degrees) of the linear part of an affine (polar decomposition)."""
    d = matrix.shape[-1] - 1
    u, _, vh = torch.linalg.svd(matrix[:d, :d].double())
    rot = u @ vh
    cos = ((torch.trace(rot) - (d - 2)) / 2).clamp(-1, 1) if d == 3 else rot[0, 0].clamp(-1, 1)
    return math.degrees(math.acos(float(cos)))


__all__ = [
    "BACKGROUND_SHAPES",
    "TISSUE_FILL",
    "Subject",
    "SubjectConfig",
    "chance",
    "degrees",
    "label_count",
    "make_generator",
    "make_subject",
    "merge_neighbours",
    "neighbour_pairs",
    "random_shapes",
    "shapes_map",
    "subject_field",
    "split_label",
    "uniform",
    "warp_label_stack",
]
