"""The batched trainers (SGD, rSGD, eSGD) on small random problems: they find solutions, each one
equals the paper's algorithm written out by hand, restarts are independent of the batch they run
in, resumed runs equal uninterrupted ones, and the √N norm and the freezing hold after every step.

Small problems (N = 51, K = 3, P = 40) need other rates than the paper's N = 784, P = 500 runs:
each test says which hyper-parameters it overrides.
"""

import math

import numpy as np
import pytest
import torch

from localentropy.committee.errors import CommitteeError
from localentropy.committee.presets import PRESETS, get_preset
from localentropy.committee.train import batch_seed, restart_seed, train_committee
from tests.oracles import algorithm2

N, K, P = 51, 3, 40


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    X = rng.choice([-1, 1], size=(P, N)).astype(np.int8)
    y = rng.choice([-1, 1], size=P).astype(np.int8)
    return X, y


# Rates scaled up for the small problem (P = 40 patterns, mini-batches of 10).
SMALL = {
    "sgd-fast": dict(K=K, batch_size=10, eta=0.05, max_epochs=300),
    "sgd-slow": dict(K=K, batch_size=10, eta=0.1, beta0=1.0, beta1=0.02, omega0=1.0, omega1=0.05, stop_threshold=1e-4,
                     max_epochs=300),
    "rsgd-fast": dict(K=K, batch_size=10, eta=0.03, replicas=3, gamma0=0.05, gamma1=0.2, beta1=0.05, omega1=0.05,
                      stop_threshold=1e-6, max_epochs=300),
    "rsgd-slow": dict(K=K, batch_size=10, eta=0.03, replicas=3, gamma0=0.02, gamma1=0.1, beta1=0.05, omega1=0.05,
                      stop_threshold=1e-6, max_epochs=300),
    "esgd": dict(K=K, batch_size=10, eta=0.7, inner_lr=0.05, inner_steps=4, gamma0=1.0, gamma1=0.1, beta1=0.03,
                 omega1=0.05, noise=1e-6, stop_threshold=1e-7, max_epochs=300),
}


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _errors(U, X, y):
    lam = np.einsum("...kn,pn->...pk", U, X)
    out = np.where(np.where(lam >= 0, 1, -1).sum(-1) >= 0, 1, -1)
    return (out != y).mean(-1)


@pytest.mark.parametrize("name", list(SMALL))
def test_every_setting_reaches_zero_training_error_on_a_small_random_problem(problem, name):
    X, y = problem
    res = train_committee(X, y, get_preset(name, **SMALL[name]), restarts=3, seed=1)
    assert res.status == ["converged"] * 3, (res.epochs, res.stop_value)
    assert np.all(res.train_error == 0)
    assert np.array_equal(_errors(res.weights, X.astype(float), y), np.zeros(3))  # independent recount
    assert np.allclose((res.weights**2).sum(-1), N, rtol=1e-12)
    assert np.all(res.epochs < SMALL[name]["max_epochs"])


# ---- the paper's algorithms written out for one restart (numpy, analytic gradients) -------------

def _grad(U, Xb, yb, beta, omega):
    """∇_U Σ_μ f(y ŷ_β), f of Eq. 8 and ŷ_β = (1/√K) Σ_h tanh(β u_h·ξ), by the chain rule."""
    Kh = U.shape[-2]
    th = np.tanh(beta * Xb @ U.T)  # (B, K)
    m = yb * th.sum(-1) / math.sqrt(Kh)
    df_dm = -1.0 / (1.0 + np.exp(2 * omega * m))  # f'(m) = −σ(−2ωm)
    coef = (df_dm * yb)[:, None] * beta * (1 - th**2) / math.sqrt(Kh)  # (B, K)
    return coef.T @ Xb


def _sched(x0, x1, t):
    return x0 * (1 + x1) ** t


