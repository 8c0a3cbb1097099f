"""Errors and local energy of saved committee solutions (paper 000, Eq. 4 and Eq. 7; Figure 1).

``solution_errors``: training/test error of the exact sign network per restart.
``local_energy_profiles``: δE_train(w, σ) = E_z E_train(w + σ z ⊙ w) − E_train(w) per restart by
sampling, as large matrix products: the hidden fields of a perturbed network are linear in the noise,

    λ(w + σ z ⊙ w) = X wᵀ + σ X (z ⊙ w)ᵀ,

so the noise fields X (z ⊙ w)ᵀ of all draws of a restart are one GEMM, (P, N) by (N, draws·K), and
every σ is then a scaled add, a sign and a vote on (draws, P, K) arrays. By default the draws z are
shared by every σ (common random numbers: each σ still gets ``draws`` independent draws, its mean and
standard error are those of the per-σ sampling, only the estimates at different σ are correlated, which
makes the curve smoother); ``common_noise=False`` draws fresh noise for each σ, in the order of the
model-agnostic ``entropic.local_energy`` per-draw path, so it reproduces that path's draws one for one
(at draws × len(sigmas) times the GEMM work).
``expected_delta_error``: the exact expectation of the same quantity (no sampling): for every pattern
the K noise fields are independent Gaussians, so P(error) follows from a vote-count recursion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from localentropy.committee.errors import CommitteeError
from localentropy.committee.model import check_K, errors
from localentropy.committee.train import restart_seed
from localentropy.committee_sign import misclassified


def _weights(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise CommitteeError(f"weights must be (restarts, K, N), got shape {w.shape}")
    check_K(w.shape[1])
    if not np.all(np.isfinite(w)):
        raise CommitteeError("weights contain NaN or infinite values")
    return w


def _patterns(X, y, N, what="patterns") -> tuple[np.ndarray, np.ndarray]:
    Xn, yn = np.asarray(X), np.asarray(y)
    if Xn.ndim != 2 or yn.ndim != 1 or Xn.shape[0] != yn.shape[0] or Xn.shape[0] == 0:
        raise CommitteeError(f"{what} must be X (P, N) and y (P,), got {Xn.shape} and {yn.shape}")
    if Xn.shape[1] != N:
        raise CommitteeError(f"{what} have {Xn.shape[1]} inputs but the weights have N={N}")
    if not np.all(np.isin(yn, (-1, 1))):
        raise CommitteeError(f"{what}: labels must be ±1")
    return Xn.astype(np.float64), yn.astype(np.float64)


def solution_errors(weights, X, y, device="cpu") -> np.ndarray:
    """Fraction of (X, y) that each restart's sign network (Eq. 7) misclassifies, shape (R,)."""
    w = _weights(weights)
    Xn, yn = _patterns(X, y, w.shape[2])
    W = torch.as_tensor(w, device=device)
    return errors(W, torch.as_tensor(Xn, device=device), torch.as_tensor(yn, device=device)).cpu().numpy()




@dataclass(frozen=True)
class EnergyProfiles:
    """δE_train(σ) per restart: arrays (R, S) of mean and standard error over draws, E_train(w) (R,).

    delta_error_exact (R, S): the exact expectation E_z[E_train(w + σ z ⊙ w)] − E_train(w)
    (``expected_delta_error``), which the sampled ``delta_error`` estimates. common_noise: whether the
    σ values shared their draws.
    """

    sigmas: np.ndarray
    error0: np.ndarray
    delta_error: np.ndarray
    delta_error_se: np.ndarray
    draws: int
    seed: int
    delta_error_exact: Optional[np.ndarray] = None
    common_noise: bool = True


def _check_sigmas(sigmas) -> np.ndarray:
    try:
        sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise CommitteeError(f"sigmas must be numbers, got {sigmas!r}") from None
    if sig.size == 0 or not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise CommitteeError(f"sigmas must be finite and ≥ 0, got {sig}")
    return sig


