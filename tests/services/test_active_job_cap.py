"""MAX_ACTIVE_JOBS_PER_OWNER holds under concurrent submission (SQLite and PostgreSQL): the count and the
insert are one transaction, serialized per owner. It used to count, commit, then insert, so requests in
flight together all saw room (100 -> 131 accepted). Sweep trials are jobs too and respect the same cap."""
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import event, func, select

from services import sweeps as search
from services.store import db
from services.store.models import ACTIVE_STATUSES, Job
from tests.services.conftest import finish_job, submit
from tests.services.test_sweeps import sweep_body

CAP = 10
REQUESTS = 32


@pytest.fixture
def slow_job_inserts(database_url):
    """Every INSERT into jobs takes 50 ms longer: the window between a count and its insert, which
    concurrent requests raced through, is wide open on every run (on a fast machine as on a busy one)."""
    engine = db.get_engine(database_url)

    def slow(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            time.sleep(0.05)
    event.listen(engine, "before_cursor_execute", slow)
    yield
    event.remove(engine, "before_cursor_execute", slow)


def active_jobs(owner="local"):
    with db.session_scope() as session:
        return session.scalar(select(func.count()).select_from(Job)
                              .where(Job.owner == owner, Job.status.in_(ACTIVE_STATUSES)))


def all_at_once(count, request):
    """`count` threads call request(http) together (each with its own connection); their results."""
    barrier = threading.Barrier(count)

    def one(url):
        with httpx.Client(base_url=url, timeout=120) as http:
            barrier.wait()
            return request(http)
    return one


def test_concurrent_submissions_accept_exactly_the_cap(make_client, serve, enqueued, slow_job_inserts):
    url = serve(make_client(MAX_ACTIVE_JOBS_PER_OWNER=CAP).app)
    post = all_at_once(REQUESTS, lambda http: http.post("/jobs", json={}).status_code)
    with ThreadPoolExecutor(REQUESTS) as pool:
        statuses = Counter(pool.map(post, [url] * REQUESTS))
    assert statuses == {201: CAP, 429: REQUESTS - CAP}
    assert active_jobs() == CAP and len(enqueued) == CAP


def test_concurrent_reruns_accept_exactly_the_cap(make_client, serve, enqueued, slow_job_inserts):
    client = make_client(MAX_ACTIVE_JOBS_PER_OWNER=CAP)
    original = submit(client)
    finish_job(original)
    url = serve(client.app)
    rerun = all_at_once(REQUESTS, lambda http: http.post(f"/jobs/{original}/rerun", json={}).status_code)
    with ThreadPoolExecutor(REQUESTS) as pool:
        statuses = Counter(pool.map(rerun, [url] * REQUESTS))
    assert statuses == {201: CAP, 429: REQUESTS - CAP}
    assert active_jobs() == CAP


def test_a_sweep_waits_for_room_under_the_cap(make_client, enqueued):
    """A sweep was admitted with room for its parallel trials; later trials are made only while the
    owner's active jobs stay within the cap, and the sweep goes on once jobs end."""
    client = make_client(MAX_ACTIVE_JOBS_PER_OWNER=5)
    sweep = client.post("/sweeps", json=sweep_body(trials=8, parallelism=4)).json()
    trials = [t["job_id"] for t in sweep["leaderboard"]]
    assert len(trials) == 4
    mine = [submit(client)]             # 5 active: the cap
    finish_job(trials[0])               # a trial ends: the sweep has room for one more trial, the owner has 1
    mine.append(submit(client))         # ... which this job takes
    assert search.advance(sweep["id"]).queued == []  # a new trial would be the 6th active job
    assert active_jobs() == 5
    finish_job(mine[0])
    assert len(search.advance(sweep["id"]).queued) == 1
    assert active_jobs() == 5


def test_concurrent_sweep_advances_and_submissions_stay_within_the_cap(make_client, serve, enqueued,
                                                                      slow_job_inserts):
    client = make_client(MAX_ACTIVE_JOBS_PER_OWNER=CAP)
    sweep = client.post("/sweeps", json=sweep_body(trials=16, parallelism=8)).json()
    for trial in sweep["leaderboard"]:
        finish_job(trial["job_id"])   # all 8 end: the sweep wants 8 new trials, the owner has 10 free slots
    url = serve(client.app)
    start = threading.Barrier(REQUESTS + 4)

    def post(_):
        with httpx.Client(base_url=url, timeout=120) as http:
            start.wait()
            return http.post("/jobs", json={}).status_code

    def advance():
        start.wait()
        search.advance(sweep["id"])

    advancers = [threading.Thread(target=advance) for _ in range(4)]
    for thread in advancers:
        thread.start()
    with ThreadPoolExecutor(REQUESTS) as pool:
        accepted = Counter(pool.map(post, range(REQUESTS)))[201]
    for thread in advancers:
        thread.join()
    trials = active_jobs() - accepted
    assert active_jobs() == CAP, (accepted, trials)
    assert trials <= 8