def _oracle(name, p, X, y, seed, r, epochs, shared=False):
    """Restart r of ``train_committee`` written out from the paper (numpy, float64). ``shared``: the
    mini-batch orders come from the shared sequences (replica a: sequence a) instead of restart r's
    generator."""
    g = torch.Generator().manual_seed(restart_seed(seed, r))
    copies = p.replicas if p.algorithm == "rsgd" else 1
    seqs = [torch.Generator().manual_seed(batch_seed(seed, a)) for a in range(copies)] if shared else [g] * copies
    X, y = X.astype(np.float64), y.astype(np.float64)
    nb = math.ceil(P / p.batch_size)
    if p.algorithm == "rsgd":
        U = _unit(np.stack([(torch.rand((K, N), generator=g, dtype=torch.float64) * 2 - 1).numpy()
                            for _ in range(p.replicas)]))
    else:
        U = _unit((torch.rand((K, N), generator=g, dtype=torch.float64) * 2 - 1).numpy())
    last = None

    def mask(shape):
        if p.dropout == 0:
            return 1.0
        return (torch.rand(shape, generator=g, dtype=torch.float32) >= p.dropout).numpy() / (1 - p.dropout)

    for t in range(epochs):
        beta, omega, gamma = _sched(p.beta0, p.beta1, t), _sched(p.omega0, p.omega1, t), _sched(p.gamma0, p.gamma1, t)
        if p.algorithm == "sgd":  # plain SGD, renormalised after every step
            perm = torch.randperm(P, generator=seqs[0]).numpy()
            for b in range(nb):
                sel = perm[b * p.batch_size:(b + 1) * p.batch_size]
                Xb = X[sel] * mask((len(sel), N))
                U = _unit(U - p.eta * _grad(U, Xb, y[sel], beta, omega))
        elif p.algorithm == "rsgd":  # Algorithm 2 (tests/oracles.py), t counted over the whole run
            perms = [torch.randperm(P, generator=seqs[a]).numpy() for a in range(p.replicas)]

            def grad(a, step, w):
                b = (step - 1) % nb
                sel = perms[a][b * p.batch_size:(b + 1) * p.batch_size]
                return _grad(w, X[sel], y[sel], beta, omega)

            U = algorithm2(U, grad, p.eta, p.coupling_period, lambda step: gamma, nb, t0=t * nb, project=_unit)
            last = max(0.5 * ((U[a] - U.mean(0)) ** 2).sum() for a in range(p.replicas))
        else:  # Algorithm 1
            stream = []
            for _ in range(nb):
                w, wp, mu = U.copy(), U.copy(), U.copy()
                for _ in range(p.inner_steps):
                    if not stream:
                        perm = torch.randperm(P, generator=seqs[0]).numpy()
                        stream = [perm[b * p.batch_size:(b + 1) * p.batch_size] for b in range(nb)]
                    sel = stream.pop(0)
                    Xb = X[sel] * mask((len(sel), N))  # drawn after the permutation, before the noise
                    d = _grad(wp, Xb, y[sel], beta, omega) + gamma * (wp - w)
                    z = torch.randn((K, N), generator=g, dtype=torch.float32).double().numpy()  # float32 normals
                    wp = _unit(wp - p.inner_lr * d + math.sqrt(p.inner_lr) * p.noise * z)
                    mu = p.alpha * mu + (1 - p.alpha) * wp
                last = 0.5 * ((w - mu) ** 2).sum()
                U = _unit(U - p.eta * (U - mu))
    return U, last


@pytest.mark.parametrize("shared", [False, True], ids=["own-batches", "shared-batches"])
@pytest.mark.parametrize("name, extra", [
    ("sgd-fast", dict(dropout=0.3)),
    ("sgd-slow", {}),
    ("rsgd-fast", dict(coupling_period=3)),  # 4 steps per epoch: couplings at t = 3, 6, 9, 12
    ("esgd", dict(noise=1e-3)),
    ("esgd", dict(dropout=0.2)),
])
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-11), (torch.float32, 2e-5)], ids=["f64", "f32"])
def test_trainer_equals_the_algorithm_written_out_for_each_restart(problem, name, extra, shared, dtype, atol):
    """Float64 to ~1e-11; float32 to 2e-5 after 12 steps on unit vectors (entries ~0.14, float32
    rounding ~1e-8 per operation, amplified by the dynamics but far below the 2e-5 checked)."""
    X, y = problem
    epochs = 3
    p = get_preset(name, **{**SMALL[name], **extra, "max_epochs": epochs, "stop_threshold": 0.0})
    if name == "sgd-fast":
        p = p.override(stop="loss")  # never met with threshold 0: run all epochs
    res = train_committee(X, y, p, restarts=2, seed=5, dtype=dtype, shared_batches=shared)
    assert res.metadata()["batches"] == ("shared" if shared else "own")
    for r in range(2):
        U, last = _oracle(name, p, X, y, 5, r, epochs, shared=shared)
        if p.algorithm == "rsgd":
            assert np.allclose(res.replicas[:, r] / math.sqrt(N), U, rtol=0, atol=atol)
            assert np.allclose(res.weights[r] / math.sqrt(N), _unit(U.mean(0)), rtol=0, atol=atol)
            assert res.stop_value[r] == pytest.approx(last, rel=1e-8 if dtype == torch.float64 else 1e-3)
        else:
            assert np.allclose(res.weights[r] / math.sqrt(N), U, rtol=0, atol=atol)
            if last is not None:
                assert res.stop_value[r] == pytest.approx(last, rel=1e-8 if dtype == torch.float64 else 1e-2)
        assert res.status[r] == "not converged" and res.epochs[r] == epochs


