"""Entropy-SGD (paper 000, Algorithm 1): closed forms, focusing, bookkeeping, toy landscape."""

import copy
import math

import pytest
import torch
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.esgd import EntropySGD
from localentropy.entropic.schedules import Exponential
from tests.toy_landscapes import Landscape, sgd



def quadratic(A, w):
    return 0.5 * w @ A @ w


def quad_problem(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = M @ M.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    w0 = torch.randn(n, generator=g, dtype=torch.float64)
    return A, w0


def quad_closure(A, w):
    def closure():
        loss = quadratic(A, w)
        loss.backward()
        return loss.detach()
    return closure


def test_zero_noise_alpha_gamma_is_lookahead_closed_form():
    """ε = α = γ = 0: w′_L = (I − η′A)^L w, μ = w′_L, w ← w − η(w − w′_L) (Lookahead; Sec. 4)."""
    A, w0 = quad_problem()
    w = nn.Parameter(w0.clone())
    eta, eta_in, L = 0.7, 0.05, 6
    opt = EntropySGD([w], lr=eta, inner_lr=eta_in, L=L, gamma=0.0, noise=0.0, alpha=0.0)
    opt.step(quad_closure(A, w))
    I = torch.eye(4, dtype=torch.float64)
    wL = torch.linalg.matrix_power(I - eta_in * A, L) @ w0
    expected = w0 - eta * (w0 - wL)
    assert torch.allclose(w.detach(), expected, atol=1e-12)


def test_one_step_closed_form_with_coupling_and_alpha():
    """Noise-free step: w′ ← w′ − η′(A w′ + γ(w′ − w)), μ ← αμ + (1−α)w′, w ← w − η(w − μ)."""
    A, w0 = quad_problem(1)
    w = nn.Parameter(w0.clone())
    eta, eta_in, L, gam, alpha = 0.5, 0.1, 4, 0.3, 0.75
    opt = EntropySGD([w], lr=eta, inner_lr=eta_in, L=L, gamma=gam, noise=0.0, alpha=alpha)
    opt.step(quad_closure(A, w))
    wp, mu = w0.clone(), w0.clone()
    for _ in range(L):
        wp = wp - eta_in * (A @ wp + gam * (wp - w0))
        mu = alpha * mu + (1 - alpha) * wp
    assert torch.allclose(w.detach(), w0 - eta * (w0 - mu), atol=1e-12)
    # scale_by_gamma: η·γ in the outer step
    w2 = nn.Parameter(w0.clone())
    EntropySGD([w2], lr=eta, inner_lr=eta_in, L=L, gamma=gam, noise=0.0, alpha=alpha,
               scale_by_gamma=True).step(quad_closure(A, w2))
    assert torch.allclose(w2.detach(), w0 - eta * gam * (w0 - mu), atol=1e-12)


def test_sgld_noise_has_variance_eta_prime_eps_squared():
    """On a flat loss one SGLD step moves w′ by √η′ ε N(0, I): check the empirical variance."""
    n = 20000
    w = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    eta_in, eps = 0.04, 0.5
    opt = EntropySGD([w], lr=1.0, inner_lr=eta_in, L=1, gamma=0.0, noise=eps, alpha=0.0,
                     generator=torch.Generator().manual_seed(3))

    def closure():
        loss = 0.0 * w.sum()
        loss.backward()
        return loss.detach()

    opt.step(closure)
    var = float(w.detach().var())
    assert abs(var - eta_in * eps**2) < 5 * eta_in * eps**2 * math.sqrt(2 / n)


def test_nesterov_and_weight_decay_in_both_loops_match_torch_sgd():
    """Inner loop = torch SGD on ∇L + γ(w′−w); outer = torch SGD on w − μ (App. C), momentum kept."""
    A, w0 = quad_problem(2)
    kw = dict(momentum=0.9, nesterov=True, weight_decay=1e-2)
    w = nn.Parameter(w0.clone())
    opt = EntropySGD([w], lr=0.3, inner_lr=0.05, L=3, gamma=0.2, noise=0.0, alpha=0.5, **kw)
    # reference with explicit torch SGDs
    ref = nn.Parameter(w0.clone())
    outer = torch.optim.SGD([ref], lr=0.3, **kw)
    for _ in range(2):
        opt.step(quad_closure(A, w))
        wc = ref.detach().clone()
        wp = nn.Parameter(wc.clone())
        inner = torch.optim.SGD([wp], lr=0.05, **kw)
        mu = wc.clone()
        for _ in range(3):
            inner.zero_grad()
            loss = quadratic(A, wp)
            loss.backward()
            wp.grad += 0.2 * (wp.detach() - wc)
            inner.step()
            mu = 0.5 * mu + 0.5 * wp.detach()
        ref.grad = wc - mu
        outer.step()
        assert torch.allclose(w.detach(), ref.detach(), atol=1e-12)


def test_gamma_advances_per_step_and_per_epoch():
    A, w0 = quad_problem()
    w = nn.Parameter(w0.clone())
    sched = Exponential(0.5, 0.1)
    opt = EntropySGD([w], inner_lr=0.01, L=2, gamma=sched, noise=0.0)
    gammas = []
    for _ in range(3):
        opt.step(quad_closure(A, w))
        gammas.append(opt.last["gamma"])
    assert gammas == pytest.approx([0.5, 0.55, 0.605])
    assert opt.gamma == pytest.approx(0.5 * 1.1**3)
    opt_e = EntropySGD([w], inner_lr=0.01, L=2, gamma=sched, noise=0.0, gamma_unit="epoch")
    opt_e.step(quad_closure(A, w))
    opt_e.step(quad_closure(A, w))
    assert opt_e.gamma == pytest.approx(0.5)
    opt_e.epoch_end()
    assert opt_e.gamma == pytest.approx(0.55)


def test_grad_evals_counts_L_closure_calls_per_step():
    A, w0 = quad_problem()
    w = nn.Parameter(w0.clone())
    calls = []
    base = quad_closure(A, w)

    def closure():
        calls.append(1)
        return base()

    opt = EntropySGD([w], inner_lr=0.01, L=7, noise=0.0)
    for _ in range(3):
        opt.step(closure)
    assert opt.grad_evals == 21 == len(calls)


def test_auto_gamma0_is_loss_over_distance_after_free_sgld_loop():
    """App. C: first L steps with γ = 0, then γ0 = L(w)/d(w′, w); γ(t) = γ0 · schedule(t)."""
    A, w0 = quad_problem()
    w = nn.Parameter(w0.clone())
    opt = EntropySGD([w], inner_lr=0.05, L=4, gamma=Exponential(1.0, 0.5), noise=0.0, alpha=0.0,
                     auto_gamma0=True)
    loss0 = float(quadratic(A, w0))
    opt.step(quad_closure(A, w))
    I = torch.eye(4, dtype=torch.float64)
    wL = torch.linalg.matrix_power(I - 0.05 * A, 4) @ w0   # γ = 0 in the first loop
    d = 0.5 * float((wL - w0).pow(2).sum())
    assert opt.gamma0 == pytest.approx(loss0 / d, rel=1e-10)
    assert opt.gamma == pytest.approx(loss0 / d * 1.5, rel=1e-10)


def make_bn_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_batchnorm_running_stats_reflect_w_only():
    """Policy: the first closure call (at w′ = w) updates the BN buffers; the other L−1 do not."""
    net = make_bn_net()
    ref = copy.deepcopy(net)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]

    def closure_over_batches(model):
        """A closure that takes the next of `batches` at each call, from the first."""
        it = iter(batches)

        def closure():
            x, t = next(it)
            loss = nn.functional.cross_entropy(model(x), t)
            loss.backward()
            return loss.detach()

        return closure

    opt = EntropySGD(net.parameters(), lr=0.5, inner_lr=0.1, L=4, gamma=0.1, noise=1e-3, model=net)
    opt.step(closure_over_batches(net))
    with torch.no_grad():
        ref(batches[0][0])  # one train-mode forward at w on the first batch
    for b, rb in zip(net.buffers(), ref.buffers()):
        assert torch.equal(b, rb)
    # without the policy the L inner forwards at w′ change the statistics
    net2 = make_bn_net()
    EntropySGD(net2.parameters(), lr=0.5, inner_lr=0.1, L=4, gamma=0.1, noise=1e-3).step(closure_over_batches(net2))
    assert not torch.allclose(net2[1].running_mean, ref[1].running_mean)


