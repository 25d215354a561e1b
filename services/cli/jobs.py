"""Job commands: submit (and watch), list, show, loss, params, predict, graph, cancel."""
import json
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from services.cli.common import (API_ERROR, DEFAULT_URL, confirm, error_message, FINAL_STATUSES, INTERRUPTED, JOB_FAILED, Api, Failure, JobId, Json, Key, Url, err, number,
                                 out, print_json, read_json, shown_status, table, when, write_file)

Status = Enum("Status", {name: name for name in ("queued", "running", "succeeded", "failed", "cancelled")}, type=str)


def register(app: typer.Typer):
    for command in (submit, list_jobs, show, edit, compare, rerun, loss, params, predict, graph, cancel, delete):
        app.command(name=command.__name__.removesuffix("_jobs").replace("_", "-"))(command)
    app.command(name="status", hidden=True, help="the same as show")(show)


TagOption = Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="KEY=VALUE (repeat for several)",
                                                       show_default=False)]


def parse_tags(pairs):
    tags = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Failure(f"--tag {pair!r}: expected KEY=VALUE")
        tags[key] = value
    return tags


def submit(file: Annotated[Path, typer.Argument(help="a job spec, JSON (`-` reads stdin)", show_default=False)],
           name: Annotated[Optional[str], typer.Option(help="default: the data kind and the id's start",
                                                       show_default=False)] = None,
           experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="an experiment's name "
                                                             "(made on first use)", show_default=False)] = None,
           tag: TagOption = None,
           notes: Annotated[Optional[str], typer.Option(help="free text", show_default=False)] = None,
           wait: Annotated[bool, typer.Option("--wait", help="follow the job with a progress bar until it ends; "
                                                              "exit 3 unless it succeeded")] = False,
           poll: Annotated[float, typer.Option(min=0.05, help="seconds between polls with --wait")] = 0.5,
           as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Submit a training job. Prints its id (--json: the API's answer; with --wait: the finished job)."""
    body = read_json(file, "a job spec")
    metadata = {k: v for k, v in {"name": name, "experiment": experiment, "tags": parse_tags(tag) or None,
                                  "notes": notes}.items() if v is not None}
    if metadata:  # beside the spec, never inside it (a file may already hold {"spec": ..., ...})
        body = {**body, **metadata} if isinstance(body, dict) and "spec" in body else {"spec": body, **metadata}
    api = Api(url, key)
    created = api.post("/jobs", body)
    if not wait:
        return print_json(created) if as_json else out.print(created["id"])
    job = follow(api, created["id"], poll)
    print_json(job) if as_json else print_job(job)
    if job["status"] != "succeeded":
        raise typer.Exit(JOB_FAILED)


def follow(api, job_id, poll):
    """Poll GET /jobs/{id} until the job is final, showing step of total, loss and ETA on stderr."""
    job = api.get(f"/jobs/{job_id}")
    columns = (TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    # Only on a terminal (piped, a bar is noise); gone when done: the finished job is printed after it.
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(job["status"], total=job["progress"]["total"], loss="–")
        try:
            while True:
                progress = job["progress"]
                bar.update(task, description=job["status"], completed=progress["step"], total=progress["total"],
                           loss=number(progress["latest_loss"]))
                if job["status"] in FINAL_STATUSES:
                    return job
                time.sleep(poll)
                job = api.get(f"/jobs/{job_id}")
        except KeyboardInterrupt:
            raise Failure(f"stopped following job {job_id}; it goes on (`mgs cancel {job_id}` stops it)",
                          INTERRUPTED)


def list_jobs(status: Annotated[Optional[Status], typer.Option(show_default=False)] = None,
              experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="an experiment's name",
                                                                show_default=False)] = None,
              sweep: Annotated[Optional[str], typer.Option(help="a sweep's id: its trials", show_default=False)] = None,
              tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="KEY=VALUE, or KEY for any value; "
                                                               "repeat: all must match", show_default=False)] = None,
              where: Annotated[Optional[str], typer.Option("--filter", "-f", help="e.g. \"optimizer.lr>=0.05 and "
                                                           "metrics.accuracy>0.9\"", show_default=False)] = None,
              sort: Annotated[str, typer.Option(help="created_at, name, a spec field (optimizer.lr) or "
                                                     "metrics.NAME")] = "created_at",
              ascending: Annotated[bool, typer.Option("--asc", help="smallest first (default: largest)")] = False,
              limit: Annotated[int, typer.Option(min=1, max=200, help="jobs per page")] = 50,
              cursor: Annotated[Optional[str], typer.Option(help="next page: the cursor the last one printed",
                                                            show_default=False)] = None,
              as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Your jobs, newest first."""
    tags = [t.replace("=", ":", 1) for t in tag or ()]
    page = Api(url, key).get("/jobs", status=status and status.value, experiment=experiment, sweep=sweep,
                             tag=tags or None,
                             filter=where, sort=sort, order="asc" if ascending else "desc", limit=limit, cursor=cursor)
    if as_json:
        return print_json(page)
    if not page["items"]:  # no table of headers alone: stdout stays empty, stderr says why
        filtered = status or experiment or sweep or tag or where
        return err.print(("no more jobs" if cursor else "no jobs") if not filtered else
                         "no more jobs match the filter" if cursor else "no job matches the filter")
    metric = sort.removeprefix("metrics.") if sort.startswith("metrics.") and sort != "metrics.final_loss" else None
    out.print(table(("id", "name", "status", "created", "final loss", *([metric] if metric else [])),
                    [(job["id"], job["name"], shown_status(job), when(job["created_at"]), job["final_loss"],
                      *([(job["metrics"] or {}).get(metric)] if metric else [])) for job in page["items"]]))
    if page["next_cursor"]:
        err.print(f"more: --cursor {page['next_cursor']}", soft_wrap=True)  # one line, to copy whole


def show(job_id: JobId, as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """A job's status, progress, metrics, timings and spec."""
    job = Api(url, key).get(f"/jobs/{job_id}")
    print_json(job) if as_json else print_job(job)


