"""The dashboard's views, used as a person would, in Chromium against the real service with keys required.
Every test also checks (in the `page` fixture) that no console error appeared and no request left 127.0.0.1.
Screenshots of each view land in var/screenshots/."""
import json
import re
import time

import httpx
import pytest

from tests.integration.processes import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LIVE_MOONS = {"model": {"layers": [16, 16, 1]}, "data": {"kind": "moons", "n_samples": 100, "noise": 0.1},
              "loss": "hinge", "l2": 0.0001, "optimizer": {"name": "sgd", "lr": 0.5}, "steps": 20000}


def wait_for_hash(p, pattern):
    """Views are hash routes: a change of view is not a page load."""
    p.wait_for_function("(pattern) => new RegExp(pattern).test(location.hash)", arg=pattern)


def test_submit_from_the_page_and_watch_the_curve_grow_live(page):
    p = page.page
    page.goto("/new")
    p.fill("textarea.spec", json.dumps(LIVE_MOONS))
    p.click("form.new-run button[type=submit]")
    wait_for_hash(p, r"^#/runs/[0-9a-f-]{36}$")
    p.evaluate("window.notReloaded = true")
    loss = p.locator("figure.chart").first
    seen = set()  # (points drawn) while the page says the run is running
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = p.locator(".status").first.text_content()
        points = int(loss.get_attribute("data-points") or 0)
        if status == "running" and points:
            seen.add(points)
        if status == "succeeded":
            break
        p.wait_for_timeout(100)
    assert len(seen) >= 2, f"the curve did not grow while running: {sorted(seen)}"
    assert p.locator(".live-mode").text_content() in ("", "● live")  # followed by Server-Sent Events
    assert p.evaluate("window.notReloaded") is True
    p.wait_for_function("() => document.querySelector('figure.chart').dataset.points === '2000'")
    # the moons boundary: the model's classes as cells, the 100 samples on top
    p.wait_for_selector(".boundary-svg circle")
    assert p.locator(".boundary-svg .points circle").count() == 100
    assert p.locator(".boundary-svg rect[fill]").count() > 2
    p.locator("figure.chart").first.hover()
    assert "loss" in p.locator(".chart-tip").first.text_content()
    page.screenshot("run")


def test_the_runs_table_compares_two_runs_and_back_and_forward_work(page, service):
    first = service.submit({"spec": {"steps": 30, "optimizer": {"lr": 0.05}}, "experiment": "lr-pair"})
    second = service.submit({"spec": {"steps": 30, "optimizer": {"lr": 0.2}}, "experiment": "lr-pair"})
    service.finished(first, second)
    p = page.page
    page.goto("/runs")
    p.fill("input[aria-label='API filter']", "optimizer.lr=0.05")
    p.press("input[aria-label='API filter']", "Enter")
    p.wait_for_function("(id) => [...document.querySelectorAll('tr.run')].map((tr) => tr.dataset.id).join() === id", arg=first)
    assert "filter=optimizer.lr%3D0.05" in p.evaluate("location.hash")  # the filter is part of the view's URL
    p.fill("input[aria-label='API filter']", "")
    p.press("input[aria-label='API filter']", "Enter")
    p.wait_for_selector(f"tr[data-id='{second}']")
    p.select_option("select[aria-label='experiment']", "lr-pair")
    p.wait_for_function("() => document.querySelectorAll('tr.run').length === 2")
    for job_id in (first, second):
        p.check(f"tr[data-id='{job_id}'] input[type=checkbox]")
    page.screenshot("runs")
    p.click("text=Compare selected (2)")
    wait_for_hash(p, r"^#/compare\?ids=")
    p.wait_for_selector("table.compare")
    assert p.locator("figure.chart").first.get_attribute("data-points") == "60"
    assert p.locator("table.compare").first.locator("th", has_text="optimizer.lr").count() == 1
    assert p.locator("table.compare").first.locator("td", has_text="0.05").count() == 1
    page.screenshot("compare")
    p.go_back()
    p.wait_for_selector("table.runs")
    p.go_forward()
    p.wait_for_selector("table.compare")
    p.locator(f"table.compare a[href='#/runs/{first}']").first.click()
    wait_for_hash(p, f"^#/runs/{first}$")
    p.wait_for_selector(".kv")
    # re-run it (POST /jobs/{id}/rerun), then delete the copy (DELETE /jobs/{id}, after a confirm)
    p.click("button:has-text('Re-run')")
    p.wait_for_function("(first) => /^#\\/runs\\/[0-9a-f-]{36}$/.test(location.hash) && !location.hash.includes(first)", arg=first)
    copy = p.evaluate("location.hash").split("/")[-1]
    p.wait_for_selector(".status-succeeded", timeout=60_000)
    p.once("dialog", lambda dialog: dialog.accept())
    p.click("button:has-text('Delete')")
    wait_for_hash(p, "^#/runs$")
    p.wait_for_selector(f"tr[data-id='{first}']")
    assert p.locator(f"tr[data-id='{copy}']").count() == 0
    assert service.http.get(f"/jobs/{copy}").status_code == 404


