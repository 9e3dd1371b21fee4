"""Fuzzed bad input through the Python API, the reader and the CLI (issue 18).

Cases come from ``fuzz_corpus.py`` (a defect applied to a valid input; hypothesis picks the
defect, the format and the random details). Each must end in a clean error or a correct result,
never a traceback, a hang, a silent wrong result or a touched file.

The default profile runs a few hundred cases in well under a minute; a nightly-style run sets
``NAPARI_DEEPREG_FUZZ=1000`` (examples per test: 1000 array cases, 1000 file cases, and a tenth
of that through the CLI, whose subprocess start costs seconds).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_corpus as fc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NIGHTLY = int(os.environ.get("NAPARI_DEEPREG_FUZZ", "0") or 0)
settings.register_profile(
    "default_fuzz", max_examples=150, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly_fuzz", max_examples=max(NIGHTLY, 1), deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("nightly_fuzz" if NIGHTLY else "default_fuzz")
CLI_EXAMPLES = max(NIGHTLY // 10, 5) if NIGHTLY else 5


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread: the cases are tiny and the machine is shared."""


@PROFILE
@given(defect=st.sampled_from(sorted(fc.ARRAY_DEFECTS)), seed=st.integers(0, 2**32 - 1))
def test_arrays_through_the_api(defect, seed):
    case = fc.make_array_case(defect, np.random.default_rng(seed))
    assert fc.run_array_case(case) in fc.FINE


@PROFILE
@given(defect=st.sampled_from(sorted(fc.FILE_DEFECTS)), fmt=st.sampled_from(fc.FORMATS),
       seed=st.integers(0, 2**32 - 1))
def test_files_through_the_reader(defect, fmt, seed):
    with tempfile.TemporaryDirectory() as tmp:
        case = fc.make_file_case(defect, fmt, Path(tmp), np.random.default_rng(seed))
        assert fc.run_file_case(case) in fc.FINE


@settings(PROFILE, max_examples=CLI_EXAMPLES)
@given(defect=st.sampled_from(sorted(d for d, e in fc.FILE_DEFECTS.items() if e == "bad")),
       fmt=st.sampled_from(fc.FORMATS), seed=st.integers(0, 2**32 - 1))
def test_bad_files_through_the_cli(defect, fmt, seed):
    with tempfile.TemporaryDirectory() as tmp:
        case = fc.make_file_case(defect, fmt, Path(tmp), np.random.default_rng(seed))
        assert fc.run_cli_case(case, Path(tmp), ROOT) == "clean error"


def test_a_good_file_with_an_odd_name_through_the_cli(tmp_path):
    case = fc.make_file_case("spaces_unicode_name", ".nii.gz", tmp_path, np.random.default_rng(1))
    assert fc.run_cli_case(case, tmp_path, ROOT) == "correct result"
    assert (tmp_path / "out dir" / "metrics.csv").read_text() != "the user's own file"
