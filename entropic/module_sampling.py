"""Local entropy of any nn.Module by sampling, over any subset of its weights (paper 002's partial
local entropy).

`local_entropy(model, …)` runs the SMC over Δ of ``entropic.smc`` around the model's current weights,
with elliptical slice sampling (Murray, Adams & MacKay 2010) as move and the constraint "no more
training errors than the reference" (`_ModelSpace`, which evaluates all chains together through
torch.func.vmap and, when the first selected layer sees the unperturbed input, forms its outputs as a
linear map of the perturbation, ``entropic.first_layer``): general, slower, and validated on tiny
networks only. It is kept apart from the committee's sampler (``entropic.committee_sampling``: exact
reflecting HMC between the walls of sign units, validated at the paper's size, which needs neither
torch.func nor entropic.first_layer); the driver and the result they share are ``entropic.smc``'s.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from localentropy.entropic.errors import EntropicError
from localentropy.entropic.smc import SampledLocalEntropy, check_prior_widths, checkpoint_fingerprint, run_smc

TWO_PI = 2.0 * math.pi


class _ModelSpace:
    """The selected parameters of any nn.Module, perturbed as θ̃ + √Δ s ⊙ z (z ~ N(0, I) on them only;
    s = 1, or each tensor's root-mean-square weight with ``scale="relative"``), with the constraint
    "no more training errors than θ̃" (errors as `classification_error`), and elliptical slice sampling
    (Murray, Adams & MacKay 2010) restricted to the constraint as MCMC move.

    The chains are evaluated together: torch.func.vmap over the selected parameters only, so every
    layer before the first selected one (unperturbed weights, shared inputs) is computed once for all
    chains, and the slice steps of all chains run in lockstep (each chain its own bracket, the
    finished ones left out). Models vmap cannot trace are evaluated chain by chain."""

    # the bisection for the next level stops at 5 % in Δ: each of its steps is a forward pass of every
    # chain over the training set, and the estimate is unbiased whatever the levels (they set its variance)
    level_tolerance = 0.05

    # the first layer's outputs of all chains (Lz, Lν, the proposals) must fit in this many bytes, or the
    # general path is taken
    first_layer_bytes = 2 ** 30

    def __init__(self, model, X, y, names, batch_size, dtype, device, scale="absolute", chain_batch=32,
                 first_layer=True):
        from localentropy.entropic.first_layer import FirstLayer
        from localentropy.entropic.local_energy import classification_error

        self.model, self.X, self.y = model, X, y
        self.batch_size, self.chain_batch = batch_size, chain_batch
        self.dtype, self.device = dtype, device
        params = dict(model.named_parameters())
        if scale == "relative":
            zero = [k for k in names if not bool(params[k].detach().ne(0).any())]
            if zero:
                raise EntropicError(f"relative scale: the selected tensor(s) {zero} are all zero")
        self._err = classification_error
        self._vmap = True
        self._bufs = {}  # kept buffers (`_kept`)
        self.first = None  # the first selected layer as a linear map of the perturbation (entropic.first_layer)
        self._cache = None  # (z, L(s ⊙ z)) of the last particles moved
        found = FirstLayer.order_first(model, list(names), X) if first_layer else None
        if found is not None:  # the first module's parameters first: z[:, :size] perturbs it
            self._layout(params, found[1], scale)
            first = FirstLayer.capture(model, found[0], self.names, params, X, batch_size)
            if self._shortcut_holds(first):
                self.first = first
        if self.first is None:
            self._layout(params, list(names), scale)
        self.E0 = int(self.errors_many(self.center[None])[0])

    def _layout(self, params, names, scale):
        """The selected parameters in this order: their shapes, sizes, θ̃ as one vector and s (and its value
        per tensor, ``tensor_scale``, with ``scale="relative"``)."""
        self.names = names
        self.shapes = [params[k].shape for k in names]
        self.sizes = [params[k].numel() for k in names]
        self.center = torch.cat([params[k].detach().reshape(-1).to(self.dtype) for k in names])
        self.n = int(self.center.numel())
        self.scale = self.tensor_scale = None
        if scale == "relative":
            rms = [params[k].detach().to(self.dtype).pow(2).mean().sqrt() for k in names]
            self.tensor_scale = [float(r) for r in rms]
            self.scale = torch.cat([r.expand(m) for r, m in zip(rms, self.sizes)]).to(self.device)

    def _shortcut_holds(self, first, rows=2, Delta=0.25, seed=0):
        """Whether the model's outputs with ``first`` replaced by base + √Δ L(s ⊙ z) equal its outputs at
        θ̃ + √Δ s ⊙ z, for ``rows`` random z on the first 64 samples (to float rounding): a model that uses
        the layer's weights elsewhere, or is not deterministic, fails and keeps the general path."""
        from torch.func import functional_call

        gen = torch.Generator(device=self.center.device).manual_seed(seed)
        z = torch.randn((rows, self.n), generator=gen, dtype=self.dtype, device=self.center.device)
        xb = self.X[:64]
        theta = self.theta(z, Delta)
        full = self._override(theta)
        rest = self._override(theta[:, first.size:], skip=len(first.locals)) if first.size < self.n else {}
        pre = first.base[:xb.shape[0]] + math.sqrt(Delta) * self._first_L(z, first)[:, :xb.shape[0]]
        with torch.no_grad():
            for j in range(rows):
                want = functional_call(self.model, {k: v[j] for k, v in full.items()}, (xb,))
                with first.replaced():
                    first._value = pre[j]
                    got = functional_call(self.model, {k: v[j] for k, v in rest.items()}, (xb,))
                if not isinstance(want, torch.Tensor) or want.shape != got.shape:
                    return False
                tol = 1e-3 * float(want.abs().max()) + 1e-12
                if not bool(torch.isfinite(want).all()) or float((want - got).abs().max()) > tol:
                    return False
        return True

    def theta(self, z, Delta, out=None):
        """The selected parameters (B, n) at perturbations z (B, n) of prior width Δ: θ̃ + √Δ s ⊙ z in one
        pass (into ``out`` if given)."""
        if self.scale is not None:
            return torch.addcmul(self.center, z, self.scale, value=math.sqrt(Delta), out=out)
        return torch.add(self.center, z, alpha=math.sqrt(Delta), out=out)

    def errors_many(self, thetas) -> torch.Tensor:
        """Misclassified training samples (B,) of the model with the selected parameters set to each row."""
        return self._chunked(thetas.shape[0], lambda c, e: (self._override(thetas[c:e]), None))

    def _chunked(self, rows, chunk) -> torch.Tensor:
        """Errors of ``rows`` chains, ``chain_batch`` at a time; chunk(c, e) gives rows c … e − 1 as the
        arguments of `_errors`."""
        out = []
        with torch.no_grad():
            for c in range(0, rows, self.chain_batch):
                out.append(self._errors(*chunk(c, min(c + self.chain_batch, rows))))
        return torch.cat(out)

    def _kept(self, key, shape, dtype):
        """A buffer kept between calls and filled in place, so that the pages of a fresh large tensor are not
        faulted in at every proposal."""
        buf = self._bufs.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self._bufs[key] = torch.empty(shape, dtype=dtype, device=self.center.device)
        return buf

    def _override(self, theta, skip=0):
        """Rows of parameters (B, ·) as functional_call's dict of (B, *shape) tensors: the selection's
        tensors from the ``skip``-th on."""
        pieces = torch.split(theta, self.sizes[skip:], dim=-1)
        return {k: p.reshape(theta.shape[0], *s).to(self.X.dtype)
                for k, p, s in zip(self.names[skip:], pieces, self.shapes[skip:])}

    def _errors(self, ps, pre=None):
        """Misclassified training samples per chain, with the selected parameters ``ps`` (each (B, ...)) and,
        with the first-layer shortcut, its outputs ``pre`` (B, P, ...) (its parameters then absent from ps);
        vmapped over the chains (the layers before the first selected one computed once), or chain by chain
        from the first model vmap cannot trace on."""
        if self._vmap:
            try:
                return self._errors_each(ps, pre, vmapped=True)
            except (RuntimeError, NotImplementedError, ValueError, TypeError):
                self._vmap = False
        return self._errors_each(ps, pre, vmapped=False)

    def _errors_each(self, ps, pre, vmapped):
        from contextlib import nullcontext

        from torch.func import functional_call, vmap

        err, first = self._err, self.first

        def call(p, pr, xb, yb):
            if pr is not None:
                first._value = pr
            return err(functional_call(self.model, p, (xb,)), yb)

        B = pre.shape[0] if pre is not None else next(iter(ps.values())).shape[0]
        wrong = torch.zeros(B, dtype=torch.float64, device=self.device)
        with first.replaced() if pre is not None else nullcontext():
            for i in range(0, self.X.shape[0], self.batch_size):
                j = min(i + self.batch_size, self.X.shape[0])
                xb, yb, pb = self.X[i:j], self.y[i:j], None if pre is None else pre[:, i:j]
                if vmapped:
                    f = vmap(call, in_dims=(0, None if pb is None else 0, None, None))
                    wrong += f(ps, pb, xb, yb).to(torch.float64) * (j - i)
                    continue
                for b in range(B):
                    one = call({k: v[b] for k, v in ps.items()}, None if pb is None else pb[b], xb, yb)
                    wrong[b] += round(float(one) * (j - i))
        return wrong.round().long()

    def _errors_one(self, theta) -> int:
        """The errors of one parameter row, without vmap (what the vmapped evaluation is tested against)."""
        return int(self._errors_each(self._override(theta[None]), None, vmapped=False)[0])

    def init(self, M, gen):
        if self.first is not None:
            per_chain = self.first.base.numel() * self.first.base.element_size()
            if 4 * M * per_chain > self.first_layer_bytes:  # Lz, Lν, the proposals and the kept (z, Lz)
                self.first = None
        return torch.randn((M, self.n), generator=gen, dtype=self.dtype, device=self.device)

    def aux(self, z):
        """What feasibility is computed from: z, and with a linear first layer (z, L(s ⊙ z)) as well."""
        if self.first is None:
            return z
        if self._cache is not None and self._cache[0] is z:
            return self._cache
        return z, self._first_L(z)

    def _first_L(self, z, first=None):
        """L(s ⊙ z) of the first layer's block of z, chain_batch rows at a time: (M, P, ...)."""
        first = self.first if first is None else first
        # one scale per tensor ("relative"): applied to L's outputs, not to the rows of z
        scales = None if self.tensor_scale is None else self.tensor_scale[:len(first.locals)]
        return torch.cat([first.L(z[c:c + self.chain_batch, :first.size], scales)
                          for c in range(0, z.shape[0], self.chain_batch)])

    def feasible(self, z, Delta):
        if self.first is not None:
            z, Lz = z
            r = math.sqrt(Delta)

            def chunk(c, e):
                pre = torch.add(self.first.base, Lz[c:e], alpha=r, out=self._pre_buffer(e - c))
                return self._rest(z[c:e, self.first.size:], Delta), pre
            return self._chunked(z.shape[0], chunk) <= self.E0

        def general(c, e):
            theta = self.theta(z[c:e], Delta, out=self._kept("theta", (self.chain_batch, self.n), self.center.dtype)[:e - c])
            return self._override(theta), None
        return self._chunked(z.shape[0], general) <= self.E0

    def _pre_buffer(self, rows):
        """The kept (chain_batch, P, ...) buffer for the first layer's outputs of one chunk of chains."""
        return self._kept("pre", (self.chain_batch, *self.first.base.shape), self.first.base.dtype)[:rows]

    def _rest(self, zr, Delta):
        """The parameters after the first layer's, θ̃ + √Δ s ⊙ z on their block zr, as a functional_call dict
        (in a kept buffer)."""
        k = self.first.size
        if k == self.n:
            return {}
        out = self._kept("rest", (self.chain_batch, self.n - k), self.center.dtype)[:zr.shape[0]]
        if self.scale is not None:
            torch.addcmul(self.center[k:], zr, self.scale[k:], value=math.sqrt(Delta), out=out)
        else:
            torch.add(self.center[k:], zr, alpha=math.sqrt(Delta), out=out)
        return self._override(out, skip=len(self.first.locals))

    def move(self, z, Delta, moves, gen, max_shrinks=100):
        """`moves` elliptical slice steps per chain with the indicator likelihood: propose on the ellipse
        z cos θ + ν sin θ, shrink the bracket towards θ = 0 (z itself, feasible) until feasible; all
        chains at once, each with its own bracket. A chain's accepted angle is applied at the end of the
        move (the chains still shrinking are unchanged until then), in one pass over z (and, with a linear
        first layer, over L(s ⊙ z), whose proposals are combined from L(s ⊙ z) and L(s ⊙ ν): one product
        per chain and move)."""
        first = self.first is not None
        Lz = self.aux(z)[1] if first else None
        M = z.shape[0]
        shrinks = 0
        f64 = dict(dtype=torch.float64, device=z.device)
        for m in range(moves):
            nu = self._normals(z, gen)
            Lnu = self._first_L(nu) if first else None
            theta = torch.rand(M, generator=gen, **f64) * TWO_PI
            lo, hi = theta - TWO_PI, theta.clone()
            active = torch.ones(M, dtype=torch.bool, device=z.device)
            C = torch.ones(M, dtype=z.dtype, device=z.device)  # the accepted cos θ, sin θ of each chain
            S = torch.zeros(M, dtype=z.dtype, device=z.device)
            for _ in range(max_shrinks):
                idx = torch.nonzero(active).flatten()
                t = theta[idx].to(z.dtype)
                cos, sin = torch.cos(t), torch.sin(t)
                if first:
                    ok = self._proposals_first(z, nu, Lz, Lnu, idx, cos, sin, Delta)
                else:
                    ok = self._proposals(z, nu, idx, cos, sin, Delta)
                C[idx[ok]], S[idx[ok]] = cos[ok], sin[ok]
                active[idx[ok]] = False
                bad = idx[~ok]
                shrinks += int(bad.numel())
                if bad.numel() == 0:
                    break
                neg = theta[bad] < 0
                lo[bad] = torch.where(neg, theta[bad], lo[bad])
                hi[bad] = torch.where(neg, hi[bad], theta[bad])
                u = torch.rand(M, generator=gen, **f64)[bad]
                theta[bad] = lo[bad] + (hi[bad] - lo[bad]) * u
            # a chain never accepted keeps C = 1, S = 0; the first move writes new tensors (the caller's z stays)
            z = (torch.mul(z, C[:, None]) if m == 0 else z.mul_(C[:, None])).addcmul_(nu, S[:, None])
            if first:
                lead = (-1,) + (1,) * (Lz.dim() - 1)
                Cl, Sl = C.to(Lz.dtype).reshape(lead), S.to(Lz.dtype).reshape(lead)
                Lz = (torch.mul(Lz, Cl) if m == 0 else Lz.mul_(Cl)).addcmul_(Lnu, Sl)
        if first:
            self._cache = (z, Lz)
        return z, shrinks / max(1, moves * M)

    def _normals(self, z, gen):
        """ν ~ N(0, I) of z's shape, drawn into a kept buffer (torch.randn's stream, without faulting in
        fresh pages at every move)."""
        return torch.randn(z.shape, generator=gen, dtype=z.dtype, device=z.device, out=self._kept("nu", z.shape, z.dtype))

    def _proposals(self, z, nu, idx, cos, sin, Delta):
        """Whether the proposals z cos θ + ν sin θ of chains ``idx`` are feasible (the general path)."""
        every = idx.numel() == z.shape[0]  # the first proposal of a move: no gather of z and ν
        prop = torch.mul(z if every else z[idx], cos[:, None], out=self._kept("proposals", z.shape, z.dtype)[:idx.numel()])
        prop.addcmul_(nu if every else nu[idx], sin[:, None])
        return self.feasible(prop, Delta)

    def _proposals_first(self, z, nu, Lz, Lnu, idx, cos, sin, Delta):
        """`_proposals` with a linear first layer: its outputs base + √Δ (cos θ L(s ⊙ z) + sin θ L(s ⊙ ν)),
        the later selected parameters from the proposals' other columns."""
        every, k, r = idx.numel() == z.shape[0], self.first.size, math.sqrt(Delta)
        lead = (-1,) + (1,) * (Lz.dim() - 1)

        def chunk(c, e):
            rows = slice(c, e) if every else idx[c:e]
            zr = torch.mul(z[rows, k:], cos[c:e, None])
            zr.addcmul_(nu[rows, k:], sin[c:e, None])
            pre = torch.mul(Lz[rows], (r * cos[c:e]).to(Lz.dtype).reshape(lead), out=self._pre_buffer(e - c))
            pre.addcmul_(Lnu[rows], (r * sin[c:e]).to(Lz.dtype).reshape(lead))
            pre.add_(self.first.base)
            return self._rest(zr, Delta), pre
        return self._chunked(idx.numel(), chunk) <= self.E0

    def resampled(self, aux, pick, state):
        """The particles were resampled (state = old[pick]): keep L(s ⊙ z) of the copies instead of
        computing it again."""
        if self.first is not None and isinstance(aux, tuple):
            self._cache = (state, aux[1][pick])

    def sq(self, z):
        return torch.cat([(c.double() ** 2).sum(1) for c in z.split(4)])  # a few rows at a time: in cache


def local_entropy(model, X, y, deltas, *, params=None, include_biases=False, scale="absolute", chains=64, groups=8,
                  keep=0.5, moves=2, batch_size=4096, chain_batch=32, stop_below=None, seed=0, device=None,
                  dtype=torch.float64, checkpoint=None, progress=None) -> SampledLocalEntropy:
    """φ_G(Δ), δ(Δ) and s(d) of any classifier around its current weights, restricted to the weights
    chosen by `params` (as `select_parameters`; paper 002's partial local entropy), the others fixed.

    φ_G(Δ) = (1/n) ln P_{θ′ ~ N(θ̃, ΔI)}[errors(θ′) ≤ errors(θ̃)] on (X, y), n = number of selected weights
    (paper 000, Sec. 5; docs/bp.md §1, §5). ``scale="absolute"``: Δ and δ in the units of the weights;
    ``scale="relative"``: each selected tensor's perturbation is measured in units of its own
    root-mean-square weight (prior N(θ̃, Δ s²), δ and d in those units), so that layers and networks of
    different weight scales are compared as δE_train's relative noise compares them (000, Eq. 4).
    Same SMC over Δ as `committee_local_entropy`, with elliptical slice sampling as move, and a forward
    pass over the training set per chain and proposal (``chain_batch`` chains per vmapped pass; the
    layers before the first selected one are computed once per pass). When the first selected module is
    an nn.Linear or nn.ConvNd that sees the unperturbed input, its output is a linear map of the
    perturbation (``entropic.first_layer``): it is formed from one product per chain and slice move
    instead of one per proposal (``settings["first_layer"]`` names it; None: the general path). Each halving of the
    constrained probability costs an SMC level, so ``stop_below`` (a ln-probability, e.g. −12) ends
    the curve after the first Δ where n φ_G falls below it, or before a Δ whose levels go below
    2·stop_below (the result then has fewer Δ than asked). It is checked against brute force on tiny
    networks only; in high dimension, slice steps restricted to a hard constraint are short (docs/bp.md §7.6
    records such a sampler failing to equilibrate), so check a curve's stability in `moves` and `chains`
    before trusting it. For sign-unit committee machines use `committee_local_entropy` (exact HMC,
    validated at the paper's size). ``device``: where the chains live; default (None) the model's device,
    and X, y are moved there.
    """
    from localentropy.entropic.params import select_parameters

    chosen = select_parameters(model, params, include_biases=include_biases)
    deltas = check_prior_widths(deltas)
    if scale not in ("absolute", "relative"):
        raise EntropicError(f"scale must be 'absolute' or 'relative', got {scale!r}")
    if int(chain_batch) != chain_batch or chain_batch < 1:
        raise EntropicError(f"chain_batch must be a positive integer, got {chain_batch}")
    if stop_below is not None and not (math.isfinite(stop_below) and stop_below < 0):
        raise EntropicError(f"stop_below must be a negative ln-probability, got {stop_below}")
    chains, groups, moves = int(chains), int(groups), int(moves)
    if groups < 2 or chains < 2 * groups or chains % groups:
        raise EntropicError(f"need groups ≥ 2 and chains a multiple of groups with ≥ 2 chains each, "
                            f"got chains={chains}, groups={groups}")
    if not 0.05 <= keep < 1 or moves < 1:
        raise EntropicError(f"need keep in [0.05, 1) and moves ≥ 1, got keep={keep}, moves={moves}")
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise EntropicError(f"X and y must hold the same number (≥ 1) of samples, got {X.shape[0]} and {y.shape[0]}")
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        raise EntropicError("X contains NaN or inf")
    where = {p.device for p in model.parameters()}
    if len(where) > 1:
        raise EntropicError(f"the model's parameters are on several devices ({sorted(map(str, where))})")
    dev = torch.device(device) if device is not None else next(iter(where), torch.device("cpu"))
    if where and dev.type != next(iter(where)).type:
        raise EntropicError(f"device={str(dev)!r} but the model is on {next(iter(where))}: move it with model.to()")
    center = torch.cat([p.detach().reshape(-1) for p in chosen.values()])
    if not bool(torch.isfinite(center).all()):
        raise EntropicError("the selected parameters contain NaN or inf")
    space = _ModelSpace(model, X.to(dev), y.to(dev), list(chosen), int(batch_size), dtype, dev, scale=scale,
                        chain_batch=int(chain_batch))
    h = hashlib.sha256(space.center.double().cpu().numpy().tobytes())
    h.update(X.double().cpu().numpy().tobytes())
    h.update(y.double().cpu().numpy().tobytes())
    h.update(f"{scale} {stop_below}".encode())
    fingerprint = checkpoint_fingerprint(h.digest()[:8], np.zeros(1), np.zeros(1), deltas, chains, groups, keep,
                                         moves, False, seed, dtype)
    out = run_smc(space, deltas, chains, groups, keep, moves, seed, space.n, checkpoint, fingerprint, progress,
                  stop_below=stop_below)
    return SampledLocalEntropy(**out, n=space.n, K=None, N=None, P=int(X.shape[0]), rank=None, chains=chains,
                               groups=groups, settings={"keep": keep, "moves": moves, "seed": seed,
                                                        "params": list(chosen), "errors_reference": space.E0,
                                                        "scale": scale, "device": str(dev), "dtype": str(dtype),
                                                        "sampler": "elliptical slice",
                                                        "first_layer": None if space.first is None else space.first.name})
