"""entropic.gauss: counter-based standard normals (their distribution, determinism, independence) and
EntropySGD's fused inner step drawing them (the same as the torch sequence up to rounding; resume)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from localentropy.entropic import EntropySGD
from localentropy.entropic.errors import EntropicError
from localentropy.entropic.gauss import CounterNormal, mix64, sgld_step_


def _draw(seed, n, counter=0):
    g = CounterNormal(seed)
    g.counter = counter
    return g.fill_(torch.empty(n)).double().numpy()


def test_the_normals_have_the_standard_normal_distribution():
    """2²² draws: moments within 4 standard errors, Kolmogorov–Smirnov distance to N(0, 1) not
    significant, and the frequencies beyond 2, 3, 4 σ within 4 Poisson errors of Φ's."""
    x = _draw(11, 1 << 22)
    n = x.size
    assert abs(x.mean()) < 4 / math.sqrt(n)
    assert abs(x.var() - 1) < 4 * math.sqrt(2 / n)
    assert abs(stats.skew(x)) < 4 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(x)) < 4 * math.sqrt(24 / n)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    for t in (2, 3, 4):
        expected = 2 * stats.norm.sf(t) * n
        assert abs((np.abs(x) > t).sum() - expected) < 4 * math.sqrt(expected) + 1
    assert np.abs(x).max() < 5.9  # 24-bit uniforms, as torch.randn's float32 ones


def test_neighbours_and_streams_are_uncorrelated():
    """Lag 1 and lag ⌊n/2⌋ (the two halves of a pair), and two seeds, and the pair's radius and angle."""
    n = 1 << 20
    x = _draw(3, n)
    bound = 4 / math.sqrt(n)
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < bound
    h = n // 2
    assert abs(np.corrcoef(x[:h], x[h:])[0, 1]) < 4 / math.sqrt(h)
    assert abs(np.corrcoef(x[:h] ** 2, x[h:] ** 2)[0, 1]) < 4 / math.sqrt(h)  # independent, not just uncorrelated
    y = _draw(4, n)
    assert abs(np.corrcoef(x, y)[0, 1]) < bound
    seq = np.concatenate([_draw(5, 2, counter=c) for c in range(4000)])  # one pair per counter
    assert abs(np.corrcoef(seq[0::2][:-1], seq[0::2][1:])[0, 1]) < 4 / math.sqrt(4000)


def test_the_stream_is_a_function_of_seed_and_counter():
    g = CounterNormal(7)
    a = g.fill_(torch.empty(1001))
    assert g.counter == 501
    b = g.fill_(torch.empty(10))
    assert not torch.equal(a[:10], b)
    again = CounterNormal(7)
    assert torch.equal(again.fill_(torch.empty(1001)), a)
    again.load_state_dict(g.state_dict())
    assert again.counter == g.counter
    with pytest.raises(EntropicError, match="seed"):
        CounterNormal(8).load_state_dict(g.state_dict())
    with pytest.raises(EntropicError, match="float32"):
        g.fill_(torch.empty(4, dtype=torch.float64))
    assert mix64(0) != mix64(1) and 0 <= mix64(2**70) < 2**64


def test_a_draw_is_the_same_on_every_cpu():
    """IEEE-exact operations only: these values, computed here, hold on any x86-64 CPU (a change of
    the generator or of its arithmetic shows here)."""
    z = CounterNormal(0).fill_(torch.empty(5)).tolist()
    ref = CounterNormal(0)
    assert z == ref.fill_(torch.empty(5)).tolist()
    # pair 0 gives z[0] and z[2], pair 1 gives z[1] and z[3], pair 2 z[4]: the radius of a pair is shared
    r0 = math.hypot(z[0], z[2])
    assert 0 < r0 < 6 and len(set(z)) == 5


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 4097])
def test_the_torch_operations_give_the_kernels_numbers_bitwise(n):
    """The device path (``on_device``, torch operations, here run on the CPU) and the Numba kernel."""
    a = CounterNormal(9)
    a.counter = 2**63 + 12345  # counters wrap modulo 2⁶⁴ alike
    b = CounterNormal(9)
    b.counter = a.counter
    assert torch.equal(a.fill_(torch.empty(n)), b.on_device(n, "cpu"))
    assert a.counter == b.counter