# ---- independence, freezing, resume, invariants ---------------------------------------------

# The reproducibility guarantee (docs/reproducibility.md), each part tested here:
# 1. the same call (seed, restarts, preset, dtype, batches mode) on the same machine with the same
#    thread count and device gives bitwise the same result;
# 2. a run interrupted and resumed from its checkpoint gives bitwise the result of an uninterrupted one;
# 3. a restart trained alone equals the same restart trained in a batch (or with other chunking /
#    worker threads) up to the rounding of batched products: to ~1e-12 in the first epochs, where
#    nothing has amplified it yet; and, on this small problem, with the same stop epoch and outcome;
# 4. across machines: nothing bitwise (BLAS kernels differ), only the statistics of outcomes.

MODES = [pytest.param(False, id="own-batches"), pytest.param(True, id="shared-batches")]


@pytest.mark.parametrize("shared", MODES)
@pytest.mark.parametrize("name", list(SMALL))
def test_the_same_call_twice_gives_bitwise_the_same_result(problem, name, shared):
    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 8, "dropout": 0.1 if name == "esgd" else 0.0})
    a = train_committee(X, y, p, restarts=3, seed=21, shared_batches=shared)
    b = train_committee(X, y, p, restarts=3, seed=21, shared_batches=shared)
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.epochs, b.epochs)
    assert np.array_equal(a.stop_value, b.stop_value, equal_nan=True)
    c = train_committee(X, y, p, restarts=3, seed=22, shared_batches=shared)
    assert not np.array_equal(a.weights, c.weights), "another seed gives other weights"


@pytest.mark.parametrize("shared", MODES)
@pytest.mark.parametrize("name", ["sgd-fast", "sgd-slow", "rsgd-fast", "esgd"])
def test_a_restart_alone_equals_the_same_restart_in_a_batch_up_to_rounding_in_the_first_epochs(problem, name,
                                                                                                 shared):
    """Two epochs (8 steps; eSGD: 8 outer steps of 4 SGLD steps), dropout on. A restart's products
    are sums of N = 51 terms of size ≤ 1 whose rounding (≤ 51 · 2⁻⁵³ ≈ 6e-15 each) depends on the
    network's place in the batch on some CPUs; over ~40 updates with rates ≤ 0.7 that stays below
    1e-12, while any real difference in the algorithm (another draw, another step) is ≥ 1e-4."""
    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 2, "dropout": 0.1, "stop_threshold": 0.0})
    if name == "sgd-fast":
        p = p.override(stop="loss")
    batch = train_committee(X, y, p, restarts=3, seed=13, shared_batches=shared)
    for r in (0, 2):
        alone = train_committee(X, y, p, restart_ids=[r], seed=13, shared_batches=shared)
        assert np.allclose(alone.weights[0], batch.weights[r], rtol=0, atol=1e-12)
        if p.algorithm == "rsgd":
            assert np.allclose(alone.replicas[:, 0], batch.replicas[:, r], rtol=0, atol=1e-12)
    other = train_committee(X, y, p, restart_ids=[1], seed=13, shared_batches=shared)
    assert np.abs(other.weights[0] - batch.weights[0]).max() > 1e-4, "restarts differ from each other"


