"""Training presets: one frozen dataclass per Table 1 row and method (paper 000, App. C) and per paper-002
experiment (Secs. 4, 5), in a registry looked up by name; every field can be overridden.

Units. ``epochs`` is the **data budget** in epochs of the baseline (SGD) recipe: the number of passes
over the training set one network of the baseline would make. The trainer rescales it by the method's
factor c so that every method consumes the same number of samples (000, Sec. 6): c = L for eSGD (each
outer step reads L mini-batches), c = y for rSGD (y replicas each read a mini-batch per step), c = 1
for SGD, SAM, PLA, PLEA (SAM and PLA re-use the step's mini-batch for their extra evaluations) and
for rSGD×y ("rsgd-xy": each replica consumes the baseline's data, y times the budget in all, as in
the paper). Every other time in the schedules (``milestones``, ``lr_every``, ``warmup_epochs``,
``k_switch``) is on the same budget clock, so "eSGD 60 epochs, η ÷10 at 30, 45" with L = 5 is written
``epochs=300, milestones=(150, 225)``. ``energy_epochs`` and ``signal_epochs`` count the method's
own epochs (0 = before training, -1 = the last epoch).

``get_preset(name)``, ``preset_names()``, ``with_overrides(config, ["lr=0.05", "milestones=30,45"])``
(values parsed and checked against each field's type), ``validate(config)``; every mistake is a
:class:`DeepError` naming the preset or field.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from localentropy.deep.errors import DeepError

METHODS = ("sgd", "esgd", "rsgd", "rsgd-xy", "pla", "plea", "sam")
METHOD_NAMES = {"sgd": "SGD", "esgd": "eSGD", "rsgd": "rSGD", "rsgd-xy": "rSGD×y", "pla": "PLA", "plea": "PLEA",
                "sam": "SAM"}
OPTIMIZERS = ("sgd", "rmsprop")
LR_SCHEDULES = ("constant", "multistep", "cosine", "exponential")
GAMMA_SCHEDULES = ("exponential", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs (paper symbols in brackets). See the module docstring for units."""

    name: str = "custom"
    description: str = ""
    reported: str = ""  # the paper's reported test error (%) for this run, or where to find it
    dataset: str = "fashion-mnist"
    model: str = "small-convnet"
    method: str = "sgd"
    epochs: float = 10.0  # data budget, baseline epochs
    batch_size: int = 128
    optimizer: str = "sgd"  # torch SGD (momentum, Nesterov, weight decay) or RMSprop
    lr: float = 0.01  # [η] outer learning rate of eSGD
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    rmsprop_alpha: float = 0.9
    rmsprop_eps: float = 1e-3
    fused: bool = False  # torch's fused SGD step (one pass; another rounding than the default foreach step)
    amp: str = "off"  # mixed precision of the training steps: off (float32) or bf16 (torch.autocast, CPU and CUDA)
    channels_last: bool = False  # conv weights (and so their activations) in channels-last memory format
    lr_schedule: str = "constant"
    milestones: tuple[float, ...] = ()
    lr_decay: float = 0.1  # factor at each milestone, or per lr_every epochs ("exponential")
    lr_every: float = 2.0
    warmup_epochs: float = 0.0  # linear warm-up from warmup_lr to lr
    warmup_lr: float = 0.0
    augment: str = "standard"
    train_subset: int = 0  # the first n training images (0: all)
    test_subset: int = 0
    val_split: int = 0  # training images held out for validation (a fixed subset chosen by the seed; 0: none)
    seed: int = 0
    # eSGD (Algorithm 1)
    L: int = 5
    inner_lr: float = 0.02  # [η′]
    noise: float = 1e-4  # [ε]
    esgd_noise: str = "normal"  # SGLD noise: torch's normals, counter-based ones (entropic.gauss), or a table
    alpha: float = 0.75
    esgd_gamma0: typing.Optional[float] = 0.5  # None: automatic γ0 = L(w)/d(w′, w)
    esgd_gamma1: typing.Optional[float] = None  # None: γ grows ×10 over training
    # rSGD (Algorithm 2)
    replicas: int = 3  # [y]
    K: int = 10
    k_late: int = 0  # K from k_switch on (0: no switch)
    k_switch: float = 0.0
    rsgd_gamma0: typing.Optional[float] = None  # None: γ0 = Σ L(w_a) / Σ d(w_a, w̄)
    gamma_growth: float = 1e4
    gamma_schedule: str = "exponential"
    gamma_max: float = 0.1  # cosine focusing
    # PLA / PLEA (002, Eqs. 22, 23)
    pla_y: int = 4
    R: float = 0.01
    layers: str = ""  # comma-separated module names, e.g. "fc2" or "fc1,fc3"; "" = every weight
    # SAM
    rho: float = 0.05
    # measurements
    energy_epochs: tuple[int, ...] = ()
    energy_sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    energy_draws: int = 20
    energy_samples: int = 1000
    signal_epochs: tuple[int, ...] = ()
    eval_batch: int = 1000
    bn_batches: int = 20  # batches that recompute the rSGD centre's BatchNorm statistics

    def as_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise DeepError(f"unknown configuration field(s): {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def stored_dict(cls, stored):
        """A configuration read back from a file (checkpoint, evidence.json) as ``as_dict`` would give it
        now: fields added since it was written at their defaults; returned unchanged if it is not one."""
        try:
            return cls.from_dict(stored).as_dict()
        except (DeepError, TypeError, AttributeError):
            return stored


def budget_factor(config: TrainConfig) -> int:
    """c: mini-batches one step reads, by which the budget's epochs are divided (module docstring)."""
    return {"esgd": config.L, "rsgd": config.replicas}.get(config.method, 1)


# ----- parsing and checking ----------------------------------------------------------------------
_HINTS = typing.get_type_hints(TrainConfig)


def _parse(field: str, text: str):
    hint = _HINTS[field]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    text = text.strip()
    try:
        if origin is typing.Union:  # Optional[float]
            if text.lower() in ("none", "auto", ""):
                return None
            return float(text)
        if origin is tuple:
            kind = args[0]
            return tuple(kind(float(t)) if kind is int and float(t).is_integer() else kind(t)
                         for t in text.replace(";", ",").split(",") if t.strip())
        if hint is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            v = float(text)
            if not v.is_integer():
                raise ValueError(text)
            return int(v)
        if hint is float:
            return float(text)
        return text
    except ValueError:
        kind = getattr(hint, "__name__", str(hint))
        raise DeepError(f"--set {field}={text}: not a valid {kind}") from None


FIELD_TYPES = _HINTS  # each field's type: what --set and configuration files are checked against


def parse_field(field: str, text: str):
    """``text`` parsed as field ``field``'s type, as ``--set`` parses it (DeepError if it is not one)."""
    return _parse(field, text)


def with_overrides(config: TrainConfig, assignments) -> TrainConfig:
    """``config`` with ``NAME=VALUE`` assignments applied (strings parsed by the field's type), validated."""
    changes = {}
    for a in assignments:
        if "=" not in a:
            raise DeepError(f"--set {a}: expected NAME=VALUE")
        key, value = a.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in _HINTS:
            raise DeepError(f"--set {key}: unknown field; known: {', '.join(_HINTS)}")
        changes[key] = _parse(key, value)
    out = dataclasses.replace(config, **changes)
    validate(out)
    return out


def _positive(config, *names):
    for n in names:
        v = getattr(config, n)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise DeepError(f"{config.name}: {n} must be > 0, got {v!r}")


def _nonneg(config, *names):
    for n in names:
        v = getattr(config, n)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise DeepError(f"{config.name}: {n} must be >= 0, got {v!r}")


#: mixed-precision modes (fp16 with a gradient scaler, CUDA only, is not implemented: bf16 needs no scaler)
AMP_MODES = ("off", "bf16")


def validate(config: TrainConfig) -> TrainConfig:
    """Check every field (names known, numbers in range); returns the config or raises DeepError."""
    from localentropy.deep.datasets import SHAPES
    from localentropy.deep.models import names as model_names
    from localentropy.deep.stacks import stack_names

    choices = (("method", METHODS), ("optimizer", OPTIMIZERS), ("lr_schedule", LR_SCHEDULES),
               ("gamma_schedule", GAMMA_SCHEDULES), ("dataset", tuple(SHAPES)), ("model", tuple(model_names())),
               ("augment", tuple(stack_names())), ("esgd_noise", ("normal", "counter", "table")),
               ("amp", AMP_MODES))
    for field, known in choices:
        if getattr(config, field) not in known:
            raise DeepError(f"{config.name}: unknown {field} {getattr(config, field)!r}; known: {', '.join(known)}")
    _positive(config, "epochs", "batch_size", "lr", "L", "inner_lr", "replicas", "K", "pla_y", "eval_batch",
              "energy_draws", "energy_samples", "gamma_growth", "lr_every", "rmsprop_eps")
    _nonneg(config, "momentum", "weight_decay", "rmsprop_alpha", "lr_decay", "warmup_epochs", "warmup_lr",
            "train_subset", "test_subset", "val_split", "noise", "alpha", "k_late", "k_switch", "R", "rho", "gamma_max",
            "bn_batches")
    for n in ("esgd_gamma0", "esgd_gamma1", "rsgd_gamma0"):
        v = getattr(config, n)
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise DeepError(f"{config.name}: {n} must be >= 0 or none, got {v!r}")
    if config.nesterov and config.momentum <= 0:
        raise DeepError(f"{config.name}: nesterov needs momentum > 0")
    if config.fused and config.optimizer != "sgd":
        raise DeepError(f"{config.name}: fused is torch's fused SGD step: it needs optimizer sgd")
    if not config.alpha < 1:
        raise DeepError(f"{config.name}: alpha must lie in [0, 1), got {config.alpha}")
    if config.method in ("rsgd", "rsgd-xy") and config.replicas < 2 and config.rsgd_gamma0 is None:
        raise DeepError(f"{config.name}: automatic rsgd_gamma0 needs replicas >= 2")
    if config.lr_schedule == "multistep" and not config.milestones:
        raise DeepError(f"{config.name}: lr_schedule multistep needs milestones")
    if list(config.milestones) != sorted(config.milestones):
        raise DeepError(f"{config.name}: milestones must be increasing, got {config.milestones}")
    if any(e < -1 for e in config.energy_epochs + config.signal_epochs):
        raise DeepError(f"{config.name}: energy_epochs and signal_epochs must be >= 0 (or -1: the last epoch)")
    if config.signal_epochs and config.method in ("rsgd", "rsgd-xy"):
        raise DeepError(f"{config.name}: the layer signal is measured on one network; not available for {config.method}")
    if any(not (math.isfinite(s) and s >= 0) for s in config.energy_sigmas) or not config.energy_sigmas:
        raise DeepError(f"{config.name}: energy_sigmas must be a non-empty list of numbers >= 0")
    return config


# ----- the registry ------------------------------------------------------------------------------
PRESETS: dict[str, TrainConfig] = {}


def _add(cfg: TrainConfig) -> None:
    if cfg.name in PRESETS:
        raise RuntimeError(f"duplicate preset {cfg.name}")
    PRESETS[cfg.name] = cfg


def _table1(row: str, base: TrainConfig, reported: dict, *, rsgd: dict, esgd: dict | None, doc: str) -> None:
    """The SGD, rSGD, eSGD and rSGD×y presets of one Table 1 row (App. C)."""
    err = dict(zip(("sgd", "rsgd", "esgd", "rsgd-xy"), reported))
    _add(dataclasses.replace(base, name=f"{row}-sgd", method="sgd", reported=err["sgd"],
                             description=f"{doc}; SGD baseline"))
    for m in ("rsgd", "rsgd-xy"):
        _add(dataclasses.replace(base, name=f"{row}-{m}", method=m, reported=err[m], **rsgd,
                                 description=f"{doc}; {METHOD_NAMES[m]} (y=3, K=10 unless set)"))
    if esgd is not None:
        _add(dataclasses.replace(base, name=f"{row}-esgd", method="esgd", reported=err["esgd"], **esgd,
                                 description=f"{doc}; eSGD (L=5, budget = L x its epochs)"))


_C = dict(momentum=0.9, nesterov=True, batch_size=128, augment="standard")
_table1("cifar10-smallconvnet",
        TrainConfig(dataset="cifar-10", model="small-convnet", epochs=300, lr=0.01, lr_schedule="multistep",
                    milestones=(150, 225), weight_decay=1e-4, **_C),
        ("16.5", "15.6", "14.7", "14.9"), rsgd=dict(lr=0.05, rsgd_gamma0=1e-3),
        esgd=dict(lr=0.5, milestones=(30 * 5, 45 * 5), inner_lr=0.02, esgd_gamma0=0.5, esgd_gamma1=2e-5),
        doc="Table 1, CIFAR-10 SmallConvNet: 300 ep, lr 0.01 /10 at 150, 225, wd 1e-4")
_table1("cifar10-resnet18",
        TrainConfig(dataset="cifar-10", model="resnet18", epochs=160, lr=0.01, lr_schedule="multistep",
                    milestones=(110,), weight_decay=5e-4, **_C),
        ("13.1", "12.4", "12.1", "11.8"), rsgd=dict(K=1, lr=0.02),
        esgd=dict(lr=0.25, milestones=(16 * 5, 25 * 5), inner_lr=0.01),
        doc="Table 1, CIFAR-10 ResNet-18: 160 ep, lr 0.01 /10 at 110, wd 5e-4")
_table1("cifar10-resnet110",
        TrainConfig(dataset="cifar-10", model="resnet110", epochs=164, lr=0.1, lr_schedule="multistep",
                    milestones=(82, 124), weight_decay=1e-4, warmup_epochs=1, warmup_lr=0.01,
                    **{**_C, "nesterov": False}),
        ("6.4", "6.2", "6.2", "5.3"), rsgd=dict(rsgd_gamma0=5e-4, warmup_epochs=0),
        esgd=dict(lr=0.9, epochs=32 * 5, milestones=(17 * 5, 25 * 5), inner_lr=0.02, esgd_gamma0=0.1,
                  esgd_gamma1=5e-4, warmup_epochs=0, nesterov=True),  # App. C: eSGD uses Nesterov in both loops
        doc="Table 1, CIFAR-10 ResNet-110: 164 ep, warm-up 0.01->0.1 over 1 ep, /10 at 82, 124, wd 1e-4")
for _ds, _errs in (("cifar-10", ("2.1", "2.2", "-", "1.8")), ("cifar-100", ("13.8", "13.5", "-", "12.7"))):
    _table1(_ds.replace("-", "") + "-pyramidnet272",
            TrainConfig(dataset=_ds, model="pyramidnet272", epochs=300, lr=0.05, lr_schedule="cosine",
                        weight_decay=5e-5, **{**_C, "batch_size": 64, "augment": "autoaugment"}),
            _errs, rsgd=dict(gamma_schedule="cosine", gamma_max=0.1, rsgd_gamma0=0.0,
                             **(dict(k_late=3, k_switch=220) if _ds == "cifar-10" else {})),
            esgd=None, doc=f"Table 1, {_ds.upper()} PyramidNet-272 a200 + ShakeDrop: 300 ep cosine lr 0.05, bs 64, "
                           "wd 5e-5, AutoAugment + Cutout 16")
_table1("cifar100-efficientnet-b0",
        TrainConfig(dataset="cifar-100", model="efficientnet-b0", epochs=350, optimizer="rmsprop", lr=0.01,
                    momentum=0.9, nesterov=False, lr_schedule="exponential", lr_decay=0.97, lr_every=2,
                    batch_size=64, weight_decay=1e-5, augment="efficientnet"),
        ("20.5", "20.6", "20.1", "19.5"), rsgd=dict(rsgd_gamma0=5e-6),
        esgd=dict(optimizer="sgd", nesterov=True, lr=0.5, lr_decay=0.92, lr_every=2 * 5, inner_lr=0.05),
        doc="Table 1, CIFAR-100 EfficientNet-B0 (224 px): 350 ep RMSprop 0.9, bs 64, wd 1e-5, lr 0.01 x0.97 / 2 ep")
_table1("tinyimagenet-resnet50",
        TrainConfig(dataset="tiny-imagenet", model="resnet50", epochs=270, lr=0.05, lr_schedule="multistep",
                    milestones=(90, 180, 240), weight_decay=1e-4, **{**_C, "augment": "fast-autoaugment"}),
        ("45.2", "41.5", "41.7", "39.2"), rsgd={},
        esgd=dict(lr=0.8, epochs=50 * 5, milestones=(18 * 5, 36 * 5, 48 * 5), inner_lr=0.02),
        doc="Table 1, Tiny ImageNet ResNet-50: 270 ep, lr 0.05 /10 at 90, 180, 240, wd 1e-4, Fast AutoAugment "
            "(ImageNet policy; `localentropy deep download fast-autoaugment`) then crop and flip")
_table1("tinyimagenet-densenet121",
        TrainConfig(dataset="tiny-imagenet", model="densenet121", epochs=200, lr=0.05, lr_schedule="multistep",
                    milestones=(100, 150), weight_decay=1e-4, **{**_C, "augment": "fast-autoaugment"}),
        ("41.4", "39.8", "38.6", "38.9"), rsgd={},
        esgd=dict(lr=0.5, epochs=40 * 5, milestones=(25 * 5, 30 * 5), inner_lr=0.02, esgd_gamma0=1.0,
                  esgd_gamma1=2e-5),
        doc="Table 1, Tiny ImageNet DenseNet-121: 200 ep, lr 0.05 /10 at 100, 150, wd 1e-4, Fast AutoAugment "
            "(ImageNet policy; `localentropy deep download fast-autoaugment`) then crop and flip")

# paper 002: MLPs (Sec. 4: lr 1e-4, momentum 0.9, bs 256, 120 epochs, no weight decay, y = 4)
_M = dict(lr=1e-4, momentum=0.9, nesterov=False, batch_size=256, weight_decay=0.0, augment="none",
          lr_schedule="constant")
for _ds, _short, _model, _layers, _fig in (
        ("fashion-mnist", "fmnist", "mlp2", ("fc1", "fc2", "fc1,fc2"), "Figures 3, 4 left"),
        ("mnist", "mnist", "mlp3", ("fc1", "fc2", "fc3", "fc1,fc2", "fc1,fc3", "fc2,fc3", "fc1,fc2,fc3"),
         "Figure 4 right")):
    base = TrainConfig(dataset=_ds, model=_model, epochs=120, **_M)
    _add(dataclasses.replace(base, name=f"{_short}-{_model}-sgd", method="sgd",
                             reported=f"002 {_fig}: curve without regularisation (no number in the text)",
                             description=f"paper 002 Sec. 4, {_model.upper()} on {_ds}: SGD, 120 ep, lr 1e-4"))
    for _m in ("pla", "plea") if _ds == "fashion-mnist" else ("pla",):
        for _l in _layers:
            _add(dataclasses.replace(
                base, name=f"{_short}-{_model}-{_m}-{_l.replace(',', '-')}", method=_m, layers=_l, pla_y=4,
                R=0.01, reported=f"002 {_fig}: accuracy against R (no number in the text)",
                description=f"paper 002 Sec. 4, {_model.upper()} on {_ds}: {_m.upper()} on {_l}, y=4, R scanned "
                            "(0.01 here; --set R=...)"))
for _l in ("fc1", "fc2", "fc1,fc2"):
    _add(dataclasses.replace(PRESETS[f"fmnist-mlp2-pla-{_l.replace(',', '-')}"],
                             name=f"fmnist-mlp2-pla-y8-{_l.replace(',', '-')}", pla_y=8,
                             reported="002 Figure 5 (no number in the text)",
                             description=f"paper 002 Sec. 4.4, finer sampling: PLA on {_l}, y=8"))
# paper 002: conv nets (Sec. 5)
_CONV = {"cifar10-convnet24": TrainConfig(dataset="cifar-10", model="convnet24", epochs=360, lr=1e-4, momentum=0.9,
                                          nesterov=False, batch_size=256, augment="pla-cifar"),
         "stl10-convnet25": TrainConfig(dataset="stl-10", model="convnet25", epochs=960, lr=1e-5, momentum=0.9,
                                        nesterov=False, batch_size=64, augment="pla-stl")}
for _row, base in _CONV.items():
    fig = "Figure 6" if _row.startswith("cifar") else "Figure 8"
    _add(dataclasses.replace(base, name=f"{_row}-sgd", method="sgd", reported=f"002 {fig} (no number in the text)",
                             description=f"paper 002 Sec. 5, {base.model} on {base.dataset}: SGD, constant lr"))
    for _l in ("fc1", "fc2"):
        _add(dataclasses.replace(base, name=f"{_row}-pla-{_l}", method="pla", layers=_l, pla_y=4, R=0.01,
                                 reported=f"002 {fig} (no number in the text)",
                                 description=f"paper 002 Sec. 5, {base.model} on {base.dataset}: PLA on {_l}, y=4, "
                                             "R=0.01"))
for _wd in (1e-2, 1e-3, 1e-4):
    _add(dataclasses.replace(_CONV["cifar10-convnet24"], name=f"cifar10-convnet24-sgd-wd{_wd:g}", method="sgd",
                             weight_decay=_wd, reported="002 Figure 7 (no number in the text)",
                             description=f"paper 002 Sec. 5.2.1, weight-decay comparison: SGD with wd {_wd:g}"))

# CPU-scale evidence on Fashion-MNIST (`localentropy deep evidence`): every method at the same data budget
for _model, _short in (("small-convnet", "smallconvnet"), ("mlp2", "mlp2")):
    base = TrainConfig(dataset="fashion-mnist", model=_model, epochs=10, lr=0.02, momentum=0.9, nesterov=True,
                       batch_size=128, weight_decay=1e-4, augment="none", lr_schedule="multistep",
                       milestones=(7,), train_subset=10000, test_subset=2000)
    extra = {"sgd": {}, "esgd": dict(lr=0.5, inner_lr=0.02, esgd_gamma0=0.03), "rsgd": dict(lr=0.05, rsgd_gamma0=1e-3, gamma_growth=1e3),
             "rsgd-xy": dict(lr=0.05, rsgd_gamma0=1e-3, gamma_growth=1e3), "pla": dict(layers="fc2" if _model == "mlp2" else "fc1", R=0.01),
             "plea": dict(layers="fc2" if _model == "mlp2" else "fc1", R=0.01), "sam": dict(rho=0.05)}
    for _m, kw in extra.items():
        _add(dataclasses.replace(base, name=f"cpu-fmnist-{_short}-{_m}", method=_m, reported="-", **kw,
                                 description=f"CPU-scale evidence: {_model} on Fashion-MNIST (10k train images), "
                                             f"{METHOD_NAMES[_m]}, 10 budget epochs"))


# paper 002 reports the best test accuracy during training beside the final one (selected on the test set)
PAPER_002 = frozenset(n for n, c in PRESETS.items() if c.reported.startswith("002 "))


def reports_best_test(config: TrainConfig) -> bool:
    """Whether ``config`` is a paper-002 experiment, whose paper reports the best *test* accuracy during
    training (a figure selected on the test set) as well as the final one."""
    return config.name in PAPER_002 or config.reported.startswith("002 ")


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `localentropy deep presets` lists them"
        raise DeepError(f"unknown preset {name!r}{hint}") from None


def summary(config: TrainConfig) -> str:
    """The settings that distinguish a run, on one line (what ``deep presets`` prints)."""
    c = config
    parts = [f"{c.dataset} {c.model} {METHOD_NAMES[c.method]}", f"{c.epochs:g} ep", f"bs {c.batch_size}",
             f"{c.optimizer} lr {c.lr:g}"]
    if c.lr_schedule == "multistep":
        parts.append(f"/{1 / c.lr_decay:g} at {','.join(f'{m:g}' for m in c.milestones)}")
    elif c.lr_schedule == "exponential":
        parts.append(f"x{c.lr_decay:g} per {c.lr_every:g} ep")
    elif c.lr_schedule == "cosine":
        parts.append("cosine")
    if c.warmup_epochs:
        parts.append(f"warm-up {c.warmup_lr:g}->{c.lr:g} over {c.warmup_epochs:g} ep")
    parts.append(f"wd {c.weight_decay:g}")
    if c.method == "esgd":
        g = "auto" if c.esgd_gamma0 is None else f"{c.esgd_gamma0:g}"
        parts.append(f"L {c.L} lr' {c.inner_lr:g} g0 {g} g1 {'x10' if c.esgd_gamma1 is None else f'{c.esgd_gamma1:g}'}")
    if c.method in ("rsgd", "rsgd-xy"):
        g = "auto" if c.rsgd_gamma0 is None else f"{c.rsgd_gamma0:g}"
        foc = f"cosine gmax {c.gamma_max:g}" if c.gamma_schedule == "cosine" else f"g0 {g} x{c.gamma_growth:g}"
        parts.append(f"y {c.replicas} K {c.K}" + (f"->{c.k_late} at {c.k_switch:g}" if c.k_late else "") + f" {foc}")
    if c.method in ("pla", "plea"):
        parts.append(f"y {c.pla_y} R {c.R:g} on {c.layers or 'all'}")
    if c.method == "sam":
        parts.append(f"rho {c.rho:g}")
    parts.append(f"aug {c.augment}")
    if c.val_split:
        parts.append(f"val {c.val_split}")
    return ", ".join(parts)


__all__ = ["TrainConfig", "PRESETS", "PAPER_002", "METHODS", "METHOD_NAMES", "budget_factor", "get_preset",
           "preset_names", "reports_best_test", "with_overrides", "validate", "summary", "FIELD_TYPES", "parse_field"]
