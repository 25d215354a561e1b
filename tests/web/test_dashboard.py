"""The dashboard's views, used as a person would, in Chromium against the real service with keys required.
Every test also checks (in the `page` fixture) that no console error appeared and no request left 127.0.0.1.
Screenshots of each view land in var/screenshots/."""
import json
import re
import time

import httpx
import pytest

from tests.integration.processes import REPO
from tests.web.conftest import fresh_page

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
    seen, steps = set(), set()  # (points drawn), (the header's step, the metrics' steps done) while running
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, header, done = p.evaluate("""() => [document.querySelector('.status')?.textContent,
            document.querySelector('progress')?.value,
            [...document.querySelectorAll('table.kv tr')].find((tr) => tr.cells[0]?.textContent === 'steps done')
              ?.cells[1].textContent]""")
        points = int(loss.get_attribute("data-points") or 0)
        if status == "running" and points:
            seen.add(points)
            steps.add((header, done))
        if status == "succeeded":
            break
        p.wait_for_timeout(100)
    assert len(seen) >= 2, f"the curve did not grow while running: {sorted(seen)}"
    assert len(steps) >= 2 and all(str(header) == done for header, done in steps), steps  # details kept up
    assert p.locator(".live-mode").text_content() in ("", "● live")  # followed by Server-Sent Events
    assert p.evaluate("window.notReloaded") is True
    p.wait_for_function("() => document.querySelector('figure.chart').dataset.points === '2000'")
    # the moons boundary: the model's classes as cells, the 100 samples on top
    p.wait_for_selector(".boundary-svg circle")
    assert p.locator(".boundary-svg .points circle").count() == 100
    assert p.locator(".boundary-svg rect[fill]").count() > 2
    p.locator("figure.chart").first.hover()
    assert "loss" in p.locator(".chart-tip").first.text_content()
    parameters = p.locator("section:has(> table.params)")
    parameters.wait_for()
    assert parameters.locator("tbody tr").count() == 16 + 16 + 1
    # a layer 0 neuron's 2 weights start beside its bias, not 16 columns' width away at the right edge
    bias, weights = (parameters.locator("tbody tr").first.locator("td").nth(k) for k in (2, 3))
    assert bias.evaluate("(td) => getComputedStyle(td).textAlign") == "right"
    assert weights.evaluate("(td) => getComputedStyle(td).textAlign") in ("left", "start")
    assert parameters.text_content().endswith(parameters.locator("table.params").text_content())  # nothing after it
    assert len([url for url in page.requests if url.endswith("/params")]) == 1  # read once, when the run ended
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
    # the runs' names above the plot, not over the curves (inside it, 20 runs' names ran past its bottom)
    loss = p.locator("figure.chart").first
    assert loss.locator(".chart-legend .legend-item").all_text_contents() == [
        service.http.get(f"/jobs/{job_id}").json()["name"] for job_id in (first, second)]
    legend, frame = loss.locator(".chart-legend").bounding_box(), loss.locator("rect.frame").bounding_box()
    assert legend["y"] + legend["height"] <= frame["y"]
    assert loss.locator("svg text", has_text=service.http.get(f"/jobs/{first}").json()["name"]).count() == 0
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


def test_a_run_is_deleted_after_the_pages_reads_of_it_end(page, service):
    """Delete waits for the view's reads of the run still under way (here its decision boundary, held back):
    answered after the run is gone, one would be a 404 (a console error) and a banner about a deleted run."""
    job = service.submit({"model": {"layers": [4, 1]}, "data": {"kind": "moons", "n_samples": 40}, "steps": 20,
                          "record": {"graph_svg": False}})
    service.finished(job)
    p, held = page.page, []
    p.route(re.compile(r"/boundary\?"), lambda route: held.append(route))
    with p.expect_request(re.compile(r"/boundary\?")):
        page.goto(f"/runs/{job}")
    p.once("dialog", lambda dialog: dialog.accept())
    p.click("button:has-text('Delete')")
    p.wait_for_timeout(1000)  # a page that deletes at once has done so by now
    assert service.http.get(f"/jobs/{job}").status_code == 200
    held[0].continue_()
    wait_for_hash(p, "^#/runs$")
    assert service.http.get(f"/jobs/{job}").status_code == 404