@pytest.mark.parametrize("shared", MODES)
@pytest.mark.parametrize("name, extra", [("sgd-fast", dict(dropout=0.2)), ("rsgd-fast", {}), ("esgd", {})])
def test_a_restart_alone_stops_at_the_same_epoch_as_in_a_batch(problem, name, extra, shared):
    """Whole runs to the stop rule: a restart's stop epoch, status and training error do not
    depend on the batch it runs in (its weights may differ in the last bits; see above)."""
    X, y = problem
    p = get_preset(name, **{**SMALL[name], **extra, "max_epochs": 40})
    batch = train_committee(X, y, p, restarts=3, seed=11, shared_batches=shared)
    assert len(set(batch.epochs.tolist())) > 1  # restarts stop at different epochs: freezing matters
    for r in (0, 2):
        alone = train_committee(X, y, p, restart_ids=[r], seed=11, shared_batches=shared)
        assert alone.epochs[0] == batch.epochs[r] and alone.status[0] == batch.status[r]
        assert alone.train_error[0] == batch.train_error[r]


@pytest.mark.parametrize("shared", MODES)
@pytest.mark.parametrize("name", ["sgd-slow", "rsgd-fast", "esgd"])
def test_a_resumed_run_equals_an_uninterrupted_one(problem, tmp_path, name, shared):
    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 10, "dropout": 0.1})
    kw = dict(restarts=2, seed=2, shared_batches=shared)
    full = train_committee(X, y, p, **kw)
    ck = tmp_path / "run.ckpt"
    resumed_at = []
    assert train_committee(X, y, p, checkpoint=ck, checkpoint_every=4, stop_after_epochs=6,
                           on_resume=resumed_at.append, **kw) is None
    assert ck.exists() and resumed_at == [], "a fresh run does not resume"
    resumed = train_committee(X, y, p, checkpoint=ck, checkpoint_every=4, on_resume=resumed_at.append, **kw)
    assert resumed_at == [6], "on_resume is called once with the epoch the checkpoint resumes from"
    assert np.array_equal(resumed.weights, full.weights)
    assert np.array_equal(resumed.epochs, full.epochs) and resumed.status == full.status
    if p.algorithm == "rsgd":
        assert np.array_equal(resumed.replicas, full.replicas)


def test_checkpoint_of_another_run_is_refused(problem, tmp_path):
    X, y = problem
    p = get_preset("sgd-fast", **SMALL["sgd-fast"])
    ck = tmp_path / "c.ckpt"
    train_committee(X, y, p, restarts=2, seed=0, checkpoint=ck, stop_after_epochs=1)
    with pytest.raises(CommitteeError, match="different run"):
        train_committee(X, y, p, restarts=2, seed=1, checkpoint=ck)
    ck.write_bytes(b"garbage")
    with pytest.raises(CommitteeError, match="cannot read checkpoint"):
        train_committee(X, y, p, restarts=2, seed=0, checkpoint=ck)


