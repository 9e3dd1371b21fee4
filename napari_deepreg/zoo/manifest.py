"""The zoo manifest: one entry per pretrained model, stored as ``manifest.json`` in the zoo folder.

File layout::

    {"format": "napari-deepreg-zoo/1",
     "models": [{"id": ..., "method": ..., "dims": [3], "modality": ..., "working_resolution": ...,
                 "training_command": ..., "training_data": ..., "benchmark": {...},
                 "file": "weights/<id>.pt", "sha256": ..., "size_bytes": ..., "description": ...}]}

``file`` is relative to the zoo folder. The zoo folder is the package's ``napari_deepreg/zoo``
unless the environment variable ``NAPARI_DEEPREG_ZOO`` names another (a user's own models).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..volume import InputError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "napari-deepreg-zoo/1"
ENV_ZOO_DIR = "NAPARI_DEEPREG_ZOO"
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass
class ZooEntry:
    """One pretrained model.

    Attributes:
        id: unique model id (lower case letters, digits, ``_ . -``), e.g. ``"suits_brain_t1_3d"``.
        method: method id in the methods registry that runs it (``"semantic_bspline"``...).
        dims: image dimensionalities it accepts, e.g. ``(3,)`` or ``(2,)``.
        modality: what images it was trained on, e.g. ``"MR T1 brain"`` or ``"any (synthetic)"``.
        working_resolution: grid it predicts on, e.g. ``"96x112x96 @ 2 mm"``.
        training_command: the command that trained it (reproduces it from the repository).
        training_data: the data it was trained on (sources and how pairs were made).
        file: weight file, relative to the zoo folder.
        sha256: hex digest of ``file``; the loader refuses a file that does not match.
        size_bytes: size of ``file``.
        benchmark: figures from the benchmark run, as ``benchmarks/record_zoo.py`` writes them:
            ``{"command", "date", "cases": {case: {"dice_before", "dice_after", "time_s"...}}}``
            (a flat ``{"dice": ..., "runtime_s": ...}`` is read too).
        description: one or two sentences for the model chooser.
        held_out: figures on anatomy held out of training (the training run's validation on
            held-out anatomies): ``{"data": what was held out, "dice": ..., ...}``; empty when
            the model was trained before such figures were recorded.
    """

    id: str
    method: str
    dims: tuple[int, ...]
    modality: str
    working_resolution: str
    training_command: str
    training_data: str
    file: str
    sha256: str
    size_bytes: int = 0
    benchmark: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    held_out: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_model_id(self.id)
        self.dims = tuple(int(d) for d in self.dims)
        if not self.dims or any(d not in (2, 3) for d in self.dims):
            raise ValueError(f"zoo model {self.id!r}: dims must be 2 and/or 3, got {self.dims}")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256 or ""):
            raise ValueError(f"zoo model {self.id!r}: sha256 must be 64 hex digits")

    def supports(self, ndim: int) -> bool:
        """Whether the model accepts ``ndim``-dimensional images."""
        return ndim in self.dims

    def check_dims(self, ndim: int) -> None:
        """Raise an :class:`InputError` the user can act on if ``ndim`` is not supported."""
        if not self.supports(ndim):
            dims = " or ".join(f"{d}D" for d in self.dims)
            raise InputError(
                f"model {self.id!r} ({self.method}) works on {dims} images only and this pair is "
                f"{ndim}D; choose a {ndim}D model or 'instance_opt'."
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dims"] = list(self.dims)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ZooEntry:
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in data and _required(cls, n))
        if missing:
            raise ValueError(f"zoo entry {data.get('id', '?')!r} misses {missing}")
        # unknown keys are ignored so an older package can read a newer manifest
        return cls(**{k: v for k, v in data.items() if k in names})


def _required(cls: type, name: str) -> bool:
    from dataclasses import MISSING

    f = next(f for f in fields(cls) if f.name == name)
    return f.default is MISSING and f.default_factory is MISSING


def check_model_id(model_id: str) -> str:
    """``model_id`` if it is a valid id (also a safe file name), else a ValueError."""
    if not isinstance(model_id, str) or not _ID_PATTERN.match(model_id):
        raise ValueError(
            f"invalid model id {model_id!r}: use 1-64 lower-case letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return model_id


# ----------------------------------------------------------------------------- the manifest file


def default_zoo_dir() -> Path:
    """``$NAPARI_DEEPREG_ZOO`` if set, else the package's ``zoo`` folder."""
    env = os.environ.get(ENV_ZOO_DIR)
    return Path(env) if env else Path(__file__).resolve().parent


def zoo_path(zoo_dir: str | Path | None = None) -> Path:
    return Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()


def read_manifest(zoo_dir: str | Path | None = None) -> list[ZooEntry]:
    """Entries of the zoo in ``zoo_dir`` (an absent manifest is an empty zoo)."""
    path = zoo_path(zoo_dir) / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"zoo manifest {path} is not valid JSON: {err}") from None
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"zoo manifest {path} has format {data.get('format')!r}, expected {MANIFEST_FORMAT!r}"
        )
    entries = [ZooEntry.from_dict(m) for m in data.get("models", [])]
    ids = [e.id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"zoo manifest {path} lists model id(s) {dupes} more than once")
    return entries


