"""The sampling estimators of φ_G(Δ), δ(Δ) and s(d) (entropic.smc, entropic.committee_sampling,
entropic.module_sampling) against ground truths from outside them: exact formulas (one pattern),
brute-force Monte Carlo in weight space (tiny committees), and, in the slow tests, plain Monte Carlo and
BP on real Figure-1 solutions of the Dress/Coat subset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from localentropy import legendre
from localentropy.entropic import EntropicError
from localentropy.entropic import committee_sampling as cs
from localentropy.entropic import module_sampling as ms
from localentropy.entropic import smc


def _committee_instance(K, N, P, seed):
    """±1 patterns, a random reference rescaled to ‖w_k‖² = N, labels = its own committee output."""
    rng = np.random.default_rng(seed)
    X = rng.choice([-1.0, 1.0], size=(P, N))
    W = rng.normal(size=(K, N))
    W *= (math.sqrt(N) / np.linalg.norm(W, axis=1))[:, None]
    votes = np.where(X @ W.T >= 0, 1, -1).sum(1)
    return W, X, np.where(votes >= 0, 1.0, -1.0)


def _brute_force(W, X, y, Delta, samples, seed):
    """φ_G and δ by i.i.d. draws w′ = w̃ + √Δ z in the full weight space (no whitening, no MCMC)."""
    rng = np.random.default_rng(seed)
    K, N = W.shape
    z = rng.normal(size=(samples, K, N))
    lam = np.einsum("skn,pn->spk", W + math.sqrt(Delta) * z, X)
    out = np.where(np.where(lam >= 0, 1, -1).sum(2) >= 0, 1, -1)
    ok = (out == y).all(1)
    p = ok.mean()
    sq = (z[ok] ** 2).sum((1, 2))
    n = K * N
    return (math.log(p) / n, math.sqrt((1 - p) / (p * samples)) / n,
            Delta * sq.mean() / (2 * n), Delta * sq.std() / math.sqrt(ok.sum()) / (2 * n))


@pytest.mark.parametrize("K,N,P", [(3, 4, 6), (1, 10, 8)])
def test_sampler_matches_brute_force_monte_carlo_on_tiny_networks(K, N, P):
    """n ≤ 12 weights, probabilities down to e^{-3}: plain sampling of the Gaussian is the ground truth.
    K = 3 checks the non-nested levels (the committee's solution space is not star-shaped around w̃)."""
    torch.set_num_threads(1)
    W, X, y = _committee_instance(K, N, P, 0)
    deltas = [0.05, 0.5, 2.0]
    r = cs.committee_local_entropy(W, X, y, deltas, chains=2048, groups=8, moves=2, seed=1)
    assert_matches_brute_force(r, W, X, y, deltas, rel=0.05)
    assert np.all(r.phi_G_se > 0) and np.all(np.diff(r.phi_G) < 0)


def assert_matches_brute_force(r, W, X, y, deltas, rel=None):
    """φ_G and δ of a sampler result within 4 combined standard errors of brute-force sampling in weight
    space (100 000 draws); with ``rel``, φ_G also within that fraction (+ 10⁻³)."""
    for i, D in enumerate(deltas):
        phi, phi_se, delta, delta_se = _brute_force(W, X, y, D, 100_000, 2)
        assert abs(r.phi_G[i] - phi) < 4 * math.hypot(r.phi_G_se[i], phi_se), (D, r.phi_G[i], phi)
        if rel is not None:
            assert abs(r.phi_G[i] - phi) < rel * abs(phi) + 1e-3
        assert abs(r.delta[i] - delta) < 4 * math.hypot(r.delta_se[i], delta_se), (D, r.delta[i], delta)


def test_single_pattern_perceptron_is_exact():
    """One pattern, K = 1: Z = Φ(yλ̃/√Δ) and E‖z‖² = N − 1 + 1 − cφ(c)/Φ(c), c = yλ̃/√Δ (the field noise
    x·z/√N is a standard normal; the other N − 1 directions are free)."""
    W = np.array([[0.3, -0.2, 0.5, 0.1, -0.4]])
    X = np.array([[1.0, 1.0, 1.0, -1.0, 1.0]])
    N = 5
    W = W * math.sqrt(N) / np.linalg.norm(W)
    lam = float(X[0] @ W[0]) / math.sqrt(N)
    y = np.array([1.0 if lam >= 0 else -1.0])
    deltas = np.array([0.1, 1.0, 4.0])
    r = cs.committee_local_entropy(W, X, y, deltas, chains=4096, groups=8, moves=2, seed=3)
    for i, D in enumerate(deltas):
        c = abs(lam) / math.sqrt(D)
        Phi = 0.5 * math.erfc(-c / math.sqrt(2))
        pdf = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
        phi_exact = math.log(Phi) / N
        delta_exact = D * (N - c * pdf / Phi) / (2 * N)
        assert abs(r.phi_G[i] - phi_exact) < max(4 * r.phi_G_se[i], 1e-4), (D, r.phi_G[i], phi_exact)
        assert abs(r.delta[i] - delta_exact) < 4 * r.delta_se[i] + 1e-4, (D, r.delta[i], delta_exact)


def test_direct_monte_carlo_matches_brute_force_in_weight_space():
    """The whitened field coordinates (z projected on the span of the inputs) give the law of w′."""
    W, X, y = _committee_instance(3, 4, 6, 0)
    d = cs.committee_direct_monte_carlo(W, X, y, [0.5], samples=100_000, dtype=torch.float64, seed=5)
    phi, phi_se, delta, delta_se = _brute_force(W, X, y, 0.5, 100_000, 6)
    assert abs(d.phi_G[0] - phi) < 4 * math.hypot(d.phi_G_se[0], phi_se)
    assert abs(d.delta[0] - delta) < 4 * math.hypot(d.delta_se[0], delta_se)


def test_legendre_transform_is_the_one_bp_uses():
    """One copy of the formulas (docs/bp.md §5.2, §5.4): localentropy.legendre, used by bp and entropic."""
    from localentropy import bp

    assert bp.shell_entropy is legendre.shell_entropy and bp.ball_entropy is legendre.ball_entropy
    assert smc.shell_entropy is legendre.shell_entropy and smc.ball_entropy is legendre.ball_entropy
    W, X, y = _committee_instance(3, 4, 6, 0)
    r = cs.committee_local_entropy(W, X, y, [0.1, 0.4], chains=64, groups=4, seed=0)
    np.testing.assert_allclose(r.phi, legendre.shell_entropy(r.phi_G, r.delta, r.prior_delta), rtol=1e-12)
    np.testing.assert_allclose(r.phi_ball, legendre.ball_entropy(r.delta, r.phi))
    np.testing.assert_allclose(r.d, r.delta * r.n)


def test_hmc_keeps_every_chain_feasible_and_reflects():
    torch.set_num_threads(1)
    W, X, y = _committee_instance(3, 20, 30, 4)
    walls = cs._CommitteeWalls(W, X, y, torch.float64, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    a = torch.zeros((64, 3, walls.r), dtype=torch.float64)  # z = 0: w̃ itself, feasible
    a, refl = walls.hmc(a, 1.0, 5, gen)
    assert refl > 0
    assert bool(walls.feasible(walls.fields(a), 1.0).all())


@pytest.mark.parametrize("kwargs,match", [
    ({"deltas": [0.1, 0.0]}, "Δ > 0"),
    ({"deltas": [0.5, 0.1]}, "strictly increasing"),
    ({"deltas": [float("nan")]}, "Δ > 0"),
    ({"chains": 30, "groups": 4}, "multiple of groups"),
    ({"keep": 1.0}, "keep"),
    ({"moves": 0}, "moves"),
])
def test_bad_arguments_raise_entropic_error_naming_them(kwargs, match):
    W, X, y = _committee_instance(3, 4, 6, 0)
    args = {"deltas": [0.1], "chains": 64, "groups": 4} | kwargs
    with pytest.raises(EntropicError, match=match):
        cs.committee_local_entropy(W, X, y, **args)


def test_bad_inputs_raise_entropic_error():
    W, X, y = _committee_instance(3, 4, 6, 0)
    with pytest.raises(EntropicError, match="NaN"):
        cs.committee_local_entropy(np.where(W > 0, np.nan, W), X, y, [0.1])
    with pytest.raises(EntropicError, match="shape"):
        cs.committee_local_entropy(W, X[:, :3], y, [0.1])
    with pytest.raises(EntropicError, match="odd"):
        cs.committee_local_entropy(W[:2], X, y, [0.1])
    with pytest.raises(EntropicError, match="misclassifies 1"):
        cs.committee_local_entropy(W, X, np.concatenate([-y[:1], y[1:]]), [0.1])


# --- real Figure-1 solutions (P = 500, K = 9, N = 784): slow -----------------------------------------

def _fig1_solution(setting, restart=0):
    import glob
    from pathlib import Path

    from localentropy.figures.cache import StageCache

    root = Path(__file__).resolve().parents[1] / "results" / "cache" / "fig1"
    cache = StageCache(root)
    for f in sorted(glob.glob(str(root / "train" / "*" / "*.npz"))):
        arrays, meta = cache.load("train", Path(f).stem)
        if meta["setting"] == setting and int(meta["restart"]) == restart:
            assert meta["train_error"] == 0.0
            return arrays["weights"]
    pytest.skip(f"no cached {setting} #{restart} under {root}")


REAL_DELTAS = [0.015625, 0.03515625, 0.0625]  # bp.default_deltas(16)[1:4]
# where 20 000 plain draws hit ≥ 100 times (Z not tiny): points of bp.default_deltas(16)
MC_DELTAS = {"sgd-fast": [0.00390625, 0.015625], "sgd-slow": [0.015625, 0.0625, 0.25],
             "rsgd-fast": [0.0625, 0.25, 1.0]}


@pytest.fixture(scope="module")
def dresscoat():
    from localentropy.data import load_dresscoat

    ds = load_dresscoat()
    return ds.X_train, ds.y_train


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["sgd-fast", "sgd-slow", "rsgd-fast"])
def test_sampler_matches_plain_monte_carlo_on_real_solutions(setting, dresscoat):
    """Where Z(Δ) is not tiny, 20 000 i.i.d. draws of the Gaussian give φ_G without MCMC: the SMC/HMC
    estimate must agree within 4 combined standard errors, δ too."""
    torch.set_num_threads(1)
    X, y = dresscoat
    W = _fig1_solution(setting)
    deltas = MC_DELTAS[setting]
    r = cs.committee_local_entropy(W, X, y, deltas, chains=256, groups=8, moves=2, seed=11)
    d = cs.committee_direct_monte_carlo(W, X, y, deltas, samples=20000, seed=12)
    for i in range(len(deltas)):
        assert d.hits[i] >= 100
        assert abs(r.phi_G[i] - d.phi_G[i]) < 4 * math.hypot(r.phi_G_se[i], d.phi_G_se[i]), (i, r.phi_G, d.phi_G)
        assert abs(r.delta[i] - d.delta[i]) < 4 * math.hypot(r.delta_se[i], d.delta_se[i]) + 1e-9


@pytest.mark.slow
def test_sampler_orders_the_solutions_as_bp(dresscoat):
    """SGD fast is sharper than SGD slow, which is sharper than rSGD fast: by BP and by sampling.
    (Over the whole Figure-1 range, Δ up to 1, the benchmark checks the same at 16 Δ.)"""
    from localentropy import bp

    torch.set_num_threads(1)
    X, y = dresscoat
    deltas = REAL_DELTAS[1:]
    phi_s, phi_b = {}, {}
    for setting in ("sgd-fast", "sgd-slow", "rsgd-fast"):
        W = _fig1_solution(setting)
        phi_s[setting] = cs.committee_local_entropy(W, X, y, deltas, chains=256, groups=8, seed=13).phi_G
        phi_b[setting] = bp.local_entropy_curve(W, X, y, deltas).phi_G
    for i in range(len(deltas)):
        assert phi_s["sgd-fast"][i] < phi_s["sgd-slow"][i] < phi_s["rsgd-fast"][i]
        assert phi_b["sgd-fast"][i] < phi_b["sgd-slow"][i] < phi_b["rsgd-fast"][i]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: on the real Dress/Coat solutions |φ_G| by BP exceeds that of "
                   "exact sampling by 5–90 % (docs/sampling.md); docs/bp.md §8.1, §8.3")
