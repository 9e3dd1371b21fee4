"""core/affine.py: matrices, origin changes and the composition of an affine with a field."""

import torch

from napari_deepreg.core import (
    about_centre,
    affine_to_field,
    compose,
    compose_affine_field,
    homogeneous,
    shift_origin,
)


def _rotation(angle: float) -> torch.Tensor:
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    return torch.stack([torch.stack([c, -s]), torch.stack([s, c])]).double()


def test_homogeneous_and_about_centre_fix_the_centre():
    a = _rotation(0.3) * 1.1
    centre = torch.tensor([4.0, -2.0], dtype=torch.float64)
    m = about_centre(a, centre, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(m[:2, :2], a) and torch.equal(m[2], torch.tensor([0.0, 0, 1]).double())
    torch.testing.assert_close(m @ torch.cat([centre, torch.ones(1).double()]),
                               torch.cat([centre, torch.ones(1).double()]))
    batched = homogeneous(a.expand(3, 2, 2), torch.ones(3, 2).double())
    assert batched.shape == (3, 3, 3) and torch.equal(batched[1, :2, 2], torch.ones(2).double())


def test_shift_origin_gives_the_same_field_on_the_moved_grid():
    m = about_centre(_rotation(0.2), torch.tensor([3.0, 5.0]).double(),
                     torch.tensor([1.0, -2.0]).double())
    origin = [10.0, -4.0]
    shape, spacing = (7, 9), (1.0, 2.0)
    torch.testing.assert_close(affine_to_field(shift_origin(m, origin), shape, spacing, origin),
                               affine_to_field(m, shape, spacing))


def test_compose_affine_field_is_the_composition():
    shape, spacing = (24, 20), (1.0, 1.0)
    m = about_centre(_rotation(0.1), torch.tensor([11.5, 9.5]).double(),
                     torch.tensor([0.5, 0.25]).double())
    outer = affine_to_field(m, shape, spacing)
    inner = torch.randn(1, 2, *shape, dtype=torch.float64) * 0.5
    exact = compose_affine_field(outer, m[:2, :2], inner)
    # compose() interpolates the affine field, exact for a linear one away from the border
    resampled = compose(outer, inner, spacing)
    inside = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    torch.testing.assert_close(exact[inside], resampled[inside], atol=1e-6, rtol=0)
    batched = compose_affine_field(outer, m[:2, :2].unsqueeze(0), inner)
    torch.testing.assert_close(batched, exact)
