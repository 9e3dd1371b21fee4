"""npe2 sample data: the bundled brain pairs as four layers each.

fixed and moving open as grey images, their label maps as translucent Labels layers, all with
the volumes' spacing and origin.
"""

from __future__ import annotations

from typing import Any

from ..volume import Volume

LayerDataTuple = tuple[Any, dict[str, Any], str]


def _image(volume: Volume, name: str, **style: Any) -> LayerDataTuple:
    return (
        volume.array,
        {
            "name": name,
            "scale": tuple(volume.spacing),
            "translate": tuple(volume.origin),
            "metadata": {"direction": volume.direction_matrix().tolist(),
                         "origin": list(volume.origin), "spacing": list(volume.spacing)},
            **style,
        },
        "image",
    )


def _labels(
    volume: Volume, name: str, label_names: dict[int, str], **style: Any
) -> LayerDataTuple:
    data, kwargs, _ = _image(volume, name, **style)
    if label_names:  # hovering a label shows its anatomical name
        ids = sorted(label_names)
        kwargs["features"] = {"index": ids, "name": [label_names[i] for i in ids]}
    return data.astype("int32", copy=False), kwargs, "labels"


def sample_layers(name: str) -> list[LayerDataTuple]:
    """Layer data tuples for ``napari_deepreg.sample.load_sample(name)``.

    Order (bottom to top): fixed, moving, fixed labels, moving labels. The moving image starts
    hidden so the fixed one is visible underneath.
    """
    from ..sample import load_sample

    pair = load_sample(name)
    names = pair.get("label_names", {})
    return [
        _image(pair["fixed"], "fixed", colormap="gray"),
        _image(pair["moving"], "moving", colormap="gray", visible=False),
        _labels(pair["fixed_labels"], "fixed labels", names, opacity=0.4),
        _labels(pair["moving_labels"], "moving labels", names, opacity=0.4, visible=False),
    ]


def brain_3d_pair() -> list[LayerDataTuple]:
    """npe2 sample "Brain 3D pair (2 mm)"."""
    return sample_layers("brain3d")


def brain_2d_pair() -> list[LayerDataTuple]:
    """npe2 sample "Brain 2D pair"."""
    return sample_layers("brain2d")