def print_job(job):
    progress, timings = job["progress"], job["timings"]
    rows = [("id", job["id"]), ("name", job["name"]), ("experiment", job["experiment"] or "–"),
            ("tags", ", ".join(f"{k}={v}" for k, v in job["tags"].items()) or "–")]
    rows += [("notes", job["notes"])] if job["notes"] else []
    rows += [("status", shown_status(job) + (" (cancel requested)" if job["cancel_requested"]
                                                          and job["status"] not in FINAL_STATUSES else "")),
            ("progress", f"step {progress['step']} of {progress['total']}, loss {number(progress['latest_loss'])}")]
    rows += [(name.replace("_", " "), value) for name, value in (job["metrics"] or {}).items()]
    rows += [("queued", when(timings["queued_at"])), ("started", when(timings["started_at"])),
             ("finished", when(timings["finished_at"])), ("attempts", str(job["attempts"]))]
    if job["error"]:
        rows.append(("error", job["error"]))
    rows += [(f"spec {part}", compact(value)) for part, value in job["spec"].items() if value is not None]
    grid = table(("", ""), rows)
    grid.show_header = False
    out.print(grid)


def edit(job_id: JobId,
         name: Annotated[Optional[str], typer.Option(help="a new name", show_default=False)] = None,
         tag: TagOption = None,
         untag: Annotated[Optional[list[str]], typer.Option(help="remove the tag KEY (repeat for several)",
                                                            show_default=False)] = None,
         notes: Annotated[Optional[str], typer.Option(help="replace the notes", show_default=False)] = None,
         as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Rename a job, add or change (--tag) or remove (--untag) tags, replace its notes.

    The spec and results never change."""
    api = Api(url, key)
    patch = {k: v for k, v in {"name": name, "notes": notes}.items() if v is not None}
    if tag or untag:
        tags = {**api.get(f"/jobs/{job_id}")["tags"], **parse_tags(tag)}
        patch["tags"] = {k: v for k, v in tags.items() if k not in set(untag or ())}
    if not patch:
        raise Failure("nothing to change: give --name, --tag, --untag or --notes")
    job = api.json("PATCH", f"/jobs/{job_id}", json=patch)
    print_json(job) if as_json else print_job(job)


def compare(job_ids: Annotated[list[str], typer.Argument(help="2 to 20 job ids", show_default=False)],
            points: Annotated[int, typer.Option(min=2, max=50, help="loss rows: steps picked evenly from the "
                                                                   "runs' common grid")] = 8,
            as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Runs side by side: the spec fields that differ, the metrics, and the loss at a few common steps."""
    comparison = Api(url, key).get("/compare", ids=job_ids)
    if as_json:
        return print_json(comparison)
    runs = comparison["runs"]
    rows = [("id", *(run["id"] for run in runs)), ("status", *(shown_status(run) for run in runs)),
            ("experiment", *(run["experiment"] or "–" for run in runs))]
    rows += [(path, *map(compact, values)) for path, values in comparison["differences"].items()]
    metrics = [name for name in ("final_loss", "accuracy", "val_loss", "val_accuracy", "steps_done")
               if any((run["metrics"] or {}).get(name) is not None for run in runs)]
    rows += [(f"metrics.{name}", *((run["metrics"] or {}).get(name) for run in runs)) for name in metrics]
    steps = comparison["steps"]
    picked = sorted({round(i * (len(steps) - 1) / (points - 1)) for i in range(points)}) if steps else []
    rows += [(f"loss @ step {steps[i]}", *(run["loss"][i] for run in runs)) for i in picked]
    out.print(table(("", *(run["name"] for run in runs)), rows))


def rerun(job_id: JobId,
          seed: Annotated[Optional[int], typer.Option(min=0, help="a new seed (default: the same, so the same "
                                                            "history bit for bit)", show_default=False)] = None,
          change: Annotated[Optional[list[str]], typer.Option("--set", help="PATH=VALUE, e.g. optimizer.lr=0.05 "
                                                              "(VALUE is JSON, else text; repeat for several)",
                                                              show_default=False)] = None,
          name: Annotated[Optional[str], typer.Option(help="the new job's name", show_default=False)] = None,
          experiment: Annotated[Optional[str], typer.Option("--experiment", "-e", help="default: the same",
                                                            show_default=False)] = None,
          wait: Annotated[bool, typer.Option("--wait", help="follow it with a progress bar; exit 3 unless it "
                                                            "succeeded")] = False,
          as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Run a job again: the same spec and seed, or with --seed / --set changes; same experiment and tags."""
    patch = {}
    for item in change or ():
        path, sep, text = item.partition("=")
        if not sep or not path:
            raise Failure(f"--set {item!r}: expected PATH=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, last = path.split(".")
        node = patch
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise Failure(f"--set {item!r}: {part} is set twice")
        node[last] = value
    body = {k: v for k, v in {"seed": seed, "spec_patch": patch or None, "name": name,
                              "experiment": experiment}.items() if v is not None}
    api = Api(url, key)
    created = api.post(f"/jobs/{job_id}/rerun", body)
    if not wait:
        return print_json(created) if as_json else out.print(created["id"])
    job = follow(api, created["id"], 0.5)
    print_json(job) if as_json else print_job(job)
    if job["status"] != "succeeded":
        raise typer.Exit(JOB_FAILED)


def delete(job_ids: Annotated[list[str], typer.Argument(help="one or more job ids", show_default=False)],
           yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
           url: Url = DEFAULT_URL, key: Key = None):
    """Delete jobs with their histories and artifacts, for good (a running one is cancelled first)."""
    confirm(yes, f"Delete {len(job_ids)} job(s) and their histories for good?")
    api = Api(url, key)
    for job_id in job_ids:
        api.request("DELETE", f"/jobs/{job_id}")
        err.print(f"deleted job {job_id}")


def compact(value):
    """A spec part or value on one line (JSON for lists and objects, without their unset fields)."""
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return "–" if value is None else str(value)


def loss(job_id: JobId,
         max_points: Annotated[int, typer.Option(min=1, max=10_000, help="downsample to at most this many "
                                                                           "(spikes kept)")] = 1000,
         start: Annotated[Optional[int], typer.Option(min=0, help="first step", show_default=False)] = None,
         end: Annotated[Optional[int], typer.Option(min=0, help="last step", show_default=False)] = None,
         csv: Annotated[bool, typer.Option("--csv", help="the whole history as CSV (step,loss,accuracy,lr), "
                                                          "not downsampled")] = False,
         output: Annotated[Optional[Path], typer.Option("--output", "-o", help="with --csv: write to this file",
                                                        show_default=False)] = None,
         as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """A job's loss history (step, loss, accuracy, learning rate), also while it runs."""
    if csv:
        text = Api(url, key).request("GET", f"/jobs/{job_id}/loss.csv").text
        return write_file(output, text, "the loss history") if output else print(text, end="")
    history = Api(url, key).get(f"/jobs/{job_id}/loss", max_points=max_points, start=start, end=end)
    if as_json:
        return print_json(history)
    out.print(table(("step", "loss", "accuracy", "lr"),
                    [(str(p["step"]), p["loss"], p["accuracy"], p["lr"]) for p in history["points"]],
                    title=f"{len(history['points'])} of {history['total_points']} points, job {history['status']}"))


def params(job_id: JobId,
           output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write to this file instead of "
                                                                                   "stdout", show_default=False)] = None,
           url: Url = DEFAULT_URL, key: Key = None):
    """A succeeded job's final parameters, JSON loadable with core.nn.MLP.from_json."""
    text = Api(url, key).request("GET", f"/jobs/{job_id}/params").text
    write_file(output, text, "the parameters") if output else print(text)


