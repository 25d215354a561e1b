"""Sweeps over HTTP and their advancing (services/sweeps.py) against a real database (SQLite and
PostgreSQL); the broker is replaced by a recorder and the tests play the worker."""
import json
import threading

import pytest

from services import sweeps as search
from services.store import db, jobs as job_store
from services.store import sweeps as sweep_store
from tests.services.conftest import REPO, auth, submit

# A pruner shown the same step twice (Optuna warns and ignores it) means the replay lost its place.
pytestmark = pytest.mark.filterwarnings("error:The reported value is ignored:UserWarning")
MOONS = {"data": {"kind": "moons", "n_samples": 20}, "model": {"layers": [4, 4, 1]}, "loss": "hinge", "steps": 90}


def sweep_body(**changes):
    body = {"spec": MOONS, "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
                                     "model.layers.0": {"type": "int", "low": 2, "high": 8}},
            "method": "random", "trials": 4, "parallelism": 2, "objective": "final_loss", "seed": 7}
    return {**body, **changes}


def create(client, key=None, **changes):
    response = client.post("/sweeps", json=sweep_body(**changes), headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def play_trial(job_id, losses, metrics=None, status="succeeded"):
    """The worker's part: claim the trial's job, write its loss history, end it."""
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        assert token
        points = [job_store.Point(step=i, loss=loss) for i, loss in enumerate(losses)]
        job_store.record_progress(session, job_id, token, points, steps_done=len(losses), latest_loss=losses[-1])
        if status == "running":
            return
        job_store.finish_job(session, job_id, token, status, [], steps_done=len(losses),
                             metrics={"final_loss": losses[-1], "accuracy": None, "val_loss": None,
                                      "val_accuracy": None, "steps_done": len(losses), **(metrics or {})},
                             params_json="{}" if status == "succeeded" else None)


def report_more(job_id, losses, start):
    """A running trial reports more of its history."""
    with db.session_scope() as session:
        token = session.get(job_store.Job, job_store._as_uuid(job_id), populate_existing=True).claim_token
        points = [job_store.Point(step=start + i, loss=loss) for i, loss in enumerate(losses)]
        return job_store.record_progress(session, job_id, token, points, steps_done=start + len(losses),
                                         latest_loss=losses[-1])


def active_trials(client, sweep_id, key=None):
    board = client.get(f"/sweeps/{sweep_id}", headers=auth(key)).json()["leaderboard"]
    return [t for t in board if t["status"] in ("queued", "running")]


def test_a_sweep_queues_its_first_trials_as_ordinary_jobs(client, enqueued):
    sweep = create(client)
    assert sweep["status"] == "running" and sweep["trials"] == 4 and sweep["trials_created"] == 2
    assert sweep["counts"]["queued"] == 2 and sweep["best"] is None
    assert enqueued == [t["job_id"] for t in sorted(sweep["leaderboard"], key=lambda t: t["number"])]
    for trial in sweep["leaderboard"]:
        job = client.get(f"/jobs/{trial['job_id']}").json()
        assert job["sweep_id"] == sweep["id"] and job["status"] == "queued"
        assert job["spec"]["optimizer"]["lr"] == trial["params"]["optimizer.lr"]
        assert 0.01 <= trial["params"]["optimizer.lr"] <= 1.0
        assert job["spec"]["model"]["layers"] == [trial["params"]["model.layers.0"], 4, 1]
        assert job["spec"]["data"] == {**job["spec"]["data"], "kind": "moons", "n_samples": 20}
    assert client.get("/sweeps").json()["items"][0]["id"] == sweep["id"]


def test_a_sweep_runs_exactly_its_trials_and_ranks_them(client, enqueued):
    sweep = create(client)
    finals = iter([0.4, 0.1, 0.3, 0.2])
    while True:
        active = active_trials(client, sweep["id"])
        if not active:
            break
        play_trial(active[0]["job_id"], [1.0, next(finals)])
        search.advance(sweep["id"])
    done = client.get(f"/sweeps/{sweep['id']}").json()
    assert done["status"] == "finished" and done["finished_at"] and done["trials_created"] == 4
    assert done["counts"]["succeeded"] == 4 and len(enqueued) == 4
    assert [t["objective"] for t in done["leaderboard"]] == [0.1, 0.2, 0.3, 0.4]
    assert done["best"] == done["leaderboard"][0] and done["best_objective"] == 0.1
    assert search.advance(sweep["id"]).queued == []  # a finished sweep asks for nothing


def test_a_maximised_objective_ranks_the_highest_first(client, enqueued):
    sweep = create(client, objective="accuracy", trials=2)
    for trial, accuracy in zip(sweep["leaderboard"], [0.5, 0.9]):
        play_trial(trial["job_id"], [1.0, 0.5], metrics={"accuracy": accuracy})
    search.advance(sweep["id"])
    done = client.get(f"/sweeps/{sweep['id']}").json()
    assert done["direction"] == "maximize" and [t["objective"] for t in done["leaderboard"]] == [0.9, 0.5]


def test_grid_search_visits_every_point_once(client, enqueued):
    space = {"optimizer.lr": [0.1, 0.2, 0.3], "model.layers": {"type": "choice", "values": [[4, 1], [8, 8, 1]]}}
    sweep = create(client, method="grid", space=space, trials=None, parallelism=6)
    assert sweep["trials"] == 6 and sweep["trials_created"] == 6
    points = {(t["params"]["optimizer.lr"], tuple(t["params"]["model.layers"])) for t in sweep["leaderboard"]}
    assert points == {(lr, layers) for lr in (0.1, 0.2, 0.3) for layers in ((4, 1), (8, 8, 1))}


def test_the_same_seed_and_results_give_the_same_trials(client, enqueued):
    def run(seed):
        sweep = create(client, method="tpe", trials=6, parallelism=1, seed=seed)
        for i in range(6):
            (trial,) = active_trials(client, sweep["id"])
            play_trial(trial["job_id"], [1.0, 1.0 / (i + 2)])
            search.advance(sweep["id"])
        board = client.get(f"/sweeps/{sweep['id']}").json()["leaderboard"]
        return [t["params"] for t in sorted(board, key=lambda t: t["number"])]
    first = run(seed=3)
    assert run(seed=3) == first
    assert len({str(p) for p in first}) == 6 and run(seed=4) != first


def asha_prunes_a_trial(client, key=None):
    """A sweep of 5 trials whose fourth loses at ASHA's first rung and is pruned there, still running (its
    worker has not stopped yet). Returns (the sweep as created, the pruned trial as the leaderboard showed it)."""
    early = {"rule": "asha", "min_steps": 10, "reduction_factor": 2}
    sweep = create(client, key=key, trials=5, parallelism=1, early_stopping=early)
    for _ in range(3):  # three good trials set the bar at step 10
        (trial,) = active_trials(client, sweep["id"], key)
        play_trial(trial["job_id"], [0.1] * 30)
        search.advance(sweep["id"])
    (bad,) = active_trials(client, sweep["id"], key)
    play_trial(bad["job_id"], [1.0] * 5, status="running")
    assert search.advance(sweep["id"]).pruned == []  # not yet at the rung
    assert report_more(bad["job_id"], [1.0] * 10, start=5) is False
    assert [str(j) for j in search.advance(sweep["id"]).pruned] == [bad["job_id"]]
    return sweep, bad


def stop_as_the_worker_does(job_id):
    """The worker's part when it sees a cancel: end the job cancelled with the history so far, no results."""
    with db.session_scope() as session:
        job = session.get(job_store.Job, job_store._as_uuid(job_id), populate_existing=True)
        job_store.finish_job(session, job_id, job.claim_token, "cancelled", [], steps_done=job.progress_step,
                             metrics={"final_loss": job.latest_loss, "accuracy": None, "val_loss": None,
                                      "val_accuracy": None, "steps_done": job.progress_step}, params_json=None)


def test_asha_prunes_a_trial_whose_loss_loses_at_a_rung(client, enqueued):
    sweep, bad = asha_prunes_a_trial(client)
    job = client.get(f"/jobs/{bad['job_id']}").json()
    assert job["cancel_requested"] and job["status"] == "running"  # the worker stops it at its next write
    detail = client.get(f"/sweeps/{sweep['id']}").json()
    assert detail["counts"]["pruned"] == 1 and detail["trials_created"] == 5  # its place went to the next trial
    assert [t["pruned"] for t in detail["leaderboard"] if t["job_id"] == bad["job_id"]] == [True]


def test_a_pruned_trials_job_stays_cancelled_and_says_pruned_wherever_jobs_are_listed(client, enqueued):
    """The dashboard's and the CLI's job views showed a pruned trial as cancelled: the job row's status is all
    they had. The status stays (no migration, same schema); `pruned` says which cancelled trials were pruned."""
    sweep, bad = asha_prunes_a_trial(client)
    stop_as_the_worker_does(bad["job_id"])
    plain = submit(client)
    assert client.post(f"/jobs/{plain}/cancel").json()["status"] == "cancelled"
    job = client.get(f"/jobs/{bad['job_id']}").json()
    assert (job["status"], job["pruned"]) == ("cancelled", True)
    trials = client.get("/jobs", params={"sweep": sweep["id"]}).json()["items"]
    assert [(j["status"], j["pruned"]) for j in trials if j["id"] == bad["job_id"]] == [("cancelled", True)]
    assert [j["pruned"] for j in trials if j["id"] != bad["job_id"]] == [False] * (len(trials) - 1)
    assert [(j["status"], j["pruned"]) for j in client.get("/jobs", params={"status": "cancelled"}).json()["items"]
            ] == [("cancelled", False), ("cancelled", True)]  # the cancelled job (newest first) is not pruned
    compared = client.get("/compare", params={"ids": f"{bad['job_id']},{plain}"}).json()["runs"]
    assert [(r["status"], r["pruned"]) for r in compared] == [("cancelled", True), ("cancelled", False)]
    board = client.get(f"/sweeps/{sweep['id']}").json()["leaderboard"]
    assert [t["status"] for t in board if t["job_id"] == bad["job_id"]] == ["pruned"]  # as the sweep says


def test_a_cancelled_sweeps_trials_are_cancelled_not_pruned(client, enqueued):
    sweep = create(client)
    assert client.post(f"/sweeps/{sweep['id']}/cancel").json()["status"] == "cancelled"
    trials = client.get("/jobs", params={"sweep": sweep["id"]}).json()["items"]
    assert trials and {(j["status"], j["pruned"]) for j in trials} == {("cancelled", False)}


def test_asha_lets_a_trial_that_wins_its_rung_go_on(client, enqueued):
    sweep = create(client, trials=3, parallelism=1, early_stopping={"rule": "asha", "min_steps": 10})
    (first,) = active_trials(client, sweep["id"])
    play_trial(first["job_id"], [0.5] * 30)
    search.advance(sweep["id"])
    (good,) = active_trials(client, sweep["id"])
    play_trial(good["job_id"], [0.2] * 20, status="running")
    assert search.advance(sweep["id"]).pruned == []


def test_the_median_rule_prunes_a_trial_worse_than_the_median(client, enqueued):
    early = {"rule": "median", "min_steps": 5, "startup_trials": 2}
    sweep = create(client, trials=4, parallelism=1, early_stopping=early)
    for final in (0.2, 0.3):
        (trial,) = active_trials(client, sweep["id"])
        play_trial(trial["job_id"], [final] * 20)
        search.advance(sweep["id"])
    (bad,) = active_trials(client, sweep["id"])
    play_trial(bad["job_id"], [0.9] * 8, status="running")
    assert [str(j) for j in search.advance(sweep["id"]).pruned] == [bad["job_id"]]


def test_a_trial_that_failed_counts_and_the_sweep_goes_on(client, enqueued):
    sweep = create(client, trials=2, parallelism=1)
    (trial,) = active_trials(client, sweep["id"])
    play_trial(trial["job_id"], [1.0, float("nan")], status="running")
    with db.session_scope() as session:
        token = session.get(job_store.Job, job_store._as_uuid(trial["job_id"])).claim_token
        job_store.fail_job(session, trial["job_id"], token, "diverged at step 1")
    search.advance(sweep["id"])
    detail = client.get(f"/sweeps/{sweep['id']}").json()
    assert detail["counts"]["failed"] == 1 and detail["trials_created"] == 2


def test_cancel_stops_queued_and_running_trials_and_asks_no_more(client, enqueued):
    sweep = create(client, trials=6, parallelism=2)
    running, queued = sweep["leaderboard"]
    play_trial(running["job_id"], [1.0], status="running")
    response = client.post(f"/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert client.get(f"/jobs/{queued['job_id']}").json()["status"] == "cancelled"
    assert client.get(f"/jobs/{running['job_id']}").json()["cancel_requested"] is True
    assert search.advance(sweep["id"]).queued == [] and len(enqueued) == 2
    assert client.post(f"/sweeps/{sweep['id']}/cancel").json()["status"] == "cancelled"  # idempotent


def test_concurrent_advances_never_start_more_than_the_trials(client, enqueued):
    sweep = create(client, trials=5, parallelism=3)
    for trial in sweep["leaderboard"]:  # three trials end at once; their workers all advance the sweep
        play_trial(trial["job_id"], [0.5, 0.4])
    threads = [threading.Thread(target=search.advance, args=(sweep["id"],)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    detail = client.get(f"/sweeps/{sweep['id']}").json()
    assert detail["trials_created"] == 5 and len(detail["leaderboard"]) == 5 and len(enqueued) == 5
    assert sorted(t["number"] for t in detail["leaderboard"]) == [0, 1, 2, 3, 4]


def test_a_failed_send_leaves_the_trial_queued_for_the_sweeper(client, monkeypatch):
    def broker_down(job_id):
        raise ConnectionError("broker unreachable")
    monkeypatch.setattr(search.queue, "enqueue", broker_down)
    sweep = create(client, trials=2, parallelism=1)
    assert sweep["counts"]["queued"] == 1


@pytest.mark.parametrize("changes, loc", [
    ({"space": {"optimizer.momentum_x": [0.1]}}, ["body", "space", "optimizer.momentum_x"]),
    ({"space": {"model.layers.3": [2]}}, ["body", "space", "model.layers.3"]),
    ({"space": {"optimizer.lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}},
     ["body", "space", "optimizer.lr", "float"]),
    ({"space": {"optimizer.lr": {"type": "float", "low": 0.5, "high": 0.1}}},
     ["body", "space", "optimizer.lr", "float"]),
    ({"space": {"optimizer.lr": {"type": "float", "low": 0.1, "high": 2000.0}}}, ["body", "space", "optimizer.lr"]),
    ({"space": {"loss": ["hinge", "softmax_ce"]}}, ["body", "space", "loss"]),
    ({"method": "grid"}, ["body", "space", "optimizer.lr"]),
    ({"method": "grid", "space": {"seed": [1, 2]}, "trials": 3}, ["body", "trials"]),
    ({"method": "grid", "space": {"seed": {"type": "int", "low": 0, "high": 2**31}}, "trials": 5},
     ["body", "space", "seed"]),
    ({"method": "grid", "space": {p: list(range(100)) for p in ("seed", "l2", "optimizer.lr")}}, ["body", "space"]),
    ({"objective": "val_accuracy"}, ["body", "objective"]),
    ({"objective": "speed"}, ["body", "objective"]),
    ({"trials": 1001}, ["body", "trials"]),
    ({"parallelism": 17}, ["body", "parallelism"]),
    ({"space": {}}, ["body", "space"]),
    ({"spec": {**MOONS, "steps": "many"}}, ["body", "spec", "steps"]),
    ({"spec": {**MOONS, "steps": 200_000}}, ["body", "spec", "steps"]),
])
def test_invalid_sweeps_are_422_naming_the_field(client, enqueued, changes, loc):
    response = client.post("/sweeps", json=sweep_body(**changes))
    assert response.status_code == 422, response.text
    assert any(e["loc"] == loc and e["msg"] for e in response.json()["detail"]), response.json()
    assert enqueued == []


def test_limits_apply_to_the_trial_specs_the_space_can_make(make_client, enqueued):
    client = make_client(MAX_LAYER_WIDTH=8)
    response = client.post("/sweeps", json=sweep_body(space={"model.layers.0": {"type": "int", "low": 2, "high": 9}}))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "model.layers.0"] and "limit is 8" in error["msg"], error


def test_a_sweep_needs_room_for_its_parallel_trials(make_client, enqueued):
    client = make_client(MAX_ACTIVE_JOBS_PER_OWNER=3)
    client.post("/jobs", json={})
    assert client.post("/sweeps", json=sweep_body(parallelism=3)).status_code == 429
    assert client.post("/sweeps", json=sweep_body(parallelism=2)).status_code == 201


def test_sweeps_are_owner_scoped(make_client, enqueued, two_owners):
    client = make_client(AUTH_REQUIRED="true")
    alice, bob = two_owners
    sweep = create(client, key=alice)
    assert client.get(f"/sweeps/{sweep['id']}", headers=auth(bob)).status_code == 404
    assert client.post(f"/sweeps/{sweep['id']}/cancel", headers=auth(bob)).status_code == 404
    assert client.get("/sweeps", headers=auth(bob)).json()["items"] == []
    trial_job = sweep["leaderboard"][0]["job_id"]
    assert client.get(f"/jobs/{trial_job}", headers=auth(bob)).status_code == 404
    assert client.get(f"/jobs/{trial_job}", headers=auth(alice)).status_code == 200
    assert client.get(f"/sweeps/{sweep['id']}", headers=auth(alice)).json()["status"] == "running"
    assert client.get("/sweeps").status_code == 401


def test_sweep_lists_page_newest_first(client, enqueued):
    ids = [create(client, trials=1, parallelism=1)["id"] for _ in range(3)]
    first = client.get("/sweeps", params={"limit": 2}).json()
    second = client.get("/sweeps", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["id"] for s in first["items"] + second["items"]] == ids[::-1] and second["next_cursor"] is None
    assert client.get("/sweeps", params={"cursor": "nonsense"}).status_code == 422


def test_the_example_sweep_is_accepted_as_the_readme_says(client, enqueued):
    body = json.loads((REPO / "examples" / "sweep-moons.json").read_text())
    sweep = client.post("/sweeps", json=body).json()
    assert (sweep["method"], sweep["trials"], sweep["objective"]) == ("tpe", 24, "final_loss")
    assert sweep["sweep"]["early_stopping"]["rule"] == "asha" and len(enqueued) == sweep["sweep"]["parallelism"]
    assert set(sweep["sweep"]["space"]) == {"optimizer.lr", "model.layers.0", "model.layers.1", "l2"}
