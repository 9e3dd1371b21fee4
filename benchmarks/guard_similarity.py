"""Does the never-worse guard's similarity rank identity against good and bad registrations?

    python -m benchmarks.guard_similarity

On the bundled pairs (``brain3d``, ``brain2d``) the fields of the zoo models (feed-forward and
refined), the true field and bad fields (each good field negated) are scored with the guard's
NMI on its reduced grid, beside the mean Dice at native resolution; printed one line per field,
with the seconds one ``guard.check`` takes. A good similarity puts the identity below every field
that raises Dice and above every field that lowers it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from napari_deepreg import guard, metrics
from napari_deepreg.core import warp_labels
from napari_deepreg.methods import available_methods, get_method
from napari_deepreg.methods.base import Estimate
from napari_deepreg.pipeline import normalise_intensity, run_to_end
from napari_deepreg.sample import load_sample


def main() -> int:
    torch.set_num_threads(1)
    for name, dims in (("brain3d", 3), ("brain2d", 2)):
        pair = load_sample(name)
        f = torch.from_numpy(normalise_intensity(pair["fixed"].array))[None, None]
        m = torch.from_numpy(normalise_intensity(pair["moving"].array))[None, None]
        sp = pair["fixed"].spacing
        lab = torch.from_numpy(pair["moving_labels"].array.astype(np.int32))[None, None]
        fixed_labels = pair["fixed_labels"].array
        fields = {"identity": torch.zeros(1, dims, *f.shape[2:]),
                  "true": torch.from_numpy(np.asarray(pair["field"], np.float32))[None]}
        for method in available_methods():
            spec = get_method(method)
            if spec.model_id is None or dims not in spec.dims:
                continue
            for refine in (False, True):
                est = run_to_end(spec.estimate(f, m, sp, spec.make_config(refine=refine), "cpu"))
                fields[f"{method}{'+refine' if refine else ''}"] = est.field
        for key in [k for k in fields if k != "identity"]:
            fields[f"-{key}"] = -fields[key]
        for key, u in fields.items():
            warped = warp_labels(lab, u, sp)[0, 0].numpy()
            dice = metrics.mean_dice(fixed_labels, warped)
            start = time.perf_counter()
            verdict = guard.check(Estimate(u), f, m, sp)
            seconds = time.perf_counter() - start
            print(f"{name} {key:<32} dice {dice:.3f}  nmi {verdict.scores['method']['nmi']:.4f}"
                  f"  identity {verdict.scores['identity']['nmi']:.4f}  returned "
                  f"{verdict.returned:<8} {seconds:.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
