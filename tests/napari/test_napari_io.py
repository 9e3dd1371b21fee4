"""Reader, writer and sample data contributions (through npe2 and the viewer)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepreg._napari._reader import get_reader, looks_like_labels, read_volumes
from napari_deepreg._napari._writer import layer_volume
from napari_deepreg.io import read_volume, write_volume
from napari_deepreg.volume import InputError, Volume

SPACING = (1.5, 0.8, 1.2)
ORIGIN = (10.0, -5.0, 3.0)


def image(shape=(6, 7, 8), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32) * 100


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_reader_claims_medical_volumes_only(suffix):
    assert get_reader(f"/data/t1{suffix}") is read_volumes
    assert get_reader([f"/data/a{suffix}", f"/data/b{suffix}"]) is read_volumes


@pytest.mark.parametrize("path", ["/data/a.png", "/data/a.tif", "/data/a.gz", "/data/dir"])
def test_reader_declines_other_files(path):
    assert get_reader(path) is None


def test_reader_geometry_and_layer_type(tmp_path):
    write_volume(Volume(image(), SPACING, ORIGIN), tmp_path / "t1.nii.gz")
    labels = np.zeros((6, 7, 8), dtype=np.uint8)
    labels[2:4, 2:5, 3:6] = 3
    write_volume(Volume(labels, SPACING, ORIGIN), tmp_path / "brain_seg.nrrd", labels=True)

    [(data, kwargs, kind)] = read_volumes(str(tmp_path / "t1.nii.gz"))
    assert kind == "image" and data.shape == (6, 7, 8)
    np.testing.assert_allclose(kwargs["scale"], SPACING, rtol=1e-5)
    np.testing.assert_allclose(kwargs["translate"], ORIGIN, atol=1e-4)
    np.testing.assert_allclose(kwargs["metadata"]["direction"], np.eye(3), atol=1e-6)
    np.testing.assert_allclose(kwargs["metadata"]["origin"], ORIGIN, atol=1e-4)

    [(data, kwargs, kind)] = read_volumes(str(tmp_path / "brain_seg.nrrd"))
    assert kind == "labels"
    np.testing.assert_array_equal(data, labels)


def test_looks_like_labels():
    few = np.zeros((10, 10), dtype=np.int16)
    few[3:6, 3:6] = 4
    assert looks_like_labels(few, "scan.nii.gz")  # integer, 2 values
    many = np.arange(100, dtype=np.int16).reshape(10, 10)
    assert not looks_like_labels(many, "scan.nii.gz")  # an integer image (CT, MR)
    assert looks_like_labels(many, "aparc_labels.nii.gz")  # ... unless named as labels
    assert not looks_like_labels(few.astype(np.float32), "scan.nii.gz")  # floats: an image
    assert looks_like_labels(few.astype(np.float32), "brain_mask.nii.gz")
    assert not looks_like_labels(few.astype(np.float32) + 0.5, "brain_mask.nii.gz")
    assert not looks_like_labels(few - 1, "seg.nii.gz")  # negative values


def test_viewer_opens_with_geometry(make_napari_viewer, tmp_path):
    path = tmp_path / "moving.mha"
    write_volume(Volume(image(), SPACING, ORIGIN), path)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-deepreg")
    assert layer.name == "moving"
    np.testing.assert_allclose(layer.scale, SPACING, rtol=1e-5)
    np.testing.assert_allclose(layer.translate, ORIGIN, atol=1e-4)


@pytest.mark.parametrize(("kind", "suffix"), [("image", ".nii.gz"), ("labels", ".mha")])
def test_writer_round_trip(make_napari_viewer, tmp_path, kind, suffix):
    import napari

    viewer = make_napari_viewer()
    if kind == "image":
        data = image()
        layer = viewer.add_image(data, scale=SPACING, translate=ORIGIN, name="img")
    else:
        data = (image() > 50).astype(np.int32) * 7
        layer = viewer.add_labels(data, scale=SPACING, translate=ORIGIN, name="lab")
    path = tmp_path / f"out{suffix}"
    written = napari.save_layers(str(path), [layer], plugin="napari-deepreg")
    assert [str(p) for p in written] == [str(path)]
    volume = read_volume(path)
    np.testing.assert_allclose(volume.spacing, SPACING, rtol=1e-5)
    np.testing.assert_allclose(volume.origin, ORIGIN, atol=1e-4)
    np.testing.assert_allclose(volume.array, data, rtol=1e-6)


def test_writer_refuses_rgb_and_keeps_direction():
    with pytest.raises(InputError, match="RGB"):
        layer_volume(np.zeros((4, 4, 3)), {"rgb": True})
    flip = np.diag([1.0, -1.0, 1.0])
    volume = layer_volume(np.zeros((2, 3, 4)), {"scale": (1, 2, 3), "translate": (0, 1, 2),
                                                "metadata": {"direction": flip.tolist()}})
    np.testing.assert_array_equal(volume.direction, flip)
    assert volume.spacing == (1, 2, 3) and volume.origin == (0, 1, 2)


@pytest.mark.parametrize(("key", "ndim"), [("brain3d", 3), ("brain2d", 2)])
def test_sample_data_opens_four_layers(make_napari_viewer, key, ndim):
    from napari_deepreg.sample import load_sample

    pair = load_sample(key)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepreg", key)
    assert [layer.name for layer in viewer.layers] == [
        "fixed", "moving", "fixed labels", "moving labels",
    ]
    kinds = [type(layer).__name__ for layer in viewer.layers]
    assert kinds == ["Image", "Image", "Labels", "Labels"]
    for layer, part in zip(viewer.layers, ("fixed", "moving", "fixed_labels", "moving_labels"),
                           strict=True):
        assert layer.ndim == ndim
        np.testing.assert_array_equal(layer.data, pair[part].array)
        np.testing.assert_allclose(layer.scale, pair[part].spacing)
        np.testing.assert_allclose(layer.translate, pair[part].origin)
    labels = viewer.layers["fixed labels"]
    assert "name" in labels.features.columns
