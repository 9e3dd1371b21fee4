"""The benchmark in one command: every method and the classical peers, side by side, same cases.

    python -m benchmarks.run --suite quick                 # 2D cases, one 3D 2 mm, one large-affine
    python -m benchmarks.run --suite full                  # + every 3D case at 2 mm and 1 mm
    python -m benchmarks.run --cases phantom_2d,itk_t1_pd_shifted --methods identity,instance_opt
    python -m benchmarks.run --list                        # cases, suites, methods

Methods (``--methods``, comma-separated; default ``all``): ``identity`` (a zero field, registered
here), every method of :func:`napari_deepreg.methods.available_methods` (``instance_opt`` and the
zoo models), and the peers of :mod:`benchmarks.peers` (``elastix``, ``ants_syn``, ``dipy_syn``,
``sitk_demons``); ``peers`` / ``zoo`` / ``all`` expand to those sets. A method may carry config
overrides: ``instance_opt:iterations=30:similarity=mind_ssc`` (values are JSON, else strings). A
peer that is not installed is skipped with a note; so is a method that does not take the case's
dimensionality.

Every row is measured the same way, from the field the method returns (``(D, *S)`` mm,
pull-back, fixed grid): moving labels warped with :func:`napari_deepreg.core.warp_labels`, then
Dice / HD95 (:func:`napari_deepreg.metrics.registration_metrics`), fold % and SDlogJ of the
Jacobian determinant (whole grid), endpoint error against the case's true field inside its mask,
and, for cases with a reference image, NCC of the warped moving image with it inside the mask.
Package methods run through :func:`napari_deepreg.pipeline.register` (no labels given, so its
own metrics cost nothing); peers through their function in :data:`benchmarks.peers.PEERS`.

Time is ``time.perf_counter`` around the whole method call (input checks, intensity
normalisation, the registration, warping the image and the pipeline's Jacobian for package
methods; the tool's registration and field extraction for peers; a peer's package import is done
before the clock starts); the CPU time over the same span (``time.process_time``, all threads)
is recorded too, as it varies less than wall time on a shared machine. Peak memory is the
process's resident set size (RSS) high-water mark during the call minus the RSS at its start, in
MiB: ``VmHWM`` of ``/proc/self/status`` after resetting it through ``/proc/self/clear_refs``
where Linux allows, and the maximum of RSS sampled every 5 ms by a background thread (psutil) in
any case. RSS sees every allocation (numpy, torch,
ITK, ANTs), which tracemalloc would not; memory the allocator kept from an earlier call and
reuses is not counted again, hence ``gc.collect()`` and glibc ``malloc_trim`` before each call.

The CLI's own overhead (``--cli-overhead``, :mod:`benchmarks.startup`): wall clock of a
``napari-deepreg register`` process on the bundled pair minus its method's runtime.

Outputs, under ``--out`` (default ``results/bench``) ``/<suite>/``: ``table.md`` (one table per
case group, then one per case), ``results.json`` (every row and the environment), ``dice.png``
and ``time.png``. Cases are cached as ``.npz`` in ``<out>/cases`` (``--cache``).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import cases as _cases
from benchmarks.cases import BenchCase, CaseUnavailable

IDENTITY = "identity"
DEFAULT_OUT = Path("results/bench")
# what the clock leaves out for each peer: its package import (itk loads lazily, ~20 s)
_PEER_IMPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "elastix": ("itk", ("ParameterObject", "elastix_registration_method",
                        "transformix_deformation_field", "image_from_array", "array_from_image")),
    "ants_syn": ("ants", ("registration", "apply_transforms", "from_numpy")),
    "dipy_syn": ("dipy.align.imwarp", ()),
    "sitk_demons": ("SimpleITK", ()),
}
_EXTRA_IMPORTS = {"dipy_syn": ("dipy.align", "dipy.align.metrics")}


# ----------------------------------------------------------------------------------------------
# identity: a method that returns a zero field, so the baseline row goes through the pipeline


@dataclasses.dataclass
class IdentityConfig:
    """No settings: the identity map."""


def _identity_estimate(fixed: torch.Tensor, moving: torch.Tensor, spacing: Sequence[float],
                       config: IdentityConfig, device: torch.device) -> Generator:
    from napari_deepreg.methods import Estimate, Progress

    yield Progress(1, 1, "identity")
    return Estimate(torch.zeros((1, fixed.ndim - 2, *fixed.shape[2:]), device=fixed.device))


class identity_method:  # noqa: N801  (used as a context manager, reads like a function)
    """Registers the ``identity`` method while the benchmark runs, unless one exists already.

    The package's registry loads its built-in methods only when it is empty, so they are loaded
    first; the benchmark's entry is removed again on exit, leaving the registry as it was.
    """

    def __enter__(self) -> None:
        from napari_deepreg import methods

        self.added = IDENTITY not in methods.available_methods()
        if self.added:
            methods.register_method(methods.MethodSpec(
                IDENTITY, "Identity (no registration)", IdentityConfig, _identity_estimate,
                dims=(2, 3), description="zero displacement: the benchmark's baseline"))

    def __exit__(self, *exc: object) -> None:
        if self.added:
            from napari_deepreg.methods import unregister_method

            unregister_method(IDENTITY)


# ----------------------------------------------------------------------------------------------
# methods


@dataclasses.dataclass
class Method:
    """One column of competitors: a package method (``pipeline`` / ``zoo``) or a ``peer``.

    ``label`` is what the tables show (the id, plus overrides); ``target`` the method id or
    peer name; ``config`` the overrides; ``available`` False with a ``note`` for a skipped one.
    """

    label: str
    kind: str
    target: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    available: bool = True
    note: str = ""
    dims: tuple[int, ...] = (2, 3)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_method(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value:key=value"`` -> ``(name, {key: value})`` (values JSON, else strings)."""
    name, *pairs = text.strip().split(":")
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"method option {pair!r} of {text!r} is not key=value")
        config[key.strip()] = _parse_value(value.strip())
    return name.strip(), config


