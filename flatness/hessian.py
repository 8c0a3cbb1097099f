"""Hessian of the training loss of any ``nn.Module``: top eigenvalues and trace, from Hessian-vector products.

Definitions follow PyHessian (Yao, Gholami, Keutzer, Mahoney 2020, "PyHessian: Neural networks through
the lens of the Hessian"): H = ∇²_θ L(θ) of the mean loss over all given samples (``flatness.objective``),
never formed; each product H v costs one double backpropagation, ∇_θ(∇_θ L · v).

- ``hessian_top_eigenvalue``: λ_max(H) (and the next top_n − 1) by Lanczos with full
  reorthogonalisation (default) or by PyHessian's power iteration with deflation. Both report the
  residual norm ‖H y − λ̂ y‖ of each estimate (y its unit eigenvector estimate): some eigenvalue of H
  lies within it of λ̂. For Lanczos it costs nothing, |β_k s_k| (Paige's formula: β_k the last
  off-diagonal, s_k the last component of the Ritz vector in the Krylov basis), and a Lanczos
  Ritz value never exceeds λ_max, so λ_max ≥ λ̂₁.
- ``hessian_trace``: Hutchinson's estimator tr H = E[vᵀ H v] with Rademacher probes v, the mean over
  ``probes`` probes and its standard error (sample standard deviation / √probes).

``lanczos``, ``power_iteration`` and ``hutchinson`` take any symmetric matvec on float64 vectors, so
they can be checked against matrices with a known spectrum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import nn

from localentropy.entropic.params import Selection
from localentropy.flatness.errors import FlatnessError
from localentropy.flatness.objective import (LossFn, Objective, all_finite, check_int, check_positive,
                                             check_seed, eval_mode)

MatVec = Callable[[torch.Tensor], torch.Tensor]
METHODS = ("lanczos", "power")


@dataclass(frozen=True)
class HessianEigen:
    """Top eigenvalue(s) of a symmetric operator (the loss Hessian) with their residual error estimates.

    ``estimate`` is λ̂₁, ``uncertainty`` its residual norm ‖H y − λ̂₁ y‖ (an eigenvalue of H lies within
    it; with Lanczos also λ_max ≥ λ̂₁). ``eigenvalues``/``residuals`` hold all top_n (descending for
    Lanczos, in the order found for power iteration; fewer than top_n when Lanczos found an invariant
    subspace first). ``converged``: the stopping rule was met (Lanczos: every residual ≤ tol·|λ̂|, or an
    invariant subspace; power: relative change < tol). Cost: ``hvps`` Hessian-vector products (each
    about two gradient evaluations), plus ``forward_passes`` plain loss evaluations.
    """

    estimate: float
    uncertainty: float
    eigenvalues: tuple[float, ...]
    residuals: tuple[float, ...]
    method: str
    iterations: int
    hvps: int
    converged: bool
    dim: int
    loss0: float | None = None
    forward_passes: int = 0
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class HessianTrace:
    """Hutchinson's estimate of tr H: ``estimate`` the mean of vᵀHv over ``probes`` Rademacher probes,
    ``uncertainty`` its standard error (sample standard deviation, ddof 1, / √probes). ``samples`` are
    the probes' vᵀHv. Cost: ``hvps`` (= probes) Hessian-vector products plus ``forward_passes``."""

    estimate: float
    uncertainty: float
    probes: int
    hvps: int
    samples: tuple[float, ...]
    dim: int
    loss0: float | None = None
    forward_passes: int = 0
    params: tuple[str, ...] = ()


def _check_dim(dim) -> int:
    return check_int("dim", dim, 1)


def _finite(w: torch.Tensor) -> torch.Tensor:
    if not all_finite(w):
        raise FlatnessError("a Hessian-vector product is not finite (nan or inf): the loss is not twice "
                            "differentiable here or overflows")
    return w


