"""Device choice: ``auto`` picks CUDA, then MPS, then CPU."""

from __future__ import annotations

import time

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda[:i]" | "mps"`` into a torch.device that exists here.

    Raises ValueError for an unknown name or a device that is not available.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto'")
        return torch.device(name)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' was asked for but is not available; use 'auto'")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; choose one of {DEVICE_CHOICES}")


def warm_up_optimiser() -> float:
    """One Adam step on a one-element tensor; returns its seconds.

    A process's first ``torch.optim`` step imports ``torch._dynamo`` (about 1.4 s on a 2-core
    CPU), and run from a napari worker beside the Qt thread it took 2.6 s of a first 2D
    ``instance_opt`` run whose later runs take 0.4 s. The widget calls this in a background
    thread when it opens, while the user picks layers, so the first Run does not pay it.
    """
    start = time.perf_counter()
    weight = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([weight], lr=0.1)
    weight.sum().backward()
    optimiser.step()
    return time.perf_counter() - start
