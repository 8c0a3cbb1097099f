"""Time local-energy draws (000, Eq. 4): vmap-batched draws against the per-draw loop, same run.

    .venv/bin/python benchmarks/bench_local_energy.py [--model mlp|conv|committee] [--draws 64]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["mlp", "conv", "committee"], default="mlp")
    ap.add_argument("--draws", type=int, default=64)
    ap.add_argument("--batch-draws", type=int, default=64)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=100, help="MLP hidden width")
    ap.add_argument("--sigmas", type=str, default="0.1,0.5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats; the minimum time counts")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
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
