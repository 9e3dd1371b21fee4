"""Registration quality figures on numpy arrays: Dice, HD95, ASSD, folds, SDlogJ, TRE, EPE.

Everything here takes numpy arrays (2D ``(y, x)`` or 3D ``(z, y, x)``) with ``spacing`` in mm per
array axis and returns Python floats, dicts or small numpy arrays; no torch, no GUI.

Label conventions:

* label maps hold non-negative integers; 0 is background and is left out unless asked for;
* ``*_per_label(a, b)`` evaluates, by default, every foreground label present in ``a`` or ``b``
  (the union); a label absent from both is skipped, a label absent from one of them scores Dice 0
  and HD95 / ASSD ``nan`` (no surface to measure to);
* ``mean_*(a, b)`` averages over the labels present in the reference ``a`` (the fixed map in a
  registration), ignoring ``nan``.

Speed: Dice of all labels comes from three ``np.bincount`` passes; surface distances are computed
per label inside the bounding box of that label in both maps (``scipy.ndimage.find_objects``) plus
a one-voxel margin, so a 1 mm brain with ~100 structures takes seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .volume import check_labels

# scipy.ndimage (0.1-0.2 s to import) loads in the functions using it (not Dice, folds, SDlogJ).

# Above this label value, counts and boxes go through np.unique instead of dense tables.
_DENSE_MAX = 1 << 20

Box = tuple[slice, ...]


# ----------------------------------------------------------------------------- helpers


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Spacing as ``ndim`` positive floats (None = 1 mm).

    Mirrors ``core.grid.as_spacing``; duplicated so this module stays free of torch.
    """
    if spacing is None:
        return (1.0,) * ndim
    if np.isscalar(spacing):
        values = (float(spacing),) * ndim  # type: ignore[arg-type]
    else:
        values = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(values) != ndim:
        raise ValueError(f"spacing must have {ndim} values, got {len(values)}: {values}")
    if any(not s > 0 for s in values):
        raise ValueError(f"spacing must be positive, got {values}")
    return values


def _labels_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two label maps on the same grid; return them as int32."""
    a = check_labels(a, np.shape(a), "first label map")
    b = check_labels(b, a.shape, "second label map")
    return a, b


def _counts(x: np.ndarray) -> dict[int, int]:
    """Voxel count of every value present in the non-negative integer array ``x``."""
    if x.size == 0:
        return {}
    if int(x.max()) <= _DENSE_MAX:
        bins = np.bincount(x.ravel())
        present = np.flatnonzero(bins)
        return dict(zip(present.tolist(), bins[present].tolist(), strict=True))
    values, counts = np.unique(x, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _boxes(x: np.ndarray) -> dict[int, Box]:
    """Bounding box (tuple of slices) of every foreground label of ``x``, in one pass."""
    from scipy import ndimage  # loaded on first use (see the top)
    if x.size == 0 or int(x.max()) == 0:
        return {}
    if int(x.max()) <= _DENSE_MAX:
        objects = ndimage.find_objects(x)
        return {i + 1: s for i, s in enumerate(objects) if s is not None}
    # sparse, huge label values: index them densely first (0 stays 0 when present)
    values, inverse = np.unique(x, return_inverse=True)
    shift = 0 if values[0] == 0 else 1
    objects = ndimage.find_objects(inverse.reshape(x.shape) + shift)
    return {int(values[j + 1 - shift]): s for j, s in enumerate(objects) if s is not None}


def _joint_box(box_a: Box, box_b: Box, shape: Sequence[int], margin: int = 1) -> Box:
    """Smallest box holding both boxes, grown by ``margin`` voxels and clipped to ``shape``."""
    return tuple(
        slice(max(min(sa.start, sb.start) - margin, 0), min(max(sa.stop, sb.stop) + margin, n))
        for sa, sb, n in zip(box_a, box_b, shape, strict=True)
    )


def _surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: in the mask with a face neighbour outside it (or on the array border).

    The array border counts as outside (``border_value=0``), so an object cut by the field of
    view has a surface there, and cropping with a one-voxel margin changes nothing.
    """
    from scipy import ndimage  # loaded on first use (see the top)
    faces = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=faces, border_value=0)


