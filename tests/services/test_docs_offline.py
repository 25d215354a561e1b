"""/docs and /redoc work without internet: every script, style sheet and icon they load comes from
this server (fastapi-offline's copies of Swagger UI and ReDoc), none from a CDN, and no script they load
asks another host for an image (ReDoc's own asks cdn.redoc.ly for its footer logo; ours does not)."""
import re
from urllib.parse import urljoin, urlsplit

import pytest

URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ANY_URL = re.compile(r"""(?:https?:)?//[\w.-]+""")
# an image (or script, frame...) that a script loads from another host: `src: "https://..."`, `.src = "//..."`
REMOTE_SOURCE = re.compile(r"""\bsrc\s*[:=]\s*["'`](?:https?:)?//[^"'`]*""")


@pytest.mark.parametrize("page, assets", [
    ("/docs", {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}),
    ("/redoc", {"redoc.standalone.js": "javascript", "favicon.png": "image/png"}),
])
@pytest.mark.parametrize("auth_required", ["false", "true"])  # (the pages and their files need no key)
def test_the_docs_pages_load_everything_from_this_server(make_client, page, assets, auth_required):
    client = make_client(AUTH_REQUIRED=auth_required)
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert ANY_URL.findall(html) == [], "the page names another host"
    urls = URL_ATTRIBUTE.findall(html)
    assert {url.rsplit("/", 1)[-1] for url in urls} >= set(assets)
    here = urlsplit(str(client.base_url)).netloc
    for url in urls:
        absolute = urljoin(urljoin(str(client.base_url), page), url)
        assert urlsplit(absolute).netloc == here, url
        asset = client.get(absolute)
        assert asset.status_code == 200 and len(asset.content) > 0, url
        kind = assets[url.rsplit("/", 1)[-1]]
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
        if kind == "javascript":
            assert REMOTE_SOURCE.findall(asset.text) == [], url


def test_swagger_ui_asks_no_online_validator(client):
    """Swagger UI's default validatorUrl would load a badge from validator.swagger.io."""
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_docs_and_their_assets_stay_out_of_the_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in paths)