def resolve_methods(names: str | Sequence[str] | None = None) -> list[Method]:
    """The methods to run, in table order: identity, package methods, zoo models, peers.

    ``names``: comma-separated text or a list; ``all`` (default), ``peers`` and ``zoo`` expand.
    Unknown names raise a ValueError that lists the known ones.
    """
    from benchmarks.peers import PEERS, missing_note
    from napari_deepreg.methods import available_methods

    specs = available_methods()
    package = [m for m in specs if m != IDENTITY and not specs[m].model_id]
    zoo = sorted(m for m in specs if m != IDENTITY and specs[m].model_id)
    expand = {"all": [IDENTITY, *package, *zoo, *PEERS], "peers": list(PEERS), "zoo": zoo}
    if names is None:
        names = ["all"]
    elif isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted: list[str] = []
    for name in names:
        wanted.extend(expand.get(name.strip(), [name.strip()]))
    methods: list[Method] = []
    for text in dict.fromkeys(wanted):  # keep order, drop repeats
        target, config = parse_method(text)
        if target in PEERS:
            peer = PEERS[target]
            ok = bool(peer.available())
            methods.append(Method(text, "peer", target, config, ok,
                                  "" if ok else missing_note(target)))
        elif target == IDENTITY or target in specs:
            spec = specs.get(target)
            kind = "zoo" if spec is not None and spec.model_id else "pipeline"
            dims = spec.dims if spec is not None else (2, 3)
            methods.append(Method(text, kind, target, config, dims=tuple(dims)))
        else:
            known = sorted({IDENTITY, *specs, *PEERS, "all", "peers", "zoo"})
            raise ValueError(f"unknown method {target!r}; known: {', '.join(known)}")
    return methods


# ----------------------------------------------------------------------------------------------
# threads, time and memory


_THREAD_LIMITS: list[Any] = []  # keeps threadpoolctl's limiter alive for the whole run


def limit_threads(count: int) -> None:
    """Run every tool on ``count`` CPU threads: torch, ITK (elastix, ANTs), SimpleITK, OpenMP and
    BLAS pools (threadpoolctl, where installed).

    On a machine shared with other jobs, multi-threaded torch can spend more time spinning than
    computing; one thread per tool gives steadier timings. ITK reads its variable when it first
    creates a filter, so call this before any peer has run.
    """
    torch.set_num_threads(count)
    for variable in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS"):
        os.environ[variable] = str(count)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    except (ImportError, AttributeError):
        pass
    try:
        from threadpoolctl import threadpool_limits

        _THREAD_LIMITS.append(threadpool_limits(limits=count))
    except ImportError:
        pass


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _read_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # "5": reset the peak RSS of the process (Linux >= 4.0)
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc), so the next peak starts from zero."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager measuring the peak RSS above the RSS at entry (``peak_mib``).

    Takes the larger of the kernel's high-water mark (reset at entry, where allowed) and the
    maximum of RSS sampled every ``interval`` seconds by a background thread.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak_mib = float("nan")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, _rss_bytes())

    def __enter__(self) -> PeakMemory:
        _trim_heap()
        self.baseline = _rss_bytes()
        self._hwm_ok = _reset_hwm()
        self._max = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        peak = max(self._max, _rss_bytes())
        hwm = _read_hwm_bytes() if self._hwm_ok else None
        if hwm is not None:
            peak = max(peak, hwm)
        self.peak_mib = max(0.0, (peak - self.baseline) / 2**20)


