"""The training loop of the deep-net experiments (paper 000 Sec. 6 / App. C, paper 002 Secs. 4, 5).

``train(config, data, out_dir=..., progress=...)`` trains any registry model on any data set with the
method the config names (:mod:`deep.methods`), and returns a :class:`TrainResult` with the per-epoch
metrics, the local-energy profiles δE_train(σ) (000, Eq. 4) and layer signals (002, Eq. 2) measured at
the chosen epochs, and the evaluated network (for rSGD, the centre w̄).

- **Budget.** The run takes round(epochs · n/B / c) steps, c = L (eSGD), y (rSGD), 1 otherwise
  (:func:`deep.presets.budget_factor`): every method consumes the same number of samples, except
  rSGD×y. The learning rate follows the budget clock t = steps · c · B / n, per step.
- **Checkpoints.** With ``out_dir`` a checkpoint is written atomically after every epoch (model and
  optimizer states, every generator's state, the metrics so far); calling ``train`` again with the
  same config resumes from it and gives the same result as an uninterrupted run (bitwise on one
  machine and device). ``stop_after`` ends the call after that many epochs (an interruption). A
  checkpoint written with a smaller ``epochs`` and otherwise the same configuration is extended to the
  new budget (from the step it stopped at; schedules that depend on the budget, cosine lr and eSGD/rSGD's γ, are
  recomputed over the new one); any other difference is refused.
- **Validation.** ``val_split=N`` holds out N of the run's training images (a fixed subset chosen by the
  seed, :func:`deep.datasets.hold_out`), never trained on; every epoch reports their loss and error,
  and ``model-best.pt`` (written atomically before the epoch's checkpoint) holds the network of the
  lowest validation error so far (the earliest of ties). ``summary.json`` says which epoch that was and
  its test error beside the last network's (and, for paper-002 presets, the best test accuracy during
  training, the paper's figure, selected on the test set).
- **Precision.** ``amp="bf16"`` runs every training step (forward and backward of every method: eSGD's
  inner loop, rSGD's replicas, SAM's two passes, PLA's displaced copies) under ``torch.autocast`` with
  bfloat16; the weights, optimizer states and updates stay float32, and evaluation is float32. bf16 has
  float32's range, so no gradient scaler is needed. ``channels_last=True`` stores the conv weights in
  channels-last layout.
- **Randomness.** Initialisation from ``seed`` (replica a of rSGD from ``replica_seed(seed, a)``), each
  mini-batch stream (shuffling and augmentation) from its own generator, eSGD's SGLD noise and PLA's
  displacements from theirs; dropout and ShakeDrop from torch's global generator, seeded here and
  restored for the caller afterwards.
- **Distributed** (``distributed=True``, inside an initialised torch.distributed group, e.g. under
  torchrun): rSGD runs one replica per process (:class:`entropic.distributed.DistributedReplicated`,
  world size = y), following the single-process trajectory; SGD, eSGD and SAM run data-parallel with
  DistributedDataParallel, each process taking its slice of the same global mini-batch (the same
  trajectory as one process; BatchNorm's statistics are those of the global batch, ``deep.syncbn``).
  Rank 0 evaluates and writes the outputs; each rank writes its own checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from localentropy.data.atomic import atomic_open
from localentropy.deep import syncbn
from localentropy.deep.augment import Resize
from localentropy.deep.datasets import TensorImages, hold_out, load_images
from localentropy.deep.errors import DeepError
from localentropy.deep.methods import ESGD, RSGD, Single
from localentropy.deep.metrics import (TENSORBOARD_MISSING, TensorBoard, best_by_validation, run_summary,
                                       tensorboard_available, write_json, write_tables)
from localentropy.deep.models import architecture, build
from localentropy.deep.models.small import MLP, ConvNet002, SmallConvNet
from localentropy.deep.stacks import Batches, Stack, make_stack, stack_policy
from localentropy.deep.presets import TrainConfig, budget_factor, reports_best_test, validate
from localentropy.deep.schedules import gamma_schedule, lr_schedule
from localentropy.entropic import LayerSignal, local_energy
from localentropy.entropic.replicated import replica_seed

CHECKPOINT_VERSION = 1
VAL_SEED = 50_000  # the validation split's generator: replica_seed(seed, VAL_SEED)


@dataclass
class TrainResult:
    """What a run produced: per-epoch ``metrics`` rows, ``energy`` and ``signal`` rows, the evaluated ``model``."""

    config: TrainConfig
    metrics: list
    energy: list
    signal: list
    model: nn.Module
    epochs: int
    steps_per_epoch: int
    resumed_from: int = 0
    out_dir: Optional[Path] = None
    tensorboard: bool = False
    diverged: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def final(self) -> dict:
        return self.metrics[-1] if self.metrics else {}

    @property
    def best(self) -> Optional[dict]:
        """The metrics row of the lowest validation error (the epoch of ``model-best.pt``); None without val_split."""
        return best_by_validation(self.metrics) if self.config.val_split else None

    @property
    def summary(self) -> dict:
        """What ``summary.json`` holds (:func:`deep.metrics.run_summary`)."""
        return run_summary(self.metrics, epochs=self.epochs, validation=bool(self.config.val_split),
                           best_test=reports_best_test(self.config))


# ----- data --------------------------------------------------------------------------------------
class Stream:
    """An endless sequence of shuffled, augmented mini-batches from one generator (epoch after epoch).

    ``shard=(rank, world)`` keeps this process's contiguous slice of each global batch (data-parallel).
    The state is the generator's state at the start of the current data epoch and the batches taken
    in it, so a resumed stream replays exactly.
    """

    def __init__(self, images, labels, batch_size, stack, seed: int, device, shard=None):
        self.generator = torch.Generator(device=device).manual_seed(int(seed))
        self.batches = Batches(images, labels, batch_size, stack, self.generator, device=device)
        self.shard = shard
        self._it = None
        self._start = self.generator.get_state()
        self._taken = 0

    def __call__(self):
        if self._it is not None:
            try:
                x, t = next(self._it)
                self._taken += 1
                return self._slice(x, t)
            except StopIteration:
                pass
        self._start = self.generator.get_state()
        self._taken = 0
        self._it = iter(self.batches)
        x, t = next(self._it)
        self._taken = 1
        return self._slice(x, t)

    def _slice(self, x, t):
        if self.shard is None:
            return x, t
        rank, world = self.shard
        b = x.shape[0] // world
        return x[rank * b:(rank + 1) * b], t[rank * b:(rank + 1) * b]

    def state_dict(self) -> dict:
        if self._it is None:
            return {"start": self.generator.get_state(), "taken": 0}
        return {"start": self._start, "taken": self._taken}

    def load_state_dict(self, sd: dict) -> None:
        self.generator.set_state(sd["start"])
        self._it = None
        taken = int(sd["taken"])
        if taken:
            self._start = self.generator.get_state()
            self._it = iter(self.batches)
            for _ in range(taken):
                next(self._it)
            self._taken = taken


def eval_stack(config: TrainConfig, data: TensorImages) -> Stack:
    """Normalisation only (plus the resize to 224 px of the EfficientNet recipe): test and measurement batches."""
    side = data.train_images.shape[-1]
    s = make_stack("none", data.mean, data.std, side)
    if config.augment == "efficientnet":
        s = Stack([Resize(224)], s.normalize)
    return s


def _subset(images, labels, n):
    return (images, labels) if not n or n >= images.shape[0] else (images[:n], labels[:n])


def run_images(config: TrainConfig, data: TensorImages):
    """The images a run uses: (train x, train t, validation x, validation t, test x, test t): the first
    ``train_subset`` training images less the ``val_split`` held out for validation, the first ``test_subset``
    test images."""
    train_x, train_t = _subset(data.train_images, data.train_labels, config.train_subset)
    train_x, train_t, val_x, val_t = hold_out(train_x, train_t, config.val_split, replica_seed(config.seed, VAL_SEED))
    test_x, test_t = _subset(data.test_images, data.test_labels, config.test_subset)
    return train_x, train_t, val_x, val_t, test_x, test_t


@torch.no_grad()
def evaluate(model: nn.Module, images, labels, stack, batch: int, device) -> tuple[float, float]:
    """(mean cross-entropy, error fraction) of ``model`` in eval mode on uint8 ``images``."""
    was = model.training
    model.eval()
    loss, wrong = 0.0, 0
    for i in range(0, images.shape[0], batch):
        x = stack(images[i:i + batch].to(device), None)
        t = labels[i:i + batch].to(device)
        out = model(x)
        loss += float(F.cross_entropy(out, t, reduction="sum"))
        wrong += int((out.argmax(1) != t).sum())
    model.train(was)
    n = max(images.shape[0], 1)
    return loss / n, wrong / n


def model_factory(config: TrainConfig, data: TensorImages, device) -> Callable[[], nn.Module]:
    """A factory of the config's model sized for the data set (channels, side, classes) on ``device``."""
    arch = architecture(config.model)
    shape = tuple(data.train_images.shape[1:])
    kw = {}
    if shape != tuple(arch.input_shape):
        if arch.factory in (SmallConvNet, ConvNet002):
            kw = dict(in_channels=shape[0], image_size=shape[1])
        elif arch.factory is MLP:
            kw = dict(in_features=shape[0] * shape[1] * shape[2])
        elif shape[0] != arch.input_shape[0]:
            raise DeepError(f"{config.model} takes {arch.input_shape[0]}-channel images; {data.name} has {shape[0]}")
    classes = data.num_classes
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    return lambda: build(config.model, num_classes=classes, **kw).to(device).to(memory_format=layout)


