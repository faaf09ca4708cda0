"""sluice.train.tuning without the runner: search-space validation, seeded search, pruning."""

from __future__ import annotations

import math

import pytest

from sluice.train.tuning import in_space, split_hyperparameters, tune, validate_search_space

from .ctr_data import make_ctr

SPACE = {"learning_rate": ("categorical", [3e-3, 1e-9]), "hidden": ("categorical", [[32], [64, 32]])}


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    return make_ctr(tmp_path_factory.mktemp("tune"), rows=20_000)


@pytest.mark.parametrize("space, message", [
    ({"lr": ("loguniform", 1e-4, 1e-2)}, "search_space['lr']: unknown kind 'loguniform'; expected one of float"),
    ({"lr": ("log_float", 0, 1e-2)}, "search_space['lr']: log_float needs low > 0"),
    ({"lr": ("float", 1.0, 0.1)}, "search_space['lr']: low 1.0 is above high 0.1"),
    ({"epochs": ("int", 1.5, 3)}, "search_space['epochs']: int needs whole-number bounds"),
    ({"hidden": ("categorical", [])}, "search_space['hidden']: expected ('categorical', [choice, ...])"),
    ({"hidden": "big"}, "search_space['hidden'] must be a tuple (kind, ...)"),
    ({}, "search_space must be a non-empty dict"),
])
def test_bad_search_space_names_the_entry(space, message):
    with pytest.raises(ValueError) as err:
        validate_search_space(space)
    assert message in str(err.value)


def test_split_and_in_space():
    assert split_hyperparameters({"learning_rate": 0.1, "epochs": 2, "hidden": [8]}) == (
        {"learning_rate": 0.1, "epochs": 2}, {"hidden": [8]})
    space = {"lr": ("log_float", 1e-4, 1e-2), "n": ("int", 1, 3), "h": ("categorical", [[8], [16, 8]])}
    assert in_space({"lr": 1e-3, "n": 2, "h": [16, 8]}, space)
    assert not in_space({"lr": 1e-1, "n": 2, "h": [16, 8]}, space)
    assert not in_space({"lr": 1e-3, "n": 2, "h": [4]}, space)
    assert not in_space({"lr": 1e-3, "n": 2}, space)


def test_seeded_search_with_a_bad_learning_rate_prunes_and_picks_a_good_one(ctr):
    train, eval_, specs, label = ctr
    seen = []
    kwargs = dict(model="mlp", search_space=SPACE, trials=4, base={"epochs": 1, "batch_size": 1024},
                  hparams={"embedding_dim": 8}, seed=1)
    result = tune(train, eval_, specs, label, "binary", on_trial=seen.append, **kwargs)
    assert [t.number for t in result.trials] == [0, 1, 2, 3] and seen == result.trials
    states = [t.state for t in result.trials]
    assert "pruned" in states and states[0] == "complete"
    # what pruned: the hopeless learning rate, once a good trial had finished
    assert all(t.params["learning_rate"] == 1e-9 for t in result.trials if t.state == "pruned")
    assert result.best_params["learning_rate"] == 3e-3 and in_space(result.best_params, SPACE)
    good = [t.value for t in result.trials if t.params["learning_rate"] == 3e-3]
    bad = [t.value for t in result.trials if t.params["learning_rate"] == 1e-9]
    assert min(good) > 0.6 and max(bad) < 0.56 and result.best_value == max(good)
    assert result.best_value == result.trials[result.best_trial].value
    again = tune(train, eval_, specs, label, "binary", **kwargs)  # the seeded sampler repeats itself
    assert [(t.params, t.state) for t in again.trials] == [(t.params, t.state) for t in result.trials]
    assert math.isclose(again.best_value, result.best_value, rel_tol=1e-6)


def test_no_pruning_completes_every_trial_and_unknown_metric_is_named(ctr):
    train, eval_, specs, label = ctr
    result = tune(train, eval_, specs, label, "binary", model="logistic_regression",
                  search_space={"learning_rate": ("log_float", 1e-3, 1e-2)}, trials=2, pruning=False,
                  base={"epochs": 1, "batch_size": 2048}, direction="minimize", metric="eval_loss")
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert result.best_value == min(t.value for t in result.trials)
    assert all(1e-3 <= t.params["learning_rate"] <= 1e-2 for t in result.trials)
    with pytest.raises(ValueError, match="metric 'eval_f1' is not reported by training; it reports .*eval_auc"):
        tune(train, eval_, specs, label, "binary", model="logistic_regression", metric="eval_f1",
             search_space={"learning_rate": ("log_float", 1e-3, 1e-2)}, trials=1, base={"epochs": 1})
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize', got 'up'"):
        tune(train, eval_, specs, label, "binary", model="mlp", search_space=SPACE, direction="up")