def test_bp_agrees_with_plain_monte_carlo_within_5_percent(dresscoat):
    """BP's φ_G within 5 % of plain Monte Carlo on a real solution: measured to fail, hence the strict xfail
    (the sampler agrees with plain Monte Carlo where BP does not: the tests above)."""
    from localentropy import bp

    X, y = dresscoat
    W = _fig1_solution("sgd-slow")
    d = cs.committee_direct_monte_carlo(W, X, y, REAL_DELTAS, samples=20000, seed=14)
    b = bp.local_entropy_curve(W, X, y, REAL_DELTAS)
    np.testing.assert_allclose(b.phi_G, d.phi_G, rtol=0.05)


def test_checkpoint_resumes_to_the_same_result(tmp_path):
    W, X, y = _committee_instance(3, 4, 6, 0)
    kw = dict(chains=64, groups=4, seed=2)
    full = cs.committee_local_entropy(W, X, y, [0.1, 0.5, 1.0], **kw)
    ck = tmp_path / "le.npz"

    def stop(d):  # interrupt after the second Δ (its checkpoint is written before progress is called)
        if d["index"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        cs.committee_local_entropy(W, X, y, [0.1, 0.5, 1.0], checkpoint=ck, progress=stop, **kw)
    assert ck.exists()
    seen = []
    resumed = cs.committee_local_entropy(W, X, y, [0.1, 0.5, 1.0], checkpoint=ck, progress=seen.append, **kw)
    assert [d["index"] for d in seen] == [2]
    np.testing.assert_allclose(resumed.phi_G, full.phi_G, rtol=1e-12)
    np.testing.assert_allclose(resumed.delta, full.delta, rtol=1e-12)
    with pytest.raises(EntropicError, match="different"):
        cs.committee_local_entropy(W, X, y, [0.1, 0.5, 1.0], checkpoint=ck, chains=128, groups=4, seed=2)


class _Committee(torch.nn.Module):
    """The committee machine as an nn.Module (sign units, second layer +1): paper 000, Eq. 7."""

    def __init__(self, W):
        super().__init__()
        self.fc = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.as_tensor(W))

    def forward(self, x):
        return torch.sign(self.fc(x)).sum(1)


