"""The deep-net training loop: every method takes a short epoch, consumes the budget it should, resumes to
the uninterrupted result bitwise, and writes its metrics, local-energy profiles and layer signals."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import pytest
import torch

from localentropy.deep import DeepError
from localentropy.deep.datasets import synthetic_images
from localentropy.deep.presets import METHODS, TrainConfig, budget_factor
from localentropy.deep.schedules import CosineAnnealing, MultiStep, StepExponential, Warmup, lr_schedule
from localentropy.deep.train import train
from localentropy.entropic import barycenter

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return synthetic_images("fashion-mnist", n_train=192, n_test=64, seed=1)


def tiny(method, **kw) -> TrainConfig:
    """One epoch of the method's own on 192 images, batches of 64 (3 steps), the budget scaled to match."""
    base = TrainConfig(name=f"tiny-{method}", dataset="fashion-mnist", model="mlp2", method=method, batch_size=64,
                       lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4, augment="standard", L=2,
                       replicas=2, K=2, rsgd_gamma0=None, esgd_gamma0=0.1, pla_y=2, layers="fc2", eval_batch=64)
    base = dataclasses.replace(base, **kw)
    return dataclasses.replace(base, epochs=kw.get("epochs", 1) * budget_factor(base))


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("method", METHODS)
def test_one_short_epoch_of_each_method_trains_and_accounts_for_the_data_it_reads(method, data):
    torch.manual_seed(123)
    config = tiny(method)
    init = None
    if method not in ("rsgd", "rsgd-xy"):
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            from localentropy.deep.train import model_factory
            init = _params(model_factory(config, data, "cpu")())
    res = train(config, data)
    assert torch.get_rng_state().equal(torch.manual_seed(123).get_state())  # the caller's generator is untouched
    (row,) = res.metrics
    assert row["epoch"] == 1 and row["steps"] == 3
    # every method reads the same 192 samples per budget epoch; rSGD×y reads y times as many
    reads = {"esgd": config.L, "rsgd": config.replicas, "rsgd-xy": config.replicas}.get(method, 1)
    assert row["samples"] == 3 * 64 * reads
    assert row["budget_epochs"] == pytest.approx(config.epochs * (config.replicas if method == "rsgd-xy" else 1))
    for k in ("batch_loss", "train_loss", "test_loss", "lr"):
        assert math.isfinite(row[k]), (k, row)
    assert 0 <= row["train_error"] <= 1 and 0 <= row["test_error"] <= 1
    assert math.isnan(row["gamma"]) == (method in ("sgd", "pla", "plea", "sam"))
    if init is not None:
        assert not torch.equal(_params(res.model), init)


def test_the_rsgd_model_evaluated_and_saved_is_the_centre_of_the_replicas(data, tmp_path):
    res = train(tiny("rsgd"), data, out_dir=tmp_path)
    replicas = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["method"]["rep"]["params"]
    centre = barycenter(replicas)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    for k, v in centre.items():
        assert torch.equal(res.model.state_dict()[k], v) and torch.equal(saved[k], v), k
    assert not torch.equal(replicas["fc1.weight"][0], replicas["fc1.weight"][1])


