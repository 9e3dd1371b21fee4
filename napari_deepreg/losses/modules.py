"""Thin ``nn.Module`` wrappers around :mod:`.functional` and a name registry, ``new_loss``.

The modules hold only their hyper-parameters (no state, no device), so they can be built once and
used on any device. Image losses are called as ``loss(a, b)``; regularisers as
``loss(field, spacing=None)`` where a spacing given at call time overrides the one given at
construction (multi-resolution optimisation changes the spacing per level).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from . import functional as Fn
from .deepsim import deepsim_loss


class MSELoss(nn.Module):
    """Mean squared difference (:func:`.functional.mse`)."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return Fn.mse(a, b)


class NCCLoss(nn.Module):
    """Global NCC as ``1 - NCC`` (:func:`.functional.ncc`)."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return Fn.ncc(a, b, self.eps)


class LNCCLoss(nn.Module):
    """Local NCC with a box window of ``window`` voxels (:func:`.functional.lncc`)."""

    def __init__(self, window: int | Sequence[int] = 9, eps: float = 1e-5) -> None:
        super().__init__()
        self.window = window
        self.eps = eps

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return Fn.lncc(a, b, self.window, self.eps)


class MultiKernelLNCCLoss(nn.Module):
    """Weighted sum of LNCCs over several windows (:func:`.functional.mk_lncc`)."""

    def __init__(
        self,
        windows: Sequence[int] = (5, 9, 15),
        weights: Sequence[float] | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.windows = tuple(windows)
        self.weights = None if weights is None else tuple(weights)
        self.eps = eps

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return Fn.mk_lncc(a, b, self.windows, self.weights, self.eps)


class MINDSSCLoss(nn.Module):
    """Difference of MIND-SSC descriptors, for multi-modal pairs.

    See :func:`.functional.mind_ssc_loss`.
    """

    def __init__(self, radius: int = 1, dilation: int = 2, penalty: str = "l2") -> None:
        super().__init__()
        self.radius = radius
        self.dilation = dilation
        self.penalty = penalty

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return Fn.mind_ssc_loss(a, b, self.radius, self.dilation, self.penalty)


class DeepSimLoss(nn.Module):
    """``1 - DeepSim`` through a frozen feature extractor (:func:`.deepsim.deepsim_loss`).

    ``extractor`` is a module with ``encode`` (e.g. ``methods.extractors.load_extractor(
    "deepsim_ae_2d").module``); it is put in eval mode and its parameters need no gradient, so
    a registration net trained with this loss never trains the extractor. It is kept out of this
    module's parameters and state dict (the loss holds no weights of its own).
    """

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(extractor, "encode", None)):
            raise TypeError("DeepSimLoss needs a feature extractor with an encode() method")
        extractor.eval()
        for p in extractor.parameters():
            p.requires_grad_(False)
        self.__dict__["extractor"] = extractor  # not a submodule: no weights in the loss

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return deepsim_loss(self.extractor, a, b)


class _FieldRegulariser(nn.Module):
    def __init__(self, spacing: float | Sequence[float] | None = None) -> None:
        super().__init__()
        self.spacing = spacing

    def _spacing(self, spacing):
        return self.spacing if spacing is None else spacing


class DiffusionLoss(_FieldRegulariser):
    """Mean squared gradient of a displacement in mm (:func:`.functional.diffusion`)."""

    def forward(self, field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
        return Fn.diffusion(field, self._spacing(spacing))


class BendingEnergyLoss(_FieldRegulariser):
    """Bending energy of a displacement in mm (:func:`.functional.bending_energy`)."""

    def forward(self, field: Tensor, spacing: float | Sequence[float] | None = None) -> Tensor:
        return Fn.bending_energy(field, self._spacing(spacing))


class DiceLoss(nn.Module):
    """Soft Dice on one-hot / probability maps (:func:`.functional.soft_dice`)."""

    def __init__(self, include_background: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.include_background = include_background
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return Fn.soft_dice(pred, target, self.include_background, self.eps)


LOSSES: dict[str, type[nn.Module]] = {
    "mse": MSELoss,
    "ncc": NCCLoss,
    "lncc": LNCCLoss,
    "mk_lncc": MultiKernelLNCCLoss,
    "mind_ssc": MINDSSCLoss,
    "diffusion": DiffusionLoss,
    "bending": BendingEnergyLoss,
    "dice": DiceLoss,
    "deepsim": DeepSimLoss,
}

#: similarities ``new_loss`` builds from hyper-parameters alone (``"deepsim"`` also needs an
#: ``extractor``)
SIMILARITIES = ("mse", "ncc", "lncc", "mk_lncc", "mind_ssc")
REGULARISERS = ("diffusion", "bending")


def new_loss(name: str, **params) -> nn.Module:
    """Build the loss called ``name`` with its parameters: ``new_loss("lncc", window=7)``.

    Raises ValueError naming the known losses for an unknown name, and TypeError for a parameter
    the loss does not take.
    """
    key = name.lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[key](**params)