# ----------------------------------------------------------------------------------------------
# running one method on one case


def _warm_up_peer(name: str) -> None:
    """Import a peer's package (and touch its lazily loaded parts) before the clock starts."""
    module_name, attributes = _PEER_IMPORTS.get(name, ("", ()))
    if not module_name:
        return
    module = importlib.import_module(module_name)
    for attribute in attributes:
        getattr(module, attribute)
    for extra in _EXTRA_IMPORTS.get(name, ()):
        importlib.import_module(extra)


def call_method(case: BenchCase, method: Method, device: str) -> dict[str, Any]:
    """Run ``method`` on ``case``; returns ``{"field", "time_s", "cpu_s", "peak_mib", "tool_s",
    "note"}``.

    ``field`` is ``(D, *S)`` float32 mm on the fixed grid; ``time_s`` wall clock, ``cpu_s`` the
    process's CPU time over all its threads (steadier than wall time on a shared machine);
    ``tool_s`` the time the method reports itself. Exceptions propagate.
    """
    if method.kind == "peer":
        from benchmarks.peers import PEERS

        _warm_up_peer(method.target)
        run: Callable[[], Any] = lambda: PEERS[method.target].run(  # noqa: E731
            case.fixed, case.moving, **method.config)
    else:
        from napari_deepreg.pipeline import register, run_to_end

        run = lambda: run_to_end(register(  # noqa: E731
            case.fixed, case.moving, method=method.target, config=method.config or None,
            device=device, hausdorff=False))
    with PeakMemory() as memory:
        start, start_cpu = time.perf_counter(), time.process_time()
        outcome = run()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - start_cpu
    if method.kind == "peer":
        note, tool_s = outcome.note, outcome.runtime
    else:
        note = "; ".join(outcome.notes)
        tool_s = outcome.runtime
        if method.config:
            note = "; ".join(filter(None, [f"config {method.config}", note]))
    field = np.ascontiguousarray(outcome.field, dtype=np.float32)
    expected = (case.ndim, *case.shape)
    if field.shape != expected:
        raise RuntimeError(f"{method.label} returned a field of shape {field.shape}, "
                           f"expected {expected}")
    return {"field": field, "time_s": elapsed, "cpu_s": cpu, "peak_mib": memory.peak_mib,
            "tool_s": tool_s, "note": note}


# ----------------------------------------------------------------------------------------------
# measuring a field (the same for every row)


def masked_ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of ``a`` and ``b`` inside ``mask`` (nan when one is constant)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def measure_before(case: BenchCase) -> dict[str, float]:
    """Figures of the unregistered pair: Dice / HD95 / ASSD before, reference NCC before."""
    from napari_deepreg.metrics import registration_metrics

    out: dict[str, float] = {}
    if case.fixed_labels is not None and case.moving_labels is not None:
        summary, _ = registration_metrics(case.fixed_labels, case.moving_labels, None, None,
                                          case.spacing)
        out.update({k: summary[k] for k in ("dice_before", "hd95_before", "assd_before",
                                            "n_labels") if k in summary})
    if case.reference is not None:
        out["ref_ncc_before"] = masked_ncc(case.moving.array, case.reference, case.mask)
    return out


def measure_field(case: BenchCase, field: np.ndarray) -> dict[str, float]:
    """Figures of a registration given its field ``(D, *S)`` mm: Dice / HD95 / ASSD after, fold
    %, SDlogJ, endpoint error (mm, inside the mask) and reference NCC after (where they apply)."""
    from napari_deepreg.core import jacobian_determinant, warp_image, warp_labels
    from napari_deepreg.metrics import endpoint_error, registration_metrics

    field_t = torch.from_numpy(np.ascontiguousarray(field, np.float32))[None]
    with torch.no_grad():
        jacobian = jacobian_determinant(field_t, case.spacing)[0].numpy()
        warped_labels = None
        if case.moving_labels is not None:
            labels = torch.from_numpy(case.moving_labels.astype(np.int64))[None, None]
            warped_labels = warp_labels(labels, field_t, case.spacing)[0, 0].numpy()
        warped = None
        if case.reference is not None:
            moving = torch.from_numpy(np.ascontiguousarray(case.moving.array, np.float32))
            warped = warp_image(moving[None, None], field_t, case.spacing)[0, 0].numpy()
    summary, _ = registration_metrics(
        case.fixed_labels if warped_labels is not None else None, None, warped_labels,
        jacobian, case.spacing)
    out = {k: summary[k] for k in ("dice_after", "hd95_after", "assd_after", "fold_percent",
                                   "sdlogj") if k in summary}
    out["max_displacement_mm"] = float(np.sqrt((field.astype(np.float64) ** 2).sum(0)).max())
    if case.true_field is not None:
        out["epe_mm"] = endpoint_error(field, case.true_field, case.mask)
    if warped is not None:
        out["ref_ncc_after"] = masked_ncc(warped, case.reference, case.mask)
    return out


