"""The web UI in a real headless Chromium (Debian's, via Playwright) over real pipeline runs.

A module fixture runs the CTR example twice (epochs 2, then 3: the second run reuses six steps
from the cache) and starts `sluice ui` as a subprocess on 127.0.0.1. Each test opens pages,
checks what they show against the store and the artifact files, checks that the browser
console has no errors, and saves screenshots under its tmp_path.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")

REPO = Path(__file__).resolve().parents[2]
ROWS = 20_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STEPS = ["ctr_data_generator", "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
         "Trainer", "Evaluator", "Pusher"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200")
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two runs of the CTR example in a fresh working directory, and `sluice ui` serving them."""
    work = tmp_path_factory.mktemp("ui-site")
    for epochs in (2, 3):
        proc = subprocess.run([sys.executable, "-m", "sluice.cli", "run", str(REPO / "examples/ctr/pipeline.py"),
                               "-p", f"rows={ROWS}", "-p", f"epochs={epochs}", "-p", f"serving_dir={work / 'serving'}"],
                              cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    from sluice.metadata import MetadataStore

    store = MetadataStore.open(str(work / ".sluice" / "metadata.db"))
    second, first = store.runs(limit=2)
    port = _free_port()
    log = open(work / "ui.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "sluice.cli", "ui", "--port", str(port)], cwd=work, env=_env(),
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, (work / "ui.log").read_text()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        assert time.monotonic() < deadline, "sluice ui did not start:\n" + (work / "ui.log").read_text()
        time.sleep(0.1)
    yield {"url": url, "work": work, "store": store, "first": first, "second": second}
    server.terminate()
    server.wait(timeout=10)
    log.close()
    store.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path):
    """A fresh page that records console errors; the test fails if any appear."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # A request the browser itself cancelled (a navigation started while the favicon was still
    # loading) is not the server failing; anything else is.
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})")
          if r.failure != "net::ERR_ABORTED" else None)
    pg.shot = lambda name: pg.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert errors == [], errors
    print(f"screenshots in {tmp_path}")


def _go(page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    page.wait_for_load_state("networkidle")


def test_runs_page_lists_both_runs_and_compares_them(site, page):
    _go(page, site["url"] + "/")
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == 2
    assert page.locator("#runs-table tbody tr").first.get_attribute("data-run") == site["second"].id
    for run in (site["first"], site["second"]):
        row = page.locator(f'tr[data-run="{run.id}"]')
        assert row.get_attribute("data-status") == "succeeded"
        assert "succeeded" in row.inner_text() and f"{run.user}@{run.host}" in row.inner_text()
    ctr = page.locator('#pipelines-table tr[data-pipeline="ctr"]')
    assert ctr.locator("td").nth(1).inner_text() == "2" and site["second"].id[:12] in ctr.inner_text()
    page.shot("runs")
    # Filters are SQL: no failed runs.
    _go(page, site["url"] + "/?status=failed")
    assert "no runs match" in page.locator("#runs-table").inner_text()
    # Select both runs and open the compare view.
    _go(page, site["url"] + "/")
    page.check(f'input[value="{site["first"].id}"]')
    page.check(f'input[value="{site["second"].id}"]')
    page.click("#compare-button")
    page.wait_for_load_state("networkidle")
    assert page.url.startswith(site["url"] + "/compare?")
    epochs = page.locator('#compare-table tr[data-key="epochs"]')
    assert "sl-diff" in epochs.get_attribute("class")
    assert sorted(epochs.locator("td").all_inner_texts()) == ["2", "3"]
    rows_param = page.locator('#compare-table tr[data-key="rows"]')
    assert "sl-diff" not in (rows_param.get_attribute("class") or "")
    assert rows_param.locator("td").all_inner_texts() == [str(ROWS), str(ROWS)]
    assert "sl-diff" in page.locator('#compare-table tr[data-key="Trainer.epochs"]').get_attribute("class")
    # Final metrics equal the store's last points.
    auc = page.locator('#compare-table tr[data-key="eval_auc (last)"] td').all_inner_texts()
    ids = [a.inner_text() for a in page.locator("#compare-table thead a").all()]
    for run_prefix, shown in zip(ids, auc):
        run = site["store"].run(run_prefix)
        last = [m.value for m in site["store"].metrics(run.id, "eval_auc")][-1]
        assert float(shown) == pytest.approx(last, abs=1e-4)
    assert page.locator(".sl-plot[data-rendered='1']").count() >= 4
    page.shot("compare")


def test_run_page_draws_the_dag_with_states_params_logs_and_outputs(site, page):
    first, second = site["first"], site["second"]
    _go(page, f"{site['url']}/runs/{second.id}")
    nodes = page.locator("#dag g.sl-node")
    assert nodes.count() == len(STEPS)
    states = {n.locator("text").first.text_content(): n.get_attribute("data-state") for n in nodes.all()}
    assert states == {**dict.fromkeys(STEPS[:6], "cached"), **dict.fromkeys(STEPS[6:], "succeeded")}
    assert page.locator("#dag path.sl-edge").count() >= len(STEPS) - 1
    trainer = page.locator('section[data-step="Trainer"]')
    assert '"epochs": 3' in trainer.locator("pre.sl-params").text_content()
    log = trainer.locator("pre.sl-log").text_content()
    assert "epoch 3/3" in log and "eval_auc=" in log
    assert trainer.locator(".sl-outputs a", has_text="Model").count() == 1
    page.shot("run")
    # A node links to its step; the first run made everything itself.
    page.locator('#dag g.sl-node[data-state="succeeded"]').first.click()
    assert "#step-" in page.url
    _go(page, f"{site['url']}/runs/{first.id}")
    assert {n.get_attribute("data-state") for n in page.locator("#dag g.sl-node").all()} == {"succeeded"}


def test_statistics_page_shows_splits_side_by_side_with_drift_schema_and_anomalies(site, page):
    from sluice.render.stats import DEFAULT_HIGHLIGHT, feature_distances
    from sluice.stats import Anomalies, Schema, load_splits

    store, run = site["store"], site["first"]
    stats_art = store.artifacts("Statistics", run_id=run.id)[0]
    _go(page, f"{site['url']}/runs/{run.id}")
    page.click(f'a.sl-explore[href^="/artifacts/{stats_art.id}"]')
    page.wait_for_load_state("networkidle")
    splits = load_splits(stats_art.uri)
    schema = Schema.load(store.artifacts("Schema", run_id=run.id)[0].uri)
    anomalies = Anomalies.load(store.artifacts("Anomalies", run_id=run.id)[0].uri)
    table = page.locator("table.sl-stats")
    assert f"train: {splits['train'].num_rows} rows" in table.locator("caption").inner_text()
    assert table.locator("tbody tr").count() == len(splits["train"].features)
    expected = {name for name, d in feature_distances(splits["train"], splits["eval"]).items()
                if d.value > (schema[name].drift_threshold or DEFAULT_HIGHLIGHT)}
    shown = {r.locator(".sl-feature").inner_text() for r in table.locator("tbody tr.sl-drift").all()}
    assert shown == expected and len(expected) > 0
    assert f"{len(expected)} feature(s) drifted" in table.locator("caption").inner_text()
    assert table.locator("svg.sl-hist").count() >= 2 * 13 and table.locator("svg.sl-bars").count() >= 2 * 26
    label = table.locator("tbody tr", has=page.locator(".sl-feature", has_text="label"))
    assert "int required" in label.inner_text() and f"count {splits['eval']['label'].count}" in label.inner_text()
    warned = anomalies.warnings[0]
    row = table.locator("tbody tr", has=page.locator(".sl-feature", has_text=warned.feature)).first
    assert warned.kind in row.inner_text()
    assert page.locator("table.sl-anomalies tbody tr").count() == len(anomalies)
    page.shot("statistics")
    # Swap sides with the form: eval on the left, no right side.
    page.select_option("select[name=left]", "eval")
    page.select_option("select[name=right]", "")
    page.click("form.sl-controls button")
    page.wait_for_load_state("networkidle")
    assert f"eval: {splits['eval'].num_rows} rows" in page.locator("table.sl-stats caption").inner_text()
    assert page.locator("table.sl-stats th", has_text="distance").count() == 0


def test_training_curves_overlay_both_runs_with_the_stored_values(site, page):
    first, second = site["first"], site["second"]
    _go(page, f"{site['url']}/runs/{first.id}")
    page.click("#training-link")
    page.wait_for_load_state("networkidle")
    assert page.locator(".sl-plot[data-rendered='1']").count() == len({m.name for m in site["store"].metrics(first.id)})
    _go(page, f"{site['url']}/training?run={first.id}&run={second.id}")
    plot = page.locator('.sl-plot[data-metric="train_loss"]')
    traces = plot.evaluate("el => el.data.map(t => ({name: t.name, x: t.x, y: t.y}))")
    assert len(traces) == 2
    for trace, run in zip(traces, (first, second)):
        stored = site["store"].metrics(run.id, "train_loss")
        assert trace["name"].startswith(run.id[:8])
        assert trace["x"] == [m.step for m in stored]
        assert trace["y"] == pytest.approx([m.value for m in stored])
    assert len(traces[0]["x"]) == 2 and len(traces[1]["x"]) == 3
    assert plot.locator(".main-svg").count() >= 1  # plotly drew it
    page.shot("training")


def test_lineage_evaluation_transform_and_models_pages(site, page):
    store, second = site["store"], site["second"]
    pushed = store.artifacts("PushedModel", run_id=second.id)[0]
    _go(page, f"{site['url']}/artifacts/{pushed.id}")
    page.click("#lineage-link")
    page.wait_for_load_state("networkidle")
    graph = store.lineage(pushed.id, "both", 20)
    nodes = page.locator("#lineage-graph g.sl-node")
    assert nodes.count() == len(graph.artifacts) + len(graph.executions)
    types = set(page.locator("#lineage-artifacts tbody tr").evaluate_all("rs => rs.map(r => r.dataset.type)"))
    assert {"RawData", "Examples", "TransformGraph", "Model", "PushedModel"} <= types
    assert page.locator('#lineage-graph g.sl-node[data-state="root"]').count() == 1
    page.shot("lineage")

    evaluation = store.artifacts("ModelEvaluation", run_id=second.id)[0]
    _go(page, f"{site['url']}/artifacts/{evaluation.id}")
    blessing = json.loads((Path(store.artifacts("Blessing", run_id=second.id)[0].uri) / "blessing.json").read_text())
    panel = page.locator(".sl-blessing")
    assert ("BLESSED" if blessing["blessed"] else "NOT BLESSED") in panel.inner_text()
    assert all(r in panel.inner_text() for r in blessing["reasons"])
    overall = page.locator("table.sl-eval-overall")
    assert "baseline" in overall.inner_text()  # the second run compares with the first blessed model
    auc_row = overall.locator("tr", has=page.locator("td", has_text="auc")).first
    assert f"{evaluation.properties['metrics']['auc']:.4g}" in auc_row.inner_text()
    assert page.locator("table.sl-eval-slices tbody tr").count() >= 1
    page.shot("evaluation")

    graph_art = store.artifacts("TransformGraph", run_id=second.id)[0]
    spec = json.loads((Path(graph_art.uri) / "transform.json").read_text())
    _go(page, f"{site['url']}/artifacts/{graph_art.id}")
    assert page.locator("table.sl-transform-features tbody tr").count() == len(spec["features"])
    vocab = next(v for k, v in spec["analyzer_results"].items() if k.startswith("vocabulary(C1,"))
    c1 = page.locator("table.sl-vocabularies tbody tr", has=page.locator("td", has_text="C1")).first
    assert c1.locator("td").nth(1).inner_text() == str(len(vocab["values"]))
    assert vocab["values"][0] in c1.inner_text()
    # a row per feature using bucket boundaries: I1_q..I13_q, and the two crosses of I7_q / I8_q
    bucketed = [f["name"] for f in spec["features"] if '"boundaries"' in json.dumps(f["expr"])]
    assert len(bucketed) == 15 and page.locator("table.sl-buckets tbody tr").count() == 15
    page.shot("transform")

    _go(page, f"{site['url']}/models")
    versions = store.model_versions("ctr")
    assert [v.version for v in versions] == [1, 2]
    rows = page.locator("#model-versions tbody tr")
    assert rows.count() == 2 and rows.first.get_attribute("data-version") == "2"
    assert versions[1].uri in rows.first.inner_text()
    page.shot("models")


def test_a_running_run_refreshes_and_tails_its_log_live(site, page):
    store, work = site["store"], site["work"]
    log_path = work / ".sluice" / "logs" / "live" / "slow.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("starting\n")
    run = store.create_run("live_demo", {"n": 1})
    ex = store.start_execution(run, "slow", "Slow", None, {}, str(log_path))
    try:
        _go(page, f"{site['url']}/runs/{run}")
        assert page.locator("body").get_attribute("data-refresh") == "4"
        assert page.locator('#dag g.sl-node[data-state="running"]').count() == 1
        with log_path.open("a") as f:
            f.write("epoch 7 done\n")
        page.wait_for_function("() => document.querySelector('pre[data-live-log]').textContent.includes('epoch 7')",
                               timeout=10_000)
        page.shot("live")
    finally:
        store.finish_execution(ex, "succeeded")
        store.finish_run(run, "succeeded")
