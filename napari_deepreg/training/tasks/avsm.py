"""Training of the AVSM family: ``napari-deepreg train avsm`` (``stage: affine`` trains the
affine net, single-step first and then multi-step from ``init_from``; ``stage: vsvf`` trains the
momentum net with the affine net frozen), and the evaluation of a trained model against its
numbers of steps (the ablation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...core import jacobian_determinant, warp_image, warp_labels
from ...methods.avsm.config import METHOD_ID, AvsmNetConfig
from ...methods.avsm.losses import (
    affine_regularity,
    affine_symmetry,
    inverse_consistency_log,
    lambda_ar,
    momentum_energy,
    normalised_symmetry,
    similarity_loss,
)
from ...methods.avsm.model import FAMILY
from ...nets.avsm import AvsmNet, affine_field
from ..task import Batch, TrainTask, load_trained_model, register_task
from . import label_maps as lm
from .template_pairs import template_pair_config, template_sampler

# the label-map batch keys the losses use (the fine and synthesis labels stay behind)
_LABEL_KEYS = ("fixed", "moving", "fixed_labels", "moving_labels", "has_affine", "affine",
               "spacing")
_COARSE_CLASSES = 7  # data.atlases.COARSE_NAMES: background + L/R GM, WM, CSF


@dataclass
class AvsmTrainConfig(AvsmNetConfig, lm.LabelDataFields):
    """:class:`AvsmNetConfig` plus the training-data fields of
    :class:`~.label_maps.LabelDataFields` (model files keep the family's fields only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        lm.check_label_fields(self)


def _matching_weights(model: nn.Module, source: str, prefix: str = "") -> dict[str, Tensor]:
    """The weights of model file ``source`` (keys starting with ``prefix``) that ``model`` has,
    with the same shapes."""
    from ... import zoo

    state = zoo.read_model_file(source)["state_dict"]
    own = model.state_dict()
    return {k: v for k, v in state.items()
            if k.startswith(prefix) and k in own and own[k].shape == v.shape}


@register_task
class AvsmTask(TrainTask):
    """Unsupervised training on synthetic pairs from real templates (large random affines +
    smooth deformations); see the module docstring for the losses."""

    method_id = METHOD_ID
    config_class = AvsmTrainConfig
    default_train = {
        "lr": 5e-4,  # the paper's
        "batch_size": 1,
        "steps": 2000,
        "val_every": 100,
        "val_pairs": 8,
        "checkpoint_every": 100,
        "num_threads": 1,
    }

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._samplers: dict[str, Any] = {}
        self._training = False
        self._pairs_seen = 0

    # -- data ------------------------------------------------------------------------------------

    def _pair_config(self):
        return template_pair_config(self.config)

    def _labelmaps(self) -> bool:
        return self.config.data == "labelmaps"

    def _sampler(self, split: str):
        if split not in self._samplers:
            if self._labelmaps():
                self._samplers[split] = lm.label_sampler(self.config, split, self.config.dims)
            else:
                self._samplers[split] = template_sampler(self.config, split, self._pair_config())
        return self._samplers[split]

    def setup(self, device: torch.device) -> None:
        self._training = True
        self._sampler("train")

    def sample(self, split: str, batch_size: int, generator: torch.Generator) -> Batch:
        batch = self._sampler("val" if split == "val" else "train").sample(batch_size, generator)
        if self._labelmaps():
            return lm.fit_batch({k: batch[k] for k in _LABEL_KEYS},
                                tuple(self.config.working_shape))
        batch.pop("affine", None)
        return batch

    def train_validation_pairs(self) -> int:
        return self.config.train_val_pairs if self._labelmaps() else 0

    def config_dict(self) -> dict[str, Any]:
        return lm.model_fields(self.config, AvsmNetConfig)

    # -- model -----------------------------------------------------------------------------------

    def build_model(self, config: AvsmNetConfig) -> nn.Module:
        # with the pairs_seen buffer that counts training pairs for the epoch-dependent lambda_ar
        model = FAMILY.build(config)
        if self._training and config.init_from:
            # pairs_seen comes along: the lambda_ar schedule continues where the run stopped
            keep = _matching_weights(model, config.init_from)
            if not any(k.startswith("affine.") for k in keep):
                raise ValueError(f"init_from {config.init_from} holds no matching affine weights")
            model.load_state_dict(keep, strict=False)
        if self._training and config.init_momentum_from:
            keep = _matching_weights(model, config.init_momentum_from, "momentum.")
            wanted = [k for k in model.state_dict() if k.startswith("momentum.")]
            if len(keep) != len(wanted):
                raise ValueError(f"init_momentum_from {config.init_momentum_from} does not hold "
                                 f"this model's momentum net ({len(keep)} of {len(wanted)} "
                                 "weights match)")
            model.load_state_dict(keep, strict=False)
        return model

    def parameters(self, model: nn.Module) -> Any:
        if self.config.stage == "vsvf":
            for p in model.affine.parameters():
                p.requires_grad_(False)
            return [p for p in model.momentum.parameters()]
        return [p for p in model.parameters() if p.requires_grad]

    # -- losses ----------------------------------------------------------------------------------

    def _similarity(self, warped: Tensor, fixed: Tensor, field: Tensor, batch: Batch,
                    backward: bool = False) -> Tensor:
        """The image term of one direction (``backward``: moving -> fixed roles swapped).

        Template pairs: the family's ``similarity``. Label-map pairs: ``lambda_image`` x
        ``image_similarity`` (MIND-SSC by default: mk-LNCC failed to prefer the aligned pose
        over a 5-10 % scale on 3 of 10 same-anatomy pairs in two synthetic contrasts; MIND-SSC
        preferred it on 10 of 10) + ``lambda_labels`` x soft Dice of the coarse labels.
        """
        cfg = self.config
        if not self._labelmaps():
            return similarity_loss(cfg.similarity, warped, fixed)
        fixed_lab, moving_lab = batch["fixed_labels"], batch["moving_labels"]
        if backward:
            fixed_lab, moving_lab = moving_lab, fixed_lab
        image = lm.image_similarity(cfg.image_similarity, warped, fixed)
        labels = lm.soft_label_loss(fixed_lab, moving_lab, field, batch["spacing"],
                                    _COARSE_CLASSES)
        return cfg.lambda_image * image + cfg.lambda_labels * labels

    def _affine_terms(self, model: AvsmNet, batch: Batch, steps: int) -> dict[str, Any]:
        fixed, moving, spacing = batch["fixed"], batch["moving"], batch["spacing"]
        shape = fixed.shape[2:]
        a, b = model.predict_affine(fixed, moving, spacing, steps)[-1]
        a_ts, b_ts = model.predict_affine(moving, fixed, spacing, steps)[-1]
        field = affine_field(a, b, shape, spacing)
        field_ts = affine_field(a_ts, b_ts, shape, spacing)
        warped = warp_image(moving, field, spacing)
        warped_ts = warp_image(fixed, field_ts, spacing)
        supervised = fixed.new_zeros(())
        if self._labelmaps() and self.config.lambda_affine > 0:
            target, target_ts = lm.motion_fields(batch)
            supervised = lm.field_distance(field, target) + lm.field_distance(field_ts, target_ts)
        return {
            "supervised": supervised,
            "a": a, "b": b, "a_ts": a_ts, "b_ts": b_ts,
            "sim": self._similarity(warped, fixed, field, batch)
            + self._similarity(warped_ts, moving, field_ts, batch, backward=True),
            "reg": (affine_regularity(a, b) + affine_regularity(a_ts, b_ts)).mean(),
            "sym": affine_symmetry(a, b, a_ts, b_ts).mean(),
        }

    def _epoch(self, model: nn.Module) -> float:
        return float(model.pairs_seen) / max(1, self.config.pairs_per_epoch)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Mapping[str, Any]]:
        cfg = self.config
        if model.training:
            model.pairs_seen += batch["fixed"].shape[0]
        if cfg.stage == "affine":
            t = self._affine_terms(model, batch, cfg.affine_steps)
            lam = lambda_ar(self._epoch(model), cfg.lambda_ar_c, cfg.lambda_ar_k)
            total = (t["sim"] + lam * t["reg"] + cfg.lambda_as * t["sym"]
                     + cfg.lambda_affine * t["supervised"])
            return total, {"sim": t["sim"], "reg": t["reg"], "sym": t["sym"], "lambda_ar": lam,
                           "supervised": t["supervised"]}
        t = self._vsvf_terms(model, batch)
        return t["total"], {k: t[k] for k in ("sim", "reg", "sym")}

    def _vsvf_terms(self, model: AvsmNet, batch: Batch) -> dict[str, Any]:
        cfg = self.config
        fixed, moving, spacing = batch["fixed"], batch["moving"], batch["spacing"]
        model.affine.eval()
        with torch.no_grad():
            a, b = model.predict_affine(fixed, moving, spacing, cfg.affine_steps)[-1]
            a_ts, b_ts = model.predict_affine(moving, fixed, spacing, cfg.affine_steps)[-1]
        st = model.vsvf(fixed, moving, spacing, a, b, cfg.vsvf_steps)
        ts = model.vsvf(moving, fixed, spacing, a_ts, b_ts, cfg.vsvf_steps)
        sim = reg = sym = fixed.new_zeros(())
        for s, r in zip(st, ts, strict=True):
            sim = sim + self._similarity(warp_image(moving, s["field"], spacing), fixed,
                                         s["field"], batch)
            sim = sim + self._similarity(warp_image(fixed, r["field"], spacing), moving,
                                         r["field"], batch, backward=True)
            reg = reg + momentum_energy(s["momentum"], s["velocity"]) + momentum_energy(
                r["momentum"], r["velocity"])
            sym = sym + normalised_symmetry(s["field"], r["field"], spacing)
        total = sim + cfg.lambda_vr * reg + cfg.lambda_vs * sym
        return {"total": total, "sim": sim, "reg": reg, "sym": sym,
                "field": st[-1]["field"], "field_ts": ts[-1]["field"], "a": a, "b": b}

    def validate(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from ... import metrics

        cfg = self.config
        spacing = batch["spacing"]
        fixed_lab = batch["fixed_labels"][0, 0].cpu().numpy()
        moving_lab = batch["moving_labels"]
        mask = fixed_lab > 0
        out: dict[str, float] = {
            "dice_before": metrics.mean_dice(fixed_lab, moving_lab[0, 0].cpu().numpy())
        }
        if cfg.stage == "affine":
            t = self._affine_terms(model, batch, cfg.affine_steps)
            out.update(_affine_scale(t["a"], batch))
            field = affine_field(t["a"], t["b"], fixed_lab.shape, spacing)
            field_ts = affine_field(t["a_ts"], t["b_ts"], fixed_lab.shape, spacing)
            lam = lambda_ar(self._epoch(model), cfg.lambda_ar_c, cfg.lambda_ar_k)
            out["loss"] = float(t["sim"] + lam * t["reg"] + cfg.lambda_as * t["sym"]
                                + cfg.lambda_affine * t["supervised"])
            out.update(sim=float(t["sim"]), sym=float(t["sym"]),
                       supervised=float(t["supervised"]))
        else:
            t = self._vsvf_terms(model, batch)
            field, field_ts = t["field"], t["field_ts"]
            out.update(loss=float(t["total"]), sim=float(t["sim"]), reg=float(t["reg"]),
                       sym=float(t["sym"]))
            out.update(_affine_scale(t["a"], batch))
            aff = affine_field(t["a"], t["b"], fixed_lab.shape, spacing)
            out["dice_affine"] = metrics.mean_dice(
                fixed_lab, warp_labels(moving_lab, aff, spacing)[0, 0].cpu().numpy())
        warped = warp_labels(moving_lab, field, spacing)
        jac = jacobian_determinant(field, spacing)[0].cpu().numpy()
        out.update(
            dice=metrics.mean_dice(fixed_lab, warped[0, 0].cpu().numpy()),
            fold_percent=metrics.fold_percent(jac),
            ice_log=inverse_consistency_log(field, field_ts, spacing),
        )
        if "field" in batch:  # label-map pairs have no true field
            out["epe"] = metrics.endpoint_error(field[0].cpu().numpy(),
                                                batch["field"][0].cpu().numpy(), mask)
        return out

    def info(self) -> dict[str, Any]:
        cfg = self.config
        shape = "x".join(str(n) for n in cfg.working_shape)
        if self._labelmaps():
            return {
                "dims": [cfg.dims],
                "modality": "MR brain, skull-stripped (contrast-randomised training)",
                "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
                "training_data": lm.describe(cfg, f"{cfg.image_similarity} x "
                                             f"{cfg.lambda_image:g} + label Dice x "
                                             f"{cfg.lambda_labels:g}"),
            }
        return {
            "dims": [cfg.dims],
            "modality": "MR T1 brain, skull-stripped",
            "working_resolution": f"{shape} @ {cfg.voxel_size:g} mm",
            "training_data": (
                f"synthetic pairs from the templates {', '.join(cfg.train_anatomies)} (real T1 "
                f"intensities, mild gamma/bias): random affine (rotation up to "
                f"{cfg.rotation_deg:g} deg, scale +-{100 * cfg.scale:g} %, translation up to "
                f"{cfg.translation_mm:g} mm) after a smooth diffeomorphism up to "
                f"{max(cfg.svf_magnitude_mm):g} mm; unsupervised ({cfg.similarity}); MNI 2009a "
                "(the bundled samples) held out"
            ),
        }


def _affine_scale(a: Tensor, batch: Batch) -> dict[str, float]:
    """``scale_pct``: ``100 |det(A)^(1/D) - 1|`` of the first pair's predicted affine (the
    determinant does not depend on the normalised frame); ``noaffine_scale_pct`` the same on a
    pair drawn without affine motion (NaN otherwise: left out of the validation mean). The
    shipped affine invented x1.13 on unmoved pairs."""
    d = a.shape[-1]
    pct = 100 * abs(abs(float(torch.linalg.det(a[0].double()))) ** (1 / d) - 1)
    moved = batch.get("has_affine")
    unmoved = moved is not None and not bool(moved[0])
    return {"scale_pct": pct, "noaffine_scale_pct": pct if unmoved else float("nan")}


# ----------------------------------------------------------------------------- evaluation
# (the ablation's step study: held-out pairs drawn like the validation pairs)


def evaluate_steps(
    source: str,
    affine_steps: Sequence[int] = (1, 3, 5, 7),
    vsvf_steps: Sequence[int] = (0,),
    pairs: int = 16,
    seed: int = 10_000,
) -> list[dict[str, float]]:
    """Dice, folds and inverse consistency of a trained model against its numbers of steps.

    Test pairs are drawn like the validation pairs (held-out deformations of
    ``val_anatomies``) but with other seeds (``seed + i``), so they are not the pairs the best
    model was picked on. One row per ``(affine_steps, vsvf_steps)``: means of ``dice``,
    ``fold_percent`` (Jacobian <= 0), ``ice_log`` (:func:`inverse_consistency_log`), ``epe``,
    and ``per_pair``: those figures pair by pair, for paired comparisons of models. Each pair
    is also registered the other way round, for the inverse-consistency error.
    """
    from ... import metrics

    model, config = load_trained_model(source)
    task = AvsmTask(config)
    batches = [task.sample("val", 1, torch.Generator().manual_seed(seed + i))
               for i in range(pairs)]
    rows = []
    for a_steps in affine_steps:
        for v_steps in vsvf_steps:
            per_pair: dict[str, list[float]] = {}
            for batch in batches:
                f, m, sp = batch["fixed"], batch["moving"], batch["spacing"]
                shape = f.shape[2:]
                with torch.no_grad():
                    fields_ = []
                    for x, y in ((f, m), (m, f)):
                        a, b = model.predict_affine(x, y, sp, a_steps)[-1]
                        if v_steps:
                            fields_.append(model.vsvf(x, y, sp, a, b, v_steps)[-1]["field"])
                        else:
                            fields_.append(affine_field(a, b, shape, sp))
                field, field_ts = fields_
                lab = batch["fixed_labels"][0, 0].numpy()
                warped = warp_labels(batch["moving_labels"], field, sp)[0, 0].numpy()
                jac = jacobian_determinant(field, sp)[0].numpy()
                figures = {
                    "dice": metrics.mean_dice(lab, warped),
                    "dice_before": metrics.mean_dice(lab, batch["moving_labels"][0, 0].numpy()),
                    "fold_percent": metrics.fold_percent(jac),
                    "ice_log": inverse_consistency_log(field, field_ts, sp),
                    "epe": metrics.endpoint_error(field[0].numpy(), batch["field"][0].numpy(),
                                                  lab > 0),
                }
                for k, v in figures.items():
                    per_pair.setdefault(k, []).append(float(v))
            means = {k: sum(v) / len(v) for k, v in per_pair.items()}
            rows.append({"affine_steps": a_steps, "vsvf_steps": v_steps, **means,
                         "per_pair": per_pair})
    return rows


__all__ = ["AvsmTask", "AvsmTrainConfig", "evaluate_steps"]
