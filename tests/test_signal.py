"""Layer training signal s_I = (1/N_I) Σ_ω |∂L/∂ω| (002, Eq. 2) against hand-computed gradients."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from localentropy.entropic import EntropicError
from localentropy.entropic.signal import LayerSignal


def two_layer_linear(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model, g


def hand_signals(model, x, t):
    """s_I by hand for f(x) = W2 (W1 x + b1) and L = ½ mean_n ‖f(x_n) − t_n‖² (numpy)."""
    W1 = model[0].weight.detach().numpy()
    b1 = model[0].bias.detach().numpy()
    W2 = model[1].weight.detach().numpy()
    x, t = x.numpy(), t.numpy()
    h = x @ W1.T + b1
    r = h @ W2.T - t  # residuals (n, 2)
    n = x.shape[0]
    G2 = r.T @ h / n  # ∂L/∂W2
    G1 = (r @ W2).T @ x / n  # ∂L/∂W1
    return {"0": np.abs(G1).mean(), "1": np.abs(G2).mean()}, np.abs((r @ W2).sum(0) / n)


def loss_fn(out, t):
    return 0.5 * ((out - t) ** 2).sum(1).mean()


def test_signal_and_noise_match_hand_computed_gradients_over_batches():
    model, g = two_layer_linear()
    sig = LayerSignal(model)
    assert sig.weights == {"0": 12, "1": 6}  # biases excluded: N_I counts weights only
    per_batch = []
    for _ in range(4):
        x = torch.randn(5, 4, generator=g, dtype=torch.float64)
        t = torch.randn(5, 2, generator=g, dtype=torch.float64)
        model.zero_grad()
        loss_fn(model(x), t).backward()
        got = sig.update()
        expect, _ = hand_signals(model, x, t)
        for k in expect:
            assert got[k] == pytest.approx(expect[k], rel=1e-12)
        per_batch.append(expect)
    summ = sig.summary()
    for k in ("0", "1"):
        vals = np.array([b[k] for b in per_batch])
        assert summ[k].signal == pytest.approx(vals.mean(), rel=1e-12)
        assert summ[k].noise == pytest.approx(vals.std(ddof=1), rel=1e-10)
        assert summ[k].count == 4


def test_including_biases_adds_them_to_their_layer():
    model, g = two_layer_linear(1)
    sig = LayerSignal(model, include_biases=True)
    x = torch.randn(7, 4, generator=g, dtype=torch.float64)
    t = torch.randn(7, 2, generator=g, dtype=torch.float64)
    loss_fn(model(x), t).backward()
    got = sig.update()
    expect, gb1 = hand_signals(model, x, t)
    assert got["0"] == pytest.approx((expect["0"] * 12 + gb1.sum()) / 15, rel=1e-12)


def test_reset_starts_a_new_epoch_and_keeps_history():
    model, g = two_layer_linear(2)
    sig = LayerSignal(model, params="1", history=True)
    assert list(sig.layers) == ["1"]
    for epoch in range(2):
        for _ in range(3):
            model.zero_grad()
            loss_fn(model(torch.randn(4, 4, generator=g, dtype=torch.float64)),
                    torch.zeros(4, 2, dtype=torch.float64)).backward()
            sig.update()
        sig.reset()
    assert len(sig.history) == 2 and sig.history[0]["1"].count == 3
    assert sig.summary()["1"].count == 0 and math.isnan(sig.summary()["1"].signal)


def test_layers_without_gradient_are_skipped():
    model, g = two_layer_linear(3)
    sig = LayerSignal(model)
    model[1].weight.grad = torch.ones(2, 3, dtype=torch.float64)
    assert sig.update() == {"1": 1.0}
    assert sig.summary()["0"].count == 0


def test_non_finite_gradient_and_empty_selection_raise():
    model, _ = two_layer_linear(4)
    sig = LayerSignal(model)
    model[0].weight.grad = torch.full((3, 4), float("nan"), dtype=torch.float64)
    with pytest.raises(EntropicError, match="non-finite"):
        sig.update()
    with pytest.raises(EntropicError, match="empty"):
        LayerSignal(model, params="0.bias")