def _model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(dtype)


def _closure(model, dtype):
    X = torch.randn(40, 7, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2))

    def f():
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        return loss
    return f


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_the_fused_inner_step_equals_the_foreach_path_to_rounding(dtype, tol, momentum, nesterov):
    """The same noise (one stream, the same counters) through EntropySGD's foreach path (noise_fn wrapped
    so the optimizer cannot fuse) and its fused path: the weights agree to rounding after 5 outer steps."""
    out = []
    for wrap in (False, True):
        model = _model(dtype=dtype)
        noise = CounterNormal(21)
        opt = EntropySGD(model.parameters(), lr=0.7, inner_lr=0.05, L=4, gamma=0.3, noise=0.1, alpha=0.75,
                         momentum=momentum, nesterov=nesterov, weight_decay=1e-3,
                         noise_fn=(lambda p, n=noise: n(p)) if wrap else noise)
        for _ in range(5):
            opt.step(_closure(model, dtype))
        assert opt.last["fused_sgld"] == (not wrap)
        out.append([p.detach().clone() for p in model.parameters()] + [torch.as_tensor(opt.last["d_inner"], dtype=dtype),
                                                                        torch.as_tensor(opt.last["step_norm"], dtype=dtype)])
        start = _model(dtype=dtype).parameters()
        moved = max(float((a - b.detach()).abs().max()) for a, b in zip(out[-1], start))
        assert moved > 1e-2  # the run went somewhere
    for a, b in zip(*out):  # the weights, then the diagnostics d(w′, w) and ‖w − μ‖
        assert torch.allclose(a, b, rtol=0, atol=tol)


def test_the_fused_path_resumes_to_the_same_weights():
    dtype = torch.float32

    def make():
        model = _model(dtype=dtype)
        return model, EntropySGD(model.parameters(), lr=0.7, inner_lr=0.05, L=3, gamma=0.3, noise=0.1,
                                 momentum=0.9, nesterov=True, noise_fn=CounterNormal(4))

    model, opt = make()
    for _ in range(6):
        opt.step(_closure(model, dtype))
    whole = [p.detach().clone() for p in model.parameters()]
    model, opt = make()
    for _ in range(3):
        opt.step(_closure(model, dtype))
    state = {"model": model.state_dict(), "opt": opt.state_dict()}
    model, opt = make()
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    for _ in range(3):
        opt.step(_closure(model, dtype))
    assert all(torch.equal(a, b) for a, b in zip(whole, model.parameters()))


def test_sgld_step_follows_its_formula_on_one_parameter():
    """d = g − γw + wd·p, buf = d (first step), Nesterov d + m·buf, p − lr·d + s·z, μ + a(p − μ)."""
    g = torch.Generator().manual_seed(0)
    p, grad, w, mu = (torch.randn(9, generator=g, dtype=torch.float64) for _ in range(4))
    buf = torch.zeros(9, dtype=torch.float64)
    noise = CounterNormal(1)
    z = CounterNormal(1).fill_(torch.empty(9)).double()
    d = grad - 0.2 * w + 0.01 * p
    d2 = d + 0.9 * d
    new_p = p - 0.1 * d2 + 0.05 * z
    new_mu = mu + 0.25 * (new_p - mu)
    sgld_step_(p, grad, w, mu, buf, gamma=0.2, weight_decay=0.01, lr=0.1, momentum=0.9, first=True,
               nesterov=True, scale=0.05, a=0.25, noise=noise)
    assert torch.allclose(p, new_p, atol=1e-15) and torch.allclose(mu, new_mu, atol=1e-15)
    assert torch.allclose(buf, d, atol=1e-15) and noise.counter == 5
