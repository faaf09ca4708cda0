"""The pipeline DSL: wiring, custom components, validation errors, fingerprints."""

from __future__ import annotations

import pytest

from sluice import Input, OptionalInput, Output, Pipeline, component
from sluice.dsl import Examples, Model, PipelineError, RawData, Statistics
from sluice.dsl.component import Channel, canonical
from sluice.runner.fingerprint import step_fingerprint


@component
def produce(data: Output[RawData], rows: int = 10) -> None:
    """Makes raw data."""


@component
def consume(data: Input[RawData], stats: Output[Statistics], extra: OptionalInput[Model] = None,
            scale: float = 1.0) -> None:
    """Uses raw data."""


@component
def needs_examples(examples: Input[Examples], out: Output[Statistics]) -> None:
    """Wants Examples."""


def test_custom_component_declares_typed_inputs_outputs_and_params():
    p = produce(rows=5)
    assert p.name == "produce"
    assert p.params == {"rows": 5}
    assert type(p).OUTPUTS == {"data": RawData}
    c = consume(data=p.outputs.data, scale=2.0)
    assert c.inputs["data"].producer is p
    assert c.params == {"scale": 2.0}
    assert [u.name for u in c.upstream] == ["produce"]
    assert "Uses raw data" in type(c).__doc__


def test_unknown_argument_and_missing_output_are_clear_errors():
    with pytest.raises(TypeError, match="unexpected argument 'rowz'.*rows"):
        produce(rowz=5)
    with pytest.raises(AttributeError, match="no output 'examples'; its outputs are: data"):
        produce().outputs.examples


def test_pipeline_orders_steps_and_rejects_type_mismatch():
    p = produce()
    c = consume(data=p.outputs.data)
    pipe = Pipeline("ok", [c, p])  # listed out of order on purpose
    assert [s.name for s in pipe.order] == ["produce", "consume"]
    with pytest.raises(PipelineError, match="expects Examples, but produce.outputs.data is RawData"):
        Pipeline("bad", [p, needs_examples(examples=p.outputs.data)])


def test_pipeline_rejects_missing_inputs_foreign_steps_duplicates_and_cycles():
    p = produce()
    with pytest.raises(PipelineError, match="needs input 'data'"):
        Pipeline("x", [consume()])
    with pytest.raises(PipelineError, match="not in pipeline 'x'; add it"):
        Pipeline("x", [consume(data=p.outputs.data)])
    with pytest.raises(PipelineError, match="two steps are named 'produce'"):
        Pipeline("x", [produce(), produce()])
    a = consume(data=p.outputs.data, name="a")
    b = consume(data=p.outputs.data, name="b")
    # Rewire into a cycle a -> b -> a (the constructors cannot make one; hand edits can).
    a.inputs["data"] = Channel(b, "stats", RawData)
    b.inputs["data"] = Channel(a, "stats", RawData)
    with pytest.raises(PipelineError, match="cycle among steps: a -> b"):
        Pipeline("x", [p, a, b])


def test_unknown_input_key_is_reported():
    p = produce()
    c = consume(data=p.outputs.data)
    c.inputs["bogus"] = p.outputs.data
    with pytest.raises(PipelineError, match="has no input 'bogus'; its inputs are: data, extra"):
        Pipeline("x", [p, c])


def test_fingerprint_depends_on_params_inputs_and_code():
    a, b = RawData("/a", fingerprint="f1"), RawData("/b", fingerprint="f2")
    c1 = consume(data=produce().outputs.data, scale=1.0)
    c2 = consume(data=produce().outputs.data, scale=2.0)
    assert step_fingerprint(c1, {"data": a}) == step_fingerprint(c1, {"data": RawData("/other", fingerprint="f1")})
    assert step_fingerprint(c1, {"data": a}) != step_fingerprint(c1, {"data": b})
    assert step_fingerprint(c1, {"data": a}) != step_fingerprint(c2, {"data": a})
    assert step_fingerprint(c1, {"data": a}, external="x") != step_fingerprint(c1, {"data": a}, external="y")


def test_canonical_params_are_order_independent_and_fingerprint_functions():
    assert canonical({"b": 1, "a": [1, 2]}) == canonical({"a": [1, 2], "b": 1})

    def fn(x):
        return x + 1

    assert canonical(fn)["callable"].endswith("fn")
    assert len(canonical(fn)["source_sha256"]) == 16
    with pytest.raises(TypeError, match="cannot be fingerprinted"):
        canonical(object())