def test_state_dict_round_trip_resumes_bitwise():
    net = make_bn_net(1)
    data_gen = torch.Generator().manual_seed(5)
    X = torch.randn(64, 5, generator=data_gen)
    T = torch.randint(0, 3, (64,), generator=data_gen)

    def run(model, opt, steps, start):
        for s in range(start, start + steps):
            def closure(s=s, k=[0]):
                idx = (torch.arange(8) + 8 * (s * 3 + k[0])) % 64
                k[0] += 1
                loss = nn.functional.cross_entropy(model(X[idx]), T[idx])
                loss.backward()
                return loss.detach()
            opt.step(closure)

    def build(model):
        return EntropySGD(model.parameters(), lr=0.5, inner_lr=0.05, L=3, gamma=Exponential(0.1, 0.2),
                          noise=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-3, model=model,
                          generator=torch.Generator().manual_seed(9))

    a = copy.deepcopy(net)
    opt_a = build(a)
    sched_a = torch.optim.lr_scheduler.StepLR(opt_a, step_size=1, gamma=0.5)
    run(a, opt_a, 2, 0)
    sched_a.step(); sched_a.step()
    ckpt = (copy.deepcopy(a.state_dict()), copy.deepcopy(opt_a.state_dict()))
    run(a, opt_a, 3, 2)

    b = copy.deepcopy(net)
    opt_b = build(b)
    b.load_state_dict(ckpt[0])
    opt_b.load_state_dict(ckpt[1])
    assert opt_b.param_groups[0]["lr"] == pytest.approx(0.125)  # scheduler acted on the outer lr
    assert opt_b.gamma_t == 2 and opt_b.grad_evals == 6
    assert "mu" in opt_b.state[next(iter(b.parameters()))]
    run(b, opt_b, 3, 2)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_project_and_noise_fn_hooks_are_used():
    """project runs after every inner and outer update; noise_fn supplies the SGLD noise."""
    w = nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    calls = {"project": 0, "noise": 0}

    def project(p):
        calls["project"] += 1
        p.div_(p.norm())

    def noise_fn(p):
        calls["noise"] += 1
        return torch.ones_like(p)

    def closure():
        loss = (w * torch.tensor([1.0, -1.0], dtype=torch.float64)).sum()
        loss.backward()
        return loss.detach()

    opt = EntropySGD([w], lr=1.0, inner_lr=0.01, L=3, gamma=0.0, noise=0.1, alpha=0.0,
                     noise_fn=noise_fn, project=project)
    opt.step(closure)
    assert calls == {"project": 4, "noise": 3}
    assert float(w.detach().norm()) == pytest.approx(1.0)
    bad = EntropySGD([w], L=1, noise=0.1, noise_fn=lambda p: torch.ones(3))
    with pytest.raises(EntropicError, match="noise_fn"):
        bad.step(closure)