def _strip(rows):
    """Rows without the wall times, NaN (γ of methods without one) made comparable."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()
             if k not in ("epoch_seconds", "wall_seconds")} for r in rows]


@pytest.mark.parametrize("method", ["sgd", "esgd", "esgd-table", "esgd-counter", "rsgd", "pla", "sam", "esgd-fused",
                                    "rsgd-fused"])
def test_a_resumed_run_equals_an_uninterrupted_one_bitwise(method, data, tmp_path):
    extra = {"esgd-table": {"esgd_noise": "table"}, "esgd-counter": {"esgd_noise": "counter"}}.get(
        method, {"fused": True} if method.endswith("fused") else {})
    method = method.split("-")[0]
    config = tiny(method, **extra, epochs=2, energy_epochs=(1, 2), energy_draws=2, energy_samples=32, energy_sigmas=(0.1,),
                  signal_epochs=() if method == "rsgd" else (2,), lr_schedule="multistep",
                  milestones=(1.5 * budget_factor(tiny(method)),))
    whole = train(config, data, out_dir=tmp_path / "whole")
    first = train(config, data, out_dir=tmp_path / "cut", stop_after=1)
    assert len(first.metrics) == 1 and not (tmp_path / "cut" / "model.pt").exists()
    rest = train(config, data, out_dir=tmp_path / "cut")
    assert rest.resumed_from == 1 and len(rest.metrics) == 2
    assert _strip(rest.metrics) == _strip(whole.metrics)
    assert rest.energy == whole.energy and rest.signal == whole.signal
    a, b = whole.model.state_dict(), rest.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], a[k]) for k in a)
    assert whole.metrics[1]["lr"] == pytest.approx(config.lr * 0.1)  # the milestone at 1.5 budget epochs


def test_metrics_energy_and_signal_tables_are_written_beside_each_other(data, tmp_path):
    config = tiny("sgd", epochs=2, energy_epochs=(0, 2), energy_sigmas=(0.0, 0.2), energy_draws=3,
                  energy_samples=48, signal_epochs=(1,))
    res = train(config, data, out_dir=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [x["test_error"] for x in lines] == pytest.approx([float(r["test_error"]) for r in rows])
    energy = list(csv.DictReader(open(tmp_path / "energy.csv")))
    assert [(int(r["epoch"]), float(r["sigma"])) for r in energy] == [(0, 0.0), (0, 0.2), (2, 0.0), (2, 0.2)]
    assert float(energy[0]["delta_error"]) == 0.0  # σ = 0 perturbs nothing
    signal = list(csv.DictReader(open(tmp_path / "signal.csv")))
    assert {r["layer"] for r in signal} == {"fc1", "fc2", "out"}
    assert all(int(r["count"]) == 3 and float(r["signal"]) > 0 for r in signal)
    assert json.load(open(tmp_path / "config.json"))["method"] == "sgd"
    assert res.final["epoch"] == 2


def test_a_checkpoint_of_another_configuration_or_a_corrupted_one_is_refused(data, tmp_path):
    config = tiny("sgd")
    train(config, data, out_dir=tmp_path, stop_after=1)
    with pytest.raises(DeepError, match="another configuration.*lr"):
        train(dataclasses.replace(config, lr=0.5), data, out_dir=tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DeepError, match="unreadable"):
        train(config, data, out_dir=tmp_path)


def test_learning_rate_schedules_follow_their_formulas():
    assert [MultiStep(0.1, (2, 4), 0.1).value(t) for t in (0, 1.99, 2, 4.5)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert StepExponential(0.01, 0.97, 2).value(5.0) == pytest.approx(0.01 * 0.97 ** 2)
    c = CosineAnnealing(0.05, 300)
    assert (c.value(0), c.value(150), c.value(300)) == pytest.approx((0.05, 0.025, 0.0))
    w = Warmup(0.01, 1.0, MultiStep(0.1, (82,)))
    assert (w.value(0), w.value(0.5), w.value(1), w.value(90)) == pytest.approx((0.01, 0.055, 0.1, 0.01))
    cfg = TrainConfig(lr=0.1, lr_schedule="multistep", milestones=(82, 124), warmup_epochs=1, warmup_lr=0.01)
    assert lr_schedule(cfg).value(124) == pytest.approx(0.001)


def test_tensorboard_gets_every_epochs_scalars_when_it_is_installed(data, tmp_path, monkeypatch):
    """With a SummaryWriter importable (here a recording stand-in), each epoch's scalars go to out/tensorboard."""
    import sys
    import types

    written = []

    class Writer:
        def __init__(self, logdir, purge_step=None):
            written.append(("open", logdir, purge_step))

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            written.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    res = train(tiny("sgd", epochs=2), data, out_dir=tmp_path)
    assert res.tensorboard and written[0] == ("open", str(tmp_path / "tensorboard"), 1) and written[-1] == ("close",)
    errors = [(v, step) for tag, v, step in (w for w in written if len(w) == 3 and w[0] == "test_error")]
    assert errors == [(r["test_error"], r["epoch"]) for r in res.metrics]
    assert not any(w[0] == "gamma" for w in written)  # SGD has no γ: NaN is not written


@pytest.mark.parametrize("method", ["sgd", "esgd", "rsgd", "sam", "pla"])
def test_the_fused_sgd_step_follows_the_default_one_to_rounding(method, data):
    """``fused=True`` (torch's fused SGD step, in every loop of the method) trains the same trajectory as the
    default foreach step, up to rounding: after one short epoch the weights agree to 1e-5 relative (for
    plain SGD they come out bitwise equal on this build; that is not promised)."""
    plain = train(tiny(method), data)
    fused = train(tiny(method, fused=True), data)
    a, b = _params(plain.model), _params(fused.model)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (a - b).abs().max()
