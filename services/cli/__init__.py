"""`mgs`, the command line (typer + rich): API keys against the database, everything else over HTTP.

    mgs keys create --owner alice
    mgs submit examples/seed.json --wait

One module per command group; `main` is the console script's entry point (`mgs = services.cli:main`)."""
import sys

import typer

from services.cli import experiments, jobs, keys, sweeps
from services.cli.common import API_ERROR, EXIT_CODES, INTERRUPTED, USAGE, Failure

PROG = "mgs"

app = typer.Typer(
    name=PROG, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train and compare neural nets on the micrograd service. API URL and key: --url/--key or "
         "SERVICE_URL/API_KEY. Every read command takes --json.",
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".")
jobs.register(app)
app.add_typer(experiments.app, name="experiments")
app.add_typer(sweeps.app, name="sweep")
app.add_typer(keys.app, name="keys")


def main(argv=None):
    """Run the CLI; exit with the documented code. An expected failure is one line on stderr, never a traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except Failure as e:
        print(f"{PROG}: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # the command line is wrong: typer's usage errors
        e.show() if hasattr(e, "show") else print(f"{PROG}: {e.format_message()}", file=sys.stderr)
        sys.exit(USAGE)
    except (KeyError, TypeError, IndexError) as e:  # an answer without the fields the API's schema promises
        print(f"{PROG}: unexpected answer from the API ({type(e).__name__}: {e}); is the URL the service's API?",
              file=sys.stderr)
        sys.exit(API_ERROR)
    except typer.Abort:  # a question answered no
        print(f"{PROG}: aborted", file=sys.stderr)
        sys.exit(USAGE)
    except KeyboardInterrupt:
        code = INTERRUPTED
    if code == INTERRUPTED:
        print(f"{PROG}: interrupted", file=sys.stderr)
    if code:
        sys.exit(code)
