"""The architectures: published parameter counts, Kaiming-normal initialisation, one training step each."""

from __future__ import annotations

import math

import pytest
import torch

from localentropy.deep.errors import DeepError
from localentropy.deep.models import ARCHITECTURES, ShakeDrop, architecture, build, count_parameters, names


def n_params(name, **kw):
    """Count without allocating (meta device): the count needs no forward pass and no memory."""
    with torch.device("meta"):
        return count_parameters(build(name, **kw))


def within(ours, published, rel=0.01, rounded_to=None):
    """|ours − published| ≤ 1 % of published, or ≤ half the last digit the published number was rounded to."""
    tol = rel * published
    if rounded_to is not None:
        tol = max(tol, rounded_to / 2)
    return abs(ours - published) <= tol


# --- parameter counts against published ones ------------------------------------------------------

def test_resnet18_cifar_has_11_17M_parameters():
    # 11.17M: the CIFAR ResNet-18 (kuangliu/pytorch-cifar), the count every CIFAR ResNet-18 paper quotes.
    assert within(n_params("resnet18", num_classes=10), 11_170_000)
    assert n_params("resnet18", num_classes=10) == 11_173_962


def test_resnet110_has_1_7M_parameters_as_he_et_al_table_6():
    # He et al. 2016, Table 6: "110 layers, 1.7M params" (option A shortcuts, parameter free). The published
    # number has two significant digits: our exact count 1 727 962 is 1.6 % above 1.70M but inside its rounding
    # interval [1.65M, 1.75M). The exact count follows from Sec. 4.2 by hand (ground truth outside the code):
    ours = n_params("resnet110", num_classes=10)
    assert within(ours, 1_700_000, rounded_to=100_000)
    conv = 3 * 9 * 16 + sum(18 * 2 * 9 * c * c for c in (16, 32, 64)) - 9 * (32 * 32 - 16 * 32) - 9 * (64 * 64 - 32 * 64)
    bn = 2 * 16 + sum(18 * 2 * 2 * c for c in (16, 32, 64))
    assert ours == conv + bn + 64 * 10 + 10


def test_pyramidnet272_alpha200_has_26M_parameters():
    # Cubuk et al. 2018 (AutoAugment), Table 2: PyramidNet+ShakeDrop 26.2M (the setting App. C follows);
    # Han et al. 2017, Table 4: PyramidNet-272 (α = 200, bottleneck) 26.0M.
    # Han et al. give one count per network (CIFAR-10's classifier: at 100 classes ours is +1.1 % above 26.0M).
    assert within(n_params("pyramidnet272", num_classes=10), 26_000_000)
    for classes in (10, 100):
        assert within(n_params("pyramidnet272", num_classes=classes), 26_200_000)
    assert n_params("pyramidnet272", num_classes=10) == 26_210_842


def test_efficientnet_b0_has_5_3M_parameters_at_1000_classes():
    # Tan and Le 2019, Table 2: EfficientNet-B0 5.3M (ImageNet, 1000 classes); reference implementation 5 288 548.
    assert within(n_params("efficientnet-b0", num_classes=1000), 5_300_000)
    assert n_params("efficientnet-b0", num_classes=1000) == 5_288_548
    # CIFAR-100 (App. C.1): the classifier shrinks from 1280·1000 + 1000 to 1280·100 + 100.
    assert n_params("efficientnet-b0") == 5_288_548 - 900 * 1281


def test_resnet50_has_25_56M_parameters_at_1000_classes():
    # torchvision's resnet50 (He et al. 2016, 50-layer row of Table 1): 25 557 032 at 1000 classes.
    assert within(n_params("resnet50", num_classes=1000), 25_557_032)
    assert n_params("resnet50") == 25_557_032 - 800 * 2049  # Tiny ImageNet: 200 classes


