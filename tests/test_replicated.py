"""Replicated-SGD (paper 000, Eq. 6 and Algorithm 2): functional core, batched replicas, toy landscape."""

import copy

import pytest
import torch
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.replicated import (
    Replicated, auto_gamma0, barycenter, coupling_grad, make_replicas, replica_batch_indices,
    replica_distances,
)
from localentropy.entropic.schedules import Exponential
from tests.toy_landscapes import Landscape, sgd


# ----- functional core ---------------------------------------------------------------------------
def test_functional_core_against_hand_computation():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, 2, 5, generator=g, dtype=torch.float64)  # (replicas, restarts, K, N)
    c = (w[0] + w[1] + w[2]) / 3
    assert torch.allclose(barycenter(w), c, atol=1e-15)
    assert torch.allclose(coupling_grad(w, c, 0.7), 0.7 * (w - c), atol=1e-15)
    d = torch.stack([0.5 * ((w[a] - c) ** 2).sum() for a in range(3)])
    assert torch.allclose(replica_distances(w, c), d, atol=1e-12)
    d2 = torch.stack([torch.stack([0.5 * ((w[a, r] - c[r]) ** 2).sum() for r in range(4)]) for a in range(3)])
    assert torch.allclose(replica_distances(w, keep_dims=2), d2, atol=1e-12)
    losses = torch.rand(3, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(auto_gamma0(losses, w, keep_dims=2), losses.sum(0) / d2.sum(0), atol=1e-12)
    assert float(auto_gamma0(losses[:, 0], w[:, 0])) == pytest.approx(float(losses[:, 0].sum() / d2[:, 0].sum()))
    # dicts of tensors: distances add over tensors
    dd = {"a": w, "b": 2 * w}
    assert torch.allclose(replica_distances(dd), 5 * d, atol=1e-12)
    # per-restart strength broadcasting
    s = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(4, 1, 1)
    assert torch.allclose(coupling_grad(w, c, s)[:, 2], 3.0 * (w[:, 2] - c[2]))


def test_functional_core_errors_name_the_problem():
    w = torch.randn(3, 4)
    with pytest.raises(EntropicError, match="center shape"):
        coupling_grad(w, torch.zeros(5), 1.0)
    with pytest.raises(EntropicError, match="strength"):
        coupling_grad(w, barycenter(w), -1.0)
    with pytest.raises(EntropicError, match="coincide"):
        auto_gamma0(torch.ones(3), torch.ones(3, 4))
    with pytest.raises(EntropicError, match="losses shape"):
        auto_gamma0(torch.ones(2), w)


# ----- models -----------------------------------------------------------------------------------
def conv_factory():
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3))


def data(seed=0, n=48):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def batches(X, T, y, bs, seed, epoch=0):
    idx = torch.stack([replica_batch_indices(len(X), bs, seed, a, epoch) for a in range(y)], 1)  # (steps, y, B)
    return [(X[i], T[i]) for i in idx]


def reference_rsgd(models, steps, lr, momentum, K, gamma):
    """Independent oracle of Algorithm 2: y separate modules, separate torch SGDs, explicit loop."""
    opts = [torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0) for m in models]
    for t, (x, tg) in enumerate(steps, start=1):
        with torch.no_grad():
            center = [sum(ps) / len(models) for ps in zip(*[list(m.parameters()) for m in models])]
        for a, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            nn.functional.cross_entropy(m(x[a]), tg[a]).backward()
            if t % K == 0:
                for p, c in zip(m.parameters(), center):
                    p.grad += K * gamma * (p.detach() - c)
            o.step()


@pytest.mark.parametrize("batched", [True, False])
def test_replicas_follow_an_independent_reference_implementation(batched):
    y, K, gam = 3, 2, 0.3
    models = [m.double() for m in make_replicas(conv_factory, y, seed=4)]
    ref = copy.deepcopy(models)
    X, T = data()
    steps = batches(X, T, y, 8, seed=4)[:5]
    rep = Replicated(models, lr=0.1, momentum=0.9, nesterov=True, K=K, gamma=gam, batched=batched)
    for x, tg in steps:
        rep.step(x, tg)
    reference_rsgd(ref, steps, 0.1, 0.9, K, gam)
    for a in range(y):
        got = rep.replica_model(a).state_dict()
        for k, v in ref[a].state_dict().items():
            assert torch.allclose(got[k].to(v.dtype), v, atol=1e-10), k