# ----- the loop ----------------------------------------------------------------------------------
def _dist():
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise DeepError("distributed=True needs an initialised torch.distributed group (launch with torchrun)")
    return dist


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, never unpickle anything else
        raise DeepError(f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start afresh") from None


def train(config: TrainConfig, data: Optional[TensorImages] = None, *, out_dir=None, data_dir=None, device="cpu",
          progress: Optional[Callable] = None, resume: bool = True, stop_after: Optional[int] = None,
          distributed: bool = False, tensorboard: Optional[bool] = None) -> TrainResult:
    """Train ``config`` (see the module docstring); ``progress(event, **info)`` gets "start" (done, total
    steps, epoch, epochs, and extended_from: the budget of the checkpoint a larger budget extends, else
    None), "step" (done) and "epoch" (row, epochs, best: whether model-best.pt was written) events.
    ``tensorboard``: None writes TensorBoard events when it is installed, True requires it (DeepError
    saying how to install it), False writes none. Raises DeepError on a bad config or checkpoint."""
    validate(config)
    c = config
    if tensorboard and out_dir is not None and not tensorboard_available():
        raise DeepError(TENSORBOARD_MISSING)
    rank, world = 0, 1
    if distributed:
        dist = _dist()
        rank, world = dist.get_rank(), dist.get_world_size()
        if c.method in ("rsgd", "rsgd-xy"):
            if world != c.replicas:
                raise DeepError(f"distributed rSGD runs one replica per process: replicas={c.replicas} but "
                                f"{world} processes (launch --nproc-per-node={c.replicas} or --set replicas={world})")
        elif c.method in ("pla", "plea"):
            raise DeepError(f"--distributed supports sgd, esgd, sam (data-parallel) and rsgd, rsgd-xy, not {c.method}")
        elif c.batch_size % world:
            raise DeepError(f"batch_size {c.batch_size} must be a multiple of the {world} processes")
    device = torch.device(device)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    policy = stack_policy(c.augment, data_dir)  # a downloaded policy: missing or altered fails before any work
    if data is None:
        data = load_images(c.dataset, data_dir, device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ckpt_path = None if out is None else out / ("checkpoint.pt" if not distributed else f"checkpoint-rank{rank}.pt")
    state, extended_from = None, None
    if ckpt_path is not None and resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path)
        stored = TrainConfig.stored_dict(state.get("config"))
        mine = c.as_dict()
        if stored != mine:
            known = stored if isinstance(stored, dict) else {}
            diff = sorted(k for k, v in mine.items() if known.get(k) != v)
            old = known.get("epochs")
            if diff == ["epochs"] and set(known) == set(mine) and isinstance(old, (int, float)) and old < c.epochs:
                extended_from = old  # only a larger budget: the run goes on to it
            else:
                hint = (f": a larger epoch budget extends a run, a smaller one ({c.epochs:g} < {old:g}) cannot"
                        if diff == ["epochs"] and isinstance(old, (int, float)) else "")
                raise DeepError(f"{ckpt_path} was written by another configuration ({', '.join(diff[:5]) or 'unknown'} "
                                f"differ{hint}); use another output folder, or --no-resume to start afresh")
        if state.get("world") != world:
            raise DeepError(f"{ckpt_path} was written by {state.get('world')} processes, not {world}")
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return _run(c, data, out, ckpt_path, state, device, progress, stop_after, distributed, rank, world,
                    tensorboard, policy, extended_from)


def _run(c, data, out, ckpt_path, state, device, progress, stop_after, distributed, rank, world, tensorboard,
         policy=None, extended_from=None):
    progress = progress or (lambda *a, **k: None)
    torch.manual_seed(replica_seed(c.seed, 10_000 + rank))  # dropout, ShakeDrop
    train_x, train_t, val_x, val_t, test_x, test_t = run_images(c, data)
    validation = c.val_split > 0
    n = train_x.shape[0]
    if c.batch_size > n:
        raise DeepError(f"batch_size {c.batch_size} exceeds the {n} training images")
    side = train_x.shape[-1]
    aug = make_stack(c.augment, data.mean, data.std, side, policy=policy)
    ev = eval_stack(c, data)
    factor = budget_factor(c)
    spe = n // c.batch_size
    total_steps = max(1, round(c.epochs * spe / factor))
    lr_of = lr_schedule(c)
    gamma, auto = gamma_schedule(c, total_steps)
    factory = model_factory(c, data, device)
    master = not distributed or rank == 0

    def bn_loader():
        k = min(c.bn_batches, spe)
        return [ev(train_x[i * c.batch_size:(i + 1) * c.batch_size].to(device), None) for i in range(k)]

    signal, hook = None, None
    if c.method in ("rsgd", "rsgd-xy"):
        if distributed:
            streams = [Stream(train_x, train_t, c.batch_size, aug, replica_seed(c.seed, rank) + 1, device)]
        else:
            streams = [Stream(train_x, train_t, c.batch_size, aug, replica_seed(c.seed, a) + 1, device)
                       for a in range(c.replicas)]
        method = RSGD(c, factory, streams, gamma, auto, distributed=distributed, rank=rank,
                      bn_loader=bn_loader if c.bn_batches else None, device=device)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            model = factory()
        shard = (rank, world) if distributed else None
        streams = [Stream(train_x, train_t, c.batch_size, aug, replica_seed(c.seed, 0) + 1, device, shard=shard)]
        net = model
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # BatchNorm statistics over the global batch, as in one process (torch's SyncBatchNorm on GPUs)
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else syncbn.convert(model)
            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if c.signal_epochs:
            signal = LayerSignal(model)
            hook = lambda: signal.update() if signal_on[0] else None  # noqa: E731
        if c.method == "esgd":
            g = torch.Generator(device=device).manual_seed(replica_seed(c.seed, 20_000))
            method = ESGD(c, model, streams[0], gamma, auto, train_module=net, generator=g, hook=hook)
        else:
            g = torch.Generator(device=device).manual_seed(replica_seed(c.seed, 30_000))
            method = Single(c, model, streams[0], train_module=net, generator=g if c.method in ("pla", "plea") else None,
                            hook=hook)
    signal_on = [False]

    metrics, energy_rows, signal_rows = [], [], []
    start_epoch, wall0 = 0, 0.0
    if state is not None:
        method.load_state_dict(state["method"])  # load_state_dict copies onto each tensor's device
        for s, sd in zip(streams, state["streams"]):
            s.load_state_dict(sd)
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        metrics, energy_rows, signal_rows = state["metrics"], state["energy"], state["signal"]
        start_epoch, wall0 = int(state["epoch"]), float(state["wall"])
    # steps taken so far (an extended run's last epoch may have been a short one), epochs to take in all
    done = int(metrics[-1]["steps"]) if metrics else 0
    epochs = start_epoch + max(0, math.ceil((total_steps - done) / spe))
    tb = TensorBoard(out, start_epoch, enabled=tensorboard is not False and master, required=bool(tensorboard))
    if master and out is not None:
        write_json(out / "config.json", c.as_dict())
        if state is None:  # a fresh start: no best network or summary of an earlier run is left behind
            for stale in ("model-best.pt", "summary.json"):
                (out / stale).unlink(missing_ok=True)
    best = best_by_validation(metrics) if validation else None
    write_summary = master and out is not None and (validation or reports_best_test(c))

    energy_x = ev(train_x[:c.energy_samples].to(device), None) if c.energy_epochs and master else None
    energy_t = train_t[:c.energy_samples].to(device) if energy_x is not None else None

    def measure_energy(epoch):
        model = method.eval_model()
        le = local_energy(model, (energy_x, energy_t), list(c.energy_sigmas), draws=c.energy_draws,
                          seed=replica_seed(c.seed, 40_000 + epoch), batch_size=c.eval_batch)
        for j, s in enumerate(le.sigmas):
            energy_rows.append(dict(epoch=epoch, sigma=float(s), delta_error=float(le.delta_error[j]),
                                    delta_error_se=float(le.delta_error_se[j]),
                                    delta_loss=float(le.delta_loss[j]) if le.delta_loss is not None else math.nan,
                                    delta_loss_se=float(le.delta_loss_se[j]) if le.delta_loss_se is not None else math.nan,
                                    error0=float(le.error0), loss0=float(le.loss0) if le.loss0 is not None else math.nan,
                                    draws=c.energy_draws, samples=int(energy_x.shape[0])))

    if start_epoch == 0 and 0 in c.energy_epochs:
        if distributed and c.method in ("rsgd", "rsgd-xy"):
            method.eval_model()  # collective: every rank takes part
        if master:
            measure_energy(0)

    # samples read per step by all processes together (a data-parallel process reads 1/world of each batch)
    per_step = c.batch_size * method.batches_per_step * (world if distributed and c.method.startswith("rsgd") else 1)
    progress("start", done=done, total=total_steps, epoch=start_epoch, epochs=epochs, extended_from=extended_from)
    t_run = time.time()
    stop_epoch = epochs if stop_after is None else min(epochs, start_epoch + int(stop_after))
    diverged = False
    model_out = None
    for epoch in range(start_epoch + 1, stop_epoch + 1):
        t0 = time.time()
        steps = min(spe, total_steps - done)
        signal_on[0] = epoch in c.signal_epochs or (epoch == epochs and -1 in c.signal_epochs)
        if signal is not None:
            signal.reset()
        for m in method.modules():
            m.train()
        if isinstance(method, RSGD):
            method.train(True)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        lr = lr_of.value(done * factor / spe)
        for k in range(steps):
            t_budget = done * factor / spe
            lr = lr_of.value(t_budget)
            method.set_lr(lr)
            if isinstance(method, RSGD) and c.k_late and t_budget >= c.k_switch:
                method.set_K(c.k_late)
            # no cast cache: a step changes the weights between its forward passes (SAM's ascent, eSGD's inner
            # loop), and a cached bfloat16 copy of a weight would hide the change (SAM became SGD with it)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.amp == "bf16", cache_enabled=False):
                loss_sum += method.step().to(torch.float64)
            done += 1
            progress("step", done=done)
        gamma_now = float(method.gamma)
        if distributed:
            dist = _dist()
            dist.all_reduce(loss_sum)
            loss_sum /= world
        batch_loss = float(loss_sum) / max(steps, 1)
        model_eval = method.eval_model()  # collective for distributed rSGD
        row = dict(epoch=epoch, steps=done, samples=done * per_step, budget_epochs=done * per_step / n, lr=lr,
                   gamma=gamma_now, batch_loss=batch_loss)
        if master:
            tr = _subset(train_x, train_t, min(n, 10_000))
            row["train_loss"], row["train_error"] = evaluate(model_eval, *tr, ev, c.eval_batch, device)
            if validation:
                row["val_loss"], row["val_error"] = evaluate(model_eval, val_x, val_t, ev, c.eval_batch, device)
            row["test_loss"], row["test_error"] = evaluate(model_eval, test_x, test_t, ev, c.eval_batch, device)
            if signal is not None and signal_on[0]:
                for layer, st in signal.summary().items():
                    signal_rows.append(dict(epoch=epoch, layer=layer, signal=st.signal, noise=st.noise,
                                            count=st.count, weights=st.weights))
            if epoch in c.energy_epochs or (epoch == epochs and -1 in c.energy_epochs):
                measure_energy(epoch)
        row["epoch_seconds"] = time.time() - t0
        row["wall_seconds"] = wall0 + (time.time() - t_run)
        metrics.append(row)
        diverged = not math.isfinite(batch_loss)
        improved = master and validation and (best is None or row["val_error"] < best["val_error"])
        if improved:
            best = row
            if out is not None:  # before the checkpoint: a run killed in between redoes this epoch and writes it again
                with atomic_open(out / "model-best.pt", "wb") as fh:
                    torch.save(model_eval.state_dict(), fh)
        if ckpt_path is not None:
            ck = dict(version=CHECKPOINT_VERSION, config=c.as_dict(), world=world, epoch=epoch,
                      wall=row["wall_seconds"], method=method.state_dict(), streams=[s.state_dict() for s in streams],
                      rng=torch.get_rng_state(),
                      cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                      metrics=metrics, energy=energy_rows, signal=signal_rows)
            with atomic_open(ckpt_path, "wb") as fh:
                torch.save(ck, fh)
        if master and out is not None:
            write_tables(out, metrics, energy_rows, signal_rows, validation=validation)
            if write_summary:
                write_json(out / "summary.json", run_summary(metrics, epochs=epochs, validation=validation,
                                                             best_test=reports_best_test(c)))
            tb.add(row)
        progress("epoch", row=row, epochs=epochs, best=improved)
        model_out = model_eval
        if diverged:
            break
    if model_out is None:
        model_out = method.eval_model()
    if master and out is not None and (diverged or stop_epoch == epochs):
        with atomic_open(out / "model.pt", "wb") as fh:
            torch.save(model_out.state_dict(), fh)
        # always: a run killed between its last checkpoint and its tables finds them complete on the rerun
        write_tables(out, metrics, energy_rows, signal_rows, validation=validation)
        if write_summary and metrics:
            write_json(out / "summary.json", run_summary(metrics, epochs=epochs, validation=validation,
                                                         best_test=reports_best_test(c)))
    tb.close()
    return TrainResult(c, metrics, energy_rows, signal_rows, model_out,
                       epochs, spe, resumed_from=start_epoch, out_dir=out, tensorboard=tb.active, diverged=diverged,
                       extra=dict(total_steps=total_steps, factor=factor, world=world, rank=rank,
                                  extended_from=extended_from, validation_images=int(val_x.shape[0])))


__all__ = ["train", "TrainResult", "Stream", "evaluate", "eval_stack", "model_factory", "run_images"]