def test_any_module_estimator_matches_brute_force_on_a_tiny_committee():
    """The general path (elliptical slice sampling, forward passes) on the same tiny instance as above."""
    torch.set_num_threads(1)
    W, X, y = _committee_instance(3, 4, 6, 0)
    model = _Committee(W).double()
    deltas = [0.05, 0.5]
    r = ms.local_entropy(model, torch.tensor(X), torch.tensor(y), deltas, chains=128, groups=8, moves=3, seed=4)
    assert r.n == 12 and r.settings["errors_reference"] == 0
    assert_matches_brute_force(r, W, X, y, deltas)


def test_any_module_estimator_rejects_bad_arguments():
    W, X, y = _committee_instance(3, 4, 6, 0)
    model = _Committee(W).double()
    with pytest.raises(EntropicError, match="Δ > 0"):
        ms.local_entropy(model, torch.tensor(X), torch.tensor(y), [-1.0])
    with pytest.raises(EntropicError, match="same number"):
        ms.local_entropy(model, torch.tensor(X), torch.tensor(y[:3]), [0.1])
    with pytest.raises(EntropicError, match="matches nothing|no parameter|match"):
        ms.local_entropy(model, torch.tensor(X), torch.tensor(y), [0.1], params="nonexistent")
    with pytest.raises(EntropicError, match="model is on cpu: move it"):
        ms.local_entropy(model, torch.tensor(X), torch.tensor(y), [0.1], device="meta")