@pytest.mark.parametrize("batched", [True, False])
def test_replicas_follow_the_shared_numpy_oracle_of_algorithm_2_coupling_first_at_step_K(batched):
    """The same hand-written Algorithm 2 (tests/oracles.py) that checks the committee trainer:
    a linear model with squared loss, whose mini-batch gradient is written out in numpy. With K = 3
    the first coupling is at t = 3; the wrong phase (coupling at t = 1, 4, 7) is far from the result."""
    import numpy as np

    from tests.oracles import algorithm2

    y, K, gam, lr, steps, B = 3, 3, 0.7, 0.05, 7, 6
    g = torch.Generator().manual_seed(3)
    X = torch.randn(40, 5, generator=g, dtype=torch.float64)
    T = torch.randn(40, 1, generator=g, dtype=torch.float64)
    models = [nn.Linear(5, 1, bias=False).double() for _ in range(y)]
    for m in models:
        with torch.no_grad():
            m.weight.copy_(torch.randn(1, 5, generator=g, dtype=torch.float64))
    idx = torch.randint(0, 40, (steps, y, B), generator=g)
    W0 = np.stack([m.weight.detach().numpy().copy() for m in models])  # (y, 1, 5)
    rep = Replicated(models, lr=lr, K=K, gamma=gam, batched=batched, loss_fn=nn.functional.mse_loss)
    for t in range(steps):
        rep.step(X[idx[t]], T[idx[t]])
    Xn, Tn = X.numpy(), T.numpy()

    def grad(a, t, w):  # ∇_w mean_μ (x_μ·w − t_μ)², the batch of replica a at step t (1-based)
        xb, tb = Xn[idx[t - 1, a]], Tn[idx[t - 1, a]]
        return (2.0 / B) * ((xb @ w.T - tb).T @ xb)

    want = algorithm2(W0, grad, lr, K, lambda t: gam, steps)
    got = rep.params["weight"].detach().numpy()
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    wrong = algorithm2(W0, lambda a, t, w: grad(a, t - 2, w), lr, K, lambda t: gam, steps, t0=2)  # t = 3..9
    assert np.abs(got - wrong).max() > 1e-3, "the coupling phase is tested"


def test_batched_replicas_equal_sequential_loop():
    y = 4
    models = [m.double() for m in make_replicas(conv_factory, y, seed=1)]
    X, T = data(1)
    steps = batches(X, T, y, 6, seed=1)[:4]
    kw = dict(lr=0.05, momentum=0.9, weight_decay=1e-3, K=2, gamma=Exponential(0.1, 0.5))
    a = Replicated(models, batched=True, **kw)
    b = Replicated(models, batched=False, **kw)
    for x, tg in steps:
        la, lb = a.step(x, tg), b.step(x, tg)
        assert torch.allclose(la, lb, atol=1e-12)
    for k in a.params:
        assert torch.allclose(a.params[k], b.params[k], atol=1e-12)
    for k in a.buffers:
        assert torch.allclose(a.buffers[k].double(), b.buffers[k].double(), atol=1e-12)


def test_single_replica_is_plain_torch_sgd():
    m = conv_factory().double()
    ref = copy.deepcopy(m)
    X, T = data(2)
    rep = Replicated([m], lr=0.1, momentum=0.5, K=1, gamma=10.0)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.5)
    for s in range(3):
        x, t = X[8 * s:8 * s + 8], T[8 * s:8 * s + 8]
        rep.step(x[None], t[None])
        opt.zero_grad()
        nn.functional.cross_entropy(ref(x), t).backward()
        opt.step()
    for k, v in ref.state_dict().items():
        assert torch.allclose(rep.replica_model(0).state_dict()[k].to(v.dtype), v, atol=1e-12)


