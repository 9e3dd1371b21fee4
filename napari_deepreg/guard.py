"""Never silently worse: after a method, check its result against doing less.

A learned model can land further from the fixed image than no registration at all (a pair
unlike its training data; a learned affine that invents a scale). After every method the
pipeline (``register_prepared``) scores the method's field against the candidates that cost
nothing to make: the identity and, for a method with an affine stage, the affine alone. When a
candidate is clearly better the pipeline returns it, says so in ``result.notes`` (the widget
shows it as a warning, the CLI prints it on stderr) and in ``result.metrics``
(``guard_returned`` and every candidate's scores, so the metrics table has a row saying which
candidate came back).

Two label-free scores, on a grid of at most 64 voxels a side; with both label maps given, their
mean Dice decides instead. A candidate replaces the method's result when it beats it on either
(an NGF win is overruled when the method leads on NMI by more than :data:`NMI_LEAD`):

* normalised mutual information (NMI, Studholme's ``(H(F) + H(M)) / H(F, M)``, 32 bins) by more
  than :data:`NMI_MARGIN`: global, blind to intensity mappings, so it serves different
  contrasts; no method here optimises it (instance optimisation and the refinement use LNCC,
  AVSM trains on multi-kernel LNCC, the semantic B-spline on labels and LNCC);
* normalised gradient fields (NGF, the mean squared cosine between the two images' gradients,
  edge scale :data:`NGF_EPS`): local, blind to contrast inversion; it catches misaligned edges
  that a global histogram score forgives.

Measured on the bundled pairs (``python -m benchmarks.guard_similarity``; Dice at native
resolution in brackets), NMI alone: 3D identity 1.333 (0.683); the zoo models 1.302-1.456
(0.605-0.806), refined 1.541-1.542 (0.873-0.874), the true field 1.526 (0.877); every field
negated 1.242-1.276 (0.549-0.623). 2D: identity 1.266 (0.702), model 1.316 (0.810), refined
1.371 (0.950), negated 1.201-1.207 (0.563-0.572). Why NGF beside it: on 48 method-vs-identity
decisions on fresh held-out label-map pairs in random contrasts (four zoo models, 12 pairs,
seeds 71000+, not the benchmark's pairs), NMI alone kept 8 results that Dice says are worse
than the identity (NMI was fooled by results 0.3 Dice worse with NMI higher by up to 0.005);
NMI or NGF kept none and replaced one result that was better by 0.001 Dice. On the benchmark's
40 decisions (``benchmarks/heldout.py`` pairs) NMI alone kept 1 worse result, NMI or NGF none,
with no better result replaced. Both cost 0.06-0.1 s on the 2 mm brain (one CPU thread), after
dropping the anti-aliasing of the downsampling (0.4 s with it, same ranking).

A larger study (``python -m benchmarks.guard_decisions --pairs 40 --lung``: the six 2D zoo
models' fields and their negations on 40 fresh held-out 2D pairs of two synthetic subjects in
two independent contrasts, 480 decisions) shows the label-free rule's limits on such pairs: 36
results worse than the identity kept (7.5 %, the worst 0.16 Dice below it) and 29 better ones
replaced. Give the label maps when you have them: Dice then decides.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .core import affine_to_field, resize, resized_spacing, warp_image, warp_labels
from .methods.base import Estimate

#: longest axis (voxels) of the grid the candidates are scored on
SCORE_SIZE = 64
#: histogram bins of NMI (images are in [0, 1])
BINS = 32
#: how much better (NMI) a candidate must be to replace the method's result: below this, the
#: difference is within what resampling to the scoring grid moves NMI on the bundled pairs
NMI_MARGIN = 0.002
#: edge scale of NGF (intensity per mm; images are in [0, 1]): gradients much weaker than this
#: count as noise, not edges
NGF_EPS = 0.05
#: how much better (NGF) a candidate must be to replace the method's result
NGF_MARGIN = 0.0
#: an NGF win of a candidate is overruled when the method leads it on NMI by more than this:
#: the smallest lead that kept every worse result out on 480 fresh held-out decisions
#: (``python -m benchmarks.guard_decisions``; 0.01 / 0.02 let 4 / 1 more through, 0.03 and
#: 0.05 none), chosen on those brain pairs alone; on the real rat lung pair it keeps 3 of the
#: 5 better results the plain rule threw away
NMI_LEAD = 0.03
#: how much better (mean Dice) a candidate must be to replace the method's result
DICE_MARGIN = 0.005
#: a field within this many mm of the affine alone is the affine (no separate candidate)
_SAME_FIELD_MM = 0.05

CANDIDATES = ("method", "affine", "identity")


@dataclass
class Verdict:
    """What the guard decided.

    Attributes:
        estimate: the estimate to warp with (the method's, or a candidate built from it).
        returned: ``"method"``, ``"affine"`` or ``"identity"``.
        scores: ``{candidate: {"nmi": float, "dice": float}}`` (Dice only with labels).
        notes: one sentence for the user when a candidate replaced the method's result.
        seconds: time the guard took.
    """

    estimate: Estimate
    returned: str = "method"
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    checked: bool = True

    @property
    def metrics(self) -> dict[str, Any]:
        """Rows for ``result.metrics``: ``guard_returned`` (the candidate, a string) and
        ``guard_<score>_<candidate>``; empty when the guard did not run."""
        if not self.checked:
            return {}
        out: dict[str, Any] = {"guard_returned": self.returned}
        for name, scores in self.scores.items():
            for key, value in scores.items():
                out[f"guard_{key}_{name}"] = value
        return out


def nmi(a: Tensor, b: Tensor, bins: int = BINS) -> float:
    """Normalised mutual information ``(H(a) + H(b)) / H(a, b)`` of two images in [0, 1].

    1 for independent images, 2 for images that determine each other. Hard binning: the
    score is only compared between candidates on one grid, never differentiated.

    Args:
        a, b: images of one shape, values in [0, 1] (clipped).
        bins: histogram bins per image.
    """
    ia = (a.detach().flatten().clamp(0, 1) * (bins - 1)).round().long()
    ib = (b.detach().flatten().clamp(0, 1) * (bins - 1)).round().long()
    joint = torch.bincount(ia * bins + ib, minlength=bins * bins).double()
    p = joint / joint.sum()

    def entropy(q: Tensor) -> Tensor:
        q = q[q > 0]
        return -(q * q.log()).sum()

    h_ab = entropy(p)
    h_a = entropy(p.view(bins, bins).sum(1))
    h_b = entropy(p.view(bins, bins).sum(0))
    return float((h_a + h_b) / h_ab) if h_ab > 0 else 2.0


def ngf(a: Tensor, b: Tensor, spacing: Sequence[float], eps: float = NGF_EPS) -> float:
    """Normalised gradient fields: mean over voxels of ``(grad a . grad b)^2 / (|grad a|^2 +
    eps^2)(|grad b|^2 + eps^2)``, in [0, 1).

    Higher where the edges of the two images line up, whatever their contrast (the square makes
    it blind to inversion). Central differences in mm.

    Args:
        a, b: ``(1, 1, *S)`` images of one shape.
        spacing: voxel size in mm per axis.
        eps: edge scale in intensity per mm.
    """
    spacing = [float(s) for s in spacing]
    ga = torch.stack(torch.gradient(a.detach()[0, 0].double(), spacing=spacing))
    gb = torch.stack(torch.gradient(b.detach()[0, 0].double(), spacing=spacing))
    dot = (ga * gb).sum(0)
    norm = (ga.pow(2).sum(0) + eps**2) * (gb.pow(2).sum(0) + eps**2)
    return float((dot * dot / norm).mean())


def mean_dice(a: Tensor, b: Tensor) -> float:
    """Mean Dice over the non-zero labels of ``a`` (the fixed labels) of two label maps."""
    a = a.flatten().long()
    b = b.flatten().long()
    n = int(max(a.max(), b.max())) + 1
    ids = torch.unique(a)
    ids = ids[ids > 0]
    if ids.numel() == 0:
        return float("nan")
    both = torch.bincount(a[a == b], minlength=n).double()
    size = torch.bincount(a, minlength=n).double() + torch.bincount(b, minlength=n).double()
    return float((2 * both[ids] / size[ids]).mean())


def _candidates(estimate: Estimate, shape: Sequence[int],
                spacing: Sequence[float]) -> dict[str, Tensor]:
    """The fields to score (full resolution, ``(1, D, *S)`` mm): method, affine, identity."""
    out = {"method": estimate.field.detach()}
    if estimate.affine is not None:
        affine = affine_to_field(estimate.affine.to(estimate.field), tuple(shape), spacing)
        if float((affine - out["method"]).abs().max()) > _SAME_FIELD_MM:
            out["affine"] = affine
    out["identity"] = torch.zeros_like(out["method"])
    return out


def wins(method: dict[str, float], candidate: dict[str, float], use_dice: bool = False,
         nmi_lead: float = NMI_LEAD) -> list[str]:
    """The scores on which ``candidate`` beats ``method`` by more than their margins: Dice
    alone when ``use_dice``, else NMI and NGF, where an NGF win does not count against an NMI
    lead of the method above ``nmi_lead``. Empty: the method's result stays."""
    margins = {"dice": DICE_MARGIN} if use_dice else {"nmi": NMI_MARGIN, "ngf": NGF_MARGIN}
    won = [k for k, m in margins.items() if candidate[k] > method[k] + m]
    if "ngf" in won and method["nmi"] - candidate["nmi"] > nmi_lead:
        won.remove("ngf")
    return won


def check(
    estimate: Estimate,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    fixed_labels: np.ndarray | None = None,
    moving_labels: np.ndarray | None = None,
    method: str = "the method",
) -> Verdict:
    """Score the method's field against the identity (and its affine alone); keep the best.

    Args:
        estimate: the method's estimate (field ``(1, D, *S)`` mm on the fixed grid, optional
            affine in the grid frame).
        fixed, moving: ``(1, 1, *S)`` intensity-normalised images in [0, 1] on the fixed grid.
        spacing: voxel size in mm.
        fixed_labels, moving_labels: optional ``(*S)`` integer label maps; with both, mean Dice
            decides and NMI is reported beside it.
        method: the method's name, for the note.

    Returns:
        :class:`Verdict`; its ``estimate`` is the method's unless a candidate beats it by more
        than the margin (:data:`NMI_MARGIN`, :data:`DICE_MARGIN`).
    """
    start = time.perf_counter()
    shape = tuple(fixed.shape[2:])
    spacing = tuple(float(s) for s in spacing)
    factor = min(1.0, SCORE_SIZE / max(shape))
    small = tuple(max(2, round((n - 1) * factor) + 1) for n in shape)
    s_spacing = resized_spacing(shape, spacing, small)
    dev = estimate.field.device
    with torch.no_grad():
        # no anti-aliasing: its Gaussian cost 0.3 s of the 0.4 s on a 2 mm brain, and the
        # ranking of the candidates on the bundled pairs is the same without it
        pair = resize(torch.cat([fixed, moving], 1).to(dev, torch.float32), small,
                      antialias=False)
        f_small, m_small = pair[:, :1], pair[:, 1:]
        labels = None
        if fixed_labels is not None and moving_labels is not None:
            # nearest sampling at the scoring grid: the labels' own voxels, no blending
            lab = torch.from_numpy(np.stack([fixed_labels, moving_labels]).astype(np.float32))
            lab = F.interpolate(lab[None].to(dev), size=small, mode="nearest")[0]
            labels = lab[0].long(), lab[1][None, None].long()
        scores: dict[str, dict[str, float]] = {}
        fields = _candidates(estimate, shape, spacing)
        for name, full in fields.items():
            u = resize(full.float(), small, antialias=False)
            moved = warp_image(m_small, u, s_spacing)
            entry = {"nmi": nmi(f_small, moved), "ngf": ngf(f_small, moved, s_spacing)}
            if labels is not None:
                warped = warp_labels(labels[1], u, s_spacing)
                entry["dice"] = mean_dice(labels[0], warped)
            scores[name] = entry
    use_dice = labels is not None and not np.isnan(scores["method"]["dice"])

    def beats(name: str) -> list[str]:
        return wins(scores["method"], scores[name], use_dice)

    winners = [name for name in fields if name != "method" and beats(name)]
    verdict = Verdict(estimate, "method", scores)
    if winners:
        key = "dice" if use_dice else "nmi"
        best = max(winners, key=lambda n: scores[n][key])
        verdict.returned = best
        what = "no registration (identity)" if best == "identity" else "its affine stage alone"
        names = {"dice": "Dice", "nmi": "NMI", "ngf": "edge alignment (NGF)"}
        said = ", ".join(f"{names[k]} {scores['method'][k]:.3f} vs {scores[best][k]:.3f}"
                         for k in beats(best))
        verdict.notes.append(
            f"warning: the result of {method} scored worse than {what} ({said} on a "
            f"{'x'.join(map(str, small))} grid), so {what} is returned instead; try another "
            "model, refine=true or instance_opt"
        )
        info = {**estimate.info, "guard_replaced": "method"}
        if best == "identity":
            verdict.estimate = Estimate(field=fields[best], affine=None, info=info)
        else:
            verdict.estimate = replace(estimate, field=fields[best], info=info)
    verdict.seconds = time.perf_counter() - start
    return verdict


def run(
    enabled: bool,
    estimate: Estimate,
    fixed: Tensor,
    moving: Tensor,
    spacing: Sequence[float],
    fixed_labels: Any = None,
    moving_labels: Any = None,
    method: str = "the method",
) -> Verdict:
    """The pipeline's one call: :func:`check` when ``enabled``, else the estimate unchecked.

    ``fixed_labels`` / ``moving_labels`` may be Volumes (their arrays are used) or arrays. An
    estimate whose field is not ``(1, D, *S)`` on the fixed grid is passed on unchecked: the
    pipeline reports that error itself.
    """
    shape = tuple(fixed.shape[2:])
    if not enabled or tuple(estimate.field.shape) != (1, len(shape), *shape):
        return Verdict(estimate, checked=False)
    f_lab = getattr(fixed_labels, "array", fixed_labels)
    m_lab = getattr(moving_labels, "array", moving_labels)
    return check(estimate, fixed, moving, spacing, f_lab, m_lab, method)


__all__ = ["BINS", "CANDIDATES", "DICE_MARGIN", "NMI_LEAD", "NMI_MARGIN", "SCORE_SIZE", "Verdict",
           "check", "NGF_EPS", "NGF_MARGIN", "mean_dice", "ngf", "nmi", "run", "wins"]