@pytest.mark.parametrize("kw, word", [
    (dict(lr=-1.0), "lr"), (dict(inner_lr=0.0), "inner_lr"), (dict(L=0), "L"),
    (dict(alpha=1.0), "alpha"), (dict(noise=float("nan")), "noise"), (dict(gamma=-0.1), "gamma"),
    (dict(nesterov=True), "nesterov"), (dict(gamma_unit="batch"), "gamma_unit"),
    (dict(weight_decay=-1e-4), "weight_decay"), (dict(inner_momentum=-0.5), "momentum"),
])
def test_bad_hyper_parameters_raise_entropic_error(kw, word):
    w = nn.Parameter(torch.zeros(2))
    with pytest.raises(EntropicError, match=word):
        EntropySGD([w], **kw)


def test_step_without_closure_raises():
    w = nn.Parameter(torch.zeros(2))
    with pytest.raises(EntropicError, match="closure"):
        EntropySGD([w]).step()


def test_esgd_escapes_narrow_minimum_where_sgd_stays():
    """Toy 2-D landscape: from the narrow minimum, plain SGD (η = η′, same noise, same number of
    gradients) stays; eSGD (SGLD ε = 0.3, focusing γ: 0.03 → 30) ends in the wide well for most of
    40 independent seeds (40 systems in one tensor)."""
    land = Landscape(d_n=0.2, s_n=0.1)
    n, steps, L = 40, 100, 10
    x0 = land.narrow_min(2).expand(n, 2).clone()
    base = sgd(land, x0, lr=0.02, steps=steps * L, sigma=0.05, seed=0)
    assert int(land.in_narrow(base).sum()) == n
    x = nn.Parameter(x0.clone())
    g = torch.Generator().manual_seed(0)
    opt = EntropySGD([x], lr=1.0, inner_lr=0.02, L=L, gamma=Exponential.from_growth(0.03, 1000, steps),
                     noise=0.3, alpha=0.75, generator=g)
    closure = land.closure(x, 0.05, g)
    for _ in range(steps):
        opt.step(closure)
    assert int(land.in_wide(x.detach()).sum()) >= 0.85 * n
