"""The command line, `mgs`: key management against the database, every user command over real HTTP against
the real API on a real port. Output and exit codes are checked; a few runs go through a real subprocess
(`python -m services.cli`) to see what a terminal sees: the live progress bar, completion, no tracebacks."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from queue import Empty, Queue
from pathlib import Path

import httpx
import pytest
import typer
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from core.nn import MLP
from services import cli, queue, sweeps as search
from services.cli.common import API_ERROR, JOB_FAILED, UNREACHABLE, USAGE
from services.store import db, jobs as job_store
from tests.services.conftest import REPO, finish_job
from tests.services.test_sweeps import asha_prunes_a_trial, play_trial, stop_as_the_worker_does, sweep_body

STEPS = 4
# The CLI is a client: the API's work on both databases is tested beside it; here SQLite is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Received:
    """The requests an app has received, as (method, path): a test waits for the CLI's requests instead of
    sleeping for as long as they usually take (a slow or busy machine takes longer)."""

    def __init__(self):
        self.requests, self._changed = [], threading.Condition()

    def around(self, app):
        async def recording(scope, receive, send):
            if scope["type"] == "http":
                with self._changed:
                    self.requests.append((scope["method"], scope["path"]))
                    self._changed.notify_all()
            await app(scope, receive, send)
        return recording

    def count(self, method, path):
        with self._changed:
            return self.requests.count((method, path))

    def wait_for(self, count, method, path, timeout=60):
        """Until `count` requests `method path` have come in (in all)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.requests.count((method, path)) >= count, timeout), \
                f"{count} x {method} {path} expected; received {self.requests}"


@pytest.fixture
def received():
    return Received()


@pytest.fixture
def server(make_client, serve, monkeypatch, received):
    """The API on a real port (keys required), with a 'worker' that finishes each job as it is sent."""
    monkeypatch.setattr(queue, "enqueue", finish_job)
    return serve(received.around(make_client(AUTH_REQUIRED="true").app))


@pytest.fixture
def key(server, capsys):
    return mgs(capsys, "keys", "create", "--owner", "bob").out.strip()


class Run:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


def mgs(capsys, *argv, code=0):
    """Runs the CLI in this process; checks its exit code."""
    try:
        cli.main([str(arg) for arg in argv])
        exit_code = 0
    except SystemExit as e:
        exit_code = e.code
    printed = capsys.readouterr()
    assert exit_code == code, (exit_code, printed.out, printed.err)
    return Run(exit_code, printed.out, printed.err)


# Variables by which the environment the suite runs in (a terminal, CI) would make the CLI's pipes look like
# a terminal or size them (rich's, and typer's for its help): with FORCE_COLOR=1, PY_COLORS=1 or GITHUB_ACTIONS=true
# the Ctrl-C or --help tests failed (a progress bar, escape codes), with TERMINAL_WIDTH=60 the --help test.
TERMINAL_VARIABLES = ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS",
                      "LINES", "TERMINAL_WIDTH")
# The live displays of a CLI on a terminal, its output piped to the test: forced by TTY_*, and drawn only if the
# terminal is not a dumb one (with TERM=dumb, as CI systems often set, the bar and the leaderboard were not drawn).
AS_ON_A_TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "TERM": "xterm", "NO_COLOR": "1"}


def piped_env(**env):
    """The environment of a CLI whose output is piped (as in a script), with `env` on top."""
    return {**{name: value for name, value in os.environ.items() if name not in TERMINAL_VARIABLES}, **env}


def mgs_process(*argv, env=None, timeout=60):
    """Runs the CLI as the console script would, in its own process."""
    return subprocess.run([sys.executable, "-m", "services.cli", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=piped_env(**(env or {})))


def spec_file(tmp_path, **spec):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"steps": STEPS, **spec}))
    return path