def test_a_refused_delete_leaves_the_graph_being_watched(page, service):
    """Delete stops the graph's poll before it asks; refused, the view watches the graph again (it said
    "being drawn" for good). The run is shown as still drawing (its reads answered so) until the DELETE is
    refused; then the real answers come through and the link says the graph is there."""
    job = service.submit({"steps": 5})
    service.finished(job)
    p = page.page

    def drawing(route):
        if route.request.method != "GET":
            return route.fulfill(status=503, json={"detail": "refused by the test"})
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "graph": "pending"})

    p.route(f"**/jobs/{job}", drawing)
    page.goto(f"/runs/{job}")
    p.wait_for_selector("a.graph-link[data-graph=pending]")
    p.once("dialog", lambda dialog: dialog.accept())
    with p.expect_response(lambda response: response.request.method == "DELETE"):
        p.click("button:has-text('Delete')")
    p.unroute(f"**/jobs/{job}")
    p.wait_for_selector("a.graph-link[data-graph=ready]", timeout=60_000)
    page.screenshot("run-delete-refused")
    assert p.locator("a.graph-link").text_content() == "Computation graph"
    assert service.http.get(f"/jobs/{job}").status_code == 200
    page.errors[:] = [e for e in page.errors if "503" not in e]  # the refusal this test made


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


PUBLIC = ("/web/", "/openapi.json", "/healthz")


def api_requests(wrapped):
    """The requests the page made to the API itself (not for its files, the schema or the sentinel)."""
    paths = [url[len(wrapped.service.url):] for url in wrapped.requests if url.startswith(wrapped.service.url + "/")]
    return [path for path in paths if path != "/" and not path.startswith(PUBLIC)]


def settled_api_requests(p, wrapped):
    """api_requests once a request made after them has been answered (a sentinel to /healthz)."""
    assert p.evaluate("fetch('/healthz').then((r) => r.status)") == 200
    return api_requests(wrapped)


def a_minute_later(p, wrapped):
    """The API requests made in a minute on the page's clock, in 3-second steps with a round trip after each,
    so that a loop that sleeps between requests (not only a setInterval) gets to make each one."""
    for _ in range(20):
        p.clock.run_for(3000)
        requests = settled_api_requests(p, wrapped)
    return requests


def test_a_refused_key_stops_every_view_until_a_good_key_is_given(browser, service):
    """A revoked (or wrong) key: at the first 401 the view stops and the page says so, with a field for another
    key; nothing asks the server again, whatever view is opened next, until a good key starts the view again.
    The page polled on before: a refused request every 1-3 s, each a failed attempt against this address,
    which past AUTH_FAILURES_PER_MINUTE locks out every key from it, good ones too. Timers run on
    Playwright's clock, so a minute of polling takes no minute."""
    running = service.submit({"model": {"layers": [8, 1]}, "steps": 100_000, "record": {"graph_svg": False}})
    spare = service.create_key("revoked-while-open")
    with fresh_page(browser, service, spare) as wrapped:
        p = wrapped.page
        p.clock.install()
        # the run view's slowest fallback: polling /jobs/{id} and /loss every second, after the events stream failed
        p.route("**/jobs/*/events", lambda route: route.fulfill(status=500, json={"detail": "no streams here"}))
        wrapped.goto(f"/runs/{running}")
        p.wait_for_function("() => document.querySelector('.live-mode').textContent === 'polling'")
        p.wait_for_selector(".status-running")
        service.revoke_key("revoked-while-open")
        p.clock.run_for(3000)
        p.wait_for_selector("#banner.refused")
        assert "refused this page's API key (invalid or revoked API key)" in p.locator("#banner").text_content()
        assert "stopped refreshing" in p.locator("#banner").text_content()
        assert p.evaluate("document.activeElement.id") == "prompt-key"
        wrapped.screenshot("key-refused")
        before = settled_api_requests(p, wrapped)
        assert a_minute_later(p, wrapped) == before, "polled after the 401"
        # every other view: one refused attempt, then nothing; the prompt stays
        other = "00000000-0000-4000-8000-000000000000"
        for route in ("/runs", "/queue", "/sweeps", f"/sweeps/{other}", f"/runs/{other}", f"/runs/{other}/graph",
                      f"/compare?ids={running},{other}"):
            with p.expect_response(lambda response: response.status == 401):
                wrapped.goto(route)
            before = settled_api_requests(p, wrapped)
            assert a_minute_later(p, wrapped) == before, f"{route} polled after the 401"
            assert p.locator("#banner.refused").is_visible()
        # a good key: the view starts again, and polls again (a run submitted now appears without a reload)
        with p.expect_response(lambda response: response.status == 401):
            wrapped.goto("/runs")
        p.fill("#prompt-key", service.key)
        p.click("#banner button:has-text('Use this key')")
        p.wait_for_selector(f"tr[data-id='{running}']")
        assert p.locator("#banner").is_hidden()
        assert p.input_value("#key") == service.key
        assert p.evaluate("localStorage.getItem('mgs.apiKey')") == service.key
        later = service.submit({"steps": 5, "record": {"graph_svg": False}})
        p.clock.run_for(3000)
        p.wait_for_selector(f"tr[data-id='{later}']")
        wrapped.screenshot("key-refused-then-given")
    assert service.http.post(f"/jobs/{running}/cancel").status_code in (200, 202)
    service.finished(running, later)
    refusals = [e for e in wrapped.errors if not (e.startswith("Failed to load resource") and ("401" in e or "500" in e))]
    assert not refusals, refusals


