"""/redoc with nothing from another host. fastapi-offline serves ReDoc's script from the package, but
that script's footer ("API docs by Redocly") loads its logo from cdn.redoc.ly; here the page loads a
copy of the script whose logo is an empty data: URL, which fails to decode, so ReDoc hides the image
as it does offline, without asking the network."""
from functools import lru_cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import Response

REDOC_SCRIPT = Path(fastapi_offline.__file__).resolve().parent / "static" / "redoc.standalone.js"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
NO_IMAGE = "data:,"
OFFLINE_REDOC_SCRIPT_PATH = "/docs-redoc/redoc.standalone.js"


@lru_cache(maxsize=1)
def offline_redoc_script() -> bytes:
    return REDOC_SCRIPT.read_text(encoding="utf-8").replace(REDOC_LOGO, NO_IMAGE).encode()


def add_redoc(app: FastAPI, assets_url: str) -> None:
    """GET /redoc (the app must be made with redoc_url=None) and its script."""

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request):
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{OFFLINE_REDOC_SCRIPT_PATH}", with_google_fonts=False,
                              redoc_favicon_url=f"{root}{assets_url}/favicon.png")

    @app.get(OFFLINE_REDOC_SCRIPT_PATH, include_in_schema=False)
    def redoc_script():
        return Response(offline_redoc_script(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