class _Payload:
    """A pickled object that, if unpickled, would run a shell command (creating a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_a_foreign_object_is_refused_and_nothing_runs(problem, tmp_path):
    """Checkpoints hold only tensors, numbers, strings and plain containers and are read with
    ``torch.load(weights_only=True)``: a file that asks for os.system is refused with one line."""
    X, y = problem
    p = get_preset("sgd-fast", **SMALL["sgd-fast"])
    ck = tmp_path / "c.ckpt"
    train_committee(X, y, p, restarts=2, seed=0, checkpoint=ck, stop_after_epochs=1)
    sd = torch.load(ck, weights_only=True)  # the genuine checkpoint loads safely
    marker = tmp_path / "pwned"
    sd["extra"] = _Payload(marker)
    torch.save(sd, ck)
    with pytest.raises(CommitteeError) as info:
        train_committee(X, y, p, restarts=2, seed=0, checkpoint=ck)
    msg = str(info.value)
    assert str(ck) in msg and "cannot read checkpoint" in msg and "\n" not in msg
    assert not marker.exists(), "nothing in the file was executed"
    # a well-formed pickle of the right keys with a wrong-shaped payload is refused too
    train_committee(X, y, p, restarts=2, seed=0, checkpoint=tmp_path / "d.ckpt", stop_after_epochs=1)
    good = torch.load(tmp_path / "d.ckpt", weights_only=True)
    good["U"] = good["U"][:1]
    torch.save(good, tmp_path / "d.ckpt")
    with pytest.raises(CommitteeError, match="malformed"):
        train_committee(X, y, p, restarts=2, seed=0, checkpoint=tmp_path / "d.ckpt")


@pytest.mark.parametrize("name", ["sgd-fast", "rsgd-fast", "esgd"])
def test_norm_holds_after_every_step_and_converged_restarts_stay_frozen(problem, tmp_path, name):
    """With batch_size = P an epoch is one step (one outer step for eSGD): the checkpoint after
    each epoch shows the weights after each update."""
    X, y = problem
    over = {"batch_size": P, "max_epochs": 80}
    if name == "rsgd-fast":  # one full-batch step per epoch: smaller rate, γ growing per step
        over.update(eta=0.0075, gamma0=0.05, gamma1=0.2, stop_threshold=1e-4)
    p = get_preset(name, **{**SMALL[name], **over})
    ck = tmp_path / "n.ckpt"
    frozen = {}
    for _ in range(80):
        if train_committee(X, y, p, restarts=3, seed=4, checkpoint=ck, stop_after_epochs=1) is not None:
            break
        sd = torch.load(ck, weights_only=True)
        U = sd["U"].numpy()
        assert np.allclose((U**2).sum(-1), 1.0, rtol=1e-12), "each hidden unit (of each replica) at unit norm"
        lead = U if p.algorithm != "rsgd" else np.moveaxis(U, 1, 0)
        for r in np.flatnonzero(~sd["active"]):
            if r in frozen:
                assert np.array_equal(lead[r], frozen[r]), "a converged restart changed"
            frozen[r] = lead[r].copy()
    assert frozen, "some restart should have converged within 80 epochs"


def test_max_epoch_guard_marks_not_converged_never_a_solution(problem):
    X, y = problem
    p = get_preset("sgd-slow", K=K, max_epochs=2, stop_threshold=1e-30)
    res = train_committee(X, y, p, restarts=2, seed=0)
    assert res.status == ["not converged"] * 2 and list(res.epochs) == [2, 2]
    assert res.metadata()["status"] == ["not converged"] * 2


def test_progress_reports_every_epoch(problem):
    X, y = problem
    seen = []
    train_committee(X, y, get_preset("sgd-fast", K=K, max_epochs=3, stop="loss"), restarts=2, seed=0,
                    progress=lambda e, c, f, R: seen.append((e, c, f, R)))
    assert [s[0] for s in seen] == [1, 2, 3] and seen[-1][2:] == (2, 2)


def test_bad_arguments_raise_committee_error(problem):
    X, y = problem
    p = get_preset("sgd-fast", K=K)
    with pytest.raises(CommitteeError, match="restarts"):
        train_committee(X, y, p, restarts=0)
    with pytest.raises(CommitteeError, match="seed"):
        train_committee(X, y, p, restarts=1, seed=-1)
    with pytest.raises(CommitteeError, match="labels"):
        train_committee(X, y * 2, p, restarts=1)
    with pytest.raises(CommitteeError, match="patterns"):
        train_committee(X[:, :, None], y, p, restarts=1)


# ---- presets ------------------------------------------------------------------------------------

def test_presets_hold_the_papers_hyperparameters():
    """App. B.1 of paper 000, copied here by hand from the paper's text."""
    table = {
        "sgd-fast": dict(eta=2e-4, beta0=2.0, beta1=1e-4, omega0=5.0, omega1=0.0),
        "sgd-slow": dict(eta=3e-5, beta0=0.5, beta1=1e-3, omega0=0.5, omega1=1e-3),
        "rsgd-fast": dict(eta=1e-4, replicas=10, gamma0=2e-3, gamma1=2e-3, beta0=1.0, beta1=2e-4, omega0=0.5,
                          omega1=1e-3),
        "rsgd-slow": dict(eta=1e-3, replicas=10, gamma0=1e-4, gamma1=1e-4, beta0=1.0, beta1=2e-4, omega0=0.5,
                          omega1=1e-3),
        "esgd": dict(eta=1e-3, inner_lr=5e-3, noise=1e-6, inner_steps=20, gamma0=10.0, gamma1=5e-5, beta0=1.0,
                     beta1=1e-4, omega0=0.5, omega1=5e-4),
    }
    assert set(PRESETS) == set(table)
    for name, values in table.items():
        p = PRESETS[name]
        assert p.K == 9 and p.batch_size == 100 and p.dropout == 0.0
        for k, v in values.items():
            assert getattr(p, k) == v, (name, k)
    assert [PRESETS[n].stop for n in table] == ["zero_error", "loss", "replica_distance", "replica_distance",
                                                "esgd_distance"]
    assert PRESETS["sgd-slow"].stop_threshold == 1e-7 and PRESETS["esgd"].stop_threshold == 1e-8


