"""PLA (002, Eq. 23) and PLEA (002, Eq. 22): values and gradients against direct computations."""

import copy
import math

import pytest
import torch
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.params import select_parameters
from localentropy.entropic.partial import PLA, PLEA


def make_problem(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.7)
    x = torch.randn(12, 6, generator=g, dtype=dtype)
    t = torch.randint(0, 3, (12,), generator=g)
    return model, x, t


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def point_loss_and_grad(model, deltas, x, t, criterion):
    """L and ∇L at W + Δ, by shifting a copy of the model in place (independent of functional_call)."""
    m = copy.deepcopy(model)
    m.zero_grad()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n in deltas:
                p.add_(deltas[n])
    loss = criterion(m(x), t)
    loss.backward()
    return loss.item(), grads(m)


def one_by_one(model, pert, x, t, criterion, y):
    """(losses, grads) at the y+1 points W, W + ΔW_1, ..., W + ΔW_y."""
    points = [{}] + [{n: d[a] for n, d in pert.items()} for a in range(y)]
    return [point_loss_and_grad(model, dlt, x, t, criterion) for dlt in points]


def test_pla_with_zero_radius_is_the_plain_loss_and_gradient():
    model, x, t = make_problem()
    ce = nn.CrossEntropyLoss()
    loss = ce(model(x), t)
    loss.backward()
    plain = grads(model)
    model.zero_grad()
    pla = PLA(model, ce, y=3, R=0.0, seed=0)
    value = pla(x, t)
    value.backward()
    assert value.item() == pytest.approx(loss.item(), rel=1e-12)
    for n, g in grads(model).items():
        torch.testing.assert_close(g, plain[n], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("vectorize", [True, False])
def test_pla_gradient_is_the_average_of_the_point_gradients(vectorize):
    model, x, t = make_problem(1)
    ce = nn.CrossEntropyLoss()
    y = 4
    pla = PLA(model, ce, y=y, R=0.3, params="0", seed=5, vectorize=vectorize)
    value = pla(x, t)
    value.backward()
    got = grads(model)
    points = one_by_one(model, pla.last_perturbations, x, t, ce, y)
    assert value.item() == pytest.approx(sum(l for l, _ in points) / (y + 1), rel=1e-12)
    for n in got:
        expect = sum(g[n] for _, g in points) / (y + 1)
        torch.testing.assert_close(got[n], expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("vectorize", [True, False])
def test_plea_value_and_gradient_match_the_boltzmann_weighted_average(vectorize):
    # derived: ∇ −log mean exp(−L_a) = Σ_a p_a ∇L_a with p_a = exp(−L_a)/Σ_b exp(−L_b)
    model, x, t = make_problem(2)
    ce = nn.CrossEntropyLoss()
    y = 5
    plea = PLEA(model, ce, y=y, R=0.8, seed=7, vectorize=vectorize)
    value = plea(x, t)
    value.backward()
    got = grads(model)
    points = one_by_one(model, plea.last_perturbations, x, t, ce, y)
    losses = [l for l, _ in points]
    assert max(losses) - min(losses) > 0.05  # the weights p_a really differ
    direct = -math.log(sum(math.exp(-l) for l in losses) / (y + 1))
    assert value.item() == pytest.approx(direct, rel=1e-12)
    z = sum(math.exp(-l) for l in losses)
    p = [math.exp(-l) / z for l in losses]
    for n in got:
        expect = sum(pa * g[n] for pa, (_, g) in zip(p, points))
        torch.testing.assert_close(got[n], expect, rtol=1e-10, atol=1e-12)


def test_plea_is_stable_for_huge_losses():
    model, x, t = make_problem(3)
    big = lambda out, tt: nn.functional.cross_entropy(out, tt) + 2000.0  # exp(−L) underflows
    plea = PLEA(model, big, y=3, R=0.1, seed=0)
    value = plea(x, t)
    value.backward()
    assert math.isfinite(value.item()) and value.item() > 2000.0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_only_the_chosen_weights_are_perturbed_and_the_model_is_not_mutated():
    model, x, t = make_problem(4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    R = 0.05
    pla = PLA(model, nn.CrossEntropyLoss(), y=6, R=R, params=["2"], seed=0)
    assert list(pla.params) == ["2.weight"]  # the bias of layer 2 is excluded by default
    pla(x, t).backward()
    pert = pla.last_perturbations
    assert set(pert) == {"2.weight"}
    d = pert["2.weight"]
    assert d.shape == (6, 3, 5) and d.abs().max() <= R and d.abs().min() > 0
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n])
    # the loss seen equals a direct evaluation with only 2.weight shifted (biases untouched)
    points = one_by_one(model, pert, x, t, nn.CrossEntropyLoss(), 6)
    torch.testing.assert_close(pla.last_losses, torch.tensor([l for l, _ in points], dtype=torch.float64))


def test_predicate_and_bias_selection():
    model, _, _ = make_problem()
    assert list(select_parameters(model)) == ["0.weight", "2.weight"]
    assert list(select_parameters(model, include_biases=True)) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(select_parameters(model, lambda n, p: p.shape[0] == 3)) == ["2.weight"]
    assert list(select_parameters(model, [model[0].weight])) == ["0.weight"]
    assert list(select_parameters(model, model[2])) == ["2.weight"]
    assert list(select_parameters(model, ["0", model[2].weight])) == ["0.weight", "2.weight"]
    with pytest.raises(EntropicError, match="not parameters"):
        select_parameters(model, [nn.Parameter(torch.zeros(2))])


def test_pla_noise_is_uniform_in_the_cube_against_the_quadratic_closed_form():
    # L(W) = ½ Σ h_i w_i²: E_Δ L(W + Δ) − L(W) = ½ Σ h_i R²/3 for Δ_i uniform in [−R, R], so the
    # mean of PLA − L over draws is y/(y+1) · (R²/6) Σ h_i.
    class Quad(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.linspace(-1, 1, 50, dtype=torch.float64))

        def forward(self, h):
            return h * self.weight**2

    model = Quad()
    h = torch.linspace(0.5, 2.0, 50, dtype=torch.float64)
    crit = lambda out, _: 0.5 * out.sum()
    y, R, calls = 4, 0.3, 400
    pla = PLA(model, crit, y=y, R=R, seed=11)
    base = crit(model(h), None).item()
    diffs = torch.tensor([pla(h, None).item() - base for _ in range(calls)])
    expect = y / (y + 1) * R**2 / 6 * h.sum().item()
    se = diffs.std().item() / math.sqrt(calls)
    assert abs(diffs.mean().item() - expect) < 4 * se


def test_works_with_an_optimizer_and_a_closure():
    model, x, t = make_problem(5)
    pla = PLEA(model, nn.CrossEntropyLoss(), y=2, R=0.01, params="0", seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    start = nn.functional.cross_entropy(model(x), t).item()

    def closure():
        opt.zero_grad()
        loss = pla(x, t)
        loss.backward()
        return loss

    for _ in range(30):
        opt.step(closure)
    assert nn.functional.cross_entropy(model(x), t).item() < start - 0.1


def test_same_seed_same_perturbations():
    model, x, t = make_problem()
    a = PLA(model, nn.CrossEntropyLoss(), y=3, R=0.1, seed=9)
    b = PLA(model, nn.CrossEntropyLoss(), y=3, R=0.1, seed=9)
    assert a(x, t).item() == b(x, t).item()
    assert torch.equal(a.last_perturbations["0.weight"], b.last_perturbations["0.weight"])


def test_batchnorm_in_train_mode_falls_back_to_the_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    x, t = torch.randn(8, 4), torch.randint(0, 2, (8,))
    pla = PLA(model, nn.CrossEntropyLoss(), y=2, R=0.01, seed=0)
    pla(x, t).backward()
    assert model[1].num_batches_tracked.item() == 3  # one update per point, none from the vmap try
    assert model[0].weight.grad is not None


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(R=-0.1), "-0.1"),
        (dict(R=float("nan")), "nan"),
        (dict(y=0), "0"),
        (dict(y=2.5), "2.5"),
        (dict(params="nope"), "nope"),
        (dict(params=lambda n, p: False), "empty"),
        (dict(params="0.bias"), "include_biases"),
    ],
)
def test_bad_arguments_raise_entropic_error_naming_the_value(kwargs, word):
    model, _, _ = make_problem()
    args = dict(y=2, R=0.1)
    args.update(kwargs)
    with pytest.raises(EntropicError, match=word):
        PLA(model, nn.CrossEntropyLoss(), **args)