def lanczos(matvec: MatVec, dim: int, *, k: int = 20, top_n: int = 1, tol: float = 1e-3, seed: int = 0,
            device=None) -> HessianEigen:
    """Top ``top_n`` eigenvalues of the symmetric operator ``matvec`` by k-step Lanczos.

    Starts from a seeded Gaussian unit vector; every new Lanczos vector is orthogonalised twice
    against all previous ones (full reorthogonalisation, so no spurious copies of converged
    eigenvalues). After iteration j the Ritz values θ_i of the j×j tridiagonal T_j and the residual
    norms |β_j s_{j,i}| are known; the loop stops after k steps, at an invariant subspace (β_j ≈ 0:
    the Ritz values are then exact eigenvalues), or, with tol > 0, once each of the top_n residuals
    is ≤ tol·|θ_i|. At most min(k, dim) matvecs. Repeated eigenvalues appear once.
    """
    dim = _check_dim(dim)
    k = check_int("k", k, 1)
    top_n = check_int("top_n", top_n, 1)
    tol = check_positive("tol", tol, allow_zero=True)
    seed = check_seed(seed)
    m = min(k, dim)
    if top_n > m:
        raise FlatnessError(f"top_n = {top_n} exceeds the Lanczos steps min(k, dim) = {m}")
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=g, dtype=torch.float64).to(device)
    v /= v.norm()
    V = torch.empty(m, dim, dtype=torch.float64, device=v.device)
    alpha: list[float] = []
    beta: list[float] = []
    converged = False
    for j in range(m):
        V[j] = v
        w = _finite(matvec(v).to(torch.float64).reshape(dim))
        a = float(w @ v)
        w = w - a * v
        if j > 0:
            w -= beta[-1] * V[j - 1]
        basis = V[: j + 1]
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w -= basis.T @ (basis @ w)
        b = float(w.norm())
        alpha.append(a)
        beta.append(b)
        theta, S = eigh_tridiagonal(np.array(alpha), np.array(beta[:-1]))
        order = np.argsort(theta)[::-1][:top_n]
        res = np.abs(b * S[-1, order])
        scale = max(float(np.abs(theta).max()), np.finfo(np.float64).tiny)
        if b <= 1e-12 * scale:  # invariant subspace: the Ritz values are eigenvalues of H
            converged = True
            break
        if tol > 0 and len(order) == top_n and np.all(res <= tol * np.abs(theta[order])):
            converged = True
            break
        if j + 1 < m:
            v = w / b
    vals = tuple(float(t) for t in theta[order])
    errs = tuple(float(r) for r in res)
    return HessianEigen(estimate=vals[0], uncertainty=errs[0], eigenvalues=vals, residuals=errs,
                        method="lanczos", iterations=len(alpha), hvps=len(alpha), converged=converged, dim=dim)


def power_iteration(matvec: MatVec, dim: int, *, top_n: int = 1, max_iter: int = 100, tol: float = 1e-3,
                    seed: int = 0, device=None) -> HessianEigen:
    """Top ``top_n`` eigenvalues by power iteration with deflation, as PyHessian's ``eigenvalues``.

    For each eigenvalue: a seeded Gaussian start, then v ← H v / ‖H v‖ with v kept orthogonal to the
    eigenvectors already found, λ̂ = vᵀ H v, stopping when |λ̂_t − λ̂_{t−1}| / (|λ̂_{t−1}| + 1e-6) < tol
    or after max_iter products. Finds the eigenvalue of largest magnitude: at a saddle with a
    stronger negative curvature that is a negative one (Lanczos has no such trap). The residual
    ‖H v − λ̂ v‖ of the last v is reported.
    """
    dim = _check_dim(dim)
    top_n = check_int("top_n", top_n, 1)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_positive("tol", tol, allow_zero=True)
    seed = check_seed(seed)
    if top_n > dim:
        raise FlatnessError(f"top_n = {top_n} exceeds the dimension {dim}")
    g = torch.Generator().manual_seed(seed)
    found: list[torch.Tensor] = []
    vals, errs = [], []
    hvps, iters, all_converged = 0, 0, True

    def deflate(x):
        for u in found:
            x = x - (u @ x) * u
        return x

    for _ in range(top_n):
        v = deflate(torch.randn(dim, generator=g, dtype=torch.float64).to(device))
        v /= v.norm()
        lam_prev, lam, res, converged = None, 0.0, math.inf, False
        for _ in range(max_iter):
            v = deflate(v)
            v /= v.norm()
            hv = _finite(matvec(v).to(torch.float64).reshape(dim))
            hvps += 1
            iters += 1
            lam = float(v @ hv)
            res = float((hv - lam * v).norm())
            if lam_prev is not None and abs(lam - lam_prev) / (abs(lam_prev) + 1e-6) < tol:
                converged = True
                break
            lam_prev = lam
            nrm = hv.norm()
            if float(nrm) == 0.0:  # v in the null space: λ = 0 exactly
                converged = True
                break
            v = hv / nrm
        found.append(v)
        vals.append(lam)
        errs.append(res)
        all_converged &= converged
    return HessianEigen(estimate=vals[0], uncertainty=errs[0], eigenvalues=tuple(vals), residuals=tuple(errs),
                        method="power", iterations=iters, hvps=hvps, converged=all_converged, dim=dim)


def hutchinson(matvec: MatVec, dim: int, *, probes: int = 100, seed: int = 0, device=None) -> HessianTrace:
    """tr H ≈ mean over ``probes`` Rademacher vectors v (entries ±1, seeded) of vᵀ H v, with its s.e.

    Unbiased; for a fixed H the variance of one probe is 2 Σ_{i≠j} H_ij² (the diagonal contributes
    nothing), so a diagonal H is estimated exactly.
    """
    dim = _check_dim(dim)
    probes = check_int("probes", probes, 2)
    seed = check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(probes):
        v = (torch.randint(0, 2, (dim,), generator=g, dtype=torch.int64) * 2 - 1).to(torch.float64).to(device)
        samples.append(float(v @ _finite(matvec(v).to(torch.float64).reshape(dim))))
    s = np.asarray(samples)
    se = float(s.std(ddof=1) / math.sqrt(probes))
    return HessianTrace(estimate=float(s.mean()), uncertainty=se, probes=probes, hvps=probes,
                        samples=tuple(samples), dim=dim)


