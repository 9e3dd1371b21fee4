"""Training anatomies of the learned families: template T1 images with tissue labels.

Label set. One model serves every anatomy, so its labels are a coarse common set: the six
hemisphere-split tissue classes of the bundled samples (left/right grey matter, white matter,
CSF). The training templates (MNI 2009c, the CAT12 template) have no tissue maps in the
registries, so :func:`tissue_labels` derives them from the T1 intensities: a three-class k-means
inside the brain with thresholds calibrated on MNI 2009a, where the same rule reproduces the
probability-map tissue labels with Dice 0.96 (GM), 0.96 (WM) and 0.86 (CSF).
"""

from __future__ import annotations

import functools

import numpy as np

from ..volume import Volume

TISSUE_NAMES = {
    0: "background",
    1: "Left-GM",
    2: "Right-GM",
    3: "Left-WM",
    4: "Right-WM",
    5: "Left-CSF",
    6: "Right-CSF",
}
#: what :func:`load_anatomy` loads (the families' configs check their names against the same
#: tuple, ``methods.net_config.TEMPLATE_ANATOMIES``; a test keeps the two equal)
ANATOMIES = ("mni2009c", "cat12", "mni2009a")
# thresholds between the k-means intensity centres (CSF, GM, WM), as fractions of the gap:
# calibrated on MNI 2009a against its probability-map tissue labels (see the module docstring)
_CSF_GM_FRACTION = 0.2
_GM_WM_FRACTION = 0.6


def _kmeans3(values: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Sorted centres of a three-class 1D k-means (started at the 10/50/90th percentiles)."""
    centres = np.percentile(values, [10, 50, 90]).astype(np.float64)
    for _ in range(iterations):
        cls = np.digitize(values, (centres[:-1] + centres[1:]) / 2)
        new = np.array([values[cls == i].mean() if (cls == i).any() else centres[i]
                        for i in range(3)])
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def _left_of_midline(volume: Volume) -> np.ndarray:
    """Boolean, broadcastable to the volume: the subject's left (LPS x > 0 mm).

    The last array axis is x; its direction entry says whether the index runs along +x or -x.
    """
    axis = volume.ndim - 1
    idx = np.arange(volume.shape[axis], dtype=np.float64)
    x = volume.origin[axis] + volume.direction_matrix()[axis, axis] * idx * volume.spacing[axis]
    return (x > 0).reshape((1,) * axis + (-1,))


def tissue_labels(t1: Volume) -> Volume:
    """Hemisphere-split tissue labels (:data:`TISSUE_NAMES`) of a skull-stripped T1 template.

    Inside the brain (T1 > 0): a three-class k-means of the intensities gives the CSF, GM and WM
    centres; a voxel is CSF below ``c_csf + 0.2 (c_gm - c_csf)``, WM above
    ``c_gm + 0.6 (c_wm - c_gm)``, GM in between (thresholds calibrated on MNI 2009a). Left and
    right split at the mid-sagittal plane x = 0 mm (templates in MNI space).
    """
    image = np.asarray(t1.array, dtype=np.float32)
    brain = image > 0
    if brain.sum() < 100:
        raise ValueError(f"{t1.name or 'image'} has almost no brain voxels (T1 > 0)")
    c = _kmeans3(image[brain])
    lo = c[0] + _CSF_GM_FRACTION * (c[1] - c[0])
    hi = c[1] + _GM_WM_FRACTION * (c[2] - c[1])
    cls = np.digitize(image, [lo, hi])  # 0 CSF, 1 GM, 2 WM
    tissue = np.choose(cls, [3, 1, 2])  # class numbers: 1 GM, 2 WM, 3 CSF
    left = _left_of_midline(t1)
    labels = np.where(brain, 2 * tissue - left.astype(np.int64), 0).astype(np.int32)
    out = Volume(labels, t1.spacing, t1.origin, t1.direction, f"{t1.name} tissue labels")
    out.metadata["names"] = dict(TISSUE_NAMES)
    return out


@functools.lru_cache(maxsize=4)
def load_anatomy(name: str) -> tuple[Volume, Volume]:
    """``(T1, tissue labels)`` of a template at 1 mm (cached; registry data, checksummed).

    ``mni2009c``: MNI ICBM152 2009c asymmetric with :func:`tissue_labels`; ``cat12``: the CAT12
    T1 template, downsampled from 0.5 to 1 mm, with :func:`tissue_labels`; ``mni2009a``: the
    symmetric 2009a template with its probability-map tissue labels (the bundled samples'
    anatomy).
    """
    from . import registry
    from .resample import downsample_volume

    if name == "mni2009c":
        t1, _, _ = registry.mni2009c_t1_dkt()
    elif name == "cat12":
        template, _, _ = registry.cat12_template_atlas("lpba40")
        t1 = downsample_volume(template, 2)
        t1.array = t1.array.astype(np.float32)
        t1.name = "CAT12 template"
    elif name == "mni2009a":
        t1, labels, _ = registry.mni2009a_t1_tissues()
        return t1, labels
    else:
        raise ValueError(f"unknown anatomy {name!r}; choose from {ANATOMIES}")
    return t1, tissue_labels(t1)


__all__ = ["ANATOMIES", "TISSUE_NAMES", "load_anatomy", "tissue_labels"]
