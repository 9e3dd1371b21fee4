"""Session-wide settings for the test suite (imported before any test module)."""

import os

# ITK-based peers (ANTs, elastix) are reproducible only on one thread; with several, a 2D ANTs SyN
# run was seen to diverge once in a full-suite run. Must be set before ITK starts its threads.
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine two threads can be many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
