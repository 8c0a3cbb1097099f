"""The CUDA paths (``--device cuda``, ``device="cuda"``) against the CPU: skipped on a machine without CUDA.

Run them where there is a GPU with ``make test-cuda``. What each asserts is the CPU result (bitwise where the
arithmetic is the same, to rounding where cuBLAS sums in another order, within the error bars where the
random stream is the device's own), so a GPU run checks the same numbers the CPU tests check.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.committee.evaluate import local_energy_profiles, solution_errors
from localentropy.committee.presets import get_preset
from localentropy.committee.train import train_committee
from localentropy.entropic import EntropySGD, Replicated, local_energy
from localentropy.entropic import committee_sampling as cs
from localentropy.entropic import module_sampling as ms
from localentropy.entropic.gauss import CounterNormal
from tests.test_cli_deep_train import fmnist  # noqa: F401  (fixture)
from tests.test_committee_train import SMALL
from tests.test_local_entropy_sampling import _committee_instance, _Committee, assert_matches_brute_force

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

CUDA = "cuda"


@pytest.mark.parametrize("n", [1, 7, 4097, (1 << 20) + 1])
def test_counter_normals_on_cuda_are_the_cpu_kernels_bitwise(n):
    a, b = CounterNormal(9), CounterNormal(9)
    a.counter = b.counter = 2**63 + 12345
    cpu = a.fill_(torch.empty(n))
    gpu = b.on_device(n, CUDA)
    assert gpu.device.type == "cuda"
    assert torch.equal(cpu, gpu.cpu()), int((cpu != gpu.cpu()).sum())


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    X = rng.choice([-1, 1], size=(40, 51)).astype(np.int8)
    y = rng.choice([-1, 1], size=40).astype(np.int8)
    return X, y


@pytest.mark.parametrize("name", ["sgd-fast", "sgd-slow", "rsgd-fast", "esgd"])
def test_committee_trainer_on_cuda_follows_the_cpu_run(problem, name):
    """float64: the random streams are the CPU generators' on both devices, so the runs differ by the GEMMs'
    summation order only: the same stop epochs and the same weights to far below their scale (1)."""
    X, y = problem
    p = get_preset(name, **SMALL[name])
    cpu = train_committee(X, y, p, restarts=3, seed=1, dtype=torch.float64)
    gpu = train_committee(X, y, p, restarts=3, seed=1, dtype=torch.float64, device=CUDA)
    assert gpu.status == cpu.status == ["converged"] * 3
    assert list(gpu.epochs) == list(cpu.epochs)
    np.testing.assert_allclose(np.asarray(gpu.weights), np.asarray(cpu.weights), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(gpu.train_error, cpu.train_error)


def test_committee_trainer_on_cuda_in_float32_reaches_zero_error(problem):
    X, y = problem
    res = train_committee(X, y, get_preset("sgd-fast", **SMALL["sgd-fast"]), restarts=4, seed=2,
                          dtype=torch.float32, device=CUDA, shared_batches=True)
    assert res.status == ["converged"] * 4 and np.all(res.train_error == 0)


def test_committee_errors_and_local_energy_on_cuda_equal_the_cpu(problem):
    """The noise is drawn on the CPU generator and moved: the error counts are the CPU's exactly."""
    X, y = problem
    W = np.random.default_rng(3).normal(size=(2, 3, 51))
    np.testing.assert_array_equal(solution_errors(W, X, y, device=CUDA), solution_errors(W, X, y))
    sig = [0.1, 0.5]
    a = local_energy_profiles(W, X, y, sig, draws=64, seed=5)
    b = local_energy_profiles(W, X, y, sig, draws=64, seed=5, device=CUDA)
    np.testing.assert_allclose(b.delta_error, a.delta_error, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.delta_error_se, a.delta_error_se, rtol=0, atol=1e-12)
    assert np.abs(a.delta_error).max() > 0  # the noise changed some votes


def _net(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(dtype)


def _data(dtype):
    X = torch.randn(40, 7, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2))
    return X, y


def test_entropy_sgd_with_counter_noise_on_cuda_follows_the_cpu():
    """The counter-based noise is the same numbers on both devices (torch operations on CUDA, the fused
    Numba step on the CPU), so 5 outer steps agree to float32 rounding."""
    out = []
    for dev in ("cpu", CUDA):
        model = _net().to(dev)
        X, y = (t.to(dev) for t in _data(torch.float32))
        opt = EntropySGD(model.parameters(), lr=0.7, inner_lr=0.05, L=4, gamma=0.3, noise=0.1, alpha=0.75,
                         momentum=0.9, nesterov=True, weight_decay=1e-3, noise_fn=CounterNormal(21))

        def closure():
            loss = torch.nn.functional.cross_entropy(model(X), y)
            loss.backward()
            return loss
        for _ in range(5):
            opt.step(closure)
        out.append([p.detach().cpu() for p in model.parameters()])
    moved = max(float((a - b.detach()).abs().max()) for a, b in zip(out[0], _net().parameters()))
    assert moved > 1e-2
    for a, b in zip(*out):
        assert torch.allclose(a, b, rtol=0, atol=1e-4), float((a - b).abs().max())


