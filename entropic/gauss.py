"""Counter-based standard normals for SGLD noise on the CPU, and the SGLD step that draws them in place.

Entropy-SGD draws one Gaussian per weight per inner step (paper 000, Alg. 1, line 6). torch's CPU
generator (a Mersenne Twister, one uniform at a time) makes that draw cost a third of a small network's
forward and backward pass (benchmarks/bench_deep_methods.py). Here a normal pair is a pure function of
(key, counter), so the draw vectorises:

- 64 random bits per pair: the SplitMix64 finaliser of key + counter · φ·2⁶⁴ (the mixer of Java's
  SplittableRandom, which passes BigCrush on such sequences); the key is itself the finaliser of the seed;
- Box–Muller on them: u ∈ (0, 1) from 24 bits, r = √(−2 ln u); an angle uniform on the circle from the
  other 24 bits (2 bits pick the quadrant, 22 the angle within [−π/4, π/4)); the pair (r cos θ, r sin θ).
  ln, sin and cos are polynomials on reduced ranges whose truncation errors lie below float32's rounding
  (ln via the exponent bits and the atanh series to degree 7, < 4e-8; sin and cos Taylor to degree 9
  and 10, < 2e-10).

The output is float32 normals of the same resolution as ``torch.randn``'s float32 ones (24-bit uniforms:
|z| ≤ 5.9). Only IEEE-exact operations (+, −, ×, ÷, √; no fused multiply-add, no reassociation), so the
numbers are the same on every x86-64 CPU, whatever its vector width. Tests check the moments, the tails,
the Kolmogorov–Smirnov distance to N(0, 1), and independence between neighbours and between keys.

``CounterNormal(seed)`` is a ``noise_fn`` for ``EntropySGD`` (a standard-normal tensor per parameter,
its counter saved by the optimizer); on the CPU the optimizer then runs each inner step as one fused
pass per parameter (``sgld_step_``): the coupling, torch SGD's weight decay and momentum, the update,
the noise and μ's average, with the same arithmetic as the torch sequence up to rounding.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from localentropy.entropic.errors import EntropicError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


@intrinsic
def _f32_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


def mix64(x: int) -> int:
    """The SplitMix64 finaliser (Python integers): the key of a seed."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@nb.njit(inline="always", error_model="numpy")
def _pair(key, counter):
    """The normal pair number ``counter`` of stream ``key`` (float32, float32)."""
    z = key + counter * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    a = np.int32(z >> np.uint64(40))
    b = np.int32((z >> np.uint64(8)) & np.uint64(0xFFFFFF))
    one = np.float32(1.0)
    # radius: ln u = e ln 2 + ln m, u = 2^e m with m in [1/√2, √2)
    u = (np.float32(a) + np.float32(0.5)) * np.float32(5.9604644775390625e-08)  # (0, 1), 2⁻²⁴ steps
    bits = _f32_bits(u)
    e = np.float32((bits >> 23) - 127)
    m = _bits_f32((bits & 0x7FFFFF) | 0x3F800000)
    big = np.float32(m > np.float32(1.4142135))
    m = m * (one - np.float32(0.5) * big)
    e = e + big
    s = (m - one) / (m + one)
    s2 = s * s
    ln_m = s * (np.float32(2.0) + s2 * (np.float32(0.6666667) + s2 * (np.float32(0.4) + s2 * np.float32(0.2857143))))
    r = math.sqrt(np.float32(-2.0) * (e * np.float32(0.6931472) + ln_m))
    # angle: quadrant q, φ in [−π/4, π/4)
    q = b >> 22
    phi = (np.float32(b & 0x3FFFFF) * np.float32(2.384185791015625e-07) - np.float32(0.5)) * np.float32(1.5707964)
    p2 = phi * phi
    sn = phi * (one + p2 * (np.float32(-1.0 / 6) + p2 * (np.float32(1.0 / 120) + p2 * (
        np.float32(-1.0 / 5040) + p2 * np.float32(1.0 / 362880)))))
    cs = one + p2 * (np.float32(-0.5) + p2 * (np.float32(1.0 / 24) + p2 * (np.float32(-1.0 / 720)
                                                                           + p2 * np.float32(1.0 / 40320))))
    odd = (q & 1) == 1  # θ = φ + qπ/2: (c, s) → (−s, c), (−c, −s), (s, −c)
    c = (sn if odd else cs) * np.float32(1 - 2 * (((q + 1) >> 1) & 1))
    d = (cs if odd else sn) * np.float32(1 - 2 * (q >> 1))
    return r * c, r * d


