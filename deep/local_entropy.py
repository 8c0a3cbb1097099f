"""Local entropy of a trained deep net (paper 000, Sec. 5; paper 002's restriction to layers).

``read_config(run_dir)`` and ``trained_model(run_dir, config, data)`` rebuild the network a
``localentropy deep train`` run saved (its ``config.json`` and ``model.pt``); ``run_local_entropy(run_dir, deltas, layers=...)`` estimates
φ_G(Δ), δ(Δ) and Φ_LE(d) around those weights with ``entropic.local_entropy`` on the run's first
``samples`` training images (normalised as for evaluation), the weights outside ``layers`` fixed.
The estimator is the general, slow path of ``entropic.local_entropy`` (elliptical slice sampling,
validated on tiny networks only): check a curve's stability in ``chains`` and ``moves``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import torch

from localentropy.deep.errors import DeepError
from localentropy.deep.presets import TrainConfig


def read_config(run_dir) -> TrainConfig:
    """The configuration of a finished ``deep train`` run folder (which must hold ``config.json`` and ``model.pt``)."""
    run = Path(run_dir)
    for p in (run / "config.json", run / "model.pt"):
        if not p.is_file():
            raise DeepError(f"{run}: no {p.name} (not the folder of a finished `localentropy deep train` run)")
    try:
        return TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise DeepError(f"{run / 'config.json'}: not a training configuration ({exc})") from None


def trained_model(run_dir, config: TrainConfig, data, device="cpu"):
    """The network a finished ``deep train`` run saved, in eval mode (``config``: its ``read_config``)."""
    from localentropy.deep.train import model_factory

    model_path = Path(run_dir) / "model.pt"
    try:
        state = torch.load(model_path, map_location=device, weights_only=True)
    except Exception as exc:  # a foreign object, a truncated or foreign file
        import pickle

        if isinstance(exc, pickle.UnpicklingError) or "weights only load failed" in str(exc).lower():
            raise DeepError(f"{model_path}: holds objects other than tensors and numbers; refused, since loading "
                            f"them would run code from the file (a `deep train` run saves tensors only)") from None
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeepError(f"{model_path}: cannot read the model ({why[:200]})") from None
    model = model_factory(config, data, device)()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise DeepError(f"{model_path}: does not fit {config.model} ({str(exc).splitlines()[0][:200]})") from None
    return model.eval()


def run_local_entropy(run_dir, deltas, *, layers=None, scale: str = "relative", samples: int = 1000,
                      chains: int = 64, groups: int = 8, moves: int = 2, seed: int = 0, device="cpu", data=None,
                      data_dir=None, stop_below=None, checkpoint=None, progress: Optional[Callable] = None):
    """φ_G, δ and Φ_LE of a trained run's network over the weights of ``layers`` (names or prefixes,
    as ``entropic.select_parameters``; None: every weight) on its first ``samples`` training images (those
    the run trained on: a validation split is left out).
    ``scale="relative"`` (default): Δ and d in units of each layer's root-mean-square weight, so that
    layers and methods are compared at the same relative perturbation (as δE_train's σ)."""
    from localentropy.deep.datasets import load_images
    from localentropy.deep.train import eval_stack, run_images
    from localentropy.entropic import local_entropy  # the function (module: entropic.module_sampling)

    if int(samples) != samples or samples < 1:
        raise DeepError(f"samples must be a positive integer, got {samples}")
    config = read_config(run_dir)
    if data is None:
        data = load_images(config.dataset, data_dir, device)
    model = trained_model(run_dir, config, data, device)
    train_x, train_t, *_ = run_images(config, data)  # the run's training images: its validation split left out
    n = min(int(samples), train_x.shape[0])
    x = eval_stack(config, data)(train_x[:n].to(device), None)
    y = train_t[:n].to(device)
    return local_entropy(model, x, y, deltas, params=layers, scale=scale, chains=chains, groups=groups, moves=moves,
                         seed=seed, stop_below=stop_below, device=device, dtype=torch.float32, checkpoint=checkpoint,
                         progress=progress)


__all__ = ["read_config", "trained_model", "run_local_entropy"]
