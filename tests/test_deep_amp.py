"""Mixed precision (``amp=bf16``) and channels-last: every method trains to the float32 run's error on a small
learnable problem, a bf16 run resumes bitwise, and what is not implemented is refused in one line."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from localentropy.deep.datasets import TensorImages, channel_stats
from localentropy.deep.errors import DeepError
from localentropy.deep.presets import TrainConfig, budget_factor, validate
from localentropy.deep.train import train


NOISE = 250  # test error ≈ 0.12 for SGD after 2 epochs: room to differ either way


def learnable(n_train=320, n_test=160, seed=0) -> TensorImages:
    """Fashion-MNIST-shaped images: one random prototype per class plus noise (a problem an MLP learns in an
    epoch or two, so that float32 and bf16 runs can be compared on their errors)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randint(0, 256, (10, 1, 28, 28), generator=g).float()

    def draw(n):
        labels = torch.randint(0, 10, (n,), generator=g)
        noise = NOISE * torch.randn(n, 1, 28, 28, generator=g)
        return (protos[labels] + noise).clamp(0, 255).to(torch.uint8), labels

    x, y = draw(n_train)
    xt, yt = draw(n_test)
    mean, std = channel_stats(x)
    return TensorImages("fashion-mnist", x, y, xt, yt, tuple(str(i) for i in range(10)), mean, std, synthetic=True,
                        source="synthetic")


def config(method, model="mlp2", **kw):
    c = TrainConfig(name=f"amp-{method}", dataset="fashion-mnist", model=model, method=method, batch_size=32, lr=0.05,
                    momentum=0.9, nesterov=True, augment="none", replicas=3, K=2, rsgd_gamma0=None, L=2,
                    esgd_gamma0=0.1, eval_batch=80, layers="fc1" if method in ("pla", "plea") else "", **kw)
    return dataclasses.replace(c, epochs=2 * budget_factor(c))


@pytest.mark.parametrize("method", ["sgd", "esgd", "rsgd", "sam", "pla"])
def test_bf16_trains_every_method_to_the_float32_error(method):
    torch.set_num_threads(1)
    data = learnable()
    f32 = train(config(method), data, tensorboard=False)
    b16 = train(config(method, amp="bf16"), data, tensorboard=False)
    e32, e16 = f32.final["test_error"], b16.final["test_error"]
    assert e32 < 0.75, f"float32 learned nothing ({e32}; chance is 0.9)"
    assert abs(e16 - e32) <= 0.07, (e32, e16)  # 160 test images: a few misclassified more or fewer
    w32 = torch.nn.utils.parameters_to_vector(f32.model.parameters())
    w16 = torch.nn.utils.parameters_to_vector(b16.model.parameters())
    assert w16.dtype == torch.float32  # the weights stay float32
    assert not torch.equal(w32, w16)  # and bf16 did change the arithmetic


def test_a_bf16_run_resumes_bitwise(tmp_path):
    torch.set_num_threads(1)
    data = learnable()
    c = config("esgd", amp="bf16")
    whole = train(c, data, out_dir=tmp_path / "whole", tensorboard=False)
    train(c, data, out_dir=tmp_path / "cut", tensorboard=False, stop_after=1)
    resumed = train(c, data, out_dir=tmp_path / "cut", tensorboard=False)
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert [r["train_loss"] for r in whole.metrics] == [r["train_loss"] for r in resumed.metrics]


def test_channels_last_trains_a_conv_net_to_the_same_error():
    torch.set_num_threads(1)
    data = learnable()
    plain = train(config("sgd", model="small-convnet"), data, tensorboard=False)
    last = train(config("sgd", model="small-convnet", channels_last=True), data, tensorboard=False)
    conv = next(m for m in last.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert abs(plain.final["test_error"] - last.final["test_error"]) <= 0.07


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(DeepError, match="unknown amp 'fp16'; known: off, bf16"):
        validate(config("sgd", amp="fp16"))


def test_under_bf16_sams_second_pass_sees_the_perturbed_weights():
    """autocast's cache of bfloat16 weight copies would give SAM's second pass the unperturbed weights (SAM
    would be SGD, bit for bit) and eSGD's inner loop stale ones: the steps run without that cache."""
    torch.set_num_threads(1)
    data = learnable()
    sgd = train(config("sgd", amp="bf16"), data, tensorboard=False)
    sam = train(config("sam", amp="bf16"), data, tensorboard=False)
    assert not torch.equal(torch.nn.utils.parameters_to_vector(sgd.model.parameters()),
                           torch.nn.utils.parameters_to_vector(sam.model.parameters()))
