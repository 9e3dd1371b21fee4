"""Conjugate-gradient iterations and time of the SUITS Gauss-Newton step (one run, CPU, 1 thread).

Jacobi-preconditioned CG vs plain CG vs a dense solve on the bundled samples (first update,
MIND-SSC features on the 4x coarser update grid of a 2 mm working grid, tolerance 1e-3).
Run: ``PYTHONPATH=. python benchmarks/suits_solver.py``
"""

import time

import torch

from napari_deepreg.core.smooth import resize
from napari_deepreg.losses.functional import mind_ssc
from napari_deepreg.methods.suits import solver
from napari_deepreg.methods.suits.descent import coarse_shape, to_coarse
from napari_deepreg.methods.suits.method import working_shape
from napari_deepreg.sample import load_sample


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1e3


def main() -> None:
    torch.set_num_threads(1)
    for name in ("brain2d", "brain3d"):
        s = load_sample(name)
        fx = torch.from_numpy(s["fixed"].array)[None, None]
        mv = torch.from_numpy(s["moving"].array)[None, None]
        ws, _ = working_shape(fx.shape[2:], tuple(s["fixed"].spacing), 2.0)
        cs = coarse_shape(ws)
        f = to_coarse(mind_ssc(resize(fx, ws)), cs)
        m = to_coarse(mind_ssc(resize(mv, ws)), cs)
        grad = torch.stack(torch.gradient(m, dim=tuple(range(2, m.ndim))), 2)
        b = -((m - f).unsqueeze(2) * grad).sum(1)
        for lam in (0.1, 10.0):
            (z, it), tp = _timed(solver.conjugate_gradient, grad, lam, b, 1e-3, 2000)
            (_, it2), tc = _timed(solver.conjugate_gradient, grad, lam, b, 1e-3, 2000,
                                   precondition=False)
            n, msg = b.numel(), ""
            if n < 4000:
                eye = torch.eye(n, dtype=torch.float64)
                a = torch.stack([solver.apply_system(grad.double(), lam, eye[i].reshape(b.shape))
                                 .reshape(-1) for i in range(n)], 1)
                zd, td = _timed(torch.linalg.solve, a, b.double().reshape(-1))
                err = ((z.double().reshape(-1) - zd).norm() / zd.norm()).item()
                msg = f"; dense solve {td:.1f} ms (+assembly), PCG rel. error {err:.1e}"
            print(f"{name} update grid {tuple(cs)}, {n} unknowns, lambda {lam}: Jacobi-PCG "
                  f"{it} it {tp:.1f} ms; plain CG {it2} it {tc:.1f} ms{msg}")


if __name__ == "__main__":
    main()
