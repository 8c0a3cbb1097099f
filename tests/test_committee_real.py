"""The paper's SGD-fast setting on the real Dress/Coat subset (slow: minutes on a shared CPU)."""

import numpy as np
import pytest

from localentropy.committee.evaluate import solution_errors
from localentropy.committee.presets import get_preset
from localentropy.committee.train import train_committee


@pytest.mark.slow
def test_sgd_fast_finds_zero_training_error_solutions_on_the_dresscoat_subset():
    from localentropy.data import load_dresscoat

    ds = load_dresscoat()
    res = train_committee(ds.X_train, ds.y_train, get_preset("sgd-fast", max_epochs=3000), restarts=2, seed=0)
    assert res.status == ["converged", "converged"], res.epochs
    assert np.all(solution_errors(res.weights, ds.X_train, ds.y_train) == 0)
    # a solution of 500 patterns generalises well above chance on the held-out images
    assert np.all(solution_errors(res.weights, ds.X_test, ds.y_test) < 0.3)
