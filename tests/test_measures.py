"""Flatness measures of committee solutions (``flatness.committee``, ``figures.measures``, ``localentropy measures``):
the stand-in's loss and gradient against their definition, the measures' directions on a solution made
sharper, the granulated Kendall τ on constructed examples, the figures' numbers read back, the command."""

from __future__ import annotations

import csv
import math
from itertools import combinations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from localentropy.cli.main import cli
from localentropy.committee.loss import margin_loss
from localentropy.committee.model import normalise, sign_output, surrogate_output
from localentropy.flatness import FlatnessError, hessian_top_eigenvalue
from localentropy.flatness.committee import (MEASURES, CommitteeStandIn, committee_error, committee_loss,
                                             committee_measures, final_beta_omega)
from localentropy.figures.measures import (Record, axis_groups, cross_pair_tau, granulated_tau, read_figure_csv,
                                           statistics)

torch.set_num_threads(1)
F64 = torch.float64
CHEAP = {"hessian_trace": {"probes": 10}, "pacbayes_sigma": {"bootstrap": 0, "draws": 10},
         "pacbayes_mag_sigma": {"bootstrap": 0, "draws": 10}, "hessian_lambda_max": {"k": 10}}


def tiny(K=3, N=7, P=11, seed=0):
    g = np.random.default_rng(seed)
    W = g.standard_normal((K, N))
    X = np.where(g.random((P, N)) < 0.5, -1.0, 1.0)
    y = np.where(g.random(P) < 0.5, -1.0, 1.0)
    return W, X, y


# ---- the stand-in module ----------------------------------------------------------------------------------

def test_loss_and_outputs_match_eq7_and_eq8_written_out():
    W, X, y = tiny()
    K, N = W.shape
    beta, omega = 1.3, 0.7
    m = CommitteeStandIn(torch.tensor(W), beta)
    out = m(torch.tensor(X)).detach()
    lam = X @ W.T / math.sqrt(N)
    surrogate = np.tanh(beta * lam).sum(1) / math.sqrt(K)
    x = y * surrogate
    f = -x / 2 + np.log(2 * np.cosh(omega * x)) / (2 * omega)  # Eq. 8 as printed
    assert out[:, 0].detach().numpy() == pytest.approx(surrogate, rel=1e-12)
    assert float(committee_loss(omega)(out, torch.tensor(y))) == pytest.approx(f.mean(), rel=1e-12)
    # the package's own surrogate, loss and sign network
    Wt, Xt = torch.tensor(W), torch.tensor(X)
    assert torch.allclose(out[:, 0], surrogate_output(Wt, Xt, beta))
    assert float(committee_loss(omega)(out, torch.tensor(y))) == pytest.approx(
        float(margin_loss(torch.tensor(y) * surrogate_output(Wt, Xt, beta), omega).mean()), rel=1e-12)
    assert torch.equal(out[:, 1], sign_output(Wt, Xt))
    assert float(committee_error(out, torch.tensor(y))) == pytest.approx(float((sign_output(Wt, Xt) != torch.tensor(y)).double().mean()))


def test_gradient_and_hessian_of_the_loss_match_finite_differences():
    W, X, y = tiny(seed=1)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    loss = committee_loss(0.5)

    def L(w):
        return loss(CommitteeStandIn(w, 1.0)(Xt), yt)

    w = torch.tensor(W)
    m = CommitteeStandIn(w, 1.0)
    g = torch.autograd.grad(loss(m(Xt), yt), m.weight)[0]
    h = 1e-6
    fd = np.zeros_like(W)
    with torch.no_grad():
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                e = torch.zeros_like(w)
                e[i, j] = h
                fd[i, j] = (float(L(w + e)) - float(L(w - e))) / (2 * h)
    assert g.numpy() == pytest.approx(fd, abs=1e-8)
    # the Hessian (the sign column carries no gradient: it is the surrogate's alone) and Lanczos run to the full
    # dimension agree on the top eigenvalue
    from torch.func import functional_call

    def L_of(v):
        return loss(functional_call(m, {"weight": v.reshape(W.shape)}, (Xt,)), yt)

    H = torch.autograd.functional.hessian(L_of, torch.tensor(W).reshape(-1))
    assert float(torch.linalg.eigvalsh(H)[-1]) > 0
    r = hessian_top_eigenvalue(m, loss, Xt, yt, k=W.size, tol=0)
    assert r.estimate == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-8)