def test_overrides_are_coerced_and_validated():
    p = get_preset("rsgd-slow", eta="1e-2", replicas="4", dropout=0.5)
    assert (p.eta, p.replicas, p.dropout) == (1e-2, 4, 0.5)
    for bad, msg in [(dict(K="4"), "odd"), (dict(eta="-1"), "eta"), (dict(replicas="2.5"), "int"),
                     (dict(nope="1"), "unknown"), (dict(dropout="1.0"), "dropout"), (dict(replicas="1"), "replicas")]:
        with pytest.raises(CommitteeError, match=msg):
            get_preset("rsgd-slow", **bad)
    with pytest.raises(CommitteeError, match="unknown setting"):
        get_preset("adam")


# ---- the fast paths: closed-form gradient, chunks, worker threads --------------------------------

def test_closed_form_minibatch_gradient_equals_autograd_of_the_objective():
    """The trainer's ∇ of Σ_μ f(y^μ ŷ_β(ξ^μ), ω) (Eq. 7 surrogate, Eq. 8) against torch autograd,
    for several networks with their own mini-batches, large margins included (f′ → 0 and → −1)."""
    from localentropy.committee.loss import margin_loss
    from localentropy.committee.model import surrogate_output
    from localentropy.committee.train import _loss_grad

    rng = np.random.default_rng(3)
    M, B = 4, 7
    U = torch.tensor(_unit(rng.normal(size=(M, K, N))))
    Xb = torch.tensor(rng.choice([-1.0, 1.0], size=(M, B, N)))
    yb = torch.tensor(rng.choice([-1.0, 1.0], size=(M, B)))
    for beta, omega in [(1.0, 0.5), (2.0, 5.0), (40.0, 300.0)]:
        Ug = U.clone().requires_grad_(True)
        # surrogate_output uses λ = w·ξ/√N; with w = √N u it is the trainer's λ = u·ξ
        obj = margin_loss(yb * surrogate_output(Ug * math.sqrt(N), Xb, beta), omega).sum()
        (auto,) = torch.autograd.grad(obj, Ug)
        g = torch.empty_like(U)
        loss = _loss_grad(U, Xb, yb, beta, omega, g, need_loss=True)
        assert torch.allclose(g, auto, rtol=1e-12, atol=1e-12 * float(auto.abs().max())), (beta, omega)
        assert float(loss) == pytest.approx(float(obj.detach()), rel=1e-12)


@pytest.mark.parametrize("name", ["sgd-fast", "rsgd-fast", "esgd"])
def test_chunks_and_worker_threads_do_not_change_the_result(problem, monkeypatch, name):
    """Networks gathered a few at a time and shared among 2 worker threads: the same weights as one
    chunk on one thread, up to the rounding of batched products (part 3 of the guarantee above)."""
    import localentropy.committee.train as T

    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 4, "dropout": 0.2})
    whole = train_committee(X, y, p, restarts=3, seed=8)
    monkeypatch.setattr(T, "CHUNK_BYTES_CPU", 2 * 10 * N * 8)  # two networks' mini-batches per chunk
    before = torch.get_num_threads()
    split = train_committee(X, y, p, restarts=3, seed=8, num_threads=2)
    assert torch.get_num_threads() == before, "torch's thread count is restored"
    assert np.allclose(split.weights, whole.weights, rtol=0, atol=1e-12)
    assert np.array_equal(split.epochs, whole.epochs)
    if p.algorithm == "rsgd":
        assert np.allclose(split.replicas, whole.replicas, rtol=0, atol=1e-12)
    shared1 = train_committee(X, y, p, restarts=3, seed=8, shared_batches=True)
    shared2 = train_committee(X, y, p, restarts=3, seed=8, shared_batches=True, num_threads=2)
    assert torch.get_num_threads() == before
    assert np.allclose(shared1.weights, shared2.weights, rtol=0, atol=1e-12)
    with pytest.raises(CommitteeError, match="num_threads"):
        train_committee(X, y, p, restarts=1, num_threads=0)