def _wrong(up: torch.Tensor, ypos: torch.Tensor) -> torch.Tensor:
    """Misclassified patterns per leading index, from up (..., K, P) = [λ_kμ ≥ 0] and ypos (P,) = [y = +1].

    Units on the second-to-last axis, so the vote is a sum of contiguous (P,) rows (torch reduces a short
    last axis much more slowly). Same rule as ``localentropy.committee_sign``: sign(0) = +1 at both
    layers, so with c units at λ ≥ 0 the output is +1 iff 2c − K ≥ 0 iff c > (K − 1)/2 (K odd).
    """
    K = up.shape[-2]
    count = up.view(torch.uint8).sum(-2, dtype=torch.uint8 if K < 256 else torch.int32)
    return (count > (K - 1) // 2).ne(ypos).sum(-1)


def _draw_noise(gen: torch.Generator, B: int, K: int, N: int, dtype) -> torch.Tensor:
    """B standard-normal (K, N) draws, one call per draw: the stream of ``entropic.local_energy``'s
    ``_perturbed`` (so any chunking of the draws, and that path, see the same noise for a seed)."""
    z = torch.empty((B, K, N), dtype=dtype)
    for b in range(B):
        torch.randn((K, N), generator=gen, dtype=dtype, out=z[b])
    return z


def _restart_errors(w, Xt, ypos, sig, draws, gen, chunk, common_noise, device):
    """Misclassified-pattern counts (S, draws) of one restart's perturbed networks, and E_train(w) as a count."""
    K, N = w.shape
    W = torch.as_tensor(w, device=device)
    lam0 = W @ Xt.T  # (K, P)
    wrong0 = int(_wrong(lam0 >= 0, ypos))
    S = sig.size
    counts = np.zeros((S, draws), dtype=np.int64)
    for i in range(1 if common_noise else S):
        for s0 in range(0, draws, chunk):
            B = min(chunk, draws - s0)
            zw = (_draw_noise(gen, B, K, N, W.dtype).to(device) * W).reshape(B * K, N)  # z ⊙ w
            lamz = (zw @ Xt.T).reshape(B, K, -1)  # (B, K, P): (z ⊙ w) Xᵀ, one GEMM
            for j in (range(S) if common_noise else (i,)):
                if sig[j] == 0:
                    counts[j, s0:s0 + B] = wrong0
                else:
                    # λ0 + σ λz ≥ 0  ⇔  λz ≥ −λ0/σ (σ > 0): one comparison pass, no (B, K, P) sum
                    up = torch.ge(lamz, lam0 / -float(sig[j]))
                    counts[j, s0:s0 + B] = _wrong(up, ypos).cpu().numpy()
    return counts, wrong0


def local_energy_profiles(
    weights,
    X,
    y,
    sigmas,
    *,
    draws: int = 1000,
    seed: int = 0,
    device="cpu",
    batch_draws: int = 250,
    common_noise: bool = True,
    exact: bool = True,
    threads: Optional[int] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> EnergyProfiles:
    """δE_train(w_r, σ) of Eq. (4) for every restart r, multiplicative noise on all K·N weights.

    ``draws`` draws per σ, evaluated ``batch_draws`` at a time (one GEMM each, float64 on ``device``).
    Restart r's noise comes from a torch generator seeded with ``restart_seed(seed, r)``, so a profile
    does not depend on which other restarts are in the file. common_noise: see the module docstring.
    exact: also compute ``delta_error_exact`` (``expected_delta_error``). threads: torch CPU threads for the
    call (restored afterwards; None keeps torch's setting). On a CPU shared with other work, 1 thread is
    much faster than several (the elementwise passes are short; waiting threads spin), see
    benchmarks/bench_local_energy.py. ``progress(done, R)`` after each restart.
    """
    w = _weights(weights)
    Xn, yn = _patterns(X, y, w.shape[2])
    sig = _check_sigmas(sigmas)
    if isinstance(draws, bool) or int(draws) != draws or draws < 2:
        raise CommitteeError(f"draws must be an integer ≥ 2, got {draws}")
    if isinstance(batch_draws, bool) or int(batch_draws) != batch_draws or batch_draws < 1:
        raise CommitteeError(f"batch_draws must be an integer ≥ 1, got {batch_draws}")
    draws, chunk = int(draws), int(batch_draws)
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
        raise CommitteeError(f"threads must be an integer ≥ 1 or None, got {threads}")
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        prof = _profiles(w, Xn, yn, sig, draws, seed, device, chunk, common_noise, progress)
    finally:
        torch.set_num_threads(old_threads)
    d, se, e0 = prof
    ex = expected_delta_error(w, Xn, yn, sig) if exact else None
    return EnergyProfiles(sigmas=sig, error0=e0, delta_error=d, delta_error_se=se, draws=draws, seed=int(seed),
                          delta_error_exact=ex, common_noise=bool(common_noise))


def _profiles(w, Xn, yn, sig, draws, seed, device, chunk, common_noise, progress):
    """(mean δE (R, S), its standard error (R, S), E_train(w) (R,)) by sampling."""
    Xt = torch.as_tensor(Xn, device=device)
    ypos = torch.as_tensor(yn > 0, device=device)
    R, P = w.shape[0], Xn.shape[0]
    d, se, e0 = np.zeros((R, sig.size)), np.zeros((R, sig.size)), np.zeros(R)
    with torch.no_grad():
        for r in range(R):
            gen = torch.Generator().manual_seed(restart_seed(seed, r))
            counts, wrong0 = _restart_errors(w[r], Xt, ypos, sig, draws, gen, chunk, bool(common_noise), device)
            delta = (counts - wrong0) / P
            e0[r] = wrong0 / P
            d[r] = delta.mean(axis=1)
            se[r] = delta.std(axis=1, ddof=1) / math.sqrt(draws)
            if progress is not None:
                progress(r + 1, R)
    return d, se, e0


def expected_delta_error(weights, X, y, sigmas) -> np.ndarray:
    """E_z[E_train(w + σ z ⊙ w)] − E_train(w) exactly, shape (R, S) (Eq. 4 without sampling).

    For pattern μ the noise field of unit k, σ Σ_i z_ki w_ki x_μi, is Gaussian with variance
    σ² Σ_i w_ki² x_μi² and independent across units (disjoint z). Unit k votes +1 with probability
    p_k = Φ(λ_k/s_k); the number of +1 votes follows from the recursion over units (Poisson binomial),
    and the output is +1 when more than half vote +1 (K odd). σ = 0 gives 0.
    """
    from scipy.special import log_ndtr

    w = _weights(weights)
    Xn, yn = _patterns(X, y, w.shape[2])
    sig = _check_sigmas(sigmas)
    R, K, N = w.shape
    P = Xn.shape[0]
    out = np.zeros((R, sig.size))
    h = (K - 1) // 2
    X2 = Xn * Xn
    for r in range(R):
        lam = Xn @ w[r].T  # (P, K)
        e0 = np.mean(misclassified(lam, yn))
        sd = np.sqrt(X2 @ (w[r] ** 2).T)  # (P, K): noise std per unit σ = 1
        for j, s in enumerate(sig):
            if s == 0:
                continue
            t = lam / (s * sd)
            lp, lq = np.exp(log_ndtr(t)), np.exp(log_ndtr(-t))  # P(vote +1), P(vote −1)
            dist = np.zeros((P, K + 1))
            dist[:, 0] = 1.0
            for k in range(K):
                dist[:, 1:] = dist[:, 1:] * lq[:, k:k + 1] + dist[:, :-1] * lp[:, k:k + 1]
                dist[:, 0] *= lq[:, 0 + k]
            p_wrong = np.where(yn > 0, dist[:, :h + 1].sum(axis=1), dist[:, h + 1:].sum(axis=1))
            out[r, j] = p_wrong.mean() - e0
    return out
