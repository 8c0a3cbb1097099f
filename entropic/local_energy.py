"""Local energy of any ``nn.Module``, paper 000 Eq. 4 and App. B.2.

    δE_train(w, σ) = E_z E_train(w + σ z ⊙ w) − E_train(w),   z ~ N(0, I)

the mean rise of the training error (and, here, also of the training loss) when the chosen
weights get multiplicative Gaussian noise of relative size σ (``noise="additive"`` gives
w + σ z instead). Each σ of a grid gets M independent draws of z; the result holds the mean and
the standard error over draws of δ(error) and δ(loss), the unperturbed values and every draw.

The perturbed networks are evaluated without touching the model: the perturbed weights of a
chunk of ``batch_draws`` draws are stacked and run in one ``torch.func.vmap`` over
``torch.func.functional_call``; a per-draw loop is the fallback for models vmap cannot handle
(and the benchmark's baseline). Noise is drawn draw by draw in the same order in both paths, so
for one seed they give the same numbers. The model is put in eval mode (dropout off, BatchNorm on
running statistics) and every submodule's mode is restored afterwards.

Batching saves per-forward overhead (kernel launches, thread-pool wake-ups, Python), not
arithmetic: on a GPU or a busy multi-threaded CPU it pays off for small models; on one quiet CPU
thread, or for conv nets on CPU, it is roughly even with the loop (benchmarks/bench_local_energy.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.params import Selection, select_parameters

NOISES = ("multiplicative", "additive")


def classification_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of misclassified samples in a batch (the train error E_train of Eq. 4).

    Outputs (n, C) with C ≥ 2: argmax against integer class targets. A single output per sample
    ((n,) or (n, 1)): sign agreement with ±1 targets, as for the committee machine (000, Eq. 7);
    an output of exactly 0 counts as an error.
    """
    if outputs.ndim == 2 and outputs.shape[1] >= 2:
        return (outputs.argmax(dim=1) != targets).to(torch.float64).mean()
    out = outputs.reshape(outputs.shape[0])
    return (torch.sign(out) != targets.reshape(out.shape).to(out.dtype)).to(torch.float64).mean()


@dataclass(frozen=True)
class LocalEnergy:
    """A local-energy profile δE(σ) (000, Eq. 4) with its Monte Carlo standard errors.

    ``errors`` and ``losses`` are the perturbed values of every draw, shape (len(sigmas), draws);
    ``delta_*`` their mean minus the unperturbed value, ``*_se`` the standard error of that mean
    (sample standard deviation over draws / √draws). Loss fields are None when no loss was measured.
    """

    sigmas: np.ndarray
    error0: float
    loss0: float | None
    delta_error: np.ndarray
    delta_error_se: np.ndarray
    delta_loss: np.ndarray | None
    delta_loss_se: np.ndarray | None
    errors: np.ndarray
    losses: np.ndarray | None
    draws: int
    noise: str
    params: tuple[str, ...]
    method: str

    def as_dict(self) -> dict:
        """Plain lists and numbers, e.g. for JSON or a CSV writer."""
        out = {}
        for k, v in self.__dict__.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple) else v)
        return out


