"""Every shipped zoo model keeps its weights and its Dice on the bundled pair.

The feed-forward figures were measured on commit b0e8288 (before the method-family layout) with
the default inference config of then (no refinement), on CPU, through ``pipeline.register``
with the never-worse guard off: 3D models on ``brain3d``, 2D models on ``brain2d``. A refactor
of the methods must reproduce them within 0.002; a retrained model must update them here
together with its manifest entry. Refinement is on by default since issue 13: the refined
figures (the default config) are pinned beside them.

Changed on purpose since: AVSM's working grid counts voxels from the image extent and pads to
at least the training grid (issue 13: a full 2 mm brain was shown to the 4 mm models on a 14 %
larger grid, and the affine invented a scale). On the tightly cropped bundled pair this moved
avsm_3d from 0.8057 to 0.8025 and avsm_affine_3d from 0.6054 to 0.6027 (avsm_3d_4mm and the
refined figures unchanged).
"""

import pytest
import torch

from napari_deepreg import zoo
from napari_deepreg.pipeline import register, run_to_end
from napari_deepreg.sample import load_sample

TOL = 0.002

# model id -> (sha256 of the weight file, Dice after registration on the bundled pair)
PINNED = {
    "avsm_3d": ("d7eda4303079c8f8727fb5c68c87fd289bf5adb6d6a99540c1cad702107af2fa", 0.8025),
    "avsm_3d_4mm": ("3fc67cad73b943433a3795c38654e037f20ea1a4d406bf544a7b6114c9dc5989", 0.7795),
    "avsm_affine_3d": ("94507ba0057a87805c6e94d85a7a59f2b736265775e6679211d915f45803826b",
                       0.6027),
    "flownet_roi_2d": ("fa41c39f3a361ec6cfefadc8fca2e5d5028dac2ed433e6aabd22a87e9baa95e1",
                       0.8025),
    # trained on random shapes only (issue 15's second anatomy); the bundled brain never seen
    "flownet_roi_shapes_2d": ("0fc1dfe9f7cc18bb743363a47ff37b28bf6d5bb1a56e9b21d13958debdcf0acb",
                              0.8072),
    "deepsim_ae_2d": ("3d642e8bb8e6719398d139369692906e9d856a6beb35997316673f140d5bfe9b",
                      0.8237),
    "deepsim_seg_2d": ("02c9f4f5981976dffa79d8f33f2dd0b98222a717439d4dfe2f4e9b91fdddb360",
                       0.8195),
    "semantic_bspline_2d": ("37dc0ea662fd5c7c8769d95f21e8e8973970d40b726385d8c170b6a1bd376b3d",
                            0.8104),
    "semantic_bspline_3d": ("89fc0bc52a91bc2132cefdc192cc3c20941f0c7a279beb25e0eb9ca292be55f6",
                            0.7053),
    # the SUITS descent (15 updates, λ 2) with the trained FeatCNN; the same-contrast sample
    "suits_2d": ("1ce5d8195a12fc475fc6d8487b7c40c9b345720db3a04fb3e14bb20f6b331032", 0.7287),
}
DICE_BEFORE = {3: 0.6834, 2: 0.7016}
# the default config (test-time refinement: 40 half- + 10 full-resolution steps)
# moved on purpose by the refinement's affine correction (refine_affine, issue 13):
# semantic_bspline_2d 0.9499 -> 0.9477, deepsim_ae_2d 0.9498 -> 0.9527; the rest within TOL
REFINED = {"semantic_bspline_2d": 0.9477, "semantic_bspline_3d": 0.8740,
           "avsm_3d": 0.8743, "flownet_roi_2d": 0.9438, "deepsim_ae_2d": 0.9527,
           "deepsim_seg_2d": 0.9519, "flownet_roi_shapes_2d": 0.9469}


@pytest.fixture(scope="module")
def samples():
    return {3: load_sample("brain3d"), 2: load_sample("brain2d")}


def _dice(pair, method, config=None):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_to_end(register(
            pair["fixed"], pair["moving"], method=method, config=config,
            fixed_labels=pair["fixed_labels"], moving_labels=pair["moving_labels"],
            device="cpu", hausdorff=False, guard=False,
        ))
    finally:
        torch.set_num_threads(before)
    return result.metrics["dice_before"], result.metrics["dice_after"]


def test_every_zoo_model_is_pinned():
    assert sorted(e.id for e in zoo.list_models()) == sorted(PINNED)


@pytest.mark.parametrize("model_id", sorted(PINNED))
def test_weights_unchanged(model_id):
    entry = zoo.get_entry(model_id)
    assert entry.sha256 == PINNED[model_id][0]
    assert zoo.sha256_file(zoo.model_path(entry)) == PINNED[model_id][0]


@pytest.mark.parametrize("model_id", sorted(PINNED))
def test_dice_on_bundled_pair(samples, model_id):
    dims = int(zoo.get_entry(model_id).dims[0])
    before, after = _dice(samples[dims], model_id, {"refine": False})
    assert before == pytest.approx(DICE_BEFORE[dims], abs=TOL)
    assert after == pytest.approx(PINNED[model_id][1], abs=TOL)


@pytest.mark.parametrize("model_id", sorted(REFINED))
def test_refined_dice_on_bundled_pair(samples, model_id):
    dims = int(zoo.get_entry(model_id).dims[0])
    _, after = _dice(samples[dims], model_id)  # the default config refines
    assert after == pytest.approx(REFINED[model_id], abs=TOL)
