"""Suite-wide: `make test` runs on three pytest-xdist workers (`--dist loadgroup`) on the two cores.

The tests that start real service processes and wait on real time (tests/faults, tests/integration:
heartbeats, stale-job sweeps, server restarts; tests/web: a live curve) spend most of their time
waiting. They form two groups, each run one test after another on one worker (as in a serial run)
with its own throwaway servers, while the third worker runs the CPU-bound in-process tests beside
them; a worker whose group is done takes in-process tests too. Groups are handed out first, then
the longest in-process tests, so that none of these ends the run alone (in this order: xdist's own
reordering, largest unit first, is switched off)."""
import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# Two groups, by module (the browser tests share one service and one Chromium per worker, so they stay
# together); a module not listed joins the first group. The first holds every fault test that uses the
# session's throwaway PostgreSQL, Redis and API (tests/faults/conftest.py), so one worker starts them and
# calibrates and replays the fault jobs once; the second, the tests that start the embedded service or the
# compose commands. Their lengths need not match: each takes in-process tests when it is done.
PROCESS_GROUPS = {
    "processes-1": ["faults/test_fault_kills.py", "faults/test_fault_redelivery.py", "faults/test_fault_limits.py",
                    "faults/test_fault_servers.py", "faults/test_fault_servers_restart.py",
                    "faults/test_fault_sweeps.py"],
    "processes-2": ["faults/test_fault_embedded.py", "integration/test_compose_commands.py",
                    "integration/test_embedded.py", "web/test_dashboard.py"],
}
PROCESS_DIRECTORIES = [TESTS / name for name in ("faults", "integration", "web")]
# In-process tests that take far longer than the rest (CPU): the two Schemathesis runs (~80 and ~120 s in
# make test, by far the longest units). Handed out right after the groups, so the third worker starts them
# at once and runs them back to back (it takes up to three units ahead) while the groups' workers mostly
# wait; the other in-process tests, short ones, then fill every worker to the end. (The second run used
# to close the second group instead: it started ~160 s in and ran alone for the last ~80 s of the suite.)
LONGEST = ["services/test_schemathesis.py"]
# In-process modules kept together on one worker because they share a costly import: the PyTorch reference
# tests import torch (a few CPU seconds per process) when they first run (tests/core/torch_twin.py), so
# only the worker that runs this group pays for it.
IN_PROCESS_GROUPS = {"torch": ["core/test_engine_ops.py", "core/test_engine_properties.py", "core/test_optim.py",
                               "core/test_losses.py"]}


def pytest_configure(config):
    """No COLUMNS in the tests' environment, whatever started the suite: the CLI sizes its piped tables by
    COLUMNS (read once, when tests/services/test_cli.py imports it), and its tests read the tables a script's
    pipe gets, unfolded. An xdist worker gets COLUMNS=80 set for it, and a terminal or CI may export one:
    with COLUMNS=80 exported, two of test_cli's table tests failed, in a serial run too."""
    os.environ.pop("COLUMNS", None)
    # xdist hands out its work units largest first (by number of tests) unless told not to: the groups and
    # the torch group ahead of everything, then single tests in collection order, whatever order
    # pytest_collection_modifyitems gives. Off, they go out in that order (see the module's docstring).
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the mark into the test's id
def pytest_collection_modifyitems(config, items):
    for item in items:
        if group := xdist_group(item):
            item.add_marker(pytest.mark.xdist_group(group))
    if hasattr(config, "workerinput"):
        # Every worker sorts alike (xdist requires the same collection): the groups, the longest
        # in-process tests, then the rest in their usual order.
        items.sort(key=hand_out_order)


def xdist_group(item):
    if any(item.path.is_relative_to(directory) for directory in PROCESS_DIRECTORIES):
        module = item.path.relative_to(TESTS).as_posix()
        return next((group for group, modules in PROCESS_GROUPS.items() if module in modules), "processes-1")
    module = item.path.relative_to(TESTS).as_posix() if item.path.is_relative_to(TESTS) else None
    return next((group for group, modules in IN_PROCESS_GROUPS.items() if module in modules), None)


def hand_out_order(item):
    group = xdist_group(item)
    if group in PROCESS_GROUPS:
        return 0, list(PROCESS_GROUPS).index(group)
    return (1, 0) if any(item.nodeid.startswith(f"tests/{name}") for name in LONGEST) else (2, 0)
