"""Folds of a deformation as a list a person can walk through: clusters and fold % per label.

A fold is a voxel where the Jacobian determinant is <= 0 (the mapping turns inside out there).
:func:`fold_rows` lists the connected clusters of such voxels (:func:`.display.fold_clusters`:
face, edge and corner neighbours, largest first) with their size, centre and the anatomy they
sit in; :func:`fold_percent_per_label` says how much of each labelled structure folds. Pure numpy;
the napari panel (``_napari/_folds.py``) shows these and moves the viewer to a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .display import fold_clusters
from .label_names import label_title


def fold_rows(
    jacobian: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    labels: np.ndarray | None = None,
    names: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """The fold clusters of ``jacobian`` (``(*spatial)``), largest first.

    Each row: ``id``, ``size_vox``, ``volume_mm3``, ``centroid_vox``, ``centroid_mm`` (in the
    viewer's world frame: ``origin + index * spacing``, array axis order), ``min_jacobian`` and,
    with a label map on the same grid, ``label`` (the label at the centroid voxel) and
    ``structure`` (its name, :func:`.label_names.label_title`).
    """
    rows = fold_clusters(jacobian, spacing, origin)
    if labels is not None and np.shape(labels) == np.shape(jacobian):
        labels = np.asarray(labels)
        for row in rows:
            index = tuple(
                int(np.clip(round(c), 0, n - 1))
                for c, n in zip(row["centroid_vox"], labels.shape, strict=True)
            )
            row["label"] = int(labels[index])
            row["structure"] = ("background" if row["label"] == 0 and not (names or {}).get(0)
                                else label_title(row["label"], names))
    return rows


def fold_percent_per_label(
    jacobian: np.ndarray, labels: np.ndarray, names: Mapping[int, str] | None = None
) -> list[dict[str, Any]]:
    """Per foreground label of ``labels`` (same grid as ``jacobian``): ``label``, ``name``
    (:func:`.label_names.label_title`), ``voxels``, ``folded`` (voxels with J <= 0) and
    ``fold_percent`` (100 * folded / voxels)."""
    labels = np.asarray(labels)
    if labels.shape != np.shape(jacobian):
        raise ValueError(
            f"labels {labels.shape} and Jacobian {np.shape(jacobian)} must share a grid")
    flat = labels.ravel().astype(np.int64)
    if flat.size and flat.min() < 0:
        raise ValueError("labels must be non-negative")
    folded = (np.asarray(jacobian) <= 0).ravel()
    counts = np.bincount(flat)
    folds = np.bincount(flat, weights=folded, minlength=counts.size)
    return [
        {"label": int(k), "name": label_title(k, names), "voxels": int(counts[k]),
         "folded": int(folds[k]), "fold_percent": 100.0 * float(folds[k]) / float(counts[k])}
        for k in range(1, counts.size) if counts[k]
    ]


__all__ = ["fold_percent_per_label", "fold_rows"]
