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
from localentropy.committee.train import restart_seed, train_committee

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


def _oracle(name, p, X, y, seed, r, epochs):
    g = torch.Generator().manual_seed(restart_seed(seed, r))
    X, y = X.astype(np.float64), y.astype(np.float64)
    nb = math.ceil(P / p.batch_size)
    if p.algorithm == "rsgd":
        U = _unit(np.stack([(torch.rand((K, N), generator=g, dtype=torch.float64) * 2 - 1).numpy()
                            for _ in range(p.replicas)]))
    else:
        U = _unit((torch.rand((K, N), generator=g, dtype=torch.float64) * 2 - 1).numpy())
    step, last = 0, None

    def mask(shape):
        if p.dropout == 0:
            return 1.0
        return (torch.rand(shape, generator=g, dtype=torch.float64) >= p.dropout).numpy() / (1 - p.dropout)

    for t in range(epochs):
        beta, omega, gamma = _sched(p.beta0, p.beta1, t), _sched(p.omega0, p.omega1, t), _sched(p.gamma0, p.gamma1, t)
        if p.algorithm == "sgd":  # plain SGD, renormalised after every step
            perm = torch.randperm(P, generator=g).numpy()
            for b in range(nb):
                sel = perm[b * p.batch_size:(b + 1) * p.batch_size]
                Xb = X[sel] * mask((len(sel), N))
                U = _unit(U - p.eta * _grad(U, Xb, y[sel], beta, omega))
        elif p.algorithm == "rsgd":  # Algorithm 2
            perms = [torch.randperm(P, generator=g).numpy() for _ in range(p.replicas)]
            for b in range(nb):
                centre = U.mean(0)
                new = np.empty_like(U)
                for a in range(p.replicas):
                    sel = perms[a][b * p.batch_size:(b + 1) * p.batch_size]
                    d = _grad(U[a], X[sel], y[sel], beta, omega)
                    if step % p.coupling_period == 0:
                        d = d + p.coupling_period * gamma * (U[a] - centre)
                    new[a] = _unit(U[a] - p.eta * d)
                U, step = new, step + 1
            last = max(0.5 * ((U[a] - U.mean(0)) ** 2).sum() for a in range(p.replicas))
        else:  # Algorithm 1
            stream = []
            for _ in range(nb):
                w, wp, mu = U.copy(), U.copy(), U.copy()
                for _ in range(p.inner_steps):
                    if not stream:
                        perm = torch.randperm(P, generator=g).numpy()
                        stream = [perm[b * p.batch_size:(b + 1) * p.batch_size] for b in range(nb)]
                    sel = stream.pop(0)
                    d = _grad(wp, X[sel], y[sel], beta, omega) + gamma * (wp - w)
                    z = torch.randn((K, N), generator=g, dtype=torch.float64).numpy()
                    wp = _unit(wp - p.inner_lr * d + math.sqrt(p.inner_lr) * p.noise * z)
                    mu = p.alpha * mu + (1 - p.alpha) * wp
                last = 0.5 * ((w - mu) ** 2).sum()
                U = _unit(U - p.eta * (U - mu))
    return U, last


@pytest.mark.parametrize("name, extra", [
    ("sgd-fast", dict(dropout=0.3)),
    ("rsgd-fast", dict(coupling_period=2)),
    ("esgd", dict(noise=1e-3)),
])
def test_trainer_equals_the_algorithm_written_out_for_each_restart(problem, name, extra):
    X, y = problem
    epochs = 3
    p = get_preset(name, **{**SMALL[name], **extra, "max_epochs": epochs, "stop_threshold": 0.0})
    if name == "sgd-fast":
        p = p.override(stop="loss")  # never met with threshold 0: run all epochs
    res = train_committee(X, y, p, restarts=2, seed=5)
    for r in range(2):
        U, last = _oracle(name, p, X, y, 5, r, epochs)
        if p.algorithm == "rsgd":
            assert np.allclose(res.replicas[:, r] / math.sqrt(N), U, rtol=0, atol=1e-11)
            assert np.allclose(res.weights[r] / math.sqrt(N), _unit(U.mean(0)), rtol=0, atol=1e-11)
            assert res.stop_value[r] == pytest.approx(last, rel=1e-8)
        else:
            assert np.allclose(res.weights[r] / math.sqrt(N), U, rtol=0, atol=1e-11)
            if last is not None:
                assert res.stop_value[r] == pytest.approx(last, rel=1e-8)
        assert res.status[r] == "not converged" and res.epochs[r] == epochs


