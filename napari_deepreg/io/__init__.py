"""Images with their geometry in and out of files, ITK transforms, and a run's output folder.

* :mod:`.volumes`: read / write / resample images with spacing, origin and direction (NIfTI,
  NRRD, MetaImage, DICOM series), through SimpleITK;
* :mod:`.transforms`: displacement fields and affines to ITK files and back;
* :mod:`.manifest`: ``outputs.json``, the list of files this tool wrote in a folder, and the rules
  every writer follows (never replace a file not listed without ``overwrite``, no links, no empty
  names); :func:`write_output_file` writes one file under them;
* :mod:`.outputs`: :func:`write_outputs`, the one writer of a registration's output folder (file
  names, manifest, safe clean-up) for the CLI, the widget and batch runs.
"""

from .manifest import (
    MANIFEST,
    check_output_file,
    read_manifest,
    remove_output_file,
    write_output_file,
)
from .outputs import (
    DEFAULT_OUTPUTS,
    OUTPUTS,
    TRANSFORM_FILES,
    TRANSFORM_OUTPUTS,
    check_output_folder,
    export_transforms,
    write_outputs,
)
from .transforms import (
    AFFINE_SUFFIXES,
    FIELD_SUFFIXES,
    TRANSFORM_SUFFIXES,
    affine_to_physical,
    export_affine,
    export_field,
    export_transform,
    field_to_itk_image,
    read_field,
)
from .volumes import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    describe_grid,
    direction_is_identity,
    from_sitk,
    label_dtype,
    read_volume,
    resample_to_grid,
    to_sitk,
    write_volume,
)

__all__ = [
    "AFFINE_SUFFIXES",
    "DEFAULT_OUTPUTS",
    "DICOM_SUFFIXES",
    "FIELD_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MANIFEST",
    "OUTPUTS",
    "TRANSFORM_FILES",
    "TRANSFORM_OUTPUTS",
    "TRANSFORM_SUFFIXES",
    "affine_to_physical",
    "check_output_file",
    "check_output_folder",
    "describe_grid",
    "direction_is_identity",
    "export_affine",
    "export_field",
    "export_transform",
    "export_transforms",
    "field_to_itk_image",
    "from_sitk",
    "label_dtype",
    "read_field",
    "read_manifest",
    "read_volume",
    "remove_output_file",
    "resample_to_grid",
    "to_sitk",
    "write_output_file",
    "write_outputs",
    "write_volume",
]