def test_a_run_or_sweep_that_does_not_exist_says_so(browser, service):
    """A deleted run's link (or another owner's) showed the run view's skeleton: empty charts saying "no data
    yet", a progress bar, a banner with the 404's detail above it."""
    missing = "00000000-0000-4000-8000-000000000000"
    with fresh_page(browser, service, service.key) as wrapped:
        p = wrapped.page
        for route, title, back in ((f"/runs/{missing}", "Run not found", "#/runs"),
                                   (f"/sweeps/{missing}", "Sweep not found", "#/sweeps")):
            wrapped.goto(route)
            p.wait_for_selector(f"h1:has-text('{title}')")
            assert missing in p.locator(".not-found").text_content()
            assert p.locator(f".not-found a[href='{back}']").count() == 1
            assert p.locator("figure, progress, table").count() == 0
            assert p.locator("#banner").is_hidden()
        wrapped.screenshot("not-found")
        # compare: ids that are no UUIDs showed GET /jobs/abc's 422 in the banner over "Compare 2 runs" and two
        # empty charts; a gone run, its 404 the same way
        job_id = service.submit({"spec": {"steps": 5, "record": {"graph_svg": False}}, "name": "no-graph"})
        service.finished(job_id)
        for route, title, text in (("/compare?ids=abc,def", "Runs not found", "abc, def are not run ids"),
                                   (f"/compare?ids=abc,{missing}", "Run not found", "abc is not a run id"),
                                   (f"/compare?ids={missing},{job_id}", "Run not found", f"no run {missing} for")):
            wrapped.goto(route)
            p.wait_for_selector(f".not-found:has-text('{text}')")  # (the view before may say "Run not found" too)
            assert p.locator("h1").all_text_contents() == [title]
            assert p.locator(".not-found a[href='#/runs']").count() == 1
            assert p.locator("figure, table").count() == 0
            assert p.locator("#banner").is_hidden()
        assert not [url for url in wrapped.requests if "/jobs/abc" in url or "ids=abc" in url]  # nothing asked
        wrapped.goto(f"/compare?ids={missing}")  # one run: "Compare 1 runs" it said
        p.wait_for_selector("h1:text-is('Compare 1 run')")
        # a run without a graph: an empty pan-and-zoom viewport under its toolbar, the reason in small print
        wrapped.goto(f"/runs/{job_id}/graph")
        p.wait_for_selector("h1:has-text('No computation graph')")
        assert "has no graph" in p.locator(".not-found").text_content()
        assert p.locator(f".not-found a[href='#/runs/{job_id}']").count() == 1
        assert p.locator("main .graph-viewport, main button").count() == 0
    assert all(e.startswith("Failed to load resource") and "404" in e for e in wrapped.errors), wrapped.errors


def test_an_ids_copy_button_is_an_icon_and_copies_the_whole_id(page, service):
    """The button said "copy" after the short id: the runs table read "seed-a98b a98ba0e1 copy", as if the run
    were a copy of another (re-runs are)."""
    job_id = service.submit({"spec": {"steps": 5, "record": {"graph_svg": False}}, "name": "to-copy"})
    service.finished(job_id)  # (its row changing while queued and running is not what this is about)
    p = page.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=service.url)
    page.goto("/runs")
    chip = p.locator(f"tr[data-id='{job_id}'] .id")
    chip.wait_for()
    assert chip.inner_text().strip() == job_id[:8]
    button = chip.locator("button.copy")
    assert button.get_attribute("aria-label") == f"copy id {job_id}"
    button.evaluate("(button) => { button.marked = true; }")
    # "copied" shows for 0.8 s: watched in the page from before the click, as polling from here may miss it
    p.evaluate("""(copied) => { window.copiedShown = new Promise((resolve) => {
        new MutationObserver(() => document.querySelector(copied) && resolve(true))
          .observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["class"]});
        setTimeout(() => resolve(false), 30000);
      }); }""", f"tr[data-id='{job_id}'] button.copy.copied")
    button.click()
    assert p.evaluate("window.copiedShown") is True
    assert p.evaluate("navigator.clipboard.readText()") == job_id
    assert p.evaluate("location.hash") == "#/runs"  # the row's click (open the run) is not also done
    # The table is drawn anew on every refresh (and as the search is typed): the button with its "copied" state
    # is kept. A new button each time lost the feedback when a refresh came within its 0.8 s (the test's flake).
    search = p.locator("input[placeholder^='filter by name']")
    search.fill("to-copy")
    assert button.evaluate("(button) => button.marked") is True
    # and a click whose press and release fall either side of a redraw is still the button's click
    button.evaluate("(b) => { window.clicked = new Promise((r) => b.addEventListener('click', () => r(true), {once: true})); }")
    box = button.bounding_box()
    p.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    p.mouse.down()
    search.evaluate("(search) => { search.value = ''; search.dispatchEvent(new Event('input')); }")
    p.mouse.up()
    assert p.evaluate("Promise.race([window.clicked, new Promise((r) => setTimeout(() => r(false), 10000))])") is True
    assert p.evaluate("location.hash") == "#/runs"