def test_densenet121_has_7_98M_parameters_at_1000_classes():
    # torchvision's densenet121 (Huang et al. 2017, DenseNet-BC-121, k = 32): 7 978 856 at 1000 classes.
    assert within(n_params("densenet121", num_classes=1000), 7_978_856)
    assert n_params("densenet121") == 7_978_856 - 800 * 1025  # Tiny ImageNet: 200 classes


def test_small_convnet_has_the_parameters_of_app_c_layer_list():
    # App. C: Conv(5×5, 20) − MaxPool(2) − Conv(5×5, 50) − MaxPool(2) − Dense(500) − Softmax on 32×32×3.
    expected = (3 * 25 * 20 + 20) + (20 * 25 * 50 + 50) + (50 * 5 * 5 * 500 + 500) + (500 * 10 + 10)
    assert n_params("small-convnet") == expected == 657_080


def test_paper_002_mlps_have_784_wide_layers():
    # 002, Sec. 4: all layers but the last have 784 neurons, then 10 outputs.
    layer = 784 * 784 + 784
    assert n_params("mlp2") == 2 * layer + 7850
    assert n_params("mlp3") == 3 * layer + 7850


def test_paper_002_conv_nets_have_the_sizes_of_eq_24_and_25():
    def count(a, b, side):
        convs = (3 * 9 * a + a) + (a * 9 * a + a) + (a * 9 * b + b) + 2 * (b * 9 * b + b)
        n = b * side * side
        return convs + 2 * (n * n + n) + n * 10 + 10

    assert n_params("convnet24") == count(64, 128, 4)  # fully-connected 128·4·4
    assert n_params("convnet25") == count(8, 16, 20)  # fully-connected 16·20·20


def test_every_published_count_is_checked_at_its_class_count():
    for name in names():
        pub = architecture(name).published
        if pub is not None:
            ours = n_params(name, num_classes=pub.num_classes)
            rounded = 100_000 if name == "resnet110" else None
            assert within(ours, pub.params, rounded_to=rounded), (name, ours, pub.params)


# --- initialisation ------------------------------------------------------------------------------------

def test_kaiming_normal_init_has_variance_two_over_fan_in():
    torch.manual_seed(0)
    model = build("resnet18")
    for w in (model.layers[4].conv1.weight, model.layers[6].conv2.weight):
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        assert w.mean().abs() < 0.05 * math.sqrt(2 / fan_in)
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
    assert torch.all(model.bn1.weight == 1) and torch.all(model.bn1.bias == 0)
    assert torch.all(model.fc.bias == 0)


def test_small_convnet_keeps_pytorch_default_init_as_app_c_says():
    torch.manual_seed(0)
    w = build("small-convnet").fc1.weight  # PyTorch default: U(±1/√fan_in), so std = 1/√(3·fan_in)
    assert w.std().item() == pytest.approx(1 / math.sqrt(3 * w.shape[1]), rel=0.03)
    w = build("small-convnet", init="kaiming_normal").fc1.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / w.shape[1]), rel=0.03)


def test_unknown_names_and_bad_arguments_are_one_line_deep_errors():
    with pytest.raises(DeepError, match="unknown architecture 'resnet-19'"):
        build("resnet-19")
    with pytest.raises(DeepError, match="6n\\+2"):
        build("resnet110", depth=111)
    with pytest.raises(DeepError, match="num_classes"):
        build("resnet18", num_classes=0)
    with pytest.raises(DeepError, match="initialisation"):
        build("mlp2", init="xavier")
    with pytest.raises(DeepError, match="bad argument"):
        build("mlp2", widths=3)


# --- one training step per model -----------------------------------------------------------------------

def train_step(model, shape, classes):
    torch.manual_seed(0)
    model.train()
    x = torch.randn(shape)
    t = torch.randint(0, classes, (shape[0],))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(x)
    assert out.shape == (shape[0], classes)
    loss = torch.nn.functional.cross_entropy(out, t)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


