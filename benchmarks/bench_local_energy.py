"""Benchmarks of the local energy (000, Eq. 4).

Default (``--mode committee``): the committee solutions' profiles of ``committee.evaluate``, 200 draws
× 11 σ per solution on the real Dress/Coat training set (P = 500, N = 784, K = 9). Prints, in one run:

- measured seconds per solution (best of --repeats, several solutions per repeat);
- the bound for the same work on this machine, measured here: the one GEMM of the noise fields
  (P×N by N×(draws·K), float64, the multiply-adds the method needs), plus drawing the draws·K·N
  normals in one call, plus reading the (draws, K, P) noise fields once per σ at the copy bandwidth;
- the ratio measured / bound and the goal (≤ 0.6 s per solution), with 1 torch thread and with torch's
  default (on a CPU shared with other work the single thread is the faster one);
- with --compare, the model-agnostic per-draw path of ``entropic.local_energy`` (vmap batches) on one
  solution, and the agreement of the two within sampling error.

``--mode module``: the model-agnostic ``entropic.local_energy`` on a small torch model, vmap-batched draws
against the per-draw loop, same run:

    .venv/bin/python benchmarks/bench_local_energy.py --mode module [--model mlp|conv|committee] [--draws 64]
        [--batch-draws 64] [--samples 512] [--hidden 100] [--threads N] [--repeat 3] [--device cpu]

Both paths get the same seed and so the same noise; the script checks they agree, prints the
minimum wall time of each over interleaved repeats (the machine may be shared) and the ratio
loop / batched, and exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: the benchmark runs without an install

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from localentropy.entropic import local_energy  # noqa: E402


class Committee(nn.Module):
    """Paper 000 Eq. 7: ŷ = sign(Σ_h sign(w_h·x/√N)), weights (K, N)."""

    def __init__(self, K=9, N=784):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(K, N))

    def forward(self, x):
        return torch.sign(torch.sign(x @ self.weight.T / math.sqrt(x.shape[1])).sum(dim=1))


def build(kind: str, samples: int, device: str, hidden: int = 100):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        x = torch.randn(samples, 1, 28, 28, generator=g)
        t = torch.randint(0, 10, (samples,), generator=g)
    elif kind == "conv":
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
        )
        x = torch.randn(samples, 3, 32, 32, generator=g)
        t = torch.randint(0, 10, (samples,), generator=g)
    else:
        model = Committee()
        x = torch.sign(torch.randn(samples, 784, generator=g))
        with torch.no_grad():
            t = model(x)
    return model.to(device), x.to(device), t.to(device)


def committee_bench(a) -> int:
    from localentropy.committee.evaluate import local_energy_profiles
    from localentropy.data import load_dresscoat

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    ds = load_dresscoat()
    X, y = ds.X_train.astype(np.float64), ds.y_train.astype(np.float64)
    if a.solutions:
        from localentropy.committee.solutions import load_solutions

        W = load_solutions(a.solutions).weights[: a.solutions_per_repeat]
        what = f"restarts 0..{len(W) - 1} of {a.solutions}"
    else:
        W = np.random.default_rng(0).normal(size=(a.solutions_per_repeat, 9, X.shape[1]))
        what = f"{a.solutions_per_repeat} random (K=9, N={X.shape[1]}) weight sets (same work as solutions)"
    R, K, N = W.shape
    P = X.shape[0]
    D = a.draws
    sigmas = np.linspace(0.0, a.sigma_max, a.n_sigmas)
    S = len(sigmas)
    print(f"committee local energy: {what}; P={P}, K={K}, N={N}, draws={D} x {S} sigmas; "
          f"torch threads={torch.get_num_threads()}")
    local_energy_profiles(W[:1], X, y, sigmas, draws=4, seed=0)  # warm-up

    # the bound's pieces, measured here
    Xt = torch.as_tensor(X)
    zw = torch.randn(D * K, N, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    big = torch.empty(D * K, N, dtype=torch.float64)
    src = torch.randn(16 * 2**20 // 8, dtype=torch.float64)
    dst = torch.empty_like(src)

    def best(fn):
        ts = []
        for _ in range(max(1, a.repeat)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts)

    t_gemm = best(lambda: zw @ Xt.T)
    t_randn = best(lambda: torch.randn(D * K, N, generator=gen, dtype=torch.float64, out=big))
    t_copy = best(lambda: dst.copy_(src))
    bandwidth = 2 * src.numel() * 8 / t_copy
    t_mem = S * D * K * P * 8 / bandwidth
    bound = t_gemm + t_randn + t_mem

    default_threads = torch.get_num_threads()
    settings = [(True, th) for th in sorted({1, default_threads})] + ([(False, 1)] if a.fresh_noise else [])
    best = {}
    for common, th in settings:
        times = []
        for _ in range(max(1, a.repeat)):
            t = time.perf_counter()
            prof = local_energy_profiles(W, X, y, sigmas, draws=D, seed=0, common_noise=common, exact=False,
                                         threads=th)
            times.append((time.perf_counter() - t) / R)
        t_sol = min(times)
        best[(common, th)] = t_sol
        label = ("shared draws across σ (default)" if common else "fresh draws per σ") + f", {th} torch thread(s)"
        b = bound if common else bound * S - (S - 1) * t_mem  # fresh draws: S GEMMs and S noise draws
        print(f"measured ({label}): {t_sol:.3f} s per solution  [all: {', '.join(f'{v:.3f}' for v in times)}]")
        print(f"  bound: {b:.3f} s = GEMM {2 * P * N * D * K / 1e9:.2f} GFLOP in {t_gemm * (1 if common else S):.3f} s "
              f"({2 * P * N * D * K / t_gemm / 1e9:.1f} GFLOP/s float64, {default_threads} thread(s)) + "
              f"{D * K * N * (1 if common else S) / 1e6:.1f}M normals in {t_randn * (1 if common else S):.3f} s + "
              f"{S * D * K * P * 8 / 1e6:.0f} MB of fields at {bandwidth / 1e9:.1f} GB/s ({t_mem:.3f} s)")
        print(f"  ratio measured / bound: {t_sol / b:.2f}x   goal: <= 0.6 s per solution "
              f"({'met' if t_sol <= 0.6 else 'NOT met'})")
    t_sol = min(v for (common, _), v in best.items() if common)
    print(f"250 solutions at the best of these speeds: {250 * t_sol / 60:.1f} min (extrapolated from the measured "
          f"per-solution time)")
    if a.compare:
        from localentropy.committee.model import CommitteeNet
        from localentropy.committee.train import restart_seed

        net = CommitteeNet(torch.as_tensor(W[0]))
        err = lambda out, t: (out != t.to(out.dtype)).to(torch.float64).mean()  # noqa: E731
        t = time.perf_counter()
        old = local_energy(net, (Xt, torch.as_tensor(y)), sigmas, draws=D, noise="multiplicative", error_fn=err,
                           generator=torch.Generator().manual_seed(restart_seed(0, 0)), batch_draws=50)
        t_old = time.perf_counter() - t
        new = local_energy_profiles(W[:1], X, y, sigmas, draws=D, seed=0, threads=1)
        z = (new.delta_error[0] - old.delta_error) / np.sqrt(new.delta_error_se[0] ** 2 + old.delta_error_se**2 + 1e-300)
        print(f"per-draw path (entropic.local_energy, vmap batches of 50): {t_old:.2f} s per solution, "
              f"{t_old / t_sol:.1f}x local_energy_profiles; max |difference| / s.e. over σ: {np.max(np.abs(z)):.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["committee", "module"], default="committee")
    ap.add_argument("--solutions", default=None, help="committee mode: solutions .npz (default: random weights)")
    ap.add_argument("--solutions-per-repeat", type=int, default=4)
    ap.add_argument("--n-sigmas", type=int, default=11)
    ap.add_argument("--sigma-max", type=float, default=0.5)
    ap.add_argument("--fresh-noise", action="store_true", help="committee mode: also time fresh draws per σ")
    ap.add_argument("--compare", action="store_true", help="committee mode: also time the per-draw path")
    ap.add_argument("--model", choices=["mlp", "conv", "committee"], default="mlp")
    ap.add_argument("--draws", type=int, default=None, help="draws per σ (committee: 200, module: 64)")
    ap.add_argument("--batch-draws", type=int, default=64)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=100, help="MLP hidden width")
    ap.add_argument("--sigmas", type=str, default="0.1,0.5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats; the minimum time counts")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.mode == "committee":
        a.draws = a.draws or 200
        return committee_bench(a)
    a.draws = a.draws or 64
    return module_bench(a)


def module_bench(a) -> int:
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    model, x, t = build(a.model, a.samples, a.device, a.hidden)
    sigmas = [float(s) for s in a.sigmas.split(",")]
    kw = dict(draws=a.draws, seed=0)

    def timed(**extra):
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = local_energy(model, (x, t), sigmas, **kw, **extra)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return r, time.perf_counter() - t0

    local_energy(model, (x, t), sigmas[:1], draws=2, seed=0, batch_draws=2)  # warm-up
    tbs, tls = [], []
    for _ in range(max(1, a.repeat)):  # interleaved, so a load change on a shared machine hits both
        batched, tb = timed(batch_draws=a.batch_draws)
        loop, tl = timed(vectorize=False)
        tbs.append(tb)
        tls.append(tl)
    tb, tl = min(tbs), min(tls)
    agree = np.allclose(batched.errors, loop.errors, atol=2.0 / a.samples)
    n_draws = len(sigmas) * a.draws
    print(f"model={a.model}{f' hidden={a.hidden}' if a.model == 'mlp' else ''} samples={a.samples} sigmas={sigmas} draws/σ={a.draws} "
          f"batch_draws={a.batch_draws} device={a.device} threads={torch.get_num_threads()}")
    print(f"batched ({batched.method}): {tb:.3f} s  ({1e3 * tb / n_draws:.2f} ms/draw)  "
          f"[all: {', '.join(f'{v:.3f}' for v in tbs)}]")
    print(f"per-draw loop:     {tl:.3f} s  ({1e3 * tl / n_draws:.2f} ms/draw)  "
          f"[all: {', '.join(f'{v:.3f}' for v in tls)}]")
    print(f"speed-up loop/batched (min over {len(tbs)} interleaved repeats): {tl / tb:.1f}x   "
          f"(same noise, errors agree: {agree})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