def test_standin_refuses_bad_input():
    with pytest.raises(FlatnessError, match="odd"):
        CommitteeStandIn(torch.zeros(2, 5))
    with pytest.raises(FlatnessError, match="beta"):
        CommitteeStandIn(torch.zeros(3, 5), beta=0)
    W, X, y = tiny()
    with pytest.raises(FlatnessError, match="unknown measure"):
        committee_measures(W, X, y, measures=["nope"])
    with pytest.raises(FlatnessError, match="±1"):
        committee_measures(W, X, 2 * y, measures=["sam_sharpness"])
    with pytest.raises(FlatnessError, match="inputs"):
        committee_measures(W, X[:, :-1], y, measures=["sam_sharpness"])


def test_final_beta_omega_follows_the_schedule():
    meta = {"hyperparameters": {"beta0": 2.0, "beta1": 1e-3, "omega0": 0.5, "omega1": 0.0}, "epochs": [0, 1000]}
    assert final_beta_omega(meta, 0) == (2.0, 0.5)
    assert final_beta_omega(meta, 1) == pytest.approx((2.0 * 1.001**1000, 0.5))
    with pytest.raises(FlatnessError):
        final_beta_omega({}, 0)


# ---- directions on a real solution ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def solution():
    from localentropy.committee.solutions import load_solutions
    from localentropy.data import load_dresscoat

    ds = load_dresscoat()
    w = load_solutions("results/fig1/fig1-solutions-rsgd-slow.npz").weights[0]
    return w, ds.X_train, ds.y_train


def test_every_measure_is_finite_and_calls_a_rotated_solution_sharper(solution):
    """The flattest kind of solution (rSGD slow) and the same rotated by ~30° towards a random direction (each
    unit renormalised): every pattern's hidden fields move towards the boundary, the training error stays 0,
    and every measure must move in its stated "sharper" direction."""
    w, X, y = solution
    z = np.random.default_rng(0).standard_normal(w.shape)
    sharp = normalise(torch.tensor(w + 0.6 * z)).numpy()
    a = committee_measures(w, X, y, options=CHEAP)
    b = committee_measures(sharp, X, y, options=CHEAP)
    assert a["_error0"] == b["_error0"] == 0.0
    for m in MEASURES:
        va, vb = a[m.name]["value"], b[m.name]["value"]
        assert math.isfinite(va) and math.isfinite(vb) and va > 0 and vb > 0, m.name
        assert (vb > va) == m.sharper_is_larger, (m.name, va, vb)
        assert a[m.name]["seconds"] >= 0


def test_pacbayes_sigma_scales_with_the_weights_and_the_magnitude_aware_one_does_not(solution):
    """The sign network is invariant to w → c w: isotropic noise then needs c times the scale (σ′ ∝ c, exactly up to
    the bisection's tolerance, with the same draws), magnitude-aware noise is unchanged but for its ε floor."""
    w, X, y = solution
    names = ["pacbayes_sigma", "pacbayes_mag_sigma"]
    a = committee_measures(w, X, y, measures=names, options=CHEAP)
    b = committee_measures(0.5 * w, X, y, measures=names, options=CHEAP)
    assert b["pacbayes_sigma"]["value"] == pytest.approx(0.5 * a["pacbayes_sigma"]["value"], rel=2e-3)
    assert b["pacbayes_mag_sigma"]["value"] == pytest.approx(a["pacbayes_mag_sigma"]["value"], rel=2e-3)