def predict(job_id: JobId,
            xs: Annotated[Optional[str], typer.Option(help='inputs as JSON, e.g. "[[0.5, -1.0]]"',
                                                      show_default=False)] = None,
            file: Annotated[Optional[Path], typer.Option("--file", "-f", help="inputs from a JSON file (`-` is stdin)"
                                                         ": a list of samples or {\"xs\": [...]}",
                                                         show_default=False)] = None,
            as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Run a succeeded job's model on some inputs."""
    if (xs is None) == (file is None):
        raise Failure("give the inputs with exactly one of --xs or --file")
    if xs is not None:
        try:
            samples = json.loads(xs)
        except ValueError as e:
            raise Failure(f"--xs is not JSON: {e}")
    else:
        samples = read_json(file, "inputs")
    if isinstance(samples, dict):
        samples = samples.get("xs")
    if not isinstance(samples, list):
        raise Failure('the inputs must be a list of samples, e.g. [[0.5, -1.0], [1.0, 2.0]], or {"xs": [...]}')
    samples = [x if isinstance(x, list) else [x] for x in samples]
    answer = Api(url, key).post(f"/jobs/{job_id}/predict", {"xs": samples})
    if as_json:
        return print_json(answer)
    out.print(table(("x", "y"), [(", ".join(number(v) for v in x),
                                  ", ".join(number(v) for v in y) if isinstance(y, list) else y)
                                 for x, y in zip(samples, answer["ys"])]))


def graph(job_id: JobId,
          output: Annotated[Optional[Path], typer.Option("--output", "-o", help="the SVG file [default: ID.svg]",
                                                         show_default=False)] = None,
          wait: Annotated[float, typer.Option(help="seconds to wait for a graph that is being drawn")] = 60,
          url: Url = DEFAULT_URL, key: Key = None):
    """Write a job's computation graph (SVG) to a file.

    A succeeded job's graph is drawn after its results are saved: this waits for it (up to --wait seconds)."""
    api, path = Api(url, key), f"/jobs/{job_id}/graph.svg"
    deadline = time.monotonic() + wait
    while (response := api.request("GET", path)).status_code == 202:  # "the graph is being drawn"
        if time.monotonic() >= deadline:
            raise Failure(f"{error_message(response)} (still, after {wait:g} s; try again later)", API_ERROR)
        time.sleep(min(float(response.headers.get("Retry-After", 1)), max(0.05, deadline - time.monotonic())))
    write_file(output or Path(f"{job_id}.svg"), response.text, "the graph")


def cancel(job_id: JobId, as_json: Json = False, url: Url = DEFAULT_URL, key: Key = None):
    """Cancel a job: a queued one at once, a running one within a step or two.

    One that had already succeeded or failed is left as it was (exit 0), and the message says so."""
    job = Api(url, key).post(f"/jobs/{job_id}/cancel")
    if as_json:
        return print_json(job)
    if job["status"] in ("succeeded", "failed"):  # it had ended: a bare "succeeded" read as a result
        drawing = job["status"] == "succeeded" and job["cancel_requested"] and job.get("graph") == "pending"
        state = f"already {job['status']}" + ("; drawing its graph is stopped" if drawing else ": nothing to cancel")
    else:
        state = shown_status(job) + (", cancel requested" if job["cancel_requested"] and job["status"] == "running"
                                     else "")
    out.print(f"{job['id']}: {state}")
