"""AVSM: networks for joint affine and non-parametric registration (Shen et al., CVPR 2019).

A multi-step affine network (one network, weights shared over the steps like a recurrent net)
predicts an affine map by composing updates ``A_t = A~ A_{t-1}``, ``b_t = A~ b_{t-1} + b~``,
each seeing the target and the source resampled *from the original* with the current affine.
Then a momentum U-Net predicts a low-resolution vector momentum, smoothed into a velocity by a
multi-Gaussian kernel; the map is advected by it for unit time from the affine map (multi-step:
the next step starts from the previous map), upsampled, and the source interpolated once.
See :mod:`napari_deepreg.nets.avsm` for the geometry.

What this module holds:

* :class:`AvsmConfig`, :class:`AvsmAffineConfig` — inference settings (number of affine and
  vSVF steps, optional model file) with GUI metadata, for the methods ``avsm`` (affine + vSVF)
  and ``avsm_affine`` (the affine stage alone: a fast learned pre-alignment);
* :class:`AvsmNetConfig` — the trained model (the ``method:`` section of
  ``configs/avsm_*.yaml``): architecture, working grid, losses, training data;
* :func:`estimate` — the estimator (both methods);
* :class:`AvsmTask` — ``napari-deepreg train avsm``: ``stage: affine`` trains the affine net
  (single-step first, then multi-step from ``init_from``), ``stage: vsvf`` trains the momentum
  net with the affine net frozen;
* :func:`zoo_method_spec` — one MethodSpec per zoo model (ids ``avsm_affine*``: affine only).

Losses (the paper's Eq. 3-12). Affine: ``sim(st) + sim(ts) + lambda_ar(n) (|A - I|^2 + |b|^2)``
for both directions ``+ lambda_as (|A^ts A - I|^2 + |A^ts b + b^ts|^2)``, with the epoch-dependent
``lambda_ar = C K / (K + exp(n / K))``. vSVF, summed over the steps:
``sim(st) + sim(ts) + lambda_vr (<m, v>_st + <m, v>_ts) + lambda_vs |Phi^-1 o (Phi^ts)^-1 - id|^2``.
Units (a choice the paper leaves open): ``b``, ``m``, ``v`` and the symmetry error are in the
normalised frame (fractions of the image's largest extent); ``<m, v>`` is the mean over the
voxels (an integral over the unit cube); the vSVF symmetry error is the *sum* over voxels of
the squared error (with a mean the paper's weight 1e-4 would have no effect at all).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import (
    jacobian_determinant,
    resize,
    resize_separable,
    resized_spacing,
    warp_image,
    warp_labels,
)
from ..fields import validate
from ..losses import functional as L
from ..nets.avsm import (
    AvsmNet,
    affine_field,
    affine_matrix_mm,
    compose_affine_field,
    grid_frame,
    inverse_consistency,
)
from ..training.task import Batch, TrainTask, register_task
from ..volume import InputError
from . import MethodSpec
from .base import Estimate, Progress

METHOD_ID = "avsm"
STAGES = ("affine", "vsvf")
SIMILARITIES = ("mk_lncc", "lncc", "ncc")
ANATOMIES = ("mni2009c", "cat12", "mni2009a")
_GRID_MULTIPLE = 8  # the momentum U-Net halves the grid three times


# ----------------------------------------------------------------------------- configs


@dataclass
class AvsmAffineConfig:
    """Inference settings of the multi-step affine network alone (``avsm_affine``)."""

    affine_steps: int = field(
        default=7,
        metadata={"help": "Steps of the multi-step affine network (each refines the affine "
                  "by composition; the paper trains with 5 and tests with 7).", "min": 1,
                  "max": 20},
    )
    model_file: str = field(
        default="",
        metadata={"help": "Optional model file (a training run's best_model.pt) to use "
                  "instead of the zoo weights; empty uses the zoo model."},
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class AvsmConfig:
    """Inference settings of AVSM: multi-step affine network, then multi-step vSVF."""

    affine_steps: int = field(
        default=7,
        metadata={"help": "Steps of the multi-step affine network (each refines the affine "
                  "by composition; the paper trains with 5 and tests with 7).", "min": 1,
                  "max": 20},
    )
    vsvf_steps: int = field(
        default=2,
        metadata={"help": "vSVF steps (each starts from the previous map): more steps align "
                  "more closely but may fold; 0 gives the affine alone.", "min": 0, "max": 10},
    )
    model_file: str = field(
        default="",
        metadata={"help": "Optional model file (a training run's best_model.pt) to use "
                  "instead of the zoo weights; empty uses the zoo model."},
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class AvsmNetConfig:
    """A trained AVSM model: architecture, working grid, losses, training data.

    Attributes:
        dims: 3 (2 works for tests and slices).
        stage: ``"affine"`` trains the affine net; ``"vsvf"`` trains the momentum net with the
            affine net frozen (its weights from ``init_from``).
        working_shape: training grid (voxels), divisible by 8; inference pads to a multiple of 8.
        voxel_size: working voxel size in mm (inputs are resampled to it).
        affine_shape: grid the affine net sees.
        affine_channels, unet_channels: network widths.
        affine_steps: steps of the affine net in training (1 first, then e.g. 5).
        vsvf_steps: vSVF steps in training.
        time_steps: advection steps per vSVF step.
        sigmas, sigma_weights: multi-Gaussian kernel (fractions of the largest image extent).
        similarity: ``"mk_lncc"`` (windows S/4 and S/2, weights 0.3/0.7, S the smallest grid
            size), ``"lncc"`` (window S/4) or ``"ncc"`` (global; the paper's ablation baseline).
        lambda_ar_c, lambda_ar_k: epoch-dependent affine regularisation (``C``, ``K``; C=0: off).
        lambda_as: affine symmetry weight. lambda_vr: vSVF regulariser. lambda_vs: vSVF symmetry.
        pairs_per_epoch: pairs that make one "epoch" ``n`` of ``lambda_ar`` (counted in the
            model, so resumed runs continue the schedule).
        init_from: model file whose matching weights initialise the net (training only).
        init_momentum_from: for ``stage: vsvf``, an avsm model file whose momentum-net weights
            replace those of ``init_from`` (training only): a vSVF trained on one affine net
            continues on another.
        train_anatomies, val_anatomies: templates pairs are drawn from.
        rotation_deg, scale, translation_mm, svf_magnitude_mm, subject_magnitude_mm,
            svf_smoothness_mm: the random deformations (``data.pairs.PairConfig``).
    """

    dims: int = 3
    stage: str = "affine"
    working_shape: tuple[int, ...] = (48, 56, 48)
    voxel_size: float = 4.0
    affine_shape: tuple[int, ...] = (32, 32, 32)
    affine_channels: tuple[int, ...] = (16, 32, 64, 64)
    unet_channels: tuple[int, ...] = (16, 32, 32, 32)
    affine_steps: int = 1
    vsvf_steps: int = 2
    time_steps: int = 10
    sigmas: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25)
    sigma_weights: tuple[float, ...] = (0.067, 0.133, 0.2, 0.267, 0.333)
    similarity: str = "mk_lncc"
    lambda_ar_c: float = 10.0
    lambda_ar_k: float = 4.0
    lambda_as: float = 10.0
    lambda_vr: float = 10.0
    lambda_vs: float = 1e-4
    pairs_per_epoch: int = 100
    init_from: str = ""
    init_momentum_from: str = ""
    train_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    val_anatomies: tuple[str, ...] = ("mni2009c", "cat12")
    rotation_deg: float = 20.0
    scale: float = 0.15
    translation_mm: float = 15.0
    svf_magnitude_mm: tuple[float, float] = (2.0, 8.0)
    subject_magnitude_mm: tuple[float, float] = (0.0, 6.0)
    svf_smoothness_mm: float = 16.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                setattr(self, f.name, tuple(getattr(self, f.name)))
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        for name in ("working_shape", "affine_shape"):
            if len(getattr(self, name)) != self.dims:
                raise ValueError(f"{name} {getattr(self, name)} must have {self.dims} values")
        if any(n % _GRID_MULTIPLE for n in self.working_shape):
            raise ValueError(f"working_shape must be divisible by 8, got {self.working_shape}")
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        if len(self.sigmas) != len(self.sigma_weights):
            raise ValueError("sigmas and sigma_weights must have the same length")
        if self.stage == "vsvf" and not self.unet_channels:
            raise ValueError("stage vsvf needs unet_channels")
        if self.init_momentum_from and self.stage != "vsvf":
            raise ValueError("init_momentum_from needs stage vsvf")
        if self.affine_steps < 1 or self.time_steps < 1 or self.vsvf_steps < 1:
            raise ValueError("affine_steps, vsvf_steps and time_steps must be >= 1")
        for name in ("train_anatomies", "val_anatomies"):
            chosen = getattr(self, name)
            if not chosen or any(a not in ANATOMIES for a in chosen):
                raise ValueError(f"{name} must be taken from {ANATOMIES}, got {chosen}")


def build_net(config: AvsmNetConfig) -> AvsmNet:
    """The network of ``config`` (no momentum net for a ``stage: affine`` model)."""
    return AvsmNet(
        config.dims,
        config.affine_shape,
        config.affine_channels,
        config.unet_channels if config.stage == "vsvf" else (),
        config.sigmas,
        config.sigma_weights,
        config.time_steps,
    )


# ----------------------------------------------------------------------------- losses


def lambda_ar(epoch: float, c: float = 10.0, k: float = 4.0) -> float:
    """Epoch-dependent affine regularisation weight ``C K / (K + exp(n / K))`` (Eq. 13)."""
    if c == 0:
        return 0.0
    return c * k / (k + math.exp(min(epoch / k, 700.0)))


def affine_regularity(a: Tensor, b: Tensor) -> Tensor:
    """``|A - I|_F^2 + |b|^2`` per batch item ``(N,)``."""
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    return (a - eye).pow(2).sum((-2, -1)) + b.pow(2).sum(-1)


def affine_symmetry(a: Tensor, b: Tensor, a_ts: Tensor, b_ts: Tensor) -> Tensor:
    """``|A^ts A - I|_F^2 + |A^ts b + b^ts|^2`` per batch item (Eq. 5; 0 for exact inverses)."""
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    lin = (a_ts @ a - eye).pow(2).sum((-2, -1))
    shift = ((a_ts @ b.unsqueeze(-1)).squeeze(-1) + b_ts).pow(2).sum(-1)
    return lin + shift


def similarity_loss(kind: str, warped: Tensor, fixed: Tensor) -> Tensor:
    """The paper's similarities as losses (0 best): mk-LNCC windows S/4 and S/2 (0.3/0.7)."""
    s = min(fixed.shape[2:])
    if kind == "ncc":
        return L.ncc(warped, fixed)
    quarter, half = max(3, s // 4) | 1, max(3, s // 2) | 1
    if kind == "lncc":
        return L.lncc(warped, fixed, quarter)
    return L.mk_lncc(warped, fixed, (quarter, half), (0.3, 0.7))


def momentum_energy(momentum: Tensor, velocity: Tensor) -> Tensor:
    """``<m, v>`` (mean over voxels of ``m . v``, normalised units), averaged over the batch."""
    return (momentum * velocity).sum(1).mean()


def normalised_symmetry(u_st: Tensor, u_ts: Tensor, spacing: Sequence[float]) -> Tensor:
    """Sum over voxels of ``|Phi^-1 o (Phi^ts)^-1 - id|^2`` in units of the largest extent."""
    _, radius = grid_frame(u_st.shape[2:], spacing)
    err = inverse_consistency(u_st, u_ts, spacing) / (2 * radius)
    return err.pow(2).sum(1).flatten(1).sum(1).mean()


def inverse_consistency_log(
    u_st: Tensor, u_ts: Tensor, spacing: Sequence[float], margin: int = 2
) -> float:
    """``ln(mean |Phi^-1 o (Phi^ts)^-1 - id|^2)`` in the unit-extent frame, interior voxels
    (``margin`` voxels from the border, as the paper evaluates 10 voxels in at 192x192x80)."""
    _, radius = grid_frame(u_st.shape[2:], spacing)
    err = (inverse_consistency(u_st, u_ts, spacing) / (2 * radius)).pow(2).sum(1)
    if margin:
        err = err[(slice(None), *[slice(margin, -margin)] * (err.ndim - 1))]
    return float(torch.log(err.mean().clamp_min(1e-30)))


# ----------------------------------------------------------------------------- anatomies


def load_anatomy(name: str):
    """``(T1, tissue labels)`` of a template at 1 mm (the semantic B-spline method's loader:
    hemisphere-split GM/WM/CSF labels, the label set of the bundled samples)."""
    from .semantic_bspline import load_anatomy as load

    return load(name)


# ----------------------------------------------------------------------------- inference


def working_grid(shape: Sequence[int], spacing: Sequence[float], voxel_size: float) -> tuple:
    """``(resampled shape, its spacing, padded shape)`` of an input grid at ``voxel_size`` mm
    (field of view kept, padded to a multiple of 8 per axis, centred)."""
    resampled = tuple(
        max(2, int(round((n - 1) * s / voxel_size)) + 1)
        for n, s in zip(shape, spacing, strict=True)
    )
    new_spacing = resized_spacing(shape, spacing, resampled)
    padded = tuple(_GRID_MULTIPLE * math.ceil(m / _GRID_MULTIPLE) for m in resampled)
    return resampled, new_spacing, padded


def _pad_centre(x: Tensor, shape: Sequence[int]) -> tuple[Tensor, list[int]]:
    """Zero-pad ``(N, C, *S)`` to ``shape`` (centred); returns it and the voxels added before."""
    pads: list[int] = []
    before = [(m - n) // 2 for n, m in zip(x.shape[2:], shape, strict=True)]
    for n, m, lo in zip(reversed(x.shape[2:]), reversed(tuple(shape)), reversed(before),
                        strict=True):
        pads += [lo, m - n - lo]
    return F.pad(x, pads), before


def load_model(source: str, device: torch.device | str = "cpu") -> tuple[AvsmNet, AvsmNetConfig]:
    """``(network in eval mode, its AvsmNetConfig)`` for a zoo id or a model file (cached)."""
    from ..training.task import load_cached_model

    return load_cached_model(source, device, AvsmNetConfig, METHOD_ID)


def predict(
    model: AvsmNet,
    net_config: AvsmNetConfig,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    affine_steps: int,
    vsvf_steps: int,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``(field (1, D, *S) mm, affine (D+1, D+1) grid-frame mm, info)`` on the input grid.

    The pair is resampled to the model's voxel size (same field of view) and zero-padded to a
    multiple of 8; the affine is moved back to the input grid frame exactly, the non-affine part
    is resized and composed with it analytically at the input resolution.
    """
    shape = tuple(fixed.shape[2:])
    resampled, w_spacing, padded = working_grid(shape, spacing, net_config.voxel_size)
    # the fast matrix form of the anti-aliased resize: shrinking a 1 mm pair costs 0.1 s, not 3 s
    pair = resize_separable(torch.cat([fixed, moving], 0).float(), resampled)
    pair, before = _pad_centre(pair, padded)
    with torch.no_grad():
        a, b = model.predict_affine(pair[:1], pair[1:], w_spacing, affine_steps)[-1]
        m_pad = affine_matrix_mm(a, b, padded, w_spacing)[0].double()
        # padded voxel 0 sits at -off in the input grid frame: M_in = T(-off) M_pad T(off)
        off = torch.tensor([lo * s for lo, s in zip(before, w_spacing, strict=True)],
                           dtype=torch.float64, device=m_pad.device)
        d = len(shape)
        matrix = m_pad.clone()
        matrix[:d, d] = m_pad[:d, :d] @ off + m_pad[:d, d] - off
        info: dict[str, Any] = {"working_shape": list(resampled),
                                "working_spacing": list(w_spacing), "padded_shape": list(padded)}
        from ..core import affine_to_field

        if vsvf_steps > 0:
            steps = model.vsvf(pair[:1], pair[1:], w_spacing, a, b, vsvf_steps)
            deform = resize(steps[-1]["deform"], padded, antialias=False)
            crop = tuple(slice(lo, lo + n) for lo, n in zip(before, resampled, strict=True))
            deform = resize(deform[(slice(None), slice(None), *crop)], shape, antialias=False)
            outer = affine_to_field(matrix.to(fixed), shape, spacing)
            field = outer + torch.einsum("ij,nj...->ni...", matrix[:d, :d].to(fixed), deform)
            info["momentum_rms"] = float(steps[-1]["momentum"].pow(2).mean().sqrt())
        else:
            field = affine_to_field(matrix.to(fixed), shape, spacing)
    return field, matrix, info


def estimate(
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    config: AvsmConfig | AvsmAffineConfig | None = None,
    device: torch.device | str | None = None,
    model_id: str | None = None,
) -> Generator[Progress, None, Estimate]:
    """Register ``moving`` to ``fixed`` with a trained AVSM model; yields Progress.

    Args:
        fixed, moving: ``(1, 1, *S)`` float images in [0, 1] on the same grid.
        spacing: voxel size (mm) along the array axes.
        config: :class:`AvsmConfig` (affine + vSVF) or :class:`AvsmAffineConfig` (affine only).
        device: where to run (default: the device of ``fixed``).
        model_id: the zoo model (bound by :func:`zoo_method_spec`); ``config.model_file`` wins.

    Returns:
        :class:`Estimate`: field ``(1, D, *S)`` mm (the affine included), the affine
        ``(D+1, D+1)`` in the grid frame, ``info`` with the working grid and the affine.
    """
    cfg = config if config is not None else AvsmConfig()
    dev = torch.device(device) if device is not None else fixed.device
    source = cfg.model_file or model_id
    if not source:
        raise InputError("no avsm model given: pick a zoo model or set model_file")
    ndim = fixed.ndim - 2
    if fixed.shape != moving.shape or fixed.shape[:2] != (1, 1) or ndim not in (2, 3):
        raise ValueError(
            f"fixed and moving must both be (1, 1, *spatial) 2D/3D, got {tuple(fixed.shape)} and "
            f"{tuple(moving.shape)}"
        )
    vsvf_steps = int(getattr(cfg, "vsvf_steps", 0))
    yield Progress(0, 2, "loading model")
    model, net_config = load_model(source, dev)
    if net_config.dims != ndim:
        raise InputError(f"model {source} registers {net_config.dims}D images, not {ndim}D")
    if vsvf_steps and model.momentum is None:
        raise InputError(f"model {source} is affine-only; use vsvf_steps 0 or an avsm model")
    yield Progress(1, 2, f"{cfg.affine_steps} affine + {vsvf_steps} vSVF steps")
    field, matrix, info = predict(
        model, net_config, fixed.to(dev).float(), moving.to(dev).float(), spacing,
        cfg.affine_steps, vsvf_steps,
    )
    info["model"] = str(source)
    info["affine_steps"] = cfg.affine_steps
    info["vsvf_steps"] = vsvf_steps
    info["affine_matrix"] = matrix.cpu().tolist()
    yield Progress(2, 2, "done")
    return Estimate(field=field, affine=matrix.float().cpu(), info=info)


def zoo_method_spec(entry: Any) -> MethodSpec:
    """The :class:`MethodSpec` of one zoo model (ids starting ``avsm_affine``: affine only)."""
    dims = tuple(int(d) for d in entry.dims)
    affine_only = entry.id.startswith("avsm_affine")
    if affine_only:
        title = f"AVSM affine network ({entry.id})"
        config_class: type = AvsmAffineConfig
        text = ("Multi-step affine network of AVSM (Shen et al. 2019): a fast learned affine "
                "pre-alignment.")
    else:
        title = f"AVSM affine + vSVF ({entry.id})"
        config_class = AvsmConfig
        text = ("AVSM (Shen et al. 2019): multi-step affine network then a momentum-"
                "parameterised stationary velocity field, one forward pass.")
    return MethodSpec(
        id=entry.id,
        title=title,
        config_class=config_class,
        estimate=functools.partial(estimate, model_id=entry.id),
        dims=dims,
        description=entry.description or text,
        model_id=entry.id,
    )


# ----------------------------------------------------------------------------- training


def _matching_weights(model: nn.Module, source: str, prefix: str = "") -> dict[str, Tensor]:
    """The weights of model file ``source`` (keys starting with ``prefix``) that ``model`` has,
    with the same shapes."""
    from .. import zoo

    state = zoo.read_model_file(source)["state_dict"]
    own = model.state_dict()
    return {k: v for k, v in state.items()
            if k.startswith(prefix) and k in own and own[k].shape == v.shape}


@register_task
class AvsmTask(TrainTask):
    """Unsupervised training on synthetic pairs from real templates (large random affines +
    smooth deformations); see the module docstring for the losses."""

    method_id = METHOD_ID
    config_class = AvsmNetConfig
    default_train = {
        "lr": 5e-4,  # the paper's
        "batch_size": 1,
        "steps": 2000,
        "val_every": 100,
        "val_pairs": 8,
        "checkpoint_every": 100,
        "num_threads": 1,
    }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[str, Any] = {}
        self._training = False
        self._pairs_seen = 0

    # -- data ------------------------------------------------------------------------------------

    def _pair_config(self):
        from ..data.pairs import PairConfig

        cfg = self.config
        return PairConfig(
            modality="same",
            svf_magnitude_mm=tuple(cfg.svf_magnitude_mm),
            svf_smoothness_mm=cfg.svf_smoothness_mm,
            subject_magnitude_mm=tuple(cfg.subject_magnitude_mm),
            rotation_deg=cfg.rotation_deg,
            scale=cfg.scale,
            translation_mm=cfg.translation_mm,
            zero_background=True,
            downsample=int(cfg.voxel_size),
            working_shape=tuple(cfg.working_shape),
            label_interpolation="nearest",
        )

    def _sampler(self, split: str):
        if split not in self._samplers:
            from ..data.pairs import PairSampler

            names = self.config.train_anatomies if split == "train" else self.config.val_anatomies
            anatomies = [load_anatomy(n) for n in names]
            self._samplers[split] = PairSampler(anatomies, self._pair_config(), seed=0)
        return self._samplers[split]

    def setup(self, device: torch.device) -> None:
        self._training = True
        self._sampler("train")

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        batch = self._sampler("val" if split == "val" else "train").sample(batch_size, generator)
        batch.pop("affine", None)
        return batch

    # -- model -----------------------------------------------------------------------------------

    def build_model(self, config: AvsmNetConfig) -> nn.Module:
        model = build_net(config)
        # counts training pairs for the epoch-dependent lambda_ar; saved with the weights
        model.register_buffer("pairs_seen", torch.zeros((), dtype=torch.long))
        if self._training and config.init_from:
            # pairs_seen comes along: the lambda_ar schedule continues where the run stopped
            keep = _matching_weights(model, config.init_from)
            if not any(k.startswith("affine.") for k in keep):
                raise ValueError(f"init_from {config.init_from} holds no matching affine weights")
            model.load_state_dict(keep, strict=False)
        if self._training and config.init_momentum_from:
            keep = _matching_weights(model, config.init_momentum_from, "momentum.")
            wanted = [k for k in model.state_dict() if k.startswith("momentum.")]
            if len(keep) != len(wanted):
                raise ValueError(f"init_momentum_from {config.init_momentum_from} does not hold "
                                 f"this model's momentum net ({len(keep)} of {len(wanted)} "
                                 "weights match)")
            model.load_state_dict(keep, strict=False)
        return model

    def parameters(self, model: nn.Module) -> Any:
        if self.config.stage == "vsvf":
            for p in model.affine.parameters():
                p.requires_grad_(False)
            return [p for p in model.momentum.parameters()]
        return [p for p in model.parameters() if p.requires_grad]

    # -- losses ----------------------------------------------------------------------------------

    def _affine_terms(self, model: AvsmNet, batch: Batch, steps: int) -> dict[str, Any]:
        cfg = self.config
        fixed, moving, spacing = batch["fixed"], batch["moving"], batch["spacing"]
        shape = fixed.shape[2:]
        a, b = model.predict_affine(fixed, moving, spacing, steps)[-1]
        a_ts, b_ts = model.predict_affine(moving, fixed, spacing, steps)[-1]
        warped = warp_image(moving, affine_field(a, b, shape, spacing), spacing)
        warped_ts = warp_image(fixed, affine_field(a_ts, b_ts, shape, spacing), spacing)
        return {
            "a": a, "b": b, "a_ts": a_ts, "b_ts": b_ts,
            "sim": similarity_loss(cfg.similarity, warped, fixed)
            + similarity_loss(cfg.similarity, warped_ts, moving),
            "reg": (affine_regularity(a, b) + affine_regularity(a_ts, b_ts)).mean(),
            "sym": affine_symmetry(a, b, a_ts, b_ts).mean(),
        }

    def _epoch(self, model: nn.Module) -> float:
        return float(model.pairs_seen) / max(1, self.config.pairs_per_epoch)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        cfg = self.config
        if model.training:
            model.pairs_seen += batch["fixed"].shape[0]
        if cfg.stage == "affine":
            t = self._affine_terms(model, batch, cfg.affine_steps)
            lam = lambda_ar(self._epoch(model), cfg.lambda_ar_c, cfg.lambda_ar_k)
            total = t["sim"] + lam * t["reg"] + cfg.lambda_as * t["sym"]
            return total, {"sim": t["sim"], "reg": t["reg"], "sym": t["sym"], "lambda_ar": lam}
        t = self._vsvf_terms(model, batch)
        return t["total"], {k: t[k] for k in ("sim", "reg", "sym")}

    def _vsvf_terms(self, model: AvsmNet, batch: Batch) -> dict[str, Any]:
        cfg = self.config
        fixed, moving, spacing = batch["fixed"], batch["moving"], batch["spacing"]
        model.affine.eval()
        with torch.no_grad():
            a, b = model.predict_affine(fixed, moving, spacing, cfg.affine_steps)[-1]
            a_ts, b_ts = model.predict_affine(moving, fixed, spacing, cfg.affine_steps)[-1]
        st = model.vsvf(fixed, moving, spacing, a, b, cfg.vsvf_steps)
        ts = model.vsvf(moving, fixed, spacing, a_ts, b_ts, cfg.vsvf_steps)
        sim = reg = sym = fixed.new_zeros(())
        for s, r in zip(st, ts, strict=True):
            sim = sim + similarity_loss(cfg.similarity, warp_image(moving, s["field"], spacing),
                                        fixed)
            sim = sim + similarity_loss(cfg.similarity, warp_image(fixed, r["field"], spacing),
                                        moving)
            reg = reg + momentum_energy(s["momentum"], s["velocity"]) + momentum_energy(
                r["momentum"], r["velocity"])
            sym = sym + normalised_symmetry(s["field"], r["field"], spacing)
        total = sim + cfg.lambda_vr * reg + cfg.lambda_vs * sym
        return {"total": total, "sim": sim, "reg": reg, "sym": sym,
                "field": st[-1]["field"], "field_ts": ts[-1]["field"], "a": a, "b": b}

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from .. import metrics

        cfg = self.config
        spacing = batch["spacing"]
        fixed_lab = batch["fixed_labels"][0, 0].cpu().numpy()
        moving_lab = batch["moving_labels"]
        mask = fixed_lab > 0
        out: dict[str, float] = {
            "dice_before": metrics.mean_dice(fixed_lab, moving_lab[0, 0].cpu().numpy())
        }
        if cfg.stage == "affine":
            t = self._affine_terms(model, batch, cfg.affine_steps)
            field = affine_field(t["a"], t["b"], fixed_lab.shape, spacing)
            field_ts = affine_field(t["a_ts"], t["b_ts"], fixed_lab.shape, spacing)
            lam = lambda_ar(self._epoch(model), cfg.lambda_ar_c, cfg.lambda_ar_k)
            out["loss"] = float(t["sim"] + lam * t["reg"] + cfg.lambda_as * t["sym"])
            out.update(sim=float(t["sim"]), sym=float(t["sym"]))
        else:
            t = self._vsvf_terms(model, batch)
            field, field_ts = t["field"], t["field_ts"]
            out.update(loss=float(t["total"]), sim=float(t["sim"]), reg=float(t["reg"]),
                       sym=float(t["sym"]))
            aff = affine_field(t["a"], t["b"], fixed_lab.shape, spacing)
            out["dice_affine"] = metrics.mean_dice(
                fixed_lab, warp_labels(moving_lab, aff, spacing)[0, 0].cpu().numpy())
        warped = warp_labels(moving_lab, field, spacing)
        jac = jacobian_determinant(field, spacing)[0].cpu().numpy()
        out.update(
            dice=metrics.mean_dice(fixed_lab, warped[0, 0].cpu().numpy()),
            fold_percent=metrics.fold_percent(jac),
            ice_log=inverse_consistency_log(field, field_ts, spacing),
            epe=metrics.endpoint_error(field[0].cpu().numpy(), batch["field"][0].cpu().numpy(),
                                       mask),
        )
        return out

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        return {
            "dims": [cfg.dims],
            "modality": "MR T1 brain, skull-stripped",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": (
                f"synthetic pairs from the templates {', '.join(cfg.train_anatomies)} (real T1 "
                f"intensities, mild gamma/bias): random affine (rotation up to "
                f"{cfg.rotation_deg:g} deg, scale +-{100 * cfg.scale:g} %, translation up to "
                f"{cfg.translation_mm:g} mm) after a smooth diffeomorphism up to "
                f"{max(cfg.svf_magnitude_mm):g} mm; unsupervised ({cfg.similarity}); MNI 2009a "
                "(the bundled samples) held out"
            ),
        }


# ----------------------------------------------------------------------------- evaluation


def evaluate_steps(
    source: str,
    affine_steps: Sequence[int] = (1, 3, 5, 7),
    vsvf_steps: Sequence[int] = (0,),
    pairs: int = 16,
    seed: int = 10_000,
) -> list[dict[str, float]]:
    """Dice, folds and inverse consistency of a trained model against its numbers of steps.

    Test pairs are drawn like the validation pairs (held-out deformations of
    ``val_anatomies``) but with other seeds (``seed + i``), so they are not the pairs the best
    model was picked on. One row per ``(affine_steps, vsvf_steps)``: means of ``dice``,
    ``fold_percent`` (Jacobian <= 0), ``ice_log`` (:func:`inverse_consistency_log`), ``epe``,
    and ``per_pair``: those figures pair by pair, for paired comparisons of models. Each pair
    is also registered the other way round, for the inverse-consistency error.
    """
    from .. import metrics
    from ..training.task import load_trained_model

    model, config = load_trained_model(source)
    task = AvsmTask(config)
    batches = [task.sample("val", 1, torch.Generator().manual_seed(seed + i))
               for i in range(pairs)]
    rows = []
    for a_steps in affine_steps:
        for v_steps in vsvf_steps:
            per_pair: dict[str, list[float]] = {}
            for batch in batches:
                f, m, sp = batch["fixed"], batch["moving"], batch["spacing"]
                shape = f.shape[2:]
                with torch.no_grad():
                    fields_ = []
                    for x, y in ((f, m), (m, f)):
                        a, b = model.predict_affine(x, y, sp, a_steps)[-1]
                        if v_steps:
                            fields_.append(model.vsvf(x, y, sp, a, b, v_steps)[-1]["field"])
                        else:
                            fields_.append(affine_field(a, b, shape, sp))
                field, field_ts = fields_
                lab = batch["fixed_labels"][0, 0].numpy()
                warped = warp_labels(batch["moving_labels"], field, sp)[0, 0].numpy()
                jac = jacobian_determinant(field, sp)[0].numpy()
                figures = {
                    "dice": metrics.mean_dice(lab, warped),
                    "dice_before": metrics.mean_dice(lab, batch["moving_labels"][0, 0].numpy()),
                    "fold_percent": metrics.fold_percent(jac),
                    "ice_log": inverse_consistency_log(field, field_ts, sp),
                    "epe": metrics.endpoint_error(field[0].numpy(), batch["field"][0].numpy(),
                                                  lab > 0),
                }
                for k, v in figures.items():
                    per_pair.setdefault(k, []).append(float(v))
            means = {k: sum(v) / len(v) for k, v in per_pair.items()}
            rows.append({"affine_steps": a_steps, "vsvf_steps": v_steps, **means,
                         "per_pair": per_pair})
    return rows


__all__ = [
    "METHOD_ID",
    "AvsmAffineConfig",
    "AvsmConfig",
    "AvsmNetConfig",
    "AvsmTask",
    "affine_regularity",
    "affine_symmetry",
    "build_net",
    "compose_affine_field",
    "estimate",
    "evaluate_steps",
    "inverse_consistency_log",
    "lambda_ar",
    "load_model",
    "momentum_energy",
    "normalised_symmetry",
    "predict",
    "similarity_loss",
    "working_grid",
    "zoo_method_spec",
]