# ---- granulated Kendall τ ----------------------------------------------------------------------------------

def brute_cross_tau(x, y, codes):
    num = den = 0
    for i, j in combinations(range(len(x)), 2):
        if codes[i] != codes[j]:
            num += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            den += 1
    return num / den


def test_cross_pair_tau_counts_only_pairs_across_values():
    g = np.random.default_rng(3)
    x, y = g.standard_normal(12), g.integers(0, 4, 12).astype(float)  # ties in y count 0
    codes = np.repeat([0, 1, 2], 4)
    assert cross_pair_tau(x, y, codes) == pytest.approx(brute_cross_tau(x, y, codes))
    assert cross_pair_tau(np.stack([x, -x]), y, codes) == pytest.approx([brute_cross_tau(x, y, codes),
                                                                        -brute_cross_tau(x, y, codes)])
    # every pair differing: Kendall's τ_a
    from scipy.stats import kendalltau

    u = g.standard_normal(9)
    v = g.standard_normal(9)
    assert cross_pair_tau(u, v, np.arange(9)) == pytest.approx(kendalltau(u, v).statistic)


def test_kendall_tau_b_matches_scipy_with_ties_and_nan():
    from scipy.stats import kendalltau

    from localentropy.figures.measures import kendall_tau_b

    g = np.random.default_rng(5)
    X = g.standard_normal((3, 40))
    X[1, :15] = 0.0
    X[2, 4] = np.nan
    y = g.integers(0, 5, 40).astype(float)
    want = [kendalltau(x, y, nan_policy="omit").statistic for x in X]
    assert kendall_tau_b(X, y) == pytest.approx(want)


def test_granulated_tau_of_a_constructed_grid():
    """One solution per setting on algorithm {sgd, rsgd} × speed {fast, slow}, plus eSGD with no speed.

    test error: sgd-fast 4, rsgd-fast 3, sgd-slow 2, rsgd-slow 1, esgd 0. The measure agrees with the error
    along speed (faster is sharper in both algorithms), and along the algorithm axis at fast speed, but
    inverts rsgd-slow and sgd-slow; eSGD is the flattest. Algorithm axis: group fast = {sgd-fast,
    rsgd-fast, esgd}: pairs (sgd, rsgd) +1, (sgd, esgd) +1, (rsgd, esgd) +1 → 1; group slow = {sgd-slow,
    rsgd-slow, esgd}: (sgd, rsgd) −1, (sgd, esgd) +1, (rsgd, esgd) +1 → 1/3; Ψ_algorithm = 2/3.
    Speed axis: sgd +1, rsgd +1 → Ψ_speed = 1 (eSGD left out). Ψ = 5/6."""
    labels = ["sgd-fast", "rsgd-fast", "sgd-slow", "rsgd-slow", "esgd"]
    err = np.array([4, 3, 2, 1, 0.0])
    measure = np.array([4, 3, 1, 2, 0.0])
    axes = {"algorithm": ["sgd", "rsgd", "sgd", "rsgd", "esgd"],
            "speed": ["fast", "fast", "slow", "slow", None],
            "dropout": [0.0] * 5}
    g = granulated_tau(measure, err, axes)
    assert g["algorithm"] == pytest.approx(2 / 3)
    assert g["speed"] == pytest.approx(1.0)
    assert "dropout" not in g
    assert g["psi"] == pytest.approx(5 / 6)
    assert [sorted(labels[i] for i in grp) for grp in axis_groups(axes, "algorithm")] == [
        ["esgd", "rsgd-fast", "sgd-fast"], ["esgd", "rsgd-slow", "sgd-slow"]]
    # a measure equal to the error (or its negative) gives Ψ = 1 (−1) on every axis
    assert granulated_tau(err, err, axes)["psi"] == pytest.approx(1.0)
    assert granulated_tau(-err, err, axes)["psi"] == pytest.approx(-1.0)


