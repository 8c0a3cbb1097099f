"""`localentropy deep models`: every architecture with its parameter count and the published one."""

from click.testing import CliRunner

from localentropy.cli.deep_cmd import deep, model_table
from localentropy.deep.models import names


def test_deep_models_lists_every_architecture_with_published_counts():
    res = CliRunner().invoke(deep, ["models", "--sources"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for name in names():
        assert any(line.startswith(name + " ") for line in lines), name
    row = next(line for line in lines if line.startswith("resnet50 "))
    assert "25,557,032" in row and "25.56M (1000)" in row and "+0.00%" in row
    assert "Han et al. 2017" in res.output


def test_the_table_counts_match_the_published_ones_to_a_few_percent():
    rows = model_table()
    assert [r["name"] for r in rows] == names()
    for r in rows:
        if r["published"] is not None:
            assert abs(r["params_at_published"] / r["published"].params - 1) < 0.02, r["name"]
