"""SUITS (Blendowski, Hansen, Heinrich 2020): supervised iterative descent for multi-modal
registration.

* :mod:`.solver` — the Gauss-Newton step (eq. 6) as a CG layer with an adjoint backward;
* :mod:`.descent` — the iterations on a 4x coarser grid;
* :mod:`.config` — the descent's settings, the learned method's, the trained FeatCNN's;
* :mod:`.model` — the FeatCNN (``nets.suits``) from its config, trained models by id/file;
* :mod:`.losses` — MIND replication and the label guide (eq. 3);
* :mod:`.method` — ``suits_mind`` (no learning) and :func:`zoo_method_spec` (trained models).

Training: ``napari_deepreg.training.tasks.suits``.
"""

from .config import METHOD_ID, SuitsConfig, SuitsLearnedConfig, SuitsNetConfig
from .method import SPEC, estimate, estimate_mind, zoo_method_spec
from .model import FAMILY, build_net, load_model

__all__ = ["FAMILY", "METHOD_ID", "SPEC", "SuitsConfig", "SuitsLearnedConfig", "SuitsNetConfig",
           "build_net", "estimate", "estimate_mind", "load_model", "zoo_method_spec"]
