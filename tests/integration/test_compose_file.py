"""docker-compose.yml, validated by a real compose parser (no Docker engine runs here), and checked
for what the stack promises: health checks, a one-shot migration first, keys required, graceful stop."""
import re
import shutil
import subprocess

import pytest
from compose_spec import PyCompose

from tests.integration.processes import REPO, compose_file, compose_text

SERVICES = {"postgres", "redis", "migrate", "api", "worker", "flower"}


def test_the_compose_file_parses():
    assert set(PyCompose.from_yaml(compose_text()).service_names()) == SERVICES


def test_the_parser_rejects_what_compose_rejects():
    with pytest.raises(ValueError):
        PyCompose.from_yaml("services:\n  api:\n    image: x\n    stop_grace_period: soon\n")
    with pytest.raises(ValueError):
        PyCompose.from_yaml("services:\n  api:\n    image: x\n    replicas: 2\n")


def test_every_long_running_service_has_a_health_check():
    services = compose_file()["services"]
    assert {name for name, s in services.items() if "healthcheck" in s} == SERVICES - {"migrate"}


def test_flower_is_optional():
    services = compose_file()["services"]
    assert services["flower"]["profiles"] == ["flower"]
    assert not any("profiles" in s for name, s in services.items() if name != "flower")


def test_the_migration_runs_once_before_the_api_and_workers():
    services = compose_file()["services"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_stack_requires_api_keys_and_a_server_secret():
    for name in ("migrate", "api", "worker"):
        env = compose_file()["services"][name]["environment"]
        assert env["AUTH_REQUIRED"] == "true"
        assert env["API_KEY_SECRET"].startswith("${API_KEY_SECRET:?")
        assert env["BROKER_URL"].startswith("redis://") and env["DATABASE_URL"].startswith("postgresql")


REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]+\}")


def secrets_in(services: dict):
    """(service, name, value) of every secret the file sets: variables named like a password or a
    secret, and the password part of every URL with one (`scheme://user:password@host`)."""
    for service, definition in services.items():
        for name, value in definition.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET", name):
                yield service, name, value
            for password in re.findall(r"://[^/:@]+:(.*)@", str(value)):
                yield service, f"{name} (its password)", password


def test_the_compose_file_holds_no_literal_password():
    """Every secret is a required variable (`${NAME:?message}`, from the environment or .env), so the
    file holds none and compose refuses to start without it."""
    services = compose_file()["services"]
    found = list(secrets_in(services))
    assert {(service, name) for service, name, _ in found} >= {
        ("postgres", "POSTGRES_PASSWORD"), *((s, "DATABASE_URL (its password)") for s in ("migrate", "api", "worker")),
        *((s, "API_KEY_SECRET") for s in ("migrate", "api", "worker"))}
    literal = [(service, name, value) for service, name, value in found if not REQUIRED_VARIABLE.fullmatch(value)]
    assert not literal, literal
    # the database and its clients read the same variable
    assert REQUIRED_VARIABLE.fullmatch(services["postgres"]["environment"]["POSTGRES_PASSWORD"])[1] == \
        "POSTGRES_PASSWORD"
    for name in ("migrate", "api", "worker"):
        assert "${POSTGRES_PASSWORD:?" in services[name]["environment"]["DATABASE_URL"]


def test_workers_scale_and_stop_gracefully():
    worker = compose_file()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs neither
    assert worker["stop_grace_period"] == "2m"  # SIGTERM = Celery's warm shutdown: the running job finishes
    assert "--concurrency=1" in worker["command"]


def test_the_image_installs_graphviz():
    assert "graphviz" in (REPO / "Dockerfile").read_text()


def compose_client():
    """`docker-compose` or `docker compose`, whichever works here (the parser needs no engine); else None."""
    for client in (["docker-compose"], ["docker", "compose"]):
        if shutil.which(client[0]) and subprocess.run([*client, "version"], capture_output=True).returncode == 0:
            return client
    return None


@pytest.mark.skipif(compose_client() is None, reason="no docker compose client installed")
def test_docker_compose_config_accepts_the_file():
    done = subprocess.run([*compose_client(), "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                          env={"API_KEY_SECRET": "x" * 32, "POSTGRES_PASSWORD": "y" * 32,
                               "PATH": "/usr/local/bin:/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(compose_client() is None, reason="no docker compose client installed")
def test_docker_compose_refuses_to_run_without_a_database_password(tmp_path):
    no_env_file = tmp_path / ".env"  # (not the .env a developer may keep next to the compose file)
    no_env_file.write_text("")
    done = subprocess.run([*compose_client(), "--env-file", str(no_env_file), "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                          env={"API_KEY_SECRET": "x" * 32, "PATH": "/usr/local/bin:/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr, done.stderr
