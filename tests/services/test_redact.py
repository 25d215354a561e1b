"""No password in what the service prints or logs."""
from types import SimpleNamespace

import pytest

from services import embedded
from services.redact import mask_passwords


@pytest.mark.parametrize("text, masked", [
    ("postgresql+psycopg://postgres:s3cret@db:5432/app", "postgresql+psycopg://postgres:***@db:5432/app"),
    ("redis://:pa:ss@redis:6379/0 refused", "redis://:***@redis:6379/0 refused"),
    ("sqla+sqlite:////var/broker.db", "sqla+sqlite:////var/broker.db"),
    ("sqlite:///var/service.db", "sqlite:///var/service.db"),
    ("http://127.0.0.1:8000/docs", "http://127.0.0.1:8000/docs"),
])
def test_mask_passwords(text, masked):
    assert mask_passwords(text) == masked


def test_the_launcher_prints_no_password(capsys, monkeypatch):
    monkeypatch.setattr(embedded, "auto_renderer", lambda: next(iter(embedded.GRAPH_RENDERERS)))
    embedded.announce(SimpleNamespace(HOST="127.0.0.1", PORT=8000, AUTH_REQUIRED=False,
                                      DATABASE_URL="postgresql+psycopg://postgres:s3cret@127.0.0.1:5432/app",
                                      BROKER_URL="redis://:t0ken@127.0.0.1:6379/0"))
    printed = capsys.readouterr().out
    assert "s3cret" not in printed and "t0ken" not in printed and "postgres:***@127.0.0.1:5432/app" in printed
