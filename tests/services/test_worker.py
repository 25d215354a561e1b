"""The worker's task and sweeper, run in-process against real databases (no broker needed:
`run_job` is what the Celery task `train_job` calls)."""
import json
import threading
import time

import pytest

import core.train
from core.nn import MLP
from core.spec import JobSpec
from core.train import StepRecord, TrainResult, predict
from services import queue
from services.store import jobs
from services.store.db import session_scope


@pytest.fixture
def worker(service_env, tmp_path, monkeypatch):
    """The task module, with the broker pointed at a throwaway file and sends recorded instead of made."""
    service_env(BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.db'}", HEARTBEAT_SECONDS=0.05)
    from services.worker import tasks
    sent = []
    monkeypatch.setattr(queue, "send", lambda job_id: sent.append(job_id))
    tasks.sent = sent
    return tasks


def submit(**spec):
    with session_scope() as session:
        return jobs.create_job(session, "alice", JobSpec(**spec)).id


def load(job_id):
    with session_scope() as session:
        return jobs.get_job(session, job_id)


def history(job_id):
    with session_scope() as session:
        return [(p.step, p.loss) for p in jobs.get_loss_points(session, job_id)]


def artifact(job_id, kind):
    with session_scope() as session:
        return jobs.get_artifact(session, job_id, kind)


def fake_training(monkeypatch, worker, train):
    """Replaces core's run_spec with `train(spec, callback)` (which neither resumes nor checkpoints, nor
    calls check())."""
    monkeypatch.setattr(worker, "run_spec", lambda spec, callback, **hooks: train(spec, callback))


def record(step, loss=1.0):
    return StepRecord(step=step, loss=loss, lr=0.1, accuracy=None, recorded=True)


def test_the_seed_job_succeeds_with_its_history_params_and_graph(worker):
    job_id = submit()
    assert worker.run_job(str(job_id)) == "succeeded"
    job = load(job_id)
    assert (job.status, job.attempts, job.progress_step, job.error) == ("succeeded", 1, 100, None)
    steps = history(job_id)
    assert [step for step, _ in steps] == list(range(100))
    assert job.final_loss == pytest.approx(job.metrics["final_loss"]) and job.final_loss < steps[0][1]
    params = json.loads(artifact(job_id, "params"))
    assert len(predict(params, [[2.0, 3.0, -1.0]])) == 1 and MLP.from_json(params)
    assert artifact(job_id, "graph_svg").lstrip().startswith(("<?xml", "<svg"))


def test_a_graph_that_cannot_be_drawn_leaves_a_succeeded_job_with_the_reason(worker, monkeypatch):
    from core import graph

    def broken(dot, renderer="auto"):
        raise graph.RenderFailed("Graphviz (WebAssembly) stopped: out of bounds memory access")
    monkeypatch.setattr(graph, "render_svg", broken)
    job_id = submit(steps=3)
    assert worker.run_job(str(job_id)) == "succeeded"
    assert artifact(job_id, "graph_svg") is None and artifact(job_id, "params") is not None
    assert load(job_id).graph_error == "Graphviz (WebAssembly) stopped: out of bounds memory access"


def test_the_results_are_saved_before_the_graph_is_drawn(worker, monkeypatch):
    """A succeeded job's results do not wait for its picture: while the graph is drawn, the job is already
    succeeded with its parameters, and its graph pending; then the graph is stored, with its phase."""
    from core import graph
    real_render, seen, saved = graph.render_svg, [], []

    def render(dot, renderer="auto"):
        job = load(job_id)
        seen.append((job.status, job.graph_status, artifact(job_id, "params") is not None,
                     artifact(job_id, "graph_svg"), set(job.phase_seconds)))
        saved.append(job.phase_seconds)
        return real_render(dot, renderer)
    monkeypatch.setattr(graph, "render_svg", render)
    job_id = submit(steps=5)
    assert worker.run_job(str(job_id)) == "succeeded"
    assert seen == [("succeeded", "pending", True, None,
                     {"queue_wait", "claim", "data", "compile", "steps", "final_metrics", "save"})]
    job = load(job_id)
    assert (job.graph_status, job.graph_error, job.claim_token, job.heartbeat_at) == ("ready", None, None, None)
    assert artifact(job_id, "graph_svg").lstrip().startswith(("<?xml", "<svg")) and job.phase_seconds["graph"] > 0
    assert job.phase_seconds == {**saved[0], "graph": job.phase_seconds["graph"]}  # the final write's too


def draw_blocking(monkeypatch, until):
    """Drawing the graph waits until until() is true (then draws "<svg/>"); returns the event set when drawing began."""
    from core import graph
    began = threading.Event()

    def render(dot, renderer="auto"):
        began.set()
        while not until():
            time.sleep(0.02)
        return "<svg/>"
    monkeypatch.setattr(graph, "render_svg", render)
    return began


def while_the_graph_is_drawn(worker, monkeypatch, action):
    """Runs a job whose graph takes until released, calls action(session, job_id) while it is drawn, and
    returns the job's id once the run has ended (still unreleased: the drawer must have stopped by itself)."""
    released = threading.Event()
    began = draw_blocking(monkeypatch, released.is_set)
    job_id = submit(steps=3)
    thread = threading.Thread(target=worker.run_job, args=(str(job_id),))
    thread.start()
    assert began.wait(30)
    with session_scope() as session:
        action(session, job_id)
    thread.join(timeout=10)  # the drawer looks at the row every 0.5 s
    released.set()
    assert not thread.is_alive()
    return job_id


def test_a_cancel_while_the_graph_is_drawn_stops_the_drawing_and_says_so(worker, monkeypatch):
    job_id = while_the_graph_is_drawn(worker, monkeypatch, jobs.cancel_job)
    job = load(job_id)
    assert (job.status, job.graph_status, job.graph_error) == ("succeeded", "failed", jobs.CANCELLED_WHILE_DRAWING)
    assert artifact(job_id, "graph_svg") is None and artifact(job_id, "params") is not None


def test_a_job_deleted_while_its_graph_is_drawn_stays_deleted(worker, monkeypatch):
    job_id = while_the_graph_is_drawn(worker, monkeypatch, jobs.delete_job)
    assert load(job_id) is None and artifact(job_id, "graph_svg") is None


def test_the_time_limit_holds_while_the_graph_is_drawn(worker, monkeypatch):
    released = threading.Event()
    draw_blocking(monkeypatch, released.is_set)
    job_id = submit(steps=3, time_limit_seconds=3)
    assert worker.run_job(str(job_id)) == "succeeded"
    released.set()
    job = load(job_id)
    assert (job.graph_status, job.graph_error) == ("failed", "time limit exceeded while drawing the graph")
    assert job.finished_at is not None and artifact(job_id, "params") is not None


class WorkerDied(BaseException):
    """What a killed worker process does to its task: nothing after this point runs."""


def die_while_drawing(worker, monkeypatch, job_id):
    """Runs the job (or its left graph) with a drawer that dies: the run ends mid-drawing."""
    from core import graph

    def die(dot, renderer="auto"):
        raise WorkerDied()
    monkeypatch.setattr(graph, "render_svg", die)
    with pytest.raises(WorkerDied):
        worker.run_job(str(job_id))


def dot_source(monkeypatch):
    """Graphs are 'drawn' as their DOT source (exact, and quick)."""
    from core import graph
    monkeypatch.setattr(graph, "render_svg", lambda dot, renderer="auto": dot.source)


def test_a_graph_whose_drawer_died_is_drawn_again_by_the_next_run(worker, service_env, monkeypatch):
    from core.train import run_spec
    from services.worker.sweeper import sweep
    with monkeypatch.context() as patch:
        dot_source(patch)
        drawn = run_spec(JobSpec(steps=5)).graph_svg  # what an uninterrupted run draws
    job_id = submit(steps=5)
    die_while_drawing(worker, monkeypatch, job_id)
    job = load(job_id)
    assert (job.status, job.graph_status, job.graph_attempts) == ("succeeded", "pending", 1)
    assert sweep() == [] and worker.sent == []  # its heartbeat is fresh: another run may still be drawing
    service_env(STALE_AFTER_SECONDS=0)
    assert sweep() == [job_id] and worker.sent == [job_id]
    dot_source(monkeypatch)
    assert worker.run_job(str(job_id)) == "graph drawn"
    job = load(job_id)
    assert (job.status, job.graph_status, job.graph_attempts, job.attempts) == ("succeeded", "ready", 2, 1)
    assert artifact(job_id, "graph_svg") == drawn  # the picture the first run would have drawn
    assert worker.run_job(str(job_id)) == "not claimed"


def test_a_graph_whose_drawer_died_on_every_attempt_fails_saying_so(worker, service_env, monkeypatch):
    from services.worker.sweeper import sweep
    service_env(STALE_AFTER_SECONDS=0, MAX_ATTEMPTS=2)
    job_id = submit(steps=3)
    die_while_drawing(worker, monkeypatch, job_id)
    assert sweep() == [job_id]
    die_while_drawing(worker, monkeypatch, job_id)
    assert sweep() == []
    job = load(job_id)
    assert (job.status, job.graph_status, job.graph_attempts) == ("succeeded", "failed", 2)
    assert job.graph_error == "the worker stopped while drawing it 2 times (attempt limit reached)"


def test_a_finished_job_records_how_long_each_phase_took(worker):
    job_id = submit(steps=5, record={"graph_svg": False})
    assert worker.run_job(str(job_id)) == "succeeded"
    phases = load(job_id).phase_seconds
    assert set(phases) == {"queue_wait", "claim", "data", "compile", "steps", "final_metrics", "save"}
    assert all(seconds >= 0 for seconds in phases.values()) and phases["steps"] > 0
    job = load(job_id)
    assert phases["queue_wait"] <= (job.started_at - job.created_at).total_seconds() + 1e-3


def test_a_finished_job_is_counted_in_the_workers_prometheus_metrics(worker):
    from prometheus_client import REGISTRY
    before = REGISTRY.get_sample_value("mgs_jobs_finished_total", {"status": "succeeded"}) or 0
    steps_before = REGISTRY.get_sample_value("mgs_job_steps_per_second_count") or 0
    writes_before = REGISTRY.get_sample_value("mgs_job_final_write_seconds_count") or 0
    assert worker.run_job(str(submit(steps=5, record={"graph_svg": False}))) == "succeeded"
    assert REGISTRY.get_sample_value("mgs_jobs_finished_total", {"status": "succeeded"}) == before + 1
    assert REGISTRY.get_sample_value("mgs_job_steps_per_second_count") == steps_before + 1
    # the final write's part that no phase holds (the statement storing the phases cannot time itself)
    assert REGISTRY.get_sample_value("mgs_job_final_write_seconds_count") == writes_before + 1
    assert REGISTRY.get_sample_value("mgs_job_phase_seconds_count", {"phase": "claim"}) >= 1


def test_a_second_delivery_does_nothing(worker):
    job_id = submit(steps=5)
    assert worker.run_job(str(job_id)) == "succeeded"
    before = (load(job_id).finished_at, history(job_id))
    assert worker.run_job(str(job_id)) == "not claimed"
    assert (load(job_id).finished_at, history(job_id)) == before and load(job_id).attempts == 1


def test_progress_is_written_in_batches_while_training(worker, monkeypatch):
    from services.worker import progress
    monkeypatch.setattr(progress, "FLUSH_SECONDS", 60)  # only the batch size decides, however slow the machine
    seen_midway = []

    def train(spec, callback):
        for step in range(450):
            callback(record(step))
        seen_midway.append((load(job_id).progress_step, len(history(job_id))))
        return TrainResult([], {}, {"final_loss": 1.0}, None, False, "compiled")

    fake_training(monkeypatch, worker, train)
    job_id = submit(steps=450)
    assert worker.run_job(str(job_id)) == "succeeded"
    [(progress_step, points)] = seen_midway
    assert progress_step == 400 and points == 400  # two full batches of 200; the rest comes with the results
    assert len(history(job_id)) == 450


def test_cancelling_a_running_job_stops_it_and_keeps_its_history(worker):
    job_id = submit(steps=1_000_000, record={"graph_svg": False})
    thread = threading.Thread(target=worker.run_job, args=(str(job_id),))
    thread.start()
    while not load(job_id).progress_step:
        time.sleep(0.05)
    with session_scope() as session:
        jobs.cancel_job(session, job_id)
    thread.join(timeout=30)
    job = load(job_id)
    assert job.status == "cancelled"
    steps = [step for step, _ in history(job_id)]
    assert steps == list(range(len(steps))) and 0 < len(steps) < 1_000_000
    assert job.progress_step == len(steps)
    with session_scope() as session:  # results are a succeeded job's: /params is 404 until success
        assert jobs.get_artifact(session, job_id, "params") is None


def test_a_job_over_its_time_limit_fails_and_keeps_its_history(worker):
    job_id = submit(steps=1_000_000, time_limit_seconds=0.5, record={"graph_svg": False})
    assert worker.run_job(str(job_id)) == "failed"
    job = load(job_id)
    assert job.status == "failed" and job.error.startswith("time limit exceeded")
    steps = [step for step, _ in history(job_id)]
    assert steps == list(range(len(steps))) and len(steps) == job.progress_step > 0


def test_diverging_training_fails_with_the_step_and_keeps_its_history(worker):
    job_id = submit(model={"activations": "linear", "layers": [8, 8, 1]}, optimizer={"lr": 1000}, steps=50)
    assert worker.run_job(str(job_id)) == "failed"
    job = load(job_id)
    assert job.error.startswith("diverged at step ")
    diverged_at = int(job.error.split()[3].rstrip(":"))
    assert [step for step, _ in history(job_id)] == list(range(diverged_at))


def test_any_other_error_fails_the_job_with_a_readable_reason(worker, monkeypatch):
    def train(spec, callback):
        callback(record(0))
        raise RuntimeError("the GPU caught fire")

    fake_training(monkeypatch, worker, train)
    job_id = submit()
    assert worker.run_job(str(job_id)) == "failed"
    assert load(job_id).error == "RuntimeError: the GPU caught fire"
    assert history(job_id) == [(0, 1.0)]


def test_a_superseded_run_stops_without_writing(worker, monkeypatch):
    def train(spec, callback):
        callback(record(0, loss=5.0))
        with session_scope() as session:  # another worker takes over, as the sweeper allows for a stale run
            assert jobs.claim_job(session, job_id, stale_after=0, max_attempts=3)
        time.sleep(0.6)  # past the flush interval: the next step writes, and finds the job is not its own
        callback(record(1, loss=5.0))
        raise AssertionError("training went on after the run lost its claim")

    fake_training(monkeypatch, worker, train)
    job_id = submit()
    assert worker.run_job(str(job_id)) == "superseded"
    job = load(job_id)
    assert (job.status, job.attempts, job.error, history(job_id)) == ("running", 2, None, [])


def next_beat(job_id, after, timeout=30):
    """The job's heartbeat once it is later than `after`: waited for, not assumed to come within some time
    (a busy machine may run the 0.05 s beat late)."""
    deadline = time.monotonic() + timeout
    while (beat := load(job_id).heartbeat_at) == after:
        assert time.monotonic() < deadline, f"no heartbeat in {timeout} s"
        time.sleep(0.01)
    return beat


def test_the_heartbeat_beats_while_a_step_runs(worker, monkeypatch):
    beats = []

    def train(spec, callback):  # one long step: no callback, yet the heartbeat goes on
        beats.append(load(job_id).heartbeat_at)
        for _ in range(2):
            beats.append(next_beat(job_id, beats[-1]))
        return TrainResult([], {}, {"final_loss": None}, None, False, "compiled")

    fake_training(monkeypatch, worker, train)
    job_id = submit()
    assert worker.run_job(str(job_id)) == "succeeded"
    assert beats[0] < beats[1] < beats[2]


def test_the_sweeper_resends_stale_jobs_and_ends_crash_loops(worker, service_env):
    from services.worker.sweeper import sweep
    service_env(STALE_AFTER_SECONDS=0, REDELIVER_QUEUED_AFTER_SECONDS=0, MAX_ATTEMPTS=2)
    crashed, looping, queued = submit(), submit(), submit()
    with session_scope() as session:
        jobs.claim_job(session, crashed, stale_after=60, max_attempts=2)  # its worker then dies
        for _ in range(2):
            jobs.claim_job(session, looping, stale_after=0, max_attempts=2)
    assert set(sweep()) == {crashed, queued}
    assert sorted(worker.sent) == sorted([crashed, queued])
    assert load(looping).status == "failed"
    assert load(looping).error == "worker crashed 2 times (attempt limit reached)"
    assert worker.run_job(str(crashed)) == "succeeded" and load(crashed).attempts == 2


def test_a_job_cancelled_after_its_worker_died_is_cancelled_not_run_again(worker, service_env):
    from services.worker.sweeper import sweep
    service_env(STALE_AFTER_SECONDS=0, MAX_ATTEMPTS=1)
    job_id = submit()
    with session_scope() as session:
        token = jobs.claim_job(session, job_id, stale_after=60, max_attempts=1)
        jobs.record_progress(session, job_id, token, [jobs.Point(0, 0.5)], steps_done=1, latest_loss=0.5)
        jobs.cancel_job(session, job_id)  # then its worker dies, on its last attempt
    assert sweep() == [] and worker.sent == []
    job = load(job_id)
    assert (job.status, job.error, job.attempts) == ("cancelled", None, 1)
    assert history(job_id) == [(0, 0.5)]


def test_a_job_the_sweeper_could_not_send_is_sent_by_the_next_sweep(worker, service_env, monkeypatch):
    from datetime import timedelta
    from sqlalchemy import update
    from services.store.models import Job, utcnow
    from services.worker.sweeper import sweep
    service_env(REDELIVER_QUEUED_AFTER_SECONDS=600)
    job_id = submit()
    with session_scope() as session:  # it was stored and sent an hour ago, and its message was lost
        an_hour_ago = utcnow() - timedelta(hours=1)
        session.execute(update(Job).where(Job.id == job_id).values(created_at=an_hour_ago, enqueued_at=an_hour_ago))
        session.commit()

    def broker_down(job_id):
        raise ConnectionError("broker down")
    monkeypatch.setattr(queue, "send", broker_down)
    with pytest.raises(ConnectionError):
        sweep()
    monkeypatch.setattr(queue, "send", worker.sent.append)
    assert sweep() == [job_id] and worker.sent == [job_id]


def test_results_are_saved_whole_when_the_database_comes_back(worker, monkeypatch):
    from sqlalchemy.exc import OperationalError
    real_finish, calls = jobs.finish_job, []

    def finish_after_an_outage(session, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE jobs", {}, Exception("connection refused"))
        return real_finish(session, *args, **kwargs)

    monkeypatch.setattr(jobs, "finish_job", finish_after_an_outage)
    job_id = submit(steps=30, record={"graph_svg": False})
    assert worker.run_job(str(job_id)) == "succeeded"
    assert len(calls) == 2
    assert [step for step, _ in history(job_id)] == list(range(30))


def test_a_job_delivered_while_the_database_is_down_runs_when_it_is_back(worker, monkeypatch):
    from sqlalchemy.exc import OperationalError
    real_claim, calls = jobs.claim_and_load, []

    def claim_after_an_outage(session, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE jobs", {}, Exception("connection refused"))
        return real_claim(session, *args, **kwargs)

    monkeypatch.setattr(jobs, "claim_and_load", claim_after_an_outage)
    job_id = submit(steps=5, record={"graph_svg": False})
    assert worker.run_job(str(job_id)) == "succeeded" and len(calls) == 2


def test_the_time_limit_holds_in_the_final_metrics_pass(worker, monkeypatch):
    """Issue 9's reproduction: one step, then a final pass over every sample that takes longer than
    the job's limit. It ran on past its limit (for minutes, on a wide model); now it fails at the limit,
    during the pass. Each chunk of the pass is held 0.5 s on top of its real work, so the pass outlasts
    the limit on any machine (the real wide model finished inside 3 s on a fast one). Ten chunks of ten
    samples: what comes before the pass is quick on any machine too (generating 10,000 samples took 1.5 s
    of the 3 here, in a fresh process at load 12, and the pass must begin inside the limit)."""
    real_in_chunks, evaluated = core.train._in_chunks, []
    monkeypatch.setattr(core.train, "EVAL_CHUNK", 10)

    def slow_chunks(loss_and_grads, *args):
        def slow(xs, ys):
            time.sleep(0.5)
            evaluated.append(len(xs))
            return loss_and_grads(xs, ys)
        return real_in_chunks(slow, *args)
    monkeypatch.setattr(core.train, "_in_chunks", slow_chunks)
    job_id = submit(model={"layers": [8, 1]}, data={"kind": "moons", "n_samples": 100},
                    batch_size=1, steps=1, loss="hinge", time_limit_seconds=3, record={"graph_svg": False})
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run_job(str(job_id))), daemon=True)
    thread.start()
    thread.join(timeout=60)  # ten chunks: at least 5 s of pass against a 3 s limit
    assert outcome == ["failed"]
    job = load(job_id)
    assert job.status == "failed" and job.error.startswith("time limit exceeded (3 s)")
    assert 0 < sum(evaluated) < 100  # stopped inside the pass, not after it


def test_a_cancel_during_the_final_metrics_pass_ends_the_job(worker, monkeypatch):
    """After the last step nothing asked for the cancel: the job ran its whole final pass and succeeded."""
    interrupted = []

    def train(spec, callback, check, **hooks):
        callback(record(0))
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:  # the final pass, chunk by chunk
                check()
                time.sleep(0.01)
        except BaseException:
            interrupted.append(True)
            raise
        return TrainResult([], {}, {"final_loss": 1.0}, None, False, "compiled")

    monkeypatch.setattr(worker, "run_spec", train)
    job_id = submit(steps=1, record={"graph_svg": False})
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run_job(str(job_id))), daemon=True)
    thread.start()
    while load(job_id).progress_step != 1:
        time.sleep(0.05)
    with session_scope() as session:
        jobs.cancel_job(session, job_id)
    thread.join(timeout=60)
    assert outcome == ["cancelled"] and interrupted == [True]
    job = load(job_id)
    assert job.status == "cancelled" and [step for step, _ in history(job_id)] == [0]
    assert artifact(job_id, "params") is None
