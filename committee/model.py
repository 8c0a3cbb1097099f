"""The committee machine of paper 000, Eq. (7): K hidden sign units, second layer fixed to +1.

Weights are first-layer matrices with the hidden units on the second-to-last axis and the N
inputs on the last: (restarts, K, N) for SGD and eSGD, (replicas, restarts, K, N) for rSGD. All
functions here broadcast over any leading axes, which is how every restart (and replica) is
trained in one batched computation.

- ``sign_output``: the exact network ŷ = sign(Σ_h sign(w_h·ξ/√N)) (the 1/√K of Eq. 7 does not
  change a sign), used for every error count. Convention: sign(0) = +1 (a measure-zero event for
  real-valued weights); K odd, so the vote never ties.
- ``surrogate_output``: (1/√K) Σ_h tanh(β w_h·ξ/√N), the differentiable surrogate used in
  training (Sec. 5: "we approximate sign activation functions on the hidden layer with tanh(βx)").
- ``normalise``: each hidden unit rescaled to norm √N. The network is invariant under this
  rescaling, and Sec. 5 / App. B.1 keep the norm fixed "before the training starts and after each
  weight update", so the scale of the loss is set by β and ω alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from localentropy.committee.errors import CommitteeError
from localentropy.committee_sign import check_odd_K, committee_output


def check_K(K: int) -> int:
    """The number of hidden units must be a positive odd integer (no ties in the output vote)."""
    return check_odd_K(K, CommitteeError)


def normalise(W: torch.Tensor) -> torch.Tensor:
    """Return W with each hidden unit (last axis) rescaled to Euclidean norm √N (App. B.1)."""
    N = W.shape[-1]
    return W * (math.sqrt(N) / torch.linalg.vector_norm(W, dim=-1, keepdim=True))


def normalise_(W: torch.Tensor) -> torch.Tensor:
    """In-place version of ``normalise`` (no autograd history); returns W."""
    N = W.shape[-1]
    with torch.no_grad():
        W.mul_(math.sqrt(N) / torch.linalg.vector_norm(W, dim=-1, keepdim=True))
    return W


def preactivations(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """λ_h(ξ) = w_h·ξ/√N for every pattern: W (..., K, N), X (..., B, N) or (B, N) → (..., B, K)."""
    N = W.shape[-1]
    if X.shape[-1] != N:
        raise CommitteeError(f"patterns have {X.shape[-1]} inputs but the weights expect N={N}")
    return torch.matmul(X, W.transpose(-1, -2)) / math.sqrt(N)


def surrogate_output(W: torch.Tensor, X: torch.Tensor, beta: float) -> torch.Tensor:
    """(1/√K) Σ_h tanh(β λ_h): the training surrogate of Eq. (7), shape (..., B)."""
    K = W.shape[-2]
    return torch.tanh(beta * preactivations(W, X)).sum(-1) / math.sqrt(K)


def sign_output(W: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """ŷ = sign(Σ_h sign(λ_h)) of Eq. (7) as ±1 floats, shape (..., B) (``localentropy.committee_sign``)."""
    return committee_output(preactivations(W, X)).to(W.dtype)


def errors(W: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of patterns the exact sign network misclassifies, shape W.shape[:-2]."""
    return (sign_output(W, X) != y).to(W.dtype).mean(-1)


class CommitteeNet(nn.Module):
    """One restart's committee machine as an ``nn.Module``: parameter ``weight`` (K, N), sign network.

    A thin wrapper so that model-agnostic tools (``entropic.local_energy``, Eq. 4) can perturb the
    weights; ``forward`` returns the exact ±1 output of Eq. (7), or the surrogate if ``beta`` is set.
    """

    def __init__(self, weight, beta: float | None = None):
        super().__init__()
        w = torch.as_tensor(weight)
        if w.ndim != 2:
            raise CommitteeError(f"CommitteeNet takes one restart's (K, N) weights, got shape {tuple(w.shape)}")
        check_K(w.shape[0])
        self.weight = nn.Parameter(w.clone().to(torch.get_default_dtype() if not w.is_floating_point() else w.dtype))
        self.beta = beta

    @property
    def K(self) -> int:
        return self.weight.shape[0]

    @property
    def N(self) -> int:
        return self.weight.shape[1]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = X.to(self.weight.dtype)
        if self.beta is None:
            return sign_output(self.weight, X)
        return surrogate_output(self.weight, X, self.beta)
