"""`make clean` removes build products only; deleting the jobs' data takes `make delete-data`."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs `make`")


def make(target, where):
    subprocess.run(["make", "-s", target], cwd=where, check=True, capture_output=True, timeout=60)


def test_clean_keeps_the_data_and_delete_data_removes_it(tmp_path):
    shutil.copy(REPO / "Makefile", tmp_path)
    built = [".venv/bin/python", "micrograd_service.egg-info/PKG-INFO", "core/__pycache__/nn.cpython-311.pyc",
             ".pytest_cache/README.md"]
    data = ["var/service.db", "var/broker.db"]
    for name in built + data + ["core/nn.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    make("clean", tmp_path)
    assert not any((tmp_path / name).exists() for name in built)
    assert all((tmp_path / name).exists() for name in data + ["core/nn.py"])
    make("delete-data", tmp_path)
    assert not (tmp_path / "var").exists() and (tmp_path / "core/nn.py").exists()