@sqlite_only
def test_keys_create_list_revoke(service_env, capsys):
    nothing = mgs(capsys, "keys", "list")
    assert (nothing.out, nothing.err) == ("", "no keys\n")  # as every empty listing (see test_empty_listings_say_so)
    created = mgs(capsys, "keys", "create", "--owner", "alice", "--name", "laptop")
    key = created.out.strip()
    assert key.startswith("mgs_") and "shown once" in created.err
    [listed] = json.loads(mgs(capsys, "keys", "list", "--json").out)
    assert (listed["owner"], listed["name"], listed["revoked_at"]) == ("alice", "laptop", None)
    table = mgs(capsys, "keys", "list").out
    assert "alice" in table and "laptop" in table and "active" in table
    assert key not in table  # the key itself is never shown again

    mgs(capsys, "keys", "revoke", listed["id"])
    assert json.loads(mgs(capsys, "keys", "list", "--json").out)[0]["revoked_at"]
    assert "revoked" in mgs(capsys, "keys", "list").out
    refused = mgs(capsys, "keys", "revoke", listed["id"], code=USAGE)
    assert refused.err == f"mgs: no active key with id {listed['id']}\n"


def finish_with_the_graph_still_being_drawn(job_id):
    """Play a worker that has saved the results and is drawing the graph; returns its claim token."""
    with db.session_scope() as session:
        token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
        job_store.finish_job(session, job_id, token, "succeeded", [], 1, {"final_loss": 0.5}, "{}",
                             graph_pending=True)
    return token


