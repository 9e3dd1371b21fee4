"""Session-wide settings for the test suite (imported before any test module)."""

import os

# ITK-based peers (ANTs, elastix) are reproducible only on one thread; with several, a 2D ANTs SyN
# run was seen to diverge once in a full-suite run. Must be set before ITK starts its threads.
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