# ----------------------------------------------------------------------------------------------
# the run


def environment(device: str) -> dict[str, Any]:
    """Versions, threads, CPU and commit: what a reader needs to compare timings."""

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                                capture_output=True, timeout=10).stdout.strip() or None
        # uncommitted changes to the code that ran make the commit alone not reproduce it
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "benchmarks",
                                  "napari_deepreg"], cwd=root, timeout=10).returncode == 1
        if commit and changed:
            commit += "+uncommitted changes"
    except (OSError, subprocess.SubprocessError):
        commit = None
    from napari_deepreg.core.device import resolve_device

    return {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": cpu, "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "thread_limit": os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"),
        "device": str(resolve_device(device)),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "numpy": np.__version__,
        "packages": {d: version(d) for d in ("napari-deepreg", "SimpleITK", "itk-elastix",
                                             "antspyx", "dipy", "scipy")},
        "commit": commit,
    }


def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def run_benchmark(
    case_names: Iterable[str] | None = None,
    methods: str | Sequence[str] | Sequence[Method] | None = None,
    out: str | os.PathLike = DEFAULT_OUT,
    suite: str | None = None,
    device: str = "auto",
    cache: str | os.PathLike | None = None,
    cases: Iterable[BenchCase] | None = None,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
    command: str | None = None,
    cli_overhead: int = 0,
) -> dict[str, Any]:
    """Run the benchmark and write its report; returns the results (as in ``results.json``).

    Args:
        case_names: registered case names (:data:`benchmarks.cases.CASES`); default: ``suite``'s.
        methods: names as :func:`resolve_methods` takes them, or :class:`Method` objects.
        out: results root; the report goes to ``out/<suite>`` (``custom`` without a suite).
        suite: ``tiny`` / ``quick`` / ``full``, or a name for the folder.
        device: for the package methods (``auto``, ``cpu``, ``cuda``...); peers run on the CPU.
        cache: folder of built cases (default ``out/cases``).
        cases: ready-made :class:`BenchCase` objects, run after ``case_names``.
        rebuild: build the named cases again even when cached.
        cli_overhead: repeats of the CLI overhead measurement (:mod:`benchmarks.startup`);
            0 skips it.
    """
    from benchmarks import report

    out = Path(out)
    cache = out / "cases" if cache is None else Path(cache)
    if case_names is None and cases is None:
        case_names = _cases.suite_cases(suite or "quick")
    folder = out / (suite or "custom")
    if methods is None or isinstance(methods, str) or (
        methods and not isinstance(methods[0], Method)
    ):
        method_list = resolve_methods(methods)  # type: ignore[arg-type]
    else:
        method_list = list(methods)  # type: ignore[arg-type]
    started = datetime.datetime.now(datetime.timezone.utc)
    notes = [m.note for m in method_list if not m.available]
    for note in notes:
        log(note)
    rows: list[dict[str, Any]] = []
    case_info: list[dict[str, Any]] = []

    def all_cases() -> Iterable[BenchCase]:
        for name in case_names or ():
            try:
                log(f"case {name}: loading or building")
                yield _cases.get_case(name, cache, rebuild=rebuild)
            except CaseUnavailable as error:
                notes.append(f"{name} skipped: {error}")
                log(notes[-1])
        yield from cases or ()

    with identity_method():
        for case in all_cases():
            before = measure_before(case)
            case_info.append({
                "name": case.name, "group": case.group, "description": case.description,
                "shape": list(case.shape), "spacing": list(case.spacing),
                "labels": int(before.get("n_labels", 0)),
                "has_true_field": case.true_field is not None,
                "has_reference": case.reference is not None, "meta": case.meta,
            })
            for method in method_list:
                row: dict[str, Any] = {"case": case.name, "group": case.group,
                                       "method": method.label, "kind": method.kind}
                if not method.available:
                    continue
                if case.ndim not in method.dims:
                    notes.append(f"{method.label} skipped on {case.name}: it takes "
                                 f"{'/'.join(f'{d}D' for d in method.dims)} images only")
                    continue
                try:
                    called = call_method(case, method, device)
                    figures = measure_field(case, called.pop("field"))
                    row.update(status="ok", **before, **figures, **called)
                except Exception as error:  # one failing method must not end the run
                    row.update(status="error", note=f"{type(error).__name__}: {error}",
                               **before)
                rows.append(row)
                log(_row_line(row))
    overhead: dict[str, Any] = {}
    if cli_overhead > 0:
        from benchmarks import startup

        log("CLI overhead (napari-deepreg register on the bundled pair, cheapest setting)")
        overhead = startup.measure_overhead(cli_overhead, log)
    finished = datetime.datetime.now(datetime.timezone.utc)
    results = {
        "suite": suite or "custom",
        "command": command or _default_command(suite, case_names, methods),
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "environment": environment(device),
        "methods": [dataclasses.asdict(m) for m in method_list],
        "cases": case_info,
        "rows": [{k: _nan_to_none(v) for k, v in row.items()} for row in rows],
        "notes": list(dict.fromkeys(notes)),
        "cli_overhead": overhead,
    }
    paths = report.write_report(results, folder)
    log("wrote " + ", ".join(str(p) for p in paths.values()))
    return results


