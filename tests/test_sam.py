"""SAM (Foret et al.): one step against its closed form on a quadratic."""

import copy

import pytest
import torch
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.sam import SAM


def problem(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = M @ M.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    return A, torch.randn(n, generator=g, dtype=torch.float64)


def closure_for(A, w):
    def closure():
        loss = 0.5 * w @ A @ w
        loss.backward()
        return loss.detach()
    return closure


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_step_matches_closed_form_on_quadratic(adaptive):
    """ε̂ = ρ g/‖g‖ (adaptive: ρ w²g/‖|w|g‖), w ← w − η A (w + ε̂)."""
    A, w0 = problem()
    w = nn.Parameter(w0.clone())
    rho, lr = 0.2, 0.1
    opt = SAM([w], torch.optim.SGD, rho=rho, adaptive=adaptive, lr=lr)
    loss = opt.step(closure_for(A, w))
    g = A @ w0
    if adaptive:
        eps = rho * w0**2 * g / (w0.abs() * g).norm()
    else:
        eps = rho * g / g.norm()
    expected = w0 - lr * A @ (w0 + eps)
    assert torch.allclose(w.detach(), expected, atol=1e-10)
    assert float(loss) == pytest.approx(float(0.5 * w0 @ A @ w0))


def test_sam_with_momentum_uses_base_optimizer_state():
    A, w0 = problem(1)
    w = nn.Parameter(w0.clone())
    opt = SAM([w], torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    ref = w0.clone()
    buf = None
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    for _ in range(3):
        opt.step(closure_for(A, w))
        g = A @ ref
        gp = A @ (ref + 0.1 * g / g.norm())
        buf = gp if buf is None else 0.9 * buf + gp
        ref = ref - 0.05 * buf
        sched.step()
    assert torch.allclose(w.detach(), ref, atol=1e-10)
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_rho_zero_is_the_base_optimizer():
    A, w0 = problem(2)
    w = nn.Parameter(w0.clone())
    SAM([w], torch.optim.SGD, rho=0.0, lr=0.1).step(closure_for(A, w))
    assert torch.allclose(w.detach(), w0 - 0.1 * A @ w0, atol=1e-12)


@pytest.mark.parametrize("kw, word", [(dict(rho=-0.1), "rho"), (dict(rho=float("nan")), "rho"),
                                      (dict(base_optimizer=object), "base_optimizer"),
                                      (dict(lr=-1.0), "learning rate")])
def test_bad_hyper_parameters_raise_entropic_error(kw, word):
    w = nn.Parameter(torch.zeros(2))
    kw = {"lr": 0.1, **kw}
    with pytest.raises(EntropicError, match=word):
        SAM([w], **kw)
    with pytest.raises(EntropicError, match="closure"):
        SAM([w], lr=0.1).step()


def test_sam_state_dict_carries_the_base_momentum_so_a_resumed_run_continues_exactly():
    """The momentum buffers live in the base optimizer; a SAM rebuilt from state_dict() takes the same next steps."""
    A, w0 = problem(seed=3)

    def run(opt, w, steps):
        for _ in range(steps):
            opt.step(closure_for(A, w))

    w = nn.Parameter(w0.clone())
    sam = SAM([w], torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9, nesterov=True)
    run(sam, w, 3)
    saved, w_saved = copy.deepcopy(sam.state_dict()), w.detach().clone()  # as torch.save would: no shared tensors
    run(sam, w, 2)
    w2 = nn.Parameter(w_saved.clone())
    sam2 = SAM([w2], torch.optim.SGD, rho=0.05, lr=0.5, momentum=0.9, nesterov=True)
    sam2.load_state_dict(saved)
    assert sam2.param_groups[0]["lr"] == 0.1 and sam2.base_optimizer.param_groups is sam2.param_groups
    run(sam2, w2, 2)
    assert torch.equal(w2, w)