@sqlite_only
def test_graph_waits_for_a_graph_that_is_being_drawn(server, received, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    tokens = {}
    monkeypatch.setattr(queue, "enqueue",
                        lambda job_id: tokens.update({str(job_id): finish_with_the_graph_still_being_drawn(job_id)}))
    job_id = mgs(capsys, "submit", spec_file(tmp_path)).out.strip()
    impatient = mgs(capsys, "graph", job_id, "-o", tmp_path / "g.svg", "--wait", "0", code=API_ERROR)
    assert "the graph is being drawn" in impatient.err and not (tmp_path / "g.svg").exists()

    def drawn_later():  # once the waiting CLI has asked (and been told 202): it must ask again
        received.wait_for(2, "GET", f"/jobs/{job_id}/graph.svg")
        with db.session_scope() as session:
            job_store.store_graph(session, job_id, tokens[job_id], "<svg>drawn</svg>", None)
    threading.Thread(target=drawn_later).start()
    mgs(capsys, "graph", job_id, "-o", tmp_path / "g.svg")
    assert (tmp_path / "g.svg").read_text() == "<svg>drawn</svg>"

    drawing = mgs(capsys, "submit", spec_file(tmp_path)).out.strip()  # cancelling it stops only the drawing
    assert mgs(capsys, "cancel", drawing).out == f"{drawing}: already succeeded; drawing its graph is stopped\n"


@sqlite_only
def test_every_job_command_over_http(server, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    job_id = mgs(capsys, "submit", spec_file(tmp_path)).out.strip()
    assert json.loads(mgs(capsys, "show", job_id, "--json").out)["status"] == "succeeded"

    shown = mgs(capsys, "show", job_id).out
    for text in (job_id, "succeeded", f"step 2 of {STEPS}", "final loss", "0.25", "attempts"):
        assert text in shown
    assert json.loads(mgs(capsys, "status", job_id, "--json").out)["id"] == job_id  # the old name still works

    page = json.loads(mgs(capsys, "list", "--json").out)
    assert [job["id"] for job in page["items"]] == [job_id]
    listed = mgs(capsys, "list", "--status", "succeeded").out
    assert job_id in listed and "succeeded" in listed and "0.25" in listed
    assert job_id not in mgs(capsys, "list", "--status", "failed").out

    history = json.loads(mgs(capsys, "loss", job_id, "--json").out)
    assert [(p["step"], p["loss"]) for p in history["points"]] == [(0, 0.5), (1, 0.25)]
    rows = [line.split() for line in mgs(capsys, "loss", job_id).out.splitlines()]
    assert ["0", "0.5"] == rows[-2][:2] and ["1", "0.25"] == rows[-1][:2]

    params = json.loads(mgs(capsys, "params", job_id).out)
    assert MLP.from_json(params).nin == 3
    mgs(capsys, "params", job_id, "-o", tmp_path / "params.json")
    assert json.loads((tmp_path / "params.json").read_text()) == params

    expected = MLP.from_json(params)([2.0, 3.0, -1.0]).data
    ys = json.loads(mgs(capsys, "predict", job_id, "--xs", "[[2.0, 3.0, -1.0]]", "--json").out)["ys"]
    assert ys == [pytest.approx(expected)]
    (tmp_path / "xs.json").write_text(json.dumps({"xs": [[2.0, 3.0, -1.0], [0, 0, 0]]}))
    predicted = mgs(capsys, "predict", job_id, "--file", tmp_path / "xs.json").out
    assert f"{expected:.6g}" in predicted and "2, 3, -1" in predicted

    written = mgs(capsys, "graph", job_id, "-o", tmp_path / "g.svg")
    assert (tmp_path / "g.svg").read_text().startswith("<svg") and "g.svg" in written.err
    monkeypatch.chdir(tmp_path)
    mgs(capsys, "graph", job_id)
    assert (tmp_path / f"{job_id}.svg").exists()
    unwritable = mgs(capsys, "graph", job_id, "-o", tmp_path / "no" / "such" / "dir.svg", code=USAGE)
    assert unwritable.err.startswith(f"mgs: cannot write the graph to {tmp_path}/no/such/dir.svg")

    cancelled = mgs(capsys, "cancel", job_id)  # exit 0: the README documents no exit code for it
    assert cancelled.out == f"{job_id}: already succeeded: nothing to cancel\n"
    assert json.loads(mgs(capsys, "cancel", job_id, "--json").out)["status"] == "succeeded"


@sqlite_only
def test_list_prints_the_next_pages_cursor_on_one_line(server, key, capsys, tmp_path, monkeypatch):
    """Rich folded the hint at 80 columns, so the ~100-character cursor pasted back was two broken pieces."""
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    first, second = (mgs(capsys, "submit", spec_file(tmp_path)).out.strip() for _ in range(2))
    page = mgs(capsys, "list", "--limit", "1")
    assert second in page.out and first not in page.out
    (hint,) = page.err.splitlines()
    cursor = hint.removeprefix("more: --cursor ")
    assert len(hint) > 80 and cursor == json.loads(mgs(capsys, "list", "--limit", "1", "--json").out)["next_cursor"]
    assert first in mgs(capsys, "list", "--limit", "1", "--cursor", cursor).out
    path = tmp_path / f"{'long-name-' * 8}.csv"  # so is where a download went
    assert mgs(capsys, "loss", first, "--csv", "-o", path).err.splitlines() == [f"wrote the loss history to {path} "
                                                                               f"({path.stat().st_size:,} bytes)"]


@sqlite_only
def test_piped_output_has_no_trailing_spaces(server, key, tmp_path):
    """Piped, rich padded every cell to its column's width (show's rows to the longest spec line, ~160
    columns): scripts reading the output got trailing spaces. Columns stay aligned; the right edge is bare."""
    env = {"SERVICE_URL": server, "API_KEY": key}
    first, second = (mgs_process("submit", spec_file(tmp_path), "--name", name, env=env).stdout.strip()
                     for name in ("a-longer-name", "short"))
    for argv in (("show", first), ("list",), ("compare", first, second), ("loss", first)):
        run = mgs_process(*argv, env=env)
        lines = run.stdout.splitlines()
        assert run.returncode == 0 and len(lines) > 2, (argv, run)
        assert [line for line in lines if line != line.rstrip()] == [], argv
    listed = mgs_process("list", env=env).stdout.splitlines()
    assert [line.index("succeeded") for line in listed if first in line or second in line] == \
           [listed[0].index("status")] * 2  # still aligned


@sqlite_only
def test_empty_listings_say_so(server, key, capsys, tmp_path, monkeypatch):
    """An empty `mgs list` printed its header row alone (sweeps and experiments too): now stdout stays empty
    (nothing for a script to count) and stderr says that there is nothing, or that the filter matched nothing."""
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    for argv, message in ((("list",), "no jobs"), (("sweep", "list"), "no sweeps"),
                          (("experiments", "list"), "no experiments")):
        empty = mgs(capsys, *argv)
        assert (empty.out, empty.err) == ("", message + "\n"), argv
        assert json.loads(mgs(capsys, *argv, "--json").out)["items"] == []  # --json: the API's answer, as ever
    job_id = mgs(capsys, "submit", spec_file(tmp_path), "-e", "runs").out.strip()
    for argv in (("--status", "failed"), ("-e", "other"), ("-t", "kind"), ("-f", "optimizer.lr>1")):
        unmatched = mgs(capsys, "list", *argv)
        assert (unmatched.out, unmatched.err) == ("", "no job matches the filter\n"), argv
    assert job_id in mgs(capsys, "list", "-e", "runs").out


@sqlite_only
def test_run_metadata_and_experiments(server, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    spec = spec_file(tmp_path)
    job_id = mgs(capsys, "submit", spec, "--name", "base", "-e", "moons-lr", "-t", "optimizer=sgd", "--tag",
                 "lr=0.1", "--notes", "first try").out.strip()
    other = mgs(capsys, "submit", spec, "-e", "other").out.strip()
    job = json.loads(mgs(capsys, "show", job_id, "--json").out)
    assert (job["name"], job["experiment"], job["tags"], job["notes"]) == (
        "base", "moons-lr", {"optimizer": "sgd", "lr": "0.1"}, "first try")
    shown = mgs(capsys, "show", job_id).out
    assert "moons-lr" in shown and "optimizer=sgd, lr=0.1" in shown and "first try" in shown

    def listed(*argv):
        return [item["id"] for item in json.loads(mgs(capsys, "list", "--json", *argv).out)["items"]]
    assert listed() == [other, job_id]
    assert listed("-e", "moons-lr") == listed("--tag", "lr=0.1") == listed("-t", "optimizer") == [job_id]
    assert listed("-t", "lr=0.2") == [] and listed("-e", "nope") == []
    assert "base" in mgs(capsys, "list", "-e", "moons-lr").out

    edited = json.loads(mgs(capsys, "edit", job_id, "--name", "renamed", "-t", "lr=0.2", "-t", "seed=1",
                            "--untag", "optimizer", "--notes", "", "--json").out)
    assert (edited["name"], edited["tags"], edited["notes"]) == ("renamed", {"lr": "0.2", "seed": "1"}, "")
    assert "nothing to change" in mgs(capsys, "edit", job_id, code=USAGE).err
    assert "expected KEY=VALUE" in mgs(capsys, "submit", spec, "-t", "lr", code=USAGE).err

    experiments = json.loads(mgs(capsys, "experiments", "list", "--json").out)["items"]
    assert sorted((e["name"], e["jobs"]) for e in experiments) == [("moons-lr", 1), ("other", 1)]
    made = mgs(capsys, "experiments", "create", "empty", "--description", "for later").out.strip()
    assert json.loads(mgs(capsys, "experiments", "show", made, "--json").out)["description"] == "for later"
    assert "for later" in mgs(capsys, "experiments", "show", "empty").out
    assert "409" in mgs(capsys, "experiments", "create", "empty", code=API_ERROR).err
    assert "no experiment named 'nope'" in mgs(capsys, "experiments", "show", "nope", code=API_ERROR).err

    refused = mgs(capsys, "experiments", "delete", "moons-lr", code=USAGE)  # stdin is not a terminal: no prompt
    assert "--yes" in refused.err and listed("-e", "moons-lr") == [job_id]
    assert "its 1 jobs" in mgs(capsys, "experiments", "delete", "moons-lr", "--yes").err
    assert listed() == [other]
    assert "404" in mgs(capsys, "show", job_id, code=API_ERROR).err


@sqlite_only
def test_submit_wait_prints_the_finished_job_and_exits_3_when_it_did_not_succeed(server, key, capsys, tmp_path,
                                                                              monkeypatch):
    spec = spec_file(tmp_path)
    job = json.loads(mgs(capsys, "submit", spec, "--wait", "--json", "--url", server, "--key", key).out)
    assert job["status"] == "succeeded" and job["metrics"]["final_loss"] == 0.25
    assert "succeeded" in mgs(capsys, "submit", spec, "--wait", "--url", server, "--key", key).out

    def fail(job_id):
        with db.session_scope() as session:
            token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
            job_store.fail_job(session, job_id, token, "ValueError: the loss diverged")
    monkeypatch.setattr(queue, "enqueue", fail)
    failed = mgs(capsys, "submit", spec, "--wait", "--url", server, "--key", key, code=JOB_FAILED)
    assert "failed" in failed.out and "the loss diverged" in failed.out
    failed_id = json.loads(mgs(capsys, "list", "--status", "failed", "--json", "--url", server, "--key",
                               key).out)["items"][0]["id"]
    assert mgs(capsys, "cancel", failed_id, "--url", server, "--key", key).out == \
           f"{failed_id}: already failed: nothing to cancel\n"  # printed "…: failed", as if cancelling had failed it


@sqlite_only
def test_submit_wait_shows_live_progress_fed_by_the_api(server, received, key, tmp_path, monkeypatch):
    """A worker that takes a while: the bar (forced live, as on a terminal) shows each step of the total,
    the loss and an ETA as the API reports them, then the finished job. Each step lasts 0.6 s and until the CLI
    has polled it three times: the bar, redrawn ten times a second, has drawn it by then however slow the
    machine (a step the CLI polls too late for, or the bar draws too late, is missing from its output)."""
    workers = []

    def slow_worker(job_id):
        def work():
            path = f"/jobs/{job_id}"
            with db.session_scope() as session:
                token = job_store.claim_job(session, job_id, stale_after=60, max_attempts=3)
                for step in range(STEPS):
                    time.sleep(0.6)
                    job_store.record_progress(session, job_id, token, [job_store.Point(step, 1 / (step + 1), 0.1)],
                                              steps_done=step + 1, latest_loss=1 / (step + 1))
                    received.wait_for(received.count("GET", path) + 3, "GET", path)  # polls that see it
                job_store.finish_job(session, job_id, token, "succeeded", [], steps_done=STEPS,
                                     metrics={"final_loss": 1 / STEPS, "steps_done": STEPS}, params_json=None)
        workers.append(threading.Thread(target=work))
        workers[-1].start()
    monkeypatch.setattr(queue, "enqueue", slow_worker)

    run = mgs_process("submit", spec_file(tmp_path), "--wait", "--poll", "0.1", "--url", server, "--key", key,
                      env={**AS_ON_A_TERMINAL, "COLUMNS": "120"})
    workers[0].join()
    assert run.returncode == 0, run.stderr
    for step, loss in [(1, "1"), (2, "0.5"), (3, "0.333333"), (4, "0.25")]:
        assert f"{step}/{STEPS} loss {loss}" in run.stderr
    assert "running" in run.stderr and "succeeded" in run.stderr and "ETA" in run.stderr
    assert "succeeded" in run.stdout and "step 4 of 4" in run.stdout


@sqlite_only
def test_list_filters_and_sorts_and_compare_prints_runs_side_by_side(server, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    slow = mgs(capsys, "submit", spec_file(tmp_path, optimizer={"lr": 0.1})).out.strip()
    fast = mgs(capsys, "submit", spec_file(tmp_path, optimizer={"lr": 0.3})).out.strip()

    def listed(*argv):
        return [item["id"] for item in json.loads(mgs(capsys, "list", "--json", *argv).out)["items"]]
    assert listed("--filter", "optimizer.lr>=0.2 and metrics.final_loss<1") == [fast]
    assert listed("--sort", "optimizer.lr", "--asc") == [slow, fast]
    assert listed("--sort", "optimizer.lr") == [fast, slow]
    assert "accuracy" in mgs(capsys, "list", "--sort", "metrics.accuracy").out.splitlines()[0]
    assert "query.filter: unknown field 'bogus'" in mgs(capsys, "list", "-f", "bogus>1", code=API_ERROR).err

    compared = json.loads(mgs(capsys, "compare", slow, fast, "--json").out)
    assert compared["differences"] == {"optimizer.lr": [0.1, 0.3]}
    lines = mgs(capsys, "compare", slow, fast, "--points", "2").out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if not line.startswith("loss @")}
    assert rows["id"] == [slow, fast] and rows["optimizer.lr"] == ["0.1", "0.3"]
    assert rows["metrics.final_loss"] == ["0.25", "0.25"]
    assert [line.split()[-2:] for line in lines if line.startswith("loss @")] == [["0.5", "0.5"], ["0.25", "0.25"]]
    assert "422" in mgs(capsys, "compare", slow, code=API_ERROR).err


@sqlite_only
def test_a_pruned_trial_says_pruned_in_list_show_compare_and_cancel(server, key, capsys, tmp_path, monkeypatch):
    """Its job's status is cancelled; the CLI printed that, where the sweep's leaderboard says pruned."""
    monkeypatch.setattr(queue, "enqueue", lambda job_id: None)  # the trials wait: this test plays their worker
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    with httpx.Client(base_url=server) as http:
        sweep, bad = asha_prunes_a_trial(http, key)
    stop_as_the_worker_does(bad["job_id"])
    plain = mgs(capsys, "submit", spec_file(tmp_path)).out.strip()
    assert mgs(capsys, "cancel", plain).out.strip() == f"{plain}: cancelled"  # a job cancelled by hand stays so

    listed = mgs(capsys, "list", "--sweep", sweep["id"]).out.splitlines()
    assert [line.split()[2] for line in listed if bad["job_id"] in line] == ["pruned"]
    assert json.loads(mgs(capsys, "show", bad["job_id"], "--json").out)["status"] == "cancelled"  # the API's
    shown = [line.split() for line in mgs(capsys, "show", bad["job_id"]).out.splitlines()]
    assert [row[1:] for row in shown if row[:1] == ["status"]] == [["pruned"]]
    compared = [line.split() for line in mgs(capsys, "compare", bad["job_id"], plain).out.splitlines()]
    assert [row[1:] for row in compared if row[:1] == ["status"]] == [["pruned", "cancelled"]]
    assert mgs(capsys, "cancel", bad["job_id"]).out.strip() == f"{bad['job_id']}: pruned"


@sqlite_only
def test_rerun_export_and_delete(server, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_URL", server)
    monkeypatch.setenv("API_KEY", key)
    job_id = mgs(capsys, "submit", spec_file(tmp_path, seed=3), "-e", "runs", "-t", "kind=base").out.strip()

    again = json.loads(mgs(capsys, "rerun", job_id, "--wait", "--json").out)
    assert (again["status"], again["spec"]["seed"], again["experiment"], again["tags"]) == (
        "succeeded", 3, "runs", {"kind": "base"})
    changed_id = mgs(capsys, "rerun", job_id, "--seed", "9", "--set", "optimizer.lr=0.5", "--set",
                     "optimizer.schedule=linear", "--name", "faster").out.strip()
    changed = json.loads(mgs(capsys, "show", changed_id, "--json").out)
    assert changed["name"] == "faster" and changed["spec"]["seed"] == 9
    assert (changed["spec"]["optimizer"]["lr"], changed["spec"]["optimizer"]["schedule"]) == (0.5, "linear")
    assert "expected PATH=VALUE" in mgs(capsys, "rerun", job_id, "--set", "lr", code=USAGE).err
    assert "422" in mgs(capsys, "rerun", job_id, "--set", "optimizer.lr=-1", code=API_ERROR).err

    assert mgs(capsys, "loss", job_id, "--csv").out == "step,loss,accuracy,lr\n0,0.5,,0.1\n1,0.25,,0.1\n"
    mgs(capsys, "loss", job_id, "--csv", "-o", tmp_path / "loss.csv")
    assert (tmp_path / "loss.csv").read_text().startswith("step,loss")

    assert "--yes" in mgs(capsys, "delete", job_id, code=USAGE).err  # not at a terminal: never asks
    deleted = mgs(capsys, "delete", job_id, changed_id, "--yes").err
    assert f"deleted job {job_id}" in deleted and f"deleted job {changed_id}" in deleted
    assert "404" in mgs(capsys, "show", job_id, code=API_ERROR).err
    assert [j["id"] for j in json.loads(mgs(capsys, "list", "--json").out)["items"]] == [again["id"]]


@sqlite_only
def test_without_keys_cancel_and_delete_get_through(make_client, serve, capsys, tmp_path, monkeypatch):
    """An open server (the embedded default) refuses a bodiless POST and a DELETE that carry no
    X-Requested-With, as a cross-site form's would; the CLI sends it on every request."""
    monkeypatch.setenv("SERVICE_URL", serve(make_client().app))  # AUTH_REQUIRED=false; jobs stay queued
    monkeypatch.delenv("API_KEY", raising=False)
    job_id = mgs(capsys, "submit", spec_file(tmp_path)).out.strip()
    assert mgs(capsys, "cancel", job_id).out.strip() == f"{job_id}: cancelled"
    assert f"deleted job {job_id}" in mgs(capsys, "delete", job_id, "--yes").err
    assert "404" in mgs(capsys, "show", job_id, code=API_ERROR).err


@pytest.fixture
def trial_worker(make_client, serve, monkeypatch):
    """The API on a real port and a worker thread that plays each trial sent (a short pause, a history,
    a final loss that improves with each trial), then advances the sweep as the real worker does.
    Returns (url, pause): set `pause` and the worker leaves what it is sent queued."""
    sent, stop, pause = Queue(), threading.Event(), threading.Event()
    monkeypatch.setattr(queue, "enqueue", sent.put)
    url = serve(make_client().app)

    def work():
        played = 0
        while not stop.is_set():
            try:
                job_id = sent.get(timeout=0.05)
            except Empty:
                continue
            if pause.is_set():
                continue
            time.sleep(0.2)
            played += 1
            play_trial(job_id, [1.0, 1 / (played + 1)])
            with db.session_scope() as session:
                sweep_id = job_store.get_job(session, job_id).sweep_id
            search.advance(sweep_id)
    thread = threading.Thread(target=work)
    thread.start()
    yield url, pause
    stop.set()
    thread.join()


@sqlite_only
def test_sweeps_create_watch_show_list_cancel(trial_worker, capsys, tmp_path, monkeypatch):
    url, pause = trial_worker
    monkeypatch.setenv("SERVICE_URL", url)
    body = tmp_path / "sweep.json"
    body.write_text(json.dumps(sweep_body()))

    watched = mgs_process("sweep", "create", body, "--watch", "--poll", "0.1",
                          env={**AS_ON_A_TERMINAL, "COLUMNS": "200"})
    assert watched.returncode == 0, watched.stderr
    assert ": running, " in watched.stderr and "optimizer.lr" in watched.stderr  # the live leaderboard
    assert ": finished, 4 of 4 trials (4 succeeded)" in watched.stdout
    ranked = [line.split() for line in watched.stdout.splitlines()[3:]]
    losses = [float(row[3]) for row in ranked]
    assert len(losses) == 4 and losses == sorted(losses)  # best (lowest final loss) first
    sweep_id = watched.stdout.split()[1].rstrip(":")

    sweep = json.loads(mgs(capsys, "sweep", "show", sweep_id, "--json").out)
    assert sweep["status"] == "finished" and len(sweep["leaderboard"]) == 4
    assert sweep["best"]["job_id"] in mgs(capsys, "sweep", "show", sweep_id).out
    assert sweep_id in mgs(capsys, "sweep", "list").out
    trials = {t["id"] for t in json.loads(mgs(capsys, "list", "--sweep", sweep_id, "--json").out)["items"]}
    assert trials == {t["job_id"] for t in sweep["leaderboard"]}
    trial = sweep["best"]["job_id"]
    assert json.loads(mgs(capsys, "show", trial, "--json").out)["status"] == "succeeded"  # trials are jobs

    pause.set()
    second = mgs(capsys, "sweep", "create", body).out.strip()
    assert json.loads(mgs(capsys, "sweep", "cancel", second, "--json").out)["status"] == "cancelled"
    assert mgs(capsys, "sweep", "cancel", second).out.strip() == f"{second}: cancelled"
    assert ": cancelled" in mgs(capsys, "sweep", "watch", second, code=JOB_FAILED).out
    assert "422" in mgs(capsys, "sweep", "create", spec_file(tmp_path), code=API_ERROR).err


def as_from_a_terminal():
    """In the child before exec: SIGINT as a shell in a terminal leaves it (default action, not blocked).
    A child inherits an ignored or blocked SIGINT from the process that starts it, and Python then installs
    no KeyboardInterrupt handler. Under `make test` in CI (three xdist workers, a quiet machine) the CLI
    ignored this test's SIGINT and it timed out, while the test passed on its own: what the CLI does on a
    user's Ctrl-C is the question here, not what the test's worker process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@sqlite_only
def test_ctrl_c_while_waiting_leaves_the_job_running_and_exits_130(server, received, key, tmp_path, monkeypatch,
                                                                   enqueued):
    monkeypatch.setattr(queue, "enqueue", enqueued.append)  # no worker: the job stays queued
    waiting = subprocess.Popen([sys.executable, "-m", "services.cli", "submit", spec_file(tmp_path), "--wait",
                                "--poll", "0.1", "--url", server, "--key", key], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_from_a_terminal,
                               env=piped_env())
    deadline = time.monotonic() + 60
    while not enqueued and time.monotonic() < deadline:
        time.sleep(0.05)
    # Its second GET of the job comes from the polling loop (the first is before it): Ctrl-C lands there,
    # however long the CLI took to start, submit and draw its bar (it had 0.5 s).
    received.wait_for(2, "GET", f"/jobs/{enqueued[0]}")
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 130, err
    assert err.startswith("mgs: stopped following job ") and "mgs cancel" in err and err.count("\n") == 1
    with db.session_scope() as session:
        assert job_store.get_job(session, enqueued[0]).status == "queued"


@sqlite_only
def test_failures_are_one_line_with_documented_exit_codes(server, key, capsys, tmp_path):
    refused = mgs(capsys, "list", "--url", server, "--key", "mgs_wrong", code=API_ERROR)
    assert refused.err.startswith("mgs: 401 from GET /jobs:") and refused.err.count("\n") == 1
    missing = mgs(capsys, "show", "00000000-0000-0000-0000-000000000000", "--url", server, "--key", key,
                  code=API_ERROR)
    assert "404" in missing.err and "no job" in missing.err
    invalid = mgs(capsys, "submit", spec_file(tmp_path, steps=0), "--url", server, "--key", key, code=API_ERROR)
    assert "422" in invalid.err and "body.steps" in invalid.err
    assert "cannot reach" in mgs(capsys, "list", "--url", "http://127.0.0.1:9", code=UNREACHABLE).err
    assert "bad --url" in mgs(capsys, "list", "--url", "nonsense://x", code=USAGE).err

    not_json = tmp_path / "bad.json"
    not_json.write_text("{steps: 2")
    for path in (not_json, tmp_path / "missing.json"):
        failed = mgs(capsys, "submit", path, "--url", server, code=USAGE)
        assert failed.err.startswith(f"mgs: cannot read a job spec from {path}")
    assert "exactly one of --xs or --file" in mgs(capsys, "predict", "x", "--url", server, code=USAGE).err
    assert "--xs is not JSON" in mgs(capsys, "predict", "x", "--xs", "[[1,", "--url", server, code=USAGE).err
    assert "No such option" in mgs(capsys, "list", "--bogus", code=USAGE).err
    assert "nope" in mgs(capsys, "list", "--status", "nope", code=USAGE).err


def test_a_server_that_is_not_the_api_is_a_message_not_a_traceback(serve):
    impostor = FastAPI()
    impostor.get("/jobs")(lambda: HTMLResponse("<html>hello</html>"))
    impostor.get("/jobs/{job_id}")(lambda job_id: JSONResponse({"unexpected": True}))
    url = serve(impostor)
    for argv in (("list",), ("show", "x")):
        run = mgs_process(*argv, "--url", url)
        assert run.returncode == API_ERROR, run.stderr
        assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1 and run.stderr.startswith("mgs: ")


def test_help_documents_exit_codes_and_completion_works():
    helped = mgs_process("--help", env={"COLUMNS": "200"})
    assert helped.returncode == 0
    for text in ("0 ok", "1 bad command line", "2 the API refused", "3 the job or sweep", "4 the API could not",
                 "--install-completion"):
        assert text in helped.stdout
    completed = mgs_process(env={"_MGS_COMPLETE": "complete_bash", "COMP_WORDS": "mgs su", "COMP_CWORD": "1"})
    assert completed.stdout.split() == ["submit"]


def test_make_installs_the_mgs_console_script():
    script = Path(sys.executable).with_name("mgs")
    run = subprocess.run([script, "list", "--url", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stderr.split(":")[0]) == (UNREACHABLE, "mgs")


def test_no_help_paragraph_breaks_mid_sentence():
    """Rich's help keeps a docstring's line breaks inside a paragraph: `mgs --help` listed edit as "… The spec
    and" with "results never change." on a line of its own."""
    def commands(group, prefix=""):
        for name, command in getattr(group, "commands", {}).items():
            yield prefix + name, command
            yield from commands(command, f"{prefix}{name} ")

    broken = {name: command.help for name, command in commands(typer.main.get_command(cli.app))
              if any("\n" in paragraph for paragraph in (command.help or "").split("\n\n"))}
    assert broken == {}
