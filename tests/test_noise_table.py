"""entropic.noise.NoiseTable: windows of a shared normal table as SGLD noise (its statistics, its
determinism, and EntropySGD resuming with it)."""

import math

import numpy as np
import pytest
import torch

from localentropy.entropic import EntropySGD
from localentropy.entropic.errors import EntropicError
from localentropy.entropic.noise import NoiseTable


def test_windows_have_the_standard_normal_marginal_and_are_uncorrelated_across_steps():
    """One weight's values over steps: mean 0, variance 1, no lag-1 correlation, and the sum over T
    steps has variance T (what the Langevin dynamics accumulates); two weights of one step uncorrelated."""
    table = NoiseTable(3, torch.Generator().manual_seed(4), size=1 << 16)
    p = torch.zeros(64, 8, dtype=torch.float64)
    T = 4000
    draws = torch.stack([table(p).clone() for _ in range(T)]).reshape(T, -1).numpy()  # (steps, weights)
    assert abs(draws.mean()) < 4 / math.sqrt(draws.size)
    assert abs(draws.var() - 1) < 4 * math.sqrt(2 / draws.size)
    x = draws[:, 0]
    r1 = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert abs(r1) < 4 / math.sqrt(T)
    sums = draws.reshape(40, 100, -1).sum(1)  # 40 independent blocks of 100 steps, per weight
    assert abs(sums.var() / 100 - 1) < 4 * math.sqrt(2 / sums.size)
    r_ab = np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]
    assert abs(r_ab) < 4 / math.sqrt(T)


def test_the_table_depends_on_the_seed_and_the_windows_on_the_generator():
    p = torch.zeros(100)
    a = NoiseTable(1, torch.Generator().manual_seed(0), size=1000)
    b = NoiseTable(1, torch.Generator().manual_seed(0), size=1000)
    c = NoiseTable(2, torch.Generator().manual_seed(0), size=1000)
    assert torch.equal(a(p), b(p)) and not torch.equal(a(p), c(p))
    assert a(p).dtype == p.dtype and a(p).shape == p.shape
    with pytest.raises(EntropicError, match="does not fit"):
        a(torch.zeros(1001))
    with pytest.raises(EntropicError, match="size"):
        NoiseTable(1, torch.Generator(), size=1)


def _esgd(seed_state=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 2)
    gen = torch.Generator().manual_seed(9)
    opt = EntropySGD(model.parameters(), lr=0.5, inner_lr=0.05, L=3, gamma=0.1, noise=1e-2, generator=gen,
                     noise_fn=NoiseTable(5, gen, size=4096))
    return model, opt


def test_entropy_sgd_with_table_noise_resumes_to_the_same_weights():
    X = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(2))

    def closure(model):
        def f():
            loss = torch.nn.functional.cross_entropy(model(X), y)
            loss.backward()
            return loss
        return f

    model, opt = _esgd()
    for _ in range(6):
        opt.step(closure(model))
    whole = [p.detach().clone() for p in model.parameters()]
    model, opt = _esgd()
    for _ in range(3):
        opt.step(closure(model))
    state = {"model": model.state_dict(), "opt": opt.state_dict()}
    model, opt = _esgd()
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    for _ in range(3):
        opt.step(closure(model))
    assert all(torch.equal(a, b) for a, b in zip(whole, model.parameters()))
