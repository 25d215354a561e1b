"""`mgs keys`: API keys, made and revoked in the database directly (DATABASE_URL and the server's API_KEY_SECRET)."""
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from services.cli.common import Failure, Json, err, out, print_json, table, when

app = typer.Typer(no_args_is_help=True,
                  help="API keys (talks to the database: needs the server's DATABASE_URL and API_KEY_SECRET).")


@contextmanager
def session():
    from sqlalchemy.exc import SQLAlchemyError
    from services.store import db
    try:
        with db.session_scope() as s:
            yield s
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise Failure(f"cannot use the database: {reason}")


@app.command()
def create(owner: Annotated[str, typer.Option(help="whose jobs the key reaches", show_default=False)],
           name: Annotated[Optional[str], typer.Option(help="a note to tell keys apart", show_default=False)] = None):
    """Make a key and print it once (stdout)."""
    from services.store import keys
    with session() as s:
        key = keys.create_api_key(s, owner, name=name)
    print(key)
    err.print(f"API key for owner {owner!r} (shown once; store it now)")


@app.command("list")
def list_keys(as_json: Json = False):
    """Ids, owners, names and state of all keys (never the keys themselves)."""
    from services.store import keys
    with session() as s:
        rows = [{"id": k.id, "owner": k.owner, "name": k.name, "created_at": k.created_at.isoformat(),
                 "revoked_at": k.revoked_at and k.revoked_at.isoformat()} for k in keys.list_api_keys(s)]
    if as_json:
        return print_json(rows)
    if not rows:  # as `mgs list`: nothing on stdout, a line on stderr
        return err.print("no keys")
    out.print(table(("id", "owner", "name", "created", "state"),
                    [(str(k["id"]), k["owner"], k["name"] or "", when(k["created_at"]),
                      f"revoked {when(k['revoked_at'])}" if k["revoked_at"] else "active") for k in rows]))


@app.command()
def revoke(key_id: Annotated[int, typer.Argument(help="the key's id (see keys list)", show_default=False)]):
    """Revoke a key: requests with it are refused at once."""
    from services.store import keys
    with session() as s:
        revoked = keys.revoke_api_key(s, key_id)
    if not revoked:
        raise Failure(f"no active key with id {key_id}")
    err.print(f"revoked key {key_id}")
