"""The dashboard: static files from services/web/ (HTML, ES modules, CSS; no build step), served with a
strict Content-Security-Policy: scripts and styles only from this origin, no inline script, no plugins."""
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parents[1] / "web"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class WebFiles(StaticFiles):
    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers.update(HEADERS)
        response.headers["Cache-Control"] = "no-cache"  # revalidated with the ETag: a new version shows at once
        return response


def add_dashboard(app: FastAPI) -> None:
    page = (WEB / "index.html").read_text()  # once, not on every request

    @app.get("/", include_in_schema=False)
    def index():
        return HTMLResponse(page, headers=HEADERS)

    app.mount("/web", WebFiles(directory=WEB), name="web")