def test_granulated_tau_with_seeds_is_the_average_over_cross_setting_pairs():
    """Two settings on one axis with 3 solutions each: Ψ is the mean sign agreement over the 9 cross pairs."""
    err = np.array([1, 2, 3, 4, 5, 6.0])
    measure = np.array([0, 10, 2, 1, 3, 4.0])  # of the 9 cross pairs 5 concordant, 4 discordant
    axes = {"dropout": [0.0, 0.0, 0.0, 0.5, 0.5, 0.5]}
    assert granulated_tau(measure, err, axes)["psi"] == pytest.approx((5 - 4) / 9)


def make_records(values, errors, settings, axes):
    out = []
    for i, (v, e, s) in enumerate(zip(values, errors, settings)):
        r = Record(figure="1", setting=s, restart=i, algorithm=axes["algorithm"][i], speed=axes["speed"][i],
                   dropout=axes["dropout"][i], test_error=float(e), train_error=0.0, source=f"w{i}",
                   weights=np.zeros((1, 1)))
        r.values = dict(v)
        out.append(r)
    return out


def test_statistics_intervals_ranking_and_signs():
    """A 'sharper' measure equal to the error plus small noise ranks first with Ψ near 1; a 'flatter' one equal to
    minus the error is just as good once oriented; a random one has an interval around 0."""
    from localentropy.figures.measures import Column

    g = np.random.default_rng(0)
    settings = np.repeat(["sgd-fast", "sgd-slow", "rsgd-fast", "rsgd-slow"], 8)
    alg = [s.split("-")[0] for s in settings]
    speed = [s.split("-")[1] for s in settings]
    base = {"sgd-fast": 4, "sgd-slow": 3, "rsgd-fast": 2, "rsgd-slow": 1}
    err = np.array([base[s] for s in settings]) + 0.3 * g.standard_normal(len(settings))
    vals = [{"good": e + 0.05 * g.standard_normal(), "flat": -e, "random": g.standard_normal()} for e in err]
    recs = make_records(vals, err, settings, {"algorithm": alg, "speed": speed, "dropout": [0.0] * len(alg)})
    cols = (Column("good", "good", True, "t"), Column("flat", "flat", False, "t"), Column("random", "random", True, "t"))
    st = statistics(recs, cols, scopes=("1",), bootstrap=200, seed=1)["1"]
    assert st["ranking"][-1] == "random"
    assert st["stats"]["flat"]["psi"].estimate == pytest.approx(-1.0)
    assert st["stats"]["flat"]["tau"].estimate == pytest.approx(-1.0)
    assert st["stats"]["good"]["psi"].estimate > 0.9
    s = st["stats"]["random"]["psi"]
    assert s.lo < 0 < s.hi and s.lo <= s.estimate <= s.hi
    again = statistics(recs, cols, scopes=("1",), bootstrap=200, seed=1)["1"]
    assert again["stats"]["random"]["psi"] == s  # seeded


# ---- the figures' numbers ----------------------------------------------------------------------------------

def test_figure1_csv_read_back_gives_the_figures_own_correlations():
    """δ* and the Pearson r of δE_train(0.5) and Φ_LE (importance sampling and BP) against test error, as
    results/fig1/fig1-summary.md states them (0.0311; 0.800, -0.777, -0.780)."""
    table, dstar, sigmas = read_figure_csv("results/fig1/fig1.csv")
    assert len(table) == 250 and f"{dstar:.3g}" == "0.0311" and sigmas[-1] == pytest.approx(0.5)
    rows = list(table.values())
    t = np.array([r["test_error"] for r in rows])
    for q, r_expected in (("delta_train_error", 0.800), ("phi_le_hard", -0.777), ("phi_le_hard_bp", -0.780)):
        v = np.array([r[q] for r in rows])
        assert np.isfinite(v).all()
        assert np.corrcoef(v, t)[0, 1] == pytest.approx(r_expected, abs=5e-4), q


# ---- the command -------------------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