def test_without_keys_the_page_cancels_reruns_and_deletes(open_page, open_service):
    """The embedded default (no keys) refuses a POST or DELETE with neither a JSON body nor X-Requested-With
    (a cross-site form could send it); the page's own bodiless DELETE must still go through."""
    long_run = {"model": {"layers": [8, 1]}, "steps": 100000, "record": {"graph_svg": False}}
    first = open_service.submit(long_run)
    p = open_page.page
    open_page.goto(f"/runs/{first}")
    p.click("button:has-text('Cancel')")  # POST /jobs/{id}/cancel
    p.wait_for_selector(".status-cancelled", timeout=60_000)
    p.click("button:has-text('Re-run')")  # POST /jobs/{id}/rerun
    p.wait_for_function("(first) => /^#\\/runs\\/[0-9a-f-]{36}$/.test(location.hash) && !location.hash.includes(first)",
                        arg=first)
    copy = p.evaluate("location.hash").split("/")[-1]
    p.wait_for_selector(".kv")
    p.click("button:has-text('Cancel')")
    p.wait_for_selector(".status-cancelled", timeout=60_000)
    p.once("dialog", lambda dialog: dialog.accept())
    p.click("button:has-text('Delete')")  # DELETE /jobs/{id}: no body
    wait_for_hash(p, "^#/runs$")
    assert open_service.http.get(f"/jobs/{copy}").status_code == 404
    assert open_service.http.get(f"/jobs/{first}").json()["status"] == "cancelled"
    assert not p.locator("#banner:not([hidden])").count()


def test_the_seed_graph_pans_zooms_searches_and_hovers_with_keys_required(page, service):
    job_id = service.submit(json.loads((REPO / "examples/seed.json").read_text()))
    p = page.page
    page.goto(f"/runs/{job_id}")  # opened at once: the graph is drawn after the results, the view waits for it
    p.wait_for_selector("a.graph-link[data-graph=ready]:not([hidden])", timeout=120_000)
    assert p.locator("a.graph-link").text_content() == "Computation graph"
    service.finished(job_id)  # its graph is drawn by the system's dot or, without one, Graphviz in WebAssembly
    page.goto(f"/runs/{job_id}/graph")
    viewport = p.locator(".graph-viewport")
    p.wait_for_selector(".graph-viewport[data-ready=true]")
    assert p.locator(".graph-img").get_attribute("src").startswith("blob:")  # fetched with the key
    assert httpx.get(f"{service.url}/jobs/{job_id}/graph.svg").status_code == 401  # (without it: refused)
    assert p.evaluate("document.querySelector('.graph-img').naturalWidth") > 5000
    fitted = float(viewport.get_attribute("data-scale"))
    assert fitted < 0.2  # the whole 10,000-pt graph fits the window
    box = viewport.bounding_box()
    p.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    p.mouse.wheel(0, -600)
    assert float(viewport.get_attribute("data-scale")) > 2 * fitted
    tx = float(viewport.get_attribute("data-tx"))
    p.mouse.down()
    p.mouse.move(box["x"] + box["width"] / 2 + 200, box["y"] + box["height"] / 2 + 50, steps=5)
    p.mouse.up()
    assert float(viewport.get_attribute("data-tx")) == pytest.approx(tx + 200, abs=2)
    p.click("text=Fit")
    assert float(viewport.get_attribute("data-scale")) == pytest.approx(fitted, rel=1e-3)
    p.fill("input[aria-label='find a node']", "loss")
    p.keyboard.press("Enter")
    assert re.match(r"\d+ match", p.locator("text=/\\d+ match/").first.text_content())
    match = p.locator(".graph-overlay rect.current").bounding_box()
    assert match is not None
    p.mouse.move(match["x"] + match["width"] / 2, match["y"] + match["height"] / 2)
    tip = p.locator(".graph-tip")
    tip.wait_for(state="visible")
    assert "loss" in tip.text_content() and "grad" in tip.text_content()
    page.screenshot("graph")


def test_the_page_asks_for_a_key_and_keeps_it(blank_page):
    p = blank_page.page
    blank_page.goto("/runs")
    p.wait_for_selector("#banner:not([hidden])")
    assert "API key" in p.locator("#banner").text_content()
    p.fill("#key", blank_page.service.key)
    p.click("#key-form button")
    p.wait_for_selector("table.runs tbody tr")
    assert p.locator("#banner").is_hidden()
    p.reload()
    p.wait_for_selector("table.runs tbody tr.run")
    assert p.input_value("#key") == blank_page.service.key
    assert all(e.startswith("Failed to load resource") and "401" in e for e in blank_page.errors), blank_page.errors


def test_queue_view(page):
    page.goto("/queue")
    page.page.wait_for_selector(".card-value")
    page.page.wait_for_selector("table.workers tbody tr")  # the embedded service's worker, from GET /workers
    page.screenshot("queue")


def test_a_sweeps_leaderboard_and_its_scatter_plots_update_live(page, service):
    response = service.http.post("/sweeps", json={
        "spec": {"steps": 40, "record": {"graph_svg": False}},
        "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}, "seed": [0, 1, 2]},
        "method": "random", "trials": 4, "parallelism": 2, "objective": "final_loss", "seed": 0})
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    p = page.page
    page.goto("/sweeps")
    p.locator(f"a[href='#/sweeps/{sweep_id}']").first.click()
    wait_for_hash(p, f"^#/sweeps/{sweep_id}$")
    # no reload: the page polls the sweep until it finishes, and the leaderboard fills in
    p.wait_for_function("() => document.querySelectorAll('table.leaderboard tbody tr').length === 4"
                        " && document.querySelector('.toolbar .status').textContent === 'finished'", timeout=120_000)
    ranks = p.locator("table.leaderboard tbody tr td:first-child").all_text_contents()
    assert ranks == ["1", "2", "3", "4"]
    objectives = [float(v) for v in p.locator("table.leaderboard tbody tr td:nth-last-child(3)").all_text_contents()]
    assert objectives == sorted(objectives)  # final_loss: smallest first
    assert p.locator("figure.scatter-chart[data-param='optimizer.lr'] circle.trial").count() == 4
    assert p.locator("figure.scatter-chart[data-param='seed'] circle.trial").count() == 4
    page.screenshot("sweep")