def test_a_spec_typed_before_the_key_is_given_is_still_there_after(blank_page):
    """Submitting a new run without a key is refused; the page asks for one and, given it, starts the view
    again. That threw the typed spec away for the preset; it is kept for the tab now (and across views)."""
    p = blank_page.page
    blank_page.goto("/new")
    typed = json.dumps({"steps": 7, "record": {"graph_svg": False}})
    p.fill("textarea.spec", typed)
    p.click("form.new-run button[type=submit]")
    p.wait_for_selector("#banner.refused")
    p.fill("#prompt-key", blank_page.service.key)
    p.click("#banner button:has-text('Use this key')")
    p.wait_for_selector("#banner", state="hidden")
    assert p.input_value("textarea.spec") == typed
    blank_page.goto("/runs")
    p.wait_for_selector("table.runs")
    blank_page.goto("/new")
    assert p.input_value("textarea.spec") == typed
    p.click("form.new-run button[type=submit]")
    wait_for_hash(p, r"^#/runs/[0-9a-f-]{36}$")
    job_id = p.evaluate("location.hash").split("/")[-1]
    assert blank_page.service.http.get(f"/jobs/{job_id}").json()["spec"]["steps"] == 7
    blank_page.service.finished(job_id)


def test_queue_view(page):
    page.goto("/queue")
    page.page.wait_for_selector(".card-value")
    page.page.wait_for_selector("table.workers tbody tr")  # the embedded service's worker, from GET /workers
    page.screenshot("queue")


def test_a_filter_that_matches_nothing_says_so(page):
    """With a status, experiment or API filter the API answers only the matching runs: none is not "no runs yet"."""
    page.goto("/runs?filter=metrics.final_loss<0")
    empty = page.page.locator("table.runs td.muted")
    empty.wait_for()
    assert empty.text_content() == "No run matches the filter."


def test_the_queue_says_when_no_worker_is_live(page):
    """An empty workers table was all it showed: headers, no row, no word on why nothing runs."""
    page.page.route("**/workers", lambda route: route.fulfill(json=[]))
    page.goto("/queue")
    message = page.page.locator(".empty-workers")
    message.wait_for()
    assert "queued jobs wait until one starts" in message.text_content()
    assert page.page.locator("table.workers").count() == 0


DIVERGES = {"model": {"layers": [16, 16, 1], "activations": ["relu", "relu", "linear"]}, "data": {"kind": "moons"},
            "loss": "sse", "optimizer": {"lr": 1000}, "steps": 200, "record": {"graph_svg": False}}


def test_a_failed_runs_reason_is_in_the_table_and_on_its_page(page, service):
    job_id = service.submit({"spec": DIVERGES, "name": "diverges"})
    job = service.finished(job_id)[job_id]
    assert job["status"] == "failed" and job["error"].startswith("diverged at step"), job
    p = page.page
    page.goto("/runs")
    reason = p.locator(f"tr[data-id='{job_id}'] .reason")
    reason.wait_for()
    assert reason.text_content() == job["error"] == reason.get_attribute("title")
    page.screenshot("runs-failed")
    reason.click()
    wait_for_hash(p, f"^#/runs/{job_id}$")
    assert p.locator(".error-box pre").text_content() == job["error"]