def test_gamma_advances_and_auto_gamma0_balances_loss_and_distance():
    y = 3
    models = [m.double() for m in make_replicas(conv_factory, y, seed=2)]
    X, T = data(3)
    steps = batches(X, T, y, 8, seed=2)
    with torch.no_grad():
        losses = torch.stack([nn.functional.cross_entropy(copy.deepcopy(models[a])(steps[0][0][a]), steps[0][1][a])
                              for a in range(y)])
    stacked = {k: torch.stack([dict(m.named_parameters())[k].detach() for m in models]) for k, _ in models[0].named_parameters()}
    expected = float(losses.sum() / replica_distances(stacked).sum())
    rep = Replicated(models, lr=0.01, K=1, gamma=Exponential(1.0, 0.1), auto_gamma0=True)
    assert rep.gamma == 0.0
    rep.step(*steps[0])
    assert rep.gamma0 == pytest.approx(expected, rel=1e-10)
    assert rep.gamma == pytest.approx(expected * 1.1, rel=1e-10)
    rep.step(*steps[1])
    assert rep.gamma_t == 2 and rep.grad_evals == 2 * y
    rep_e = Replicated(models, lr=0.01, gamma=Exponential(0.5, 1.0), gamma_unit="epoch")
    rep_e.step(*steps[0])
    assert rep_e.gamma == 0.5
    rep_e.epoch_end()
    assert rep_e.gamma == 1.0


def test_center_model_averages_params_and_buffers_and_recomputes_bn():
    y = 3
    models = [m.double() for m in make_replicas(conv_factory, y, seed=3)]
    X, T = data(4)
    rep = Replicated(models, lr=0.05, K=1, gamma=0.1)
    for x, tg in batches(X, T, y, 8, seed=3)[:3]:
        rep.step(x, tg)
    c = rep.center_model()
    for k, v in c.named_parameters():
        assert torch.allclose(v, rep.params[k].mean(0), atol=1e-12)
    assert torch.allclose(c[1].running_var, rep.buffers["1.running_var"].mean(0), atol=1e-12)
    # recomputed statistics: the cumulative average of the per-batch means over the loader
    loader = [(X[i:i + 12], T[i:i + 12]) for i in range(0, 48, 12)]
    c2 = rep.center_model(loader=loader)
    with torch.no_grad():
        h = c2[0](X.reshape(4, 12, 2, 6, 6).reshape(-1, 2, 6, 6)).reshape(4, 12, 3, 4, 4)
        expected_mean = h.mean(dim=(1, 3, 4)).mean(0)
    assert torch.allclose(c2[1].running_mean, expected_mean, atol=1e-12)
    assert c2[1].momentum == c[1].momentum


def test_state_dict_round_trip_resumes_bitwise():
    y = 3
    models = make_replicas(conv_factory, y, seed=5)
    X, T = data(5)
    X = X.float()
    steps = batches(X, T, y, 8, seed=5)
    kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4, K=2, gamma=Exponential(0.1, 0.3))
    a = Replicated(models, **kw)
    for x, tg in steps[:3]:
        a.step(x, tg)
    ckpt = copy.deepcopy(a.state_dict())
    for x, tg in steps[3:6]:
        a.step(x, tg)
    b = Replicated(make_replicas(conv_factory, y, seed=99), **kw)
    b.load_state_dict(ckpt)
    assert b.t == 3 and b.gamma_t == 3
    for x, tg in steps[3:6]:
        b.step(x, tg)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    for k in a.buffers:
        assert torch.equal(a.buffers[k], b.buffers[k])


@pytest.mark.parametrize("kw, word", [
    (dict(K=0), "K"), (dict(lr=0.0), "lr"), (dict(momentum=-0.1), "momentum"),
    (dict(nesterov=True), "nesterov"), (dict(gamma=float("inf")), "gamma"),
    (dict(gamma_unit="batch"), "gamma_unit"),
])
def test_bad_hyper_parameters_raise_entropic_error(kw, word):
    with pytest.raises(EntropicError, match=word):
        Replicated(make_replicas(conv_factory, 2, seed=0), **kw)


