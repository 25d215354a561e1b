"""The compose stack run for real: a Docker engine, the project's Dockerfile and docker-compose.yml, unchanged.

Run with `make test-compose` (root only: it installs Debian's docker.io, docker-compose and mmdebstrap if
absent and starts dockerd if none runs, stopping it at the end only if it started it). Elsewhere, and
under plain `make test`, these tests are skipped with the reason. Base images that cannot be pulled
are replaced by local stand-ins (tests/compose/standins.py)."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.compose import standins
from tests.compose.stack import TIMINGS, WORKERS, Stack, step

ENABLE = "MGS_COMPOSE_TEST"
DOCKERD_LOG = Path("/var/log/mgs-compose-dockerd.log")
APT_PACKAGES = {"dockerd": "docker.io", "docker-compose": "docker-compose", "mmdebstrap": "mmdebstrap"}

LOG_DIR = Path(__file__).resolve().parents[2] / "var" / "compose-test-logs"  # each container's log, per run


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = None
    if os.environ.get(ENABLE) != "1":
        reason = f"the compose stack test runs with `make test-compose` ({ENABLE}=1)"
    elif os.geteuid() != 0:
        reason = "the compose test needs root: it installs and starts a Docker engine (dockerd)"
    if reason:
        for item in items:
            if here in Path(item.fspath).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("compose test: time per step")
        for name, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:8.1f} s  {name}")


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker_engine():
    """Debian's docker.io, docker-compose and mmdebstrap installed, and a running dockerd."""
    missing = [package for command, package in APT_PACKAGES.items() if shutil.which(command) is None]
    if missing:
        with step(f"apt-get install {' '.join(missing)}"):
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing],
                           check=True, env=env, stdout=subprocess.DEVNULL)
    dockerd = None
    if not _docker_answers():
        with step("start dockerd"):
            log = DOCKERD_LOG.open("ab")
            dockerd = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            deadline = time.monotonic() + 60
            while not _docker_answers():
                if dockerd.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not start; see {DOCKERD_LOG}")
                time.sleep(0.5)
    yield
    if dockerd is not None:  # only the engine this test started
        with step("stop dockerd"):
            dockerd.terminate()
            dockerd.wait(timeout=60)


@pytest.fixture(scope="session")
def base_images(docker_engine):
    with step("base images (stand-ins where the real ones are absent)"):
        outcome = standins.ensure_all()
    for image, (how, seconds) in outcome.items():
        TIMINGS.append((f"  {image}: {how}", seconds))
    return outcome


@pytest.fixture(scope="session")
def stack(base_images):
    """The README's commands: build, `up -d --scale worker=3`, wait for health, create a key.
    `down -v` at the end whatever happened, and nothing of the project left behind."""
    stack = Stack(LOG_DIR)
    stack.down()  # what an interrupted earlier run may have left (this project's objects only)
    try:
        with step("build the service image (docker-compose.yml's build)"):
            stack.compose("build")
        with step("up -d --scale worker=3"):
            stack.compose("up", "-d", "--scale", f"worker={WORKERS}")
        with step("wait until every container is healthy"):
            stack.wait_healthy(timeout=180)
        with step("create a key (compose run --rm api ... keys create)"):
            stack.key = stack.create_key("alice")
        yield stack
    finally:
        stack.save_logs()
        with step("down -v"):
            stack.down()
        left = stack.leftovers()
        assert left == {"containers": [], "networks": [], "volumes": []}, left
