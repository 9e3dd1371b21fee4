"""What every registration method provides, and the records it exchanges with the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ..fields import make_config
from ..result import Progress, RegistrationResult


@dataclass
class Estimate:
    """What a method returns: a displacement field on the grid it was given.

    ``field`` is ``(1, D, *spatial)`` in mm (pull-back: ``warped(x) = moving(x + u(x))``);
    ``affine`` is the ``(D+1, D+1)`` physical matrix of an affine stage already included in
    ``field``, or None, in the grid frame ``x = index * spacing`` (voxel 0 at 0 mm; the pipeline
    moves it to the image's origin); ``info`` carries method-specific figures (final loss,
    iterations...).
    """

    field: Tensor
    affine: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


# A method's estimator: (fixed, moving, spacing, config, device) -> generator of Progress that
# returns an Estimate. fixed and moving are (1, 1, *spatial) float32 tensors on ``device``,
# intensity-normalised to [0, 1], with moving already resampled onto the fixed grid.
Estimator = Callable[..., Generator[Progress, None, Estimate]]


@dataclass(frozen=True)
class MethodSpec:
    """A registration method as the pipeline, the CLI and the widget see it."""

    id: str
    title: str
    config_class: type
    estimate: Estimator
    dims: tuple[int, ...] = (2, 3)
    description: str = ""
    model_id: str | None = None
    #: ``check(config, ndim)`` raises InputError when the config cannot register an ``ndim``-D
    #: pair (called by the pipeline before any work); None: every dim in ``dims`` is fine
    check: Callable[[Any, int], None] | None = None

    def default_config(self) -> Any:
        return self.config_class()

    def make_config(self, values: Any = None, **overrides: Any) -> Any:
        """A config from None / an instance / a dict of overrides (keywords too).

        Unknown names and bad values raise an InputError that names this method and the valid
        parameters (``fields.make_config``).
        """
        if overrides:
            values = {**dict(values or {}), **overrides}
        return make_config(self.config_class, values, self.id)


__all__ = ["Estimate", "Estimator", "MethodSpec", "Progress", "RegistrationResult"]
