"""napari-deepreg: learned deformable registration with quality inspection in napari.

The package is GUI-free except for ``napari_deepreg._napari``; everything else runs from
scripts, the command line and the tests.
"""

import os

# OpenMP threads that spin while waiting make torch many times slower on a busy CPU (measured on
# 2 shared cores: 2-6x the CPU time of one thread). Passive waiting costs nothing on an idle
# machine. Must be set before torch loads its OpenMP runtime; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
