"""`mgs sweep`: hyperparameter searches (POST /sweeps); trials are ordinary jobs, so every job command
works on them."""
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from services.cli.common import (DEFAULT_URL, INTERRUPTED, JOB_FAILED, Api, Failure, Json, Key, Url, err, number,
                                 out, print_json, read_json, table, when)

app = typer.Typer(no_args_is_help=True, help="Hyperparameter sweeps: create (and watch), list, show, cancel.")
SweepId = Annotated[str, typer.Argument(help="the sweep's id", show_default=False)]


@app.command()
def create(file: Annotated[Path, typer.Argument(help="a sweep: base spec, space, method, trials… (JSON; `-` is "
                                                     "stdin)", show_default=False)],
           watch: Annotated[bool, typer.Option("--watch", help="a live leaderboard until the sweep ends; exit 3 "
                                                                "if it was cancelled")] = False,
           poll: Annotated[float, typer.Option(min=0.1, help="seconds between polls with --watch")] = 1.0,
           as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Start a sweep. Prints its id (--json: the sweep; with --watch: the finished sweep's leaderboard)."""
    api = Api(url, key)
    sweep = api.post("/sweeps", read_json(file, "a sweep"))
    if not watch:
        return print_json(sweep) if as_json else out.print(sweep["id"])
    finish(follow(api, sweep, poll), as_json)


@app.command()
def watch(sweep_id: SweepId,
          poll: Annotated[float, typer.Option(min=0.1, help="seconds between polls")] = 1.0,
          as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Follow a sweep's live leaderboard until it ends; exit 3 if it was cancelled."""
    api = Api(url, key)
    finish(follow(api, api.get(f"/sweeps/{sweep_id}"), poll), as_json)


def follow(api, sweep, poll):
    """Poll GET /sweeps/{id} until the sweep ends, redrawing its leaderboard on stderr."""
    live = Live(render(sweep), console=err, refresh_per_second=4, transient=True) if err.is_terminal else None
    with live or nullcontext():  # only on a terminal; the final leaderboard is printed after it
        try:
            while sweep["status"] == "running":
                time.sleep(poll)
                sweep = api.get(f"/sweeps/{sweep['id']}")
                if live:
                    live.update(render(sweep))
        except KeyboardInterrupt:
            raise Failure(f"stopped watching sweep {sweep['id']}; it goes on "
                          f"(`mgs sweep cancel {sweep['id']}` stops it)", INTERRUPTED)
    return sweep


def finish(sweep, as_json):
    print_json(sweep) if as_json else out.print(render(sweep))
    if sweep["status"] == "cancelled":
        raise typer.Exit(JOB_FAILED)


def render(sweep):
    """The sweep's state line and its leaderboard: succeeded trials best first, then the others."""
    counts = ", ".join(f"{n} {status}" for status, n in sweep["counts"].items() if n)
    head = Text(f"sweep {sweep['id']}: {sweep['status']}, {sweep['trials_created']} of {sweep['trials']} trials "
                f"({counts or 'none yet'}); {sweep['method']}, {sweep['direction']} {sweep['objective']}, best "
                f"{number(sweep['best_objective'])}")
    paths = list(sweep["sweep"]["space"])
    rows = [(trial["job_id"] or "–", str(trial["number"]), trial["status"], trial["objective"],
             str(trial["steps_done"]), *(trial["params"].get(path) for path in paths))
            for trial in sweep["leaderboard"]]
    return Group(head, table(("job", "trial", "status", sweep["objective"], "steps", *paths), rows))


@app.command("list")
def list_sweeps(as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Your sweeps, newest first."""
    page = Api(url, key).get("/sweeps")
    if as_json:
        return print_json(page)
    if not page["items"]:  # as `mgs list`: nothing on stdout, a line on stderr
        return err.print("no sweeps")
    out.print(table(("id", "status", "method", "objective", "trials", "best", "created"),
                    [(s["id"], s["status"], s["method"], f"{s['direction'][:3]} {s['objective']}",
                      f"{s['trials_created']}/{s['trials']}", s["best_objective"], when(s["created_at"]))
                     for s in page["items"]]))


@app.command()
def show(sweep_id: SweepId, as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """A sweep's state and leaderboard."""
    sweep = Api(url, key).get(f"/sweeps/{sweep_id}")
    print_json(sweep) if as_json else out.print(render(sweep))


@app.command()
def cancel(sweep_id: SweepId, as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Cancel a sweep: no new trials, queued ones cancelled, running ones stopped within a step or two."""
    sweep = Api(url, key).post(f"/sweeps/{sweep_id}/cancel")
    print_json(sweep) if as_json else out.print(f"{sweep['id']}: {sweep['status']}")
