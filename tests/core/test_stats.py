"""core.stats.percentiles equals numpy's default (linear) percentile."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_deepreg.core.stats import percentiles

FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=200, deadline=None)
@given(values=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
                         elements=FINITE),
       q=st.lists(st.floats(0, 100), min_size=1, max_size=4))
def test_flattened_matches_numpy(values, q):
    np.testing.assert_allclose(percentiles(values, q), np.percentile(values, q),
                               rtol=1e-6, atol=1e-3)


@settings(max_examples=100, deadline=None)
@given(values=hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 30)),
                         elements=FINITE),
       q=st.lists(st.floats(0, 100), min_size=1, max_size=3))
def test_along_an_axis_matches_numpy(values, q):
    np.testing.assert_allclose(percentiles(values, q, axis=1),
                               np.percentile(values, q, axis=1), rtol=1e-9, atol=1e-6)


def test_known_values_and_empty_input():
    np.testing.assert_allclose(percentiles(np.arange(11.0), [0, 50, 95, 100]), [0, 5, 9.5, 10])
    with pytest.raises(ValueError, match="empty"):
        percentiles(np.zeros(0), [50])
