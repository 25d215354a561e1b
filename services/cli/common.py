"""What every command shares: exit codes, the HTTP client, and output (rich for people, --json for scripts).

Every expected failure is a `Failure`: one line on stderr and a documented exit code, never a traceback."""
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import httpx
import typer
from rich import box
from rich.console import Console
from rich.table import Table

# Exit codes (also in `mgs --help` and the README).
OK = 0
USAGE = 1        # bad command line or input file
API_ERROR = 2    # the API answered with an error status, or with something that is not its answer
JOB_FAILED = 3   # --wait / --watch: the job or sweep ended failed or cancelled
UNREACHABLE = 4  # no answer from the API (not running, wrong --url, timeout)
INTERRUPTED = 130

EXIT_CODES = {OK: "ok", USAGE: "bad command line or input file", API_ERROR: "the API refused the request (its message is printed)",
              JOB_FAILED: "the job or sweep waited for ended failed or cancelled",
              UNREACHABLE: "the API could not be reached", INTERRUPTED: "interrupted (Ctrl-C)"}
DEFAULT_URL = "http://127.0.0.1:8000"
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
PIPED_WIDTH = 160


class RightStripped(Console):
    """A console whose lines never end in spaces: rich pads every table cell to its column's width, so a
    script reading a table (or `show`'s rows) got trailing spaces. Columns stay aligned; only the right
    edge goes (before any closing style codes, on a terminal)."""
    TRAILING_SPACES = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)

    def print(self, *objects, **kwargs):
        with self.capture() as captured:
            super().print(*objects, **kwargs)
        self.file.write(self.TRAILING_SPACES.sub(r"\1", captured.get()))
        self.file.flush()


# results: stdout. Piped (not a terminal, no COLUMNS), tables get room enough not to fold.
out = RightStripped(highlight=False, soft_wrap=True,
                    width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
err = Console(stderr=True, highlight=False)             # messages, progress bars, live tables: stderr


class Failure(Exception):
    """An expected failure: `mgs: <message>` on stderr and exit `code` (see main)."""

    def __init__(self, message, code=USAGE):
        super().__init__(message)
        self.message, self.exit_code = message, code


# Options every HTTP command takes.
Url = Annotated[str, typer.Option("--url", envvar="SERVICE_URL", help="the API's base URL", show_envvar=True)]
Key = Annotated[Optional[str], typer.Option("--key", envvar="API_KEY", help="API key (when the API requires one)",
                                            show_envvar=True, show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON (for scripts)")]
JobId = Annotated[str, typer.Argument(help="the job's id", show_default=False)]


class Api:
    """The service's HTTP API; every error becomes a one-line Failure."""

    def __init__(self, url, key):
        self.url = url.rstrip("/")
        # X-Requested-With: a server without keys refuses a bodiless POST (cancel, rerun) without it
        headers = {"X-Requested-With": "mgs-cli", **({"Authorization": f"Bearer {key}"} if key else {})}
        try:
            self.http = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        except (httpx.InvalidURL, ValueError) as e:
            raise Failure(f"bad --url {url!r}: {e}")

    def request(self, method, path, **kwargs):
        try:
            response = self.http.request(method, path, **kwargs)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise Failure(f"bad --url {self.url!r}: {e}")
        except httpx.HTTPError as e:
            raise Failure(f"cannot reach {self.url}: {e or type(e).__name__}", UNREACHABLE)
        if response.is_error:
            raise Failure(f"{response.status_code} from {method} {path}: {error_message(response)}", API_ERROR)
        return response

    def json(self, method, path, **kwargs):
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise Failure(f"{method} {path}: the answer is not JSON ({one_line(response.text)!r}); "
                          f"is {self.url} the service's API?", API_ERROR)

    def get(self, path, **params):
        return self.json("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path, body=None):
        return self.json("POST", path, json=body)


def error_message(response):
    """The API's `detail` as one line (422 lists become `field: message; …`)."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return one_line(response.text) or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', item)}"
                         if isinstance(item, dict) else str(item) for item in detail)
    return one_line(str(detail))


def one_line(text, limit=200):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def read_json(path, what):
    """A JSON file (`-` is stdin); a missing or malformed one is a Failure naming it."""
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text()
        return json.loads(text)
    except (OSError, ValueError) as e:
        raise Failure(f"cannot read {what} from {path}: {e}")


def write_file(path, text, what):
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise Failure(f"cannot write {what} to {path}: {e}")
    err.print(f"wrote {what} to {path} ({len(text.encode()):,} bytes)", soft_wrap=True)  # a long path unbroken


def print_json(data):
    print(json.dumps(data, indent=2))


def table(columns, rows, title=None):
    """A light rich table. The first column (ids) never shrinks, wraps or gets cut, so ids can be copied;
    the others fold when the terminal is narrow."""
    rows = [[cell if isinstance(cell, str) else number(cell) for cell in row] for row in rows]
    grid = Table(*columns, title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                 show_edge=False, pad_edge=False)
    for column in grid.columns:
        column.overflow = "fold"
    grid.columns[0].no_wrap = True
    grid.columns[0].min_width = max((len(row[0]) for row in rows), default=0)
    for row in rows:
        grid.add_row(*row)
    return grid


def number(x, digits=6):
    """Floats short and aligned; None (not finite, or not there yet) as a dash."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def when(timestamp):
    """An ISO timestamp from the API, to the minute."""
    return timestamp.replace("T", " ")[:16] if timestamp else "–"


def shown_status(job: dict) -> str:
    """A job's status as people read it: a sweep trial that early stopping pruned says pruned, as the sweep's
    leaderboard does (its job's own status stays cancelled; the API marks it `pruned`)."""
    return "pruned" if job.get("pruned") else job["status"]


def confirm(yes, question):
    """Go on with something final: with --yes, or when a person at a terminal says so."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Failure("this is final: add --yes to go on without being asked")
    typer.confirm(question, abort=True, err=True)
