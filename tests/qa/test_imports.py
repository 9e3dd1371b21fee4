"""qa/ is pure: importing it (and using its builders) loads neither napari nor Qt."""

from __future__ import annotations

import subprocess
import sys


def test_qa_imports_no_napari_and_no_qt():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from napari_deepreg import qa\n"
        "qa.grid_lines(np.zeros((2, 8, 8), np.float32), (1.0, 1.0))\n"
        "qa.fold_clusters(np.ones((4, 4)))\n"
        "gui = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt'))\n"
        "print(','.join(gui))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
