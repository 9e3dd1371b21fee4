"""The model zoo: pretrained weights, their manifest, and a loader that checks sha256 first.

A weight file (``weights/<id>.pt``, also ``model.pt`` in a training run folder) is a
``torch.save`` of a plain dict, loadable with ``torch.load(weights_only=True)``::

    {"format": "napari-deepreg-model/1", "method": str,
     "config_json": str,   # the trained-model config (what its family builds from), JSON
     "meta_json": str,     # provenance: dims, modality, working_resolution, training_data,
                           # training_command, train config, step
     "state_dict": {name: Tensor}}

A training checkpoint carries the same four keys plus the optimiser and RNG states, so both can be
exported with :func:`export_to_zoo`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..volume import InputError
from .manifest import (
    ENV_ZOO_DIR,
    ZooEntry,
    benchmark_summary,
    check_model_id,
    default_zoo_dir,
    format_entries,
    get_entry,
    read_manifest,
    set_benchmark,
    upsert_entry,
    write_manifest,
    zoo_path,
)

MODEL_FORMAT = "napari-deepreg-model/1"
CHECKPOINT_FORMAT = "napari-deepreg-checkpoint/1"
SIZE_BUDGET_BYTES = 10_000_000  # DESIGN: each weight file small (aim <= 10 MB)


class ChecksumError(InputError):
    """A weight file whose sha256 differs from the manifest's."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: str | Path, sha256: str) -> None:
    """Raise :class:`ChecksumError` (naming the file and both digests) unless ``path`` matches."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weight file {path} is missing; reinstall the package or re-export it.")
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"weight file {path} has sha256 {actual} but the zoo manifest expects {sha256}; "
            "the file is corrupt or was replaced, so it was not loaded (re-export or reinstall it)."
        )


# ----------------------------------------------------------------------------- model files


def save_model_file(
    path: str | Path,
    method: str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, Tensor],
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Write a model file (config + state_dict only) atomically; returns its sha256.

    Tensors are detached, moved to the CPU and copied, so a view never drags a larger storage
    into the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": MODEL_FORMAT,
        "method": str(method),
        "config_json": json.dumps(dict(config), sort_keys=True),
        "meta_json": json.dumps(dict(meta or {}), sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return sha256_file(path)


def read_model_file(path: str | Path, sha256: str | None = None) -> dict[str, Any]:
    """``{"method", "config", "meta", "state_dict"}`` from a model file or training checkpoint.

    With ``sha256`` the digest is checked *before* anything is unpickled. Loading always uses
    ``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary code.
    """
    path = Path(path)
    if sha256 is not None:
        verify_file(path, sha256)
    elif not path.is_file():
        raise InputError(f"model file {path} does not exist.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean a bad file
        raise InputError(f"cannot read model file {path}: {err}") from None
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt not in (MODEL_FORMAT, CHECKPOINT_FORMAT):
        raise InputError(
            f"{path} is not a napari-deepreg model file or training checkpoint (format {fmt!r})."
        )
    return {
        "method": data["method"],
        "config": json.loads(data["config_json"]),
        "meta": json.loads(data.get("meta_json") or "{}"),
        "state_dict": data["state_dict"],
    }


# ----------------------------------------------------------------------------- the zoo API


def list_models(zoo_dir: str | Path | None = None) -> list[ZooEntry]:
    """All zoo models (sorted by id)."""
    return sorted(read_manifest(zoo_dir), key=lambda e: e.id)


def format_table(
    entries: Sequence[ZooEntry] | None = None,
    zoo_dir: str | Path | None = None,
    verbose: bool = False,
) -> str:
    """What ``napari-deepreg zoo list`` prints (``verbose``: every field of every model)."""
    return format_entries(list_models(zoo_dir) if entries is None else list(entries), verbose)


def zoo_method_specs(zoo_dir: str | Path | None = None) -> list[ZooEntry]:
    """The manifest entries, for the methods registry to turn into one MethodSpec per model.

    Each entry gives ``id`` (the spec id / model_id), ``method`` (the method module that runs
    it), ``dims`` (what the chooser offers it for) and a title from ``description``.
    """
    return list_models(zoo_dir)


def model_path(entry: ZooEntry, zoo_dir: str | Path | None = None) -> Path:
    """Absolute path of an entry's weight file."""
    return zoo_path(zoo_dir) / entry.file


