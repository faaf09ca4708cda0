"""The web UI's app without a browser: security (token, read-only, path traversal), queries, layout."""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

from sluice.metadata import MetadataStore
from sluice.ui.app import create_app, is_loopback, open_store_readonly
from sluice.ui.files import OutsideRoot, SafeFiles
from sluice.ui.graph_layout import Node, graph_svg, layers
from sluice.ui.queries import RunFilter, list_runs, run_graph


@pytest.fixture
def site(tmp_path):
    """A store with one two-step run whose artifacts live under tmp/artifacts, a secret beside it."""
    root = tmp_path / "artifacts"
    (root / "a1").mkdir(parents=True)
    (root / "a1" / "rows.txt").write_text("1\n2\n")
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", root / "a1" / "link.txt")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "make.log").write_text("line 1\nline 2\n")
    store = MetadataStore.open(str(tmp_path / "meta.db"))
    run = store.create_run("demo", {"rows": 2})
    make = store.start_execution(run, "make", "Make", "fp1", {"rows": 2}, str(logs / "make.log"))
    data = store.add_artifact("RawData", "data", str(root / "a1"), {"summary": "2 rows"}, "sha", producer=make)
    store.finish_execution(make, "succeeded")
    use = store.start_execution(run, "use", "Use", "fp2", {}, str(tmp_path / "secret.txt"))
    store.record_event(use, data, "input", "data")
    outside = store.add_artifact("Model", "model", str(tmp_path), {}, "sha2", producer=use)
    store.finish_execution(use, "failed", error="boom")
    store.finish_run(run, "failed", error="use failed")
    return {"tmp": tmp_path, "store": store, "run": run, "data": data, "outside": outside, "make": make, "use": use,
            "root": str(root), "logs": str(logs)}


def client(site, **kw) -> TestClient:
    return TestClient(create_app(site["store"], artifact_root=site["root"], log_roots=[site["logs"]], **kw))


def test_pages_show_the_run_its_dag_and_its_failure(site):
    c = client(site)
    page = c.get("/")
    assert page.status_code == 200 and site["run"][:12] in page.text and "1 matching" in page.text
    run = c.get(f"/runs/{site['run'][:6]}")
    assert run.status_code == 200
    assert run.text.count('class="sl-node sl-node-') == 2 and 'data-state="failed"' in run.text
    assert 'data-from="%d" data-to="%d"' % (site["make"], site["use"]) in run.text
    assert "line 2" in run.text and "boom" in run.text and "use failed" in run.text
    assert c.get("/runs/nope").status_code == 404
    assert c.get(f"/runs/{site['run']}/steps/{site['make']}/log?lines=1").text == "line 2"


def test_files_outside_the_artifact_root_are_never_served(site):
    c = client(site)
    ok = c.get(f"/artifacts/{site['data']}/files/rows.txt")
    assert ok.status_code == 200 and ok.text == "1\n2\n"
    for path in ("%2e%2e/%2e%2e/secret.txt", "..%2F..%2Fsecret.txt", "link.txt", "%2Fetc%2Fpasswd"):
        r = c.get(f"/artifacts/{site['data']}/files/{path}")
        assert r.status_code == 403, path
        assert "top secret" not in r.text and "root:" not in r.text
    assert c.get(f"/artifacts/{site['data']}/files/link.txt").status_code == 403
    # An artifact whose recorded URI points outside the root: its page and files are refused.
    assert c.get(f"/artifacts/{site['outside']}/files/secret.txt").status_code == 403
    # A step log outside the log roots is not read either.
    r = c.get(f"/runs/{site['run']}/steps/{site['use']}/log")
    assert r.status_code == 403 and "top secret" not in r.text
    files = SafeFiles([site["root"]])
    with pytest.raises(OutsideRoot):
        files.resolve(site["root"], "../secret.txt")
    with pytest.raises(OutsideRoot):
        files.resolve("s3://bucket/x")