def hessian_vector_product(model: nn.Module, loss_fn: LossFn, X, y, v, *, params: Selection = None,
                           include_biases: bool = False, batch_size: int | None = None):
    """H v of the mean loss over (X, y) w.r.t. the selected weights, by double backpropagation.

    v: a 1-D tensor of the selection's total size (weights flattened in selection order), or a dict
    {name: tensor} with every selected name and its shape; the product comes back in the same form.
    """
    obj = Objective(model, loss_fn, X, y, params=params, include_biases=include_biases, batch_size=batch_size)
    if isinstance(v, dict):
        if set(v) != set(obj.names):
            raise FlatnessError(f"v must have exactly the selected names {list(obj.names)}, got {list(v)}")
        for n, w in zip(obj.names, obj.weights):
            if not isinstance(v[n], torch.Tensor) or v[n].shape != w.shape:
                raise FlatnessError(f"v[{n!r}] must be a tensor of shape {tuple(w.shape)}")
        vs = [v[n].to(dtype=w.dtype, device=w.device) for n, w in zip(obj.names, obj.weights)]
    elif isinstance(v, torch.Tensor):
        if v.ndim != 1 or v.shape[0] != obj.dim:
            raise FlatnessError(f"v must be a 1-D tensor of length {obj.dim} (the selected weights), "
                                f"got shape {tuple(v.shape)}")
        vs = obj.unflatten(v.to(torch.float64))
    else:
        raise FlatnessError(f"v must be a 1-D tensor or a dict of tensors, got {type(v).__name__}")
    if not all(all_finite(x) for x in vs):
        raise FlatnessError("v holds non-finite values (nan or inf)")
    with eval_mode(model):
        hv = obj.hvp(vs)
    if isinstance(v, dict):
        return dict(zip(obj.names, hv))
    return obj.flatten(hv).to(v.dtype)


def hessian_top_eigenvalue(model: nn.Module, loss_fn: LossFn, X, y, *, top_n: int = 1, method: str = "lanczos",
                           k: int | None = None, tol: float = 1e-3, seed: int = 0, params: Selection = None,
                           include_biases: bool = False, batch_size: int | None = None) -> HessianEigen:
    """The largest Hessian eigenvalue(s) of the mean loss over (X, y), with residual error estimates.

    method "lanczos" (default; k = 20 steps, stopping early once each residual ≤ tol·|λ̂|; tol = 0
    runs all k) or "power" (PyHessian's power iteration, k = 100 products at most, tol its relative
    change rule). loss_fn(outputs, targets) returns the batch's mean loss; params/include_biases
    choose the weights as ``entropic.params`` does (default every weight, biases excluded);
    batch_size splits the data (same L). seed fixes the start vector(s).
    """
    if method not in METHODS:
        raise FlatnessError(f"method must be one of {METHODS}, got {method!r}")
    top_n = check_int("top_n", top_n, 1)
    if k is not None:
        k = check_int("k", k, 1)
    tol = check_positive("tol", tol, allow_zero=True)
    seed = check_seed(seed)
    obj = Objective(model, loss_fn, X, y, params=params, include_biases=include_biases, batch_size=batch_size)
    if top_n > obj.dim:
        raise FlatnessError(f"top_n = {top_n} exceeds the {obj.dim} selected weights")
    with eval_mode(model):
        loss0 = obj.checked_loss0()
        if method == "lanczos":
            r = lanczos(obj.flat_hvp, obj.dim, k=20 if k is None else k, top_n=top_n, tol=tol, seed=seed,
                        device=obj.device)
        else:
            r = power_iteration(obj.flat_hvp, obj.dim, top_n=top_n, max_iter=100 if k is None else k, tol=tol,
                                seed=seed, device=obj.device)
    return replace(r, loss0=loss0, forward_passes=obj.forward_passes, params=obj.names)


def hessian_trace(model: nn.Module, loss_fn: LossFn, X, y, *, probes: int = 100, seed: int = 0,
                  params: Selection = None, include_biases: bool = False,
                  batch_size: int | None = None) -> HessianTrace:
    """tr ∇²L of the mean loss over (X, y) by Hutchinson with ``probes`` seeded Rademacher probes
    (default 100, PyHessian's maximum), with the standard error over probes. Selection and batching as
    in ``hessian_top_eigenvalue``."""
    probes = check_int("probes", probes, 2)
    seed = check_seed(seed)
    obj = Objective(model, loss_fn, X, y, params=params, include_biases=include_biases, batch_size=batch_size)
    with eval_mode(model):
        loss0 = obj.checked_loss0()
        r = hutchinson(obj.flat_hvp, obj.dim, probes=probes, seed=seed, device=obj.device)
    return replace(r, loss0=loss0, forward_passes=obj.forward_passes, params=obj.names)