def load_model(
    model_id: str, zoo_dir: str | Path | None = None, with_meta: bool = False
) -> tuple[dict[str, Any], dict[str, Tensor]] | tuple[dict[str, Any], dict[str, Tensor], dict]:
    """``(config, state_dict)`` of zoo model ``model_id`` (``with_meta``: also its provenance).

    The sha256 is verified before loading (a mismatch raises :class:`ChecksumError` naming the
    file and both digests), then the file is read with ``torch.load(weights_only=True)``.
    ``config`` is the trained-model config dict its family (``methods.models``) builds from.
    """
    entry = get_entry(model_id, zoo_dir)
    data = read_model_file(model_path(entry, zoo_dir), sha256=entry.sha256)
    if data["method"] != entry.method:
        raise InputError(
            f"zoo model {model_id!r}: file holds method {data['method']!r} but the manifest says "
            f"{entry.method!r}."
        )
    if with_meta:
        return data["config"], data["state_dict"], data["meta"]
    return data["config"], data["state_dict"]


def export_to_zoo(
    checkpoint: str | Path,
    model_id: str,
    method: str | None = None,
    dims: Sequence[int] | None = None,
    modality: str | None = None,
    working_resolution: str | None = None,
    training_command: str | None = None,
    training_data: str | None = None,
    description: str = "",
    zoo_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
) -> ZooEntry:
    """Save a checkpoint's (or model file's) config + state_dict into the zoo, add its entry.

    Fields left as None come from the file's provenance (what the training task reported and
    the command that ran it). Benchmark figures start empty (the benchmark fills them with
    :func:`set_benchmark`); re-exporting identical weights keeps them.

    Args:
        checkpoint: training checkpoint (``checkpoints/last.pt``), ``model.pt`` or
            ``best_model.pt`` of a run folder.
        model_id: the zoo id, also the file name ``weights/<model_id>.pt``.
        zoo_dir: zoo folder holding ``manifest.json`` (default :func:`default_zoo_dir`).
        out_dir: where the weight file goes (default ``<zoo_dir>/weights``; must be inside
            ``zoo_dir`` since the manifest stores a relative path).
    """
    check_model_id(model_id)
    data = read_model_file(checkpoint)
    meta = dict(data["meta"])
    method = method or data["method"]
    if method != data["method"]:
        raise InputError(f"{checkpoint} was trained for method {data['method']!r}, not {method!r}.")
    root = zoo_path(zoo_dir).resolve()
    weights_dir = Path(out_dir).resolve() if out_dir is not None else root / "weights"
    try:
        rel_dir = weights_dir.relative_to(root)
    except ValueError:
        raise InputError(f"out_dir {weights_dir} must lie inside the zoo folder {root}.") from None

    def pick(value: Any, key: str, default: Any = "") -> Any:
        if value is not None:
            return value
        got = meta.get(key)
        return default if got in (None, "") else got

    entry_dims = tuple(pick(dims, "dims", ()))
    if not entry_dims:
        raise InputError(f"{checkpoint} does not record its dims; pass dims=(2,) or (3,).")
    path = weights_dir / f"{model_id}.pt"
    meta.update(
        {
            "model_id": model_id,
            "dims": list(entry_dims),
            "modality": pick(modality, "modality", "unspecified"),
            "working_resolution": pick(working_resolution, "working_resolution", "native"),
            "training_command": pick(training_command, "training_command", "unrecorded"),
            "training_data": pick(training_data, "training_data", "unrecorded"),
        }
    )
    digest = save_model_file(path, method, data["config"], data["state_dict"], meta)
    size = path.stat().st_size
    if size > SIZE_BUDGET_BYTES:
        warnings.warn(
            f"{path} is {size / 1e6:.1f} MB, over the zoo's 10 MB budget per model",
            stacklevel=2,
        )
    entry = ZooEntry(
        id=model_id,
        method=method,
        dims=entry_dims,
        modality=meta["modality"],
        working_resolution=meta["working_resolution"],
        training_command=meta["training_command"],
        training_data=meta["training_data"],
        file=(rel_dir / path.name).as_posix(),
        sha256=digest,
        size_bytes=size,
        description=description or meta.get("description", ""),
    )
    upsert_entry(entry, zoo_dir)
    return entry


