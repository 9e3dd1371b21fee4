"""Which checkpoint a run resumes from (napari_deepreg.training.run_state)."""

from __future__ import annotations

import pytest

from napari_deepreg.training.run_state import resolve_resume


def test_resolve_resume(tmp_path):
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("", tmp_path) is None
    assert resolve_resume("last", tmp_path) is None  # nothing yet: start fresh
    last = tmp_path / "checkpoints" / "last.pt"
    last.parent.mkdir()
    last.write_bytes(b"")
    assert resolve_resume("last", tmp_path) == last
    assert resolve_resume(str(last), tmp_path / "elsewhere") == last
    with pytest.raises(ValueError, match="does not exist"):
        resolve_resume(tmp_path / "missing.pt", tmp_path)