def write_manifest(entries: Iterable[ZooEntry], zoo_dir: str | Path | None = None) -> Path:
    """Write ``entries`` (sorted by id) to the manifest atomically; returns its path."""
    root = zoo_path(zoo_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_NAME
    models = [e.to_dict() for e in sorted(entries, key=lambda e: e.id)]
    text = json.dumps({"format": MANIFEST_FORMAT, "models": models}, indent=2) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def get_entry(model_id: str, zoo_dir: str | Path | None = None) -> ZooEntry:
    """The entry called ``model_id``; a ValueError lists the available ids otherwise."""
    entries = read_manifest(zoo_dir)
    for entry in entries:
        if entry.id == model_id:
            return entry
    raise ValueError(
        f"no zoo model {model_id!r}; available: {sorted(e.id for e in entries) or 'none'}"
    )


def upsert_entry(entry: ZooEntry, zoo_dir: str | Path | None = None) -> None:
    """Add ``entry`` or replace the entry with the same id.

    The old description is kept unless ``entry`` brings one; the old benchmark figures are kept
    only if the weights are the same file (same sha256): figures of other weights would mislead.
    """
    entries = read_manifest(zoo_dir)
    old = next((e for e in entries if e.id == entry.id), None)
    if old is not None:
        if not entry.benchmark and old.sha256 == entry.sha256:
            entry.benchmark = dict(old.benchmark)
        entry.description = entry.description or old.description
    write_manifest([e for e in entries if e.id != entry.id] + [entry], zoo_dir)


def set_benchmark(
    model_id: str, figures: Mapping[str, Any], zoo_dir: str | Path | None = None
) -> ZooEntry:
    """Record benchmark ``figures`` (JSON-serialisable) for ``model_id``; returns the entry."""
    entries = read_manifest(zoo_dir)
    entry = next((e for e in entries if e.id == model_id), None)
    if entry is None:
        raise ValueError(f"no zoo model {model_id!r} to attach benchmark figures to")
    entry.benchmark = json.loads(json.dumps(dict(figures)))
    write_manifest(entries, zoo_dir)
    return entry


# ----------------------------------------------------------------------------- display


def _short(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _case_summary(case: str, figures: Mapping[str, Any]) -> str:
    """``"mni2009c_dkt_2mm: Dice 0.585->0.767 3.4 s"`` from one benchmark case's figures."""
    parts = []
    if "dice_after" in figures:
        before = f"{_short(figures['dice_before'])}->" if "dice_before" in figures else ""
        parts.append(f"Dice {before}{_short(figures['dice_after'])}")
    if "fold_percent" in figures:
        parts.append(f"folds {_short(figures['fold_percent'])} %")
    if "time_s" in figures:
        parts.append(f"{_short(figures['time_s'])} s")
    return f"{case}: " + " ".join(parts)


def benchmark_summary(figures: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """One line from a model's benchmark figures (``-`` if none).

    The manifest's records (``benchmarks/record_zoo.py``) keep their figures per case under
    ``"cases"``: each case gives ``"case: Dice before->after folds % s"``, cases joined by
    ``"; "``. (Looking for ``dice`` at the top level of such a record is why ``zoo list``
    showed an empty benchmark column.) A flat record gives ``"dice 0.812, hd95 3.1"``.
    """
    cases = figures.get("cases")
    if isinstance(cases, Mapping) and cases:
        return "; ".join(_case_summary(c, f) for c, f in sorted(cases.items()))
    keys = keys or ("dice", "hd95", "fold_percent", "runtime_s")
    parts = [f"{k} {_short(figures[k])}" for k in keys
             if k in figures and not isinstance(figures[k], (Mapping, list))]
    return ", ".join(parts) if parts else "-"


def held_out_summary(figures: Mapping[str, Any], short: bool = False) -> str:
    """A model's held-out figures on one line (``-`` if none); ``short`` (the table): Dice
    before -> feed-forward (refined), without the description of the data."""
    if not figures:
        return "-"
    if short and "dice_feed_forward" in figures:
        text = f"Dice {_short(figures.get('dice_before', float('nan')))}->"
        text += _short(figures["dice_feed_forward"])
        if "dice_refined" in figures:
            text += f" (refined {_short(figures['dice_refined'])})"
        return text
    parts = [f"{k} {_short(v)}" for k, v in sorted(figures.items())
             if k != "data" and not isinstance(v, (Mapping, list))]
    data = f" ({figures['data']})" if figures.get("data") else ""
    return (", ".join(parts) or "-") + data


def format_entries(entries: Sequence[ZooEntry], verbose: bool = False) -> str:
    """A plain-text table of ``entries`` (or one block per model with every field)."""
    if not entries:
        return "no models in the zoo yet (train one with `napari-deepreg train`, then export it)"
    if verbose:
        blocks = []
        for e in entries:
            lines = [f"{e.id}"]
            for key, value in e.to_dict().items():
                if key == "id":
                    continue
                if key == "benchmark":
                    if value and isinstance(value.get("cases"), Mapping):
                        lines.append(f"  {'benchmark':<19} {value.get('command', '')} "
                                     f"({value.get('date', '')})")
                        lines += [f"  {'':<19} {_case_summary(c, f)}"
                                  for c, f in sorted(value["cases"].items())]
                        continue
                    value = benchmark_summary(value) if value else "-"
                if key == "held_out":
                    value = held_out_summary(value)
                lines.append(f"  {key:<19} {value}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
    header = ("id", "method", "dims", "modality", "resolution", "held-out", "benchmark", "MB")
    rows = [
        (
            e.id,
            e.method,
            "/".join(f"{d}D" for d in e.dims),
            e.modality,
            e.working_resolution,
            held_out_summary(e.held_out, short=True),
            benchmark_summary(e.benchmark),
            f"{e.size_bytes / 1e6:.2f}",
        )
        for e in entries
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
