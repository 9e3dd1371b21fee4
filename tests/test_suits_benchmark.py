"""benchmarks/suits.py: method specs and the contrast inversion of its pairs."""

import numpy as np

from benchmarks.suits import invert, parse


def test_method_specs_carry_overrides_and_model_files():
    assert parse("suits_mind:lam=2:iterations=5") == ("suits_mind", {"lam": 2,
                                                                     "iterations": 5}, "")
    assert parse("instance_opt:similarity=mind_ssc") == ("instance_opt",
                                                         {"similarity": "mind_ssc"}, "")
    assert parse("suits_2d=runs/x/best_model.pt") == ("suits_2d", {}, "runs/x/best_model.pt")


def test_inversion_keeps_the_background():
    image = np.array([[0.0, 2.0], [4.0, 1.0]], np.float32)
    labels = np.array([[0, 1], [2, 0]])
    out = invert(image, labels)
    np.testing.assert_allclose(out, [[0.0, 0.5], [0.0, 0.25]])
