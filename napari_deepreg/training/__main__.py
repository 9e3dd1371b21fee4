"""``python -m napari_deepreg.training METHOD --config FILE``, same as ``napari-deepreg train``."""

import sys

from .cli import main

sys.exit(main())
