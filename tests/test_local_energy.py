"""Local energy δE(w, σ) (000, Eq. 4) against closed forms, and its batching/determinism contract."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.local_energy import classification_error, local_energy


class Quadratic(nn.Module):
    """E(w) = ½ Σ h_i (w_i − w*_i)²: forward(w*) returns w − w*, the criterion weighs by h."""

    def __init__(self, w):
        super().__init__()
        self.weight = nn.Parameter(w.clone())

    def forward(self, w_star):
        return self.weight - w_star


def quadratic_energy(out, h):
    return 0.5 * (h * out**2).sum(-1).mean()


def no_error(out, _):
    return torch.zeros((), dtype=torch.float64)


N_Q = 40
H = torch.linspace(0.2, 3.0, N_Q, dtype=torch.float64)
W_STAR = torch.linspace(-2.0, 2.0, N_Q, dtype=torch.float64) + 0.3


@pytest.mark.parametrize("at_minimum", [True, False])
def test_additive_local_energy_of_a_quadratic_is_half_sigma2_trace(at_minimum):
    # E(w + σz) − E(w) = σ z·∇E + ½σ² Σ h_i z_i²; its mean is ½σ² Σ h_i, at or off the minimum
    w = W_STAR if at_minimum else W_STAR + 0.5
    model = Quadratic(w)
    sig = [0.0, 0.05, 0.3]
    M = 400
    r = local_energy(model, (W_STAR[None], H[None]), sig, draws=M, noise="additive",
                     criterion=quadratic_energy, error_fn=no_error, seed=1)
    assert r.loss0 == pytest.approx(0.0 if at_minimum else 0.5 * 0.25 * H.sum().item())
    assert r.delta_loss[0] == 0.0
    for s, d, se in zip(sig[1:], r.delta_loss[1:], r.delta_loss_se[1:]):
        exact = 0.5 * s**2 * H.sum().item()
        assert abs(d - exact) < 4 * se
        if at_minimum:  # Var(½σ² Σ h z²) = ½σ⁴ Σ h²: the standard error is right too
            se_exact = s**2 * math.sqrt(0.5 * (H**2).sum().item() / M)
            assert se == pytest.approx(se_exact, rel=0.2)


def test_multiplicative_local_energy_at_the_minimum_is_half_sigma2_sum_h_wstar2():
    # w = w*: E(w* + σ z⊙w*) = ½ σ² Σ h_i w*_i² z_i², mean ½σ² Σ h_i w*_i²
    model = Quadratic(W_STAR)
    sig = [0.1, 0.5]
    r = local_energy(model, (W_STAR[None], H[None]), sig, draws=400, criterion=quadratic_energy,
                     error_fn=no_error, seed=2)
    for s, d, se in zip(sig, r.delta_loss, r.delta_loss_se):
        exact = 0.5 * s**2 * (H * W_STAR**2).sum().item()
        assert abs(d - exact) < 4 * se


def perceptron_problem(seed=0, N=20, P=300, bias=3.0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(N, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, N, generator=g, dtype=torch.float64))
        model.bias.fill_(bias)
    x = torch.randn(P, N, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = torch.sign(model(x)).squeeze(1).to(torch.int8)  # ±1 teacher labels: E_train(w) = 0
    return model, x, y


@pytest.mark.parametrize("noise", ["multiplicative", "additive"])
def test_perceptron_error_rise_matches_the_gaussian_closed_form(noise):
    # with only the weight perturbed, the field w·x + b gets Gaussian noise of std σ‖w⊙x‖
    # (multiplicative) or σ‖x‖ (additive): the sample flips with probability Φ(−|w·x + b| / std).
    # The bias is large enough that perturbing it too would miss this by ~10 standard errors.
    model, x, y = perceptron_problem()
    w, b = model.weight.detach()[0], model.bias.item()
    field = (x @ w + b).abs()
    scale = (x * w).norm(dim=1) if noise == "multiplicative" else x.norm(dim=1)
    sig = [0.2, 0.6]
    r = local_energy(model, (x, y), sig, draws=300, noise=noise, seed=3, batch_draws=100)
    assert r.error0 == 0.0 and r.loss0 is None  # single output: sign agreement, no default loss
    assert r.params == ("weight",)
    for s, d, se in zip(sig, r.delta_error, r.delta_error_se):
        exact = norm.cdf(-(field / (s * scale)).numpy()).mean()
        assert abs(d - exact) < 4 * se


def mlp_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 4)).double()
    x = torch.randn(60, 10, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (60,), generator=g)
    return model, x, t


def test_batched_draws_equal_the_per_draw_loop_for_the_same_seed():
    model, x, t = mlp_problem()
    kw = dict(draws=9, seed=4, params="3")
    a = local_energy(model, (x, t), [0.1, 0.8], batch_draws=4, **kw)
    b = local_energy(model, (x, t), [0.1, 0.8], vectorize=False, **kw)
    c = local_energy(model, (x, t), [0.1, 0.8], batch_draws=9, **kw)
    assert (a.method, b.method) == ("vmap", "loop")
    np.testing.assert_array_equal(a.errors, b.errors)
    np.testing.assert_array_equal(a.errors, c.errors)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-12)
    np.testing.assert_allclose(a.delta_loss_se, b.delta_loss_se, rtol=1e-9)
    assert np.ptp(a.errors[1]) > 0  # the noise does something (untrained net: sign not fixed)


def test_data_loader_gives_the_same_profile_as_tensors():
    model, x, t = mlp_problem(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, t), batch_size=25)
    a = local_energy(model, (x, t), [0.5], draws=4, seed=0)
    b = local_energy(model, loader, [0.5], draws=4, seed=0)
    c = local_energy(model, (x, t), [0.5], draws=4, seed=0, batch_size=7)
    assert a.error0 == b.error0 and a.loss0 == pytest.approx(b.loss0, rel=1e-12)
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-12)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-12)
    np.testing.assert_allclose(a.losses, c.losses, rtol=1e-12)


def test_deterministic_for_a_seed_and_different_across_seeds():
    model, x, t = mlp_problem(2)
    a = local_energy(model, (x, t), [0.3], draws=5, seed=8)
    b = local_energy(model, (x, t), [0.3], draws=5, seed=8)
    c = local_energy(model, (x, t), [0.3], draws=5, seed=9)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.array_equal(a.losses, c.losses)
    g = torch.Generator().manual_seed(8)
    d = local_energy(model, (x, t), [0.3], draws=5, generator=g)
    np.testing.assert_array_equal(a.losses, d.losses)


def test_model_evaluated_in_eval_mode_and_every_mode_restored():
    model, x, t = mlp_problem(3)
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(m.training))
    model.train()
    model[3].eval()  # a mixed state must come back as it was
    a = local_energy(model, (x, t), [0.0, 0.2], draws=3, seed=0)
    assert seen and not any(seen)
    assert model.training and model[2].training and not model[3].training
    # dropout off: σ = 0 reproduces the unperturbed values exactly
    assert np.all(a.errors[0] == a.error0) and np.allclose(a.losses[0], a.loss0, rtol=1e-14)
    ref = nn.functional.cross_entropy(model.eval()(x), t).item()
    assert a.loss0 == pytest.approx(ref, rel=1e-12)
    assert a.error0 == pytest.approx(classification_error(model(x), t).item())


def test_committee_like_module_with_a_single_weight_matrix():
    class Committee(nn.Module):
        def __init__(self, K=3, N=21):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(K, N))

        def forward(self, x):
            return torch.sign(torch.sign(x @ self.weight.T / math.sqrt(x.shape[1])).sum(dim=1))

    torch.manual_seed(0)
    cm = Committee()
    x = torch.sign(torch.randn(100, 21))
    y = cm(x).to(torch.int8)
    r = local_energy(cm, (x, y), np.linspace(0, 1, 4), draws=20, seed=0)
    assert r.method == "vmap" and r.params == ("weight",)
    assert r.error0 == 0.0 and r.delta_error[0] == 0.0
    assert 0 < r.delta_error[1] < r.delta_error[3] <= 1
    assert cm.weight.grad is None


def test_progress_reports_every_block_of_draws():
    model, x, t = mlp_problem()
    calls = []
    local_energy(model, (x, t), [0.1, 0.2], draws=5, batch_draws=2, seed=0,
                 progress=lambda d, n: calls.append((d, n)))
    assert calls == [(2, 10), (4, 10), (5, 10), (7, 10), (9, 10), (10, 10)]


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(sigmas=[0.1, float("nan")]), "nan"),
        (dict(sigmas=[-0.5]), "-0.5"),
        (dict(sigmas=[]), "empty"),
        (dict(draws=1), "draws"),
        (dict(batch_draws=0), "batch_draws"),
        (dict(noise="uniform"), "uniform"),
        (dict(params="fc9"), "fc9"),
        (dict(params=["0.bias"]), "empty"),
    ],
)
def test_bad_arguments_raise_entropic_error_naming_the_value(kwargs, word):
    model, x, t = mlp_problem()
    args = dict(sigmas=[0.1], draws=3)
    args.update(kwargs)
    sig = args.pop("sigmas")
    with pytest.raises(EntropicError, match=word):
        local_energy(model, (x, t), sig, **args)


def test_one_shot_iterator_data_is_refused():
    model, x, t = mlp_problem()
    with pytest.raises(EntropicError, match="re-iterable"):
        local_energy(model, iter([(x, t)]), [0.1], draws=2)


def test_model_that_vmap_cannot_handle_falls_back_to_the_loop():
    class DataDependent(nn.Module):  # .item() inside forward cannot be vmapped
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(10, 4).double()

        def forward(self, x):
            out = self.lin(x)
            return out * (2.0 if out.sum().item() > 0 else 1.0)

    torch.manual_seed(0)
    model = DataDependent()
    _, x, t = mlp_problem()
    a = local_energy(model, (x, t), [0.3], draws=4, seed=0)
    b = local_energy(model, (x, t), [0.3], draws=4, seed=0, vectorize=False)
    assert a.method == "loop"
    np.testing.assert_array_equal(a.losses, b.losses)
