"""The committee machine of Eq. 7: sign network, tanh surrogate, normalisation, K odd."""

import math

import numpy as np
import pytest
import torch

from localentropy.committee.errors import CommitteeError
from localentropy.committee.model import CommitteeNet, check_K, errors, normalise, sign_output, surrogate_output


def _rand(shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).normal(size=shape), dtype=torch.float64)


def test_normalise_puts_every_hidden_unit_at_norm_sqrt_N_and_keeps_directions():
    W = _rand((4, 3, 25))
    Wn = normalise(W)
    assert torch.allclose((Wn**2).sum(-1), torch.full((4, 3), 25.0, dtype=torch.float64), rtol=1e-14)
    cos = (W * Wn).sum(-1) / (W.norm(dim=-1) * Wn.norm(dim=-1))
    assert torch.allclose(cos, torch.ones_like(cos), rtol=1e-14)


def test_sign_output_is_majority_of_hidden_signs_and_scale_invariant():
    W, X = _rand((5, 31)), torch.tensor(np.random.default_rng(1).choice([-1.0, 1.0], size=(40, 31)))
    lam = X.numpy() @ W.numpy().T
    expect = np.where(np.where(lam >= 0, 1, -1).sum(1) >= 0, 1.0, -1.0)
    assert np.array_equal(sign_output(W, X).numpy(), expect)
    scaled = W * torch.tensor([[0.1], [7.0], [1.0], [3.0], [0.5]], dtype=torch.float64)
    assert torch.equal(sign_output(scaled, X), sign_output(W, X))


def test_surrogate_tends_to_the_sign_network_as_beta_grows():
    W, X = _rand((3, 31)), torch.tensor(np.random.default_rng(2).choice([-1.0, 1.0], size=(20, 31)))
    s = surrogate_output(W, X, 1e6)
    # (1/√K) Σ sign(λ_h): same sign as the network's output, magnitude an odd number over √3
    assert torch.equal(torch.sign(s), sign_output(W, X))
    assert torch.allclose(s.abs() * math.sqrt(3), torch.round(s.abs() * math.sqrt(3)), atol=1e-6)


def test_batched_leading_axes_equal_one_restart_at_a_time():
    W, X = _rand((2, 4, 3, 17)), torch.tensor(np.random.default_rng(3).choice([-1.0, 1.0], size=(9, 17)))
    y = torch.tensor(np.random.default_rng(4).choice([-1.0, 1.0], size=9))
    batched = errors(W, X, y)
    for a in range(2):
        for r in range(4):
            assert batched[a, r] == errors(W[a, r], X, y)


def test_committee_net_wraps_one_restart():
    W = normalise(_rand((3, 11)))
    X = torch.tensor(np.random.default_rng(5).choice([-1.0, 1.0], size=(6, 11)))
    net = CommitteeNet(W)
    assert torch.equal(net(X), sign_output(W, X)) and (net.K, net.N) == (3, 11)
    assert torch.allclose(CommitteeNet(W, beta=2.0)(X), surrogate_output(W, X, 2.0))


@pytest.mark.parametrize("K", [0, 2, 4, -1])
def test_even_or_nonpositive_K_is_rejected(K):
    with pytest.raises(CommitteeError, match="odd"):
        check_K(K)


def test_wrong_shapes_are_rejected():
    with pytest.raises(CommitteeError, match="inputs"):
        sign_output(_rand((3, 5)), _rand((2, 6)))
    with pytest.raises(CommitteeError, match="odd"):
        CommitteeNet(_rand((2, 5)))
    with pytest.raises(CommitteeError, match=r"\(K, N\)"):
        CommitteeNet(_rand((1, 3, 5)))


def test_one_sign_convention_for_training_evaluation_and_bp():
    """sign(0) = +1 at both layers (localentropy.committee_sign), numpy and torch alike, and BP's check agrees."""
    import numpy as np

    from localentropy.bp.curve import misclassified as bp_misclassified
    from localentropy.committee.model import errors
    from localentropy.committee_sign import check_odd_K, committee_output, sign

    lam = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, -1.0], [-0.5, 2.0, -3.0], [1.0, 0.0, 0.0]])
    assert committee_output(lam).tolist() == [1, -1, -1, 1]
    assert torch.equal(committee_output(torch.tensor(lam)), torch.tensor([1, -1, -1, 1]))
    assert sign(np.array([0.0, -0.0, -1e-300])).tolist() == [1, 1, -1]
    # A committee whose units sit exactly on patterns' boundaries: every path counts the same errors.
    X = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    W = np.array([[1.0, -1.0], [1.0, 1.0], [0.0, 1.0]])  # λ = 0 for several (pattern, unit) pairs
    y = np.array([1.0, -1.0, 1.0, -1.0])
    mask = bp_misclassified(W, X, y)
    err = float(errors(torch.tensor(W), torch.tensor(X), torch.tensor(y)))
    assert err == mask.mean()
    assert mask.tolist() == (committee_output(X @ W.T) != y).tolist()
    for bad in (2, 0, -3, 2.5):
        with pytest.raises(ValueError, match="odd"):
            check_odd_K(bad)
