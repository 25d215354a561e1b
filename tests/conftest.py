"""Suite-wide: `make test` runs on two pytest-xdist workers (`--dist loadgroup`). The tests that
start real service processes and wait on real time (tests/faults, tests/integration: heartbeats,
stale-job sweeps, server restarts) form one group, so they run one after another on one worker,
as in a serial run, while the other worker runs the in-process tests beside them."""
import os
from pathlib import Path

import pytest

PROCESS_TESTS = [Path(__file__).parent / name for name in ("faults", "integration")]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: no error when run with -p no:xdist
def pytest_configure_node(node):
    """(controller) Tell each worker what COLUMNS the suite was started with."""
    node.workerinput["columns"] = os.environ.get("COLUMNS")


def pytest_configure(config):
    """(worker) An xdist worker gets COLUMNS=80 set for it; the CLI sizes its piped tables by
    COLUMNS (tests/services/test_cli.py), so restore the environment the suite was started in."""
    if hasattr(config, "workerinput"):
        os.environ.pop("COLUMNS", None)
        if config.workerinput.get("columns") is not None:
            os.environ["COLUMNS"] = config.workerinput["columns"]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the mark into the test's id
def pytest_collection_modifyitems(config, items):
    for item in items:
        if in_process_group(item):
            item.add_marker(pytest.mark.xdist_group("processes"))
    if hasattr(config, "workerinput"):
        # The group is the longest unit of work: handed out first, it runs beside everything else
        # instead of after the in-process tests collected before it.
        items.sort(key=lambda item: not in_process_group(item))


def in_process_group(item):
    return any(item.path.is_relative_to(directory) for directory in PROCESS_TESTS)