def _row_line(row: dict[str, Any]) -> str:
    def fmt(key: str, digits: int = 3) -> str:
        value = row.get(key)
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
            f"{value:.{digits}f}")

    if row.get("status") != "ok":
        return f"  {row['case']:<32} {row['method']:<24} {row.get('note', '')}"
    return (f"  {row['case']:<32} {row['method']:<24} Dice {fmt('dice_before')} -> "
            f"{fmt('dice_after')}  EPE {fmt('epe_mm', 2)} mm  folds {fmt('fold_percent', 3)} %  "
            f"{fmt('time_s', 1)} s  {fmt('peak_mib', 0)} MiB")


def _default_command(suite: str | None, case_names: Iterable[str] | None,
                     methods: Any) -> str:
    parts = ["python", "-m", "benchmarks.run"]
    if suite:
        parts += ["--suite", suite]
    elif case_names:
        parts += ["--cases", ",".join(case_names)]
    if isinstance(methods, str):
        parts += ["--methods", methods]
    return shlex.join(parts)


# ----------------------------------------------------------------------------------------------
# command line


def _list(log: Callable[[str], None] = print) -> None:
    log("suites:")
    for name, names in _cases.SUITES.items():
        log(f"  {name:<6} {', '.join(names)}")
    log("cases:")
    for name, spec in _cases.CASES.items():
        log(f"  {name:<34} {spec.group}")
    log("methods:")
    with identity_method():
        for method in resolve_methods("all"):
            state = "" if method.available else f"  ({method.note})"
            log(f"  {method.label:<16} {method.kind}{state}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark every method and the classical peers on the same cases.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--suite", choices=sorted(_cases.SUITES), help="a named set of cases "
                       "(default quick)")
    which.add_argument("--cases", help="comma-separated case names (see --list)")
    parser.add_argument("--methods", default="all", help="comma-separated methods, optionally "
                        "with overrides name:key=value (default all: identity, package methods, "
                        "zoo models, peers)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results root "
                        "(default results/bench); the report goes to <out>/<suite>")
    parser.add_argument("--cache", type=Path, default=None, help="folder of built cases "
                        "(default <out>/cases)")
    parser.add_argument("--device", default="auto", help="device of the package methods "
                        "(auto, cpu, cuda, mps); peers run on the CPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of every tool "
                        "(torch, ITK, OpenMP, BLAS); default: each tool's own choice. 1 gives "
                        "steadier timings on a shared machine")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached cases")
    parser.add_argument("--cli-overhead", type=int, default=3, metavar="N",
                        help="also time N `napari-deepreg register` calls per variant and report "
                        "the overhead beyond the method (default 3; 0 skips it)")
    parser.add_argument("--list", action="store_true", help="list suites, cases and methods")
    args = parser.parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    if args.list:
        _list()
        return 0
    names = [n.strip() for n in args.cases.split(",") if n.strip()] if args.cases else None
    suite = args.suite or (None if names else "quick")
    try:
        run_benchmark(names, args.methods, args.out, suite, args.device, args.cache,
                      rebuild=args.rebuild, cli_overhead=args.cli_overhead,
                      command=shlex.join(["python", "-m", "benchmarks.run",
                                          *(sys.argv[1:] if argv is None else argv)]))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
