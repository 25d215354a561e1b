"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the real service
(`python -m services.embedded`: uvicorn serving the API and a real Celery worker) with API keys required.
One service and one browser for the module (not the session: Playwright's sync API keeps an asyncio loop
running in the thread while it is open, so a test run after these on the same pytest-xdist worker could
not call asyncio.run); each test gets a fresh page."""
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import REPO, Process, free_port, wait_for_final, wait_until_ready

SCREENSHOTS = REPO / "var" / "screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path():
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (`apt-get install chromium`; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.txt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()


@contextmanager
def environment(**values):
    from services.config import get_settings
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


class Service:
    def __init__(self, url, env, key=None):
        self.url, self.env, self.key = url, env, key
        headers = {"Authorization": f"Bearer {key}"} if key else {"X-Requested-With": "mgs-tests"}  # (open mode)
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    @contextmanager
    def session(self):
        """A session on the service's database, from this process."""
        with environment(DATABASE_URL=self.env["DATABASE_URL"], API_KEY_SECRET=self.env["API_KEY_SECRET"]):
            from services.store import db
            try:
                with db.session_scope() as session:
                    yield session
            finally:
                db.get_engine().dispose()

    @contextmanager
    def keys(self):
        """(session, services.store.keys) on the service's database."""
        from services.store import keys
        with self.session() as session:
            yield session, keys

    def create_key(self, name, owner="browser"):
        with self.keys() as (session, keys):
            return keys.create_api_key(session, owner, name)

    def revoke_key(self, name):
        with self.keys() as (session, keys):
            (key,) = [k for k in keys.list_api_keys(session) if k.name == name]
            assert keys.revoke_api_key(session, key.id)

    def submit(self, spec):
        response = self.http.post("/jobs", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def finished(self, *job_ids, timeout=120):
        return wait_for_final(self.http, list(job_ids), timeout)


@contextmanager
def embedded_service(tmp, auth_required):
    """`python -m services.embedded` (API + worker) on a free port; yields (base URL, environment)."""
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", "PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp / 'service.db'}", "BROKER_URL": f"sqla+sqlite:///{tmp / 'broker.db'}",
           "AUTH_REQUIRED": str(auth_required).lower(), "API_KEY_SECRET": "browser-test-secret",
           "RATE_LIMIT_PER_MINUTE": "100000"}
    process = Process("embedded", [sys.executable, "-m", "services.embedded"], env, tmp)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [process])
        yield f"http://127.0.0.1:{port}", env
    finally:
        process.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory, browser):
    """The embedded service on a free port, keys required, and one key for the tests (owner 'browser')."""
    with embedded_service(tmp_path_factory.mktemp("web"), auth_required=True) as (url, env):
        service = Service(url, env)
        key = service.create_key(None)
        yield Service(url, env, key)


@pytest.fixture(scope="module")
def open_service(tmp_path_factory, browser):
    """The embedded default as `make run` starts it: no keys (an open server answers only on loopback, to a
    loopback Host, and changes state only with a JSON body or X-Requested-With)."""
    with embedded_service(tmp_path_factory.mktemp("web-open"), auth_required=False) as (url, env):
        yield Service(url, env)


class Page:
    """A page of a fresh browser context that records every request and every console error."""

    def __init__(self, context, service):
        self.context, self.service = context, service
        self.page = context.new_page()
        self.requests, self.errors = [], []
        context.on("request", lambda request: self.requests.append(request.url))
        # A failed load's text names no URL ("Failed to load resource: ... 404"); its location does.
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"{message.text} ({message.location.get('url', '?')})"))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def goto(self, route):
        self.page.goto(f"{self.service.url}/#{route}")

    def screenshot(self, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@contextmanager
def fresh_page(browser, service, key=None):
    """A page of a new browser context, holding `key` as the key form stores it (localStorage) if given."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    if key:
        context.add_init_script(f"localStorage.setItem('mgs.apiKey', {key!r})")
    wrapped = Page(context, service)
    try:
        yield wrapped
    finally:
        context.close()


def assert_clean(wrapped):
    assert not wrapped.errors, f"console errors: {wrapped.errors}"
    foreign = [url for url in wrapped.requests if not url.startswith((wrapped.service.url + "/", "blob:", "data:"))]
    assert not foreign, f"requests that left 127.0.0.1: {foreign}"


@pytest.fixture
def page(browser, service):
    """A page that already holds the key."""
    with fresh_page(browser, service, service.key) as wrapped:
        yield wrapped
    assert_clean(wrapped)


@pytest.fixture
def open_page(browser, open_service):
    """A page of the open server (no key: none is needed)."""
    with fresh_page(browser, open_service) as wrapped:
        yield wrapped
    assert_clean(wrapped)


@pytest.fixture
def blank_page(browser, service):
    """A page of a context without the key."""
    with fresh_page(browser, service) as wrapped:
        yield wrapped
