"""The fused eSGD tail (committee/kernels.py) against the torch operations it replaces."""

import numpy as np
import pytest
import torch

from localentropy.committee import train as T
from localentropy.committee.kernels import sgld_tail_, usable


def _torch_tail(wp, w, z, c, s, mu, a):
    wp.add_(w, alpha=c)
    if z is not None:
        wp.add_(z, alpha=s)
    wp.div_(torch.linalg.vector_norm(wp, dim=-1, keepdim=True))
    mu.lerp_(wp, a)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-15), (torch.float32, 3e-7)])
@pytest.mark.parametrize("noisy", [True, False])
def test_the_fused_tail_equals_the_torch_sequence_to_rounding(dtype, tol, noisy):
    g = torch.Generator().manual_seed(0)
    wp = torch.randn(7, 3, 51, generator=g, dtype=dtype)
    w = torch.randn(7, 3, 51, generator=g, dtype=dtype)
    mu = torch.randn(7, 3, 51, generator=g, dtype=dtype)
    z = torch.randn(7, 3, 51, generator=g) if noisy else None
    ref_wp, ref_mu = wp.clone(), mu.clone()
    _torch_tail(ref_wp, w, z, 0.3, 0.2, ref_mu, 0.25)
    sgld_tail_(wp, w, z, 0.3, 0.2, mu, 0.25)
    assert torch.allclose(wp, ref_wp, rtol=0, atol=tol) and torch.allclose(mu, ref_mu, rtol=0, atol=tol)
    assert torch.allclose(torch.linalg.vector_norm(wp, dim=-1), torch.ones((), dtype=dtype), atol=4 * tol)


def test_a_row_alone_gives_bitwise_what_it_gives_among_others():
    """Each hidden unit is processed on its own, so a restart's numbers do not depend on its place."""
    g = torch.Generator().manual_seed(1)
    wp, w, mu = (torch.randn(5, 9, 784, generator=g) for _ in range(3))
    z = torch.randn(5, 9, 784, generator=g)
    one = [x[3:4].clone() for x in (wp, w, z, mu)]
    sgld_tail_(wp, w, z, 1e-3, 1e-2, mu, 0.1)
    sgld_tail_(one[0], one[1], one[2], 1e-3, 1e-2, one[3], 0.1)
    assert torch.equal(one[0][0], wp[3]) and torch.equal(one[3][0], mu[3])


def test_usable_only_for_contiguous_cpu_float_tensors():
    x = torch.zeros(2, 3)
    assert usable(x, x.double())
    assert not usable(x.T) and not usable(x.half()) and not usable(x.requires_grad_())


def test_the_trainer_gives_the_same_esgd_run_with_and_without_the_fused_tail(monkeypatch):
    from localentropy.committee.presets import get_preset
    rng = np.random.default_rng(0)
    X = rng.choice([-1.0, 1.0], size=(40, 51))
    y = rng.choice([-1, 1], size=40)
    p = get_preset("esgd", K=3, batch_size=10, inner_steps=4, noise=1e-3, max_epochs=3, stop_threshold=0.0)
    calls = []
    monkeypatch.setattr(T, "sgld_tail_", lambda *a: (calls.append(1), sgld_tail_(*a)))
    fused = T.train_committee(X, y, p, restarts=2, seed=3, shared_batches=True)
    assert len(calls) == 3 * 4 * 4  # epochs × outer steps × inner steps: every inner step took the kernel
    monkeypatch.setattr(T, "FUSED_TAIL", False)
    plain = T.train_committee(X, y, p, restarts=2, seed=3, shared_batches=True)
    assert np.allclose(fused.weights, plain.weights, rtol=0, atol=1e-12)
    assert not np.array_equal(fused.weights, T.train_committee(X, y, p, restarts=2, seed=4).weights)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-15), (torch.float32, 3e-7)])
@pytest.mark.parametrize("with_centre", [True, False])
def test_add_unit_equals_the_torch_sequence_to_rounding(dtype, tol, with_centre):
    from localentropy.committee.kernels import add_unit_
    g = torch.Generator().manual_seed(2)
    u = torch.randn(3, 4, 5, 51, generator=g, dtype=dtype)  # 3 replicas of 4 networks of 5 hidden units
    centre = torch.randn(4, 5, 51, generator=g, dtype=dtype) if with_centre else None
    ref = u.clone()
    if with_centre:
        ref.add_(centre, alpha=0.7)  # broadcast over the replicas, as in the trainer
    ref.div_(torch.linalg.vector_norm(ref, dim=-1, keepdim=True))
    add_unit_(u, centre, 0.7)
    assert torch.allclose(u, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_trainers_tanh_gives_an_element_the_same_value_at_any_place(dtype):
    """numpy's SIMD tanh (committee.train._tanh_): an element alone, in a short tail, or inside a long
    array gets bitwise one value (a restart's numbers must not depend on its place in the batch), within
    2 ulp of tanh."""
    from localentropy.committee.train import _tanh_

    x = torch.randn(1003, generator=torch.Generator().manual_seed(3), dtype=torch.float64).mul_(4).to(dtype)
    whole = _tanh_(x.clone())
    for n in (1, 2, 3, 5, 7, 9, 15, 17, 33):
        for s in range(0, 60, 7):
            assert torch.equal(_tanh_(x[s:s + n].clone()), whole[s:s + n])
    ulp = torch.finfo(dtype).eps * whole.abs().clamp(min=torch.finfo(dtype).tiny)
    assert bool(((whole.double() - torch.tanh(x.double())).abs() <= 2 * ulp.double() + 1e-300).all())