def _as_args(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _batches(data, batch_size):
    """The data as a re-iterable list-like of (inputs, targets) batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], torch.Tensor) and (
        isinstance(data[0], torch.Tensor) or isinstance(data[0], (tuple, list))
    ):
        inputs, targets = data
        first = _as_args(inputs)[0]
        n = targets.shape[0]
        if n == 0:
            raise EntropicError("data holds no samples (targets has length 0)")
        if any(a.shape[0] != n for a in _as_args(inputs)):
            raise EntropicError(
                f"inputs and targets disagree on the number of samples: {first.shape[0]} vs {n}"
            )
        if batch_size is None or batch_size >= n:
            return [(inputs, targets)]
        out = []
        for s in range(0, n, batch_size):
            sl = slice(s, s + batch_size)
            ins = tuple(a[sl] for a in _as_args(inputs))
            out.append((ins if isinstance(inputs, (tuple, list)) else ins[0], targets[sl]))
        return out
    if iter(data) is data:
        raise EntropicError(
            "data must be re-iterable (a DataLoader, a list of batches or an (inputs, targets) pair), "
            "not a one-shot iterator: every block of draws passes over it again"
        )
    return data


def _check_sigmas(sigmas) -> np.ndarray:
    try:
        s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise EntropicError(f"sigmas must be numbers, got {sigmas!r}") from None
    if s.size == 0:
        raise EntropicError("sigmas is empty: give at least one noise level σ")
    for v in s:
        if not math.isfinite(v) or v < 0:
            raise EntropicError(f"every σ must be finite and >= 0, got σ = {v}")
    return s


def _restore_modes(modes):
    for m, training in modes:
        m.training = training


def local_energy(
    model: nn.Module,
    data,
    sigmas: Iterable[float],
    *,
    draws: int = 100,
    params: Selection = None,
    include_biases: bool = False,
    noise: str = "multiplicative",
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    error_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    batch_draws: int = 32,
    batch_size: int | None = None,
    vectorize: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LocalEnergy:
    """Local-energy profile δE_train(w, σ) of ``model`` on ``data`` (000, Eq. 4).

    data: an ``(inputs, targets)`` pair of tensors (split into chunks of ``batch_size`` if given)
    or a re-iterable of such batches (a DataLoader). Batches are moved to the model's device.
    params: which weights get noise (see ``entropic.params``; default every weight, no biases).
    criterion(outputs, targets) -> the batch's mean loss; default cross-entropy for (n, C ≥ 2)
    outputs and no loss for single-output models. error_fn(outputs, targets) -> the batch's mean
    error; default ``classification_error`` (argmax, or sign agreement with ±1 targets).
    Both are averaged over the data weighted by batch size. draws: M ≥ 2 per σ. seed or
    generator make the result reproducible (noise drawn on the generator's device, CPU for seed).
    batch_draws draws are evaluated together in one vmap (bounding memory); vectorize=False, or a
    model vmap cannot handle, uses the per-draw loop. progress(done, total) is called after each
    block of draws, counting draws over all σ.
    """
    if not isinstance(model, nn.Module):
        raise EntropicError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    s = _check_sigmas(sigmas)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise EntropicError(f"draws must be an integer >= 2 (for a standard error), got {draws!r}")
    if isinstance(batch_draws, bool) or not isinstance(batch_draws, int) or batch_draws < 1:
        raise EntropicError(f"batch_draws must be an integer >= 1, got {batch_draws!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise EntropicError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if noise not in NOISES:
        raise EntropicError(f"noise must be one of {NOISES}, got {noise!r}")
    if criterion is not None and not callable(criterion):
        raise EntropicError(f"criterion must be callable, got {type(criterion).__name__}")
    if error_fn is not None and not callable(error_fn):
        raise EntropicError(f"error_fn must be callable, got {type(error_fn).__name__}")
    if generator is not None and seed is not None:
        raise EntropicError("pass either generator or seed, not both")
    chosen = select_parameters(model, params, include_biases=include_biases)
    batches = _batches(data, batch_size)
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    err_fn = error_fn or classification_error
    device = next(iter(chosen.values())).device

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return _profile(
                model, batches, s, draws, chosen, noise, criterion, err_fn, generator,
                batch_draws, vectorize, progress, device,
            )
    finally:
        _restore_modes(modes)


def _profile(model, batches, s, draws, chosen, noise, criterion, err_fn, generator,
             batch_draws, vectorize, progress, device):
    # unperturbed pass: E_train(w), and whether a loss is measured at all
    n_tot, err_sum, loss_sum = 0, 0.0, 0.0
    loss_fn = criterion
    for inputs, targets in _on_device(batches, device):
        out = model(*inputs)
        if loss_fn is None and n_tot == 0 and out.ndim == 2 and out.shape[1] >= 2:
            loss_fn = F.cross_entropy
        n = targets.shape[0]
        err_sum += n * float(_scalar(err_fn(out, targets), "error_fn"))
        if loss_fn is not None:
            loss_sum += n * float(_scalar(loss_fn(out, targets), "criterion"))
        n_tot += n
    if n_tot == 0:
        raise EntropicError("data holds no batches")
    error0 = err_sum / n_tot
    loss0 = loss_sum / n_tot if loss_fn is not None else None

    S, M = len(s), draws
    errors = np.empty((S, M))
    losses = np.empty((S, M)) if loss_fn is not None else None
    use_vmap = [bool(vectorize)]
    total, done = S * M, 0
    for i, sigma in enumerate(s):
        for start in range(0, M, batch_draws):
            B = min(batch_draws, M - start)
            stacked = _perturbed(chosen, sigma, B, noise, generator)
            e, l = _evaluate(model, batches, device, stacked, B, err_fn, loss_fn, use_vmap)
            errors[i, start:start + B] = e / n_tot
            if losses is not None:
                losses[i, start:start + B] = l / n_tot
            done += B
            if progress is not None:
                progress(done, total)

    def stats(values, base):
        d = values - base
        return d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(M)

    de, de_se = stats(errors, error0)
    dl, dl_se = stats(losses, loss0) if losses is not None else (None, None)
    return LocalEnergy(
        sigmas=s, error0=error0, loss0=loss0, delta_error=de, delta_error_se=de_se,
        delta_loss=dl, delta_loss_se=dl_se, errors=errors, losses=losses, draws=M, noise=noise,
        params=tuple(chosen), method="vmap" if use_vmap[0] else "loop",
    )


def _scalar(x, what):
    x = torch.as_tensor(x)
    if x.ndim != 0:
        raise EntropicError(f"{what} must return the batch's mean as a scalar, got shape {tuple(x.shape)}")
    return x


def _on_device(batches, device):
    for batch in batches:
        try:
            inputs, targets = batch
        except (TypeError, ValueError):
            raise EntropicError("each batch of data must be an (inputs, targets) pair") from None
        args = tuple(a.to(device) for a in _as_args(inputs))
        yield args, torch.as_tensor(targets).to(device)


def _perturbed(chosen, sigma, B, noise, generator):
    """B perturbed copies of each chosen weight, {name: (B, *shape)}; z drawn draw by draw.

    Drawing per draw (not one (B, ...) tensor) keeps the random stream independent of B, so the
    vmap and loop paths, and any batch_draws, see the same noise for a seed.
    """
    zs = {}
    for n, p in chosen.items():
        dev = generator.device if generator is not None else p.device
        zs[n] = torch.empty((B, *p.shape), dtype=p.dtype, device=dev)
    for b in range(B):
        for n in chosen:
            torch.randn(zs[n].shape[1:], generator=generator, out=zs[n][b])
    out = {}
    for n, p in chosen.items():
        z = zs[n].to(p.device)
        w = p.detach().unsqueeze(0)
        if noise == "multiplicative":
            out[n] = torch.addcmul(w, z, w, value=float(sigma))  # w + σ z ⊙ w
        else:
            out[n] = z.mul_(float(sigma)).add_(w)  # w + σ z
    return out


def _evaluate(model, batches, device, stacked, B, err_fn, loss_fn, use_vmap):
    """Summed (over samples) error and loss of each of the B perturbed copies, as float64 arrays."""
    if use_vmap[0]:
        try:
            return _evaluate_vmap(model, batches, device, stacked, B, err_fn, loss_fn)
        except (RuntimeError, NotImplementedError, ValueError, TypeError):
            use_vmap[0] = False  # vmap cannot handle this model: loop from now on
    return _evaluate_loop(model, batches, device, stacked, B, err_fn, loss_fn)


def _evaluate_vmap(model, batches, device, stacked, B, err_fn, loss_fn):
    def per_copy(ps, args, targets):
        out = functional_call(model, ps, args)
        e = err_fn(out, targets)
        l = loss_fn(out, targets) if loss_fn is not None else out.new_zeros(())
        return e, l

    f = vmap(per_copy, in_dims=(0, None, None), randomness="different")
    e_sum = torch.zeros(B, dtype=torch.float64, device=device)
    l_sum = torch.zeros(B, dtype=torch.float64, device=device)
    for args, targets in _on_device(batches, device):
        e, l = f(stacked, args, targets)
        if e.shape != (B,) or l.shape != (B,):
            raise EntropicError("error_fn and criterion must return the batch's mean as a scalar")
        n = targets.shape[0]
        e_sum += n * e.to(torch.float64)
        l_sum += n * l.to(torch.float64)
    return e_sum.cpu().numpy(), l_sum.cpu().numpy()


def _evaluate_loop(model, batches, device, stacked, B, err_fn, loss_fn):
    e_sum = np.zeros(B)
    l_sum = np.zeros(B)
    for b in range(B):
        ps = {n: t[b] for n, t in stacked.items()}
        for args, targets in _on_device(batches, device):
            out = functional_call(model, ps, args)
            n = targets.shape[0]
            e_sum[b] += n * float(_scalar(err_fn(out, targets), "error_fn"))
            if loss_fn is not None:
                l_sum[b] += n * float(_scalar(loss_fn(out, targets), "criterion"))
    return e_sum, l_sum
