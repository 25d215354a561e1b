"""Runs a sweep on a running service and reports its wall time, pruned trials and best trial.

    make run                                   # in one terminal (or any service URL)
    .venv/bin/python benchmarks/sweep_moons.py [--url http://127.0.0.1:8000] [examples/sweep-moons.json]

The wall time is from the POST to the sweep's last trial ending, as a user waits for it."""
import argparse
import json
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default=str(REPO / "examples" / "sweep-moons.json"))
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, timeout=30) as client:
        started = time.monotonic()
        response = client.post("/sweeps", json=json.loads(Path(args.file).read_text()))
        response.raise_for_status()
        sweep_id = response.json()["id"]
        while True:
            sweep = client.get(f"/sweeps/{sweep_id}").json()
            if sweep["status"] != "running" or time.monotonic() - started > args.timeout:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
    best = sweep["best"]
    print(json.dumps({"sweep": sweep_id, "status": sweep["status"], "wall_seconds": round(wall, 1),
                      "counts": sweep["counts"],
                      "best": best and {key: best[key] for key in ("number", "job_id", "objective", "metrics", "params")}},
                     indent=1))
    return 0 if sweep["status"] == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
