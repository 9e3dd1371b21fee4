"""Landmark errors per point: target registration error before and after, and its vector.

All from :func:`napari_deepreg.metrics.tre` / :func:`~napari_deepreg.metrics.map_points` (the
pipeline's TRE; nothing is measured twice). Points are ``(K, D)`` physical mm, array axis order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..result import RegistrationResult


@dataclass(frozen=True)
class LandmarkErrors:
    """``before``/``after``: ``(K,)`` TRE in mm; ``residual``: ``(K, D)`` mm, the moving landmark
    minus where the fixed landmark lands (``q - (p + u(p))``); its length is ``after``."""

    fixed: np.ndarray
    before: np.ndarray
    after: np.ndarray
    residual: np.ndarray

    def worst(self, n: int = 5) -> list[int]:
        """Indices of the ``n`` points with the largest error after registration, worst first."""
        return [int(i) for i in np.argsort(-self.after, kind="stable")[:n]]

    def rows(self) -> list[dict[str, float | int]]:
        """One row per point, worst after registration first: ``point`` is its 1-based number."""
        return [{"point": i + 1, "tre_before": float(self.before[i]),
                 "tre_after": float(self.after[i])} for i in self.worst(len(self.after))]


def landmark_errors(result: RegistrationResult, fixed_points: np.ndarray,
                    moving_points: np.ndarray) -> LandmarkErrors:
    """TRE of each pair before (identity) and after ``result``'s field."""
    p = np.asarray(fixed_points, dtype=np.float64)
    q = np.asarray(moving_points, dtype=np.float64)
    before = metrics.tre(p, q)
    after = metrics.tre(p, q, result.field, result.spacing, result.origin)
    mapped = metrics.map_points(p, result.field, result.spacing, result.origin)
    return LandmarkErrors(p, before, after, q - mapped)


__all__ = ["LandmarkErrors", "landmark_errors"]