def test_a_sweeps_leaderboard_and_its_scatter_plots_update_live(page, service):
    response = service.http.post("/sweeps", json={
        "spec": {"steps": 40, "record": {"graph_svg": False}},
        "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}, "seed": [0, 1, 2]},
        "method": "random", "trials": 4, "parallelism": 2, "objective": "final_loss", "seed": 0})
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    p = page.page
    page.goto("/sweeps")
    link = p.locator(f"a[href='#/sweeps/{sweep_id}']")
    link.wait_for()
    # a sweep has no name: its cell read "97238a21 97238a21" (a link, then the id chip); the short id is the link
    assert p.locator("tr.run", has=link).locator("td").first.inner_text().strip() == sweep_id[:8]
    assert link.locator("xpath=..").get_attribute("class") == "id"
    link.click()
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


def test_pruned_trials_are_drawn_apart_from_the_objectives_scale(page, service):
    """Pruned trials have no objective. They were drawn on the scatter's bottom edge: where a minimized
    objective's best values are, so they read as the best trials of the sweep."""
    response = service.http.post("/sweeps", json={
        "spec": {"steps": 10, "record": {"graph_svg": False}}, "space": {"optimizer.lr": [0.05, 0.1, 0.2]},
        "method": "grid", "trials": 3, "objective": "final_loss"})
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    for _ in range(600):
        sweep = service.http.get(f"/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            break
        time.sleep(0.2)
    assert sweep["counts"]["succeeded"] == 3, sweep
    # the last trial as the sweep reports one that early stopping pruned (a real one needs a longer sweep)
    sweep["leaderboard"][2].update(status="cancelled", pruned=True, objective=None)
    sweep["counts"].update(succeeded=2, pruned=1)
    page.page.route(f"**/sweeps/{sweep_id}", lambda route: route.fulfill(json=sweep))
    p = page.page
    page.goto(f"/sweeps/{sweep_id}")
    figure = p.locator("figure.scatter-chart[data-param='optimizer.lr']")
    figure.locator("circle.trial.pruned").wait_for()
    frame_top = float(figure.locator("rect.frame").get_attribute("y"))
    pruned = float(figure.locator("circle.trial.pruned").get_attribute("cy"))
    scored = [float(c.get_attribute("cy")) for c in figure.locator("circle.trial:not(.pruned)").all()]
    assert len(scored) == 2
    assert pruned + 4 < frame_top < min(scored)  # above the plot, in a lane of its own
    assert figure.locator("text.pruned-lane").text_content() == "pruned"
    page.screenshot("sweep-pruned")


def test_a_pruned_trial_says_pruned_in_the_runs_table_on_its_page_and_in_compare(page, service):
    """A pruned trial's job ends cancelled, and the runs table, its page and compare said "cancelled" where
    the sweep's leaderboard says "pruned". A job cancelled by hand still says cancelled."""
    from services.store import sweeps as sweep_store
    long_run = {"model": {"layers": [8, 1]}, "steps": 100000, "record": {"graph_svg": False}}
    response = service.http.post("/sweeps", json={
        "spec": long_run, "space": {"optimizer.lr": [0.05]}, "method": "grid", "trials": 1, "parallelism": 1,
        "objective": "final_loss"})
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    (trial,) = service.http.get("/jobs", params={"sweep": sweep_id}).json()["items"]
    # The pruner's decision (a real one needs a long sweep and a worker's timing), written as a sweep's
    # advance writes Optuna's: the trial is marked pruned and its job asked to stop, which the worker does.
    with service.session() as session:
        done = sweep_store.advance(session, sweep_id, lambda snapshot: sweep_store.Decision(prune=[0]))
    assert [str(j) for j in done.pruned] == [trial["id"]]
    by_hand = service.submit({"spec": long_run})
    assert service.http.post(f"/jobs/{by_hand}/cancel").status_code == 200
    jobs = service.finished(trial["id"], by_hand)
    assert [jobs[j]["status"] for j in (trial["id"], by_hand)] == ["cancelled", "cancelled"], jobs

    p = page.page
    page.goto("/runs")
    for job_id, shown in ((trial["id"], "pruned"), (by_hand, "cancelled")):
        badge = p.locator(f"tr[data-id='{job_id}'] .status")
        badge.wait_for()
        assert badge.text_content() == shown and badge.get_attribute("class") == f"status status-{shown}"
    page.screenshot("runs-pruned")
    page.goto(f"/runs/{trial['id']}")
    badge = p.locator(".toolbar span.status")
    badge.wait_for()
    assert badge.text_content() == "pruned"
    page.goto(f"/compare?ids={trial['id']},{by_hand}")
    p.wait_for_selector("table.compare")
    status_row = p.locator("table.compare tr", has=p.locator("th", has_text=re.compile("^status$")))
    assert status_row.locator(".status").all_text_contents() == ["pruned", "cancelled"]
