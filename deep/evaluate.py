"""Evaluating a trained network again: ``localentropy deep eval RUN_DIR``.

``evaluate_run(run_dir)`` rebuilds the network of a ``deep train`` folder from its ``config.json``, loads
``model.pt`` (``best=True``: ``model-best.pt``, the network of the lowest validation error) with
``torch.load(weights_only=True)``, and measures it on the images the run used: the test error and loss
on its first ``test_subset`` test images, the validation error and loss on the run's held-out images
when it had ``val_split`` (the same subset, chosen by the run's seed), and optionally the local energy
δE_train(σ) (paper 000, Eq. 4) on the first ``energy_samples`` of its training images (the validation
images excluded), with the run's ``energy_draws`` draws per σ. ``data`` or ``data_dir`` evaluate on
another copy of the data set (the same subsets are taken from it). Errors the user can fix (no such
folder, no or a corrupted model file, a configuration the model does not fit) are :class:`DeepError`.
"""

from __future__ import annotations

import json
import math
import pickle
import zipfile
from pathlib import Path

import torch

from localentropy.deep.errors import DeepError
from localentropy.deep.presets import TrainConfig, validate


def read_run_config(run_dir) -> TrainConfig:
    """The validated configuration in ``run_dir/config.json``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise DeepError(f"{run}: no such folder (give the output folder of a `localentropy deep train` run)")
    path = run / "config.json"
    if not path.is_file():
        raise DeepError(f"{run}: no config.json (not the folder of a `localentropy deep train` run)")
    try:
        return validate(TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))))
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeepError(f"{path}: not a training configuration ({why[:200]})") from None


def load_model(run_dir, config: TrainConfig, data, device="cpu", name: str = "model.pt"):
    """The network of ``run_dir/name`` rebuilt from ``config``, in eval mode; tensors only are read."""
    from localentropy.deep.train import model_factory

    path = Path(run_dir) / name
    if not path.is_file():
        hint = (" (the run had no val_split, or no epoch has finished)" if name == "model-best.pt"
                else " (the run has not finished: rerun `deep train` to finish it)")
        raise DeepError(f"{path}: no such file{hint}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: anything else is truncated or foreign
        raise DeepError(f"{path}: cannot read the model (not a file torch.save wrote, or a truncated one)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a foreign object, a truncated or foreign file
        if isinstance(exc, pickle.UnpicklingError) or "weights only load failed" in str(exc).lower():
            raise DeepError(f"{path}: holds objects other than tensors and numbers; refused, since loading them "
                            f"would run code from the file (a `deep train` run saves tensors only)") from None
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeepError(f"{path}: cannot read the model ({why[:200]})") from None
    if not isinstance(state, dict):
        raise DeepError(f"{path}: not a model's state_dict (a {type(state).__name__})")
    model = model_factory(config, data, device)()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        raise DeepError(f"{path}: does not fit the {config.model} of {Path(run_dir) / 'config.json'} "
                        f"({str(exc).strip().splitlines()[0][:200]})") from None
    return model.eval()


def evaluate_run(run_dir, *, best: bool = False, data=None, data_dir=None, sigmas=(), device="cpu",
                 seed: int = 0) -> dict:
    """The measurements of a trained run's network (module docstring), as one flat-ish dict:
    run, model, dataset, test_error, test_loss, test_images, [val_error, val_loss, val_images],
    [energy: one {sigma, delta_error, delta_error_se, delta_loss, delta_loss_se} per σ, with
    energy_samples, energy_draws, energy_error0]."""
    from localentropy.deep.datasets import load_images
    from localentropy.deep.train import eval_stack, evaluate, run_images
    from localentropy.entropic import local_energy

    sigmas = [float(s) for s in sigmas]
    if any(not (math.isfinite(s) and s >= 0) for s in sigmas):
        raise DeepError(f"sigma must be numbers >= 0, got {sigmas}")
    config = read_run_config(run_dir)
    name = "model-best.pt" if best else "model.pt"
    if best and not config.val_split:
        raise DeepError(f"{run_dir}: the run had no validation split (val_split=0), so no model-best.pt")
    device = torch.device(device)
    if data is None:
        data = load_images(config.dataset, data_dir, device)
    model = load_model(run_dir, config, data, device, name)
    train_x, train_t, val_x, val_t, test_x, test_t = run_images(config, data)
    ev = eval_stack(config, data)
    out = {"run": str(run_dir), "model": name, "dataset": config.dataset, "source": data.source}
    out["test_loss"], out["test_error"] = evaluate(model, test_x, test_t, ev, config.eval_batch, device)
    out["test_images"] = int(test_x.shape[0])
    if config.val_split:
        out["val_loss"], out["val_error"] = evaluate(model, val_x, val_t, ev, config.eval_batch, device)
        out["val_images"] = int(val_x.shape[0])
    if sigmas:
        x = ev(train_x[:config.energy_samples].to(device), None)
        t = train_t[:config.energy_samples].to(device)
        le = local_energy(model, (x, t), sigmas, draws=config.energy_draws, seed=seed, batch_size=config.eval_batch)
        out["energy_samples"], out["energy_draws"] = int(x.shape[0]), int(config.energy_draws)
        out["energy_error0"] = float(le.error0)
        out["energy"] = [{"sigma": float(s), "delta_error": float(le.delta_error[j]),
                          "delta_error_se": float(le.delta_error_se[j]),
                          "delta_loss": float(le.delta_loss[j]) if le.delta_loss is not None else None,
                          "delta_loss_se": float(le.delta_loss_se[j]) if le.delta_loss_se is not None else None}
                         for j, s in enumerate(le.sigmas)]
    return out


def one_line(result: dict) -> str:
    """``evaluate_run``'s result on one line."""
    parts = [f"{result['run']} ({result['model']}): test error {result['test_error']:.4f}, loss {result['test_loss']:.4f} "
             f"({result['test_images']} images)"]
    if "val_error" in result:
        parts.append(f"val error {result['val_error']:.4f}, loss {result['val_loss']:.4f} ({result['val_images']} images)")
    for e in result.get("energy", ()):
        parts.append(f"δE_train({e['sigma']:g}) = {e['delta_error']:.4f} ± {e['delta_error_se']:.4f}")
    if "energy" in result:
        parts[-1] += f" ({result['energy_samples']} training images, {result['energy_draws']} draws)"
    return "; ".join(parts)


__all__ = ["read_run_config", "load_model", "evaluate_run", "one_line"]