_F = torch.float32


def _lsr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 tensors holding uint64 bit patterns."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def pairs_torch(key: int, counter: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normal pairs counter … counter + n − 1 of stream ``key`` with torch operations on ``device``: the
    same numbers as the CPU kernel (``_pair``), operation for operation (IEEE-exact, no fusion)."""
    j = torch.arange(n, dtype=torch.int64, device=device)
    z = (j + _signed(counter)) * _signed(int(_GOLDEN)) + _signed(key)  # wraps modulo 2⁶⁴ like uint64
    z = (z ^ _lsr(z, 30)) * _signed(int(_M1))
    z = (z ^ _lsr(z, 27)) * _signed(int(_M2))
    z = z ^ _lsr(z, 31)
    a = _lsr(z, 40).to(torch.int32)
    b = (_lsr(z, 8) & 0xFFFFFF).to(torch.int32)
    f = lambda x: torch.tensor(np.float32(x), device=device)  # noqa: E731  (float32 constants, as the kernel's)
    u = (a.to(_F) + f(0.5)) * f(5.9604644775390625e-08)
    bits = u.view(torch.int32)
    e = ((bits >> 23) - 127).to(_F)
    m = ((bits & 0x7FFFFF) | 0x3F800000).view(_F)
    big = (m > f(1.4142135)).to(_F)
    m = m * (f(1.0) - f(0.5) * big)
    e = e + big
    s = (m - f(1.0)) / (m + f(1.0))
    s2 = s * s
    ln_m = s * (f(2.0) + s2 * (f(0.6666667) + s2 * (f(0.4) + s2 * f(0.2857143))))
    # torch's float32 sqrt on the CPU is not correctly rounded (Sleef, ≤ 0.5001 ulp); √ of a float32 in
    # float64, rounded to float32, is (53 ≥ 2·24 + 2 bits), as the kernel's IEEE sqrt
    r = torch.sqrt((f(-2.0) * (e * f(0.6931472) + ln_m)).double()).to(_F)
    q = b >> 22
    phi = ((b & 0x3FFFFF).to(_F) * f(2.384185791015625e-07) - f(0.5)) * f(1.5707964)
    p2 = phi * phi
    sn = phi * (f(1.0) + p2 * (f(-1.0 / 6) + p2 * (f(1.0 / 120) + p2 * (f(-1.0 / 5040) + p2 * f(1.0 / 362880)))))
    cs = f(1.0) + p2 * (f(-0.5) + p2 * (f(1.0 / 24) + p2 * (f(-1.0 / 720) + p2 * f(1.0 / 40320))))
    odd = (q & 1) == 1
    c = torch.where(odd, sn, cs) * (1 - 2 * (((q + 1) >> 1) & 1)).to(_F)
    d = torch.where(odd, cs, sn) * (1 - 2 * (q >> 1)).to(_F)
    return r * c, r * d


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _fill(out, key, counter):
    """out (n,) float32, h = ⌊n/2⌋: pair counter + j gives out[j] and out[h + j]; an odd n's last value is
    the first of pair counter + h."""
    n = out.shape[0]
    h = n // 2
    for j in range(h):
        x, y = _pair(key, counter + np.uint64(j))
        out[j] = x
        out[h + j] = y
    if n % 2:
        x, _ = _pair(key, counter + np.uint64(h))
        out[n - 1] = x


@nb.njit(inline="always", error_model="numpy")
def _sgld_at(i, z, p, g, w, mu, buf, gamma, wd, lr, momentum, mbuf, nesterov, scale, a):
    d = g[i] - gamma * w[i]
    d = d + wd * p[i]
    bi = mbuf * buf[i] + d  # torch SGD: buf = d at the outer step's first inner step (mbuf = 0), else m·buf + d
    buf[i] = bi
    d = d + momentum * bi if nesterov else bi
    v = p[i] - lr * d + scale * z
    p[i] = v
    mu[i] = mu[i] + a * (v - mu[i])


@nb.njit(inline="always", error_model="numpy")
def _sgld_plain_at(i, z, p, g, w, mu, gamma, wd, lr, scale, a):
    d = g[i] - gamma * w[i]
    d = d + wd * p[i]
    v = p[i] - lr * d + scale * z
    p[i] = v
    mu[i] = mu[i] + a * (v - mu[i])


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sgld_momentum(p, g, w, mu, buf, gamma, wd, lr, momentum, mbuf, nesterov, scale, a, key, counter):
    """One SGLD step of EntropySGD on a flat parameter (arrays (n,), one float dtype), with momentum:
    d = g − γw + wd·p; buf ← mbuf·buf + d (mbuf = 0 at the first inner step: torch's buf = d); d ← d + m·buf
    (Nesterov) or buf; p ← p − lr·d + scale·z (z laid out as ``_fill``'s);
    μ ← μ + a(p − μ)."""
    n = p.shape[0]
    h = n // 2
    t = p.dtype.type
    gamma, wd, lr, momentum, mbuf, scale, a = t(gamma), t(wd), t(lr), t(momentum), t(mbuf), t(scale), t(a)
    for j in range(n // 2):
        z0, z1 = _pair(key, counter + np.uint64(j))
        _sgld_at(j, t(z0), p, g, w, mu, buf, gamma, wd, lr, momentum, mbuf, nesterov, scale, a)
        _sgld_at(h + j, t(z1), p, g, w, mu, buf, gamma, wd, lr, momentum, mbuf, nesterov, scale, a)
    if n % 2:
        z0, _ = _pair(key, counter + np.uint64(h))
        _sgld_at(n - 1, t(z0), p, g, w, mu, buf, gamma, wd, lr, momentum, mbuf, nesterov, scale, a)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sgld_plain(p, g, w, mu, gamma, wd, lr, scale, a, key, counter):
    """``_sgld_momentum`` without momentum: d = g − γw + wd·p, p ← p − lr·d + scale·z, μ ← μ + a(p − μ)."""
    n = p.shape[0]
    h = n // 2
    t = p.dtype.type
    gamma, wd, lr, scale, a = t(gamma), t(wd), t(lr), t(scale), t(a)
    for j in range(n // 2):
        z0, z1 = _pair(key, counter + np.uint64(j))
        _sgld_plain_at(j, t(z0), p, g, w, mu, gamma, wd, lr, scale, a)
        _sgld_plain_at(h + j, t(z1), p, g, w, mu, gamma, wd, lr, scale, a)
    if n % 2:
        z0, _ = _pair(key, counter + np.uint64(h))
        _sgld_plain_at(n - 1, t(z0), p, g, w, mu, gamma, wd, lr, scale, a)


@nb.njit(cache=True, nogil=True, fastmath={"reassoc"}, error_model="numpy")
def _outer(p, w, mu, w_prime, grad):
    """EntropySGD's hand-over to the outer step on a flat parameter, one pass: w′ ← p, grad ← w − μ,
    p ← w; returns (Σ (w′ − w)², Σ grad²) in float64 (diagnostics: sums reassociated for SIMD)."""
    d = 0.0
    s = 0.0
    for i in range(p.shape[0]):
        v = p[i]
        wi = w[i]
        w_prime[i] = v
        e = np.float64(v - wi)
        d += e * e
        g = wi - mu[i]
        grad[i] = g
        s += np.float64(g) * np.float64(g)
        p[i] = wi
    return d, s


def outer_handover_(p, w, mu, w_prime, grad) -> tuple[float, float]:
    """w′ ← p, grad ← w − μ, p ← w in one pass (contiguous CPU tensors of one dtype); returns
    (½‖w′ − w‖², ‖w − μ‖²)."""
    d, s = _outer(*(x.detach().view(-1).numpy() for x in (p, w, mu, w_prime, grad)))
    return 0.5 * d, s


def _cpu_float(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()


class CounterNormal:
    """Standard normals of stream ``seed``: ``noise(p)`` returns a tensor of ``p``'s shape, dtype and device
    (float32 values) and advances the counter by ⌈numel/2⌉ pairs; ``fill_`` fills a CPU tensor. State:
    ``state_dict()`` (saved by ``EntropySGD``)."""

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise EntropicError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.key = mix64(self.seed)
        self.counter = 0

    def take(self, n: int) -> int:
        """Reserve the pairs of n normals; returns the first pair's counter."""
        c = self.counter
        self.counter = (self.counter + (n + 1) // 2) & _MASK64
        return c

    def fill_(self, out: torch.Tensor) -> torch.Tensor:
        """Fill a contiguous float32 CPU tensor with normals (in place)."""
        if out.dtype != torch.float32 or out.device.type != "cpu" or not out.is_contiguous():
            raise EntropicError("CounterNormal.fill_ takes a contiguous float32 CPU tensor")
        _fill(out.view(-1).numpy(), np.uint64(self.key), np.uint64(self.take(out.numel())))
        return out

    def on_device(self, n: int, device) -> torch.Tensor:
        """n normals computed on ``device`` with torch operations: what ``fill_`` gives, bitwise."""
        h = n // 2
        x, y = pairs_torch(self.key, self.take(n), h + n % 2, device)
        return torch.cat([x[:h], y[:h], x[h:]])

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        if p.device.type == "cpu":
            z = self.fill_(torch.empty(p.shape, dtype=torch.float32))
        else:  # a GPU: drawn there, no transfer
            z = self.on_device(p.numel(), p.device).view(p.shape)
        return z.to(dtype=p.dtype)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "counter": self.counter}

    def load_state_dict(self, sd: dict) -> None:
        if int(sd["seed"]) != self.seed:
            raise EntropicError(f"noise state of seed {sd['seed']} loaded into a stream of seed {self.seed}")
        self.counter = int(sd["counter"])


def fusable(*tensors: torch.Tensor) -> bool:
    """Whether ``sgld_step_`` applies: contiguous CPU tensors of one float dtype."""
    return all(_cpu_float(x) and x.dtype == tensors[0].dtype for x in tensors)


def sgld_step_(p, g, w, mu, buf, *, gamma, weight_decay, lr, momentum, first, nesterov, scale, a,
               noise: CounterNormal) -> None:
    """EntropySGD's inner step on one parameter in one pass (module docstring). ``buf``: the inner
    momentum buffer (finite values; ignored when momentum is 0); ``first``: the outer step's first inner
    step (torch's SGD then starts the buffer at d). The noise's pairs are reserved even when scale is 0."""
    key, counter = np.uint64(noise.key), np.uint64(noise.take(p.numel()))
    flat = [x.detach().view(-1).numpy() for x in (p, g, w, mu)]
    t = (float(gamma), float(weight_decay), float(lr))
    if momentum:
        _sgld_momentum(*flat, buf.view(-1).numpy(), *t, float(momentum), 0.0 if first else float(momentum),
                       bool(nesterov), float(scale), float(a), key, counter)
    else:
        _sgld_plain(*flat, *t, float(scale), float(a), key, counter)


__all__ = ["CounterNormal", "fusable", "mix64", "outer_handover_", "pairs_torch", "sgld_step_"]