def check_models(zoo_dir: str | Path | None = None) -> dict[str, str | None]:
    """``{model id: None if its file matches its sha256, else the reason}`` for every model."""
    out: dict[str, str | None] = {}
    for entry in list_models(zoo_dir):
        try:
            verify_file(model_path(entry, zoo_dir), entry.sha256)
            out[entry.id] = None
        except InputError as err:
            out[entry.id] = str(err)
    return out


# ----------------------------------------------------------------------------- command line


def add_zoo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``list | check | export`` sub-commands to ``parser`` (the main CLI's ``zoo``)."""
    sub = parser.add_subparsers(dest="zoo_command", required=True)
    p_list = sub.add_parser("list", help="the pretrained models")
    p_list.add_argument("--verbose", "-v", action="store_true", help="every field of each model")
    p_check = sub.add_parser("check", help="verify every weight file against its sha256")
    p_exp = sub.add_parser("export", help="add a trained model to the zoo")
    p_exp.add_argument("checkpoint", help="run/model.pt, run/best_model.pt or a checkpoint")
    p_exp.add_argument("--id", required=True, dest="model_id", help="zoo id, e.g. suits_t1_3d")
    p_exp.add_argument("--method", help="method id (default: the one it was trained for)")
    p_exp.add_argument("--dims", type=int, nargs="+", choices=(2, 3), help="default: recorded")
    p_exp.add_argument("--modality", help='e.g. "MR T1 brain" (default: recorded)')
    p_exp.add_argument("--working-resolution", help='e.g. "96x112x96 @ 2 mm"')
    p_exp.add_argument("--training-command", help="default: the command that trained it")
    p_exp.add_argument("--training-data", help="default: what the training task recorded")
    p_exp.add_argument("--description", default="", help="a sentence for the model chooser")
    for p in (p_list, p_check, p_exp):
        p.add_argument("--zoo-dir", help=f"zoo folder (default ${ENV_ZOO_DIR} or the package's)")
    return parser


def _check_zoo_folder(zoo_dir: str | Path | None) -> None:
    """Refuse to "check" a zoo folder that is not there or holds no manifest: "all weight files
    match" would be true of nothing and read as a pass."""
    from .manifest import MANIFEST_NAME, zoo_path

    root = zoo_path(zoo_dir)
    if not root.is_dir():
        raise InputError(f"zoo folder {root} does not exist; give --zoo-dir an existing folder")
    if not (root / MANIFEST_NAME).is_file():
        raise InputError(f"{root} holds no zoo {MANIFEST_NAME}; nothing to check")


def zoo_from_args(args: argparse.Namespace, stream: Any = None) -> int:
    """Run a ``zoo`` sub-command parsed by :func:`add_zoo_arguments`; returns the exit code."""
    out = stream or sys.stdout
    zoo_dir = getattr(args, "zoo_dir", None)
    if args.zoo_command == "list":
        print(format_table(zoo_dir=zoo_dir, verbose=args.verbose), file=out)
        return 0
    if args.zoo_command == "check":
        _check_zoo_folder(zoo_dir)
        problems = {k: v for k, v in check_models(zoo_dir).items() if v}
        for model_id, reason in problems.items():
            print(f"{model_id}: {reason}", file=out)
        print(
            "all weight files match" if not problems else f"{len(problems)} bad file(s)", file=out
        )
        return 1 if problems else 0
    entry = export_to_zoo(
        args.checkpoint,
        args.model_id,
        method=args.method,
        dims=args.dims,
        modality=args.modality,
        working_resolution=args.working_resolution,
        training_command=args.training_command,
        training_data=args.training_data,
        description=args.description,
        zoo_dir=zoo_dir,
    )
    print(
        f"exported {entry.id} ({entry.method}, {entry.size_bytes / 1e6:.2f} MB, "
        f"sha256 {entry.sha256[:12]}...) to {model_path(entry, zoo_dir)}",
        file=out,
    )
    return 0


__all__ = [
    "CHECKPOINT_FORMAT",
    "ChecksumError",
    "ENV_ZOO_DIR",
    "MODEL_FORMAT",
    "ZooEntry",
    "add_zoo_arguments",
    "benchmark_summary",
    "check_models",
    "default_zoo_dir",
    "export_to_zoo",
    "format_table",
    "get_entry",
    "list_models",
    "load_model",
    "model_path",
    "read_manifest",
    "read_model_file",
    "save_model_file",
    "set_benchmark",
    "sha256_file",
    "verify_file",
    "write_manifest",
    "zoo_from_args",
    "zoo_method_specs",
]
