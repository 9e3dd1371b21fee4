"""Checks shared by the trained-model configs of the learned families (``<family>/config.py``).

A trained-model config is the ``method:`` section of a training config and is stored in every
model file; it is validated when built, whether by the training CLI or by the model loader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..fields import validate

#: templates the families train on (``data.anatomy.load_anatomy`` loads them); MNI 2009a is the
#: bundled samples' anatomy, held out by default
TEMPLATE_ANATOMIES = ("mni2009c", "cat12", "mni2009a")


def check_net_config(
    config: Any,
    shape_fields: Sequence[str] = ("working_shape",),
    anatomy_fields: Sequence[str] = ("train_anatomies", "val_anatomies"),
) -> None:
    """Coerce ``config``'s fields to their types (lists become tuples), then check ``dims``
    (2 or 3), that each shape field has ``dims`` values, and the anatomies. ValueError if not."""
    validate(config)
    if config.dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {config.dims}")
    for name in shape_fields:
        if len(getattr(config, name)) != config.dims:
            raise ValueError(f"{name} {getattr(config, name)} must have {config.dims} values")
    for name in anatomy_fields:
        chosen = getattr(config, name)
        if not chosen or any(a not in TEMPLATE_ANATOMIES for a in chosen):
            raise ValueError(f"{name} must be taken from {TEMPLATE_ANATOMIES}, got {chosen}")


__all__ = ["TEMPLATE_ANATOMIES", "check_net_config"]