FAST = [  # (name, kwargs, input shape, classes): the real architecture where it is cheap, else a reduced one
    ("small-convnet", {}, (2, 3, 32, 32), 10),
    ("resnet18", {}, (2, 3, 32, 32), 10),
    ("resnet110", {"depth": 20}, (2, 3, 32, 32), 10),
    ("pyramidnet272", {"depth": 20, "alpha": 48}, (2, 3, 32, 32), 100),
    ("efficientnet-b0", {}, (2, 3, 64, 64), 100),  # at 32 px batch 2 its 1×1 BN maps blow up gradients
    ("resnet50", {"blocks": (1, 1, 1, 1)}, (2, 3, 64, 64), 200),
    ("densenet121", {"blocks": (2, 2, 2, 2)}, (2, 3, 64, 64), 200),
    ("mlp2", {}, (2, 1, 28, 28), 10),
    ("mlp3", {}, (2, 1, 28, 28), 10),
    ("convnet24", {}, (2, 3, 32, 32), 10),
    ("convnet25", {"image_size": 24}, (2, 3, 24, 24), 10),
]


@pytest.mark.parametrize("name,kw,shape,classes", FAST, ids=[f[0] for f in FAST])
def test_one_training_step_gives_the_right_shape_and_finite_numbers(name, kw, shape, classes):
    train_step(build(name, num_classes=classes, **kw), shape, classes)


SLOW = [
    ("resnet50", (2, 3, 64, 64), 200),
    ("resnet110", (2, 3, 32, 32), 10),
    ("pyramidnet272", (2, 3, 32, 32), 100),
    ("efficientnet-b0", (2, 3, 224, 224), 100),
    ("densenet121", (2, 3, 64, 64), 200),
    ("convnet25", (2, 3, 96, 96), 10),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,shape,classes", SLOW, ids=[s[0] for s in SLOW])
def test_the_full_size_model_trains_one_step(name, shape, classes):
    train_step(build(name, num_classes=classes), shape, classes)


def test_every_registered_architecture_has_a_fast_step_test():
    assert {f[0] for f in FAST} == set(ARCHITECTURES)


# --- ShakeDrop ---------------------------------------------------------------------------------------------

def test_shakedrop_is_the_expected_multiplier_in_eval_and_random_in_training():
    sd = ShakeDrop(0.7)
    x = torch.ones(4000, 3)
    sd.eval()
    assert torch.equal(sd(x), 0.7 * x)
    sd.train()
    torch.manual_seed(0)
    means = torch.stack([sd(x)[:, 0] for _ in range(400)])  # per call: b ~ Bernoulli(0.7), α ~ U[−1, 1]
    kept = (means == 1).all(dim=1)
    assert 0.6 < kept.float().mean() < 0.8  # batch-level gate
    dropped = means[~kept]
    assert dropped.min() >= -1 and dropped.max() <= 1 and dropped.std() > 0.5  # α per sample
    assert abs(means.mean() - kept.float().mean()) < 0.01  # E[α] = 0, so the mean multiplier is the kept fraction


def test_shakedrop_backward_uses_beta_in_zero_one():
    sd = ShakeDrop(0.0)  # b = 0 always: forward α·x, backward β·grad
    x = torch.ones(1000, 1, requires_grad=True)
    torch.manual_seed(1)
    sd(x).sum().backward()
    assert x.grad.min() >= 0 and x.grad.max() <= 1 and 0.45 < x.grad.mean() < 0.55


def test_pyramidnet272_has_270_weighted_layers_and_shakedrop_decays_linearly():
    with torch.device("meta"):
        m = build("pyramidnet272", num_classes=10)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert len(convs) == 1 + 90 * 3  # 272 = stem + 90 blocks × 3 convs + fc
    ps = [mod.p_keep for mod in m.modules() if isinstance(mod, ShakeDrop)]
    assert len(ps) == 90 and ps[-1] == pytest.approx(0.5) and ps[0] == pytest.approx(1 - 0.5 / 90)
    assert m.fc.in_features == (16 + 200) * 4
