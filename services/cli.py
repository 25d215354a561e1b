"""Command line: manage API keys (talks to the database) and use the service (talks HTTP).

    python -m services.cli keys create --owner alice
    python -m services.cli submit examples/seed.json --wait
"""
import argparse
import json
import os
import sys
import time

import httpx

FINAL_STATUSES = ("succeeded", "failed", "cancelled")
DEFAULT_URL = "http://127.0.0.1:8000"


def keys_create(args):
    from services.store import db, keys
    with db.session_scope() as session:
        key = keys.create_api_key(session, args.owner, name=args.name)
    print(key)
    print(f"API key for owner {args.owner!r} (shown once; store it now)", file=sys.stderr)


def keys_revoke(args):
    from services.store import db, keys
    with db.session_scope() as session:
        if not keys.revoke_api_key(session, args.id):
            sys.exit(f"no active key with id {args.id}")
    print(f"revoked key {args.id}", file=sys.stderr)


def keys_list(args):
    from services.store import db, keys
    with db.session_scope() as session:
        for key in keys.list_api_keys(session):
            revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            print(f"{key.id}\t{key.owner}\t{key.name or ''}\t{key.created_at:%Y-%m-%d %H:%M}\t{revoked}")


def client(args):
    key = args.key or os.environ.get("API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=args.url, headers=headers, timeout=30)


def call(args, method, path, **kwargs):
    """The response's JSON; exits with the server's message on an error status."""
    with client(args) as http:
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            sys.exit(f"cannot reach {args.url}: {e}")
    if response.is_error:
        sys.exit(f"{response.status_code}: {response.text}")
    return response.json()


def show(data):
    print(json.dumps(data, indent=2))


def read_spec(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read a job spec from {path}: {e}")


def submit(args):
    spec = read_spec(args.file)
    created = call(args, "POST", "/jobs", json=spec)
    if not args.wait:
        return show(created)
    job = created
    while job["status"] not in FINAL_STATUSES:
        time.sleep(args.poll)
        job = call(args, "GET", f"/jobs/{created['id']}")
    show(job)
    if job["status"] != "succeeded":
        sys.exit(1)


def status(args):
    show(call(args, "GET", f"/jobs/{args.id}"))


def list_jobs(args):
    params = {"limit": args.limit, **({"status": args.status} if args.status else {})}
    for job in call(args, "GET", "/jobs", params=params)["items"]:
        print(f"{job['id']}\t{job['status']}\t{job['created_at']}\t{job['final_loss']}")


def loss(args):
    history = call(args, "GET", f"/jobs/{args.id}/loss", params={"max_points": args.max_points})
    for point in history["points"]:
        print(f"{point['step']}\t{point['loss']}")


def cancel(args):
    show(call(args, "POST", f"/jobs/{args.id}/cancel"))


def parser():
    p = argparse.ArgumentParser(prog="python -m services.cli", description=__doc__.split("\n")[0])
    commands = p.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="API keys (needs DATABASE_URL and API_KEY_SECRET of the server)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key and print it once")
    create.add_argument("--owner", required=True)
    create.add_argument("--name", help="a note to tell keys apart")
    create.set_defaults(run=keys_create)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id (see keys list)")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=keys_revoke)
    key_commands.add_parser("list", help="ids, owners and state of all keys").set_defaults(run=keys_list)

    def http_command(name, run, help):
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--url", default=os.environ.get("SERVICE_URL", DEFAULT_URL))
        sub.add_argument("--key", help="API key (default: env API_KEY)")
        sub.set_defaults(run=run)
        return sub

    sub = http_command("submit", submit, "submit a job spec (a JSON file)")
    sub.add_argument("file")
    sub.add_argument("--wait", action="store_true", help="poll until the job is final")
    sub.add_argument("--poll", type=float, default=0.5, help="seconds between polls with --wait")
    http_command("status", status, "a job's status, progress and results").add_argument("id")
    sub = http_command("list", list_jobs, "your jobs, newest first")
    sub.add_argument("--status")
    sub.add_argument("--limit", type=int, default=50)
    sub = http_command("loss", loss, "a job's loss history (step, loss)")
    sub.add_argument("id")
    sub.add_argument("--max-points", type=int, default=1000)
    http_command("cancel", cancel, "cancel a job").add_argument("id")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
