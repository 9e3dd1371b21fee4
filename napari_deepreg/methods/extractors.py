"""Frozen DeepSim feature extractors of zoo models, for any method's similarity.

The DeepSim family's registration models carry the frozen feature extractor they were trained
with (``DeepSimRegistration.extractor``); its extractor models are one. :func:`load_extractor`
turns a zoo id into that network through the shared family machinery (:mod:`.models`: sha256,
``weights_only``, cache), so ``instance_opt`` (``similarity=deepsim``) and any training task
(``losses.DeepSimLoss``) use a learned similarity without importing the DeepSim family: this
module imports only :mod:`.models` and the networks' grid rule, and sits below both
(``deepsim`` -> ``refine`` -> ``instance_opt`` -> ``extractors`` has no cycle). The family
itself is imported on first use by ``models.get_family``.

The zoo holds 2D extractors only, so a DeepSim similarity registers 2D pairs for now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.deepsim import deepsim_loss
from ..nets.deepsim import GRID_MULTIPLE
from ..volume import InputError
from .models import load_cached_model

#: zoo models whose file carries a DeepSim feature extractor (auto-encoder, segmentation net)
ZOO_EXTRACTORS = ("deepsim_ae_2d", "deepsim_seg_2d")
DEFAULT_EXTRACTOR = "deepsim_ae_2d"


@dataclass(frozen=True)
class Extractor:
    """A frozen feature extractor (``module.encode(x)`` gives its levels' feature maps), the
    dimensionality and voxel size (mm) it was trained at, and where it came from."""

    module: nn.Module
    dims: int
    voxel_size: float
    source: str


def extractor_dims(source: str) -> tuple[int, ...]:
    """The dimensionalities the extractor of zoo model ``source`` takes (from the manifest,
    nothing loaded). InputError for a zoo id that is not in :data:`ZOO_EXTRACTORS`."""
    from .. import zoo

    if source not in ZOO_EXTRACTORS:
        raise InputError(f"no DeepSim feature extractor {source!r}; choose one of "
                         f"{list(ZOO_EXTRACTORS)}")
    return tuple(int(d) for d in zoo.get_entry(source).dims)


def check_extractor_dims(source: str, ndim: int) -> None:
    """InputError, before any work, when ``source``'s extractor does not take ``ndim``-D pairs."""
    dims = extractor_dims(source)
    if ndim not in dims:
        raise InputError(
            f"similarity=deepsim uses the {'/'.join(f'{d}D' for d in dims)} feature extractor of "
            f"{source} and cannot register a {ndim}D pair (the zoo has no {ndim}D DeepSim "
            "extractor yet): choose similarity lncc, ncc, mse or mind_ssc for it"
        )


def load_extractor(source: str = DEFAULT_EXTRACTOR,
                   device: torch.device | str = "cpu") -> Extractor:
    """The frozen feature extractor of zoo model ``source`` (cached with its model)."""
    extractor_dims(source)  # a known extractor
    model, config = load_cached_model(source, device)
    module = getattr(model, "extractor", None)
    if module is None and callable(getattr(model, "encode", None)):
        module = model  # an extractor model file
    if module is None:
        raise InputError(f"{source} carries no DeepSim feature extractor")
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return Extractor(module, int(config.dims), float(config.voxel_size), source)


def pad_to_grid(x: Tensor, multiple: int = GRID_MULTIPLE) -> Tensor:
    """``x`` ``(N, C, *S)`` zero-padded at the far end of each axis to multiples of ``multiple``
    (the extractor's poolings need them; zero is the background of [0, 1] images)."""
    pad: list[int] = []
    for n in reversed(x.shape[2:]):
        pad += [0, (-n) % multiple]
    return F.pad(x, pad) if any(pad) else x


def deepsim_similarity(
    extractor: nn.Module, fixed: Tensor, moving: Tensor
) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
    """``(fixed, moving, loss)`` for an optimiser that calls ``loss(warped, fixed)``: ``1 -
    DeepSim`` on the images zero-padded to the extractor's grid, the fixed image's features
    computed once (no graph)."""
    with torch.no_grad():
        fixed_features: Sequence[Tensor] = extractor.encode(pad_to_grid(fixed))

    def loss(warped: Tensor, _fixed: Tensor) -> Tensor:
        return deepsim_loss(extractor, pad_to_grid(warped), _fixed, fixed_features)

    return fixed, moving, loss


__all__ = ["DEFAULT_EXTRACTOR", "ZOO_EXTRACTORS", "Extractor", "check_extractor_dims",
           "deepsim_similarity", "extractor_dims", "load_extractor", "pad_to_grid"]