def test_bad_inputs_raise_entropic_error():
    with pytest.raises(EntropicError, match="architecture"):
        Replicated([conv_factory(), nn.Linear(2, 2)])
    rep = Replicated(make_replicas(conv_factory, 2, seed=0))
    with pytest.raises(EntropicError, match="leading dimension"):
        rep.step(torch.randn(3, 4, 2, 6, 6), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(EntropicError, match="auto_gamma0"):
        Replicated(make_replicas(conv_factory, 1, seed=0), auto_gamma0=True)


# ----- toy landscape --------------------------------------------------------------------------------
class Point(nn.Module):
    """n independent 2-D systems; forward(ξ) is the toy loss plus mini-batch gradient noise σ ξ·x."""

    def __init__(self, x, land, sigma):
        super().__init__()
        self.x = nn.Parameter(x.clone())
        self.land, self.sigma = land, sigma

    def forward(self, xi):
        return self.land.loss(self.x) + self.sigma * (xi * self.x).sum()


def test_rsgd_center_ends_in_wide_minimum_from_narrow_start():
    """Replicas initialised independently around the narrow minimum (their barycenter exactly
    on it, from where plain SGD stays narrow): rSGD with focusing γ 0.01 → 10 collapses them in
    the wide well for most of 40 seeds; it does better than the replicas trained alone by SGD
    from the same inits, and better than SGD from the start (0 of 40)."""
    land, n, y, steps, lr, sigma = Landscape(d_n=0.2, s_n=0.1), 40, 5, 600, 0.01, 0.05
    x0 = land.narrow_min(2)
    g = torch.Generator().manual_seed(0)
    init = torch.randn(y, n, 2, generator=g, dtype=torch.float64) * 0.6
    init = init - init.mean(0) + x0
    assert int(land.in_narrow(sgd(land, x0.expand(n, 2).clone(), lr, steps, sigma, seed=1)).sum()) == n
    alone = sgd(land, init.reshape(-1, 2), lr, steps, sigma, seed=1).reshape(y, n, 2)
    frac_alone = float(land.in_wide(alone).double().mean())
    rep = Replicated([Point(init[a], land, sigma) for a in range(y)], lr=lr, K=1,
                     gamma=Exponential.from_growth(0.01, 1e3, steps), loss_fn=lambda out, t: out)
    for _ in range(steps):
        rep.step(torch.randn(y, n, 2, generator=g, dtype=torch.float64), torch.zeros(y))
    frac_rsgd = float(land.in_wide(rep.center()["x"]).double().mean())
    assert frac_rsgd >= 0.85
    assert frac_rsgd > frac_alone + 0.1
    assert float(rep.distances().max()) < 1e-2


def test_auto_batching_uses_the_loop_for_conv_nets_on_cpu_and_vmap_otherwise():
    conv = make_replicas(lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), 2, 0)
    mlp = make_replicas(lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), 2, 0)
    assert Replicated(conv).batched is False
    assert Replicated(mlp).batched is True
    assert Replicated(conv, batched=True).batched is True
    with pytest.raises(EntropicError, match="batched"):
        Replicated(mlp, batched="yes")


def test_a_state_saved_with_another_coupling_period_is_refused():
    y = 2
    kw = dict(lr=0.05, gamma=0.1)
    a = Replicated(make_replicas(conv_factory, y, seed=5), K=2, **kw)
    b = Replicated(make_replicas(conv_factory, y, seed=5), K=3, **kw)
    with pytest.raises(EntropicError, match="K = 2"):
        b.load_state_dict(a.state_dict())
    old = {k: v for k, v in a.state_dict().items() if k != "K"}  # written before K was saved: accepted
    Replicated(make_replicas(conv_factory, y, seed=5), K=2, **kw).load_state_dict(old)
