"""Every preset resolves to a valid configuration: its model builds for its data set, its schedules exist,
and its numbers are the paper's (000 App. C, 002 Secs. 4-5) on the budget clock."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from localentropy.deep import DeepError
from localentropy.deep.datasets import SHAPES, TensorImages
from localentropy.deep.presets import (METHODS, PRESETS, TrainConfig, budget_factor, get_preset, validate,
                                       with_overrides)
from localentropy.deep.schedules import gamma_schedule, lr_schedule
from localentropy.deep.train import model_factory

TABLE1 = {  # row: (SGD, rSGD, eSGD, rSGD×y) test error %, paper 000 Table 1
    "cifar10-smallconvnet": ("16.5", "15.6", "14.7", "14.9"),
    "cifar10-resnet18": ("13.1", "12.4", "12.1", "11.8"),
    "cifar10-resnet110": ("6.4", "6.2", "6.2", "5.3"),
    "cifar10-pyramidnet272": ("2.1", "2.2", None, "1.8"),
    "cifar100-pyramidnet272": ("13.8", "13.5", None, "12.7"),
    "cifar100-efficientnet-b0": ("20.5", "20.6", "20.1", "19.5"),
    "tinyimagenet-resnet50": ("45.2", "41.5", "41.7", "39.2"),
    "tinyimagenet-densenet121": ("41.4", "39.8", "38.6", "38.9"),
}


def _meta_data(name):
    shape, classes, _, _ = SHAPES[name]
    x = torch.empty((2, *shape), dtype=torch.uint8, device="meta")
    y = torch.empty(2, dtype=torch.long, device="meta")
    return TensorImages(name, x, y, x, y, tuple(range(classes)), torch.zeros(shape[0]), torch.ones(shape[0]))


_MODELS = {}


def _meta_model(c):
    """The preset's model for its data set on the meta device (no memory), built once per (model, data set)."""
    key = (c.model, c.dataset)
    if key not in _MODELS:
        with torch.device("meta"):
            _MODELS[key] = model_factory(c, _meta_data(c.dataset), "meta")()
    return _MODELS[key]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_to_a_valid_configuration(name):
    c = get_preset(name)
    assert c.name == name and validate(c) is c and c.description
    model = _meta_model(c)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert lr_schedule(c).value(0) > 0 or c.warmup_epochs > 0
    if c.method in ("esgd", "rsgd", "rsgd-xy"):
        g, _ = gamma_schedule(c, 1000)
        assert g.value(1000) >= g.value(0) >= 0
    if c.method in ("pla", "plea") and c.layers:
        names = {n.split(".")[0] for n, _ in model.named_parameters()}
        assert set(c.layers.split(",")) <= names


def test_every_table1_row_and_method_has_a_preset_with_the_reported_error():
    for row, errors in TABLE1.items():
        for method, err in zip(("sgd", "rsgd", "esgd", "rsgd-xy"), errors):
            if err is None:
                assert f"{row}-{method}" not in PRESETS
            else:
                assert get_preset(f"{row}-{method}").reported == err, (row, method)


def test_paper_002_experiments_have_presets():
    for name in ["fmnist-mlp2-sgd", "fmnist-mlp2-pla-fc1", "fmnist-mlp2-pla-fc2", "fmnist-mlp2-pla-fc1-fc2",
                 "fmnist-mlp2-plea-fc2", "fmnist-mlp2-pla-y8-fc2", "mnist-mlp3-pla-fc1-fc3", "cifar10-convnet24-sgd",
                 "cifar10-convnet24-pla-fc1", "cifar10-convnet24-pla-fc2", "cifar10-convnet24-sgd-wd0.01",
                 "stl10-convnet25-pla-fc2"]:
        c = get_preset(name)
        assert c.weight_decay in (0.0, 0.01) and c.momentum == 0.9 and not c.nesterov
    c = get_preset("fmnist-mlp2-pla-fc2")
    assert (c.lr, c.batch_size, c.epochs, c.pla_y, c.R, c.layers) == (1e-4, 256, 120, 4, 0.01, "fc2")
    assert get_preset("stl10-convnet25-sgd").epochs == 960


def test_every_method_runs_on_fashion_mnist_from_a_preset():
    for model in ("smallconvnet", "mlp2"):
        assert {get_preset(f"cpu-fmnist-{model}-{m}").method for m in METHODS} == set(METHODS)
        budgets = {get_preset(f"cpu-fmnist-{model}-{m}").epochs for m in METHODS}
        assert budgets == {10}  # one data budget for every method


def test_esgd_presets_are_the_papers_epochs_times_L():
    c = get_preset("cifar10-smallconvnet-esgd")
    f = budget_factor(c)
    assert f == 5 and (c.epochs / f, tuple(m / f for m in c.milestones)) == (60, (30, 45))
    assert (c.lr, c.inner_lr, c.esgd_gamma0, c.esgd_gamma1) == (0.5, 0.02, 0.5, 2e-5)
    for name in PRESETS:  # App. C: "0.9 Nesterov momentum ... in both the internal and external loop"
        if name.endswith("-esgd") and not name.startswith("cpu-"):
            assert get_preset(name).nesterov and get_preset(name).momentum == 0.9, name
    r = get_preset("cifar10-smallconvnet-rsgd")
    assert budget_factor(r) == 3 and budget_factor(get_preset("cifar10-smallconvnet-rsgd-xy")) == 1


def test_overrides_are_parsed_by_the_fields_type():
    c = with_overrides(get_preset("cifar10-resnet18-rsgd"),
                       ["lr=0.05", "milestones=30,45", "nesterov=false", "rsgd_gamma0=auto", "K=3", "layers=fc1,fc3",
                        "energy_epochs=0,10"])
    assert (c.lr, c.milestones, c.nesterov, c.rsgd_gamma0, c.K) == (0.05, (30.0, 45.0), False, None, 3)
    assert c.energy_epochs == (0, 10) and isinstance(c.energy_epochs[0], int)
    assert get_preset("cifar10-resnet18-rsgd").lr == 0.02  # presets are frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0


@pytest.mark.parametrize("assignment, words", [
    ("bogus=1", "unknown field"), ("lr=fast", "lr=fast"), ("K=2.5", "K=2.5"), ("nesterov=maybe", "nesterov"),
    ("method=adam", "unknown method"), ("lr=-1", "lr must be > 0"), ("milestones=5,2", "increasing"),
    ("model=vgg", "unknown model"), ("lr", "NAME=VALUE"),
])
def test_bad_overrides_are_one_deep_error_naming_the_field(assignment, words):
    with pytest.raises(DeepError, match=words.replace(".", r"\.").replace("+", r"\+")):
        with_overrides(get_preset("cifar10-resnet18-sgd"), [assignment])


def test_unknown_preset_suggests_close_names():
    with pytest.raises(DeepError, match="did you mean cifar10-resnet18-rsgd"):
        get_preset("cifar10-resnet18-rsdg")


def test_config_round_trips_through_a_dict():
    c = get_preset("cifar10-pyramidnet272-rsgd")
    assert TrainConfig.from_dict(c.as_dict()) == c