def test_command_writes_its_files_and_reruns_from_the_cache(tmp_path):
    out = tmp_path / "m"
    args = ["measures", "--figures", "1,6", "--limit-per-setting", 2, "--bootstrap", 20, "--out", out,
            "--set", "hessian_trace.probes=10", "--set", "pacbayes_sigma.draws=10", "--set", "pacbayes_sigma.bootstrap=0",
            "--set", "pacbayes_mag_sigma.draws=10", "--set", "pacbayes_mag_sigma.bootstrap=0"]
    res = run(*args)
    assert res.exit_code == 0, res.output
    names = ["measures-summary.md", "measures-solutions.csv", "measures-stats.csv", "measures.png", "measures.pdf",
             "measures-tau.png", "measures-tau.pdf"]
    for n in names:
        assert (out / n).stat().st_size > 0, n
    with open(out / "measures-solutions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len({(r["figure"], r["setting"], r["restart"]) for r in rows}) == 20
    measured = [r for r in rows if r["quantity"] in {m.name for m in MEASURES}]
    assert measured and all(math.isfinite(float(r["value"])) for r in measured)
    with open(out / "measures-stats.csv", newline="") as fh:
        stats = list(csv.DictReader(fh))
    assert {r["scope"] for r in stats} == {"1", "6", "all"}
    summary = (out / "measures-summary.md").read_text()
    assert "localentropy measures" in summary and "Code version" in summary and "Wall time" in summary
    assert len(list((out / "cache").rglob("*.npz"))) == 18  # Figure 6's p = 0 solutions are Figure 1's sgd-fast ones
    first = (out / "measures-stats.csv").read_bytes()
    res = CliRunner().invoke(cli, [*map(str, args)])  # not quiet: the cache note is on stderr
    assert res.exit_code == 0, res.output
    assert "cache: 18/18 solutions' measures reused" in res.output
    assert (out / "measures-stats.csv").read_bytes() == first
    # another option of one measure: that measure alone is computed again, the entries rewritten
    res = CliRunner().invoke(cli, [*map(str, args), "--set", "sam_sharpness.rho=0.1"])
    assert res.exit_code == 0, res.output
    assert "cache: 0/18 solutions' measures reused" in res.output
    assert "SAM sharpness (ρ = 0.1)" in (out / "measures-summary.md").read_text()
    assert len(list((out / "cache").rglob("*.npz"))) == 18


@pytest.mark.parametrize("args, words", [
    (["--figures", "2"], "--figures"),
    (["--figures", "1,1"], "--figures"),
    (["--limit-per-setting", "1"], "--limit-per-setting"),
    (["--bootstrap", "3"], "--bootstrap"),
    (["--beta", "-1"], "--beta"),
    (["--results", "no/such/folder"], "no such folder"),
    (["--jobs", "0"], "--jobs"),
    (["--set", "hessian_trace.nope=1"], "no option nope"),
    (["--set", "nothing=1"], "--set"),
    (["--set", "hessian_trace.probes=1"], "probes"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    res = CliRunner().invoke(cli, ["measures", "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("localentropy: error:") and words in lines[0], res.output
    assert not (tmp_path / "o").exists()


def test_a_csv_that_is_not_the_solutions_is_refused(tmp_path):
    """The figure's CSV must hold these weights' test errors: a CSV with one test error changed is one line, exit 2."""
    import shutil

    fig = tmp_path / "fig6"
    fig.mkdir()
    for p in sorted((__import__("pathlib").Path("results/fig6")).glob("fig6-solutions-*.npz")):
        shutil.copy(p, fig / p.name)
    with open("results/fig6/fig6.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    for r in rows:
        if r[3] == "test_error" and r[1] == "sgd-fast p=0.1" and r[2] == "0":
            r[5] = "0.5"
    with open(fig / "fig6.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    res = CliRunner().invoke(cli, ["measures", "--figures", "6", "--results", str(tmp_path), "--limit-per-setting", "2",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not these solutions'" in res.output and len(res.output.strip().splitlines()) == 1