def test_error_bar_is_not_zero_when_no_particle_is_lost():
    """A tiny Δ around a solution with margins: every particle survives; the error bar is then the
    binomial one of M particles (≈ 1/M per level in ln Z), not the groups' spread (0)."""
    W, X, y = _committee_instance(3, 4, 6, 0)
    r = cs.committee_local_entropy(W, X, y, [1e-6], chains=64, groups=4, seed=0)
    assert r.phi_G[0] == 0.0
    assert r.phi_G_se[0] * r.n == pytest.approx(1 / 64, rel=0.05)


class _TwoLayer(torch.nn.Module):
    """A small ReLU net without biases (so that scaling a layer's weights scales its output)."""

    def __init__(self, d, h, c, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc1 = torch.nn.Linear(d, h, bias=False)
        self.fc2 = torch.nn.Linear(h, c, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.randn(h, d, generator=g) / math.sqrt(d))
            self.fc2.weight.copy_(torch.randn(c, h, generator=g) / math.sqrt(h))

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _two_layer_task(seed=0, n=60, d=8, h=6, c=3):
    model = _TwoLayer(d, h, c, seed).double()
    g = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(X).argmax(1)  # the reference classifies every sample
    return model, X, y


def test_chains_evaluated_together_count_the_same_errors_as_one_by_one():
    """The vmapped evaluation (a layer before the selection computed once) equals the per-chain loop."""
    model, X, y = _two_layer_task()
    names = ["fc2.weight"]
    space = ms._ModelSpace(model, X, y, names, 17, torch.float64, torch.device("cpu"), chain_batch=5)
    z = torch.randn(12, space.n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    thetas = space.theta(z, 0.5)
    batched = space.errors_many(thetas)
    assert space._vmap  # the vmapped path ran
    one_by_one = torch.tensor([space._errors_one(t) for t in thetas])
    assert torch.equal(batched, one_by_one)
    assert batched.max() > 0  # the comparison is not between all-zero counts


def test_relative_scale_makes_the_curve_invariant_to_a_layer_scale():
    """With scale="relative" a layer's weights multiplied by 10 (the classifier unchanged: ReLU, no
    bias) give the same φ_G and δ; with absolute units they do not."""
    model, X, y = _two_layer_task()
    big, _, _ = _two_layer_task()
    with torch.no_grad():
        big.fc2.weight.mul_(10.0)
    kw = dict(params=["fc2"], chains=32, groups=4, seed=5, deltas=[0.05, 0.3])
    a = ms.local_entropy(model, X, y, scale="relative", **kw)
    b = ms.local_entropy(big, X, y, scale="relative", **kw)
    np.testing.assert_allclose(a.phi_G, b.phi_G, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.delta, b.delta, rtol=1e-9)
    assert a.phi_G[-1] < 0 and a.settings["scale"] == "relative"
    c = ms.local_entropy(big, X, y, scale="absolute", **kw)
    assert c.phi_G[-1] > a.phi_G[-1]  # 10× larger weights: the same absolute noise is relatively small
    with pytest.raises(EntropicError, match="scale"):
        ms.local_entropy(model, X, y, scale="per-weight", **kw)


def test_stop_below_ends_the_curve_at_the_first_delta_past_the_budget():
    """The same run with and without stop_below agrees on the Δ it computed, and stops at the first Δ
    whose ln P = n φ_G is below the budget."""
    model, X, y = _two_layer_task()
    kw = dict(params=["fc2"], chains=64, groups=4, seed=5, scale="relative")
    deltas = [0.003, 0.01, 0.1, 0.5]
    full = ms.local_entropy(model, X, y, deltas, **kw)
    lnP = full.phi_G * full.n
    budget = float(lnP[2]) * 0.5  # between the 2nd and the 3rd Δ
    assert lnP[1] > budget > lnP[2]
    short = ms.local_entropy(model, X, y, deltas, stop_below=budget, **kw)
    assert short.prior_delta.tolist() == deltas[:3]
    np.testing.assert_allclose(short.phi_G, full.phi_G[:3], rtol=1e-12)
    # a Δ whose levels fall below 2·budget is abandoned: the curve ends at the Δ before it
    far = [0.01, 0.1, 8.0]  # ln P ≈ −3, −6, then far below −12
    cut = ms.local_entropy(model, X, y, far, stop_below=-7.0, **kw)
    assert cut.prior_delta.tolist() == far[:2]
    assert cut.phi_G[1] * cut.n > -7.0
    assert cut.levels[-1] < 8.0  # the levels towards Δ = 8 stopped at ln P < −14
    with pytest.raises(EntropicError, match="stop_below"):
        ms.local_entropy(model, X, y, deltas, stop_below=1.0, **kw)


class _BoundarySpace:
    """A space whose particles never move and whose feasible set ends at Δ* for all but a quarter of
    them: past Δ* the bisection finds no level where half stay feasible, so the levels creep up to Δ*
    (the stall that `_smc` must detect instead of grinding on)."""

    device, dtype = torch.device("cpu"), torch.float64

    def __init__(self, edge):
        self.edge = edge

    def init(self, M, gen):
        return torch.zeros(M, 1, dtype=self.dtype)

    def aux(self, state):
        return state

    def feasible(self, aux, Delta):
        ok = torch.ones(aux.shape[0], dtype=torch.bool)
        if Delta > self.edge:
            ok[aux.shape[0] // 4:] = False
        return ok

    def move(self, state, Delta, moves, gen):
        return state, 0.0

    def sq(self, state):
        return torch.ones(state.shape[0], dtype=torch.float64)


def test_a_stalled_level_sequence_ends_the_curve_and_says_where():
    edge = 0.05
    out = smc.run_smc(_BoundarySpace(edge), np.array([0.01, 0.2]), 16, 4, 0.5, 1, 0, 10, None, "x", None)
    assert list(out["prior_delta"]) == [0.01]  # the Δ past the stall is not reported
    assert edge * (1 - 1e-2) <= out["stalled_at"] <= edge
    assert out["phi_G"][0] == 0.0  # every particle stayed feasible up to there
    with pytest.raises(EntropicError, match="stalled"):
        smc.run_smc(_BoundarySpace(edge), np.array([0.2]), 16, 4, 0.5, 1, 0, 10, None, "x", None)


class _OneGroupLeaves(_BoundarySpace):
    """Past Δ* the first group's particles (a quarter of all: the groups are consecutive blocks) all become
    infeasible, the others stay: the pooled fraction (3/4) allows the level, the group would be lost."""

    def feasible(self, aux, Delta):
        ok = torch.ones(aux.shape[0], dtype=torch.bool)
        if Delta > self.edge:
            ok[: aux.shape[0] // 4] = False
        return ok


def test_a_level_where_a_whole_group_would_leave_the_feasible_set_is_not_taken():
    edge = 0.05
    nxt = smc._next_level(_OneGroupLeaves(edge), torch.zeros(16, 1), 0.01, 0.2, 0.5, groups=4)
    assert edge * (1 - 1e-2) <= nxt <= edge  # not 0.2, where group 0 would have no particle left
    assert smc._next_level(_OneGroupLeaves(edge), torch.zeros(16, 1), 0.01, 0.2, 0.5, groups=1) == 0.2  # pooled only


class _Biased(torch.nn.Module):
    """A ReLU net with biases; ``tied`` also uses fc1's weight outside fc1 (so its output is not the whole
    effect of fc1's weight: the first-layer shortcut must refuse it)."""

    def __init__(self, d=8, h=6, c=3, seed=0, tied=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc1, self.fc2, self.tied = torch.nn.Linear(d, h), torch.nn.Linear(h, c), tied
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))

    def forward(self, x):
        out = self.fc2(torch.relu(self.fc1(x)))
        return out + torch.nn.functional.linear(x, self.fc1.weight[:out.shape[1]]) if self.tied else out


class _Shifted(_Biased):
    def __init__(self):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.full((8,), 0.1))

    def forward(self, x):
        return super().forward(x + self.shift)


class _Conv(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(2, 3, 3)
        self.fc = torch.nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def _labelled(model, X):
    with torch.no_grad():
        return model(X).argmax(1)


def _both_spaces(model, X, y, names, scale):
    kw = dict(scale=scale, chain_batch=5)
    fast = ms._ModelSpace(model, X, y, names, 17, torch.float64, torch.device("cpu"), **kw)
    slow = ms._ModelSpace(model, X, y, names, 17, torch.float64, torch.device("cpu"), first_layer=False, **kw)
    return fast, slow


@pytest.mark.parametrize("names", [["fc2.weight"], ["fc1.weight"], ["fc1.weight", "fc1.bias", "fc2.weight"],
                                   ["fc2.weight", "fc1.bias"], ["conv.weight", "conv.bias"],
                                   ["conv.bias", "fc.weight"]])
@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_first_layer_shortcut_counts_the_errors_of_the_full_forward_pass(names, scale):
    """base + √Δ L(s ⊙ z) in place of the first selected layer (entropic.first_layer) gives the same
    error counts as setting θ̃ + √Δ s ⊙ z and running the network, for Linear and Conv2d layers, weights
    and biases, any order of the selection."""
    if names[0].startswith("conv") or names[0] == "conv.bias":
        model = _Conv().double()
        X = torch.randn(40, 2, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    else:
        model = _Biased().double()
        X = torch.randn(60, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = _labelled(model, X)
    fast, slow = _both_spaces(model, X, y, names, scale)
    assert fast.first is not None and slow.first is None
    first_module = {"fc2.weight": "fc1", "conv.bias": "conv"}.get(names[0], names[0].rpartition(".")[0])
    if names == ["fc2.weight"]:
        first_module = "fc2"
    assert fast.first.name == first_module and sorted(fast.names) == sorted(names)
    z = torch.randn(12, fast.n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    # the same perturbation in the slow space's column order
    offs = dict(zip(fast.names, np.cumsum([0] + fast.sizes[:-1])))
    z_slow = torch.cat([z[:, offs[k]:offs[k] + m] for k, m in zip(slow.names, slow.sizes)], 1)
    for Delta in (0.05, 0.5, 2.0):
        got = fast.feasible(fast.aux(z), Delta)
        want = slow.feasible(slow.aux(z_slow), Delta)
        assert torch.equal(got, want)
        errs = slow.errors_many(slow.theta(z_slow, Delta))
        assert errs.max() > fast.E0  # the comparison includes infeasible chains
        # the shortcut's chain-by-chain evaluation (models vmap cannot trace) counts the same
        few = z[:5]
        pre = fast.first.base + math.sqrt(Delta) * fast.aux(few)[1]
        rest = fast._rest(few[:, fast.first.size:], Delta)
        assert torch.equal(fast._errors_each(rest, pre, vmapped=False), errs[:5])
    # and the moves: the same random numbers and accepted angles
    if fast.names == slow.names:
        start = torch.zeros_like(z)  # the reference: feasible at every Δ
        a, sa = fast.move(start, 0.3, 2, torch.Generator().manual_seed(0))
        b, sb = slow.move(start, 0.3, 2, torch.Generator().manual_seed(0))
        assert sa == sb and sa > 0
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert bool(fast.feasible(fast.aux(a), 0.3).all())


def test_first_layer_shortcut_refuses_a_layer_used_elsewhere_and_large_outputs():
    """A weight also used outside its module fails the numerical check (the general path is kept); so
    does a first layer whose outputs for every chain would exceed first_layer_bytes."""
    model = _Biased(tied=True).double()
    X = torch.randn(60, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = _labelled(model, X)
    fast, _ = _both_spaces(model, X, y, ["fc1.weight"], "absolute")
    assert fast.first is None
    r = ms.local_entropy(model, X, y, [0.01], params=["fc1"], chains=16, groups=4, seed=0)
    assert r.settings["first_layer"] is None
    shifted = _Shifted().double()  # a parameter of the model itself, used before fc1
    fast, _ = _both_spaces(shifted, X, _labelled(shifted, X), ["shift", "fc1.weight"], "absolute")
    assert fast.first is None and fast.names == ["shift", "fc1.weight"]
    model = _Biased().double()
    fast, _ = _both_spaces(model, X, y, ["fc1.weight"], "absolute")
    assert fast.first is not None
    fast.first_layer_bytes = 100
    fast.init(16, torch.Generator().manual_seed(0))
    assert fast.first is None


def test_the_curve_is_the_same_with_and_without_the_first_layer_shortcut(monkeypatch):
    """Whole curves: the shortcut changes how the first layer's outputs are computed, not the sampler's
    random numbers or decisions (float64; a decision that a rounding difference flips would show here)."""
    model, X, y = _two_layer_task()
    assert_shortcut_gives_the_general_curve(monkeypatch, model, X, y, "fc2", params=["fc2"], chains=32, groups=4,
                                            seed=5, deltas=[0.05, 0.3], scale="relative")


def assert_shortcut_gives_the_general_curve(monkeypatch, model, X, y, first, **kw):
    """The curve with the first-layer shortcut (on layer ``first``) equals the general path's."""
    fast = ms.local_entropy(model, X, y, **kw)
    monkeypatch.setattr(ms._ModelSpace, "__init__", _without_shortcut(ms._ModelSpace.__init__))
    slow = ms.local_entropy(model, X, y, **kw)
    assert fast.settings["first_layer"] == first and slow.settings["first_layer"] is None
    np.testing.assert_allclose(fast.phi_G, slow.phi_G, rtol=1e-12)
    np.testing.assert_allclose(fast.delta, slow.delta, rtol=1e-9)
    assert fast.phi_G[-1] < 0


def _without_shortcut(init):
    def wrapped(self, *args, **kwargs):
        kwargs["first_layer"] = False
        init(self, *args, **kwargs)
    return wrapped
