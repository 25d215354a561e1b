"""`mgs experiments`: named groups of your jobs (made on first use by `mgs submit --experiment NAME`)."""
import uuid
from typing import Annotated, Optional

import typer

from services.cli.common import API_ERROR, DEFAULT_URL, confirm, Api, Failure, Json, Key, Url, err, out, print_json, table, when

app = typer.Typer(no_args_is_help=True, help="Experiments: named groups of jobs (`list --experiment NAME` shows "
                                             "their jobs).")
Ref = Annotated[str, typer.Argument(help="the experiment's name or id", show_default=False)]


def find(api, ref):
    """An experiment by id, or by name among yours."""
    try:
        return api.get(f"/experiments/{uuid.UUID(ref)}")
    except ValueError:
        pass
    for experiment in api.get("/experiments")["items"]:
        if experiment["name"] == ref:
            return experiment
    raise Failure(f"no experiment named {ref!r} (see `mgs experiments list`)", API_ERROR)


@app.command()
def create(name: Annotated[str, typer.Argument(help="unique among your experiments", show_default=False)],
           description: Annotated[Optional[str], typer.Option(help="what it is about", show_default=False)] = None,
           as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Make an experiment; prints its id."""
    created = Api(url, key).post("/experiments", {"name": name, "description": description})
    print_json(created) if as_json else out.print(created["id"])


@app.command("list")
def list_experiments(as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Your experiments with their job counts."""
    page = Api(url, key).get("/experiments")
    if as_json:
        return print_json(page)
    if not page["items"]:  # as `mgs list`: nothing on stdout, a line on stderr
        return err.print("no experiments")
    out.print(table(("id", "name", "jobs", "created", "description"),
                    [(e["id"], e["name"], str(e["jobs"]), when(e["created_at"]), e["description"] or "")
                     for e in page["items"]]))


@app.command()
def show(experiment: Ref, as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """One experiment (its jobs: `mgs list --experiment NAME`)."""
    found = find(Api(url, key), experiment)
    if as_json:
        return print_json(found)
    grid = table(("", ""), [("id", found["id"]), ("name", found["name"]), ("jobs", str(found["jobs"])),
                            ("created", when(found["created_at"])), ("description", found["description"] or "")])
    grid.show_header = False
    out.print(grid)


@app.command()
def delete(experiment: Ref,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
           url: Url = DEFAULT_URL, key: Key = None):
    """Delete an experiment AND its jobs, with their histories and artifacts, for good."""
    api = Api(url, key)
    found = find(api, experiment)
    confirm(yes, f"Delete experiment {found['name']!r} and its {found['jobs']} jobs for good?")
    api.request("DELETE", f"/experiments/{found['id']}")
    err.print(f"deleted experiment {found['name']!r} and its {found['jobs']} jobs")
