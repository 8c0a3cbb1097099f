"""figures/: the stage cache, the statistics, the figure specs, and a small figure end to end."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from localentropy.committee.presets import get_preset
from localentropy.figures import FigureError, figure_spec, parse_restart_ids, shard_ids
from localentropy.figures.cache import StageCache, stage_key
from localentropy.figures.spec import shortened
from localentropy.figures.stats import mann_whitney, mean_se, pearson


def test_stage_keys_change_with_every_input_and_only_then():
    base = {"preset": get_preset("sgd-fast").as_dict(), "seed": 0, "restart": 3, "data": "abc"}
    k = stage_key("train", base)
    assert k == stage_key("train", dict(reversed(list(base.items()))))  # order of keys does not matter
    assert k != stage_key("train", dict(base, restart=4))
    assert k != stage_key("train", dict(base, preset=get_preset("sgd-fast", eta=2.0000000001e-4).as_dict()))
    assert k != stage_key("energy", base)
    with pytest.raises(FigureError, match="unknown stage"):
        stage_key("nope", base)


def test_cache_round_trip_and_refuses_a_corrupt_or_misplaced_entry(tmp_path):
    cache = StageCache(tmp_path)
    key = stage_key("curve", {"x": 1})
    assert cache.load("curve", key) is None and not cache.has("curve", key)
    w = np.arange(6.0).reshape(2, 3)
    cache.save("curve", key, {"w": w}, {"note": "hi", "nan": None})
    arrays, meta = cache.load("curve", key)
    assert np.array_equal(arrays["w"], w) and meta["note"] == "hi" and meta["key"] == key
    other = stage_key("curve", {"x": 2})
    cache.path("curve", other).parent.mkdir(parents=True, exist_ok=True)
    cache.path("curve", key).replace(cache.path("curve", other))  # an entry under the wrong name
    with pytest.raises(FigureError, match="not its file name"):
        cache.load("curve", other)
    cache.path("curve", other).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FigureError, match="unreadable cache entry"):
        cache.load("curve", other)
    # has() sets an unreadable entry aside (named in .moved) and answers False: the stage recomputes it
    assert not cache.has("curve", other) and not cache.path("curve", other).exists()
    (entry, aside, why), = cache.moved
    assert entry == cache.path("curve", other) and aside.is_file() and aside.parent.name == "corrupt"
    assert "unreadable" in why and aside.read_bytes() == b"PK\x03\x04 truncated"


def test_mann_whitney_and_pearson_against_hand_computations():
    c = mann_whitney("a", [5, 6, 7], "b", [1, 2, 3, 4])  # complete separation: U = n_a n_b
    assert c.U == 12 and c.A == 1.0 and c.rank_biserial == 1.0
    assert c.p == pytest.approx(2 / math.comb(7, 3))  # exact: one arrangement of 35 as extreme, two-sided
    c = mann_whitney("a", [1, 3], "b", [2, 4])  # pairs a>b: (3,2) → U = 1
    assert c.U == 1 and c.A == 0.25
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    y = np.array([1.0, 2.5, 1.1, 3.9, 2.0])
    assert pearson(x, y).r == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(pearson([1, 2], [3, 4]).r)
    m, se = mean_se([1.0, 2.0, 3.0, np.nan])
    assert m == 2.0 and se == pytest.approx(1 / math.sqrt(3))


def test_shortened_time_runs_schedules_and_one_rate_f_times_faster():
    p = get_preset("rsgd-slow")
    q = shortened(p, 100.0)
    for name in ("beta", "omega", "gamma"):
        x0, x1, y1 = getattr(p, name + "0"), getattr(p, name + "1"), getattr(q, name + "1")
        for t in (1, 7, 250):
            assert x0 * (1 + y1) ** t == pytest.approx(x0 * (1 + x1) ** (100 * t), rel=1e-9)
    assert q.eta == p.eta and q.gamma0 == pytest.approx(100 * p.gamma0)  # rsgd-slow: the coupling carries the time
    f = shortened(get_preset("rsgd-fast"), 10.0)
    assert f.eta == pytest.approx(10 * get_preset("rsgd-fast").eta) and f.gamma0 == get_preset("rsgd-fast").gamma0
    assert q.max_epochs == math.ceil(p.max_epochs / 100)
    s = shortened(get_preset("sgd-slow"), 6.0)
    assert s.eta == pytest.approx(6 * get_preset("sgd-slow").eta) and s.gamma0 == 0
    with pytest.raises(FigureError):
        shortened(p, 0.5)


def test_specs_and_restart_selection():
    s1 = figure_spec("1")
    assert [s.label for s in s1.settings] == ["sgd-fast", "sgd-slow", "rsgd-fast", "rsgd-slow", "esgd"]
    assert s1.restarts == 50 and not s1.quick and all(s.time_scale == 1 for s in s1.settings)
    s6 = figure_spec("6", dropouts=[0, 0.3])
    assert [s.preset.dropout for s in s6.settings] == [0.0, 0.3]
    assert figure_spec("1", quick=True).quick
    # panel (a): importance sampling with BP beside it; the preview by the sampler only
    assert s1.curve_methods == ("is", "auto") and figure_spec("1", quick=True).curve_methods == ("is",)
    assert figure_spec("1", quick=True, curve_methods=["auto"]).curve_methods == ("auto",)
    for bad in (dict(name="2"), dict(name="1", restarts=0), dict(name="6", dropouts=[1.0]),
                dict(name="1", dropouts=[0.1]), dict(name="6", dropouts=[0.1, 0.1]),
                dict(name="1", curve_methods=["mc"]), dict(name="1", curve_methods=["is", "is"]),
                dict(name="1", curve_methods=["ep"])):
        with pytest.raises(FigureError):
            figure_spec(**bad)
    assert parse_restart_ids("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("3-1", "a", "1,1", "-2"):
        with pytest.raises(FigureError):
            parse_restart_ids(bad)
    assert shard_ids("1/2", 5) + shard_ids("2/2", 5) == [0, 1, 2, 3, 4]
    for bad in ("0/2", "3/2", "x"):
        with pytest.raises(FigureError):
            shard_ids(bad, 5)


def _tiny_spec(K=9, **kw):
    """Two cheap settings (sgd-fast, and sgd-fast with dropout), 2 solutions each, short grids."""
    import dataclasses

    from localentropy.figures.spec import FigureSpec, Setting

    settings = (Setting("fast", get_preset("sgd-fast", K=K)), Setting("fast p=0.2", get_preset("sgd-fast", dropout=0.2, K=K)))
    base = FigureSpec(name="6", settings=settings, restarts=2, seed=0, sigmas=(0.0, 0.25, 0.5), draws=8,
                      deltas=tuple(np.logspace(-3, -1, 4)), quick=True, curve_methods=("auto",))
    return dataclasses.replace(base, **kw)


def _planted_data():
    """A small teacher committee's patterns (K=3, N=60): 80 to train on, 200 to test."""
    from types import SimpleNamespace

    from localentropy.bp.instances import planted_instance

    X, y, _ = planted_instance(5, 3, 60, 280)
    return SimpleNamespace(X_train=X[:80], y_train=y[:80], X_test=X[80:], y_test=y[80:])


