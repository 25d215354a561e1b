"""The command line: key management against the database, user commands over real HTTP."""
import json

import pytest

from services import cli, queue
from tests.services.conftest import finish_job


@pytest.fixture
def server(make_client, serve, monkeypatch):
    """The API on a real port (keys required), with a 'worker' that finishes each job as it is sent."""
    monkeypatch.setattr(queue, "enqueue", finish_job)
    return serve(make_client(AUTH_REQUIRED="true").app)


def run(capsys, *argv):
    cli.main(list(argv))
    return capsys.readouterr().out


def test_keys_create_list_revoke(service_env, capsys):
    cli.main(["keys", "create", "--owner", "alice", "--name", "laptop"])
    printed = capsys.readouterr()
    key = printed.out.strip()
    assert key.startswith("mgs_") and "shown once" in printed.err
    listed = run(capsys, "keys", "list").splitlines()
    assert len(listed) == 1
    key_id, owner, name, _, state = listed[0].split("\t")
    assert (owner, name, state) == ("alice", "laptop", "active")
    assert key not in listed[0]  # the key itself is never shown again

    run(capsys, "keys", "revoke", key_id)
    assert run(capsys, "keys", "list").split("\t")[-1].startswith("revoked")
    with pytest.raises(SystemExit, match="no active key"):
        run(capsys, "keys", "revoke", key_id)


def test_user_commands_over_http(server, capsys, tmp_path, monkeypatch):
    key = run(capsys, "keys", "create", "--owner", "bob").strip()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"steps": 2}))

    job = json.loads(run(capsys, "submit", str(spec), "--wait", "--url", server, "--key", key))
    assert job["status"] == "succeeded"

    monkeypatch.setenv("API_KEY", key)
    assert json.loads(run(capsys, "status", job["id"], "--url", server))["id"] == job["id"]
    assert run(capsys, "list", "--url", server).split("\t")[:2] == [job["id"], "succeeded"]
    assert run(capsys, "loss", job["id"], "--url", server).splitlines() == ["0\t0.5", "1\t0.25"]
    assert json.loads(run(capsys, "cancel", job["id"], "--url", server))["status"] == "succeeded"


def test_errors_are_reported_with_the_servers_message(server, capsys):
    with pytest.raises(SystemExit, match="401"):
        run(capsys, "list", "--url", server, "--key", "mgs_wrong")
    with pytest.raises(SystemExit, match="cannot reach"):
        run(capsys, "list", "--url", "http://127.0.0.1:9", "--key", "x")


def test_a_spec_file_that_is_missing_or_not_json_is_a_message_not_a_traceback(capsys, tmp_path):
    not_json = tmp_path / "spec.json"
    not_json.write_text("{steps: 2")
    for path in (not_json, tmp_path / "missing.json"):
        with pytest.raises(SystemExit, match=f"cannot read a job spec from {path}"):
            run(capsys, "submit", str(path), "--url", "http://127.0.0.1:9")
