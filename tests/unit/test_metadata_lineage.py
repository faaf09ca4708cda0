"""MetadataStore: lineage, the model registry (versions, aliases) and garbage collection.

Runs on a SQLite file, and on every PostgreSQL URL in SLUICE_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest


def _exec(store, run, step, inputs, outputs, cached=None):
    """Run one step: record ``inputs`` {key: id}; add new ``outputs`` (types) or reuse ``cached`` ones."""
    ex = store.start_execution(run, step, step.title(), f"fp-{step}", {}, None)
    for key, aid in inputs.items():
        store.record_event(ex, aid, "input", key)
    if cached is not None:
        src_exec, reused = cached
        for key, aid in reused.items():
            store.record_event(ex, aid, "output", key)
        store.finish_execution(ex, "cached", cached_from=src_exec)
        return ex, dict(reused)
    out = {key: store.add_artifact(typ, key, f"/a/{run[:6]}/{step}/{key}", {}, None, producer=ex) for key, typ in outputs.items()}
    store.finish_execution(ex, "succeeded")
    return ex, out


def _pipeline(store, name="ctr", reuse_trainer=None):
    """data -> stats; data -> transform -> model -> pushed. Returns (run id, {step: (exec, outputs)})."""
    run = store.create_run(name, {}, "local")
    s = {}
    s["gen"] = _exec(store, run, "gen", {}, {"examples": "Examples"})
    data = s["gen"][1]["examples"]
    s["stats"] = _exec(store, run, "stats", {"examples": data}, {"statistics": "Statistics"})
    s["transform"] = _exec(store, run, "transform", {"examples": data},
                           {"transformed": "Examples", "graph": "TransformGraph"})
    t = s["transform"][1]
    s["trainer"] = _exec(store, run, "trainer", {"examples": t["transformed"], "graph": t["graph"]},
                         {"model": "Model"}, cached=reuse_trainer)
    s["pusher"] = _exec(store, run, "pusher", {"model": s["trainer"][1]["model"]}, {"pushed": "PushedModel"})
    store.finish_run(run, "succeeded")
    return run, s


def _art(steps, step, key):
    return steps[step][1][key]


# -- lineage --------------------------------------------------------------------------------------


def test_lineage_up_from_pushed_model(store):
    _, s = _pipeline(store)
    graph = store.lineage(_art(s, "pusher", "pushed"), direction="up")
    assert set(graph.artifacts) == {_art(s, "pusher", "pushed"), _art(s, "trainer", "model"),
                                    _art(s, "transform", "transformed"), _art(s, "transform", "graph"),
                                    _art(s, "gen", "examples")}
    assert set(graph.executions) == {s[k][0] for k in ("pusher", "trainer", "transform", "gen")}
    assert [a.id for a in graph.of_type("Examples")] == [_art(s, "gen", "examples"), _art(s, "transform", "transformed")]
    edges = {(e.kind, e.execution_id, e.artifact_id, e.key) for e in graph.edges}
    assert ("input", s["trainer"][0], _art(s, "transform", "graph"), "graph") in edges
    assert ("output", s["gen"][0], _art(s, "gen", "examples"), "examples") in edges
    assert len(edges) == len(graph.edges) == 9  # 5 outputs + 4 inputs, no duplicates
    data = json.loads(json.dumps(graph.to_dict()))
    assert data["root"] == _art(s, "pusher", "pushed") and len(data["artifacts"]) == 5

    one = store.lineage(_art(s, "pusher", "pushed"), "up", depth=1)
    assert set(one.artifacts) == {_art(s, "pusher", "pushed"), _art(s, "trainer", "model")}
    assert set(one.executions) == {s["pusher"][0]}


def test_lineage_down_and_both(store):
    _, s = _pipeline(store)
    down = store.lineage(_art(s, "gen", "examples"), direction="down")
    assert set(down.executions) == {s[k][0] for k in ("stats", "transform", "trainer", "pusher")}
    assert {a.type for a in down.artifacts.values()} == {"Examples", "Statistics", "TransformGraph", "Model", "PushedModel"}
    assert len(down.artifacts) == 6

    stats_down = store.lineage(_art(s, "stats", "statistics"), "down")
    assert set(stats_down.artifacts) == {_art(s, "stats", "statistics")} and not stats_down.executions

    both = store.lineage(_art(s, "trainer", "model"), "both")
    assert set(both.executions) == {s[k][0] for k in ("gen", "transform", "trainer", "pusher")}
    assert _art(s, "stats", "statistics") not in both.artifacts  # a sibling, neither up nor down

    with pytest.raises(KeyError):
        store.lineage(10**9)
    with pytest.raises(ValueError):
        store.lineage(_art(s, "gen", "examples"), "sideways")


def test_lineage_through_cached_execution(store):
    _, first = _pipeline(store)
    _, second = _pipeline(store, reuse_trainer=(first["trainer"][0], first["trainer"][1]))
    model = _art(first, "trainer", "model")
    assert _art(second, "trainer", "model") == model
    # Up follows the producer: the model was made from the first run's data only.
    up = store.lineage(model, "up")
    assert [a.id for a in up.of_type("Examples")][0] == _art(first, "gen", "examples")
    assert _art(second, "gen", "examples") not in up.artifacts
    # Down from the second run's data reaches the reused model through the cached execution.
    down = store.lineage(_art(second, "gen", "examples"), "down")
    assert model in down.artifacts and second["trainer"][0] in down.executions


# -- model registry -----------------------------------------------------------------------------


def test_model_versions_and_alias_history(store):
    run, s = _pipeline(store)
    pushed, model = _art(s, "pusher", "pushed"), _art(s, "trainer", "model")
    versions = [store.register_model_version("ctr", f"/serving/ctr/{i}", pushed, model, run) for i in (1, 2, 3)]
    assert versions == [1, 2, 3]
    assert store.register_model_version("other", "/serving/other/1", None, None, None) == 1

    store.set_alias("ctr", "production", 1, note="first")
    store.set_alias("ctr", "staging", 2)
    store.set_alias("ctr", "production", 3, note="better AUC")  # moves
    assert store.remove_alias("ctr", "staging", note="done") == 2
    assert store.remove_alias("ctr", "staging") is None  # not set: nothing logged

    history = [(h.action, h.alias, h.version, h.note) for h in store.alias_history("ctr")]
    assert history == [("set", "production", 1, "first"), ("set", "staging", 2, ""),
                       ("set", "production", 3, "better AUC"), ("removed", "staging", 2, "done")]
    assert [h.version for h in store.alias_history("ctr", "production")] == [1, 3]
    assert store.alias_history("other") == []

    listed = store.model_versions("ctr")
    assert [(v.version, v.aliases) for v in listed] == [(1, ()), (2, ()), (3, ("production",))]
    assert listed[0].artifact_id == pushed and listed[0].source_model_id == model and listed[0].run_id == run
    assert [v.name for v in store.model_versions()] == ["ctr"] * 3 + ["other"]
    assert store.model_version("ctr", "production").uri == "/serving/ctr/3"
    assert store.model_version("ctr", "2").version == 2
    with pytest.raises(KeyError):
        store.model_version("ctr", "staging")
    with pytest.raises(KeyError):
        store.set_alias("ctr", "production", 9)
    with pytest.raises(ValueError):
        store.set_alias("ctr", "7", 1)


def test_register_model_version_concurrently(store):
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: store.register_model_version("m", f"/m/{i}", None, None, None), range(40)))
    assert sorted(got) == list(range(1, 41))
    assert [v.version for v in store.model_versions("m")] == list(range(1, 41))


# -- retention and garbage collection -------------------------------------------------------------


def test_gc_never_collects_what_a_model_or_kept_run_needs(store):
    runs, steps = zip(*[_pipeline(store) for _ in range(3)])
    # The kept (newest) run reuses run 2's model from the cache.
    run4, s4 = _pipeline(store, reuse_trainer=(steps[1]["trainer"][0], steps[1]["trainer"][1]))
    other_run, _ = _pipeline(store, name="other")  # retention is per pipeline: kept
    store.log_metric(runs[2], None, "loss", 0.5, 0)
    s1, s2, s3 = steps
    store.register_model_version("ctr", "/serving/1", _art(s1, "pusher", "pushed"), _art(s1, "trainer", "model"), runs[0])

    assert store.expired_runs(keep_last_runs=1) == list(runs)
    candidates = {a.id for a in store.gc_candidates(keep_last_runs=1)}
    every = lambda s: {aid for _, out in s.values() for aid in out.values()}  # noqa: E731
    expected = {_art(s1, "stats", "statistics")}  # run 1: all else is the registered model's lineage
    expected |= {_art(s2, "stats", "statistics"), _art(s2, "pusher", "pushed")}  # run 2: its model is in use
    expected |= every(s3)  # run 3: nothing depends on it
    assert candidates == expected
    assert not candidates & every(s4)
    assert store.gc_candidates(keep_last_runs=4) == []
    assert store.gc_candidates(keep_last_runs=1, older_than_days=1) == []  # all runs are recent

    # A running run is kept and does not push a finished run out of the window.
    store.create_run("ctr", {}, "local")
    assert {a.id for a in store.gc_candidates(keep_last_runs=1)} == expected

    with pytest.raises(ValueError, match="registered model"):
        store.delete_artifact_records([_art(s1, "trainer", "model")])
    assert store.delete_artifact_records(sorted(candidates)) == len(candidates)
    assert store.gc_candidates(keep_last_runs=1) == []
    # Run 3 has nothing left and goes; run 1 is a model's run, run 2 still produced a live model.
    assert store.delete_runs(list(runs)) == [runs[2]]
    with pytest.raises(KeyError):
        store.run(runs[2])
    assert store.metrics(runs[2]) == []
    up = store.lineage(_art(s4, "pusher", "pushed"), "up")  # kept run's lineage is intact
    assert _art(s2, "gen", "examples") in up.artifacts
    assert store.run(other_run).status == "succeeded"