def test_read_only_and_token(site):
    db = site["tmp"] / "meta.db"
    before = db.read_bytes()
    c = client(site)
    for path in ("/", f"/runs/{site['run']}", f"/artifacts/{site['data']}", f"/lineage/{site['data']}", "/models"):
        assert c.get(path).status_code == 200, path
    assert c.post("/", data={"x": "1"}).status_code == 405
    assert c.delete(f"/runs/{site['run']}").status_code == 405
    assert db.read_bytes() == before
    with pytest.raises(FileNotFoundError):
        open_store_readonly(str(site["tmp"] / "missing.db"))
    assert not (site["tmp"] / "missing.db").exists()

    locked = client(site, token="s3cret")
    assert locked.get("/").status_code == 401
    assert locked.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert locked.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = locked.get("/models?token=s3cret", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/models"
    assert locked.get("/models").status_code == 200   # the cookie set by ?token= now authenticates
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_serve_refuses_a_public_address_without_a_token(site):
    from sluice.ui import serve

    with pytest.raises(ValueError, match="needs a token"):
        serve(str(site["tmp"] / "meta.db"), host="0.0.0.0", port=1)


def test_cli_refuses_a_missing_store_without_creating_it(tmp_path):
    from click.testing import CliRunner

    from sluice.cli import cli

    missing = tmp_path / "nothing.db"
    result = CliRunner().invoke(cli, ["ui", "--store", str(missing), "--port", "1"])
    assert result.exit_code == 1 and "no metadata store" in result.output
    assert not missing.exists()


def test_run_filters_and_paging(tmp_path):
    store = MetadataStore.open(str(tmp_path / "m.db"))
    ids = [store.create_run("a" if i % 2 else "b", {"i": i}) for i in range(7)]
    store.finish_run(ids[0], "succeeded")
    with store.engine.connect() as conn:
        page = list_runs(conn, RunFilter(), limit=3)
        assert page.total == 7 and [r.id for r in page.runs] == ids[::-1][:3]
        assert [r.id for r in list_runs(conn, RunFilter(), limit=3, offset=6).runs] == [ids[0]]
        assert list_runs(conn, RunFilter(pipeline="a"), limit=10).total == 3
        assert [r.id for r in list_runs(conn, RunFilter(status="succeeded"), limit=10).runs] == [ids[0]]
        assert [r.id for r in list_runs(conn, RunFilter(id_prefix=ids[3][:10]), limit=10).runs] == [ids[3]]
        assert list_runs(conn, RunFilter(id_prefix="%"), limit=10).total == 0
        assert run_graph(conn, ids[0]).executions == []


def test_layered_layout():
    pos = layers(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")])
    assert pos["a"][0] == 0 and pos["b"][0] == pos["c"][0] == 1 and pos["d"][0] == 2
    assert {pos["b"][1], pos["c"][1]} == {0, 1}
    svg = graph_svg([Node("a", "A<", "succeeded"), Node("b", "B", "cached", href="/x")], [("a", "b")])
    assert svg.count("<path class=\"sl-edge\"") == 1 and "A&lt;" in svg and '<a href="/x">' in svg
    tall = graph_svg([Node("a", "A"), Node("b", "B")], [("a", "b")], vertical=True)
    assert 'width="184"' in tall  # one column wide: 168 + 2 * 8


def test_statistics_of_a_span_compare_with_the_previous_span(tmp_path):
    from sluice.stats import DatasetStatistics, FeatureStatistics, StringStatistics, ValueCount, save_splits

    def stats(counts: dict[str, int]) -> DatasetStatistics:
        values = [ValueCount(v, c) for v, c in counts.items()]
        f = FeatureStatistics("city", "string", sum(counts.values()), 0,
                              string=StringStatistics(len(counts), values, values, 1, 1.0, 1, 0))
        return DatasetStatistics(sum(counts.values()), {"city": f}, "train")

    root = tmp_path / "artifacts"
    store = MetadataStore.open(str(tmp_path / "m.db"))
    ids = []
    for span, counts in (("20240101", {"a": 50, "b": 50}), ("20240102", {"a": 90, "b": 10})):
        folder = root / span
        save_splits({"train": stats(counts)}, folder)
        run = store.create_run("daily")
        ex = store.start_execution(run, "StatisticsGen", "StatisticsGen")
        ids.append(store.add_artifact("Statistics", "statistics", str(folder), {"span": span}, "x", producer=ex))
        store.finish_execution(ex, "succeeded")
        store.finish_run(run, "succeeded")
    c = TestClient(create_app(store, artifact_root=str(root)))
    page = c.get(f"/artifacts/{ids[1]}")
    assert f'href="/artifacts/{ids[1]}?against={ids[0]}"' in page.text and "span 20240101" in page.text
    assert "1 feature(s) drifted" not in page.text  # one split only: nothing to compare by default
    both = c.get(f"/artifacts/{ids[1]}?against={ids[0]}")
    assert both.status_code == 200
    assert f"#{ids[0]} train: 100 rows | 1 feature(s) drifted" in both.text and "0.4 L∞" in both.text
    assert c.get(f"/artifacts/{ids[1]}?left=nope").status_code == 404