@pytest.mark.parametrize("batched", [True, False])
def test_replicated_on_cuda_follows_the_cpu(batched):
    out = []
    for dev in ("cpu", CUDA):
        models = [_net(seed=s, dtype=torch.float64).to(dev) for s in range(3)]
        X, y = (t.to(dev) for t in _data(torch.float64))
        rep = Replicated(models, lr=0.1, momentum=0.9, nesterov=True, K=2, gamma=0.3, batched=batched)
        for s in range(6):  # each replica its own batch of 10 of the 40 patterns
            order = torch.arange(40, device=dev).roll(10 * s)[:30].view(3, 10)
            rep.step(X[order], y[order])
        out.append([v.detach().cpu() for a in range(3) for v in rep.replica_model(a).state_dict().values()])
    for a, b in zip(*out):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_local_energy_of_a_module_on_cuda_equals_the_cpu_with_a_cpu_generator():
    """With a CPU generator the draws are the same numbers on both devices: the profiles agree to rounding."""
    X, y = _data(torch.float64)
    res = []
    for dev in ("cpu", CUDA):
        model = _net(dtype=torch.float64).to(dev)
        res.append(local_energy(model, (X.to(dev), y.to(dev)), [0.1, 0.5], draws=32,
                                generator=torch.Generator().manual_seed(3)))
    np.testing.assert_allclose(res[1].delta_error, res[0].delta_error, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res[1].delta_loss, res[0].delta_loss, rtol=0, atol=1e-9)
    assert np.abs(res[0].delta_error).max() > 0


def test_committee_sampler_on_cuda_matches_brute_force():
    """The SMC-HMC estimator with CUDA generators (another random stream): within 4 standard errors of
    brute-force sampling in the full weight space, as its CPU test."""
    W, X, y = _committee_instance(3, 4, 6, 0)
    deltas = [0.05, 0.5, 2.0]
    r = cs.committee_local_entropy(W, X, y, deltas, chains=2048, groups=8, moves=2, seed=1, device=CUDA)
    assert_matches_brute_force(r, W, X, y, deltas)


def test_general_sampler_on_cuda_matches_brute_force():
    W, X, y = _committee_instance(3, 4, 6, 0)
    model = _Committee(W).double().to(CUDA)
    deltas = [0.05, 0.5]
    r = ms.local_entropy(model, torch.tensor(X, device=CUDA), torch.tensor(y, device=CUDA), deltas, chains=128,
                         groups=8, moves=3, seed=4)
    assert r.n == 12
    assert_matches_brute_force(r, W, X, y, deltas)


def test_first_layer_shortcut_on_cuda_gives_the_general_paths_curve(monkeypatch):
    """The first selected layer as a linear map (entropic.first_layer) on CUDA: the same curve as the
    general path with the same CUDA random stream (float64)."""
    from tests.test_local_entropy_sampling import _two_layer_task, assert_shortcut_gives_the_general_curve

    model, X, y = _two_layer_task()
    assert_shortcut_gives_the_general_curve(monkeypatch, model.to(CUDA), X.to(CUDA), y.to(CUDA), "fc1",
                                            params=["fc1"], chains=64, groups=4, seed=3, deltas=[0.02, 0.1],
                                            scale="relative")


@pytest.mark.parametrize("preset", ["cpu-fmnist-mlp2-sgd", "cpu-fmnist-mlp2-esgd", "cpu-fmnist-mlp2-rsgd",
                                    "cpu-fmnist-mlp2-sam", "cpu-fmnist-mlp2-pla"])
def test_deep_train_and_local_entropy_from_the_cli_on_cuda(fmnist, tmp_path, preset):  # noqa: F811
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["-q", "deep", "train", "--preset", preset, "--data-dir", str(fmnist),
                                   "--out", str(run), "--set", "epochs=2", "--set", "train_subset=100",
                                   "--set", "batch_size=50", "--set", "test_subset=20", "--device", CUDA,
                                   "--no-tensorboard"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert rows and all(math.isfinite(float(v)) for r in rows for k, v in r.items() if "loss" in k and v)
    res = CliRunner().invoke(cli, ["-q", "deep", "local-entropy", str(run), "--data-dir", str(fmnist), "--layers",
                                   "out", "--deltas", "1e-6,1e-4", "--samples", "40", "--chains", "8", "--groups",
                                   "2", "--moves", "1", "--device", CUDA])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(run / "local_entropy-out.csv")))
    assert float(rows[0]["delta"]) == pytest.approx(0.5e-6, rel=0.05)
    assert all(float(r["phi_G"]) <= 0 for r in rows)
