"""Semantically guided two-step B-spline registration (Ha, Wilms & Heinrich, Sensors 2020).

A feature U-Net shared by the fixed and the moving image predicts soft label maps (supervised
by a weighted cross-entropy); two registration networks turn the feature pair into cubic
B-spline fields, a coarse one first and a finer one on the moving features warped by it; the
fields are added or composed. Training needs label maps (label alignment loss + semantic loss +
a smoothness penalty); at inference any pair of the model's domain is registered without labels.

What this module holds:

* :class:`SemanticBSplineConfig` — what the widget and the CLI set at inference (optional
  test-time refinement with instance optimisation, an alternative model file);
* :class:`SemanticBSplineNetConfig` — the trained model: architecture, working grid, losses and
  the training data recipe (the ``method:`` section of ``configs/semantic_bspline_*.yaml``);
* :func:`estimate` — the estimator: resample the pair to the model's working voxel size, predict,
  bring the field back to the input grid (the pipeline then warps once at native resolution);
* :class:`SemanticBSplineTask` — the training recipe for ``napari-deepreg train semantic_bspline``;
* :func:`zoo_method_spec` — one :class:`MethodSpec` per zoo model of this method.

Label set. One model serves every anatomy, so its labels are a coarse common set: the six
hemisphere-split tissue classes of the bundled samples (left/right grey matter, white matter,
CSF). The training templates (MNI 2009c, the CAT12 template) have no tissue maps in the
registries, so :func:`tissue_labels` derives them from the T1 intensities: a three-class k-means
inside the brain with thresholds calibrated on MNI 2009a, where the same rule reproduces the
probability-map tissue labels with Dice 0.96 (GM), 0.96 (WM) and 0.86 (CSF).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import (
    jacobian_determinant,
    resize_separable,
    resized_spacing,
    warp_image,
    warp_labels,
)
from ..fields import validate
from ..nets.semantic_bspline import COMBINE, SemanticBSplineNet, half_grid
from ..training.task import Batch, TrainTask, register_task
from ..volume import InputError, Volume
from . import MethodSpec
from .base import Estimate, Progress

METHOD_ID = "semantic_bspline"
TISSUE_NAMES = {
    0: "background",
    1: "Left-GM",
    2: "Right-GM",
    3: "Left-WM",
    4: "Right-WM",
    5: "Left-CSF",
    6: "Right-CSF",
}
ANATOMIES = ("mni2009c", "cat12", "mni2009a")
# thresholds between the k-means intensity centres (CSF, GM, WM), as fractions of the gap:
# calibrated on MNI 2009a against its probability-map tissue labels (see the module docstring)
_CSF_GM_FRACTION = 0.2
_GM_WM_FRACTION = 0.6
# the U-Net has three stride-2 levels: grids of 8 k + 1 voxels keep every level aligned
_GRID_MULTIPLE = 8


# ----------------------------------------------------------------------------- configs


@dataclass
class SemanticBSplineConfig:
    """Inference settings of a trained semantic B-spline model (every field has GUI metadata).

    The network itself (its working voxel size, scales, how it combines the two fields) is fixed
    by the model it was trained as; see :class:`SemanticBSplineNetConfig`.
    """

    refine: bool = field(
        default=False,
        metadata={"help": "Refine the predicted field by instance optimisation (LNCC + "
                  "diffusion, B-spline) on this pair, starting from the prediction: slower, "
                  "often more accurate on pairs unlike the training data."},
    )
    refine_iterations: int = field(
        default=40,
        metadata={"help": "Optimisation steps of the refinement.", "min": 1, "max": 1000},
    )
    refine_regularisation: float = field(
        # 0.3: mean Dice 0.942 on the benchmark's four 2D slice cases (1.0: 0.923, 0.1: 0.944
        # with a rougher field), no folds
        default=0.3,
        metadata={"help": "Diffusion regulariser weight of the refinement (higher: smoother).",
                  "min": 0.0, "max": 1e4},
    )
    refine_control_spacing: float = field(
        default=8.0,
        metadata={"help": "B-spline control point spacing of the refinement, in mm.",
                  "min": 1.0, "max": 100.0},
    )
    model_file: str = field(
        default="",
        metadata={"help": "Optional path of a model file (a training run's best_model.pt) to "
                  "use instead of the zoo weights; empty uses the zoo model."},
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class SemanticBSplineNetConfig:
    """A trained model: architecture, working grid, losses and training data.

    Attributes:
        dims: 2 (slices) or 3 (volumes).
        working_shape: the training grid in voxels; use ``8 k + 1`` per axis so that the
            half-resolution features sit exactly on every other voxel. 2D models train on
            square slices of a ``(n, n, n)`` anatomy crop, so any slice axis fits one batch.
        voxel_size: working voxel size in mm (an integer multiple of the anatomies' 1 mm); at
            inference images are resampled to it.
        num_classes: labels of the training label set, background included (7: the tissue
            classes of :data:`TISSUE_NAMES`).
        strides: B-spline knot spacing of each registration step in working voxels, coarse
            first (the paper's scales, about 5 % and 3 % of the largest image dimension); one
            value gives the single-step variant.
        combine: ``"add"`` or ``"compose"`` (see :class:`SemanticBSplineNet`).
        unet_channels, regnet_channels: widths (empty: the defaults for ``dims``).
        norm: normalisation in both nets (``"instance"``, ``"batch"``, ``"group"``, ``"none"``).
        lambda_semantic: weight of the semantic cross-entropy (0: the "no guidance" ablation).
        lambda_reg: weight of ``mean |(V - V_smooth) / voxel|^2`` (voxel units).
        reg_kernel: width of the two average poolings that make ``V_smooth``.
        train_anatomies, val_anatomies: templates pairs are drawn from (see :data:`ANATOMIES`).
            The bundled samples are MNI 2009a, held out by default.
        synth_fraction: share of pairs whose images are synthesised from the label maps with a
            random contrast (the rest keep the real T1 intensities with mild gamma / bias).
        svf_magnitude_mm, subject_magnitude_mm, svf_smoothness_mm, rotation_deg, scale,
            translation_mm: the random deformations (see ``data.pairs.PairConfig``).
        slice_axis: 2D only: the axis slices are taken along (None: any of the three).
    """

    dims: int = 2
    working_shape: tuple[int, ...] = (113, 113)
    voxel_size: float = 2.0
    num_classes: int = 7
    strides: tuple[int, ...] = (5, 3)
    combine: str = "add"
    unet_channels: tuple[int, ...] = ()
    regnet_channels: tuple[int, ...] = ()
    norm: str = "instance"
    lambda_semantic: float = 1.0
    lambda_reg: float = 1.0
    reg_kernel: int = 3
    train_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    val_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    synth_fraction: float = 0.5
    svf_magnitude_mm: tuple[float, float] = (2.0, 10.0)
    subject_magnitude_mm: tuple[float, float] = (0.0, 6.0)
    svf_smoothness_mm: float = 16.0
    rotation_deg: float = 5.0
    scale: float = 0.05
    translation_mm: float = 6.0
    slice_axis: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                setattr(self, f.name, tuple(getattr(self, f.name)))
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if len(self.working_shape) != self.dims:
            raise ValueError(f"working_shape {self.working_shape} must have {self.dims} values")
        if self.dims == 2 and len(set(self.working_shape)) != 1:
            raise ValueError(f"2D models train on square slices, got {self.working_shape}")
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")
        if not self.strides or any(int(s) < 1 for s in self.strides):
            raise ValueError(f"strides must be positive voxel counts, got {self.strides}")
        if self.voxel_size <= 0 or not float(self.voxel_size).is_integer():
            raise ValueError(f"voxel_size must be a whole number of mm, got {self.voxel_size}")
        for name in ("train_anatomies", "val_anatomies"):
            chosen = getattr(self, name)
            if not chosen or any(a not in ANATOMIES for a in chosen):
                raise ValueError(f"{name} must be taken from {ANATOMIES}, got {chosen}")
        if not 0 <= self.synth_fraction <= 1:
            raise ValueError(f"synth_fraction must be in [0, 1], got {self.synth_fraction}")


def build_net(config: SemanticBSplineNetConfig) -> SemanticBSplineNet:
    """The network of ``config``."""
    return SemanticBSplineNet(
        config.num_classes,
        config.dims,
        strides=config.strides,
        combine=config.combine,
        unet_channels=config.unet_channels or None,
        regnet_channels=config.regnet_channels or None,
        norm=config.norm,
    )


# ----------------------------------------------------------------------------- losses


def label_weights(counts: Tensor) -> Tensor:
    """Square root of the inverse label frequency, scaled so the voxel-average weight is 1.

    Args:
        counts: ``(L,)`` voxel count of each label (absent labels get the largest weight).
    """
    freq = counts.double() / counts.sum().clamp_min(1)
    present = freq > 0
    w = torch.zeros_like(freq)
    w[present] = freq[present].rsqrt()
    if (~present).any():
        w[~present] = w[present].max() if present.any() else 1.0
    return (w / (freq * w).sum().clamp_min(1e-12)).float()


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """``(N, 1, *S)`` integer labels -> ``(N, L, *S)`` float one-hot (values >= L are dropped)."""
    lab = labels[:, 0].long()
    out = F.one_hot(lab.clamp(0, num_classes - 1), num_classes).movedim(-1, 1).float()
    return out * (lab < num_classes).unsqueeze(1)


def weighted_cross_entropy(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """Mean over voxels of ``-w[y] log softmax(logits)[y]`` (the paper's Eq. 1, averaged).

    Args:
        logits: ``(N, L, *S)``; labels: ``(N, 1, *S)`` integers in ``[0, L)``; weights: ``(L,)``.
    """
    ce = F.cross_entropy(logits, labels[:, 0].long(), weight=weights, reduction="none")
    return ce.mean()


def label_alignment(fixed_onehot: Tensor, warped_onehot: Tensor, weights: Tensor) -> Tensor:
    """``1/L sum_l w_l mean|S_f(l) - T(V, S_m(l))|`` over the foreground labels (Eq. 2)."""
    diff = (fixed_onehot - warped_onehot).abs()
    per_label = diff.flatten(2).mean(2).mean(0)  # (L,)
    return (weights[1:] * per_label[1:]).mean()


def smoothness_penalty(field: Tensor, spacing: Sequence[float], kernel: int = 3) -> Tensor:
    """``mean |V - V_smooth|^2`` in voxels, ``V_smooth`` = two average poolings (Eq. 3).

    Replicate padding keeps a constant field exactly unpenalised at the borders.
    """
    ndim = field.ndim - 2
    sp = torch.tensor(spacing, device=field.device, dtype=field.dtype).view(1, ndim, *[1] * ndim)
    v = field / sp
    pool = F.avg_pool2d if ndim == 2 else F.avg_pool3d
    r = kernel // 2
    smooth = v
    for _ in range(2):
        smooth = pool(F.pad(smooth, [r] * (2 * ndim), mode="replicate"), kernel, stride=1)
    return (v - smooth).pow(2).sum(1).mean()


def normalise_batch(images: Tensor, low: float = 0.005, high: float = 0.995) -> Tensor:
    """Each image's ``[low, high]`` quantiles to ``[0, 1]``, clipped (as the pipeline does)."""
    flat = images.flatten(1).float()
    if flat.shape[1] > 1 << 24:  # torch.quantile's limit: subsample huge images
        flat = flat[:, :: math.ceil(flat.shape[1] / (1 << 24))]
    if flat.device.type == "cpu":
        # numpy selects (partition) where torch.quantile sorts: same linear interpolation,
        # 7x faster on a 2 mm brain pair (0.06 s instead of 0.4 s)
        q = np.percentile(flat.detach().numpy(), [100 * low, 100 * high], axis=1)
        q = torch.from_numpy(q).to(flat)
    else:
        q = torch.quantile(flat, torch.tensor([low, high], device=images.device), dim=1)
    lo = q[0].view(-1, *[1] * (images.ndim - 1))
    hi = q[1].view(-1, *[1] * (images.ndim - 1))
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return ((images - lo) / span).clamp(0, 1)


# ----------------------------------------------------------------------------- anatomies


def _kmeans3(values: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Sorted centres of a three-class 1D k-means (started at the 10/50/90th percentiles)."""
    centres = np.percentile(values, [10, 50, 90]).astype(np.float64)
    for _ in range(iterations):
        cls = np.digitize(values, (centres[:-1] + centres[1:]) / 2)
        new = np.array([values[cls == i].mean() if (cls == i).any() else centres[i]
                        for i in range(3)])
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def _left_of_midline(volume: Volume) -> np.ndarray:
    """Boolean, broadcastable to the volume: the subject's left (LPS x > 0 mm).

    The last array axis is x; its direction entry says whether the index runs along +x or -x.
    """
    axis = volume.ndim - 1
    idx = np.arange(volume.shape[axis], dtype=np.float64)
    x = volume.origin[axis] + volume.direction_matrix()[axis, axis] * idx * volume.spacing[axis]
    return (x > 0).reshape((1,) * axis + (-1,))


def tissue_labels(t1: Volume) -> Volume:
    """Hemisphere-split tissue labels (:data:`TISSUE_NAMES`) of a skull-stripped T1 template.

    Inside the brain (T1 > 0): a three-class k-means of the intensities gives the CSF, GM and WM
    centres; a voxel is CSF below ``c_csf + 0.2 (c_gm - c_csf)``, WM above
    ``c_gm + 0.6 (c_wm - c_gm)``, GM in between (thresholds calibrated on MNI 2009a). Left and
    right split at the mid-sagittal plane x = 0 mm (templates in MNI space).
    """
    image = np.asarray(t1.array, dtype=np.float32)
    brain = image > 0
    if brain.sum() < 100:
        raise ValueError(f"{t1.name or 'image'} has almost no brain voxels (T1 > 0)")
    c = _kmeans3(image[brain])
    lo = c[0] + _CSF_GM_FRACTION * (c[1] - c[0])
    hi = c[1] + _GM_WM_FRACTION * (c[2] - c[1])
    cls = np.digitize(image, [lo, hi])  # 0 CSF, 1 GM, 2 WM
    tissue = np.choose(cls, [3, 1, 2])  # class numbers: 1 GM, 2 WM, 3 CSF
    left = _left_of_midline(t1)
    labels = np.where(brain, 2 * tissue - left.astype(np.int64), 0).astype(np.int32)
    out = Volume(labels, t1.spacing, t1.origin, t1.direction, f"{t1.name} tissue labels")
    out.metadata["names"] = dict(TISSUE_NAMES)
    return out


@functools.lru_cache(maxsize=4)
def load_anatomy(name: str) -> tuple[Volume, Volume]:
    """``(T1, tissue labels)`` of a template at 1 mm (cached; registry data, checksummed).

    ``mni2009c``: MNI ICBM152 2009c asymmetric with :func:`tissue_labels`; ``cat12``: the CAT12
    T1 template, downsampled from 0.5 to 1 mm, with :func:`tissue_labels`; ``mni2009a``: the
    symmetric 2009a template with its probability-map tissue labels (the bundled samples'
    anatomy).
    """
    from ..data import registry
    from ..data.resample import downsample_volume

    if name == "mni2009c":
        t1, _, _ = registry.mni2009c_t1_dkt()
    elif name == "cat12":
        template, _, _ = registry.cat12_template_atlas("lpba40")
        t1 = downsample_volume(template, 2)
        t1.array = t1.array.astype(np.float32)
        t1.name = "CAT12 template"
    elif name == "mni2009a":
        t1, labels, _ = registry.mni2009a_t1_tissues()
        return t1, labels
    else:
        raise ValueError(f"unknown anatomy {name!r}; choose from {ANATOMIES}")
    return t1, tissue_labels(t1)


# ----------------------------------------------------------------------------- inference


def working_grid(
    shape: Sequence[int],
    spacing: Sequence[float],
    voxel_size: float,
    min_shape: Sequence[int] | None = None,
) -> tuple:
    """``(resampled shape, its spacing, padded shape)`` of an input grid at ``voxel_size`` mm.

    The image keeps its field of view (corner voxels fixed); the padded shape is the next
    ``8 k + 1`` per axis (zero padding, centred), and at least ``min_shape``: a tightly cropped
    image is padded to the field of view the model was trained on, since the instance
    normalisation statistics and the convolutions' zero padding depend on the margin around the
    anatomy (measured on the bundled 2D sample: endpoint error 3.2 mm without, 2.4 mm with).
    """
    shape = tuple(int(n) for n in shape)
    resampled = tuple(
        max(2, int(round((n - 1) * s / voxel_size)) + 1) for n, s in zip(shape, spacing,
                                                                       strict=True)
    )
    new_spacing = resized_spacing(shape, spacing, resampled)
    padded = tuple(_GRID_MULTIPLE * math.ceil((m - 1) / _GRID_MULTIPLE) + 1 for m in resampled)
    if min_shape is not None:
        padded = tuple(
            max(p, _GRID_MULTIPLE * math.ceil((int(q) - 1) / _GRID_MULTIPLE) + 1)
            for p, q in zip(padded, min_shape, strict=True)
        )
    return resampled, new_spacing, padded


def _pad_centre(x: Tensor, shape: Sequence[int]) -> tuple[Tensor, list[slice]]:
    """Zero-pad ``(N, C, *S)`` to ``shape`` (centred); returns it and the crop back."""
    pads: list[int] = []
    crop = []
    for n, m in zip(reversed(x.shape[2:]), reversed(tuple(shape)), strict=True):
        before = (m - n) // 2
        pads += [before, m - n - before]
    for n, m in zip(x.shape[2:], shape, strict=True):
        before = (m - n) // 2
        crop.append(slice(before, before + n))
    return F.pad(x, pads), crop


def load_model(source: str, device: torch.device | str = "cpu"):
    """``(network in eval mode, its SemanticBSplineNetConfig)`` for a zoo id or a model file.

    Cached per source and device (zoo weights are checked against their sha256 on first load).
    """
    from ..training.task import load_cached_model

    return load_cached_model(source, device, SemanticBSplineNetConfig, METHOD_ID)


def predict_field(
    model: SemanticBSplineNet,
    net_config: SemanticBSplineNetConfig,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
) -> tuple[Tensor, dict[str, Any]]:
    """The model's field ``(1, D, *S)`` (mm) for a pair on one grid, at the input's resolution.

    The pair is resampled to the model's voxel size (same field of view), normalised, padded to
    ``8 k + 1`` voxels and at least the training grid, registered, and the field cropped and
    resized back (its values are mm, so they carry over).
    """
    shape = tuple(fixed.shape[2:])
    resampled, w_spacing, padded = working_grid(
        shape, spacing, net_config.voxel_size, net_config.working_shape
    )
    pair = resize_separable(torch.cat([fixed, moving], 0).float(), resampled)
    # normalised after padding, like the training slices with their background margin
    pair, crop = _pad_centre(pair, padded)
    pair = normalise_batch(pair)
    with torch.no_grad():
        out = model(pair[:1], pair[1:], w_spacing)
    field = out["field"][(slice(None), slice(None), *crop)]
    field = resize_separable(field, shape)
    info = {"working_shape": list(resampled), "working_spacing": list(w_spacing),
            "padded_shape": list(padded)}
    return field, info


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: SemanticBSplineConfig | None = None,
    device: torch.device | str | None = None,
    model_id: str | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register ``moving`` to ``fixed`` with a trained model; yields Progress.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images in [0, 1] on the same grid.
        spacing: voxel size in mm along the array axes.
        config: inference settings (defaults if None).
        device: where to run (default: the device of ``fixed``).
        model_id: the zoo model (bound by :func:`zoo_method_spec`); ``config.model_file``
            overrides it.

    Returns:
        :class:`Estimate` with the ``(1, D, *S)`` field in mm on the input grid; ``info`` holds
        the working grid and, with refinement, the refinement's figures.
    """
    cfg = config if config is not None else SemanticBSplineConfig()
    dev = torch.device(device) if device is not None else fixed.device
    source = cfg.model_file or model_id
    if not source:
        raise InputError("no semantic_bspline model given: pick a zoo model or set model_file")
    ndim = fixed.ndim - 2
    if fixed.shape != moving.shape or fixed.shape[:2] != (1, 1) or ndim not in (2, 3):
        raise ValueError(
            f"fixed and moving must both be (1, 1, *spatial) 2D/3D, got {tuple(fixed.shape)} and "
            f"{tuple(moving.shape)}"
        )
    total = 2 + (cfg.refine_iterations if cfg.refine else 0)
    yield Progress(0, total, "loading model")
    model, net_config = load_model(source, dev)
    if net_config.dims != ndim:
        raise InputError(f"model {source} registers {net_config.dims}D images, not {ndim}D")
    yield Progress(1, total, "predicting the field")
    field, info = predict_field(model, net_config, fixed.to(dev), moving.to(dev), spacing)
    info["model"] = str(source)
    if cfg.refine:
        from .instance_opt import InstanceOptConfig
        from .instance_opt import estimate as optimise

        opt_cfg = InstanceOptConfig(
            transform="bspline", similarity="lncc", levels=1,
            iterations=cfg.refine_iterations, regularisation=cfg.refine_regularisation,
            control_spacing=cfg.refine_control_spacing, affine_first=False,
        )
        gen = optimise(fixed, moving, spacing, opt_cfg, dev, initial_field=field)
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                refined = stop.value
                break
            yield Progress(2 + p.step, total, f"refining: {p.message}")
        field = refined.field
        info["refinement"] = {k: v for k, v in refined.info.items() if k != "level_shapes"}
    yield Progress(total, total, "done")
    return Estimate(field=field, affine=None, info=info)


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model of this method (called by the methods registry)."""
    dims = tuple(int(d) for d in entry.dims)
    title = f"Semantic B-spline ({'/'.join(f'{d}D' for d in dims)}, {entry.id})"
    return MethodSpec(
        id=entry.id,
        title=title,
        config_class=SemanticBSplineConfig,
        estimate=functools.partial(estimate, model_id=entry.id),
        dims=dims,
        description=entry.description
        or "Semantically guided two-step B-spline network (Ha et al. 2020); labels are needed "
        "for training only.",
        model_id=entry.id,
    )


# ----------------------------------------------------------------------------- training


@register_task
class SemanticBSplineTask(TrainTask):
    """Training of :class:`SemanticBSplineNet` on synthetic pairs from real templates.

    Pairs: ``data.pairs.PairSampler`` on the tissue-labelled templates (random affine + smooth
    diffeomorphism as the answer, a random subject warp for anatomical variety), real T1
    intensities with mild gamma/bias, or (``synth_fraction``) images synthesised from the
    labels with a random contrast. 2D models take random slices (``slice_axis``).
    Loss: label alignment + ``lambda_semantic`` x weighted CE of both images +
    ``lambda_reg`` x smoothness (see the paper's Eq. 4).
    """

    method_id = METHOD_ID
    config_class = SemanticBSplineNetConfig
    default_train = {
        "lr": 1e-3,
        "batch_size": 4,
        "steps": 4000,
        "val_every": 200,
        "val_pairs": 16,
        "checkpoint_every": 200,
        "num_threads": 1,
    }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[tuple[str, str], Any] = {}
        self._weights: Tensor | None = None

    # -- data ------------------------------------------------------------------------------------

    def _pair_config(self, modality: str):
        from ..data.pairs import PairConfig

        cfg = self.config
        shape = tuple(cfg.working_shape)
        anatomy_shape = shape if cfg.dims == 3 else (shape[0],) * 3
        return PairConfig(
            modality=modality,
            svf_magnitude_mm=tuple(cfg.svf_magnitude_mm),
            svf_smoothness_mm=cfg.svf_smoothness_mm,
            subject_magnitude_mm=tuple(cfg.subject_magnitude_mm),
            rotation_deg=cfg.rotation_deg,
            scale=cfg.scale,
            translation_mm=cfg.translation_mm,
            zero_background=True,
            downsample=int(cfg.voxel_size),
            working_shape=anatomy_shape,
            random_slice=cfg.dims == 2,
            slice_axis=cfg.slice_axis,
            slice_range=(0.2, 0.8),
            label_interpolation="nearest",
        )

    def _sampler(self, split: str, modality: str):
        key = (split, modality)
        if key not in self._samplers:
            from ..data.pairs import PairSampler

            names = self.config.train_anatomies if split == "train" else self.config.val_anatomies
            anatomies = [load_anatomy(n) for n in names]
            self._samplers[key] = PairSampler(anatomies, self._pair_config(modality), seed=0)
        return self._samplers[key]

    def setup(self, device: torch.device) -> None:
        self.weights()

    def set_label_weights(self, weights: Tensor) -> None:
        """Use these ``(num_classes,)`` label weights instead of the training anatomies' ones."""
        if weights.shape != (self.config.num_classes,):
            raise ValueError(f"weights must have shape ({self.config.num_classes},)")
        self._weights = weights.float()

    def weights(self) -> Tensor:
        """Label weights (:func:`label_weights`) from the training anatomies on the working grid."""
        if self._weights is None:
            counts = torch.zeros(self.config.num_classes, dtype=torch.float64)
            for anatomy in self._sampler("train", "same").anatomies:
                lab = anatomy.labels.flatten().cpu().clamp_max(self.config.num_classes - 1)
                counts += torch.bincount(lab, minlength=self.config.num_classes).double()
            self._weights = label_weights(counts)
        return self._weights

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        synth = float(torch.rand((), generator=generator)) < self.config.synth_fraction
        sampler = self._sampler("val" if split == "val" else "train", "synth" if synth else "same")
        batch = sampler.sample(batch_size, generator)
        batch["fixed"] = normalise_batch(batch["fixed"])
        batch["moving"] = normalise_batch(batch["moving"])
        batch.pop("affine", None)
        return batch

    # -- model and loss --------------------------------------------------------------------------

    def build_model(self, config: SemanticBSplineNetConfig) -> nn.Module:
        return build_net(config)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        out = model(batch["fixed"], batch["moving"], batch["spacing"])
        return self._loss_terms(out, batch)

    def _loss_terms(self, out: dict, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        w = self.weights().to(out["field"].device)
        spacing = batch["spacing"]
        fixed_oh = one_hot(batch["fixed_labels"], cfg.num_classes)
        moving_oh = one_hot(batch["moving_labels"], cfg.num_classes)
        warped_oh = warp_image(moving_oh, out["field"], spacing)
        deform = label_alignment(fixed_oh, warped_oh, w)
        semantic = 0.5 * (
            weighted_cross_entropy(out["logits_fixed"], half_grid(batch["fixed_labels"]), w)
            + weighted_cross_entropy(out["logits_moving"], half_grid(batch["moving_labels"]), w)
        )
        reg = smoothness_penalty(out["field"], spacing, cfg.reg_kernel)
        total = deform + cfg.lambda_semantic * semantic + cfg.lambda_reg * reg
        return total, {"deform": deform, "semantic": semantic, "reg": reg}

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from .. import metrics

        out = model(batch["fixed"], batch["moving"], batch["spacing"])
        total, terms = self._loss_terms(out, batch)
        spacing = batch["spacing"]
        field = out["field"]
        warped = warp_labels(batch["moving_labels"], field, spacing)
        fixed_lab = batch["fixed_labels"][0, 0].cpu().numpy()
        jac = jacobian_determinant(field, spacing)[0].cpu().numpy()
        mask = fixed_lab > 0
        seg = out["logits_fixed"].argmax(1)[0].cpu().numpy()
        return {
            "loss": float(total),
            **{k: float(v) for k, v in terms.items()},
            "dice": metrics.mean_dice(fixed_lab, warped[0, 0].cpu().numpy()),
            "dice_before": metrics.mean_dice(
                fixed_lab, batch["moving_labels"][0, 0].cpu().numpy()
            ),
            "seg_dice": metrics.mean_dice(half_grid(batch["fixed_labels"])[0, 0].cpu().numpy(),
                                          seg),
            "fold_percent": metrics.fold_percent(jac),
            "sdlogj": metrics.sdlogj(jac, mask),
            "epe": metrics.endpoint_error(
                field[0].cpu().numpy(), batch["field"][0].cpu().numpy(), mask
            ),
        }

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        anatomies = ", ".join(cfg.train_anatomies)
        kind = "2D slices (any axis)" if cfg.dims == 2 and cfg.slice_axis is None else (
            f"2D slices along axis {cfg.slice_axis}" if cfg.dims == 2 else "3D volumes"
        )
        return {
            "dims": [cfg.dims],
            "modality": "MR T1 brain, skull-stripped (contrast-randomised training)",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": (
                f"synthetic pairs ({kind}) from the templates {anatomies} with tissue labels "
                f"(GM/WM/CSF left/right): random affine + smooth diffeomorphism up to "
                f"{max(cfg.svf_magnitude_mm):g} mm, {100 * cfg.synth_fraction:g}% label-"
                "synthesised random contrasts; MNI 2009a (the bundled samples) held out"
            ),
            "label_names": {str(k): v for k, v in TISSUE_NAMES.items()},
        }


__all__ = [
    "ANATOMIES",
    "METHOD_ID",
    "TISSUE_NAMES",
    "SemanticBSplineConfig",
    "SemanticBSplineNetConfig",
    "SemanticBSplineTask",
    "build_net",
    "estimate",
    "label_alignment",
    "label_weights",
    "load_anatomy",
    "load_model",
    "normalise_batch",
    "one_hot",
    "predict_field",
    "resize_separable",
    "smoothness_penalty",
    "tissue_labels",
    "weighted_cross_entropy",
    "working_grid",
    "zoo_method_spec",
]
