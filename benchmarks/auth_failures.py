"""3,000 refused logins from one address against the app (a TestClient, keys required, the default
AUTH_FAILURES_PER_MINUTE): the answers, the time, and the threads the process started meanwhile, by class
(`limits`' in-memory storage runs its expiry in short threading.Timer threads). With --redis the rate
limits' windows are kept in a throwaway Redis, as with a Redis broker (services/api/rate_limit.py).

    .venv/bin/python benchmarks/auth_failures.py [--redis]"""
import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ATTEMPTS = 3000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", action="store_true", help="the windows in a throwaway Redis")
    args = parser.parse_args()
    os.environ.update(DATABASE_URL=f"sqlite:///{tempfile.mkdtemp()}/service.db", AUTH_REQUIRED="true",
                      API_KEY_SECRET="benchmark-secret-" + "x" * 32)
    server = None
    if args.redis:
        from tests.faults.servers import ThrowawayRedis
        server = ThrowawayRedis().start()
        os.environ["BROKER_URL"] = server.url
    try:
        run()
    finally:
        if server is not None:
            server.stop()


def run():
    from tests.services.conftest import create_schema
    create_schema(os.environ["DATABASE_URL"])
    started = Counter()
    real_start = threading.Thread.start

    def counting_start(thread):
        started[type(thread).__name__] += 1
        return real_start(thread)
    threading.Thread.start = counting_start

    from fastapi.testclient import TestClient
    from services.api.app import create_app
    peak, statuses = 0, Counter()
    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        began = time.perf_counter()
        for i in range(ATTEMPTS):
            statuses[client.get("/jobs", headers={"Authorization": f"Bearer mgs_guess{i}"}).status_code] += 1
            peak = max(peak, threading.active_count())
        seconds = time.perf_counter() - began
    print(f"{ATTEMPTS} refused logins: {dict(statuses)} in {seconds:.1f} s; threads started {dict(started)}; "
          f"at most {peak} alive at once; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