def _directed_both(
    mask_a: np.ndarray, mask_b: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Surface-to-surface distances (mm) a->b and b->a for two non-empty masks of one crop."""
    from scipy import ndimage  # loaded on first use (see the top)
    surf_a, surf_b = _surface(mask_a), _surface(mask_b)
    d_ab = ndimage.distance_transform_edt(~surf_b, sampling=spacing)[surf_a]
    d_ba = ndimage.distance_transform_edt(~surf_a, sampling=spacing)[surf_b]
    return d_ab, d_ba


def _nanmean(values: Sequence[float]) -> float:
    """Mean ignoring nan; nan (without a warning) when nothing is left."""
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


# ----------------------------------------------------------------------------- labels, Dice


def label_ids(*label_maps: np.ndarray | None, exclude_background: bool = True) -> list[int]:
    """Sorted labels present in ANY of the given maps (the union; ``None`` maps are ignored).

    Pass only the fixed map to get the labels of the reference.
    """
    found: set[int] = set()
    for lab in label_maps:
        if lab is None:
            continue
        found.update(_counts(check_labels(lab, np.shape(lab))))
    if exclude_background:
        found.discard(0)
    return sorted(found)


def dice_per_label(
    a: np.ndarray, b: np.ndarray, labels: Sequence[int] | None = None
) -> dict[int, float]:
    """Dice ``2|A∩B| / (|A| + |B|)`` of each label, all labels in one pass.

    Args:
        a, b: integer label maps of the same shape (``a`` is the reference).
        labels: labels to score; default every foreground label present in ``a`` or ``b``.

    Returns:
        ``{label: dice}``; a label absent from both maps is skipped, one absent from either scores
        0.
    """
    a, b = _labels_pair(a, b)
    ids = label_ids(a, b) if labels is None else [int(v) for v in labels]
    count_a, count_b = _counts(a), _counts(b)
    both = _counts(a[a == b])
    out: dict[int, float] = {}
    for lab in ids:
        total = count_a.get(lab, 0) + count_b.get(lab, 0)
        if total == 0:
            continue
        out[lab] = 2.0 * both.get(lab, 0) / total
    return out


def mean_dice(a: np.ndarray, b: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Mean Dice over ``labels`` (default: the foreground labels present in the reference ``a``).

    nan when there is no label to average.
    """
    ids = label_ids(a) if labels is None else labels
    return _nanmean(dice_per_label(a, b, ids).values())


# ----------------------------------------------------------------------------- surfaces


def surface_distances(
    mask_a: np.ndarray, mask_b: np.ndarray, spacing: float | Sequence[float] | None = None
) -> np.ndarray:
    """Distance (mm) from every surface voxel of ``mask_a`` to the nearest surface voxel of ``b``.

    A surface voxel is a mask voxel with a face neighbour outside the mask (or on the array
    border); distances are Euclidean between voxel centres, with ``spacing`` per array axis. The
    work is cropped to the joint bounding box of both masks plus one voxel.

    Args:
        mask_a, mask_b: boolean arrays of the same 2D or 3D shape.
        spacing: voxel size in mm per array axis (default 1).

    Returns:
        1D float64 array, one entry per surface voxel of ``a`` in C order; empty when ``a`` is
        empty, all ``inf`` when ``b`` is empty.
    """
    from scipy import ndimage  # loaded on first use (see the top)
    mask_a, mask_b = np.asarray(mask_a, dtype=bool), np.asarray(mask_b, dtype=bool)
    if mask_a.shape != mask_b.shape:
        raise ValueError(f"masks differ in shape: {mask_a.shape} vs {mask_b.shape}")
    sp = _spacing(spacing, mask_a.ndim)
    box_a = ndimage.find_objects(mask_a.astype(np.uint8))
    if not box_a:
        return np.zeros(0)
    box_b = ndimage.find_objects(mask_b.astype(np.uint8))
    if not box_b:
        return np.full(int(_surface(mask_a).sum()), np.inf)
    box = _joint_box(box_a[0], box_b[0], mask_a.shape)
    return _directed_both(mask_a[box], mask_b[box], sp)[0]


def _surface_metrics(
    a: np.ndarray,
    b: np.ndarray,
    spacing: tuple[float, ...],
    labels: Sequence[int],
    boxes_a: dict[int, Box] | None = None,
    boxes_b: dict[int, Box] | None = None,
) -> dict[int, tuple[float, float]]:
    """``{label: (hd95, assd)}`` in mm for validated int maps; see hd95_per_label."""
    boxes_a = _boxes(a) if boxes_a is None else boxes_a
    boxes_b = _boxes(b) if boxes_b is None else boxes_b
    full = tuple(slice(0, n) for n in a.shape)
    out: dict[int, tuple[float, float]] = {}
    for lab in labels:
        if lab == 0:  # background has no box from find_objects; measure it on the whole grid
            in_a, in_b = bool((a == 0).any()), bool((b == 0).any())
            box_a, box_b = (full if in_a else None), (full if in_b else None)
        else:
            box_a, box_b = boxes_a.get(lab), boxes_b.get(lab)
        if box_a is None and box_b is None:
            continue
        if box_a is None or box_b is None:
            out[lab] = (float("nan"), float("nan"))
            continue
        box = _joint_box(box_a, box_b, a.shape)
        d_ab, d_ba = _directed_both(a[box] == lab, b[box] == lab, spacing)
        dist = np.concatenate([d_ab, d_ba])
        out[lab] = (float(np.percentile(dist, 95)), float(dist.mean()))
    return out


def hd95_per_label(
    a: np.ndarray,
    b: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> dict[int, float]:
    """Symmetric 95th-percentile Hausdorff distance (mm) of each label.

    Definition: the 95th percentile (numpy's linear interpolation) of the UNION of the two
    directed surface-to-surface distance sets (every surface voxel of A to the surface of B and
    every surface voxel of B to the surface of A); see ``surface_distances`` for what a surface
    voxel is. A box shifted by k voxels along an axis of spacing s gives exactly k*s as long as
    more than 5 % of the surface voxels lie on the two faces that moved by the full k.

    Args:
        a, b: integer label maps of the same shape.
        spacing: voxel size in mm per array axis.
        labels: labels to score; default every foreground label present in ``a`` or ``b``.

    Returns:
        ``{label: hd95}``; skipped when absent from both maps, ``nan`` when absent from one.
    """
    a, b = _labels_pair(a, b)
    ids = label_ids(a, b) if labels is None else [int(v) for v in labels]
    stats = _surface_metrics(a, b, _spacing(spacing, a.ndim), ids)
    return {lab: hd for lab, (hd, _) in stats.items()}


def assd_per_label(
    a: np.ndarray,
    b: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> dict[int, float]:
    """Average symmetric surface distance (mm) of each label.

    The mean of the union of both directed surface-to-surface distance sets, i.e.
    ``(sum d(A->B) + sum d(B->A)) / (|surface A| + |surface B|)``. Same label rules as
    ``hd95_per_label`` (nan when absent from one map).
    """
    a, b = _labels_pair(a, b)
    ids = label_ids(a, b) if labels is None else [int(v) for v in labels]
    stats = _surface_metrics(a, b, _spacing(spacing, a.ndim), ids)
    return {lab: assd for lab, (_, assd) in stats.items()}


def mean_hd95(
    a: np.ndarray,
    b: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> float:
    """nan-mean of ``hd95_per_label`` over ``labels`` (default: labels present in ``a``)."""
    ids = label_ids(a) if labels is None else labels
    return _nanmean(hd95_per_label(a, b, spacing, ids).values())


def mean_assd(
    a: np.ndarray,
    b: np.ndarray,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> float:
    """nan-mean of ``assd_per_label`` over ``labels`` (default: labels present in ``a``)."""
    ids = label_ids(a) if labels is None else labels
    return _nanmean(assd_per_label(a, b, spacing, ids).values())


# ----------------------------------------------------------------------------- Jacobian


def _jacobian_values(jacobian: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The non-nan Jacobian values inside ``mask`` (which must broadcast to the Jacobian)."""
    jac = np.asarray(jacobian, dtype=np.float64)
    if mask is not None:
        jac = jac[np.broadcast_to(np.asarray(mask, dtype=bool), jac.shape)]
    return jac[~np.isnan(jac)]


def fold_percent(jacobian: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Percentage (0-100) of voxels whose Jacobian determinant is <= 0.

    Args:
        jacobian: determinant map, any shape (e.g. ``(*S)`` or ``(1, *S)``).
        mask: optional boolean region broadcastable to ``jacobian``.

    nan voxels are left out of numerator and denominator; nan when nothing is left.
    """
    jac = _jacobian_values(jacobian, mask)
    return float(100.0 * np.count_nonzero(jac <= 0) / jac.size) if jac.size else float("nan")


def sdlogj(jacobian: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Standard deviation (population, ddof=0) of ``log J`` with J clipped to [1e-9, 1e9].

    The Learn2Reg convention: folds (J <= 0) are clipped rather than dropped, so they raise the
    figure. nan voxels are left out; nan when nothing is left.
    """
    jac = _jacobian_values(jacobian, mask)
    if not jac.size:
        return float("nan")
    return float(np.log(np.clip(jac, 1e-9, 1e9)).std())


# ----------------------------------------------------------------------------- points, fields


def tre(
    fixed_points: np.ndarray,
    moving_points: np.ndarray,
    field: np.ndarray | None = None,
    spacing: float | Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
) -> np.ndarray:
    """Target registration error (mm) of each landmark pair.

    With the pull-back ``warped(x) = moving(x + u(x))`` fixed ``p`` lands at ``p + u(p)``
    (:func:`map_points`).

    Args:
        fixed_points: ``(K, D)`` physical positions (mm) in the fixed image, array axis order.
        moving_points: ``(K, D)`` matching positions (mm) in the moving image.
        field: ``(D, *S)`` displacement in mm on the fixed grid, or None for the error before
            registration ``||p - q||``.
        spacing: fixed-grid voxel size (mm) per array axis.
        origin: physical position (mm) of fixed voxel 0 per array axis (default 0).

    Returns:
        ``(K,)`` float64 errors ``||p + u(p) - q||`` in mm.
    """
    p = np.asarray(fixed_points, dtype=np.float64)
    q = np.asarray(moving_points, dtype=np.float64)
    if p.ndim != 2 or p.shape != q.shape:
        raise ValueError(f"point sets must both be (K, D) and match, got {p.shape} and {q.shape}")
    if field is not None:
        p = map_points(p, field, spacing, origin)
    return np.linalg.norm(p - q, axis=1)


def map_points(points: np.ndarray, field: np.ndarray, spacing: float | Sequence[float] | None,
               origin: Sequence[float] | None) -> np.ndarray:
    """Where fixed points ``p`` (``(K, D)`` mm) land in the moving image: ``p + u(p)`` (mm).

    ``u`` (``(D, *S)`` mm on the fixed grid) is interpolated linearly at voxel index
    ``(p - origin) / spacing``; points outside the grid take the nearest border value.
    """
    from scipy import ndimage  # loaded on first use (see the top)
    p = np.asarray(points, dtype=np.float64)
    ndim = p.shape[1]
    u = np.asarray(field, dtype=np.float64)
    if u.ndim != ndim + 1 or u.shape[0] != ndim:
        raise ValueError(f"field must be ({ndim}, *spatial) for {ndim}D points, got {u.shape}")
    org = np.zeros(ndim) if origin is None else np.asarray(origin, dtype=np.float64)
    index = ((p - org) / np.asarray(_spacing(spacing, ndim))).T  # (D, K) for map_coordinates
    return p + np.stack([ndimage.map_coordinates(u[i], index, order=1, mode="nearest")
                         for i in range(ndim)], axis=1)


def endpoint_error(
    field: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Mean Euclidean distance (mm) between two displacement fields ``(D, *S)``.

    Args:
        field, reference: ``(D, *S)`` displacements in mm, same shape.
        mask: optional boolean ``S`` region to average over (nan when empty).
    """
    f = np.asarray(field, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if f.shape != r.shape:
        raise ValueError(f"fields differ in shape: {f.shape} vs {r.shape}")
    err = np.sqrt(((f - r) ** 2).sum(axis=0))
    if mask is not None:
        err = err[np.asarray(mask, dtype=bool)]
    return float(err.mean()) if err.size else float("nan")


# ----------------------------------------------------------------------------- summary


def registration_metrics(
    fixed_labels: np.ndarray | None,
    moving_labels: np.ndarray | None,
    warped_labels: np.ndarray | None,
    jacobian: np.ndarray | None,
    spacing: float | Sequence[float] | None = None,
    *,
    labels: Sequence[int] | None = None,
    mask: np.ndarray | None = None,
    fast: bool = False,
    fixed_points: np.ndarray | None = None,
    moving_points: np.ndarray | None = None,
    field: np.ndarray | None = None,
    origin: Sequence[float] | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The figures shown after a registration: a summary and one row per label.

    All label maps live on the fixed grid (the moving labels already resampled to it).

    Args:
        fixed_labels: reference label map ``S``, or None for no label figures.
        moving_labels: moving labels before registration (``*_before``), or None.
        warped_labels: moving labels warped onto the fixed image (``*_after``), or None.
        jacobian: determinant map (``S`` or ``(1, *S)``), or None for no Jacobian figures.
        spacing: voxel size in mm per array axis of the fixed grid.
        labels: labels to score; default the foreground labels present in ``fixed_labels``.
        mask: optional region for the Jacobian figures.
        fast: skip HD95 and ASSD (their keys are then absent), for big volumes in the GUI.
        fixed_points, moving_points, field, origin: optional landmarks ``(K, D)`` in mm; with
            both point sets the summary gets ``tre_before`` (mean, mm) and, with the ``(D, *S)``
            field, ``tre_after``.

    Returns:
        ``(summary, rows)``. Summary keys: ``dice_before``, ``dice_after``, ``hd95_before``,
        ``hd95_after``, ``assd_before``, ``assd_after`` (means over the scored labels, nan
        ignored), ``n_labels``, ``fold_percent``, ``sdlogj``; keys whose inputs are None (or
        skipped by ``fast``) are left out. Rows: ``{"label", "dice_before", "dice_after",
        "hd95_before", "hd95_after"}`` with nan for a label absent from both maps compared.
    """
    summary: dict[str, float] = {}
    rows: list[dict[str, float]] = []
    if fixed_labels is not None and (moving_labels is not None or warped_labels is not None):
        fixed = check_labels(fixed_labels, np.shape(fixed_labels), "fixed labels")
        ids = label_ids(fixed) if labels is None else [int(v) for v in labels]
        sp = _spacing(spacing, fixed.ndim)
        boxes_fixed = None if fast else _boxes(fixed)
        rows = [{"label": lab} for lab in ids]
        for when, other in (("before", moving_labels), ("after", warped_labels)):
            if other is None:
                continue
            what = "moving labels" if when == "before" else "warped labels"
            other = check_labels(other, fixed.shape, what)
            dice = dice_per_label(fixed, other, ids)
            summary[f"dice_{when}"] = _nanmean(dice.values())
            for row in rows:
                row[f"dice_{when}"] = dice.get(row["label"], float("nan"))
            if fast:
                continue
            stats = _surface_metrics(fixed, other, sp, ids, boxes_fixed)
            summary[f"hd95_{when}"] = _nanmean(v[0] for v in stats.values())
            summary[f"assd_{when}"] = _nanmean(v[1] for v in stats.values())
            for row in rows:
                row[f"hd95_{when}"] = stats.get(row["label"], (float("nan"),) * 2)[0]
        summary["n_labels"] = len(ids)
    if jacobian is not None:
        summary["fold_percent"] = fold_percent(jacobian, mask)
        summary["sdlogj"] = sdlogj(jacobian, mask)
    if fixed_points is not None and moving_points is not None:
        summary["tre_before"] = float(tre(fixed_points, moving_points).mean())
        if field is not None:
            summary["tre_after"] = float(
                tre(fixed_points, moving_points, field, spacing, origin).mean()
            )
    return summary, rows
