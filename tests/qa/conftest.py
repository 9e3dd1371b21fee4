"""A small hand-made RegistrationResult for the qa tests."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg.result import Grid, RegistrationResult


def _make_result(ndim: int = 3, shape=(12, 14, 16)) -> RegistrationResult:
    shape = shape[-ndim:]
    rng = np.random.default_rng(2)
    labels = np.zeros(shape, np.int32)
    labels[tuple(slice(2, n // 2) for n in shape)] = 1
    labels[tuple(slice(n // 2, n - 2) for n in shape)] = 2
    field = 0.5 * rng.normal(size=(ndim, *shape)).astype(np.float32)
    jac = np.ones(shape, np.float32)
    jac.flat[5] = -0.2
    return RegistrationResult(
        warped=rng.random(shape).astype(np.float32),
        warped_labels=labels,
        field=field,
        jacobian=jac,
        grid=Grid(shape, (1.5, 1.0, 1.0)[-ndim:], (0.0,) * ndim),
        affine=None,
        metrics={"dice_before": 0.5, "dice_after": 0.8, "fold_percent": 0.01, "sdlogj": 0.05,
                 "hd95_after": float("nan"), "runtime_s": 1.25, "n_labels": 2},
        label_metrics=[{"label": 1, "dice_before": 0.4, "dice_after": np.float64(0.9)},
                       {"label": 2, "dice_before": 0.6, "dice_after": 0.7, "hd95_after": 1.0}],
        runtime=1.25,
        method="instance_opt",
        model=None,
        parameters={"iterations": 10, "levels": (4, 2), "loss": "lncc"},
        notes=["moving image resampled onto the fixed grid"],
    )


@pytest.fixture
def make_result():
    """``make_result(ndim=3, shape=(12, 14, 16))``: a result with labels, a fold, a NaN HD95."""
    return _make_result
