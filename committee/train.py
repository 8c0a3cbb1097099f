"""The committee machine's trainers: SGD, Replicated-SGD and Entropy-SGD, batched over restarts.

Paper 000, Sec. 4–5 and App. B.1. Every restart (and, for rSGD, every replica) is trained in one
batched tensor computation on CPU or CUDA. Each restart r owns one CPU ``torch.Generator`` seeded
from (seed, r) (``restart_seed``); its initial weights, mini-batch orders, dropout masks and SGLD
noise are all drawn from it, in an order that does not depend on the other restarts. With
``shared_batches`` the mini-batch orders come instead from y sequence generators (``batch_seed``)
shared by all restarts: replica a of every restart reads sequence a. A restart that meets its stop
rule is frozen (its weights stop changing, its generator stops being used) while the others continue.

Reproducibility (what holds on any machine; tested in tests/test_committee_train.py): the same call
on the same machine, thread count, device, dtype and batches mode is bitwise repeatable, and a
resumed run is bitwise the uninterrupted one. Restart r trained alone (``restart_ids=[r]``) and in
a batch draws the same random numbers, but batched products may round differently with the
network's place in the batch (BLAS kernels and vector lanes differ between CPUs), and training
amplifies the last bit: alone and in a batch agree to rounding over the first epochs and in their
statistics (stop epochs, errors), not bitwise. Across machines only statistics are promised.

Conventions that paper 000 leaves open (documented in ``committee.presets`` too):

- **Units.** Each hidden unit is trained as its direction u_h = w_h/√N, kept at unit norm, with
  λ_h = u_h·ξ = w_h·ξ/√N (Eq. 7). Algorithms 1 and 2, their learning rates and the stop distances
  act on u; saved weights are w = √N u (norm √N). Applying the paper's η to w itself with the
  1/√N in λ makes every step on u N times smaller (Δu = Δw/√N and ∇_w = ∇_u/√N), and with a mean
  instead of a summed mini-batch loss B times smaller again; SGD fast (η = 2e-4) then barely leaves
  its random start. This is a calibration of the paper's units, not a quote
  (benchmarks/results/epochs_to_stop.md records what it gives).
- **Loss.** The gradient is that of Σ_{μ∈batch} f(y^μ ŷ_β(ξ^μ), ω) (Eq. 8 per pattern, summed); the
  loss in stop rules and reports is the mean over the training set (Eq. 8's expectation).
- **Normalisation** (App. B.1, "after each weight update"): SGD: u after every step. rSGD: every
  replica after every step (including the coupling step); the centre ū = mean of the replicas is
  not normalised while training (it is the barycenter of Eq. 6), and is normalised when saved.
  eSGD: w′ after every SGLD step and w after every outer step; μ is an average of normalised w′
  and is not normalised (as in ``entropic.EntropySGD``'s ``project``).
- **Stop rules** (App. B.1), checked at the end of every epoch with that epoch's β and ω: SGD fast,
  zero training error of the sign network; SGD slow, mean loss < 1e-7; rSGD, max_a d(u_a, ū) < 1e-8;
  eSGD, d(w, μ) < 1e-8 with w the reference before the last outer update. "Distance" is read as
  the paper's d(w′, w) = ½‖w′ − w‖² (Eq. 2) in u units: the SGLD noise √η′ ε ≈ 7e-8 per weight
  makes the plain norm ‖w − μ‖ over 7056 weights ~1e-6, so ‖·‖ < 1e-8 could never be met.
- **Epoch.** ceil(P/B) updates of the trained variable: SGD steps; rSGD steps, each replica with
  its own mini-batch (each replica sees the data once per epoch); eSGD outer iterations (each
  consuming L mini-batches, so one eSGD epoch is L passes over the data). β, ω, γ follow
  x(t) = x0 (1 + x1)^t with t the epoch index (entropic ``Exponential``).
- **Replica coupling.** Algorithm 2: at the start of step t = 1, 2, … the barycenter ū is computed;
  when t ≡ 0 mod ``coupling_period`` (first at t = ``coupling_period``, as in the paper and in
  ``entropic.Replicated``) the coupling ``coupling_period``·γ·(u_a − ū) is added to the gradient.
  t counts rSGD steps over the whole run (it survives a resume).
- **Dropout** (Figure 6): each input of the hidden layer is zeroed with probability p, one mask per
  pattern shared by the K hidden units, surviving inputs scaled by 1/(1 − p); training only.

Speed (benchmarks/bench_committee.py prints s/epoch against the same-run GEMM bound): the
mini-batch gradient is the closed form of ``_loss_grad`` / ``_coef_shared`` (no autograd graph).
With each network's own mini-batches, its patterns are gathered with ``index_select`` into a reused
buffer a few networks at a time (``CHUNK_BYTES_CPU``, about the L2 cache) and multiplied with
batched products of B×N×K each, which stay far from the GEMM bound whatever their tuning; on CPU
torch runs single-threaded and ``num_threads`` > 1 shares the chunks among worker threads. With
``shared_batches`` a step is two large GEMMs per replica index, (B, N) × (N, R·K) and back, the
update u − η∇ (and rSGD's coupling, eSGD's elastic term) accumulated into u by the second GEMM
(``baddbmm_``), and ``num_threads`` sets torch's intra-op threads. eSGD draws each outer step's
permutations, masks and SGLD noise (float32 normals, any run dtype) on a worker thread while the previous
outer step computes, from the same generators in the same order.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from localentropy.committee.certificate import certify
from localentropy.committee.errors import CommitteeError
from localentropy.committee.loss import margin_loss
from localentropy.committee.kernels import add_unit_, sgld_tail_, usable as kernels_usable
from localentropy.committee.model import check_K
from localentropy.committee.presets import CommitteePreset
from localentropy.committee_sign import misclassified
from localentropy.data.atomic import atomic_open
from localentropy.entropic.replicated import barycenter
from localentropy.entropic.schedules import Exponential

CHECKPOINT_VERSION = 2
# Patterns gathered per chunk of networks in a gradient evaluation (see ``_Run._grad``): on CPU a
# chunk small enough to stay in cache between the gather and the two products; on CUDA large
# enough to fill the device.
CHUNK_BYTES_CPU = 4 << 20
CHUNK_BYTES_CUDA = 1 << 30


def restart_seed(seed: int, restart: int) -> int:
    """Seed of restart r's generator: a hash of (seed, r) (numpy SeedSequence), < 2**63."""
    if int(seed) != seed or seed < 0:
        raise CommitteeError(f"seed must be a non-negative integer, got {seed}")
    state = np.random.SeedSequence([int(seed), int(restart)]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


#: version of the dropout masks' random stream (2: float32 uniforms; 1 drew float64 ones, 5× slower)
DROPOUT_MASKS = 2


def dropout_keep(shape, generator: torch.Generator, p: float) -> torch.Tensor:
    """Which inputs dropout keeps: a bool tensor, True with probability 1 − p (uniforms ≥ p).

    float32 uniforms (24 random bits each: p is exact to 2⁻²⁴) cost a fifth of float64 ones, and
    the masks are most of a dropout epoch's random numbers (P·N per restart)."""
    return torch.rand(shape, generator=generator, dtype=torch.float32) >= p


def batch_seed(seed: int, sequence: int) -> int:
    """Seed of mini-batch sequence a's generator when restarts share mini-batch sequences
    (``shared_batches``): a hash of (seed, a, 1), distinct from every ``restart_seed``, < 2**63."""
    state = np.random.SeedSequence([int(seed), int(sequence), 1]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


SKIP_ZERO_GRADIENT = True  # skip the gradient product of a step whose coefficients are all exactly zero
FORWARD_CERTIFICATE = True  # and its forward product too while a ZeroCertificate proves them zero (certificate.py)
FUSED_TAIL = True  # on the CPU: a step's elementwise tail (renormalisation, eSGD's adds) in one Numba pass (kernels.py)


def _tanh_(t: torch.Tensor) -> torch.Tensor:
    """tanh in place. On the CPU numpy's SIMD tanh (≤ 1.4 ulp; several times faster than torch's here,
    bench_committee.py), which gives an element the same value at any place in the array (a restart's
    numbers do not depend on its place in the batch); elsewhere torch's."""
    if t.device.type == "cpu" and t.is_contiguous() and not t.requires_grad:
        a = t.numpy()
        np.tanh(a, out=a)
        return t
    return t.tanh_()


def _coef_shared(U4: torch.Tensor, Xb: torch.Tensor, yb: torch.Tensor, beta: float, omega: float,
                 need_loss: bool = False):
    """The per-pattern coefficients of the mini-batch gradient when every network of a copy shares
    its mini-batch: ∇_{u_h} Σ_μ f(m_μ) = Σ_μ coef_hμ ξ^μ (see ``_loss_grad`` for the formula).

    U4 (C, A, K, N): C copies (rSGD replicas) of A networks; Xb (C, B, N), yb (C, B): copy c's
    mini-batch, the same for its A networks. The fields of all A·K hidden units are one GEMM per
    copy, (B, N) × (N, A·K). Returns (coef (C, B, A·K), summed loss or None).
    """
    C, A, K, N = U4.shape
    c = 1.0 / math.sqrt(K)
    t = _tanh_(torch.bmm(Xb, U4.view(C, A * K, N).transpose(1, 2)).mul_(beta))  # (C, B, A·K)
    t4 = t.view(C, Xb.shape[1], A, K)
    yv = yb.unsqueeze(-1)
    m = t4.sum(-1).mul_(yv).mul_(c)  # (C, B, A) margins
    loss = margin_loss(m, omega).sum() if need_loss else None
    d = torch.exp(m.mul_(2.0 * omega)).add_(1.0).reciprocal_().mul_(yv).mul_(-beta * c)
    t4.square_().neg_().add_(1.0).mul_(d.unsqueeze(-1))
    return t, loss


def _unit(U: torch.Tensor) -> torch.Tensor:
    """Each hidden unit (last axis) rescaled to unit norm."""
    return U / torch.linalg.vector_norm(U, dim=-1, keepdim=True)


def _unit_(U: torch.Tensor, centre: Optional[torch.Tensor] = None, c: float = 0.0) -> None:
    """U ← U + c·centre (when given; broadcast over U's leading copies), then each hidden unit (last axis)
    rescaled to unit norm, in place (on the CPU one fused pass)."""
    if FUSED_TAIL and kernels_usable(U, *(() if centre is None else (centre,))):
        add_unit_(U, centre, c)
        return
    with torch.no_grad():
        if centre is not None:
            U.add_(centre, alpha=c)
        U.div_(torch.linalg.vector_norm(U, dim=-1, keepdim=True))


def _loss_grad(U: torch.Tensor, Xb: torch.Tensor, yb: torch.Tensor, beta: float, omega: float,
               out: torch.Tensor, need_loss: bool = False) -> Optional[torch.Tensor]:
    """Mini-batch loss Σ_μ f(y^μ ŷ_β(ξ^μ), ω) (Eq. 8 with the tanh surrogate of Eq. 7) and its
    gradient with respect to U, in closed form; the gradient is written into ``out``.

    U (M, K, N) unit directions, Xb (M, B, N) each network's mini-batch, yb (M, B). With
    λ_hμ = u_h·ξ^μ, t_hμ = tanh(β λ_hμ) and the margin m_μ = y^μ (1/√K) Σ_h t_hμ,
    ∂/∂u_h Σ_μ f(m_μ) = Σ_μ f′(m_μ) y^μ (β/√K) (1 − t_hμ²) ξ^μ, with f′(m) = −σ(−2ωm)
    (``committee.loss.margin_loss_grad``). Two batched products and a few elementwise passes
    over (M, B, K): no autograd graph, no copy of the (M, B, N) patterns. Returns the loss
    (summed over all M networks) if ``need_loss``, else None.
    """
    c = 1.0 / math.sqrt(U.shape[-2])
    t = _tanh_(torch.bmm(Xb, U.transpose(1, 2)).mul_(beta))  # (M, B, K): tanh(β λ)
    m = t.sum(-1).mul_(yb).mul_(c)  # margins y ŷ_β, (M, B)
    loss = margin_loss(m, omega).sum() if need_loss else None
    # f′(m) y β/√K with f′(m) = −σ(−2ωm) = −1/(1 + e^(2ωm)) (overflow gives the limit 0). Written
    # with exp rather than torch.sigmoid: torch's vectorised and scalar-tail sigmoid differ in the
    # last bit, which would make a restart's result depend on its position in the batch.
    d = torch.exp(m.mul_(2.0 * omega)).add_(1.0).reciprocal_().mul_(yb).mul_(-beta * c)
    coef = t.square_().neg_().add_(1.0).mul_(d.unsqueeze(-1))  # (M, B, K)
    torch.bmm(coef.transpose(1, 2), Xb, out=out)
    return loss


def _fields(U: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """λ = u_h·ξ for every pattern as one matrix product, shape U.shape[:-2] + (P, K)."""
    lead, (K, N) = U.shape[:-2], U.shape[-2:]
    lam = X @ U.reshape(-1, N).T  # (P, M·K): one wide GEMM instead of M narrow ones
    return lam.view(X.shape[0], -1, K).transpose(0, 1).reshape(lead + (X.shape[0], K))


def _sign_errors(U: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Training error of the exact sign network (Eq. 7, ``localentropy.committee_sign``), shape U.shape[:-2]."""
    return misclassified(_fields(U, X), y).to(U.dtype).mean(-1)


def _max_replica_distance(U: torch.Tensor) -> torch.Tensor:
    """max_a d(u_a, ū) per restart, U (y, R, K, N): ``entropic.replica_distances`` in two passes
    over the replicas (difference, then its norm) instead of four."""
    diff = U - barycenter(U)
    return torch.linalg.vector_norm(diff, dim=(-2, -1)).square_().mul_(0.5).amax(0)


def _half_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a, b) = ½‖a − b‖² over the last two axes (K·N weights), Eq. (2)."""
    return 0.5 * (a - b).pow(2).sum((-1, -2))


@dataclass
class TrainResult:
    """Outcome of a training run, one entry per restart (in ``restart_ids`` order)."""

    preset: CommitteePreset
    seed: int
    restart_ids: list
    weights: np.ndarray  # (R, K, N) float64, w = √N u (rSGD: normalised centre; eSGD: w)
    epochs: np.ndarray  # (R,) epochs trained until stop (or max_epochs)
    converged: np.ndarray  # (R,) bool
    train_error: np.ndarray  # (R,) exact sign network
    train_loss: np.ndarray  # (R,) mean f at the final β, ω
    stop_value: np.ndarray  # (R,) the stop rule's quantity at the end
    replicas: Optional[np.ndarray] = None  # rSGD: (y, R, K, N) float64 replicas, √N units
    extra: dict = field(default_factory=dict)

    @property
    def status(self) -> list:
        return ["converged" if c else "not converged" for c in self.converged]

    def metadata(self) -> dict:
        """JSON-ready description: setting, every hyper-parameter, seed, per-restart outcome."""
        return {
            "setting": self.preset.name,
            "algorithm": self.preset.algorithm,
            "hyperparameters": self.preset.as_dict(),
            "seed": int(self.seed),
            "restart_ids": [int(r) for r in self.restart_ids],
            "epochs": [int(e) for e in self.epochs],
            "status": self.status,
            "train_error": [float(e) for e in self.train_error],
            "train_loss": [float(v) for v in self.train_loss],
            "stop_rule": self.preset.stop,
            "stop_value": [float(v) for v in self.stop_value],
            "units": "w = sqrt(N) u; algorithms act on unit-norm u (committee/train.py)",
            **self.extra,
        }


class _Run:
    """Mutable state of one batched run; everything a resume needs is in ``state_dict``."""

    def __init__(self, preset: CommitteePreset, X, y, restart_ids, seed, device, dtype, shared=False):
        self.p = preset
        self.device = torch.device(device)
        self.dtype = dtype
        self.X = X
        self.y = y
        self.P, self.N = X.shape
        self.R = len(restart_ids)
        self.zero_gradient_steps = 0  # steps whose gradient product was skipped (all coefficients exactly 0)
        self.certified_steps = 0  # of those, steps whose forward product was skipped too (a ZeroCertificate)
        self.certifications = 0  # certificates computed (each a forward product over the whole training set)
        # the certificate changes no number (a certified step is the zero-gradient skip): it is not
        # part of the checkpoint, and a resumed run computes a new one when it needs it
        self._cert, self._cert_key, self._cert_buf = None, (), None
        self._shared_steps, self._cert_next, self._cert_backoff, self._cert_since = 0, 0, 16, 0
        h = hashlib.sha256(X.detach().double().cpu().numpy().tobytes())
        h.update(y.detach().double().cpu().numpy().tobytes())
        self.patterns_digest = h.hexdigest()
        self.seed = seed
        self.restart_ids = list(restart_ids)
        self.gens = [torch.Generator().manual_seed(restart_seed(seed, r)) for r in self.restart_ids]
        self.nb = math.ceil(self.P / preset.batch_size)
        self.beta = Exponential(preset.beta0, preset.beta1)
        self.omega = Exponential(preset.omega0, preset.omega1)
        self.gamma = Exponential(preset.gamma0, preset.gamma1)
        K, N = preset.K, self.N
        lead = (preset.replicas,) if preset.algorithm == "rsgd" else ()
        inits = []
        for g in self.gens:  # init: uniform in [-1, 1], then normalised (App. B.1)
            inits.append(torch.rand(lead + (K, N), generator=g, dtype=torch.float64) * 2 - 1)
        U = torch.stack(inits, dim=len(lead))  # (R, K, N) or (y, R, K, N)
        self.U = _unit(U).to(device=self.device, dtype=dtype)
        self.epoch = 0
        self.active = np.ones(self.R, dtype=bool)
        self.converged = np.zeros(self.R, dtype=bool)
        self.epochs = np.zeros(self.R, dtype=np.int64)
        self.stop_value = np.full(self.R, np.nan)
        self.step_count = 0  # rSGD steps done over the whole run: the next step is t = step_count + 1
        self.shared = bool(shared)
        copies = preset.replicas if preset.algorithm == "rsgd" else 1
        # shared mini-batch sequences: replica a of every restart draws its batches from sequence a
        self.seq_gens = ([torch.Generator().manual_seed(batch_seed(seed, a)) for a in range(copies)]
                         if self.shared else [])
        self._xbufs = {}
        self.chunk_bytes = CHUNK_BYTES_CUDA if self.device.type == "cuda" else CHUNK_BYTES_CPU
        self.workers, self.pool = 1, None  # set by train_committee

    # --- random draws, per restart, on CPU --------------------------------------------------
    def _perms(self, idx, copies: int) -> torch.Tensor:
        """One permutation of the P patterns per copy (replica) for each active restart: (copies, A, P).

        With shared mini-batch sequences, one permutation per copy from that copy's sequence
        generator (drawn whatever restarts are active), shape (copies, 1, P).
        """
        if self.shared:
            return torch.stack([torch.randperm(self.P, generator=g) for g in self.seq_gens]).unsqueeze(1)
        out = torch.empty((copies, len(idx), self.P), dtype=torch.long)
        for j, i in enumerate(idx):
            for c in range(copies):
                out[c, j] = torch.randperm(self.P, generator=self.gens[i])
        return out

    def _dropout(self, idx, shape) -> Optional[torch.Tensor]:
        """Which hidden-layer inputs dropout keeps: a bool (…, M, B, N) tensor, one ``shape`` block
        (…, B, N) per active restart from its own generator; None without dropout."""
        p = self.p.dropout
        if p == 0.0:
            return None
        keep = torch.empty(tuple(shape[:-2]) + (len(idx),) + tuple(shape[-2:]), dtype=torch.bool)
        for j, i in enumerate(idx):
            keep[..., j, :, :] = dropout_keep(shape, self.gens[i], p)
        return keep.to(self.device)

    def _gather_buffer(self, worker: int, numel: int) -> torch.Tensor:
        """A flat buffer per worker, reused for the gathered mini-batch patterns (no allocation per step)."""
        buf = self._xbufs.get(worker)
        if buf is None or buf.numel() < numel:
            buf = self._xbufs[worker] = torch.empty(numel, dtype=self.dtype, device=self.device)
        return buf[:numel]

    def _grad(self, U, sel, beta, omega, mask=None, out=None, need_loss=False):
        """Gradient of Σ_μ f(y^μ ŷ_β(ξ^μ), ω) over each network's own mini-batch (Eq. 8), closed form.

        U (M, K, N); sel (M, b) pattern indices on the device; mask (M, b, N) or None. The
        patterns are gathered (index_select into a reused buffer) a chunk of networks at a time,
        ``chunk_bytes`` of patterns per chunk, so that they are still in cache for the two
        products and memory stays bounded for any number of restarts. With a worker pool the
        chunks are shared out among the workers (each network's arithmetic is the same whichever
        worker runs it). Returns (gradient, loss).
        """
        M, b = sel.shape
        g = torch.empty_like(U) if out is None else out
        per = max(1, min(M, self.chunk_bytes // (b * self.N * self.X.element_size())))
        chunks = [(s, min(M, s + per)) for s in range(0, M, per)]
        W = min(self.workers, len(chunks))
        if W <= 1:
            losses = self._grad_chunks(0, chunks, U, sel, beta, omega, mask, g, need_loss)
        else:  # worker w takes a contiguous run of chunks
            runs = [chunks[len(chunks) * w // W:len(chunks) * (w + 1) // W] for w in range(W)]
            futures = [self.pool.submit(self._grad_chunks, w, run, U, sel, beta, omega, mask, g, need_loss)
                       for w, run in enumerate(runs)]
            losses = [part for f in futures for part in f.result()]
        loss = None
        if need_loss:
            loss = 0.0
            for part in losses:  # summed in chunk order, whatever the worker count
                loss = loss + part
        return g, loss

    def _grad_chunks(self, worker, chunks, U, sel, beta, omega, mask, g, need_loss):
        """``_grad`` for the networks of ``chunks`` [(start, stop), …]; returns their losses."""
        b, N = sel.shape[1], self.N
        buf = self._gather_buffer(worker, max(e - s for s, e in chunks) * b * N)
        losses = []
        for s, e in chunks:
            n = (e - s) * b
            rows = sel[s:e].reshape(-1)
            Xb = torch.index_select(self.X, 0, rows, out=buf[:n * N].view(n, N)).view(e - s, b, N)
            if mask is not None:  # inverted dropout on the hidden units' inputs
                Xb.mul_(mask[s:e]).mul_(1.0 / (1.0 - self.p.dropout))
            losses.append(_loss_grad(U[s:e], Xb, self.y[rows].view(e - s, b), beta, omega, g[s:e], need_loss))
        return losses

    def _shared_step(self, U4, sel, beta, omega, eta, decay=1.0, centre=None, cscale=0.0):
        """One update of every network in place when each copy's networks share a mini-batch:
        U ← decay·U − η ∇ + cscale·centre, then each hidden unit back to unit norm.

        U4 (C, A, K, N) contiguous, sel (C, B). The gradient never exists as a tensor: its second
        product is accumulated into U by the GEMM itself (``baddbmm_``); with ``decay`` = 1 − ηKγ
        and ``cscale`` = ηKγ this is Algorithm 2's coupled step u − η(∇ + Kγ(u − ū)).
        """
        C, A, K, N = U4.shape
        flat = U4.view(C, A * K, N)
        self._shared_steps += 1
        if self._certified(U4, beta, omega):  # every coefficient provably exactly 0: no forward product either
            self.zero_gradient_steps += 1
            self.certified_steps += 1
            if decay != 1.0:
                flat.mul_(decay)
        else:
            Xb, yb = self.X[sel], self.y[sel]  # (C, B, N), (C, B)
            coef, _ = _coef_shared(U4, Xb, yb, beta, omega)
            if SKIP_ZERO_GRADIENT and not bool(coef.any()):
                # late in the slow settings β and ω are so large that f′ and tanh′ are exactly 0 at every
                # pattern of the batch: the product would add exact zeros, and decay·U is what baddbmm_ leaves
                self.zero_gradient_steps += 1
                self._try_certify(U4, beta, omega)
                if decay != 1.0:
                    flat.mul_(decay)
            else:
                flat.baddbmm_(coef.transpose(1, 2), Xb, beta=decay, alpha=-eta)
        _unit_(U4, centre, cscale)

    def _certified(self, U4, beta, omega) -> bool:
        """Whether the current ZeroCertificate covers this step (dropped when it no longer does)."""
        if self._cert is None or not (SKIP_ZERO_GRADIENT and FORWARD_CERTIFICATE):
            return False
        if self._cert_buf is None or self._cert_buf.shape != U4.shape:
            self._cert_buf = torch.empty_like(U4)
        if self._cert.covers(U4, beta, omega, self._cert_key, self._cert_buf):
            return True
        self._cert = None
        # a certificate costs about two forward products over the whole training set: if it lasted fewer
        # steps than that saves, wait before the next one (twice as long each time, up to 4096 steps)
        if self._shared_steps - self._cert_since < 4 * self.nb + 4:
            self._cert_next = self._shared_steps + self._cert_backoff
            self._cert_backoff = min(2 * self._cert_backoff, 4096)
        else:
            self._cert_backoff = 16
        return False

    def _try_certify(self, U4, beta, omega):
        """After a step whose batch coefficients were all 0: a certificate for the whole training set, at
        these weights (a forward product over all P patterns), unless a recent attempt failed or its
        certificate did not last (then the next attempt waits twice as many steps, up to 4096)."""
        if not (SKIP_ZERO_GRADIENT and FORWARD_CERTIFICATE) or self._shared_steps < self._cert_next:
            return
        self.certifications += 1
        self._cert = certify(U4, self.X, self.y, beta, omega, self._cert_key)
        self._cert_since = self._shared_steps
        if self._cert is None:
            self._cert_next = self._shared_steps + self._cert_backoff
            self._cert_backoff = min(2 * self._cert_backoff, 4096)

    def _take(self, ii):
        """The weights of the active restarts ``ii``: ``self.U`` itself while every restart is active
        (no copy), else a contiguous copy (restarts on axis 0, rSGD: axis 1)."""
        if len(ii) == self.R:
            return self.U
        return self.U[:, ii] if self.p.algorithm == "rsgd" else self.U[ii]

    def _put(self, ii, U):
        if U is self.U:
            return
        if self.p.algorithm == "rsgd":
            self.U[:, ii] = U
        else:
            self.U[ii] = U

    def _sel(self, perms, b):
        """Pattern indices of mini-batch b, shape perms.shape[:-1] + (batch,)."""
        return perms[..., b * self.p.batch_size:(b + 1) * self.p.batch_size]

    def full_loss(self, U, beta, omega) -> torch.Tensor:
        """Mean f over the training set per restart (Eq. 8), shape U.shape[:-2]."""
        s = torch.tanh(beta * _fields(U, self.X)).sum(-1) / math.sqrt(U.shape[-2])
        return margin_loss(self.y * s, omega).mean(-1)

    # --- one epoch per algorithm -----------------------------------------------------------
    def epoch_sgd(self, idx):
        t = self.epoch
        beta, omega = self.beta(t), self.omega(t)
        ii = torch.as_tensor(idx, device=self.device)
        U = self._take(ii)  # updated in place
        perms = self._perms(idx, 1)[0].to(self.device)
        if self.shared and not self.p.dropout:  # one mini-batch for every restart: two GEMMs per step
            self._cert_key = ("sgd",) + tuple(idx)
            U4 = U.unsqueeze(0)
            for b in range(self.nb):
                self._shared_step(U4, self._sel(perms, b), beta, omega, self.p.eta)
            self._put(ii, U)
            return None
        perms = perms.expand(len(idx), self.P)
        g = torch.empty_like(U)
        for b in range(self.nb):
            sel = self._sel(perms, b)
            mask = self._dropout(idx, (sel.shape[-1], self.N))
            self._grad(U, sel, beta, omega, mask, out=g)
            U.sub_(g.mul_(self.p.eta))  # u − η ∇, then each hidden unit renormalised
            _unit_(U)
        self._put(ii, U)
        return None

    def epoch_rsgd(self, idx):
        t = self.epoch
        beta, omega, gamma = self.beta(t), self.omega(t), self.gamma(t)
        y_ = self.p.replicas
        ii = torch.as_tensor(idx, device=self.device)
        U = self._take(ii)  # (y, A, K, N), contiguous, updated in place
        shape = U.shape
        flat = U.view((-1,) + shape[2:])  # replica a of restart j is network a·A + j
        perms = self._perms(idx, y_).to(self.device)  # (y, A, P), or (y, 1, P) shared
        kc = self.p.coupling_period
        if self.shared and not self.p.dropout:  # replica a of every restart on sequence a's batch
            self._cert_key = ("rsgd",) + tuple(idx)
            for b in range(self.nb):
                sel = self._sel(perms[:, 0], b)  # (y, B)
                if (self.step_count + 1) % kc == 0:  # t ≡ 0 mod K: coupled step with ū of line 2
                    s = self.p.eta * kc * gamma
                    self._shared_step(U, sel, beta, omega, self.p.eta, 1.0 - s, barycenter(U), s)
                else:
                    self._shared_step(U, sel, beta, omega, self.p.eta)
                self.step_count += 1
            self._put(ii, U)
            return _max_replica_distance(U)
        perms = perms.expand(y_, len(idx), self.P)
        g = torch.empty_like(U)
        gflat = g.view(flat.shape)
        pull = torch.empty_like(U)
        for b in range(self.nb):
            sel = self._sel(perms, b)  # (y, A, b)
            mask = self._dropout(idx, (y_, sel.shape[-1], self.N)) if self.p.dropout else None
            if mask is not None:
                mask = mask.reshape((-1,) + mask.shape[2:])
            centre = barycenter(U)  # line 2: barycenter ū
            self._grad(flat, sel.reshape(-1, sel.shape[-1]), beta, omega, mask, out=gflat)
            if (self.step_count + 1) % kc == 0:  # t = step_count + 1 ≡ 0 mod K  # lines 6–7: coupling K·γ·(u_a − ū) (entropic.coupling_grad, in place)
                g.add_(torch.sub(U, centre, out=pull).mul_(kc * gamma))
            U.sub_(g.mul_(self.p.eta))  # line 8, then each replica renormalised
            _unit_(U)
            self.step_count += 1
        self._put(ii, U)
        return _max_replica_distance(U)

    def _esgd_draws(self, gens, k, z, masks, perms):
        """Every random number of eSGD inner step k (counted from the start of the epoch), per restart,
        in the order the algorithm uses them: a fresh permutation when a pass over the data starts
        (k % nb == 0), then the dropout mask, then the SGLD noise N(0, I) (Alg. 1, line 6), all from
        the restart's own generator. Writes ``perms[pass, j]``, ``masks[0]`` (when dropout is on) and
        ``z[j]`` (when the noise is on). Runs on a worker thread while the previous inner step
        computes: it touches only these generators and buffers. One step's draws at a time: a whole
        outer step's noise (L·A·K·N floats, 28 MB at 50 restarts) would push the main thread's weights
        and patterns out of the shared cache.
        """
        nb, B, P = self.nb, self.p.batch_size, self.P
        b = k % nb
        if masks is not None:
            masks[0] = torch.empty((len(gens), min(B, P - b * B), self.N), dtype=torch.bool)
        if self.shared and b == 0:  # one sequence for every restart (perms (L, 1, P))
            perms[k // nb, 0] = torch.randperm(P, generator=self.seq_gens[0])
        for j, g in enumerate(gens):
            if b == 0 and not self.shared:
                perms[k // nb, j] = torch.randperm(P, generator=g)
            if masks is not None:
                masks[0][j] = dropout_keep(masks[0].shape[1:], g, self.p.dropout)
            if z is not None:  # float32 normals (a fifth of the cost of float64 ones), any run dtype
                torch.randn(z.shape[1:], generator=g, dtype=z.dtype, out=z[j])

    def epoch_esgd(self, idx):
        """One epoch of Algorithm 1 (nb outer steps of L SGLD steps each), every restart at once.

        The same arithmetic as ``entropic.EntropySGD`` (no momentum, ``project`` = unit norm), with
        the elementwise passes fused: inner step w′ ← (1 − η′γ)w′ − η′∇L(w′) + η′γ w + √η′ ε z (with
        shared mini-batches the η′∇ term is accumulated by the gradient's GEMM itself), then w′ to
        unit norm and μ ← αμ + (1 − α)w′ (``lerp_``); outer step w ← (1 − η)w + ημ, unit norm.
        Checked against the numpy Algorithm 1 in tests/test_committee_train.py.
        """
        t = self.epoch
        beta, omega, gamma = self.beta(t), self.omega(t), self.gamma(t)
        ii = torch.as_tensor(idx, device=self.device)
        U = self._take(ii)  # w, (A, K, N), updated in place
        wp, mu = torch.empty_like(U), torch.empty_like(U)
        gens = [self.gens[i] for i in idx]
        A, (K, N) = len(idx), U.shape[1:]
        L, nb, p = self.p.inner_steps, self.nb, self.p
        s = math.sqrt(p.inner_lr) * p.noise
        noisy = s > 0
        perms = torch.empty((L, 1 if self.shared else A, self.P), dtype=torch.long)  # nb·L batches = L passes
        fast = self.shared and not p.dropout
        grad = None if fast else torch.empty_like(U)
        lr_in, decay = p.inner_lr, 1.0 - p.inner_lr * gamma
        fused_tail = FUSED_TAIL and kernels_usable(U, wp, mu)
        # two sets of buffers: the worker fills the next inner step's draws while the other is consumed.
        # SGLD noise N(0, I) drawn in float32 whatever the run's dtype: its 24-bit samples are far finer
        # than the √η′ε scale needs, and float64 normals cost ~5× more (they would bound eSGD's speed)
        slots = [(torch.empty((A, K, N), dtype=torch.float32) if noisy else None,
                  [None] if p.dropout else None) for _ in range(2)]
        dist, order = None, None
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self._esgd_draws, gens, 0, *slots[0], perms)
            try:
                for k in range(nb * L):
                    l = k % L
                    pending.result()
                    z, masks = slots[k % 2]
                    if k % nb == 0:
                        order = perms[k // nb].to(self.device)
                        if fast:  # the pass's patterns in its order, once: each mini-batch is then a view
                            Xp, yp = torch.index_select(self.X, 0, order[0]), self.y[order[0]]
                    z = None if z is None else z.to(self.device)
                    if k + 1 < nb * L:
                        pending = pool.submit(self._esgd_draws, gens, k + 1, *slots[(k + 1) % 2], perms)
                    if l == 0:
                        wp.copy_(U)  # line 2: w′, μ ← w
                        mu.copy_(U)
                    if fast:  # every restart on the same mini-batch: two GEMMs, the second fused
                        rows = slice((k % nb) * p.batch_size, (k % nb + 1) * p.batch_size)
                        Xb, yb = Xp[rows].unsqueeze(0), yp[rows].unsqueeze(0)
                        coef, _ = _coef_shared(wp.unsqueeze(0), Xb, yb, beta, omega)
                        wp.view(1, A * K, N).baddbmm_(coef.transpose(1, 2), Xb, beta=decay, alpha=-lr_in)
                    else:
                        mask = None
                        if masks is not None:
                            mask = masks[0].to(self.device)
                        sel = self._sel(order, k % nb)
                        self._grad(wp, sel.expand(A, sel.shape[-1]), beta, omega, mask, out=grad)
                        wp.mul_(decay).add_(grad, alpha=-lr_in)
                    if fused_tail:  # the next four lines in one pass (committee/kernels.py)
                        sgld_tail_(wp, U, z, lr_in * gamma, s, mu, 1.0 - p.alpha)  # z is None without noise
                    else:
                        if gamma != 0.0:
                            wp.add_(U, alpha=lr_in * gamma)  # lines 5–6: dw′ = ∇L(w′) + γ(w′ − w)
                        if noisy:
                            wp.add_(z, alpha=s)  # line 6: + √η′ ε N(0, I)
                        _unit_(wp)
                        mu.lerp_(wp, 1.0 - p.alpha)  # line 7
                    if l == L - 1:
                        dist = _half_sq(U, mu)  # d(w, μ) of this outer iteration
                        U.mul_(1.0 - p.eta).add_(mu, alpha=p.eta)  # line 9: w ← w − η(w − μ), then unit norm
                        _unit_(U)
            finally:
                pending.cancel()  # an interrupted epoch: the checkpoint holds the generators before it
        self._put(ii, U)
        return dist  # d(w, μ) of the last outer iteration

    # --- stop rules ------------------------------------------------------------------------
    def check_stop(self, idx, dist):
        """The stop rule's quantity per active restart and whether it is met (App. B.1)."""
        rule, thr = self.p.stop, self.p.stop_threshold
        ii = torch.as_tensor(idx, device=self.device)
        if rule == "zero_error":
            val = _sign_errors(self.centre()[ii], self.X, self.y)
            met = val <= thr
        elif rule == "loss":
            val = self.full_loss(self.centre()[ii], self.beta(self.epoch), self.omega(self.epoch))
            met = val < thr
        else:
            val = dist
            met = val < thr
        return val.double().cpu().numpy(), met.cpu().numpy()

    def centre(self) -> torch.Tensor:
        """The weights that are evaluated and saved, (R, K, N) unit-norm: u, or rSGD's normalised ū."""
        if self.p.algorithm == "rsgd":
            return _unit(barycenter(self.U))
        return self.U

    def run_epoch(self):
        idx = [int(i) for i in np.flatnonzero(self.active)]
        if not idx:
            return
        dist = {"sgd": self.epoch_sgd, "rsgd": self.epoch_rsgd, "esgd": self.epoch_esgd}[self.p.algorithm](idx)
        val, met = self.check_stop(idx, dist)
        self.epoch += 1
        for j, i in enumerate(idx):
            self.stop_value[i] = val[j]
            if met[j]:
                self.converged[i] = True
                self.active[i] = False
                self.epochs[i] = self.epoch
        if self.epoch >= self.p.max_epochs:
            for i in np.flatnonzero(self.active):
                self.active[i] = False
                self.epochs[i] = self.epoch

    # --- checkpoints -----------------------------------------------------------------------
    def identity(self) -> dict:
        return {"version": CHECKPOINT_VERSION, "preset": self.p.as_dict(), "seed": int(self.seed),
                "restart_ids": self.restart_ids, "P": self.P, "N": self.N, "dtype": str(self.dtype),
                "batches": "shared" if self.shared else "own", "patterns": self.patterns_digest}

    def state_dict(self) -> dict:
        """Everything a resume needs, as tensors, numbers, strings and plain containers only (so that
        it loads with ``torch.load(weights_only=True)``); generator states are uint8 tensors."""
        return {"identity": self.identity(), "U": self.U.detach().cpu().clone(), "epoch": int(self.epoch),
                "active": torch.from_numpy(self.active.copy()), "converged": torch.from_numpy(self.converged.copy()),
                "epochs": torch.from_numpy(self.epochs.copy()), "stop_value": torch.from_numpy(self.stop_value.copy()),
                "step_count": int(self.step_count), "generators": [g.get_state() for g in self.gens],
                "sequence_generators": [g.get_state() for g in self.seq_gens]}

    def load_state_dict(self, sd: dict, where: str):
        if sd.get("identity") != self.identity():
            raise CommitteeError(f"{where}: checkpoint belongs to a different run (setting, hyper-parameters, seed, "
                                 "restarts or patterns differ); delete it or pass another --checkpoint")
        try:
            U, gens, seqs = sd["U"], sd["generators"], sd["sequence_generators"]
            if not (isinstance(U, torch.Tensor) and U.shape == self.U.shape and len(gens) == len(self.gens)
                    and len(seqs) == len(self.seq_gens)
                    and all(isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in list(gens) + list(seqs))):
                raise ValueError("weights or generator states of the wrong shape")
            vec = {k: torch.as_tensor(sd[k]).numpy() for k in ("active", "converged", "epochs", "stop_value")}
            if any(v.shape != (self.R,) for v in vec.values()):
                raise ValueError("per-restart arrays of the wrong length")
            epoch, step_count = int(sd["epoch"]), int(sd["step_count"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CommitteeError(f"{where}: malformed committee checkpoint ({exc})") from None
        self.U = U.to(device=self.device, dtype=self.dtype)
        self.epoch, self.step_count = epoch, step_count
        self.active = vec["active"].astype(bool)
        self.converged = vec["converged"].astype(bool)
        self.epochs = vec["epochs"].astype(np.int64)
        self.stop_value = vec["stop_value"].astype(np.float64)
        for g, s in zip(self.gens + self.seq_gens, list(gens) + list(seqs)):
            g.set_state(s)


def _save_atomic(obj, path: Path):
    with atomic_open(path) as fh:
        torch.save(obj, fh)


def _as_patterns(X, y, device, dtype):
    Xn, yn = np.asarray(X), np.asarray(y)
    if Xn.ndim != 2 or yn.ndim != 1 or Xn.shape[0] != yn.shape[0] or Xn.shape[0] == 0:
        raise CommitteeError(f"patterns must be X (P, N) and y (P,) with P ≥ 1, got {Xn.shape} and {yn.shape}")
    if not (np.all(np.isfinite(Xn.astype(np.float64))) and np.all(np.isin(yn, (-1, 1)))):
        raise CommitteeError("patterns must be finite and labels must be ±1")
    return (torch.as_tensor(Xn.astype(np.float64), device=device).to(dtype),
            torch.as_tensor(yn.astype(np.float64), device=device).to(dtype))


def train_committee(
    X,
    y,
    preset: CommitteePreset,
    *,
    restarts: int | None = None,
    restart_ids: Sequence[int] | None = None,
    seed: int = 0,
    device="cpu",
    dtype=torch.float64,
    checkpoint=None,
    checkpoint_every: int = 50,
    progress: Optional[Callable[[int, int, int, int], None]] = None,
    stop_after_epochs: Optional[int] = None,
    num_threads: Optional[int] = None,
    on_resume: Optional[Callable[[int], None]] = None,
    shared_batches: bool = False,
) -> Optional[TrainResult]:
    """Train ``restarts`` committee machines (or the restarts ``restart_ids``) with ``preset``.

    X (P, N) ±1 patterns, y (P,) ±1 labels. Returns a ``TrainResult`` with one entry per restart.
    ``checkpoint``: a path; if it exists, training resumes from it (it must come from the same run);
    it is rewritten atomically every ``checkpoint_every`` epochs and when training ends. The result
    does not depend on whether or where the run was interrupted. ``progress(epoch, converged,
    finished, R)`` is called after every epoch. ``stop_after_epochs`` (for tests and the CLI's
    interruption handling) saves a checkpoint and returns None after that many epochs of this call.
    ``num_threads`` (CPU only, default 1): with each network's own mini-batches, worker threads
    that share the gradient evaluations, a chunk of networks each, torch's intra-op threads at 1;
    with ``shared_batches``, torch's intra-op threads (the step is a few large GEMMs). Torch's
    thread count is restored afterwards (process-wide).
    ``on_resume(epoch)`` is called once, before training continues, when ``checkpoint`` resumes a run.
    ``dtype``: torch.float64 (default) or torch.float32, the arithmetic of the whole run.
    ``shared_batches``: replica a of every restart (SGD, eSGD: every restart) draws its mini-batches
    from one sequence a (seeded by ``batch_seed(seed, a)``) instead of its own generator, so that a
    step is a few large GEMMs; initial weights, dropout masks and SGLD noise stay per restart.
    Restarts then share their data order (docs/reproducibility.md; speed: docs/committee.md).

    Reproducibility (tests/test_committee_train.py): the same call on the same machine, thread
    count, device, dtype and batches mode gives bitwise the same result, interrupted and resumed or
    not. A restart trained alone equals the same restart trained in a batch up to the rounding of
    batched products (the first epochs agree to ~1e-12 in float64); later, training may amplify
    that rounding, so only statistics (stop epochs, errors) are promised to agree.
    """
    if num_threads is not None and (not isinstance(num_threads, int) or isinstance(num_threads, bool)
                                    or num_threads < 1):
        raise CommitteeError(f"num_threads must be a positive integer, got {num_threads}")
    if dtype not in (torch.float32, torch.float64):
        raise CommitteeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not isinstance(shared_batches, bool):
        raise CommitteeError(f"shared_batches must be True or False, got {shared_batches!r}")
    try:
        cpu = torch.device(device).type == "cpu"
    except (RuntimeError, TypeError) as exc:
        raise CommitteeError(f"unknown device {device!r}") from exc
    workers = (num_threads or 1) if cpu and not shared_batches else 1
    before = torch.get_num_threads()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    if cpu:
        torch.set_num_threads((num_threads or 1) if shared_batches else 1)
    try:
        return _train(X, y, preset, restarts, restart_ids, seed, device, dtype, checkpoint, checkpoint_every,
                      progress, stop_after_epochs, workers, pool, on_resume, shared_batches)
    finally:
        if cpu:
            torch.set_num_threads(before)
        if pool is not None:
            pool.shutdown()


def _train(X, y, preset, restarts, restart_ids, seed, device, dtype, checkpoint, checkpoint_every, progress,
           stop_after_epochs, workers, pool, on_resume, shared_batches):
    if restart_ids is None:
        if restarts is None or int(restarts) != restarts or restarts < 1:
            raise CommitteeError(f"restarts must be a positive integer, got {restarts}")
        restart_ids = list(range(int(restarts)))
    restart_ids = [int(r) for r in restart_ids]
    if not restart_ids or len(set(restart_ids)) != len(restart_ids) or min(restart_ids) < 0:
        raise CommitteeError(f"restart_ids must be distinct non-negative integers, got {restart_ids}")
    restart_seed(seed, 0)
    check_K(preset.K)
    if checkpoint_every < 1:
        raise CommitteeError(f"checkpoint_every must be ≥ 1, got {checkpoint_every}")
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CommitteeError(f"unknown device {device!r}") from exc
    Xt, yt = _as_patterns(X, y, device, dtype)
    run = _Run(preset, Xt, yt, restart_ids, int(seed), device, dtype, shared=shared_batches)
    run.workers, run.pool = workers, pool
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        try:
            # weights_only: a checkpoint holds only tensors, numbers, strings and plain containers,
            # so loading never unpickles (and runs) anything else a foreign file may carry
            sd = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file; the first line of torch's reason
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommitteeError(f"{ckpt}: cannot read checkpoint ({why[:200]})") from None
        if not isinstance(sd, dict):
            raise CommitteeError(f"{ckpt}: not a committee checkpoint")
        run.load_state_dict(sd, str(ckpt))
        if on_resume is not None:
            on_resume(run.epoch)
    done_here = 0
    last_saved = run.epoch
    last_state = run.state_dict() if ckpt is not None else None
    try:
        while run.active.any():
            run.run_epoch()
            done_here += 1
            if ckpt is not None:
                last_state = run.state_dict()  # a consistent end-of-epoch state, for an interruption
            if progress is not None:
                progress(run.epoch, int(run.converged.sum()), int((~run.active).sum()), run.R)
            if ckpt is not None and (run.epoch % checkpoint_every == 0 or not run.active.any()):
                _save_atomic(last_state, ckpt)
                last_saved = run.epoch
            if stop_after_epochs is not None and done_here >= stop_after_epochs and run.active.any():
                if ckpt is not None:
                    _save_atomic(last_state, ckpt)
                return None
    except KeyboardInterrupt:
        # an epoch cut in half has advanced the generators: save the last complete epoch instead
        if ckpt is not None and last_state is not None and last_state["epoch"] > last_saved:
            _save_atomic(last_state, ckpt)
        raise
    return _result(run)


def _result(run: _Run) -> TrainResult:
    sqrtN = math.sqrt(run.N)
    C = run.centre()
    with torch.no_grad():
        err = _sign_errors(C, run.X, run.y)
        # the loss at the β, ω of the last epoch each restart trained
        losses = np.empty(run.R)
        for e in np.unique(run.epochs):  # one evaluation per distinct final epoch
            which = np.flatnonzero(run.epochs == e)
            t = max(int(e) - 1, 0)
            val = run.full_loss(C[torch.as_tensor(which, device=run.device)], run.beta(t), run.omega(t))
            losses[which] = val.double().cpu().numpy()
    weights = (C.detach().double().cpu().numpy() * sqrtN)
    # exact renormalisation in float64 so that saved files meet the √N norm to rounding
    weights *= sqrtN / np.linalg.norm(weights, axis=-1, keepdims=True)
    replicas = None
    if run.p.algorithm == "rsgd":
        replicas = run.U.detach().double().cpu().numpy() * sqrtN
    return TrainResult(preset=run.p, seed=run.seed, restart_ids=run.restart_ids, weights=weights,
                       epochs=run.epochs.copy(), converged=run.converged.copy(),
                       train_error=err.double().cpu().numpy(), train_loss=losses,
                       stop_value=run.stop_value.copy(), replicas=replicas,
                       extra={"dtype": str(run.dtype).replace("torch.", ""),
                              "batches": "shared" if run.shared else "own"})
