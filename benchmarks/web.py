"""Page weight and time to first render of each dashboard view, in Debian's Chromium via Playwright,
against the embedded service (`python -m services.embedded`) on a free port.

    .venv/bin/python benchmarks/web.py [--repeat 5]

Weight: the bytes a cold load of the view transfers (bodies + headers, every request until the network is
idle for 0.5 s). First render: from navigation start until the view's main content is drawn (median)."""
import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from tests.integration.processes import REPO, Process, free_port, wait_for_final, wait_until_ready  # noqa: E402

MOONS = json.loads((REPO / "examples/moons.json").read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PORT": str(port), "PYTHONUNBUFFERED": "1",
               "DATABASE_URL": f"sqlite:///{tmp}/service.db", "BROKER_URL": f"sqla+sqlite:///{tmp}/broker.db"}
        service = Process("embedded", [sys.executable, "-m", "services.embedded"], env, Path(tmp))
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base, [service])
            with httpx.Client(base_url=base, timeout=60) as http:
                seed = http.post("/jobs", json=json.loads((REPO / "examples/seed.json").read_text())).json()["id"]
                moons = http.post("/jobs", json=MOONS).json()["id"]
                sweep = http.post("/sweeps", json={
                    "spec": {"steps": 40, "record": {"graph_svg": False}}, "method": "random", "trials": 6,
                    "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}, "seed": [0, 1]},
                    "parallelism": 2, "objective": "final_loss", "seed": 0}).json()["id"]
                wait_for_final(http, [seed, moons], timeout=300)
                while http.get(f"/sweeps/{sweep}").json()["status"] == "running":
                    time.sleep(0.5)
            views = {
                "runs": ("/runs", "table.runs tbody tr.run"),
                "new run": ("/new", "textarea.spec"),
                "run (moons: charts)": (f"/runs/{moons}", "figure.chart path.line"),
                "run (moons: boundary)": (f"/runs/{moons}", ".boundary-svg circle"),
                "graph (seed, 10,000 pt)": (f"/runs/{seed}/graph", ".graph-viewport[data-ready=true]"),
                "compare (2 runs)": (f"/compare?ids={seed},{moons}", "table.compare"),
                "sweep (6 trials)": (f"/sweeps/{sweep}", "table.leaderboard tbody tr"),
                "queue": ("/queue", ".card-value"),
            }
            measure(base, views, args.repeat)
        finally:
            service.stop()


def measure(base, views, repeat):
    chromium = shutil.which("chromium") or sys.exit("no chromium on this machine (apt-get install chromium)")
    print(f"{'view':26} {'weight':>9} {'requests':>8} {'first render (median of ' + str(repeat) + ')':>30}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, (route, selector) in views.items():
            times, weights, counts = [], [], []
            for _ in range(repeat):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})  # cold: no cache
                page = context.new_page()
                sizes = []
                page.on("requestfinished", lambda request: sizes.append(request.sizes()) if request.url.startswith("http") else None)
                page.goto(f"{base}/#{route}")
                times.append(page.wait_for_function(
                    "(selector) => document.querySelector(selector) && performance.now()", arg=selector,
                    polling="raf", timeout=60_000).json_value())
                page.wait_for_load_state("networkidle")
                weights.append(sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes))
                counts.append(len(sizes))
                context.close()
            print(f"{name:26} {statistics.median(weights) / 1024:7.1f} kB {statistics.median(counts):8.0f} "
                  f"{statistics.median(times):27.0f} ms")
        browser.close()


if __name__ == "__main__":
    main()
