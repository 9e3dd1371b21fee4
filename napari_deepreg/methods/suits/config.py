"""Config of the SUITS family (Blendowski, Hansen, Heinrich 2020): the iterative descent."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import param, validate

METHOD_ID = "suits"


@dataclass
class SuitsConfig:
    """Settings of the regularised iterative descent (eq. 2 and 6).

    Defaults are the paper's except λ: its scale depends on the feature units (here MIND-SSC in
    (0, 1], box-averaged onto the update grid, gradients per update-grid voxel). On the bundled
    samples with inverted moving contrast, Dice after 15 updates for λ = 10 / 1 / 0.1 / 0.02 was
    .701 / .776 / .847 / .817 (3D, before .683) and .731 / - / .840 / - (2D λ = 10 / 0.1, before
    .702), so the default is 0.1 (the paper's 10 : 5 test : training ratio is kept in training).
    """

    iterations: int = param(15, "Gauss-Newton updates u ← u + γ Δu.", min=1, max=200)
    lam: float = param(0.1, "λ, weight of the diffusion regulariser of each update (higher: "
                       "smoother, smaller steps).", min=1e-4, max=1e4)
    gamma: float = param(1.0, "γ, step size of each update.", min=0.01, max=2.0)
    voxel_size: float = param(2.0, "Working voxel size in mm (images finer than this are "
                              "resampled to it; updates live on a grid 4 times coarser).",
                              min=0.25, max=10.0)
    cg_tolerance: float = param(1e-3, "Relative residual at which conjugate gradients stop.",
                                min=1e-8, max=0.1)

    def __post_init__(self) -> None:
        validate(self)