@pytest.mark.parametrize("real", [pytest.param(True, marks=pytest.mark.slow), False])
def test_a_small_figure_end_to_end_cached_sharded_and_consistent(tmp_path, real):
    from localentropy.committee.evaluate import solution_errors
    from localentropy.data import load_dresscoat
    from localentropy.figures import compute_figure, write_outputs

    ds = load_dresscoat() if real else _planted_data()
    spec = _tiny_spec(K=9 if real else 3)
    cache = tmp_path / "cache"
    # two shards first, then the assembling run: it trains nothing more when the shards hold enough solutions
    stopped = {s.label: 0 for s in spec.settings}
    for ids in ([0, 1], [2, 3]):
        shard = compute_figure(spec, cache, restart_ids=ids, jobs=1, data=ds)
        for lab, sols in shard.solutions.items():
            stopped[lab] += len(sols)
            assert all(s.restart in ids for s in sols)
    fd = compute_figure(spec, cache, jobs=1, data=ds)
    assert ("train" in fd.wall) == any(n < 2 for n in stopped.values())
    assert {lab: len(s) for lab, s in fd.solutions.items()} == {"fast": 2, "fast p=0.2": 2}
    files = write_outputs(fd, tmp_path / "out", "test", fd.wall)
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert (tmp_path / "out" / "fig6-correlation.png").is_file()
    # the CSV is numeric where it should be, and its test errors are the solutions' own
    with open(tmp_path / "out" / "fig6.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for col in ("x", "y", "y_se", "restart"):
            if row[col] != "":
                float(row[col])
    for lab, sols in fd.solutions.items():
        w = np.stack([s.weights for s in sols])
        expect = solution_errors(w, ds.X_test, ds.y_test)
        got = [float(r["y"]) for r in rows if r["setting"] == lab and r["quantity"] == "test_error"]
        assert got == pytest.approx(expect.tolist(), abs=0)
        phi = [float(r["y"]) for r in rows if r["setting"] == lab and r["quantity"] == "phi_le_hard"]
        assert phi and all(v <= 1e-12 for v in phi)  # Φ_LE ≤ 0
    from localentropy.committee.solutions import load_solutions
    from localentropy.figures.report import solutions_file_name

    for lab, sols in fd.solutions.items():
        saved = load_solutions(tmp_path / "out" / solutions_file_name("6", lab))
        assert np.array_equal(saved.weights, np.stack([s.weights for s in sols]))
        assert saved.metadata["restart_ids"] == [s.restart for s in sols] and saved.test_error == tuple(
            s.test_error for s in sols)
    summary = (tmp_path / "out" / "fig6-summary.md").read_text()
    assert "Do the paper's claims hold here?" in summary and "fast p=0.2 beats fast | test error" in summary
    assert "quick preview" in summary and "fast p=0.2" in summary and "Mann–Whitney" not in summary.split("##")[0]
    # a rerun computes nothing and writes the same numbers
    fd2 = compute_figure(spec, cache, jobs=1, data=ds)
    assert fd2.wall == {}
    write_outputs(fd2, tmp_path / "out2", "test", fd2.wall)
    assert (tmp_path / "out2" / "fig6.csv").read_text() == (tmp_path / "out" / "fig6.csv").read_text()
    # a changed hyper-parameter of one setting retrains that setting only
    import dataclasses

    changed = dataclasses.replace(spec, settings=(spec.settings[0], dataclasses.replace(
        spec.settings[1], preset=dataclasses.replace(spec.settings[1].preset, dropout=0.3))))
    fd3 = compute_figure(changed, cache, jobs=1, data=ds)
    assert "train" in fd3.wall
    assert [s.weights.tolist() for s in fd3.solutions["fast"]] == [s.weights.tolist() for s in fd.solutions["fast"]]


def test_claim_verdicts_follow_one_sided_tests_with_holm_adjustment():
    from localentropy.figures.claims import claimed_pairs, holm, one_sided, verdicts

    rng = np.random.default_rng(0)
    low, high = rng.normal(0, 1, 30), rng.normal(3, 1, 30)
    assert one_sided("a", high, "b", low, "q", True).word == "holds"
    assert one_sided("a", low, "b", high, "q", True).word.startswith("contradicted")
    assert one_sided("a", low, "b", high, "q", False).word == "holds"  # lower is better
    same = one_sided("a", low, "b", rng.normal(0, 1, 30), "q", True)
    assert same.word in ("not shown", "holds") and 0.2 < same.A < 0.8
    v = one_sided("a", [1.0], "b", [], "q", True)
    assert v.word.startswith("untested")
    # Holm: sorted p's × (m, m−1, …), running maximum, capped at 1
    from localentropy.figures.claims import Verdict

    vs = holm([Verdict("a", "b", "q", 1, 1, 0.5, p, 1 - p) for p in (0.04, 0.01, 0.03, 0.5)])
    assert [v.p_holm for v in vs] == pytest.approx([0.09, 0.04, 0.09, 0.5])  # 0.01·4, 0.03·3, max(0.04·2, 0.09), 0.5
    assert claimed_pairs("1", ["sgd-fast", "sgd-slow", "esgd"], {}) == [("esgd", "sgd-slow"), ("sgd-slow", "sgd-fast")]
    assert claimed_pairs("6", ["x", "y", "z"], {"x": 0.0, "y": 0.5, "z": 0.1}) == [("z", "x"), ("y", "z")]
    sols = {"lo": [type("S", (), {"v": x}) for x in low], "hi": [type("S", (), {"v": x}) for x in high]}
    out = verdicts("6", sols, [("v", lambda s: s.v, True)], {"lo": 0.0, "hi": 0.2})
    assert len(out) == 1 and out[0].better == "hi" and out[0].word == "holds"


def test_a_shard_of_chosen_settings_computes_only_those_and_leaves_the_hard_curves_to_the_assembly(tmp_path):
    from localentropy.figures import compute_figure
    ds, spec = _planted_data(), _tiny_spec(K=3)
    shard = compute_figure(spec, tmp_path, restart_ids=[0, 1], settings=["fast p=0.2"], jobs=1, data=ds)
    assert list(shard.solutions) == ["fast p=0.2"] and shard.dropped_patterns == []
    assert shard.solutions["fast p=0.2"] and all(set(s.curves) == {"soft"} for s in shard.solutions["fast p=0.2"])
    counts = {stage: len(list((tmp_path / stage).rglob("*.npz"))) for stage in ("train", "energy", "curve")}
    n = len(shard.solutions["fast p=0.2"])
    assert counts == {"train": 2, "energy": n, "curve": n}  # one soft curve per solution, no hard ones
    with pytest.raises(FigureError, match="unknown setting"):
        compute_figure(spec, tmp_path, restart_ids=[0], settings=["slow"], data=ds)
    # without restart ids: a figure of that setting alone, from the cache the shard filled
    alone = compute_figure(spec, tmp_path, settings=["fast p=0.2"], jobs=1, data=ds)
    assert [s.label for s in alone.spec.settings] == ["fast p=0.2"] and list(alone.solutions) == ["fast p=0.2"]
    assert alone.reused["trainings"][0] == 2 and {"hard", "soft"} <= set(alone.solutions["fast p=0.2"][0].curves)


def test_the_figure_command_validates_before_any_progress_and_says_one_line(tmp_path):
    from click.testing import CliRunner

    from localentropy.cli.main import cli

    runner = CliRunner()
    for args, needle in ((["figure", "2"], "2"), (["figure", "1", "--shard", "3/2"], "--shard"),
                         (["figure", "1", "--restart-ids", "0-3", "--shard", "1/2"], "not both"),
                         (["figure", "1", "--restarts", "0"], "--restarts"),
                         (["figure", "6", "--dropout", "0.1,x"], "--dropout"),
                         (["figure", "1", "--dropout", "0.1"], "figure 6"),
                         (["figure", "1", "--settings", "esgd,nope"], "nope"),
                         (["figure", "1", "--restart-ids", "0-3", "--settings", "esgd,sgd-medium"], "sgd-medium")):
        res = runner.invoke(cli, args + ["--out", str(tmp_path / "o")])
        assert res.exit_code == 2, (args, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], (args, res.output)
        assert not (tmp_path / "o").exists()


def test_a_whole_figure_trains_its_restarts_in_parallel_processes_as_one_process_does(tmp_path):
    """jobs=2: restart ids 0…restarts−1 of every setting trained in 2 processes (a slice each) give the
    solutions one process gives: the same stop epochs, the weights to the rounding a long float32 run
    amplifies (a restart in another batch rounds its batched products differently; docs/reproducibility.md,
    guarantee 3); and the progress callback hears from the workers."""
    from localentropy.figures import compute_figure

    ds = _planted_data()
    spec = _tiny_spec(K=3, restarts=3)
    seen = []
    two = compute_figure(spec, tmp_path / "two", jobs=2, data=ds,
                         progress=lambda stage, done, total, detail: seen.append((stage, detail)))
    one = compute_figure(spec, tmp_path / "one", jobs=1, data=ds)
    assert any(stage.startswith("train") for stage, _ in seen)
    for lab in one.solutions:
        a, b = one.solutions[lab], two.solutions[lab]
        assert [s.restart for s in a] == [s.restart for s in b]
        for s, t in zip(a, b):
            assert s.epochs == t.epochs and s.converged == t.converged
            assert np.allclose(s.weights, t.weights, rtol=0, atol=1e-3)
            if np.array_equal(s.weights, t.weights):  # the energies of worker processes equal this process's
                assert np.allclose(s.energy["delta_error"], t.energy["delta_error"], rtol=0, atol=1e-12)
    assert two.wall.get("train", 0) > 0 and two.wall.get("energy", 0) > 0


def test_a_figure_redrawn_from_its_solutions_recomputes_every_stage_to_the_same_numbers(tmp_path):
    """--from-solutions: the solutions a figure run drew, read back from its output folder, give that run's
    test errors, local energies and BP curves again (computed afresh into another cache); a curve subset
    leaves the later solutions without curves and says so; bad folders are refused before any work."""
    import dataclasses

    from localentropy.figures import compute_figure, figure_from_solutions, write_outputs
    from localentropy.figures.report import claim_verdicts, verdict_line

    ds = _planted_data()
    spec = _tiny_spec(K=3, restarts=3)
    fd = compute_figure(spec, tmp_path / "cache", jobs=1, data=ds)
    write_outputs(fd, tmp_path / "run", "test", fd.wall)
    redrawn = figure_from_solutions(_tiny_spec(K=3), tmp_path / "run", tmp_path / "cache2", jobs=1, data=ds)
    assert set(redrawn.wall) == {"errors", "energy", "curve"}  # nothing read from the run's cache
    assert list(redrawn.solutions) == list(fd.solutions) and redrawn.dropped_patterns == fd.dropped_patterns
    for lab, sols in fd.solutions.items():
        again = redrawn.solutions[lab]
        assert [s.restart for s in again] == [s.restart for s in sols]
        for a, b in zip(sols, again):
            assert np.array_equal(a.weights, b.weights) and a.test_error == b.test_error and a.epochs == b.epochs
            assert all(np.array_equal(a.energy[k], b.energy[k]) for k in a.energy)
            for t in ("hard", "soft"):
                assert all(np.array_equal(a.curves[t][k], b.curves[t][k], equal_nan=True)
                           for k in ("prior_delta", "delta", "phi", "converged"))
    assert [v.p for v in claim_verdicts(redrawn)] == [v.p for v in claim_verdicts(fd)]
    assert verdict_line(claim_verdicts(fd)).endswith("not shown")
    # a rerun from its own cache computes nothing after the errors
    assert set(figure_from_solutions(_tiny_spec(K=3), tmp_path / "run", tmp_path / "cache2", jobs=1, data=ds).wall) == {"errors"}
    # curves for the first 2 solutions of each setting only
    sub = figure_from_solutions(_tiny_spec(K=3), tmp_path / "run", tmp_path / "cache2", curve_subset=2, jobs=1, data=ds)
    for sols in sub.solutions.values():
        assert [bool(s.curves) for s in sols] == [True] * min(2, len(sols)) + [False] * (len(sols) - 2)
    write_outputs(sub, tmp_path / "sub", "test", sub.wall)
    text = (tmp_path / "sub" / "fig6-summary.md").read_text()
    assert "(first 2)" in text and f"read from `{tmp_path / 'run'}`" in text
    with open(tmp_path / "sub" / "fig6.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    third = [(lab, str(s.restart)) for lab, sols in sub.solutions.items() for s in sols[2:]]
    assert third and not [r for r in rows if r["quantity"].startswith("phi_le") and (r["setting"], r["restart"]) in third]
    assert all([r for r in rows if r["quantity"] == "phi_le_hard" and r["setting"] == lab and r["restart"] == str(s.restart)]
               for lab, sols in sub.solutions.items() for s in sols[:2])
    # refusals: no files, files of another figure, solutions trained on other patterns, bad subset
    with pytest.raises(FigureError, match="no fig6-solutions"):
        figure_from_solutions(_tiny_spec(K=3), tmp_path, tmp_path / "c", data=ds)
    with pytest.raises(FigureError, match="no fig1-solutions"):
        figure_from_solutions(dataclasses.replace(_tiny_spec(K=3), name="1"), tmp_path / "run", tmp_path / "c", data=ds)
    other = _planted_data()
    other.y_train = -other.y_train
    with pytest.raises(FigureError, match="other patterns"):
        figure_from_solutions(_tiny_spec(K=3), tmp_path / "run", tmp_path / "c", data=other)
    with pytest.raises(FigureError, match="≥ 2"):
        figure_from_solutions(_tiny_spec(K=3), tmp_path / "run", tmp_path / "c", curve_subset=1, data=ds)
    assert not (tmp_path / "c").exists()


def test_the_figure_command_from_solutions_refuses_what_does_not_apply_in_one_line(tmp_path):
    from click.testing import CliRunner

    from localentropy.cli.main import cli

    runner = CliRunner()
    for args, needle in ((["figure", "1", "--from-solutions", str(tmp_path / "none")], "no such solutions folder"),
                         (["figure", "1", "--from-solutions", str(tmp_path)], "fig1-solutions"),
                         (["figure", "1", "--from-solutions", str(tmp_path), "--quick"], "--quick"),
                         (["figure", "1", "--from-solutions", str(tmp_path), "--seed", "3"], "--seed"),
                         (["figure", "1", "--curves-per-setting", "5"], "--from-solutions"),
                         (["figure", "1", "--from-solutions", str(tmp_path), "--curves-per-setting", "1"], "1")):
        res = runner.invoke(cli, args + ["--out", str(tmp_path / "o")])
        assert res.exit_code == 2, (args, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], (args, res.output)
        assert not (tmp_path / "o").exists()


def test_an_interrupted_curve_stage_keeps_every_finished_curve_and_the_rerun_computes_only_the_rest(tmp_path, monkeypatch):
    from localentropy.committee import pipeline as cp
    from localentropy.figures import compute_figure

    ds, spec = _planted_data(), _tiny_spec(K=3)
    real, calls = cp.committee_curve, []

    def interrupted(*args, **kw):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(cp, "committee_curve", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compute_figure(spec, tmp_path, jobs=1, data=ds)
    assert len(list((tmp_path / "curve").rglob("*.npz"))) == 3  # kept as each finished, not at the batch's end
    monkeypatch.setattr(cp, "committee_curve", real)
    counted = []
    monkeypatch.setattr(cp, "committee_curve", lambda *a, **k: counted.append(1) or real(*a, **k))
    fd = compute_figure(spec, tmp_path, jobs=1, data=ds)
    n = sum(len(s) for s in fd.solutions.values())
    assert len(counted) == 2 * n - 3  # both treatments of every solution, less the 3 kept
    monkeypatch.setattr(cp, "committee_curve", real)
    again = compute_figure(_tiny_spec(K=3), tmp_path / "fresh", jobs=1, data=ds)
    for lab in fd.solutions:
        for a, b in zip(fd.solutions[lab], again.solutions[lab]):
            assert all(np.array_equal(a.curves[t]["phi"], b.curves[t]["phi"], equal_nan=True) for t in ("hard", "soft"))


def test_a_figure_with_the_importance_sampler_draws_bp_beside_it_and_reports_both(tmp_path):
    """curve_methods=("is", "auto"): the sampler's curves are the figure's Φ_LE (with standard errors in the
    CSV), BP's are drawn and tested beside them, and the summary reports BP's bias per setting."""
    from types import SimpleNamespace

    import dataclasses

    from localentropy.bp.instances import planted_instance
    from localentropy.figures import compute_figure, write_outputs

    X, y, _ = planted_instance(7, 3, 100, 260)  # P = 60 < N: independent patterns, as the sampler needs
    ds = SimpleNamespace(X_train=X[:60], y_train=y[:60], X_test=X[60:], y_test=y[60:])
    spec = dataclasses.replace(_tiny_spec(K=3), curve_methods=("is", "auto"), sampled_deltas=(0.004, 0.02, 0.08))
    fd = compute_figure(spec, tmp_path / "cache", jobs=1, data=ds)
    assert "curve (is)" in fd.wall and "curve" in fd.wall
    for sols in fd.solutions.values():
        for s in sols:
            assert {"hard", "soft", "hard-is", "soft-is"} <= set(s.curves)
            assert len(s.curves["hard-is"]["phi_G"]) == 3 and np.all(s.curves["hard-is"]["phi_G_se"] > 0)
    write_outputs(fd, tmp_path / "out", "test", fd.wall)
    with open(tmp_path / "out" / "fig6.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    quantities = {r["quantity"] for r in rows}
    assert {"phi_le_hard", "phi_le_soft", "phi_le_hard_bp", "phi_le_soft_bp", "phi_le_hard_mean",
            "phi_le_hard_bp_mean"} <= quantities
    assert all(r["y_se"] and float(r["y_se"]) > 0 for r in rows if r["quantity"] == "phi_le_hard")
    assert all(r["y_se"] == "" for r in rows if r["quantity"] == "phi_le_hard_bp")
    text = (tmp_path / "out" / "fig6-summary.md").read_text()
    assert "importance sampling" in text and "The same claims with BP's Φ_LE" in text
    assert "### BP against importance sampling" in text and "| fast |" in text.split("### BP against")[1]
    # BP's curves are cached under the keys a BP-only figure uses: a BP-only run computes nothing new
    bp_only = compute_figure(dataclasses.replace(spec, curve_methods=("auto",)), tmp_path / "cache", jobs=1, data=ds)
    assert "curve" not in bp_only.wall


def test_a_rerun_says_what_it_reused_and_recomputes_a_corrupt_entry_set_aside(tmp_path):
    from localentropy.figures import compute_figure, write_outputs

    ds, spec = _planted_data(), _tiny_spec(K=3)
    fd = compute_figure(spec, tmp_path / "cache", jobs=1, data=ds)
    assert fd.reused["trainings"] == (0, 4, None) and fd.reused["local energies"][0] == 0
    write_outputs(fd, tmp_path / "a", "test", fd.wall)
    victim = next((tmp_path / "cache" / "energy").rglob("*.npz"))
    victim.write_bytes(victim.read_bytes()[:100])  # a truncated copy
    heard = []
    fd2 = compute_figure(spec, tmp_path / "cache", jobs=1, data=ds, notify=heard.append)
    n = sum(len(s) for s in fd2.solutions.values())
    said = {t.split(" reused")[0]: t for t in heard}
    assert said["cache: 4/4 trainings"].startswith("cache: 4/4 trainings reused (computed earlier in ")
    assert f"cache: {n - 1}/{n} local energies" in said
    spent = fd2.reused["trainings"][2]  # each restart's share of its training time, recorded with it
    assert 0 < spent <= fd.wall["train"]
    assert any(t.startswith(f"unreadable cache entry {victim}") for t in heard)
    assert (tmp_path / "cache" / "corrupt" / f"energy-{victim.name}").is_file() and victim.is_file()
    assert set(fd2.wall) == {"energy"}
    write_outputs(fd2, tmp_path / "b", "test", fd2.wall)
    assert (tmp_path / "b" / "fig6.csv").read_text() == (tmp_path / "a" / "fig6.csv").read_text()
    assert f"trainings 4/4 (computed earlier in {spent:.1f} s)" in (tmp_path / "b" / "fig6-summary.md").read_text()
