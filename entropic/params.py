"""Choosing the subset of weights that a partial local entropy, a local energy or a layer signal acts on.

Paper 002 smooths the loss along a subspace of weight space spanned by whole layers and never
along the biases (002, Sec. 4, footnote 15: "the weight space spanned by W is formed only by the
synaptic coefficients connecting different layers, while it excludes biases"). All weights
together is the isotropic case of paper 000. One selection rule serves PLA/PLEA, the local
energy and the layer signal, so a name means the same subset everywhere.

A selection ``params`` is one of

- ``None``: every weight of the model (biases excluded unless ``include_biases``);
- a string: a module name (``"fc1"``, ``"features.0"``) selecting every parameter under it, or a
  full parameter name (``"fc1.weight"``);
- a callable ``predicate(name, parameter) -> bool`` over ``model.named_parameters()``;
- one of the model's submodules (``model.fc1``) or own ``nn.Parameter`` objects;
- a list/tuple mixing any of the names, submodules and parameters above (their union).

A parameter counts as a bias when the last component of its name contains ``"bias"``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Union

import torch
from torch import nn

from localentropy.entropic.errors import EntropicError

Selection = Union[None, str, Iterable, Callable[[str, nn.Parameter], bool]]


def is_bias(name: str) -> bool:
    """True for a bias parameter (last name component contains 'bias', e.g. 'fc1.bias')."""
    return "bias" in name.rsplit(".", 1)[-1]


def _under(name: str, key: str) -> bool:
    return key == "" or name == key or name.startswith(key + ".")


def select_parameters(
    model: nn.Module, params: Selection = None, *, include_biases: bool = False
) -> dict[str, nn.Parameter]:
    """The chosen parameters of ``model`` as an ordered ``{name: parameter}`` dict.

    Order follows ``model.named_parameters()`` (tied parameters appear once). Raises
    EntropicError when a name matches nothing or when the selection ends up empty.
    """
    if not isinstance(model, nn.Module):
        raise EntropicError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = list(model.named_parameters())
    if not named:
        raise EntropicError(f"model {type(model).__name__} has no parameters to select from")

    if params is None:
        chosen = [(n, p) for n, p in named]
    elif callable(params) and not isinstance(params, nn.Module):
        chosen = [(n, p) for n, p in named if bool(params(n, p))]
    else:
        if isinstance(params, (str, torch.Tensor, nn.Module)):
            items = [params]
        else:
            try:
                items = list(params)
            except TypeError:
                raise EntropicError(
                    f"params must be None, a name, a submodule, a parameter, a list of these, or a "
                    f"predicate; got {type(params).__name__}"
                ) from None
        if not items:
            raise EntropicError("params is an empty list: select at least one parameter")
        keys = [x for x in items if isinstance(x, str)]
        ids = set()
        for x in items:
            if isinstance(x, nn.Module):
                ids.update(id(p) for p in x.parameters())
            elif isinstance(x, torch.Tensor):
                ids.add(id(x))
            elif not isinstance(x, str):
                raise EntropicError(
                    f"params list holds a {type(x).__name__}; use names, submodules or parameters"
                )
        by_name = {n for n, _ in _by_names(model, named, keys)} if keys else set()
        own = {id(p) for _, p in named}
        if ids - own:
            raise EntropicError(
                f"params lists {len(ids - own)} tensor(s) that are not parameters of {type(model).__name__}"
            )
        chosen = [(n, p) for n, p in named if n in by_name or id(p) in ids]

    dropped = [n for n, _ in chosen if is_bias(n)] if not include_biases else []
    chosen = [(n, p) for n, p in chosen if include_biases or not is_bias(n)]
    if not chosen:
        extra = f" (biases {dropped} are excluded; pass include_biases=True)" if dropped else ""
        raise EntropicError(f"parameter selection {params!r} is empty{extra}")
    return dict(chosen)


def _by_names(model: nn.Module, named, keys: list[str]):
    names = [n for n, _ in named]
    for key in keys:
        if not any(_under(n, key) for n in names):
            raise EntropicError(
                f"no parameter named or under {key!r} in {type(model).__name__}; "
                f"parameters are {names[:12]}{' ...' if len(names) > 12 else ''}"
            )
    return [(n, p) for n, p in named if any(_under(n, k) for k in keys)]


def layer_name(param_name: str) -> str:
    """The owning module's name of a parameter ('fc1.weight' -> 'fc1'; a top-level 'weight' -> 'weight')."""
    head, _, _ = param_name.rpartition(".")
    return head or param_name
