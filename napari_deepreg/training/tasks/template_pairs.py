"""Synthetic training pairs from the template anatomies, as the learned families draw them.

Both families train on random deformations of real templates (``data.anatomy``); their
trained-model configs carry the same deformation fields (``svf_magnitude_mm``,
``svf_smoothness_mm``, ``subject_magnitude_mm``, ``rotation_deg``, ``scale``,
``translation_mm``), the working ``voxel_size`` and the ``train_anatomies`` /
``val_anatomies``. Not a task itself (no ``register_task``).
"""

from __future__ import annotations

from typing import Any

from ...data.anatomy import load_anatomy


def template_pair_config(config: Any, **options: Any) -> Any:
    """The ``data.pairs.PairConfig`` of a family config's deformations at its voxel size.

    Background stays zero (skull-stripped templates) and labels are resampled nearest;
    ``options`` add or override fields (``modality``, ``working_shape``, slicing...).
    """
    from ...data.pairs import PairConfig

    values = dict(
        modality="same",
        svf_magnitude_mm=tuple(config.svf_magnitude_mm),
        svf_smoothness_mm=config.svf_smoothness_mm,
        subject_magnitude_mm=tuple(config.subject_magnitude_mm),
        rotation_deg=config.rotation_deg,
        scale=config.scale,
        translation_mm=config.translation_mm,
        zero_background=True,
        downsample=int(config.voxel_size),
        working_shape=tuple(config.working_shape),
        label_interpolation="nearest",
    )
    values.update(options)
    return PairConfig(**values)


def template_sampler(config: Any, split: str, pair_config: Any) -> Any:
    """A ``data.pairs.PairSampler`` over the config's anatomies of ``split`` (``"train"`` or
    ``"val"``), seeded 0 (the pairs themselves come from the caller's generator)."""
    from ...data.pairs import PairSampler

    names = config.train_anatomies if split == "train" else config.val_anatomies
    return PairSampler([load_anatomy(n) for n in names], pair_config, seed=0)


__all__ = ["template_pair_config", "template_sampler"]