# ---- float32: what its resolution allows (the dtype advice of docs/committee.md rests on these) ----

def _f32_step_resolution(step_rms, seed=0):
    """Relative rms error of a random step of rms ``step_rms`` added in float32 to a unit-norm hidden
    unit of N = 784 inputs (entries ~0.036, float32 spacing ~3.7e-9 there)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(9, 784, generator=g, dtype=torch.float64) * 2 - 1
    u = (u / u.norm(dim=-1, keepdim=True)).float()
    step = torch.randn(9, 784, generator=g, dtype=torch.float64) * step_rms
    seen = ((u + step.float()) - u).double()
    return float((seen - step).norm() / step.norm())


def test_float32_resolves_esgd_sgld_noise_at_the_papers_scale():
    """√η′ ε = √5e-3 · 1e-6 ≈ 7e-8 per weight (App. B.1): ~19 float32 spacings at |u_i| ~ 0.036, so the
    noise survives the addition to within a few % (exactly halfway-rounded it would be ≤ 1/(2·19))."""
    assert _f32_step_resolution(math.sqrt(5e-3) * 1e-6) < 0.05


def test_float32_cannot_resolve_rsgd_slow_late_coupling_steps():
    """rsgd-slow stops at max_a ½‖u_a − ū‖² < 1e-8, i.e. per-weight differences ~1.7e-6; the coupling
    moves them by η·γ·1.7e-6 per step, with η = 1e-3 and γ(8e4 epochs) = 1e-4·(1+1e-4)^8e4 ≈ 0.3:
    ~5e-10, well below the float32 spacing: most such steps round away (hence float64 for rSGD)."""
    gamma = 1e-4 * (1 + 1e-4) ** 80_000
    assert _f32_step_resolution(1e-3 * gamma * 1.7e-6) > 0.5
    assert _f32_step_resolution(1e-3 * gamma * 1.7e-6, seed=1) > 0.5


@pytest.mark.parametrize("name", ["rsgd-slow", "sgd-slow"])
def test_skipping_all_zero_gradient_products_leaves_every_weight_bitwise_the_same(problem, monkeypatch, name):
    """Late in the slow settings f′ and tanh′ are exactly 0 at every pattern: the step's gradient
    product is skipped (only decay·U of the coupling remains). Same weights, epochs and stop values,
    bitwise, with and without the skip, and the skip was taken."""
    import localentropy.committee.train as T

    X, y = problem
    fast = {"beta1": 0.3, "omega1": 0.5, "max_epochs": 120}  # β, ω explode within the run
    p = get_preset(name, **{**SMALL[name], **fast})
    counted = []
    original = T._Run._shared_step

    def counting(self, *a, **k):
        out = original(self, *a, **k)
        counted.append(self.zero_gradient_steps)
        return out
    monkeypatch.setattr(T._Run, "_shared_step", counting)
    with_skip = train_committee(X, y, p, restarts=2, seed=3, shared_batches=True)
    assert counted and counted[-1] > 0, "the all-zero regime was reached"
    monkeypatch.setattr(T, "SKIP_ZERO_GRADIENT", False)
    without = train_committee(X, y, p, restarts=2, seed=3, shared_batches=True)
    assert np.array_equal(with_skip.weights, without.weights)
    assert np.array_equal(with_skip.epochs, without.epochs)
    assert np.array_equal(with_skip.stop_value, without.stop_value)
    if with_skip.replicas is not None:
        assert np.array_equal(with_skip.replicas, without.replicas)


@pytest.mark.parametrize("name,dtype", [("rsgd-slow", torch.float64), ("sgd-slow", torch.float32)])
def test_certified_steps_skip_the_forward_product_and_leave_every_weight_bitwise_the_same(problem, monkeypatch,
                                                                                            name, dtype):
    """Where a ZeroCertificate proves every coefficient of every pattern exactly 0, the step skips its
    forward product too. Same weights, epochs and stop values, bitwise, with and without certificates,
    and most of the late steps were certified."""
    import localentropy.committee.train as T

    X, y = problem
    fast = {"beta1": 0.3, "omega1": 0.5, "max_epochs": 120}  # β, ω explode within the run
    if name == "rsgd-slow":
        fast["gamma1"] = 0.0  # a constant coupling: the replicas drift slowly, certificates last (as late in Figure 1)
    p = get_preset(name, **{**SMALL[name], **fast})
    runs = []
    original = T._Run._shared_step

    def recording(self, *a, **k):
        runs.append(self)
        return original(self, *a, **k)
    monkeypatch.setattr(T._Run, "_shared_step", recording)
    certified = train_committee(X, y, p, restarts=2, seed=3, shared_batches=True, dtype=dtype)
    run = runs[-1]
    assert run.certified_steps > 0.5 * run.zero_gradient_steps > 0, (run.certified_steps, run.zero_gradient_steps)
    assert run.certifications < 0.1 * run.certified_steps
    monkeypatch.setattr(T, "FORWARD_CERTIFICATE", False)
    runs.clear()
    plain = train_committee(X, y, p, restarts=2, seed=3, shared_batches=True, dtype=dtype)
    assert runs[-1].certified_steps == 0
    assert np.array_equal(certified.weights, plain.weights)
    assert np.array_equal(certified.epochs, plain.epochs)
    assert np.array_equal(certified.stop_value, plain.stop_value)
    if certified.replicas is not None:
        assert np.array_equal(certified.replicas, plain.replicas)


def test_a_certificate_holds_against_the_worst_move_of_every_pattern_and_fails_early_in_training(problem):
    """certify's radius R: moving every unit by R towards the wrong side of one pattern (the move that
    lowers that pattern's margin most) at β, ω and beyond still gives exactly 0 in the trainer's own
    coefficient arithmetic, for every pattern; at small β, ω there is no certificate."""
    import localentropy.committee.train as T
    from localentropy.committee.certificate import certify

    X, y = problem
    p = get_preset("sgd-fast", **SMALL["sgd-fast"])
    sol = train_committee(X, y, p, restarts=3, seed=1)
    assert sol.converged.all()
    Xt, yt = T._as_patterns(X, y, "cpu", torch.float64)
    U = T._unit(torch.as_tensor(sol.weights, dtype=torch.float64))  # (3, K, N), every pattern classified
    assert certify(U, Xt, yt, beta=1.0, omega=1.0) is None
    beta, omega = 40.0, 1e4
    cert = certify(U, Xt, yt, beta, omega)
    assert cert is not None and cert.radius > 0
    assert cert.covers(U, beta, omega, ()) and not cert.covers(U, beta / 2, omega, ())
    xi = Xt / torch.linalg.vector_norm(Xt, dim=-1, keepdim=True)
    for mu in range(Xt.shape[0]):
        Um = U - cert.radius * (1 - 1e-5) * yt[mu] * xi[mu]  # every unit of every network, by R, against μ
        assert cert.covers(Um, beta, omega, ())  # (covers keeps a relative rounding margin of 1e-6)
        for b, o in ((beta, omega), (2 * beta, 10 * omega)):
            coef, _ = T._coef_shared(Um.unsqueeze(0), Xt[None, mu:mu + 1], yt[None, mu:mu + 1], b, o)
            assert not bool(coef.any()), (mu, b, o)
    far = U - 1.5 * cert.radius * yt[0] * xi[0] * 10
    assert not cert.covers(far, beta, omega, ())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_is_exactly_one_beyond_saturation(dtype):
    """certificate.saturation's assumption, on this machine: tanh is exactly ±1 from there on, in the
    vectorised loop (long tensors) and its scalar tail (lengths 1–7)."""
    from localentropy.committee.certificate import saturation

    x0 = saturation(dtype)
    xs = torch.cat([torch.linspace(x0, x0 + 5, 4099, dtype=torch.float64), torch.logspace(1.5, 30, 200, dtype=torch.float64)])
    xs = xs[xs >= x0].to(dtype)
    from localentropy.committee.train import _tanh_

    for n in (1, 3, 7, len(xs)):
        for part in xs.split(n):
            assert bool((torch.tanh(part) == 1).all()) and bool((torch.tanh(-part) == -1).all())
            # the trainers' tanh (numpy's on the CPU)
            assert bool((_tanh_(part.clone()) == 1).all()) and bool((_tanh_(-part) == -1).all())
