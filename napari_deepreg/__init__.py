"""napari-deepreg: learned deformable registration with quality inspection in napari.

The package is GUI-free except for ``napari_deepreg._napari``; everything else runs from
scripts, the command line and the tests.
"""

__version__ = "0.1.0"