# ---- independence, freezing, resume, invariants ---------------------------------------------

@pytest.mark.parametrize("name, extra", [("sgd-fast", dict(dropout=0.2)), ("rsgd-fast", {}), ("esgd", {})])
def test_a_restart_alone_equals_the_same_restart_in_a_batch(problem, name, extra):
    X, y = problem
    p = get_preset(name, **{**SMALL[name], **extra, "max_epochs": 40})
    batch = train_committee(X, y, p, restarts=3, seed=11)
    assert len(set(batch.epochs.tolist())) > 1  # restarts stop at different epochs: freezing matters
    for r in (0, 2):
        alone = train_committee(X, y, p, restart_ids=[r], seed=11)
        assert alone.epochs[0] == batch.epochs[r] and alone.status[0] == batch.status[r]
        assert np.allclose(alone.weights[0], batch.weights[r], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd-slow", "rsgd-fast", "esgd"])
def test_a_resumed_run_equals_an_uninterrupted_one(problem, tmp_path, name):
    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 10})
    full = train_committee(X, y, p, restarts=2, seed=2)
    ck = tmp_path / "run.ckpt"
    assert train_committee(X, y, p, restarts=2, seed=2, checkpoint=ck, checkpoint_every=4, stop_after_epochs=6) is None
    assert ck.exists()
    resumed = train_committee(X, y, p, restarts=2, seed=2, checkpoint=ck, checkpoint_every=4)
    assert np.array_equal(resumed.weights, full.weights)
    assert np.array_equal(resumed.epochs, full.epochs) and resumed.status == full.status


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
        sd = torch.load(ck, weights_only=False)
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
    """Networks gathered a few at a time and shared among 2 worker threads: bitwise the same
    weights as one chunk on one thread."""
    import localentropy.committee.train as T

    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 4, "dropout": 0.2})
    whole = train_committee(X, y, p, restarts=3, seed=8)
    monkeypatch.setattr(T, "CHUNK_BYTES_CPU", 2 * 10 * N * 8)  # two networks' mini-batches per chunk
    before = torch.get_num_threads()
    split = train_committee(X, y, p, restarts=3, seed=8, num_threads=2)
    assert torch.get_num_threads() == before, "torch's thread count is restored"
    assert np.array_equal(split.weights, whole.weights) and np.array_equal(split.epochs, whole.epochs)
    if p.algorithm == "rsgd":
        assert np.array_equal(split.replicas, whole.replicas)
    with pytest.raises(CommitteeError, match="num_threads"):
        train_committee(X, y, p, restarts=1, num_threads=0)


@pytest.mark.parametrize("name", ["sgd-slow", "rsgd-slow", "esgd"])
def test_a_restart_alone_is_bitwise_the_same_restart_in_a_batch(problem, name):
    """Every op of the trainers acts per network in a way that does not depend on the network's
    place in the batch (no position-dependent rounding), so independence holds exactly, dropout on."""
    X, y = problem
    p = get_preset(name, **{**SMALL[name], "max_epochs": 6, "dropout": 0.1})
    batch = train_committee(X, y, p, restarts=3, seed=13)
    alone = train_committee(X, y, p, restart_ids=[1], seed=13)
    assert np.array_equal(alone.weights[0], batch.weights[1])
    if p.algorithm == "rsgd":
        assert np.array_equal(alone.replicas[:, 0], batch.replicas[:, 1])
